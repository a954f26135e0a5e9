"""runtime.load: sidecar and standalone artefacts agree bit for bit; every bad input is a clean ToolchainError."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime
from exporters import export_model
from runtime import ToolchainError
from tests.exporters.helpers import prepared, sample
from tests.runtime import helpers
from tests.runtime.helpers import STEM, edit_header, set_meta


def _x(n: int = 3) -> np.ndarray:
    return sample("lenet5_tiny", n, seed=5).numpy()


def test_sidecar_artefact_is_bit_identical_to_the_standalone(exported: Path) -> None:
    packed = runtime.load(exported / f"{STEM}.compressed.onnx")
    plain = runtime.load(exported / f"{STEM}.onnx")
    assert packed.sidecar is not None and plain.sidecar is None
    assert packed.providers == ["CPUExecutionProvider"]
    assert packed.inputs[0].name == "input" and packed.inputs[0].shape[1:] == (1, 28, 28)
    np.testing.assert_array_equal(packed.run(_x())[0], plain.run(_x())[0])
    assert packed.metadata["toolchain.format"] == "qdq-sidecar"


def _truncate(d: bytes) -> bytes:
    return d[: len(d) // 2]


def _flip(d: bytes) -> bytes:
    return d[:-5] + bytes([d[-5] ^ 0x10]) + d[-4:]


@pytest.mark.parametrize(("damage", "message"), [(_truncate, "does not belong"), (_flip, "does not belong")])
def test_a_damaged_sidecar_is_refused(copy: Path, damage, message: str) -> None:
    side = helpers.sidecar_of(copy)
    side.write_bytes(damage(side.read_bytes()))
    with pytest.raises(ToolchainError, match=message):
        runtime.load(copy / f"{STEM}.compressed.onnx")


def test_a_sidecar_from_another_graph_is_refused(copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    export_model(prepared("lenet5_tiny", wbits=2), sample("lenet5_tiny", 2), other, STEM)
    shutil.copy(helpers.sidecar_of(other), helpers.sidecar_of(copy))
    with pytest.raises(ToolchainError, match="does not belong"):
        runtime.load(copy / f"{STEM}.compressed.onnx")


def _shape_of_first(h: dict) -> None:
    r = h["tensors"][0]
    r["shape"] = [r["shape"][0] * 2, *r["shape"][1:]]
    r["decoded_bytes"] *= 2
    r["steps"] = r["steps"] * 2 if r["axis"] == 0 else r["steps"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d[:8] + struct.pack("<H", 7) + d[10:], "unsupported sidecar format version 7"),
        (lambda d: edit_header(d, lambda h: h["tensors"][0].update(codec="brotli")), "unknown codec 'brotli'"),
        (lambda d: edit_header(d, _shape_of_first), "graph expects"),
        (lambda d: edit_header(d, lambda h: h["tensors"][-1].update(name="other")), "sidecar and graph disagree"),
        (lambda d: d + b"\0\0", "padded"),
    ],
)
def test_a_consistent_but_invalid_sidecar_is_refused(copy: Path, edit, message: str) -> None:
    """Sidecars whose hash the graph records (so the SHA check passes) must still be checked field by field."""
    helpers.resign(copy, edit((helpers.sidecar_of(copy)).read_bytes()))
    with pytest.raises(ToolchainError, match=message):
        runtime.load(copy / f"{STEM}.compressed.onnx")


@pytest.mark.parametrize("name", ["/etc/passwd", "../model.compressed.qsc", "sub/model.compressed.qsc", "..", ""])
def test_a_sidecar_path_outside_the_folder_is_refused(copy: Path, name: str) -> None:
    set_meta(copy, "toolchain.sidecar", name)
    with pytest.raises(ToolchainError, match="plain file name"):
        runtime.load(copy / f"{STEM}.compressed.onnx")


def test_a_symlinked_sidecar_leaving_the_folder_is_refused(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.qsc"
    (helpers.sidecar_of(copy)).rename(outside)
    os.symlink(outside, helpers.sidecar_of(copy))
    with pytest.raises(ToolchainError, match="outside the model's folder"):
        runtime.load(copy / f"{STEM}.compressed.onnx")


def test_missing_files_and_non_onnx_files_are_refused(copy: Path) -> None:
    (helpers.sidecar_of(copy)).unlink()
    with pytest.raises(ToolchainError, match="does not exist"):
        runtime.load(copy / f"{STEM}.compressed.onnx")
    with pytest.raises(ToolchainError, match="does not exist"):
        runtime.load(copy / "nothing.onnx")
    (copy / "junk.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(ToolchainError, match="not an ONNX model"):
        runtime.load(copy / "junk.onnx")


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (lambda x: {"wrong": x}, "do not match"),
        (lambda x: x[:, :, :4], "shape"),
        (lambda x: x.astype(np.float64), "float32"),
        (lambda x: x[0], "shape"),
        (lambda x: x.tolist(), "numpy array"),
    ],
)
def test_wrong_inputs_are_refused(exported: Path, feed, message: str) -> None:
    model = runtime.load(exported / f"{STEM}.compressed.onnx")
    with pytest.raises(ToolchainError, match=message):
        model.run(feed(_x()))


def test_cuda_without_onnxruntime_gpu_is_refused_unless_fallback_is_allowed(exported: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ToolchainError, match="onnxruntime-gpu"):
        runtime.load(exported / f"{STEM}.onnx", device="cuda")
    model = runtime.load(exported / f"{STEM}.onnx", device="cuda", allow_fallback=True)
    assert model.providers == ["CPUExecutionProvider"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    resign=st.booleans(),
)
def test_fuzzed_sidecars_load_cleanly_or_fail_with_toolchain_error(exported: Path, tmp_path: Path, data, resign):
    """Random byte flips, cuts and insertions: never a crash, a hang or a foreign exception."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path)) / "m"
    shutil.copytree(exported, folder)
    side = bytearray((helpers.sidecar_of(folder)).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(side) - 1, 0)))
        if kind == "flip" and side:
            side[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del side[at : at + data.draw(st.integers(1, 64))]
        else:
            side[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    if resign:
        helpers.resign(folder, bytes(side))
    else:
        (helpers.sidecar_of(folder)).write_bytes(bytes(side))
    try:
        model = runtime.load(folder / f"{STEM}.compressed.onnx")
    except ToolchainError:
        return
    assert np.all(np.isfinite(model.run(_x(1))[0]))  # a mutation that left every checked byte intact

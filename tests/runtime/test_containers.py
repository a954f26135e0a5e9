"""Weight containers chosen at load: int8 where onnxruntime's u8×s8 kernels are exact, uint8 where they saturate.

Hosts are faked by replacing the probe's answer; one test runs the real probe and checks it against the CPU's ISA
flags, and ``tests/exporters/test_folding.py`` checks it against a real model's saturation."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import runtime
import runtime.containers as containers
from exporters import export_model
from tests.exporters.helpers import prepared, run_ort, sample
from toolchain.quant import QuantConfig, calibrate, prepare_qat


@pytest.fixture(scope="module")
def w8(tmp_path_factory) -> Path:
    """An 8-bit model with full-range levels (regular, depthwise and linear layers) exported with int8 containers,
    the default, and with uint8 ones."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
        nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip
    gm = prepare_qat(model, QuantConfig(wbits=8, abits=8, first_wbits=8, last_wbits=8))
    calibrate(gm, [torch.rand(8, 8, 8, 8) + 0.5 for _ in range(2)])
    folder = tmp_path_factory.mktemp("w8")
    x = torch.rand(2, 8, 8, 8)
    export_model(gm.eval(), x, folder / "int8", "model")
    export_model(gm.eval(), x, folder / "uint8", "model", uint8_weights=True)
    return folder


def _host(monkeypatch: pytest.MonkeyPatch, exact: bool) -> None:
    monkeypatch.setattr(containers, "_probe", lambda providers: containers.Probe(exact, 0.001, providers))


def _x() -> np.ndarray:
    return (np.random.default_rng(3).random((4, 8, 8, 8)) + 0.5).astype(np.float32)


@pytest.mark.parametrize("exact", [True, False])
def test_auto_picks_the_container_for_the_host(w8: Path, monkeypatch: pytest.MonkeyPatch, exact: bool) -> None:
    _host(monkeypatch, exact)
    for written in ("int8", "uint8"):
        model = runtime.load(w8 / written / "model.compressed.onnx")
        choice = model.containers
        assert choice is not None and choice.mode == "auto"
        dtypes = {name: a.dtype for name, a in model.weights().items()}
        depthwise = [n for n in dtypes if n.startswith("2.")]
        assert len(depthwise) == 1 and dtypes[depthwise[0]] == np.int8  # the depthwise kernel widens first
        others = [n for n in dtypes if n not in depthwise]
        assert {dtypes[n] for n in others} == {np.dtype(np.int8 if exact else np.uint8)}
        assert ("int8" if exact else "uint8") in choice.summary() and "probe" in choice.reason
        # the session runs the chosen containers: the same numbers as the file written with them
        reference = run_ort(w8 / ("int8" if exact else "uint8") / "model.onnx", _x())
        assert np.array_equal(model.run(_x())[0], reference)


def test_an_override_wins_and_the_file_is_untouched(w8: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _host(monkeypatch, True)
    before = (w8 / "int8" / "model.compressed.onnx").read_bytes()
    model = runtime.load(w8 / "int8" / "model.compressed.onnx", containers="uint8")
    assert {a.dtype for a in model.weights().values()} == {np.dtype(np.uint8)}
    assert len(model.containers.switched) == 4 and "uint8 asked for" in model.containers.summary()
    assert np.array_equal(model.run(_x())[0], run_ort(w8 / "uint8" / "model.onnx", _x()))
    assert (w8 / "int8" / "model.compressed.onnx").read_bytes() == before
    materialized = runtime.session.materialize(w8 / "int8" / "model.compressed.onnx", containers="uint8")
    onnx.checker.check_model(materialized)
    with pytest.raises(runtime.ToolchainError, match="container choice"):
        runtime.load(w8 / "int8" / "model.compressed.onnx", containers="int4")


def test_small_levels_keep_int8_on_a_saturating_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """|q·m| ≤ 63 cannot saturate: every sub-8-bit layer, and 8-bit layers whose levels stay small."""
    _host(monkeypatch, False)
    export_model(prepared("lenet5_tiny", wbits=4), sample("lenet5_tiny", 2), tmp_path, "model")
    model = runtime.load(tmp_path / "model.compressed.onnx")
    bits = {r.name: r.bits for r in model.sidecar.records}
    for name, array in model.weights().items():  # 4-bit inner layers stay int8; the 8-bit first and last go uint8
        assert array.dtype == (np.uint8 if bits[name] == 8 else np.int8), name
    # an 8-bit layer whose levels stay within ±63 keeps int8 too (decided on the decoded levels)
    record = next(r for r in model.sidecar.records if r.bits == 8)
    full = {record.name: np.array([[-64, 0], [63, 5]], np.int8)}
    choice = containers.choose({record.name: record}, full, set(), ["CPUExecutionProvider"])
    assert choice.zero_points == {record.name: 128}
    small = {record.name: np.array([[-63, 0], [63, 5]], np.int8)}
    choice = containers.choose({record.name: record}, small, set(), ["CPUExecutionProvider"])
    assert choice.zero_points == {record.name: 0} and not choice.switched


def test_a_standalone_int8_file_on_a_saturating_host_names_the_remedy(w8: Path, monkeypatch) -> None:
    _host(monkeypatch, False)
    model = runtime.load(w8 / "int8" / "model.onnx")
    warning = model.containers.warning()
    assert model.containers.mode == "file" and len(model.containers.at_risk) == 3  # not the depthwise layer
    assert warning is not None and "--uint8-weights" in warning and "sidecar" in warning
    assert runtime.load(w8 / "uint8" / "model.onnx").containers.warning() is None
    _host(monkeypatch, True)
    assert runtime.load(w8 / "int8" / "model.onnx").containers.warning() is None


def test_the_real_probe_agrees_with_the_cpu_flags() -> None:
    """VNNI (or AMX) sums u8×s8 in int32; x86 with AVX2 but neither pairs products in int16 and saturates."""
    found = containers.probe()
    assert found.seconds < 5 and found.providers == ("CPUExecutionProvider",)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    words = set(flags.split())
    if platform.machine() not in ("x86_64", "AMD64") or not words:
        pytest.skip("the flag check is for x86 Linux; the probe ran")
    if words & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        assert found.exact
    elif "avx2" in words and not any(w.startswith("avx512") for w in words):
        assert not found.exact

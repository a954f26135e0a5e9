"""QDQ export: every registry model exports, fuses into integer kernels and agrees with PyTorch; artefacts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from exporters import build_graph, export_model
from exporters.artefacts import META_CONFIG, META_SIDECAR, META_SIDECAR_SHA256
from exporters.reference import folded_model
from models import get_model_spec, list_models
from runtime import ToolchainError
from runtime.containers import u8s8_exact
from runtime.kernels import classify_kernels, optimized_graph
from runtime.sidecar import parse_sidecar
from tests.conftest import sidecar_in, subprocess_env
from tests.exporters.helpers import prepared, run_ort, sample
from toolchain.agreement import compare, noise_floor, output_step
from toolchain.quant import QuantConfig, calibrate, prepare_qat

# Networks that amplify float noise: the MobileNetV3s with random weights. A relative jitter of 1e-6 at every
# activation quantizer's input, in PyTorch alone (no onnxruntime), puts 0.6-1.1 % (tiny), 3.4-5.0 % (small) and
# 25-29 % (large) of their outputs more than one step off; at 1e-7, about one float32 ulp, the large one still puts
# 12-14 % there. onnxruntime's float islands compute HardSigmoid/HardSwish by another formula than torch (alpha*x + beta
# against relu6(x + 3)/6), and its integer kernels round sums their own way: seeds of that size. So for these the bar
# is the float noise: the export must agree with its PyTorch model at least as well as that model agrees with itself
# under 1e-6 jitter. MobileNetV2 at 28×28 stays within ±1 step under the same jitter and keeps the 99.9 % bar.
# efficientnet_b0_small sits on the edge: the same jitter puts 1 of its 640 outputs 2 steps off (none at 1e-7), and
# onnxruntime that same one, with int8 or uint8 weights alike (measured on this project's AVX2 machine).
# With calibration drawn from its own fixed-seed generator (issue 28), two more networks' steps landed where the same
# jitter moves outputs: shufflenet_v1_g3_small puts 4.2 % of its 640 outputs beyond ±1 step (onnxruntime 0.3 %),
# mobilenet_v3_large 0.175 % of 4,000 (onnxruntime 0.15 %), on the edge like efficientnet_b0_small.
FLOAT_SENSITIVE = {"mobilenet_v3_tiny", "mobilenet_v3_small_small", "mobilenet_v3_large_small", "efficientnet_b0_small",
                   "shufflenet_v1_g3_small", "mobilenet_v3_large"}  # fmt: skip
# Sensitive on some CPUs only: on the AVX512-VNNI machine its PyTorch model stays within ±1 step of itself under the
# same jitter (640 of 640 outputs), so the sensitivity itself is not asserted; the bar is the measured floor still.
ON_THE_EDGE = {"efficientnet_b0_small", "mobilenet_v3_large"}


def _lane(name: str) -> object:
    """Full-size and 28×28 models in the heavy lane."""
    if get_model_spec(name).input_size <= 32 and not name.endswith("_small"):
        return name
    return pytest.param(name, marks=pytest.mark.heavy)


# Every registry model. The full-size (224×224) ones and the 28×28 `*_small` ones take seconds each and run in the
# heavy lane; each architecture family keeps a `*_tiny` sibling in the default run.
ALL_MODELS = [_lane(name) for name in list_models()]


def _agreement(gm, built, source, x: torch.Tensor):
    """onnxruntime on ``source`` vs the PyTorch model of the export (batch norm folded, int32 bias)."""
    with torch.no_grad():
        reference = folded_model(gm, built)(x).numpy()
    return compare(reference, run_ort(source, x.numpy()), output_step(gm))


def _noise_floor(gm, built, x: torch.Tensor):
    """The PyTorch model of the export against itself under a 1e-6 relative jitter (toolchain.agreement)."""
    return noise_floor(folded_model(gm, built), x, output_step(gm))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_registry_model_exports_fuses_and_agrees(name: str) -> None:
    gm = prepared(name)
    x = sample(name, 64 if get_model_spec(name).input_size <= 32 else 4, seed=7)  # ≥ 640 outputs to compare
    built = build_graph(gm, x, name, uint8_weights=not u8s8_exact())  # the containers runtime.load would pick
    proto, weights = built.model, built.weights
    onnx.checker.check_model(proto, full_check=True)
    kernels = classify_kernels(optimized_graph(proto.SerializeToString()))
    assert kernels["float"] == {}, f"float convolutions/matrix products left: {kernels['float']}"
    n_weighted = len(weights)
    assert sum(kernels["integer"].get(k, 0) for k in ("QLinearConv", "QGemm")) == n_weighted
    agreement = _agreement(gm, built, proto.SerializeToString(), x)
    if name in FLOAT_SENSITIVE:
        floor = _noise_floor(gm, built, x)
        if name not in ON_THE_EDGE:
            assert floor.within_one < 0.999, f"no longer sensitive to float noise ({floor}): drop it from the set"
        assert agreement.within_one >= floor.within_one, (agreement, floor)
        return
    assert agreement.ok(0.999), agreement


def test_graph_follows_the_qdq_conventions() -> None:
    gm = prepared("mobilenet_v2_tiny")
    built = build_graph(gm, sample("mobilenet_v2_tiny", 2))
    proto, weights = built.model, built.weights
    assert proto.opset_import[0].version >= 13
    inits = {i.name: i for i in proto.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    # int8 containers by default; with uint8_weights, 8-bit weights outside depthwise layers are uint8 with
    # zero-point 128 (folding.container_zero_point)
    uint8 = build_graph(gm, sample("mobilenet_v2_tiny", 2), uint8_weights=True).weights
    for w, u in zip(weights, uint8):
        assert inits[w.name].data_type == onnx.TensorProto.INT8 and w.zero_point == 0
        layer = gm.get_submodule(w.name.removesuffix(".weight"))
        depthwise = 1 < getattr(layer, "groups", 1) == layer.in_channels == layer.out_channels
        assert u.zero_point == (128 if w.bits == 8 and not depthwise else 0)
        users = consumers[w.name]
        assert [u.op_type for u in users] == ["DequantizeLinear"]  # no Q or Clip on constant weights
        assert {a.name: a.i for a in users[0].attribute}.get("axis", 0) == 0
    biases = [i for name, i in inits.items() if name.endswith(".bias")]
    assert biases and all(b.data_type == onnx.TensorProto.INT32 for b in biases)
    quantize_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert not quantize_inputs & set(inits)
    assert "features.0.0" in {n.name for n in proto.graph.node}  # node names follow the PyTorch module names
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert proto.graph.input[0].name == "input" and proto.graph.output[0].name == "output"


def test_super_resolution_graph_takes_any_image_size() -> None:
    gm = prepared("espcn_tiny")
    built = build_graph(gm, sample("espcn_tiny", 1))
    x = torch.randn(1, 1, 21, 17)
    assert run_ort(built.model.SerializeToString(), x.numpy()).shape == (1, 1, 63, 51)
    assert _agreement(gm, built, built.model.SerializeToString(), x).ok()


class UserNet(nn.Module):
    """A user's own module with inline ops: functional ReLU, +, cat, pixel shuffle, max-pool, mean, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Conv2d(1, 8, 3, padding=1)
        self.up = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        y = torch.cat([a + self.b(x), torch.relu(a)], 1)
        y = self.pool(torch.nn.functional.pixel_shuffle(self.up(y), 2))
        return self.fc(y.mean((2, 3)))


def test_a_users_own_module_exports_and_agrees(tmp_path: Path) -> None:
    x = torch.randn(4, 1, 8, 8)
    gm = prepare_qat(UserNet().eval(), QuantConfig(wbits=4))
    calibrate(gm, [torch.randn(8, 1, 8, 8)])
    gm.eval()
    result = export_model(gm, x, tmp_path)
    assert _agreement(gm, build_graph(gm, x), str(result.standalone), x).ok()


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), "Upsample"),
        (nn.AdaptiveAvgPool2d(2), "adaptive average pooling"),
    ],
)
def test_an_unsupported_op_is_named(module: nn.Module, message: str, tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), module, nn.Conv2d(4, 2, 1))
    gm = prepare_qat(model, QuantConfig())
    calibrate(gm, [torch.randn(2, 1, 8, 8)])
    with pytest.raises(ToolchainError, match=message):
        export_model(gm.eval(), torch.randn(2, 1, 8, 8), tmp_path)
    assert not list(tmp_path.iterdir())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_is_deterministic(tmp_path: Path) -> None:
    gm = prepared("shufflenet_v2_tiny")
    x = sample("shufflenet_v2_tiny", 2)
    export_model(gm, x, tmp_path / "a", config={"k": 1})
    export_model(gm, x, tmp_path / "b", config={"k": 1})
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(["model.compressed.onnx", sidecar_in(tmp_path / "a").name, "model.onnx"])
    assert a == b


def test_a_failed_export_leaves_earlier_files_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gm = prepared("lenet5_tiny")
    x = sample("lenet5_tiny", 2)
    export_model(gm, x, tmp_path)
    before = _files(tmp_path)
    other = prepared("lenet5_tiny", wbits=2)  # different bytes, so a partial write would show

    real_fsync, calls = os.fsync, []

    def failing_fsync(fd: int) -> None:  # the disk fills up while the second file is staged
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        export_model(other, x, tmp_path)
    monkeypatch.undo()
    assert _files(tmp_path) == before  # no temporary left behind either


# A second export that is SIGKILLed at the rename of its graph, the pair's commit point.
KILLED_AT_COMMIT = """
import os, signal, sys
from exporters import export_model
from tests.exporters.helpers import prepared, sample
real = os.replace
def replace(src, dest):
    if str(dest).endswith(".compressed.onnx"):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dest)
os.replace = replace
export_model(prepared("lenet5_tiny", wbits=2), sample("lenet5_tiny", 2), sys.argv[1])
"""


def test_an_export_killed_before_its_commit_leaves_the_earlier_pair_whole(tmp_path: Path) -> None:
    """The new sidecar is already in place when the graph is renamed; the old graph must still find its own."""
    import runtime

    x = sample("lenet5_tiny", 2)
    export_model(prepared("lenet5_tiny"), x, tmp_path)
    first = runtime.load(tmp_path / "model.compressed.onnx").run(x.numpy())[0]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_COMMIT, str(tmp_path)], env=subprocess_env(), timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob("model.compressed.*.qsc"))) == 2  # the new sidecar landed, the graph did not
    assert list(tmp_path.glob(".model.compressed.onnx.*.tmp"))  # what the kill left behind
    np.testing.assert_array_equal(runtime.load(tmp_path / "model.compressed.onnx").run(x.numpy())[0], first)

    result = export_model(prepared("lenet5_tiny", wbits=2), x, tmp_path)  # the next export cleans up
    assert sidecar_in(tmp_path) == result.sidecar and not list(tmp_path.glob(".*.tmp"))
    second = runtime.load(tmp_path / "model.compressed.onnx").run(x.numpy())[0]
    assert not np.array_equal(second, first)


def test_sidecars_of_other_stems_and_unrelated_files_are_left_alone(tmp_path: Path) -> None:
    x = sample("lenet5_tiny", 2)
    export_model(prepared("lenet5_tiny"), x, tmp_path, stem="other")
    keep = {p.name: p.read_bytes() for p in tmp_path.iterdir()} | {"notes.qsc": b"mine", ".x.tmp": b"mine"}
    for name in ("notes.qsc", ".x.tmp"):
        (tmp_path / name).write_bytes(keep[name])
    (tmp_path / "model.compressed.qsc").write_bytes(b"an older export's fixed-name sidecar")
    export_model(prepared("lenet5_tiny"), x, tmp_path)
    assert not (tmp_path / "model.compressed.qsc").exists()
    assert all((tmp_path / name).read_bytes() == data for name, data in keep.items())


def test_sidecar_artefact_holds_the_standalone_weights(tmp_path: Path) -> None:
    gm = prepared("resnet20_tiny")
    x = sample("resnet20_tiny", 2)
    config = {"k": 1, "checkpoint_config": {"wbits": 4, "first_wbits": 8, "last_wbits": 8, "abits": 8}}
    result = export_model(gm, x, tmp_path, config=config)
    assert result.graph is not None and result.sidecar is not None
    standalone, graph = onnx.load(result.standalone), onnx.load(result.graph, load_external_data=False)
    side = result.sidecar.read_bytes()
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta[META_SIDECAR] == result.sidecar.name
    assert meta[META_SIDECAR_SHA256] == hashlib.sha256(side).hexdigest()

    index = parse_sidecar(side)
    # issue 31: no wbits (4, the inner layers') in the sidecar's header beside 8-bit records; the graph keeps them all
    assert index.config == {"k": 1, "checkpoint_config": {"abits": 8}} and b"wbits" not in side
    assert {r.bits for r in index.records} == {4, 8} and json.loads(meta[META_CONFIG]) == config
    full = {i.name: onnx.numpy_helper.to_array(i) for i in standalone.graph.initializer}
    empty = {i.name: i for i in graph.graph.initializer}
    assert {r.name for r in index.records} == {w.name for w in result.weights}
    for record in index.records:
        np.testing.assert_array_equal(index.decode(record), full[record.name])
        entry = empty[record.name]
        assert not entry.raw_data and entry.data_location == onnx.TensorProto.EXTERNAL
        assert list(entry.dims) == list(record.shape)
        assert entry.data_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(record.dtype))
    assert {r.dtype for r in index.records} == {"int8"}  # 4-bit inner layers, 8-bit first and last: int8 by default
    assert result.sidecar.stat().st_size < sum(full[r.name].size for r in index.records)  # coded < int8 levels

    onnx.checker.check_model(str(result.graph), full_check=True)
    with pytest.raises(Exception, match="out of bounds"):  # plain onnxruntime refuses the hollow graph
        ort.InferenceSession(str(result.graph), providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    keep = [ort.OrtValue.ortvalue_from_numpy(index.decode(r)) for r in index.records]
    for record, value in zip(index.records, keep):
        options.add_initializer(record.name, value)
    np.testing.assert_array_equal(run_ort(result.graph, x.numpy(), options), run_ort(result.standalone, x.numpy()))
    assert classify_kernels(optimized_graph(result.graph, options))["float"] == {}


def test_the_graphs_weight_records_are_the_sidecars_tensors(tmp_path: Path, monkeypatch) -> None:
    """Issue 31: ``WeightTensor`` and ``SidecarTensor`` carried the same seven fields, copied one at a time; now they
    are one type, and the export hands its weight records to the sidecar as they are."""
    import exporters.artefacts as artefacts
    from exporters.graph import WeightTensor
    from runtime.sidecar import SidecarTensor

    assert WeightTensor is SidecarTensor
    handed = []
    encode = artefacts.encode_sidecar
    monkeypatch.setattr(
        artefacts, "encode_sidecar", lambda tensors, *a, **k: handed.append(tensors) or encode(tensors, *a, **k)
    )
    result = export_model(prepared("lenet5_tiny"), sample("lenet5_tiny", 2), tmp_path)
    assert len(handed) == 1 and handed[0] is result.weights


@pytest.mark.parametrize("name", ALL_MODELS)
def test_sidecar_artefact_runs_bit_identical_to_the_standalone(name: str, tmp_path: Path) -> None:
    import runtime

    x = sample(name, 2, seed=3)
    result = export_model(prepared(name), x, tmp_path, "m")
    assert result.graph is not None
    packed, plain = runtime.load(result.graph), runtime.load(result.standalone)
    np.testing.assert_array_equal(packed.run(x.numpy())[0], plain.run(x.numpy())[0])

"""The graph half of docs/sidecar.md where issue 31's independent reader had to guess (item 5), each statement held
against the code: the hollow initializers' element type, check 8 (whose scale and zero-point count, of what shape),
the metadata order inside the graph's digest, and what must stay alive for an onnxruntime session."""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime
from runtime import ToolchainError
from runtime.scales import check_weight_scales
from runtime.session import META_GRAPH_SHA256
from runtime.sidecar import SidecarError, SidecarTensor, encode_sidecar, parse_sidecar
from tests.runtime.crafted import crafted_pair
from tests.runtime.helpers import sealed


def _load_graph(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)


@pytest.mark.parametrize("uint8", [False, True], ids=["int8", "uint8"])
def test_a_hollow_initializer_has_its_records_container_type(tmp_path: Path, uint8: bool) -> None:
    """§1: INT8, or UINT8 where the record's dtype is uint8; the other type is refused (check 5)."""
    path = crafted_pair(tmp_path, (4, 4), uint8=uint8)
    (weight,) = [i for i in _load_graph(path).graph.initializer if i.data_location == TensorProto.EXTERNAL]
    assert weight.data_type == (TensorProto.UINT8 if uint8 else TensorProto.INT8)
    assert runtime.load(path, containers="uint8").weights()["w"].dtype == (np.uint8 if uint8 else np.int8)
    graph = _load_graph(path)
    next(i for i in graph.graph.initializer if i.name == "w").data_type = (
        TensorProto.INT8 if uint8 else TensorProto.UINT8
    )
    path.write_bytes(sealed(graph))
    with pytest.raises(ToolchainError, match="sidecar declares u?int8"):
        runtime.load(path, containers="uint8")


def _per_channel() -> tuple[dict, np.ndarray]:
    """A 3-bit per-channel record (2 channels on axis 0, multiplier 21) and its float32 scale ``steps / 21``."""
    steps = np.array([0.5, 0.25], np.float32)
    levels = np.array([[1, -1, 3], [0, 2, -3]], np.int8)
    index = parse_sidecar(encode_sidecar([SidecarTensor("w", levels, 3, steps, 0, 21)], {}))
    return {r.name: r for r in index.records}, steps / np.float32(21)


def _dequantize(scale: np.ndarray, zero_point: np.ndarray | None, constant_scale: bool = False) -> onnx.ModelProto:
    inits = [] if constant_scale else [numpy_helper.from_array(scale, "s")]
    nodes = [helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(scale))] if constant_scale else []
    inputs = ["w", "s"]
    if zero_point is not None:
        inits.append(numpy_helper.from_array(zero_point, "z"))
        inputs.append("z")
    nodes.append(helper.make_node("DequantizeLinear", inputs, ["y"], axis=0))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    return helper.make_model(helper.make_graph(nodes, "g", [], [out], inits))


@pytest.mark.parametrize("shape", [(2,), (2, 1), (1, 2, 1)])
def test_check_8_takes_the_scale_and_zero_point_of_any_shape_flattened(shape: tuple[int, ...]) -> None:
    records, scale = _per_channel()
    check_weight_scales(_dequantize(scale.reshape(shape), np.zeros(shape, np.int8)), records)
    check_weight_scales(_dequantize(scale.reshape(shape), None), records)  # an int8 record's may be left out
    wrong = np.zeros(shape, np.int8).reshape(-1)
    wrong[-1] = 1  # every element of the zero-point is compared, not the first
    with pytest.raises(SidecarError, match="zero-point"):
        check_weight_scales(_dequantize(scale.reshape(shape), wrong.reshape(shape)), records)


def test_check_8_does_not_count_a_constant_node() -> None:
    """The scale must be an initializer of the top-level graph: the same values from a ``Constant`` node are refused."""
    records, scale = _per_channel()
    with pytest.raises(SidecarError, match="not a constant of the graph"):
        check_weight_scales(_dequantize(scale, None, constant_scale=True), records)


def test_the_digest_keeps_the_metadata_in_the_order_the_file_stores_it(tmp_path: Path) -> None:
    """§1: the digest removes its own entry and leaves the others as stored (a reader does not re-sort them)."""
    path = crafted_pair(tmp_path, (4, 4))
    graph = _load_graph(path)
    entries = [(p.key, p.value) for p in graph.metadata_props if p.key != META_GRAPH_SHA256]
    assert entries == sorted(entries)  # the writer's order

    def with_metadata(order: list[tuple[str, str]], digest: str) -> onnx.ModelProto:
        copy = onnx.ModelProto()
        copy.CopyFrom(graph)
        del copy.metadata_props[:]
        for key, value in order:
            copy.metadata_props.add(key=key, value=value)
        copy.metadata_props.add(key=META_GRAPH_SHA256, value=digest)
        return copy

    unsorted = entries[::-1]
    without_entry = with_metadata(unsorted, "")
    del without_entry.metadata_props[-1]
    by_spec = hashlib.sha256(without_entry.SerializeToString(deterministic=True)).hexdigest()
    path.write_bytes(with_metadata(unsorted, by_spec).SerializeToString())
    runtime.load(path)  # the digest of the stored order: accepted
    path.write_bytes(with_metadata(entries, by_spec).SerializeToString())
    with pytest.raises(ToolchainError, match="changed after export"):  # the same entries re-sorted: another digest
        runtime.load(path)


def test_a_loaded_model_keeps_the_ortvalues_themselves_alive(tmp_path: Path) -> None:
    """An ``OrtValue`` made inline in ``add_initializer`` and dropped leaves the session on freed memory: the model
    holds each decoded array *and* its ``OrtValue`` for the session's life."""
    import onnxruntime as ort

    model = runtime.load(crafted_pair(tmp_path, (4, 4)))
    ((array, value),) = model._initializers.values()
    assert isinstance(value, ort.OrtValue) and isinstance(array, np.ndarray)
    gc.collect()
    assert model.run(np.ones((1, 4), np.float32))[0].shape == (1, 4)

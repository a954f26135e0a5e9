"""Cases of ``benchmarks/fuzz_artefacts.py`` (issue 31, the larger campaign) that once crashed ``runtime.load`` with
an exception other than a ``ToolchainError``: each graph is edited, then resealed (its digest recomputed, as an
attacker who rewrites the file would), so that it reaches the checks behind the digest."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

import runtime
from runtime import ToolchainError
from tests.runtime.helpers import GRAPH, STEM, sealed, set_meta


def _graph(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)


def _weight_dequantizer(graph: onnx.ModelProto) -> onnx.NodeProto:
    hollow = {i.name for i in graph.graph.initializer if i.data_location == TensorProto.EXTERNAL}
    return next(n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in hollow)


def _activation_dequantizer(graph: onnx.ModelProto) -> onnx.NodeProto:
    weights = {i.name for i in graph.graph.initializer}
    return next(n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in weights)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_recorded_config_nested_thousands_deep_is_refused(copy: Path, depth: int) -> None:
    """graph-edits-resealed 324: ``json.loads`` raised RecursionError, which only ValueError was caught around."""
    set_meta(copy, "toolchain.config", '{"a": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(ToolchainError, match="not a JSON object"):
        runtime.load(copy / GRAPH)


@pytest.mark.parametrize("cleared", ["inputs", "outputs"])
@pytest.mark.parametrize("containers", ["auto", "uint8"])
def test_a_dequantize_node_without_inputs_or_outputs_is_refused(copy: Path, cleared: str, containers: str) -> None:
    """graph-bytes-resealed 103: the depthwise-weight scan read ``output[0]`` and ``input[0]`` of every
    DequantizeLinear (an IndexError), as did the rewrite of switched containers (``uint8``: the 8-bit weights
    switch) and the standalone graph's scan."""
    for name in (GRAPH, f"{STEM}.onnx"):
        graph = _graph(copy / name)
        node = _activation_dequantizer(graph)
        del (node.input if cleared == "inputs" else node.output)[:]
        (copy / name).write_bytes(sealed(graph))
        with pytest.raises(ToolchainError):
            runtime.load(copy / name, containers=containers)


@pytest.mark.parametrize("damage", ["dims its data cannot fill", "unknown element type"])
def test_a_weight_scale_that_is_not_a_valid_tensor_is_refused(copy: Path, damage: str) -> None:
    """graph-bytes-resealed 343 and 362: ``numpy_helper.to_array`` of a weight's scale raised ValueError (dims of
    10^52 elements over six floats) or KeyError (element type 67) from the scale cross-check."""
    graph = _graph(copy / GRAPH)
    scale_name = _weight_dequantizer(graph).input[1]
    scale = next(i for i in graph.graph.initializer if i.name == scale_name)
    if damage == "unknown element type":
        scale.data_type = 67
    else:
        del scale.dims[:]
        scale.dims.extend([417_484, 75_353, 7_509, 1_085] * 3)
    (copy / GRAPH).write_bytes(sealed(graph))
    with pytest.raises(ToolchainError, match="is not a valid tensor"):
        runtime.load(copy / GRAPH)


def test_onnxruntime_errors_quoting_names_from_the_file_stay_on_one_line(copy: Path) -> None:
    """graph-bytes-resealed 4785 and four more: onnxruntime's refusal quoted a damaged node name, newlines and all,
    into a ToolchainError of several lines; a hostile name could also carry terminal escapes."""
    graph = _graph(copy / GRAPH)
    node = _activation_dequantizer(graph)
    node.input[0] = "features\n\x1b[2J.out"
    (copy / GRAPH).write_bytes(sealed(graph))
    with pytest.raises(ToolchainError, match="onnxruntime cannot load") as refused:
        runtime.load(copy / GRAPH)
    assert "\n" not in str(refused.value) and "\x1b" not in str(refused.value)
    assert "features\\n\\x1b[2J.out" in str(refused.value)

"""The sidecar and the graph must describe the same weights: every hollow weight is dequantized with the sidecar's
scale.

A weight ``w`` lives in two places: its levels and steps in the sidecar, its ``DequantizeLinear`` scale, axis and
zero-point in the graph. The exporter writes both from one ``IntegerLayer``, with scale ``steps / multiplier``
computed in float32 (one IEEE division, so any reader gets the same bits). The SHA-256 records bind the two files
together but cannot tell whether they agree; :func:`check_weight_scales` does, so an exporter bug or a hand-edited
pair is refused instead of running with weights off by a factor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sidecar import SidecarError, TensorRecord

__all__ = ["check_weight_scales", "expected_scale"]


def expected_scale(record: TensorRecord) -> np.ndarray:
    """The graph's scale for ``record``: ``steps / multiplier`` in float32."""
    return (record.steps / np.float32(record.multiplier)).astype(np.float32)


def check_weight_scales(graph: Any, records: dict[str, TensorRecord]) -> None:
    """Every node that reads a hollow weight (subgraphs included) must be a ``DequantizeLinear`` taking it as its
    first input, with the sidecar's scale (bit for bit), its axis and its container's zero-point (0 or 128).

    Raises:
        SidecarError: naming the weight and what differs.
    """
    import onnx
    from onnx import numpy_helper

    constants = {i.name: i for i in graph.graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL}
    readers: dict[str, int] = dict.fromkeys(records, 0)

    def visit(g: Any) -> None:
        for node in g.node:
            for position, name in enumerate(node.input):
                if name not in records:
                    continue
                if node.op_type != "DequantizeLinear" or position != 0:
                    raise SidecarError(f"weight {name!r} is read by {node.op_type} {node.name!r}, not dequantized")
                _check_node(node, records[name], constants, numpy_helper)
                readers[name] += 1
            for attr in node.attribute:
                if attr.HasField("g") or len(attr.graphs):  # checked first: building attr.g is slow
                    for sub in [attr.g, *attr.graphs]:
                        if sub.ByteSize():
                            visit(sub)

    visit(graph.graph)
    unread = [name for name, count in readers.items() if count == 0]
    if unread:
        raise SidecarError(f"weights {unread[:3]} are in the sidecar but no DequantizeLinear of the graph reads them")


def _check_node(node: Any, record: TensorRecord, constants: dict[str, Any], numpy_helper: Any) -> None:
    where = f"weight {record.name!r} ({node.op_type} {node.name!r})"

    def constant(position: int) -> np.ndarray | None:
        if len(node.input) <= position or not node.input[position]:
            return None
        if node.input[position] not in constants:
            raise SidecarError(f"{where}: input {node.input[position]!r} is not a constant of the graph")
        try:
            return numpy_helper.to_array(constants[node.input[position]])
        except MemoryError:
            raise
        except Exception as e:  # dims that its data cannot fill, an unknown element type: onnx raises many types
            raise SidecarError(
                f"{where}: input {node.input[position]!r} is not a valid tensor ({type(e).__name__}: {str(e)[:80]})"
            ) from None

    scale, zero_point = constant(1), constant(2)
    expected = expected_scale(record)
    if scale is None or scale.dtype != np.float32 or scale.size != expected.size:
        raise SidecarError(f"{where}: the graph's scale does not have the sidecar's {expected.size} float32 steps")
    if not np.array_equal(scale.reshape(-1).view(np.uint32), expected.view(np.uint32)):
        worst = float(np.max(np.abs(scale.reshape(-1) / expected - 1)))
        raise SidecarError(
            f"{where}: the graph's scale differs from the sidecar's steps / multiplier (by up to {worst:.3g} "
            "relative); graph and sidecar describe different weights"
        )
    if zero_point is None:  # DequantizeLinear's default: 0
        matches = record.zero_point == 0
    else:
        matches = zero_point.dtype == np.dtype(record.dtype) and bool(np.all(zero_point == record.zero_point))
    if not matches:
        raise SidecarError(f"{where}: the graph's zero-point is not the sidecar's {record.dtype} {record.zero_point}")
    if record.axis is not None:
        axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 1)
        if axis % len(record.shape) != record.axis:
            raise SidecarError(f"{where}: the graph dequantizes along axis {axis}, the sidecar's steps are on axis "
                               f"{record.axis}")  # fmt: skip

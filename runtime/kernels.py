"""Which kernels onnxruntime actually runs: the fixed-point check (onnx and onnxruntime only).

onnxruntime's graph optimizer rewrites each ``DequantizeLinear → op → QuantizeLinear`` group of a QDQ graph into an
integer kernel (``QLinearConv``, ``QGemm``, ``QLinearAdd``, ...) when it can. Whether it did is visible only in the
optimized graph, which :func:`optimized_graph` obtains through ``SessionOptions.optimized_model_filepath``;
:func:`classify_kernels` sorts its nodes into integer kernels, float compute kernels (convolutions and matrix
products left in float: the thing to avoid) and float elementwise ops, and names every **float island**: a node
that computes in float between a ``DequantizeLinear`` and a ``QuantizeLinear`` because onnxruntime has no integer
kernel for it (a Hardswish, a LayerNorm, an erf), while its neighbours stay integer. Pure data movement (reshape,
transpose, concat, max-pool, clip) is not counted: it moves or selects values without arithmetic.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = [
    "FLOAT_COMPUTE_OPS",
    "FLOAT_ELEMENTWISE_OPS",
    "INTEGER_OPS",
    "MOVEMENT_OPS",
    "classify_kernels",
    "describe_kernels",
    "optimized_graph",
]

INTEGER_OPS = frozenset(
    {
        "QLinearConv",
        "QLinearMatMul",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
        "QLinearConcat",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearLeakyRelu",
        "QLinearSigmoid",
        "QLinearSoftmax",
        "QLinearWhere",
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
    }
)
FLOAT_COMPUTE_OPS = frozenset({"Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"})
FLOAT_ELEMENTWISE_OPS = frozenset(
    {"Add", "Sub", "Mul", "Div", "Sum", "AveragePool", "GlobalAveragePool", "ReduceMean", "Resize"}
)


# Ops that only move, select or bound values, and the quantization boundaries themselves: never a float island.
MOVEMENT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "Reshape",
        "Transpose",
        "Flatten",
        "Split",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "DepthToSpace",
        "SpaceToDepth",
        "Gather",
        "Slice",
        "Concat",
        "MaxPool",
        "Clip",
        "Shape",
        "Cast",
    }
)


def optimized_graph(model: str | Path | bytes, session_options: Any = None, providers: list[str] | None = None) -> Any:
    """The graph onnxruntime runs after its optimizations (an ``onnx.ModelProto``) for ``model``. The session is
    never run, so it packs no weights for its kernels: a packed copy of every weight (a second model, in memory) is
    what the check used to cost."""
    import onnx
    import onnxruntime as ort

    options = session_options or ort.SessionOptions()
    options.log_severity_level = 3  # the "hardware-specific optimizations" notice is expected here
    options.add_session_config_entry("session.disable_prepacking", "1")
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        source = model if isinstance(model, bytes) else str(model)
        ort.InferenceSession(source, options, providers=providers or ["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath, load_external_data=False)


def classify_kernels(graph: Any) -> dict[str, dict[str, Any]]:
    """Counts of integer kernels, float compute kernels and float elementwise ops, by op type; and the float
    islands, node name → op type (names are those of the exported graph, i.e. the PyTorch module names, or the
    optimizer's for nodes it made)."""
    nodes = list(graph.graph.node)
    counts = Counter(node.op_type for node in nodes)
    islands = {
        node.name or f"({node.op_type} → {node.output[0]})": node.op_type
        for node in nodes
        if node.op_type not in INTEGER_OPS and node.op_type not in MOVEMENT_OPS
    }
    return {
        "integer": {k: v for k, v in counts.items() if k in INTEGER_OPS},
        "float": {k: v for k, v in counts.items() if k in FLOAT_COMPUTE_OPS},
        "float_elementwise": {k: v for k, v in counts.items() if k in FLOAT_ELEMENTWISE_OPS},
        "float_islands": islands,
    }


def describe_kernels(kernels: dict[str, dict[str, Any]]) -> str:
    """Three lines for people: the integer kernels, the float convolutions/matrix products left (ideally none) and
    the float islands by node name."""

    def listing(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

    integer, floating = listing(kernels["integer"]), listing(kernels["float"])
    islands = kernels.get("float_islands", {})
    shown = ", ".join(f"{op} {name}" for name, op in list(islands.items())[:8])
    more = f", … ({len(islands)} in all)" if len(islands) > 8 else ""
    return (
        f"integer kernels: {integer}\nfloat convolutions/matrix products: {floating}\n"
        f"float islands (no integer kernel in onnxruntime): {shown + more if islands else 'none'}"
    )

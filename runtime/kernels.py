"""Which kernels onnxruntime actually runs: the fixed-point check (onnx and onnxruntime only).

onnxruntime's graph optimizer rewrites each ``DequantizeLinear → op → QuantizeLinear`` group of a QDQ graph into an
integer kernel (``QLinearConv``, ``QGemm``, ``QLinearAdd``, ...) when it can. Whether it did is visible only in the
optimized graph, which :func:`optimized_graph` obtains through ``SessionOptions.optimized_model_filepath``;
:func:`classify_kernels` sorts its nodes into integer kernels, float compute kernels (convolutions and matrix
products left in float: the thing to avoid) and float elementwise ops.
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
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
    }
)
FLOAT_COMPUTE_OPS = frozenset({"Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"})
FLOAT_ELEMENTWISE_OPS = frozenset(
    {"Add", "Sub", "Mul", "Div", "Sum", "AveragePool", "GlobalAveragePool", "ReduceMean", "Resize"}
)


def optimized_graph(model: str | Path | bytes, session_options: Any = None, providers: list[str] | None = None) -> Any:
    """The graph onnxruntime runs after its optimizations (an ``onnx.ModelProto``) for ``model``."""
    import onnx
    import onnxruntime as ort

    options = session_options or ort.SessionOptions()
    options.log_severity_level = 3  # the "hardware-specific optimizations" notice is expected here
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        source = model if isinstance(model, bytes) else str(model)
        ort.InferenceSession(source, options, providers=providers or ["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath, load_external_data=False)


def classify_kernels(graph: Any) -> dict[str, dict[str, int]]:
    """Counts of integer kernels, float compute kernels and float elementwise ops, by op type."""
    counts = Counter(node.op_type for node in graph.graph.node)
    return {
        "integer": {k: v for k, v in counts.items() if k in INTEGER_OPS},
        "float": {k: v for k, v in counts.items() if k in FLOAT_COMPUTE_OPS},
        "float_elementwise": {k: v for k, v in counts.items() if k in FLOAT_ELEMENTWISE_OPS},
    }


def describe_kernels(kernels: dict[str, dict[str, int]]) -> str:
    """Two lines for people: the integer kernels, and the float convolutions/matrix products left (ideally none)."""

    def listing(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

    integer, floating = listing(kernels["integer"]), listing(kernels["float"])
    return f"integer kernels: {integer}\nfloat convolutions/matrix products: {floating}"

"""The emitter of float islands: an op ``prepare_qat`` had no rule for, spliced in from torch's own ONNX export.

:func:`models.quant.islands.island_onnx` exports the island's module alone at the shapes the builder recorded. Its
nodes, constants and parameters (a PReLU's slopes, a GroupNorm's scale and shift) join the graph in float under the
island's name (``<layer>/<node>``), so :func:`runtime.kernels.classify_kernels` lists them by layer. Its inputs are
the dequantized tensors the builder already holds; its output is quantized by the activation quantizer that
``prepare_qat`` put after it.
"""

from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs
import torch
import torch.fx as fx

from models.quant.islands import island_onnx
from runtime import ToolchainError

from .context import ExportContext

__all__ = ["emit_island"]


def emit_island(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    name = str(node.target)
    sources = [a for a in node.args if isinstance(a, fx.Node)]
    examples = [torch.zeros(ctx.shape_of(a), dtype=a.meta["tensor_meta"].dtype) for a in sources]
    sub = gs.import_onnx(island_onnx(module, examples, name))
    if len(sub.outputs) != 1 or len(sub.inputs) != len(sources):
        raise ToolchainError(f"float island {name!r}: expected {len(sources)} inputs and 1 output in its ONNX form")
    outer = {id(var): ctx.values[a] for var, a in zip(sub.inputs, sources)}
    for tensor in sub.tensors().values():
        if id(tensor) not in outer:
            tensor.name = f"{name}/{tensor.name}"
    for i, inner in enumerate(sub.nodes):
        inner.name = f"{name}/{(inner.name or f'{inner.op}_{i}').lstrip('/')}"
        for j, var in enumerate(inner.inputs):
            if id(var) in outer:
                inner.inputs[j] = outer[id(var)]
    ctx.nodes.extend(sub.nodes)
    return sub.outputs[0]

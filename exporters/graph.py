"""Build a QDQ ONNX graph from a model returned by ``prepare_qat``, with onnx-graphsurgeon.

The prepared model is a ``torch.fx.GraphModule`` whose every activation tensor passes through exactly one
``ActQuant``. The builder walks its nodes in order and asks the op registry (:mod:`exporters.ops`) to emit each one;
what it tracks on the way is, for every fx value, the ONNX tensor that holds it and, where the value is on a
quantization grid, that grid (step and signedness). The conventions (DESIGN.md §3):

* an activation quantizer with step Δ becomes ``QuantizeLinear(x, Δ, zp) → DequantizeLinear`` in a uint8
  container: zero-point 0 after ReLU, 128 where signed (the levels −128..127 exactly, as int8 would hold them).
  One container type for every activation matters: onnxruntime fuses a Conv/Add/Concat into its integer kernel
  only when its quantized inputs and output share a type, and a mix of int8 and uint8 leaves e.g. every
  MobileNetV2 projection convolution (uint8 in, signed out) in float. A ``Clip`` precedes the quantizer only when
  the bit-width is below 8 (the 8-bit container would not clip for us);
* a weighted layer gets int8 levels → ``DequantizeLinear`` (per-channel axis where per-channel), int32 bias with
  scale ``s_in · s_w`` and zero-point 0, batch norm folded (``freeze``); no QuantizeLinear or Clip on constants;
* an op that only moves or selects values (reshape, transpose, split, max-pool, depth-to-space) keeps its input's
  grid, and the builder re-quantizes its output onto that same grid (a lossless Q/DQ pair) so that every integer
  op downstream sees a ``DequantizeLinear`` directly and onnxruntime can fuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
import torch.fx as fx
from torch.fx.passes.shape_prop import ShapeProp

from models.quant.freeze import FrozenModel, freeze
from runtime import ToolchainError

from .context import ExportContext, Grid, WeightTensor
from .ops import emit

__all__ = ["OPSET", "BuiltGraph", "ExportContext", "Grid", "WeightTensor", "build_graph"]

OPSET = 17
PRODUCER = "sparse-lowbit-toolchain"


@dataclass(frozen=True)
class BuiltGraph:
    """The standalone QDQ model and the integer facts behind it."""

    model: onnx.ModelProto
    weights: list[WeightTensor]  # every int8 weight initializer, in graph order
    layers: dict[str, Any]  # module name -> folding.IntegerLayer
    frozen: FrozenModel


def build_graph(
    gm: fx.GraphModule,
    example: torch.Tensor,
    name: str = "model",
    frozen: FrozenModel | None = None,
    uint8_weights: bool = False,
) -> BuiltGraph:
    """The standalone QDQ model of ``gm`` (weights embedded), its weight tensors and integer layers.

    ``example`` is one input batch; its shape fixes the channel count and, for models whose ops depend on it
    (flatten, reshape), the spatial size. The batch dimension is always dynamic (``N``). ``uint8_weights`` stores
    8-bit weights in uint8 containers instead of int8 (see ``folding.container_zero_point``).
    """
    gm = gm.eval()
    frozen = frozen or freeze(gm)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.cat([example[:1]] * 2).float().cpu())
    ctx = ExportContext(gm, frozen, uint8_weights=uint8_weights)
    inputs: list[gs.Variable] = []
    outputs: list[gs.Variable] = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            var = gs.Variable("input" if not inputs else f"input{len(inputs)}", dtype=np.float32)
            inputs.append(var)
            ctx.values[node] = var
        elif node.op == "output":
            outputs = _collect_outputs(ctx, node)
        elif node.op == "get_attr":  # a learned tensor such as a position embedding: a float constant, quantized after
            ctx.values[node] = ctx.const(str(node.target), _attribute(gm, str(node.target)))
        else:
            emit(ctx, node)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for var, shape in zip(inputs, [ctx.shape_of(n) for n in placeholders]):
        var.shape = _symbolic(shape, ctx.fixed_spatial, "H", "W")
    for var, shape in zip(outputs, _output_shapes(gm)):
        var.shape = _symbolic(shape, ctx.fixed_spatial, "H_out", "W_out")
    graph = gs.Graph(nodes=ctx.nodes, inputs=inputs, outputs=outputs, name=name, opset=OPSET, producer_name=PRODUCER)
    graph.cleanup().toposort()
    model = gs.export_onnx(graph)
    model.ir_version = 8
    model.producer_version = _version()
    return BuiltGraph(model, ctx.weights, ctx.layers, frozen)


def _attribute(gm: fx.GraphModule, target: str) -> np.ndarray:
    value: Any = gm
    for part in target.split("."):
        value = getattr(value, part)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ToolchainError(f"attribute {target!r} is not a float tensor; only float parameters and buffers export")
    return value.detach().cpu().float().numpy()


def _symbolic(shape: tuple[int, ...], fixed: bool, h: str, w: str) -> list[int | str]:
    """Batch dimension ``N``; spatial dimensions symbolic too unless an op fixed them."""
    return ["N", *shape[1:]] if fixed or len(shape) != 4 else ["N", shape[1], h, w]


def _output_shapes(gm: fx.GraphModule) -> list[tuple[int, ...]]:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    args: Any = out.args[0]
    results = args if isinstance(args, list | tuple) else [args]
    return [tuple(int(d) for d in a.meta["tensor_meta"].shape) for a in results]


def _collect_outputs(ctx: ExportContext, node: fx.Node) -> list[gs.Variable]:
    args: Any = node.args[0]
    results = list(args) if isinstance(args, list | tuple) else [args]
    outputs = []
    for i, r in enumerate(results):
        src = ctx.values[r]
        out = gs.Variable("output" if len(results) == 1 else f"output{i}", dtype=np.float32)
        ctx.nodes.append(gs.Node("Identity", name=out.name, inputs=[src], outputs=[out]))
        outputs.append(out)
    return outputs


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PRODUCER)
    except PackageNotFoundError:
        return "0"

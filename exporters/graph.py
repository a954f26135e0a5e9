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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
import torch.fx as fx
from torch.fx.passes.shape_prop import ShapeProp

from runtime import ToolchainError
from toolchain.quant.freeze import FrozenModel, freeze

__all__ = ["OPSET", "BuiltGraph", "ExportContext", "Grid", "WeightTensor", "build_graph"]

OPSET = 17
PRODUCER = "sparse-lowbit-toolchain"


@dataclass(frozen=True)
class Grid:
    """A quantization grid: values are ``step · k`` with integer ``k`` in the container type."""

    step: np.float32
    signed: bool

    @property
    def zero_point(self) -> np.ndarray:
        """uint8 container for both: zero-point 128 holds the signed levels −128..127 exactly."""
        return np.array(128 if self.signed else 0, dtype=np.uint8)


@dataclass(frozen=True)
class WeightTensor:
    """An int8 weight initializer of the exported graph: ``weight = levels · steps`` along ``axis``.

    The graph stores ``levels · multiplier`` with scale ``steps / multiplier`` (see ``ops.container_multiplier``).
    """

    name: str
    levels: np.ndarray
    steps: np.ndarray
    axis: int | None
    bits: int
    multiplier: int = 1


@dataclass(frozen=True)
class BuiltGraph:
    """The standalone QDQ model and the integer facts behind it."""

    model: onnx.ModelProto
    weights: list[WeightTensor]  # every int8 weight initializer, in graph order
    layers: dict[str, Any]  # module name -> folding.IntegerLayer
    frozen: FrozenModel


@dataclass
class ExportContext:
    """What the op emitters read and write while the graph is built."""

    gm: fx.GraphModule
    frozen: FrozenModel
    nodes: list[gs.Node] = field(default_factory=list)
    values: dict[fx.Node, Any] = field(default_factory=dict)  # gs.Variable, a list of them (split), or None
    grids: dict[fx.Node, Grid] = field(default_factory=dict)
    weights: list[WeightTensor] = field(default_factory=list)
    layers: dict[str, Any] = field(default_factory=dict)  # module name -> folding.IntegerLayer
    fixed_spatial: bool = False  # set by ops whose attributes bake in the spatial size (reshape)

    def tensor(self, name: str) -> gs.Variable:
        return gs.Variable(name, dtype=np.float32)

    def const(self, name: str, value: np.ndarray) -> gs.Constant:
        return gs.Constant(name, np.array(value, order="C"))  # (ascontiguousarray would turn 0-d into 1-d)

    def op(self, op: str, name: str, inputs: list[Any], attrs: dict[str, Any] | None = None, outputs: int = 1) -> Any:
        """Append a node; returns its output variable (or a list of them when ``outputs > 1``)."""
        outs = [self.tensor(f"{name}.out" if outputs == 1 else f"{name}.out{i}") for i in range(outputs)]
        self.nodes.append(gs.Node(op, name=name, attrs=attrs or {}, inputs=inputs, outputs=outs))
        return outs[0] if outputs == 1 else outs

    def quantize(self, x: gs.Variable, grid: Grid, name: str) -> gs.Variable:
        """``DequantizeLinear(QuantizeLinear(x))`` on ``grid``."""
        scale = self.const(f"{name}.scale", np.asarray(grid.step, dtype=np.float32))
        zp = self.const(f"{name}.zero_point", grid.zero_point)
        q = self.op("QuantizeLinear", f"{name}.quantize", [x, scale, zp])
        q.dtype = np.uint8
        return self.op("DequantizeLinear", f"{name}.dequantize", [q, scale, zp])

    def grid_of(self, node: Any, user: str) -> Grid:
        if not isinstance(node, fx.Node) or node not in self.grids:
            raise ToolchainError(f"{user}: its input {node} is not quantized, so no integer kernel can run it")
        return self.grids[node]

    def shape_of(self, node: Any) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ToolchainError(f"no shape recorded for node {node.name}")
        return tuple(int(d) for d in meta.shape)


def _readable(name: str) -> str:
    return name.replace("_aq", ".act") if name.endswith("_aq") else name


def build_graph(
    gm: fx.GraphModule, example: torch.Tensor, name: str = "model", frozen: FrozenModel | None = None
) -> BuiltGraph:
    """The standalone QDQ model of ``gm`` (weights embedded), its int8 weight tensors and integer layers.

    ``example`` is one input batch; its shape fixes the channel count and, for models whose ops depend on it
    (flatten, reshape), the spatial size. The batch dimension is always dynamic (``N``).
    """
    from .ops import emit  # the registry imports this module for ExportContext

    gm = gm.eval()
    frozen = frozen or freeze(gm)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.cat([example[:1]] * 2).float().cpu())
    ctx = ExportContext(gm, frozen)
    inputs: list[gs.Variable] = []
    outputs: list[gs.Variable] = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            var = gs.Variable("input" if not inputs else f"input{len(inputs)}", dtype=np.float32)
            inputs.append(var)
            ctx.values[node] = var
        elif node.op == "output":
            outputs = _collect_outputs(ctx, node)
        elif node.op == "get_attr":
            raise ToolchainError(f"node {node.name} reads a tensor attribute {node.target!r}; only layers export")
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

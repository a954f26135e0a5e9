"""What the op emitters of :mod:`exporters.ops` share with the graph builder (:mod:`exporters.graph`).

The builder walks the prepared model's nodes and hands each to an emitter together with an :class:`ExportContext`:
the ONNX nodes emitted so far, the ONNX value and quantization :class:`Grid` of every fx value, and the int8
:class:`WeightTensor` initializers. Both modules import this one, so neither imports the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs
import torch.fx as fx

from models.quant.freeze import FrozenModel
from runtime import ToolchainError
from runtime.sidecar import SidecarTensor

__all__ = ["ExportContext", "Grid", "WeightTensor", "quantizer_output", "readable"]


@dataclass(frozen=True)
class Grid:
    """A quantization grid: values are ``step · k`` with integer ``k`` in the container type."""

    step: np.float32
    signed: bool

    @property
    def zero_point(self) -> np.ndarray:
        """uint8 container for both: zero-point 128 holds the signed levels −128..127 exactly."""
        return np.array(128 if self.signed else 0, dtype=np.uint8)


# A weight initializer of the exported graph, ``weight = levels · steps`` along ``axis``: the very record the sidecar
# codes (one type, handed to ``encode_sidecar`` as it is; build it with keywords).
WeightTensor = SidecarTensor


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
    uint8_weights: bool = False  # 8-bit weights in uint8 containers (folding.container_zero_point)

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


def readable(name: str) -> str:
    """The ONNX name stem of an fx node or module: the quantizer `<value>_aq` of ``prepare_qat`` is `<value>.act`."""
    return name.replace("_aq", ".act") if name.endswith("_aq") else name


def quantizer_output(module: str) -> str:
    """The ONNX tensor that holds the dequantized output of the activation quantizer ``module`` (see ``quantize``)."""
    return f"{readable(module)}.dequantize.out"

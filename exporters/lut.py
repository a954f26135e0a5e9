"""Lookup tables: a unary elementwise op between two quantizers of at most 8 bits runs on the integers.

Its input takes at most 256 values, so the whole op (the function and the output quantizer's rounding and clipping)
is a table of 256 output levels: ``QuantizeLinear → Cast → Gather(table) → DequantizeLinear``. onnxruntime then
keeps the producer's integer kernel (its quantized output feeds the ``Cast``) and the consumer's (it reads the
``DequantizeLinear``), where the float form, ``DequantizeLinear → HardSwish → QuantizeLinear``, costs a float pass
over the tensor and has no integer kernel in onnxruntime for Hardswish, Hardsigmoid, SiLU, GELU, Tanh, ELU, erf or
exp. The table is computed with the prepared model's own modules (the op, then the output quantizer), so it
reproduces the PyTorch model of the export exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from models.quant.islands import FloatIsland
from models.quant.prepare import ActQuant

from .context import ExportContext, readable

__all__ = ["emit_lut"]

# Unary elementwise ops, by module type, function and tensor-method name (Sigmoid and LeakyReLU are left out:
# onnxruntime has QLinearSigmoid and QLinearLeakyRelu for them).
LUT_MODULES = (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Tanh, nn.ELU, nn.CELU, nn.SELU, nn.Mish,
               nn.Softplus, nn.Hardtanh)  # fmt: skip
LUT_FUNCTIONS = {F.hardswish, F.hardsigmoid, F.silu, F.gelu, torch.tanh, F.elu, F.celu, F.selu, F.mish, F.softplus,
                 F.hardtanh, torch.clamp, torch.erf, torch.exp}  # fmt: skip
LUT_METHODS = {"tanh", "clamp", "exp"}


def emit_lut(ctx: ExportContext, node: fx.Node, module: Any) -> Any:
    """The uint8 levels of ``node`` by table lookup, registered for its output quantizer; ``None`` (nothing emitted)
    when ``node`` is not a unary elementwise op between two quantizers of at most 8 bits."""
    function = _function(node, module)
    src = node.args[0] if node.args else None
    users = list(node.users)
    if function is None or len(node.all_input_nodes) != 1 or not isinstance(src, fx.Node) or len(users) != 1:
        return None
    q_in, q_out = _quantizer(ctx, src), _quantizer(ctx, users[0])
    levels = _levels_of(ctx.values.get(src))
    if q_in is None or q_out is None or levels is None or q_in.bits > 8 or src not in ctx.grids:
        return None
    name = readable(str(node.target) if node.op == "call_module" else node.name)
    table = _table(function, q_in, q_out)
    index = ctx.op("Cast", f"{name}.index", [levels], {"to": onnx.TensorProto.INT32})
    index.dtype = np.int32
    out = ctx.op("Gather", f"{name}.lut", [ctx.const(f"{name}.table", table), index], {"axis": 0})
    out.dtype = np.uint8
    ctx.prequantized[users[0]] = out
    return out


def _function(node: fx.Node, module: Any) -> Any:
    """``f(x)`` for a tensor ``x``, with the node's constant arguments bound; ``None`` if not a unary elementwise op."""
    rest, kwargs = node.args[1:], dict(node.kwargs)
    if node.op == "call_module":
        island = isinstance(module, FloatIsland) and not isinstance(module.target, str)
        if isinstance(module, LUT_MODULES) or (island and module.target in LUT_FUNCTIONS):
            return module
        if isinstance(module, FloatIsland) and module.target in LUT_METHODS:
            return module
        return None
    if node.op == "call_function" and node.target in LUT_FUNCTIONS:
        return lambda x: node.target(x, *rest, **kwargs)  # type: ignore[operator]
    if node.op == "call_method" and node.target in LUT_METHODS:
        return lambda x: getattr(x, str(node.target))(*rest, **kwargs)
    return None


def _quantizer(ctx: ExportContext, node: fx.Node) -> ActQuant | None:
    if node.op != "call_module":
        return None
    module = ctx.gm.get_submodule(str(node.target))
    return module if isinstance(module, ActQuant) and module.bits <= 8 else None


def _levels_of(value: Any) -> gs.Variable | None:
    """The uint8 tensor behind a dequantized value (the ``DequantizeLinear``'s input), if it is one."""
    if not isinstance(value, gs.Variable) or len(value.inputs) != 1 or value.inputs[0].op != "DequantizeLinear":
        return None
    levels = value.inputs[0].inputs[0]
    return levels if levels.dtype == np.uint8 else None


@torch.no_grad()
def _table(function: Any, q_in: ActQuant, q_out: ActQuant) -> np.ndarray:
    """Output level (in the uint8 container) for each of the 256 input container values."""
    zp_in, zp_out = (128 if q_in.signed else 0), (128 if q_out.signed else 0)
    x = (torch.arange(256, dtype=torch.float32) - zp_in) * q_in.step().float().reshape(())
    step_out = q_out.step().float().reshape(())
    y = q_out.eval()(function(x).float())
    return (torch.round(y / step_out) + zp_out).clamp(0, 255).to(torch.uint8).numpy()

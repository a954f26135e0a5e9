"""The op registry: how each fx node of a prepared model becomes ONNX nodes.

Three tables, keyed like ``models.quant.prepare``'s rules: by module type, by function, by tensor-method name.
An entry is an emitter ``fn(ctx, node, inputs, module) -> value`` and whether the op *keeps its input's grid*
(pure data movement or max): the builder then re-quantizes the result onto that grid so that integer kernels
downstream see a ``DequantizeLinear`` directly. A layer with no entry is a float island (:mod:`exporters.islands`);
``prepare_qat`` wraps functions and methods without a rule as such layers, so any other node without an entry is an
error naming the op.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantConvTranspose2d, QuantLinear
from torch import nn

from models.layers import Add, ChannelShuffle, Concat
from models.quant.prepare import ActQuant
from models.quant.quantizers import act_levels
from runtime import ToolchainError

from .context import ExportContext, Grid, WeightTensor, readable
from .deconv import subpixel_supported, subpixel_weights
from .folding import IntegerLayer, integer_layer
from .islands import emit_island

__all__ = ["FUNCTION_OPS", "METHOD_OPS", "MODULE_OPS", "OpEntry", "emit"]

Emitter = Callable[[ExportContext, fx.Node, list[Any], Any], Any]


@dataclass(frozen=True)
class OpEntry:
    """``keeps_grid``: the output lies on the input's grid; ``requantize``: emit a lossless Q/DQ pair after it."""

    fn: Emitter
    keeps_grid: bool = False
    requantize: bool = True


def emit(ctx: ExportContext, node: fx.Node) -> None:
    """Emit ``node``: look it up, run its emitter, record its value and (for grid-keeping ops) its grid."""
    module = ctx.gm.get_submodule(str(node.target)) if node.op == "call_module" else None
    entry = _lookup(node, module)
    inputs = [ctx.values.get(a) if isinstance(a, fx.Node) else a for a in _args(node)]
    value = entry.fn(ctx, node, inputs, module)
    src = _args(node)[0] if _args(node) else None
    if entry.keeps_grid and isinstance(src, fx.Node) and src in ctx.grids and value is not None:
        grid = ctx.grids[src]
        ctx.grids[node] = grid
        if not entry.requantize:
            pass
        elif not isinstance(value, list):
            value = ctx.quantize(value, grid, readable(node.name))
        else:
            value = [ctx.quantize(v, grid, f"{readable(node.name)}.{i}") for i, v in enumerate(value)]
    ctx.values[node] = value


def _lookup(node: fx.Node, module: Any) -> OpEntry:
    if node.op == "call_module":
        return MODULE_OPS.get(type(module), _ISLAND)  # a layer without a rule is a float island
    if node.op == "call_function":
        entry = FUNCTION_OPS.get(node.target)
        if entry is None:
            name = getattr(node.target, "__name__", str(node.target))
            raise ToolchainError(f"cannot export operation {name} (node {node.name})")
        return entry
    entry = METHOD_OPS.get(str(node.target))
    if entry is None:
        raise ToolchainError(f"cannot export tensor method .{node.target}() (node {node.name})")
    return entry


def _args(node: fx.Node) -> tuple[Any, ...]:
    """The node's positional arguments, untyped (fx's ``Argument`` union is too wide to be useful here)."""
    return tuple(node.args)


def _arg(node: fx.Node, index: int, key: str, default: Any = None) -> Any:
    if len(_args(node)) > index:
        return _args(node)[index]
    return node.kwargs.get(key, default)


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _name(node: fx.Node) -> str:
    return str(node.target) if node.op == "call_module" else node.name


# ---------------------------------------------------------------------------------------------------------------
# Quantization: activation quantizers and weighted layers.


def _act_quant(ctx: ExportContext, node: fx.Node, inputs: list[Any], q: ActQuant) -> Any:
    meta = node.meta.get("tensor_meta")
    if meta is not None and not meta.dtype.is_floating_point:  # a mask or indices pass unquantized (ActQuant too)
        return inputs[0]
    frozen = ctx.frozen.acts[str(node.target)]
    grid = Grid(np.float32(frozen.step), frozen.signed)
    lo, hi = act_levels(frozen.bits, frozen.signed)
    x, name = inputs[0], readable(str(node.target))
    if frozen.bits < 8:  # the 8-bit container clips only at its own range
        lo_c = ctx.const(f"{name}.clip_min", np.asarray(lo * grid.step, np.float32))
        hi_c = ctx.const(f"{name}.clip_max", np.asarray(hi * grid.step, np.float32))
        x = ctx.op("Clip", f"{name}.clip", [x, lo_c, hi_c])
    ctx.grids[node] = grid
    return ctx.quantize(x, grid, name)


_WEIGHT_AXIS = {QuantConv2d: 0, QuantConvTranspose2d: 1, QuantLinear: 0}


def _weighted(ctx: ExportContext, node: fx.Node, inputs: list[Any], layer: Any) -> Any:
    """Conv/Gemm with DequantizeLinear'd weight containers and int32 bias (batch norm already folded by ``freeze``)."""
    name = str(node.target)
    grid_in = ctx.grid_of(_args(node)[0], f"layer {name}")
    depthwise = isinstance(layer, QuantConv2d) and 1 < layer.groups == layer.in_channels == layer.out_channels
    uint8 = ctx.uint8_weights and not depthwise  # the depthwise kernel widens first: int8 is exact there
    il = integer_layer(name, ctx.frozen.weights[name], _WEIGHT_AXIS[type(layer)], grid_in.step, uint8)
    ctx.layers[name] = il
    if isinstance(layer, QuantConvTranspose2d) and _subpixel_ok(layer):
        return _deconv_as_conv(ctx, node, inputs[0], layer, il)
    op_inputs = [inputs[0], _weight(ctx, name, il)]
    if il.bias is not None:
        op_inputs.append(_bias(ctx, name, il.bias, il.bias_scale))
    if isinstance(layer, QuantLinear):
        return _linear(ctx, node, op_inputs, grid_in, layer.out_features)
    attrs = _conv_attrs(name, layer)
    if isinstance(layer, QuantConvTranspose2d):
        return ctx.op("ConvTranspose", name, op_inputs, {**attrs, "output_padding": _pair(layer.output_padding)})
    return ctx.op("Conv", name, op_inputs, attrs)


def _linear(ctx: ExportContext, node: fx.Node, op_inputs: list[Any], grid: Grid, features: int) -> Any:
    """Gemm; on tokens (N, T, C) or any tensor of rank > 2, flattened to (N·T, C) around it and the flat input
    re-quantized on its own grid (lossless), so that onnxruntime still runs it as QGemm."""
    name, shape = str(node.target), ctx.shape_of(_args(node)[0])
    if len(shape) == 2:
        return ctx.op("Gemm", name, op_inputs, {"transB": 1})
    ctx.fixed_spatial = True  # the token count (or spatial size) is baked into the reshape back
    flat_shape = ctx.const(f"{name}.flat_shape", np.array([-1, shape[-1]], np.int64))
    flat = ctx.quantize(ctx.op("Reshape", f"{name}.flatten", [op_inputs[0], flat_shape]), grid, f"{name}.flat")
    y = ctx.op("Gemm", name, [flat, *op_inputs[1:]], {"transB": 1})
    out_shape = ctx.const(f"{name}.out_shape", np.array([-1, *shape[1:-1], features], np.int64))
    return ctx.op("Reshape", f"{name}.unflatten", [y, out_shape])


def _weight(ctx: ExportContext, name: str, il: IntegerLayer) -> Any:
    """The int8 or uint8 container of ``il``'s levels (``folding.container_zero_point``) → DequantizeLinear
    (per-tensor scale when every channel's step is equal)."""
    uniform = bool(np.all(il.steps == il.steps[0]))
    w_name = f"{name}.weight"
    steps = il.steps[:1] if uniform else il.steps
    ctx.weights.append(
        WeightTensor(
            name=w_name,
            levels=il.levels,
            bits=il.bits,
            steps=steps,
            axis=None if uniform else il.axis,
            multiplier=il.multiplier,
            zero_point=il.zero_point,
        )
    )
    scale = il.scale[0] if uniform else il.scale
    container = il.container
    inputs = [
        ctx.const(w_name, container),
        ctx.const(f"{w_name}.scale", np.asarray(scale, np.float32)),
        ctx.const(f"{w_name}.zero_point", np.full(np.shape(scale), il.zero_point, container.dtype)),
    ]
    return ctx.op("DequantizeLinear", f"{w_name}.dequantize", inputs, {} if uniform else {"axis": il.axis})


def _bias(ctx: ExportContext, name: str, bias: np.ndarray, scale: Any) -> Any:
    """int32 bias → DequantizeLinear at scale ``s_in · s_w`` (per output channel), zero-point 0."""
    b_name = f"{name}.bias"
    scale = np.broadcast_to(scale, bias.shape).astype(np.float32)
    inputs = [
        ctx.const(b_name, bias),
        ctx.const(f"{b_name}.scale", scale),
        ctx.const(f"{b_name}.zero_point", np.zeros(scale.shape, np.int32)),
    ]
    return ctx.op("DequantizeLinear", f"{b_name}.dequantize", inputs, {"axis": 0})


def _conv_attrs(name: str, layer: Any) -> dict[str, Any]:
    if getattr(layer, "padding_mode", "zeros") != "zeros" or isinstance(layer.padding, str):
        raise ToolchainError(f"layer {name}: only numeric zero padding exports")
    return {
        "kernel_shape": _pair(layer.kernel_size),
        "strides": _pair(layer.stride),
        "pads": _pair(layer.padding) * 2,
        "dilations": _pair(layer.dilation),
        "group": int(layer.groups),
    }


def _subpixel_ok(layer: Any) -> bool:
    k, s, p, op = (_pair(v) for v in (layer.kernel_size, layer.stride, layer.padding, layer.output_padding))
    same = len({k[0], k[1]}) == len({s[0], s[1]}) == len({p[0], p[1]}) == len({op[0], op[1]}) == 1
    return (
        same and layer.groups == 1 and _pair(layer.dilation) == [1, 1] and subpixel_supported(k[0], s[0], p[0], op[0])
    )


def _deconv_as_conv(ctx: ExportContext, node: fx.Node, x: Any, layer: Any, il: IntegerLayer) -> Any:
    """Transposed convolution → integer Conv (phases as channels) → Q/DQ → DepthToSpace; see exporters.deconv."""
    name = str(node.target)
    stride, padding = _pair(layer.stride)[0], _pair(layer.padding)[0]
    if len(set(il.steps.tolist())) != 1:
        raise ToolchainError(f"layer {name}: a transposed convolution exports with one weight step per tensor")
    conv_levels, pads = subpixel_weights(il.levels, stride, padding)
    phases = IntegerLayer(conv_levels, il.steps[:1], 0, il.bits, il.multiplier, il.bias, il.bias_scale, il.zero_point)
    inputs = [x, _weight(ctx, name, phases)]
    if il.bias is not None:
        inputs.append(_bias(ctx, name, np.repeat(il.bias, stride * stride), il.bias_scale[:1]))  # type: ignore[index]
    attrs = {"kernel_shape": list(conv_levels.shape[2:]), "strides": [1, 1], "pads": pads, "dilations": [1, 1]}
    y = ctx.op("Conv", f"{name}.phases", inputs, {**attrs, "group": 1})
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and str(users[0].target) in ctx.frozen.acts:
        act = ctx.frozen.acts[str(users[0].target)]  # quantize here too, so that the Conv fuses
        if act.bits == 8:
            y = ctx.quantize(y, Grid(np.float32(act.step), act.signed), f"{name}.phases")
    return ctx.op("DepthToSpace", name, [y], {"blocksize": stride, "mode": "CRD"})


def _batch_norm(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    src = _args(node)[0]
    folded = isinstance(src, fx.Node) and src.op == "call_module" and str(src.target) in ctx.frozen.weights
    if not folded or ctx.frozen.weights[str(src.target)].folded_bn != str(node.target):
        raise ToolchainError(f"batch norm {node.target!r} does not follow a convolution it can be folded into")
    return inputs[0]  # folded into the convolution's weights and bias by freeze()


# ---------------------------------------------------------------------------------------------------------------
# Elementwise, pooling and data movement.


def _simple(op: str, **attrs: Any) -> Emitter:
    def fn(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
        return ctx.op(op, _name(node), [i for i in inputs if i is not None], dict(attrs))

    return fn


def _passthrough(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    return inputs[0]


def _relu6(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    name = _name(node)
    lo, hi = ctx.const(f"{name}.min", np.array(0.0, np.float32)), ctx.const(f"{name}.max", np.array(6.0, np.float32))
    return ctx.op("Clip", name, [inputs[0], lo, hi])


def _add(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """The sum of two tensors (a residual), or of a tensor and a number (``x + 3``, either side)."""
    if node.kwargs.get("alpha", 1) != 1:
        raise ToolchainError(f"node {node.name}: torch.add with alpha does not export; write a + alpha * b")
    return ctx.op("Add", _name(node), _operands(ctx, node, inputs, "sum"))


def _concat(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    if module is not None:  # models.layers.Concat(*xs) concatenates channels
        tensors, axis = inputs, 1
    else:  # torch.cat(tensors, dim)
        tensors, axis = [ctx.values[a] for a in _args(node)[0]], int(_arg(node, 1, "dim", 0))
    return ctx.op("Concat", _name(node), tensors, {"axis": axis})


def _channel_shuffle(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: ChannelShuffle) -> Any:
    _, c, h, w = ctx.shape_of(node)
    g, name = module.groups, _name(node)
    ctx.fixed_spatial = True
    grouped = ctx.const(f"{name}.shape1", np.array([0, g, c // g, h * w]))
    split = ctx.op("Reshape", f"{name}.split", [inputs[0], grouped])
    swapped = ctx.op("Transpose", f"{name}.transpose", [split], {"perm": [0, 2, 1, 3]})
    return ctx.op("Reshape", name, [swapped, ctx.const(f"{name}.shape2", np.array([0, c, h, w]))])


def _pixel_shuffle(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    factor = module.upscale_factor if module is not None else int(_arg(node, 1, "upscale_factor"))
    return ctx.op("DepthToSpace", _name(node), [inputs[0]], {"blocksize": int(factor), "mode": "CRD"})


def _pool_attrs(m: Any) -> dict[str, Any]:
    return {
        "kernel_shape": _pair(m.kernel_size),
        "strides": _pair(m.stride if m.stride is not None else m.kernel_size),
        "pads": _pair(m.padding) * 2,
        "ceil_mode": int(m.ceil_mode),
    }


def _max_pool(ctx: ExportContext, node: fx.Node, inputs: list[Any], m: nn.MaxPool2d) -> Any:
    attrs = {**_pool_attrs(m), "dilations": _pair(m.dilation)}
    return ctx.op("MaxPool", _name(node), [inputs[0]], attrs)


def _avg_pool(ctx: ExportContext, node: fx.Node, inputs: list[Any], m: nn.AvgPool2d) -> Any:
    if m.divisor_override is not None:
        raise ToolchainError(f"layer {node.target!r}: AvgPool2d divisor_override does not export")
    attrs = {**_pool_attrs(m), "count_include_pad": int(m.count_include_pad)}
    return ctx.op("AveragePool", _name(node), [inputs[0]], attrs)


def _global_pool(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    size = module.output_size if module is not None else _arg(node, 1, "output_size")
    if _pair(size) != [1, 1]:
        raise ToolchainError(f"node {node.name}: adaptive average pooling exports only to 1×1, got {size}")
    return ctx.op("GlobalAveragePool", _name(node), [inputs[0]])


# Smooth activations, gates, products and normalisation: each becomes its standard ONNX op(s) between the
# DequantizeLinear of its quantized input(s) and the QuantizeLinear of its quantizer. onnxruntime runs it on
# integers where its QDQ rules have a kernel (Mul, MatMul, Sigmoid, Softmax, ...) and in float otherwise: a float
# island, which `toolchain export` and `inspect` list by node name.


def _gelu(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """``x·Φ(x)`` with the erf (opset 17 has no Gelu op), or PyTorch's tanh approximation."""
    approximate = module.approximate if module is not None else _arg(node, 1, "approximate", "none")
    x, name = inputs[0], _name(node)

    def const(suffix: str, value: float) -> Any:
        return ctx.const(f"{name}.{suffix}", np.array(value, np.float32))

    if approximate == "tanh":  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        cube = ctx.op("Mul", f"{name}.x3", [ctx.op("Mul", f"{name}.x2", [x, x]), x])
        inner = ctx.op("Add", f"{name}.inner", [x, ctx.op("Mul", f"{name}.cx3", [cube, const("c", 0.044715)])])
        phi = ctx.op("Tanh", f"{name}.tanh", [ctx.op("Mul", f"{name}.scaled", [inner, const("k", (2 / np.pi) ** 0.5)])])
    elif approximate == "none":  # 0.5·x·(1 + erf(x/√2))
        phi = ctx.op("Erf", f"{name}.erf", [ctx.op("Mul", f"{name}.scaled", [x, const("k", 0.5**0.5)])])
    else:
        raise ToolchainError(f"node {node.name}: GELU approximation {approximate!r} does not export")
    half = ctx.op("Mul", f"{name}.half", [x, const("half", 0.5)])
    return ctx.op("Mul", name, [half, ctx.op("Add", f"{name}.one_plus", [phi, const("one", 1.0)])])


def _mul(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """A product of two tensors (a squeeze-excite gate, ``x * gate``) or of a tensor and a number."""
    return ctx.op("Mul", _name(node), _operands(ctx, node, inputs, "product"))


def _sub(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """``a − b`` of two tensors, or of a tensor and a number (either side)."""
    return ctx.op("Sub", _name(node), _operands(ctx, node, inputs, "sub"))


def _div(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """A tensor divided by a number (``x / 6``, attention's ``/ √d``); a tensor divisor does not export."""
    args = _args(node)
    if len(args) != 2 or not isinstance(args[0], fx.Node) or not isinstance(args[1], int | float):
        raise ToolchainError(f"node {node.name}: only a tensor divided by a number exports")
    return ctx.op("Div", _name(node), _operands(ctx, node, inputs, "div"))


def _operands(ctx: ExportContext, node: fx.Node, inputs: list[Any], what: str) -> list[Any]:
    """The two operands of a binary op as ONNX values: tensors as they are, numbers as float32 constants."""
    args = _args(node)
    if len(args) != 2 or not any(isinstance(a, fx.Node) for a in args):
        raise ToolchainError(f"node {node.name}: only a {what} of two operands exports")
    odd = [type(a).__name__ for a in args if not isinstance(a, fx.Node | int | float)]
    if odd:
        raise ToolchainError(f"node {node.name}: an operand of type {odd[0]} does not export")
    return [
        inputs[i] if isinstance(a, fx.Node) else ctx.const(f"{_name(node)}.operand{i}", np.array(float(a), np.float32))
        for i, a in enumerate(args)
    ]


def _leaky_relu(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    slope = module.negative_slope if module is not None else _arg(node, 1, "negative_slope", 0.01)
    return ctx.op("LeakyRelu", _name(node), [inputs[0]], {"alpha": float(slope)})


def _clip(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    """Hardtanh(min_val, max_val) and clamp(min, max) as Clip; an open bound stays open."""
    if module is not None:
        lo, hi = module.min_val, module.max_val
    elif node.target is F.hardtanh:
        lo, hi = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
    else:
        lo, hi = _arg(node, 1, "min"), _arg(node, 2, "max")
    if any(b is not None and not isinstance(b, int | float) for b in (lo, hi)):
        raise ToolchainError(f"node {node.name}: only clamping to numbers exports")
    name = _name(node)
    bounds = [ctx.const(f"{name}.{k}", np.array(float(b), np.float32)) if b is not None else "" for k, b in
              (("min", lo), ("max", hi))]  # fmt: skip
    return ctx.op("Clip", name, [inputs[0], *bounds])


def _matmul(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    if len(_args(node)) != 2 or not all(isinstance(a, fx.Node) for a in _args(node)):
        raise ToolchainError(f"node {node.name}: only the product of two tensors exports")
    return ctx.op("MatMul", _name(node), inputs[:2])


def _softmax(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    dim = module.dim if module is not None else _arg(node, 1, "dim")
    if dim is None:
        raise ToolchainError(f"node {node.name}: softmax needs an explicit dim to export")
    return ctx.op("Softmax", _name(node), [inputs[0]], {"axis": int(dim)})


def _layer_norm(ctx: ExportContext, node: fx.Node, inputs: list[Any], m: nn.LayerNorm) -> Any:
    """LayerNormalization over the last ``len(normalized_shape)`` axes, its affine parameters in float."""
    name, shape = _name(node), tuple(m.normalized_shape)
    weight = m.weight.detach().numpy() if m.weight is not None else np.ones(shape, np.float32)
    bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(shape, np.float32)
    scale_c = ctx.const(f"{name}.scale", weight.astype(np.float32))
    bias_c = ctx.const(f"{name}.shift", bias.astype(np.float32))
    attrs = {"axis": -len(shape), "epsilon": float(m.eps)}
    return ctx.op("LayerNormalization", name, [inputs[0], scale_c, bias_c], attrs)


_RESIZE_MODES = {
    "nearest": ("nearest", "asymmetric"),
    "bilinear": ("linear", "half_pixel"),
    "bicubic": ("cubic", "half_pixel"),
}


def _upsample(ctx: ExportContext, node: fx.Node, inputs: list[Any], m: nn.Upsample) -> Any:
    if m.mode not in _RESIZE_MODES or m.align_corners or m.scale_factor is None:
        raise ToolchainError(
            f"layer {node.target!r}: Upsample(mode={m.mode}, align_corners={m.align_corners}) needs "
            "a scale factor, align_corners=False and a mode in " + ", ".join(_RESIZE_MODES)
        )
    mode, coords = _RESIZE_MODES[m.mode]
    factor = _pair(m.scale_factor) if not isinstance(m.scale_factor, float) else [m.scale_factor] * 2
    name = _name(node)
    scales = ctx.const(f"{name}.scales", np.array([1.0, 1.0, *factor], np.float32))
    attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": coords}
    if mode == "cubic":
        attrs["cubic_coeff_a"] = -0.75  # PyTorch's bicubic kernel
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    return ctx.op("Resize", name, [inputs[0], ctx.const(f"{name}.roi", np.zeros(0, np.float32)), scales], attrs)


def _flatten(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    start = module.start_dim if module is not None else int(_arg(node, 1, "start_dim", 0))
    end = module.end_dim if module is not None else int(_arg(node, 2, "end_dim", -1))
    if end != -1:
        raise ToolchainError(f"node {node.name}: flatten exports only with end_dim=-1")
    if start != 1:  # ONNX Flatten always gives 2-D; x.flatten(2) (tokens of an image) is a reshape
        return _reshape(ctx, node, inputs, module)
    ctx.fixed_spatial = True
    return ctx.op("Flatten", _name(node), [inputs[0]], {"axis": start})


def _reshape(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    src, out = ctx.shape_of(_args(node)[0]), ctx.shape_of(node)  # type: ignore[arg-type]
    if src[0] != out[0]:
        raise ToolchainError(f"node {node.name}: a reshape that changes the batch dimension does not export")
    ctx.fixed_spatial = True
    name = _name(node)
    return ctx.op("Reshape", name, [inputs[0], ctx.const(f"{name}.shape", np.array([0, *out[1:]], np.int64))])


def _split(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    dim = int(_arg(node, 2, "dim", 0))
    sizes = [ctx.shape_of(_Part(node, i))[dim] for i in range(len(node.meta["tensor_meta"]))]
    name = _name(node)
    split = ctx.const(f"{name}.sizes", np.array(sizes, np.int64))
    return ctx.op("Split", name, [inputs[0], split], {"axis": dim}, outputs=len(sizes))


class _Part:
    """Adapter so that ``shape_of`` reads one element of a multi-output node's shape metadata."""

    def __init__(self, node: fx.Node, index: int) -> None:
        self.meta = {"tensor_meta": node.meta["tensor_meta"][index]}
        self.name = f"{node.name}[{index}]"


def _getitem(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    parts, index = inputs[0], _args(node)[1]
    if not isinstance(parts, list) or not isinstance(index, int):
        raise ToolchainError(f"node {node.name}: only indexing the result of chunk/split exports")
    return parts[index]


def _transpose(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    rank, args = len(ctx.shape_of(node)), _args(node)
    if node.target == "permute":
        perm = [int(d) % rank for d in (args[1] if isinstance(args[1], list | tuple) else args[1:])]
    else:
        a, b = int(args[1]) % rank, int(args[2]) % rank
        perm = list(range(rank))
        perm[a], perm[b] = perm[b], perm[a]
    return ctx.op("Transpose", _name(node), [inputs[0]], {"perm": perm})


def _mean(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    dims = _arg(node, 1, "dim")
    if dims is None:
        raise ToolchainError(f"node {node.name}: mean over all dimensions does not export (give dim)")
    axes = [int(dims)] if isinstance(dims, int) else [int(d) for d in dims]
    keep = int(bool(_arg(node, 2, "keepdim", False)))
    return ctx.op("ReduceMean", _name(node), [inputs[0]], {"axes": axes, "keepdims": keep})


def _size(ctx: ExportContext, node: fx.Node, inputs: list[Any], module: Any) -> Any:
    return None  # shapes are static facts read from the traced metadata by the ops that use them


_RELU = OpEntry(_simple("Relu"))
_HARDSWISH = OpEntry(_simple("HardSwish"))
_HARDSIGMOID = OpEntry(_simple("HardSigmoid", alpha=1.0 / 6.0, beta=0.5))  # PyTorch's constants
_SIGMOID = OpEntry(_simple("Sigmoid"))
_TANH = OpEntry(_simple("Tanh"))
_KEEP = OpEntry(_passthrough, keeps_grid=True, requantize=False)
_ISLAND = OpEntry(emit_island)

MODULE_OPS: dict[type, OpEntry] = {
    ActQuant: OpEntry(_act_quant),
    QuantConv2d: OpEntry(_weighted),
    QuantConvTranspose2d: OpEntry(_weighted),
    QuantLinear: OpEntry(_weighted),
    nn.BatchNorm2d: OpEntry(_batch_norm),
    nn.ReLU: _RELU,
    nn.ReLU6: OpEntry(_relu6),
    nn.Hardswish: _HARDSWISH,
    nn.GELU: OpEntry(_gelu),
    nn.Hardsigmoid: _HARDSIGMOID,
    nn.Sigmoid: _SIGMOID,
    nn.Softmax: OpEntry(_softmax),
    nn.LayerNorm: OpEntry(_layer_norm),
    nn.Tanh: _TANH,
    nn.LeakyReLU: OpEntry(_leaky_relu),
    nn.Hardtanh: OpEntry(_clip),
    Add: OpEntry(_add),
    Concat: OpEntry(_concat),
    nn.AdaptiveAvgPool2d: OpEntry(_global_pool),
    nn.AvgPool2d: OpEntry(_avg_pool),
    nn.Upsample: OpEntry(_upsample),
    ChannelShuffle: OpEntry(_channel_shuffle, keeps_grid=True),
    nn.PixelShuffle: OpEntry(_pixel_shuffle, keeps_grid=True),
    nn.MaxPool2d: OpEntry(_max_pool, keeps_grid=True),
    nn.Flatten: OpEntry(_flatten, keeps_grid=True),
    nn.Dropout: _KEEP,
    nn.Identity: _KEEP,
}
FUNCTION_OPS: dict[Any, OpEntry] = {
    operator.add: OpEntry(_add),
    torch.add: OpEntry(_add),
    torch.cat: OpEntry(_concat),
    F.relu: _RELU,
    torch.relu: _RELU,
    F.relu6: OpEntry(_relu6),
    torch.flatten: OpEntry(_flatten, keeps_grid=True),
    torch.chunk: OpEntry(_split, keeps_grid=True),
    operator.getitem: OpEntry(_getitem, keeps_grid=True, requantize=False),
    F.pixel_shuffle: OpEntry(_pixel_shuffle, keeps_grid=True),
    F.adaptive_avg_pool2d: OpEntry(_global_pool),
    F.hardswish: _HARDSWISH,
    F.gelu: OpEntry(_gelu),
    F.hardsigmoid: _HARDSIGMOID,
    torch.sigmoid: _SIGMOID,
    F.sigmoid: _SIGMOID,
    F.softmax: OpEntry(_softmax),
    torch.softmax: OpEntry(_softmax),
    operator.mul: OpEntry(_mul),
    torch.mul: OpEntry(_mul),
    operator.matmul: OpEntry(_matmul),
    torch.matmul: OpEntry(_matmul),
    torch.tanh: _TANH,
    F.leaky_relu: OpEntry(_leaky_relu),
    F.hardtanh: OpEntry(_clip),
    torch.clamp: OpEntry(_clip),
    operator.sub: OpEntry(_sub),
    torch.sub: OpEntry(_sub),
    operator.truediv: OpEntry(_div),
}
METHOD_OPS: dict[str, OpEntry] = {
    "view": OpEntry(_reshape, keeps_grid=True),
    "reshape": OpEntry(_reshape, keeps_grid=True),
    "flatten": OpEntry(_flatten, keeps_grid=True),
    "chunk": OpEntry(_split, keeps_grid=True),
    "transpose": OpEntry(_transpose, keeps_grid=True),
    "permute": OpEntry(_transpose, keeps_grid=True),
    "contiguous": _KEEP,
    "size": OpEntry(_size),
    "relu": _RELU,
    "mean": OpEntry(_mean),
    "sigmoid": _SIGMOID,
    "softmax": OpEntry(_softmax),
    "mul": OpEntry(_mul),
    "tanh": _TANH,
    "clamp": OpEntry(_clip),
}

"""``freeze``: integer weight levels, steps and activation steps of a prepared model, batch norm folded.

Folding batch norm into the preceding convolution: with ``s_c = γ_c / sqrt(σ²_c + ε)``,

    BN(conv(x; W, b))_c = conv(x; s_c W_c, s_c (b_c − μ_c) + β_c)

and with per-channel weight steps the folded weights ``s_c δ_c q_c`` are again on a grid: step ``|s_c| δ_c`` and
levels ``sign(s_c) q_c``. The integer levels the regularizer converged are therefore exported unchanged, and the
folded convolution computes exactly what the quant-aware model computed (up to float rounding). Per-tensor steps
become per-channel steps after folding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from runtime import ToolchainError

from .prepare import QUANT_WEIGHT_TYPES, ActQuant, act_quantizers, trace, weight_bits, weight_step
from .quantizers import max_level, quantize_levels

__all__ = ["FrozenAct", "FrozenModel", "FrozenWeight", "bn_folded", "following_bn", "freeze", "out_channels"]


@dataclass
class FrozenWeight:
    """One weighted layer: ``weight = levels · step`` (step broadcast over the output-channel axis)."""

    name: str
    kind: str  # "conv", "conv_transpose", "linear"
    levels: np.ndarray  # int8, the layer's weight shape
    step: np.ndarray  # float32, (C_out,) per channel or (1,) per tensor
    bits: int
    bias: np.ndarray | None  # float32 (C_out,)
    folded_bn: str | None = None

    def dequantized(self) -> np.ndarray:
        shape = (
            (1, -1) + (1,) * (self.levels.ndim - 2)
            if self.kind == "conv_transpose"
            else (-1,) + (1,) * (self.levels.ndim - 1)
        )
        return self.levels.astype(np.float32) * self.step.reshape(shape)


@dataclass
class FrozenAct:
    name: str
    step: float
    bits: int
    signed: bool


@dataclass
class FrozenModel:
    weights: dict[str, FrozenWeight] = field(default_factory=dict)
    acts: dict[str, FrozenAct] = field(default_factory=dict)

    def weight_count(self) -> int:
        return sum(w.levels.size for w in self.weights.values())


_KINDS = {"QuantConv2d": "conv", "QuantConvTranspose2d": "conv_transpose", "QuantLinear": "linear"}


def following_bn(gm: fx.GraphModule, name: str) -> tuple[str, nn.BatchNorm2d] | None:
    """The batch norm that alone reads layer ``name``'s output (the one ``freeze`` folds into it), if any."""
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == name:
            users = list(node.users)
            if len(users) == 1 and users[0].op == "call_module":
                module = gm.get_submodule(str(users[0].target))
                if isinstance(module, nn.BatchNorm2d):
                    return str(users[0].target), module
    return None


def out_channels(layer: Any) -> int:
    """Output channels of a weighted layer, float or quant-aware (a transposed convolution's weight holds them on
    axis 1, per group)."""
    weight = layer.weight
    return int(weight.shape[1] * layer.groups if isinstance(layer, nn.ConvTranspose2d) else weight.shape[0])


def bn_folded(model: nn.Module) -> set[str]:
    """Names of the weighted layers of ``model`` (float or quant-aware) whose output a batch norm alone reads:
    ``freeze`` folds it into their steps, so they export a step per output channel even when training keeps one."""
    gm = model if isinstance(model, fx.GraphModule) else trace(model)
    weighted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    return {name for name, m in gm.named_modules() if isinstance(m, weighted) and following_bn(gm, name)}


@torch.no_grad()
def freeze(model: fx.GraphModule) -> FrozenModel:
    """Integer levels and steps of every quantized layer (BN folded) and every activation quantizer."""
    if not isinstance(model, fx.GraphModule):
        raise ToolchainError("freeze expects a model returned by prepare_qat")
    frozen = FrozenModel()
    layer: Any
    for name, layer in model.named_modules():
        if not isinstance(layer, QUANT_WEIGHT_TYPES):
            continue
        bits, kind = weight_bits(layer), _KINDS[type(layer).__name__]
        w = layer.weight.detach().float().cpu()
        step = weight_step(layer).detach().float().cpu()
        levels = quantize_levels(w, step, bits)
        c_out = out_channels(layer)
        step_c = step.flatten().expand(c_out).clone() if step.numel() == 1 else step.flatten()
        bias = layer.bias.detach().float().cpu() if layer.bias is not None else None
        bn = following_bn(model, name)
        bn_name = None
        if bn is not None:
            if kind != "conv":
                raise ToolchainError(f"batch norm {bn[0]} after {kind} layer {name} cannot be folded")
            bn_name, norm = bn[0], cast(Any, bn[1])
            scale = norm.weight.detach().cpu() / torch.sqrt(norm.running_var.cpu() + norm.eps)
            levels = levels * torch.sign(scale).view(-1, *([1] * (w.ndim - 1)))
            step_c = step_c * scale.abs()
            base = bias if bias is not None else torch.zeros(c_out)
            bias = (base - norm.running_mean.cpu()) * scale + norm.bias.detach().cpu()
        lim = max_level(bits)
        if levels.abs().max() > lim:
            raise ToolchainError(f"layer {name}: levels exceed ±{lim}")
        frozen.weights[name] = FrozenWeight(
            name,
            kind,
            levels.to(torch.int8).numpy(),
            step_c.numpy().astype(np.float32),
            bits,
            None if bias is None else bias.numpy().astype(np.float32),
            bn_name,
        )
    for name, q in act_quantizers(model):
        assert isinstance(q, ActQuant)
        frozen.acts[name] = FrozenAct(name, float(q.step()), q.bits, q.signed)
    return frozen

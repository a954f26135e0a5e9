"""The exported model in PyTorch: the quant-aware model with batch norm folded and the bias rounded to int32.

It differs from the quant-aware model only by what export does to the numbers (:mod:`exporters.folding`): the
folded weights ``(m·q)·(δ/m)`` and the int32 bias ``round(b / s_b)·s_b``. Activation quantizers are the trained ones.
Comparing onnxruntime against this model isolates the graph (scales, axes, layouts, fused kernels) from the bias
rounding, which is a property of integer deployment and is measured separately (``fold_gap``).

Why two references at all: deep quantized networks amplify any one-step difference layer by layer (a flipped
rounding in layer 1 flips ~2× as many values in layer 2 and so on), so even a seed rate of 10⁻³ from the int32 bias
grows into percent-level output differences. Against this folded model the seeds that remain are float
summation-order ties (~10⁻⁵ per layer).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.fx as fx
from brevitas.nn import QuantConv2d, QuantConvTranspose2d, QuantLinear
from torch import nn

from .graph import BuiltGraph

__all__ = ["folded_model"]


def _plain_twin(layer: Any) -> nn.Module:
    """A float Conv2d/ConvTranspose2d/Linear with the layer's hyper-parameters (weights set by the caller)."""
    bias = True
    if isinstance(layer, QuantLinear):
        return nn.Linear(layer.in_features, layer.out_features, bias=bias)
    common = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias)
    if isinstance(layer, QuantConvTranspose2d):
        return nn.ConvTranspose2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, output_padding=layer.output_padding, **common
        )
    assert isinstance(layer, QuantConv2d)
    return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, **common)


@torch.no_grad()
def folded_model(gm: fx.GraphModule, built: BuiltGraph) -> fx.GraphModule:
    """A copy of ``gm`` computing what the exported graph ``built`` computes (see the module docstring)."""
    ref = copy.deepcopy(gm).eval()
    for name, il in built.layers.items():
        twin: Any = _plain_twin(ref.get_submodule(name))
        twin.weight.copy_(torch.from_numpy(il.float_weight()))
        bias = il.float_bias()
        twin.bias.copy_(torch.from_numpy(bias) if bias is not None else torch.zeros_like(twin.bias))
        _replace(ref, name, twin)
        bn = built.frozen.weights[name].folded_bn
        if bn is not None:
            _replace(ref, bn, nn.Identity())
    ref.recompile()
    return ref


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)

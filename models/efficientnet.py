"""EfficientNet-B0 (Tan & Le 2019) with torchvision's exact state-dict layout.

Keys and shapes match ``torchvision.models.efficientnet_b0``, so its ImageNet checkpoint loads with ``strict=True``.
MBConv blocks: 1×1 expansion, depthwise convolution, squeeze-excite (SiLU, sigmoid gate), 1×1 projection, all with
SiLU, the block the quantizer's SiLU, sigmoid-gate and product rules exist for. Stochastic depth is a training-time
regulariser and is left out (an identity at inference, so checkpoints and exports are unaffected).
``small_input=True`` adapts the stem for 28×28/32×32 images: the first convolution and the first stride-2 stage use
stride 1 (total stride 8 instead of 32).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Add, ConvBNAct, make_divisible
from .mobilenet_v2 import _init_weights
from .mobilenet_v3 import SqueezeExcitation
from .registry import register_model

__all__ = ["EfficientNet"]

# (expansion, kernel, first stride, input channels, output channels, blocks) per stage: EfficientNet-B0.
_B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class MBConv(nn.Module):
    def __init__(self, inp: int, oup: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = inp * expansion
        layers: list[nn.Module] = []
        if hidden != inp:
            layers.append(ConvBNAct(inp, hidden, 1, act=nn.SiLU))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU),
            SqueezeExcitation(hidden, max(1, inp // 4), nn.SiLU, nn.Sigmoid),
            ConvBNAct(hidden, oup, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.add = Add() if stride == 1 and inp == oup else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(x, self.block(x)) if self.add is not None else self.block(x)


class EfficientNet(nn.Module):
    """EfficientNet-B0; ``width_mult`` scales the channels of every stage (for test-sized variants)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()

        def width(c: int) -> int:
            return make_divisible(c * width_mult)

        features: list[nn.Module] = [ConvBNAct(in_chans, width(32), 3, 1 if small_input else 2, act=nn.SiLU)]
        first_stride2 = True
        for expansion, kernel, stride, inp, out, blocks in _B0:
            if small_input and stride == 2 and first_stride2:
                stride, first_stride2 = 1, False
            ins = [width(inp)] + [width(out)] * (blocks - 1)
            strides = [stride] + [1] * (blocks - 1)
            features.append(nn.Sequential(*[MBConv(i, width(out), expansion, kernel, s) for i, s in zip(ins, strides)]))
        last = 4 * width(320)
        features.append(ConvBNAct(width(320), last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model(input_size=224)
def efficientnet_b0(**kw) -> EfficientNet:
    """EfficientNet-B0 at ImageNet resolution (torchvision layout)."""
    return EfficientNet(**kw)


@register_model("efficientnet_b0_small", input_size=28, in_chans=1, num_classes=10, small_input=True)
def _efficientnet_b0_small(**kw) -> EfficientNet:
    """EfficientNet-B0 for 28×28/32×32 inputs (stride 8)."""
    return EfficientNet(**kw)


@register_model(
    "efficientnet_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), small_input=True, width_mult=0.25
)
def _efficientnet_tiny(**kw) -> EfficientNet:
    """Test-sized EfficientNet-B0 (width 0.25, small input)."""
    return EfficientNet(**kw)

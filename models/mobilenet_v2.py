"""MobileNetV2 (Sandler et al. 2018) with torchvision's exact state-dict layout.

Keys and shapes match ``torchvision.models.mobilenet_v2`` so the ImageNet checkpoint
``mobilenet_v2-b0353104.pth`` loads with ``strict=True``. ``small_input=True`` adapts the stem for 28×28/32×32
images: the first convolution and the first stride-2 stage use stride 1 (total stride 8 instead of 32).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Add, ConvBNAct, make_divisible
from .registry import register_model

__all__ = ["InvertedResidual", "MobileNetV2"]

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise (3×3) → project (1×1, linear); residual sum when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(inp, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.add = Add() if self.use_res_connect else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(x, self.conv(x)) if self.add is not None else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier; ``width_mult`` scales every layer's channels (rounded to multiples of 8)."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_chans: int = 3,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNAct(in_chans, in_ch, 3, 1 if small_input else 2, act=nn.ReLU6)]
        first_stride2 = True
        for t, c, n, s in _SETTINGS:
            out_ch = make_divisible(c * width_mult)
            if small_input and s == 2 and first_stride2:
                s, first_stride2 = 1, False
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        features.append(ConvBNAct(in_ch, self.last_channel, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: He (fan-out) convolutions, unit BN, N(0, 0.01) classifier."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


@register_model(input_size=224)
def mobilenet_v2(**kw) -> MobileNetV2:
    """MobileNetV2 at ImageNet resolution (torchvision layout)."""
    return MobileNetV2(**kw)


@register_model("mobilenet_v2_small", input_size=28, in_chans=1, num_classes=10, small_input=True)
def _mobilenet_v2_small(**kw) -> MobileNetV2:
    """MobileNetV2 for 28×28/32×32 inputs (stride 8)."""
    return MobileNetV2(**kw)


@register_model(
    "mobilenet_v2_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), small_input=True, width_mult=0.25
)
def _mobilenet_v2_tiny(**kw) -> MobileNetV2:
    """Test-sized MobileNetV2 (width 0.25, small input)."""
    return MobileNetV2(**kw)

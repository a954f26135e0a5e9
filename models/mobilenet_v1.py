"""MobileNetV1 (Howard et al. 2017): a plain stack of depthwise-separable convolutions.

Stem: 3×3 convolution (32 channels, stride 2) + BN + ReLU. Then 13 depthwise-separable blocks, each a 3×3 depthwise
ConvBNAct (``groups=channels``) followed by a 1×1 pointwise ConvBNAct, with (output channels, stride) as in the
paper's Table 1: (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), 5 × (512, 1), (1024, 2), (1024, 1).
Head: global average pool → flatten → Linear. ``width_mult`` scales every layer's channels (rounded to multiples
of 8 with :func:`make_divisible`). ``small_input=True`` adapts the network to 28×28/32×32 images: the stem and the
first stride-2 block use stride 1 (total stride 8 instead of 32).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, make_divisible
from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["DepthwiseSeparable", "MobileNetV1"]

# (output channels, stride) of the depthwise-separable blocks, as in the paper's Table 1.
_SETTINGS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise ConvBNAct (index 0) → 1×1 pointwise ConvBNAct (index 1)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__(ConvBNAct(inp, inp, 3, stride, groups=inp), ConvBNAct(inp, oup, 1))


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier; ``width_mult`` scales every layer's channels (rounded to multiples of 8)."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_chans: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        features: list[nn.Module] = [ConvBNAct(in_chans, in_ch, 3, 1 if small_input else 2)]
        first_stride2 = True
        for c, s in _SETTINGS:
            out_ch = make_divisible(c * width_mult)
            if small_input and s == 2 and first_stride2:
                s, first_stride2 = 1, False
            features.append(DepthwiseSeparable(in_ch, out_ch, s))
            in_ch = out_ch
        self.last_channel = in_ch
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.last_channel, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model(input_size=224)
def mobilenet_v1(**kw) -> MobileNetV1:
    """MobileNetV1 at ImageNet resolution."""
    return MobileNetV1(**kw)


@register_model("mobilenet_v1_small", input_size=28, in_chans=1, num_classes=10, small_input=True)
def _mobilenet_v1_small(**kw) -> MobileNetV1:
    """MobileNetV1 for 28×28/32×32 inputs (stride 8), one input channel unless told otherwise."""
    return MobileNetV1(**kw)


@register_model(
    "mobilenet_v1_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), small_input=True, width_mult=0.25
)
def _mobilenet_v1_tiny(**kw) -> MobileNetV1:
    """Test-sized MobileNetV1 (width 0.25, small input, one input channel unless told otherwise)."""
    return MobileNetV1(**kw)

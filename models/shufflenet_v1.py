"""ShuffleNetV1 (Zhang et al. 2018): pointwise group convolutions with channel shuffle.

Stem: 3×3 convolution (24 channels, stride 2) + BN + ReLU, then a 3×3 stride-2 max-pool. Three stages (2, 3, 4) of
``stage_repeats`` units (default (4, 8, 4)) with output channels (240, 480, 960) for ``groups=3`` and
(384, 768, 1536) for ``groups=8`` (the paper's Table 1). Head: global average pool → flatten → Linear.

Unit: 1×1 group convolution to ``out/4`` bottleneck channels + BN + ReLU → channel shuffle (``groups``) → 3×3
depthwise convolution (stride 1 or 2) + BN → 1×1 group convolution + BN. A stride-1 unit adds the identity and
applies ReLU; a stride-2 unit (first of each stage) concatenates a 3×3 stride-2 average-pooled shortcut with the
residual branch, whose output then has ``out - in`` channels, and applies ReLU. As in the paper, the first 1×1
convolution of the very first unit of stage 2 is not grouped (its input, the stem, is too narrow).

``width_mult`` scales the stem, stage and bottleneck widths; each is rounded to a multiple of ``groups`` (with
:func:`make_divisible`) so that every group convolution and shuffle divides evenly. At ``width_mult=1`` the widths
are exactly the paper's. ``small_input=True`` drops the stem's stride and max-pool for 28×28/32×32 images (total
stride 8 instead of 32).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Add, ChannelShuffle, Concat, make_divisible
from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["ShuffleNetV1", "ShuffleUnitV1"]

_STAGE_REPEATS = (4, 8, 4)
_STEM_CHANNELS = 24
# Stage output channels (stages 2, 3, 4) per number of groups, as in the paper's Table 1.
_STAGE_OUT = {3: (240, 480, 960), 8: (384, 768, 1536)}


def _conv_bn(inp: int, oup: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(oup)]


class ShuffleUnitV1(nn.Module):
    """One ShuffleNetV1 unit.

    Args:
        inp: input channels.
        oup: output channels of the unit (after the concatenation for stride 2).
        mid: bottleneck channels (a multiple of ``groups``).
        stride: 1 (identity shortcut, sum) or 2 (average-pooled shortcut, concatenation).
        groups: groups of the 1×1 convolutions and of the channel shuffle.
        first_group: whether the first 1×1 convolution is grouped (``False`` only for the first unit of stage 2).
    """

    def __init__(self, inp: int, oup: int, mid: int, stride: int, groups: int, first_group: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnitV1 stride must be 1 or 2, got {stride}")
        if stride == 1 and inp != oup:
            raise ValueError(f"a stride-1 ShuffleUnitV1 needs inp == oup, got {inp} and {oup}")
        self.stride = stride
        branch_out = oup - inp if stride == 2 else oup
        self.branch = nn.Sequential(
            *_conv_bn(inp, mid, 1, groups=groups if first_group else 1),
            nn.ReLU(inplace=True),
            ChannelShuffle(groups),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
            *_conv_bn(mid, branch_out, 1, groups=groups),
        )
        if stride == 2:
            self.shortcut: nn.Module = nn.AvgPool2d(3, 2, 1)
            self.merge: nn.Module = Concat()
        else:
            self.shortcut = nn.Identity()
            self.merge = Add()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.merge(self.shortcut(x), self.branch(x)))


class ShuffleNetV1(nn.Module):
    """ShuffleNetV1 classifier; ``groups`` is 3 or 8, ``width_mult`` the paper's scale factor ``s``."""

    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def __init__(
        self,
        num_classes: int = 1000,
        groups: int = 3,
        width_mult: float = 1.0,
        in_chans: int = 3,
        small_input: bool = False,
        stage_repeats: tuple[int, int, int] = _STAGE_REPEATS,
    ) -> None:
        super().__init__()
        if groups not in _STAGE_OUT:
            raise ValueError(f"ShuffleNetV1 groups must be one of {tuple(sorted(_STAGE_OUT))}, got {groups}")
        if len(stage_repeats) != 3 or min(stage_repeats) < 1:
            raise ValueError(f"stage_repeats must be three positive integers, got {stage_repeats}")
        self.groups = groups
        stem = make_divisible(_STEM_CHANNELS * width_mult, groups)
        self.conv1 = nn.Sequential(*_conv_bn(in_chans, stem, 3, 1 if small_input else 2), nn.ReLU(inplace=True))
        self.maxpool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        inp = stem
        for idx, (repeats, c) in enumerate(zip(stage_repeats, _STAGE_OUT[groups]), start=2):
            oup = make_divisible(c * width_mult, groups)
            mid = make_divisible(oup / 4, groups)
            units = [ShuffleUnitV1(inp, oup, mid, 2, groups, first_group=idx != 2)]
            units += [ShuffleUnitV1(oup, oup, mid, 1, groups) for _ in range(repeats - 1)]
            setattr(self, f"stage{idx}", nn.Sequential(*units))
            inp = oup
        self.last_channel = inp
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("shufflenet_v1_g3", groups=3)
@register_model("shufflenet_v1_g8", groups=8)
def _shufflenet_v1(**kw) -> ShuffleNetV1:
    """ShuffleNetV1 1× at ImageNet resolution."""
    return ShuffleNetV1(**kw)


@register_model("shufflenet_v1_g3_small", input_size=28, in_chans=1, num_classes=10, small_input=True, groups=3)
@register_model("shufflenet_v1_g8_small", input_size=28, in_chans=1, num_classes=10, small_input=True, groups=8)
@register_model(
    "shufflenet_v1_tiny",
    input_size=28,
    in_chans=1,
    num_classes=10,
    tags=("tiny",),
    small_input=True,
    groups=3,
    width_mult=0.25,
    stage_repeats=(1, 1, 1),
)
def _shufflenet_v1_small(**kw) -> ShuffleNetV1:
    """ShuffleNetV1 for 28×28/32×32 inputs (stride 8), one input channel unless told otherwise."""
    return ShuffleNetV1(**kw)

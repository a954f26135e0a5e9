"""ShuffleNetV2 (Ma et al. 2018) with torchvision's exact state-dict layout.

Each unit splits channels in two (stride 1) or feeds both branches (stride 2), concatenates, and shuffles with
2 groups. ``small_input=True`` drops the stem's stride and max-pool for 28×28/32×32 images (total stride 8).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ChannelShuffle, Concat
from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["ShuffleNetV2", "ShuffleUnitV2"]

_STAGE_REPEATS = (4, 8, 4)
_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def _conv_bn(inp: int, oup: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(oup)]


class ShuffleUnitV2(nn.Module):
    """One ShuffleNetV2 unit; ``branch1`` is empty for stride 1 (the identity half)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                *_conv_bn(inp, inp, 3, stride, groups=inp), *_conv_bn(inp, bf, 1), nn.ReLU(inplace=True)
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            *_conv_bn(inp if stride > 1 else bf, bf, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(bf, bf, 3, stride, groups=bf),
            *_conv_bn(bf, bf, 1),
            nn.ReLU(inplace=True),
        )
        self.concat = Concat()
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = self.concat(x1, self.branch2(x2))
        else:
            out = self.concat(self.branch1(x), self.branch2(x))
        return self.shuffle(out)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 classifier; ``width`` is the paper's multiplier (0.5, 1.0, 1.5, 2.0)."""

    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def __init__(
        self,
        num_classes: int = 1000,
        width: float = 1.0,
        in_chans: int = 3,
        small_input: bool = False,
        stage_repeats: tuple[int, int, int] = _STAGE_REPEATS,
    ) -> None:
        super().__init__()
        if width not in _WIDTHS:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(_WIDTHS)}, got {width}")
        chans = _WIDTHS[width]
        self.conv1 = nn.Sequential(*_conv_bn(in_chans, chans[0], 3, 1 if small_input else 2), nn.ReLU(inplace=True))
        self.maxpool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        inp = chans[0]
        for idx, (repeats, oup) in enumerate(zip(stage_repeats, chans[1:4]), start=2):
            units = [ShuffleUnitV2(inp, oup, 2)] + [ShuffleUnitV2(oup, oup, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{idx}", nn.Sequential(*units))
            inp = oup
        self.conv5 = nn.Sequential(*_conv_bn(inp, chans[4], 1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[4], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("shufflenet_v2_x0_5", width=0.5)
@register_model("shufflenet_v2_x1_0", width=1.0)
def _shufflenet_v2(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(**kw)


@register_model("shufflenet_v2_x0_5_small", input_size=28, in_chans=1, num_classes=10, small_input=True, width=0.5)
@register_model("shufflenet_v2_x1_0_small", input_size=28, in_chans=1, num_classes=10, small_input=True, width=1.0)
@register_model(
    "shufflenet_v2_tiny",
    input_size=28,
    in_chans=1,
    num_classes=10,
    tags=("tiny",),
    small_input=True,
    width=0.5,
    stage_repeats=(1, 1, 1),
)
def _shufflenet_v2_small(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(**kw)

"""CIFAR ResNet (He et al. 2016, Section 4.2): ResNet-20 and its 6n+2 siblings.

Stem: 3×3 ConvBNAct (16 channels, stride 1). Three stages of ``n = (depth - 2) / 6`` BasicBlocks with 16, 32 and 64
channels; the first block of stages 2 and 3 has stride 2. Head: global average pool → flatten → Linear.

BasicBlock: conv3×3-BN-ReLU → conv3×3-BN, summed with the shortcut (an :class:`Add` module), then ReLU. The shortcut
is the identity, or a 1×1 convolution + BN projection where the shape changes (the paper's option B; the paper's
CIFAR models use the parameter-free option A, zero-padding, which quantizes less cleanly).

The network is designed for 32×32 inputs (total stride 4), so ``small_input`` is accepted for interface
compatibility with the other classifiers and ignored.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Add, ConvBNAct
from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["BasicBlock", "ResNetCifar"]

_STAGE_CHANNELS = (16, 32, 64)


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU → conv3×3-BN, plus identity or 1×1 conv + BN projection shortcut, then ReLU."""

    def __init__(self, inp: int, oup: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(inp, oup, 3, stride)
        self.conv2 = ConvBNAct(oup, oup, 3, act=None)
        if stride != 1 or inp != oup:
            self.shortcut: nn.Module = ConvBNAct(inp, oup, 1, stride, act=None)
        else:
            self.shortcut = nn.Identity()
        self.add = Add()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.add(self.conv2(self.conv1(x)), self.shortcut(x)))


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, ...; 8 for tests)."""

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_chans: int = 3,
        small_input: bool = True,
    ) -> None:
        super().__init__()
        del small_input  # already designed for 32×32 inputs; accepted for interface compatibility
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNetCifar depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = ConvBNAct(in_chans, _STAGE_CHANNELS[0], 3)
        inp = _STAGE_CHANNELS[0]
        for idx, oup in enumerate(_STAGE_CHANNELS, start=1):
            stride = 1 if idx == 1 else 2
            blocks = [BasicBlock(inp, oup, stride)] + [BasicBlock(oup, oup) for _ in range(n - 1)]
            setattr(self, f"layer{idx}", nn.Sequential(*blocks))
            inp = oup
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("resnet20", input_size=32, in_chans=3, num_classes=10, depth=20)
def _resnet20(**kw) -> ResNetCifar:
    """ResNet-20 for CIFAR-10 (32×32 RGB)."""
    return ResNetCifar(**kw)


@register_model("resnet20_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), depth=8)
def _resnet20_tiny(**kw) -> ResNetCifar:
    """Test-sized CIFAR ResNet (depth 8: one block per stage) on 28×28 greyscale inputs."""
    return ResNetCifar(**kw)

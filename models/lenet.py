"""LeNet-5 (LeCun et al. 1998), in the common modern form with ReLU and max-pooling.

Features: 5×5 convolution (``in_chans`` → 6, padding 2) + ReLU + 2×2 max-pool → 5×5 convolution (6 → 16, padding 2)
+ ReLU + 2×2 max-pool. Classifier: flatten → Linear(16·(input_size // 4)², 120) + ReLU → Linear(120, 84) + ReLU →
Linear(84, ``num_classes``).

The "same" padding keeps the spatial size through both convolutions, so the flattened size follows from the two
pools alone: ``input_size`` (square, default 28) must match the input, and 8×8 (scikit-learn digits), 28×28 (MNIST)
and 32×32 all work. Unlike the other classifiers there is no global pooling: LeNet's fully connected layers see the
whole feature map. ``small_input`` is accepted for interface compatibility and ignored.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["LeNet5"]

# LeNet-5 flattens a fixed-size feature map, so it must know the input size.
_DATA_ARGS = ("num_classes", "in_chans", "input_size")


class LeNet5(nn.Module):
    """LeNet-5 for square ``input_size``×``input_size`` images (``input_size >= 4``)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int = 28,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        del small_input  # LeNet is a small-input network already; accepted for interface compatibility
        if input_size < 4:
            raise ValueError(f"LeNet5 input_size must be >= 4 (two 2×2 pools), got {input_size}")
        self.input_size = input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * (input_size // 4) ** 2, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
        _init_weights(self)
        # N(0, 0.01) suits a single classifier layer; the hidden layers keep PyTorch's default (Kaiming-uniform)
        # initialisation so the signal does not vanish through three stacked linear layers.
        for hidden in (self.classifier[0], self.classifier[2]):
            cast(nn.Linear, hidden).reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}"


@register_model("lenet5", input_size=28, in_chans=1, num_classes=10, data_args=_DATA_ARGS)
def _lenet5(**kw) -> LeNet5:
    """LeNet-5 for 28×28 greyscale images (pass ``input_size`` for 8×8 or 32×32)."""
    return LeNet5(**kw)


@register_model("lenet5_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), data_args=_DATA_ARGS)
def _lenet5_tiny(**kw) -> LeNet5:
    """LeNet-5 registered under the ``"tiny"`` tag (it is already test-sized)."""
    return LeNet5(**kw)

"""Optimizers (by name) and the warm-up + cosine learning-rate schedule.

Weight decay applies to convolution/linear weights only; biases and normalisation parameters (every parameter with
fewer than 2 dimensions) get none. The schedule, evaluated per step t of T with W warm-up steps, is

    lr(t) = lr · (t+1)/W                                    for t < W
    lr(t) = lr · ½ (1 + cos(π (t − W) / (T − W)))           otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "build_optimizer", "param_groups", "warmup_cosine"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights (ndim ≥ 2) and undecayed biases/normalisation parameters."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


OptimizerFactory = Callable[[Iterable[dict], float, float], torch.optim.Optimizer]
OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda groups, lr, momentum: torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0),
    "adamw": lambda groups, lr, momentum: torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999)),
}


def build_optimizer(name: str, groups: list[dict], lr: float, momentum: float) -> torch.optim.Optimizer:
    """Optimizer ``name`` over prepared parameter groups."""
    return OPTIMIZERS[name](groups, lr, momentum)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at step t (for ``torch.optim.lr_scheduler.LambdaLR``)."""

    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        progress = min(1.0, (t - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor

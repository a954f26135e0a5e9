"""The MSQE regularizer with a learnable coefficient (Choi, El-Khamy & Lee 2020, §III).

Over all quantized weight layers l, with N the total number of weights::

    R_n(W; δ) = (1/N) Σ_l Σ_i (w_li − δ_l · q_li)²,   q_li = clip(round(w_li / δ_l), −L, L)

The integer level q is a constant inside R (no straight-through estimator here: an STE would make ``w − Q(w)`` have
zero gradient and switch the regularizer off), so ``∂R/∂w = 2 (w − Q(w)) / N``. By default the step δ is held
constant inside R too (it is learned from the task loss); ``step_grad=True`` lets R's gradient reach δ.

The training cost is ``C = E(W_q) + e^α · R_n(W; δ) − λ·α`` with α a learnable scalar: ``∂C/∂α = e^α R_n − λ``, so at
balance ``e^α = λ / R_n``; as the weights converge to their levels R_n falls and the coefficient rises. α starts at
balance, ``α₀ = log(λ / R_n(W₀))``, or ``--alpha-start`` e-folds below it, and moves in the optimizer or by its own
clipped constant-rate steps (``--alpha-update rise``; the mechanics are shared with pruning:
:mod:`toolchain.training.penalty`). Under a strong pull, let the steps follow the MSQE (``--step-rule refit`` or
``msqe``, :mod:`toolchain.quant.steps`): steps learned from the task loss shrink until the network fails.
Modes, through the same code path:

* ``msqe``  – learnable α (the paper);
* ``fixed`` – α frozen at α₀ (a fixed coefficient ``λ / R_n(W₀)``);
* ``none``  – plain quant-aware training, no penalty (R_n is still measured and logged).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.quant.prepare import QUANT_WEIGHT_TYPES, weight_bits, weight_step
from models.quant.quantizers import quantize_levels

from ..training.penalty import LearnedPenalty

__all__ = ["MODES", "MSQERegularizer", "quant_weight_layers"]

MODES = ("msqe", "fixed", "none")
_KIND = {"msqe": "learned", "fixed": "fixed", "none": "off"}


def quant_weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Brevitas weight layer of a prepared model, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QUANT_WEIGHT_TYPES)]


class MSQERegularizer(LearnedPenalty):
    """The MSQE term as a :class:`LearnedPenalty`; α is its learnable log-coefficient.

    The weight layers are referenced, not registered, so the regularizer's only parameter is α.
    """

    def __init__(self, model: nn.Module, lam: float, mode: str = "msqe", step_grad: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        super().__init__(lam, _KIND[mode])
        self._layers: list[Any] = [m for _, m in quant_weight_layers(model)]
        if not self._layers:
            raise ValueError("the model has no quantized weight layers; call prepare_qat first")
        self.mode, self.step_grad = mode, step_grad
        self.count = sum(m.weight.numel() for m in self._layers)
        self.reset_alpha()

    def measure(self) -> torch.Tensor:
        return self.msqe()

    def msqe(self) -> torch.Tensor:
        """R_n(W; δ), differentiable in W (and in δ when ``step_grad``)."""
        total = torch.zeros((), device=self.alpha.device)
        for layer in self._layers:
            w = layer.weight
            step = weight_step(layer)
            if not self.step_grad:
                step = step.detach()
            levels = quantize_levels(w.detach(), step.detach(), weight_bits(layer))
            total = total + ((w - step * levels) ** 2).sum()
        return total / self.count

    @torch.no_grad()
    def near_level_share(self, tolerance: float = 0.1) -> float:
        """Share of weights within ``tolerance · δ`` of their quantization level (one device sync: the ``rise``
        update asks every step)."""
        near = torch.zeros((), dtype=torch.long, device=self.alpha.device)
        for layer in self._layers:
            w, step = layer.weight, weight_step(layer)
            err = (w - step * quantize_levels(w, step, weight_bits(layer))).abs()
            near += (err <= tolerance * step).sum()
        return int(near) / self.count

"""A regularizer with a learnable coefficient, shared by the MSQE (quantization) and partial-L2 (pruning) terms.

For a measure ``R(W) ≥ 0`` and a scalar ``α``, the training cost gains ``e^α · R(W) − λ·α``. Then
``∂/∂α = e^α R − λ``: at balance ``e^α = λ / R``, so as training drives R down the coefficient rises and reinforces
it; the ``−λα`` term keeps α from running to −∞. λ is in units of the loss (at balance the penalty's value
``e^α R`` equals λ), and α starts at balance, ``α₀ = log(λ / R(W₀))``. Kinds, through the same code path:

* ``learned`` – α is a parameter (the paper);
* ``fixed``   – α frozen at α₀ (a fixed coefficient ``λ / R(W₀)``);
* ``off``     – no penalty; R is still measured and logged.

Give α its own optimizer group without weight decay (:func:`coefficient_group`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["KINDS", "LearnedPenalty", "coefficient_group"]

KINDS = ("learned", "fixed", "off")


class LearnedPenalty(nn.Module):
    """Holds α; ``forward()`` returns ``(penalty, R)`` with R detached. Subclasses implement :meth:`measure`."""

    def __init__(self, lam: float, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not (lam > 0 and math.isfinite(lam)):
            raise ValueError(f"λ must be a positive number, got {lam}")
        self.lam, self.kind = lam, kind
        self.alpha = nn.Parameter(torch.zeros(()), requires_grad=kind == "learned")

    def measure(self) -> torch.Tensor:
        """R(W), differentiable in the weights."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_alpha(self) -> None:
        """α₀ = log(λ / R(W₀)): start at balance."""
        r = float(self.measure())
        self.alpha.fill_(math.log(self.lam / max(r, 1e-30)))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.measure()
        if self.kind == "off":
            return torch.zeros((), device=r.device), r.detach()
        penalty = torch.exp(self.alpha) * r
        if self.kind == "learned":
            penalty = penalty - self.lam * self.alpha
        return penalty, r.detach()


def coefficient_group(penalty: LearnedPenalty, optimizer: str, rate: float) -> list[dict[str, Any]]:
    """The optimizer group of α (none unless learned): its own rate, no weight decay.

    ``∂C/∂α = λ (e^α R / λ − 1)`` scales with λ; for SGD, dividing the rate by λ makes α relax towards balance at a
    speed that does not depend on λ. Adam already normalises the gradient's scale: dividing its rate by a small λ
    would move α by ~rate/λ per step and blow up (measured: λ = 3e-6 → inf).
    """
    if not penalty.alpha.requires_grad:
        return []
    lr = rate / penalty.lam if optimizer == "sgd" else rate
    return [{"params": [penalty.alpha], "weight_decay": 0.0, "lr": lr}]

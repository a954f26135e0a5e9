"""A regularizer with a learnable coefficient, shared by the MSQE (quantization) and partial-L2 (pruning) terms.

For a measure ``R(W) ≥ 0`` and a scalar ``α``, the training cost gains ``e^α · R(W) − λ·α``. Then
``∂/∂α = e^α R − λ``: at balance ``e^α = λ / R``, so as training drives R down the coefficient rises and reinforces
it; the ``−λα`` term keeps α from running to −∞. λ is in units of the loss (at balance the penalty's value
``e^α R`` equals λ), and α starts at balance, ``α₀ = log(λ / R(W₀))``. Kinds, through the same code path:

* ``learned`` – α is a parameter (the paper);
* ``fixed``   – α frozen at α₀ (a fixed coefficient ``λ / R(W₀)``);
* ``off``     – no penalty; R is still measured and logged.

α moves in one of two ways (``--alpha-update``):

* ``optimizer`` – α sits in the main optimizer in a group of its own without weight decay
  (:func:`coefficient_group`), so it shares the momentum and the cosine decay of the weights;
* ``rise`` – α is outside the optimizer; after every step :meth:`LearnedPenalty.relax_alpha` moves it by plain
  gradient descent on C at a constant rate: ``α += η · clip(1 − e^α R / λ, −1, 1)`` (the gradient divided by λ, and
  clipped so that α moves at most η per step). Started ``k`` e-folds below balance (:meth:`reset_alpha`), α climbs
  at about η per step and meets the balance after roughly ``k/η`` steps: the pull rises from weak to full during
  training instead of starting at full strength.

**Stability cap.** Both terms we use are ``R = (1/N) Σ (w − t)²`` for targets t held constant (the level, or 0), so
the penalty's curvature per weight is ``k = 2 e^α / N``. SGD with Nesterov momentum (ours; rate η, momentum μ) on a
quadratic is stable only while ``η k < 2 (1 + μ) / (1 + 2μ)``. As R → 0 the balance ``e^α = λ / R`` grows without
bound, so with SGD the coefficient eventually crosses that limit and training explodes (measured: MobileNetV2 W4A8
on Fashion-MNIST, λ = 10, η = 0.01, μ = 0.9, N = 0.68 M: R fell to 1e-9 while α rose to 17.8, past the limit
α = 17.65, then R jumped to 1e-5 and the loss to 1.8 within 10 steps). :func:`stability_cap` gives the α at half
the limit; α is clamped to it after every step. Adam normalises the gradient's scale, so it gets no cap.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["KINDS", "LearnedPenalty", "coefficient_group", "stability_cap"]

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
        self.max_alpha = math.inf  # see stability_cap
        self.capped_steps = torch.zeros((), dtype=torch.long)  # how often clamp_alpha bound (no device sync)
        self.last_measure: torch.Tensor | None = None  # R at the last forward (detached), for relax_alpha

    def measure(self) -> torch.Tensor:
        """R(W), differentiable in the weights."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_alpha(self, below: float = 0.0) -> None:
        """α₀ = log(λ / R(W₀)) − ``below``: at balance, or ``below`` e-folds under it."""
        r = float(self.measure())
        self.alpha.fill_(min(math.log(self.lam / max(r, 1e-30)) - below, self.max_alpha))

    @torch.no_grad()
    def clamp_alpha(self) -> None:
        """Keep α at or under ``max_alpha`` (call after each optimizer step); counts the steps where it binds."""
        if math.isfinite(self.max_alpha):
            self.capped_steps = self.capped_steps.to(self.alpha.device) + (self.alpha > self.max_alpha).long()
            self.alpha.clamp_(max=self.max_alpha)  # in place, no device sync

    @torch.no_grad()
    def relax_alpha(self, rate: float) -> None:
        """One plain gradient step of α on the cost, relative to λ and clipped to ±``rate`` (the ``rise`` update)."""
        if self.last_measure is None or self.kind != "learned":
            return
        excess = torch.exp(self.alpha) * self.last_measure / self.lam - 1.0
        self.alpha.sub_(rate * excess.clamp(-1.0, 1.0))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.measure()
        self.last_measure = r.detach()
        if self.kind == "off":
            return torch.zeros((), device=r.device), r.detach()
        penalty = torch.exp(self.alpha) * r
        if self.kind == "learned":
            penalty = penalty - self.lam * self.alpha
        return penalty, r.detach()


def stability_cap(count: int, optimizer: str, lr: float, momentum: float) -> float:
    """α at half the stability limit of Nesterov SGD on a penalty over ``count`` weights:
    ``η · 2e^α / N = (1 + μ) / (1 + 2μ)``, i.e. ``α = log((1 + μ) N / (2 η (1 + 2μ)))``; infinite for Adam."""
    if optimizer != "sgd" or lr <= 0:
        return math.inf
    return math.log((1 + momentum) * count / (2 * lr * (1 + 2 * momentum)))


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

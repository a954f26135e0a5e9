"""The partial L2 regularizer for pruning, with a learnable coefficient (Choi, El-Khamy & Lee 2020, §IV).

Over the prunable layers (:mod:`toolchain.pruning.selection`), N weights in all, and a target ratio r::

    P_r(W) = (1/N) Σ_l Σ_{|w_li| ≤ θ_r} w_li²

θ_r (per layer or global) is recomputed from the current weights at every step and held constant inside P_r, so
``∂P_r/∂w = 2w/N`` for the weights at or under the threshold and 0 above it: only the weights that will be pruned
are pulled towards 0, and the rest train freely. The cost gains ``e^β P_r − λ_p β`` (a
:class:`toolchain.training.penalty.LearnedPenalty`): as the small weights shrink, P_r falls and e^β rises.

Methods, through the same code path:

* ``partial-l2`` – the learnable partial L2 term, then the hard prune;
* ``magnitude``  – no penalty (P_r is still logged): plain magnitude pruning at the same θ_r.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..training.penalty import LearnedPenalty
from .selection import thresholds

__all__ = ["METHODS", "PartialL2Regularizer"]

METHODS = ("partial-l2", "magnitude")
_KIND = {"partial-l2": "learned", "magnitude": "off"}


class PartialL2Regularizer(LearnedPenalty):
    """``e^β P_r − λ_p β`` over ``layers`` (referenced, not registered: β is the only parameter)."""

    def __init__(self, layers: Sequence[Any], ratio: float, scope: str, lam: float, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        super().__init__(lam, _KIND[method])
        self._layers = list(layers)
        self.ratio, self.scope, self.method = ratio, scope, method
        self.count = sum(m.weight.numel() for m in self._layers)
        self.reset_alpha()

    def thresholds(self) -> list[torch.Tensor]:
        return thresholds([m.weight for m in self._layers], self.ratio, self.scope)

    def measure(self) -> torch.Tensor:
        total = torch.zeros((), device=self.alpha.device)
        for layer, theta in zip(self._layers, self.thresholds()):
            w = layer.weight
            total = total + torch.where(w.detach().abs() <= theta, w * w, torch.zeros_like(w)).sum()
        return total / self.count

    @torch.no_grad()
    def pruned_energy(self) -> float:
        """Σ_{|w| ≤ θ_r} w² / Σ w² over the prunable layers: the share of weight energy a hard prune now removes."""
        below = total = 0.0
        for layer, theta in zip(self._layers, self.thresholds()):
            w2 = layer.weight.detach() ** 2
            below += float(w2[layer.weight.detach().abs() <= theta].sum())
            total += float(w2.sum())
        return below / max(total, 1e-30)

"""Hard pruning and the masks that keep pruned weights at exactly 0 afterwards.

``hard_prune`` sets every prunable weight with ``|w| ≤ θ_r`` to 0. A :class:`Masks` object then re-applies
``w ← w · m`` after every optimizer step (momentum, Adam's moments or weight decay would otherwise move a pruned
weight off 0). Zero is a level of the symmetric quantizer, batch-norm folding scales a weight and keeps 0 at 0, so
pruned weights reach the exported integer levels as 0. Quant-aware training recovers the masks from the pruned
float checkpoint itself (:func:`Masks.from_zeros`): a weight that is exactly 0 there was pruned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .selection import thresholds

__all__ = ["Masks", "hard_prune"]


class Masks:
    """Boolean keep-masks for some weight layers, applied in place."""

    def __init__(self, pairs: Sequence[tuple[Any, torch.Tensor]]) -> None:
        self.pairs = [(m, mask.to(m.weight.device)) for m, mask in pairs]

    @classmethod
    def from_zeros(cls, layers: Sequence[Any]) -> Masks:
        """Masks of the layers that hold exact zeros (their pruned weights)."""
        return cls([(m, m.weight.detach() != 0) for m in layers if bool((m.weight.detach() == 0).any())])

    @torch.no_grad()
    def apply(self) -> None:
        for module, mask in self.pairs:
            module.weight.mul_(mask)

    @property
    def pruned(self) -> int:
        return sum(int((~mask).sum()) for _, mask in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


@torch.no_grad()
def hard_prune(layers: Sequence[Any], ratio: float, scope: str) -> Masks:
    """Zero every weight with ``|w| ≤ θ_r`` (θ_r per layer or global) and return the masks that keep them 0."""
    thetas = thresholds([m.weight for m in layers], ratio, scope)
    masks = Masks([(m, m.weight.detach().abs() > theta) for m, theta in zip(layers, thetas)])
    masks.apply()
    return masks

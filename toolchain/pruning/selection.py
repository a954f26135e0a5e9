"""Which weights are pruned: the weighted layers of a model minus the protected ones, and their thresholds.

A layer is protected by a rule name or a module-name pattern (``fnmatch``). Rules, in a registry:

* ``first`` / ``last``: the first / last weighted layer in module order (the input and classifier layers carry
  the least redundancy);
* ``depthwise``: convolutions with one input channel per group (9 weights per channel: pruning them cuts whole
  spatial taps).

θ_r is the r-quantile of |w|: the magnitude of the ⌈r·N⌉-th smallest weight, so that pruning ``|w| ≤ θ_r`` removes
a share r (ties at θ_r, e.g. weights that are already 0, may add a few more). Per layer (``scope = "layer"``) each
layer gets its own θ_r; globally (``"global"``) one θ_r spans every prunable weight, so layers with many small
weights lose more.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from runtime import ToolchainError

__all__ = ["PROTECT_RULES", "SCOPES", "prunable_layers", "thresholds", "weighted_layers"]

WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)  # Brevitas quant layers derive from these
SCOPES = ("layer", "global")


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Conv2d / ConvTranspose2d / Linear (float or Brevitas) in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED)]


def _is_depthwise(m: Any) -> bool:
    return isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.groups > 1 and m.groups == m.in_channels


PROTECT_RULES: dict[str, Callable[[list[tuple[str, nn.Module]], int], bool]] = {
    "first": lambda layers, i: i == 0,
    "last": lambda layers, i: i == len(layers) - 1,
    "depthwise": lambda layers, i: _is_depthwise(layers[i][1]),
}


def prunable_layers(model: nn.Module, protect: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """The weighted layers not protected by a rule (``PROTECT_RULES``) or a name pattern in ``protect``."""
    layers = weighted_layers(model)
    names = {n for n, _ in layers}
    for item in protect:
        if item not in PROTECT_RULES and not any(fnmatch.fnmatchcase(n, item) for n in names):
            raise ToolchainError(
                f"protect entry {item!r} is neither a rule ({', '.join(PROTECT_RULES)}) nor a pattern matching a "
                f"layer name (e.g. {', '.join(sorted(names)[:3])})"
            )
    kept = []
    for i, (name, module) in enumerate(layers):
        ruled = any(PROTECT_RULES[p](layers, i) for p in protect if p in PROTECT_RULES)
        named = any(fnmatch.fnmatchcase(name, p) for p in protect if p not in PROTECT_RULES)
        if not (ruled or named):
            kept.append((name, module))
    if not kept:
        raise ToolchainError(f"protect={list(protect)} leaves no layer to prune")
    return kept


def _kth_magnitude(magnitudes: torch.Tensor, ratio: float) -> torch.Tensor:
    k = math.ceil(ratio * magnitudes.numel())
    if k == 0:
        return magnitudes.new_tensor(-1.0)  # nothing is ≤ −1: prune nothing
    return torch.kthvalue(magnitudes, k).values


@torch.no_grad()
def thresholds(weights: Sequence[torch.Tensor], ratio: float, scope: str) -> list[torch.Tensor]:
    """θ_r for each weight tensor (the same θ_r for all with ``scope = "global"``); a 0-d tensor each."""
    if scope not in SCOPES:
        raise ToolchainError(f"pruning scope must be one of {SCOPES}, got {scope!r}")
    if not 0.0 <= ratio < 1.0:
        raise ToolchainError(f"pruning ratio must be in [0, 1), got {ratio}")
    if scope == "layer":
        return [_kth_magnitude(w.detach().abs().flatten(), ratio) for w in weights]
    theta = _kth_magnitude(torch.cat([w.detach().abs().flatten() for w in weights]), ratio)
    return [theta] * len(weights)

"""Pruning: the partial L2 regularizer with a learnable coefficient, hard pruning, and masks (DESIGN.md §2)."""

from .masks import Masks, hard_prune
from .recipe import PruneConfig, PruneRecipe
from .regularizer import METHODS, PartialL2Regularizer
from .selection import PROTECT_RULES, SCOPES, prunable_layers, thresholds

__all__ = [
    "METHODS",
    "PROTECT_RULES",
    "SCOPES",
    "Masks",
    "PartialL2Regularizer",
    "PruneConfig",
    "PruneRecipe",
    "hard_prune",
    "prunable_layers",
    "thresholds",
]

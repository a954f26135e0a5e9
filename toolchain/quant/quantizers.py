"""Brevitas quantizers with learnable steps, and the MSQE-optimal initial weight step.

Weights (symmetric, narrow range, so 0 is a level and pruned weights stay 0), with ``L = 2^(n-1) - 1``::

    Q_n(w; δ) = δ · clip(round(w / δ), -L, L)          (n = 2 is ternary {-δ, 0, δ})

Activations, unsigned after ReLU/ReLU6 (``U = 2^m - 1``) or signed where a tensor can be negative::

    Q_m(x; Δ) = Δ · clip(round(x / Δ), 0, U)           Q_m(x; Δ) = Δ · clip(round(x / Δ), -(2^(m-1)-1), 2^(m-1)-1)

Brevitas learns a *threshold* ``T`` and uses the step ``T / L`` (``T / U`` for unsigned), so a step δ is set by
initialising the threshold to ``δ · L``. Gradients reach the float weights through the straight-through estimator
(STE) and the threshold through Brevitas's scale gradient. Bit-widths from 2 to 8 are supported.
"""

from __future__ import annotations

import torch
from brevitas.inject.enum import ScalingImplType
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

from runtime import ToolchainError

__all__ = [
    "BITS_RANGE",
    "LearnedIntAct",
    "LearnedUintAct",
    "LearnedWeight",
    "check_bits",
    "max_level",
    "msqe_optimal_step",
    "quantize_levels",
]

BITS_RANGE = range(2, 9)


def check_bits(bits: int, what: str) -> int:
    """Validate a bit-width (2..8) with a message naming the setting."""
    if not isinstance(bits, int) or bits not in BITS_RANGE:
        raise ToolchainError(f"{what} must be an integer from 2 to 8, got {bits!r}")
    return bits


def max_level(bits: int, signed: bool = True) -> int:
    """Largest integer level: ``2^(n-1) - 1`` signed narrow range, ``2^n - 1`` unsigned."""
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


class LearnedWeight(Int8WeightPerTensorFloat):
    """Signed narrow-range weights with a learned threshold (``weight_scaling_init`` = δ·L)."""

    scaling_impl_type = ScalingImplType.PARAMETER


class LearnedUintAct(Uint8ActPerTensorFloat):
    """Unsigned activations with a learned threshold (``scaling_init`` = Δ·(2^m − 1))."""

    scaling_impl_type = ScalingImplType.PARAMETER


class LearnedIntAct(Int8ActPerTensorFloat):
    """Signed (narrow-range) activations with a learned threshold (``scaling_init`` = Δ·(2^(m−1) − 1))."""

    scaling_impl_type = ScalingImplType.PARAMETER
    narrow_range = True


def quantize_levels(w: torch.Tensor, step: torch.Tensor, bits: int, signed: bool = True) -> torch.Tensor:
    """Integer levels ``clip(round(w/δ), -L, L)`` (``[0, 2^n − 1]`` unsigned), as a float tensor of whole numbers."""
    hi = max_level(bits, signed)
    return torch.clamp(torch.round(w / step), -hi if signed else 0, hi)


@torch.no_grad()
def msqe_optimal_step(
    w: torch.Tensor, bits: int, per_channel: bool = False, signed: bool = True, grid: int = 64, refine: int = 10
) -> torch.Tensor:
    """Step δ minimising ``Σ (w − Q(w; δ))²`` per tensor (shape ``()``) or per output channel (``(C, 1, …)``).

    Used for weights (signed) and, on calibration samples, for activations (unsigned after ReLU).

    A grid search over ``δ = c · max|w| / L``, ``c ∈ (0, 1]``, then Lloyd-style refinement: with the levels
    ``q`` fixed, the best step is ``Σ w q / Σ q²``, and re-deriving ``q`` from it never increases the error.
    """
    rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    rows = rows.float()
    lim = max_level(bits, signed)
    amax = rows.abs().amax(dim=1).clamp_min(1e-12)  # (R,)
    fractions = torch.linspace(1.0 / grid, 1.0, grid)
    best_err = torch.full_like(amax, float("inf"))
    best = amax / lim
    for c in fractions:
        step = amax * c / lim
        err = ((rows - step[:, None] * quantize_levels(rows, step[:, None], bits, signed)) ** 2).sum(1)
        better = err < best_err
        best_err, best = torch.where(better, err, best_err), torch.where(better, step, best)
    for _ in range(refine):
        q = quantize_levels(rows, best[:, None], bits, signed)
        denom = (q * q).sum(1)
        candidate = torch.where(denom > 0, (rows * q).sum(1) / denom.clamp_min(1e-12), best)
        err = ((rows - candidate[:, None] * quantize_levels(rows, candidate[:, None], bits, signed)) ** 2).sum(1)
        improved = err < best_err
        best_err, best = torch.where(improved, err, best_err), torch.where(improved, candidate, best)
    if per_channel:
        return best.reshape(w.shape[0], *([1] * (w.ndim - 1)))
    return best.reshape(())

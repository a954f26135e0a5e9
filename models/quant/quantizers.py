"""Brevitas quantizers with learnable steps, and the MSQE-optimal initial weight step.

Weights (symmetric, narrow range, so 0 is a level and pruned weights stay 0), with ``L = 2^(n-1) - 1``::

    Q_n(w; δ) = δ · clip(round(w / δ), -L, L)          (n = 2 is ternary {-δ, 0, δ})

Activations, unsigned after ReLU/ReLU6 (``U = 2^m - 1``) or signed where a tensor can be negative::

    Q_m(x; Δ) = Δ · clip(round(x / Δ), 0, U)           Q_m(x; Δ) = Δ · clip(round(x / Δ), -2^(m-1), 2^(m-1)-1)

Signed activations use the full two's-complement range, as int8 (and deployment's uint8 with zero-point 128) holds
it: a narrow ±(2^(m-1)-1) range would saturate one step earlier than onnxruntime's integer kernels at the negative
end, a difference that deep networks amplify. Brevitas learns a *threshold* ``T`` and uses the step ``T / L``
for weights, ``T / U`` for unsigned and ``T / 2^(m-1)`` for signed activations (:func:`act_divisor`), so a step is
set by initialising the threshold to step × that divisor. Gradients reach the float weights through the
straight-through estimator (STE) and the threshold through Brevitas's scale gradient. Bit-widths from 2 to 8 are
supported.
"""

from __future__ import annotations

import torch
from brevitas.inject.enum import ScalingImplType
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

from runtime import ToolchainError
from runtime.levels import max_level as _narrow_max_level

__all__ = [
    "BITS_RANGE",
    "LearnedIntAct",
    "LearnedUintAct",
    "LearnedWeight",
    "act_divisor",
    "act_levels",
    "check_bits",
    "max_level",
    "msqe_optimal_step",
    "msqe_optimal_step_from_samples",
    "quantize_levels",
]

BITS_RANGE = range(2, 9)


def check_bits(bits: int, what: str) -> int:
    """Validate a bit-width (2..8) with a message naming the setting."""
    if not isinstance(bits, int) or bits not in BITS_RANGE:
        raise ToolchainError(f"{what} must be an integer from 2 to 8, got {bits!r}")
    return bits


def max_level(bits: int, signed: bool = True) -> int:
    """Largest integer level: ``2^(n-1) - 1`` signed narrow range (:func:`runtime.levels.max_level`), ``2^n - 1``
    unsigned."""
    return _narrow_max_level(bits) if signed else 2**bits - 1


def act_levels(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of an activation quantizer: ``[0, 2^m − 1]`` unsigned, ``[−2^(m−1), 2^(m−1) − 1]`` signed."""
    return (-_narrow_max_level(bits) - 1, _narrow_max_level(bits)) if signed else (0, 2**bits - 1)


def act_divisor(bits: int, signed: bool) -> int:
    """Brevitas's threshold-to-step divisor for activations: ``2^(m−1)`` signed (full range), ``2^m − 1`` unsigned."""
    return 2 ** (bits - 1) if signed else 2**bits - 1


class LearnedWeight(Int8WeightPerTensorFloat):
    """Signed narrow-range weights with a learned threshold (``weight_scaling_init`` = δ·L)."""

    scaling_impl_type = ScalingImplType.PARAMETER


class LearnedUintAct(Uint8ActPerTensorFloat):
    """Unsigned activations with a learned threshold (``scaling_init`` = Δ·(2^m − 1))."""

    scaling_impl_type = ScalingImplType.PARAMETER


class LearnedIntAct(Int8ActPerTensorFloat):
    """Signed full-range activations with a learned threshold (``scaling_init`` = Δ·2^(m−1))."""

    scaling_impl_type = ScalingImplType.PARAMETER
    narrow_range = False


def quantize_levels(
    w: torch.Tensor, step: torch.Tensor, bits: int, signed: bool = True, narrow: bool = True
) -> torch.Tensor:
    """Integer levels ``clip(round(w/δ), -L, L)`` (``-L-1`` when not ``narrow``; ``[0, 2^n − 1]`` unsigned),
    as a float tensor of whole numbers."""
    hi = max_level(bits, signed)
    lo = (-hi if narrow else -hi - 1) if signed else 0
    return torch.clamp(torch.round(w / step), lo, hi)


@torch.no_grad()
def msqe_optimal_step(
    w: torch.Tensor,
    bits: int,
    per_channel: bool = False,
    signed: bool = True,
    grid: int = 64,
    refine: int = 10,
    max_samples: int = 65_536,
) -> torch.Tensor:
    """Step δ minimising ``Σ (w − Q(w; δ))²`` per tensor (shape ``()``) or per output channel (``(C, 1, …)``).

    Used for weights (signed) and, on calibration samples, for activations (unsigned after ReLU). Rows longer than
    ``max_samples`` are estimated on a fixed random subset of their values (the largest magnitude always kept).

    A grid search over ``δ = c · max|w| / L``, ``c ∈ (0, 1]``, then Lloyd-style refinement: with the levels
    ``q`` fixed, the best step is ``Σ w q / Σ q²``, and re-deriving ``q`` from it never increases the error.
    """
    rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    rows = rows.float()
    if rows.shape[1] > max_samples:
        keep = torch.randperm(rows.shape[1], generator=torch.Generator().manual_seed(0))[:max_samples]
        peak = rows.abs().argmax(dim=1, keepdim=True)
        rows = torch.cat([rows.gather(1, peak), rows[:, keep.to(rows.device)]], dim=1)
    best = _best_step(rows, torch.ones_like(rows), bits, signed, grid, refine)
    if per_channel:
        return best.reshape(w.shape[0], *([1] * (w.ndim - 1)))
    return best.reshape(())


@torch.no_grad()
def msqe_optimal_step_from_samples(values: torch.Tensor, bits: int, signed: bool, bins: int = 4096) -> float:
    """MSQE-optimal step of a large sample (activations), computed on its histogram.

    The values are binned into ``bins`` equal bins over their range; each bin centre stands for its count. With
    ``bins ≫ 2^m`` the centre-rounding error is far below the quantization error being minimised.
    """
    values = values.float().flatten()
    lo, hi = (float(values.min()), float(values.max())) if signed else (0.0, float(values.max()))
    if hi <= lo:
        return max(abs(hi), 1e-8) / max_level(bits, signed)
    counts = torch.histc(values, bins=bins, min=lo, max=hi)
    centres = lo + (torch.arange(bins, dtype=torch.float32) + 0.5) * (hi - lo) / bins
    nonzero = counts > 0
    rows, weights = centres[nonzero][None], counts[nonzero][None]
    step = float(_best_step(rows, weights, bits, signed, 64, 10, narrow=False)[0])  # activations: full range
    # Unsigned: the top level never lies above the largest value seen. Values bunched on a few points (a saturated
    # ReLU6: many at 0 and at 6) can pull the refined step past 6/255; the grid would then reach above 6, the ReLU6's
    # Clip would no longer be redundant, and onnxruntime would leave the convolution before it in float.
    return min(step, hi / max_level(bits, signed)) if not signed else step


def _best_step(
    rows: torch.Tensor,
    weights: torch.Tensor,
    bits: int,
    signed: bool,
    grid: int,
    refine: int,
    narrow: bool = True,
) -> torch.Tensor:
    """Per-row step minimising ``Σ weights · (rows − δ q)²`` (grid search, then Lloyd refinement)."""
    lim = max_level(bits, signed)
    amax = rows.abs().amax(dim=1).clamp_min(1e-12)  # (R,)

    def error(step: torch.Tensor) -> torch.Tensor:
        levels = quantize_levels(rows, step[:, None], bits, signed, narrow)
        return (weights * (rows - step[:, None] * levels) ** 2).sum(1)

    best_err = torch.full_like(amax, float("inf"))
    best = amax / lim
    for c in torch.linspace(1.0 / grid, 1.0, grid):
        step = amax * c / lim
        err = error(step)
        better = err < best_err
        best_err, best = torch.where(better, err, best_err), torch.where(better, step, best)
    for _ in range(refine):
        q = quantize_levels(rows, best[:, None], bits, signed, narrow)
        denom = (weights * q * q).sum(1)
        candidate = torch.where(denom > 0, (weights * rows * q).sum(1) / denom.clamp_min(1e-12), best)
        err = error(candidate)
        improved = err < best_err
        best_err, best = torch.where(improved, err, best_err), torch.where(improved, candidate, best)
    return best

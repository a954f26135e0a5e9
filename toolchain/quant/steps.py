"""How the weight steps δ learn during quant-aware training, and how far they and the weights have moved.

Step rules, by name (``--step-rule``):

* ``task``  – δ is a parameter learned from the task loss (Brevitas's LSQ-like gradient through the threshold), as
  the other parameters are. Under a stiff MSQE pull this gradient is always positive for pinned weights, so δ
  shrinks every step and drags the weights with it (see BENCHMARKS.md, LeNet-5 W2A8 at λ = 10).
* ``refit`` – δ takes no gradient; every ``refit_every`` steps it is re-fitted to the current weights by the
  closed-form MSQE minimiser for fixed levels, ``δ = Σ w·q / Σ q²`` with ``q = clip(round(w/δ), −L, L)``, per
  output channel (or per layer with ``--no-per-channel``). The paper's earlier version: each layer's step is
  "optimized in training to minimize the MSQE". One re-fit never increases the MSQE.
* ``msqe``  – δ takes no task gradient; after every optimizer step it takes one gradient step on the MSQE of its own
  weights, ``R_c(δ) = mean (w − δq)²`` with the levels q held, at its own constant rate ``step_lr``. The gradient is
  scaled by the inverse of R_c's curvature (``2 Σq² / n``, a constant for fixed levels) instead of LSQ's heuristic
  ``1/√(n·Q_p)``: that makes the update ``δ ← δ + step_lr · (δ_fit − δ)``, free of the weights' scale and of the layer's
  size, so one rate suits every layer. ``step_lr = 1`` is the ``refit`` rule; smaller rates let δ follow the weights
  with a lag of about ``1/step_lr`` steps.

:class:`StepDrift` measures, per layer, the median ``δ/δ₀`` and ``‖w‖/‖w₀‖`` against the start of training.
"""

from __future__ import annotations

from typing import Any

import torch

from models.quant.prepare import max_level, weight_bits, weight_step, weight_threshold
from models.quant.quantizers import quantize_levels

__all__ = ["STEP_RULES", "StepDrift", "freeze_steps", "refit_steps"]

STEP_RULES = ("task", "refit", "msqe")


def freeze_steps(layers: list[Any]) -> None:
    """Take the steps out of gradient descent (the ``refit`` and ``msqe`` rules set them themselves)."""
    for layer in layers:
        weight_threshold(layer).requires_grad_(False)


@torch.no_grad()
def refit_steps(layers: list[Any], rate: float = 1.0) -> None:
    """Move every layer's step(s) ``rate`` of the way to the closed-form MSQE fit ``δ_fit = Σ w·q / Σ q²`` over each
    step's weights (``rate = 1``: a full re-fit; smaller: one curvature-scaled gradient step on the MSQE)."""
    for layer in layers:
        w, step, bits = layer.weight, weight_step(layer), weight_bits(layer)
        q = quantize_levels(w, step, bits)
        dims = tuple(range(1, w.ndim)) if step.ndim else tuple(range(w.ndim))
        qq = (q * q).sum(dims, keepdim=bool(step.ndim))
        fitted = torch.where(qq > 0, (w * q).sum(dims, keepdim=bool(step.ndim)) / qq.clamp_min(1e-12), step)
        threshold = weight_threshold(layer)
        moved = step + rate * (fitted - step)
        threshold.copy_((moved * max_level(bits)).reshape(threshold.shape).to(threshold.dtype))


class StepDrift:
    """Per layer: the median of ``δ/δ₀`` over its steps and ``‖w‖/‖w₀‖``, against a snapshot taken at creation."""

    def __init__(self, named_layers: list[tuple[str, Any]]) -> None:
        self.layers = named_layers
        with torch.no_grad():
            self.steps0 = {n: weight_step(m).detach().clone() for n, m in named_layers}
            self.norms0 = {n: float(m.weight.detach().norm()) for n, m in named_layers}

    @torch.no_grad()
    def per_layer(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, layer in self.layers:
            ratio = (weight_step(layer) / self.steps0[name].clamp_min(1e-30)).flatten()
            out[name] = {
                "step_ratio": float(ratio.median()),
                "norm_ratio": float(layer.weight.norm()) / max(self.norms0[name], 1e-30),
            }
        return out

    def summary(self) -> dict[str, Any]:
        """``step_ratio_median``/``_min`` over layers, ``norm_ratio_median``, and every layer's two ratios."""
        layers = self.per_layer()
        steps = torch.tensor([v["step_ratio"] for v in layers.values()])
        norms = torch.tensor([v["norm_ratio"] for v in layers.values()])
        return {
            "step_ratio_median": float(steps.median()),
            "step_ratio_min": float(steps.min()),
            "norm_ratio_median": float(norms.median()),
            "layers": layers,
        }

"""How the weight steps δ learn during quant-aware training, and how far they and the weights have moved.

Step rules, by name (``--step-rule``):

* ``task``  – δ is a parameter learned from the task loss (Brevitas's LSQ-like gradient through the threshold), as
  the other parameters are. Under a stiff MSQE pull this gradient is always positive for pinned weights, so δ
  shrinks every step and drags the weights with it (see BENCHMARKS.md, LeNet-5 W2A8 at λ = 10).
* ``refit`` – δ takes no gradient; every ``refit_every`` steps it is re-fitted to the current weights by the
  closed-form MSQE minimiser for fixed levels, ``δ = Σ w·q / Σ q²`` with ``q = clip(round(w/δ), −L, L)``, per
  output channel (or per layer with ``--no-per-channel``). The paper's earlier version: each layer's step is
  "optimized in training to minimize the MSQE". One re-fit never increases the MSQE.

:class:`StepDrift` measures, per layer, the median ``δ/δ₀`` and ``‖w‖/‖w₀‖`` against the start of training.
"""

from __future__ import annotations

from typing import Any

import torch

from .prepare import max_level, weight_bits, weight_step, weight_threshold
from .quantizers import quantize_levels

__all__ = ["STEP_RULES", "StepDrift", "freeze_steps", "refit_steps"]

STEP_RULES = ("task", "refit")


def freeze_steps(layers: list[Any]) -> None:
    """Take the steps out of gradient descent (the ``refit`` rule sets them itself)."""
    for layer in layers:
        weight_threshold(layer).requires_grad_(False)


@torch.no_grad()
def refit_steps(layers: list[Any]) -> None:
    """One closed-form MSQE re-fit of every layer's step(s): ``δ = Σ w·q / Σ q²`` over each step's weights."""
    for layer in layers:
        w, step, bits = layer.weight, weight_step(layer), weight_bits(layer)
        q = quantize_levels(w, step, bits)
        dims = tuple(range(1, w.ndim)) if step.ndim else tuple(range(w.ndim))
        qq = (q * q).sum(dims, keepdim=bool(step.ndim))
        fitted = torch.where(qq > 0, (w * q).sum(dims, keepdim=bool(step.ndim)) / qq.clamp_min(1e-12), step)
        threshold = weight_threshold(layer)
        threshold.copy_((fitted * max_level(bits)).reshape(threshold.shape).to(threshold.dtype))


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

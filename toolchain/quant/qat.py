"""Quant-aware training (and post-training quantization) as a recipe of the shared training loop.

Build: the float model (registry name + ``float_checkpoint``, a toolchain checkpoint or plain state dict) →
``prepare_qat`` → activation steps from ``calib_batches`` un-augmented training batches. Train: the task loss on the
quantized forward pass plus the MSQE penalty ``e^α R_n − λα`` (``reg = msqe``), ``e^{α₀} R_n`` (``fixed``) or nothing
(``none``). Parameter groups: weights with weight decay; biases, batch norm and the learned steps without; α alone,
with its own learning rate and no decay. ``epochs = 0`` is post-training quantization: calibrate, evaluate, save.
With ``keep_zeros`` (default) the weights that are exactly 0 in the float checkpoint (a pruned model) are masked
and stay 0 after every step, so a pruned model reaches the exported integer levels with its zeros.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runtime import ToolchainError

from ..config import TrainConfig, opt
from ..data import DataBundle
from ..modeling import build_model, load_weights
from ..pruning.masks import Masks
from ..training.distributed import DistEnv
from ..training.penalty import coefficient_group
from ..training.recipe import PenaltyRecipe, register_recipe
from .config import QuantConfig
from .prepare import calibrate, prepare_qat, weight_bits, weight_step
from .regularizer import MODES, MSQERegularizer, quant_weight_layers
from .steps import STEP_RULES, StepDrift, freeze_steps, refit_steps

__all__ = ["QATConfig", "QATRecipe"]


@dataclasses.dataclass(frozen=True)
class QATConfig(QuantConfig, TrainConfig):
    """A quant-aware training run: a float training config plus quantization and regularizer settings."""

    float_checkpoint: str | None = opt(None, "float starting point: toolchain checkpoint or plain state dict")
    reg: str = opt(
        "msqe", "regularizer: msqe (learnable coefficient), fixed (α frozen at α₀), none (plain QAT)", choices=MODES
    )
    lam: float = opt(1e-3, "λ, in units of the loss: at balance the penalty e^α·R_n equals λ")
    alpha_lr: float = opt(
        1e-2, "learning rate of α (SGD: relative to λ, the group's rate is alpha_lr/λ; AdamW: as is; no weight decay)"
    )
    step_grad: bool = opt(False, "let the regularizer's gradient reach the weight steps δ")
    step_rule: str = opt(
        "task",
        "how the weight steps δ learn: task (from the task loss, LSQ-like) or refit (no gradient; re-fitted to the "
        "weights by the closed-form MSQE minimiser every refit_every steps)",
        choices=STEP_RULES,
    )
    refit_every: int = opt(1, "with step_rule = refit: re-fit the steps every N optimizer steps")
    keep_zeros: bool = opt(True, "weights that are exactly 0 in the float checkpoint (pruned) stay 0 (masks)")
    plot_layer: str | None = opt(None, "layer whose weight histogram is plotted (default: the largest inner one)")
    out_dir: str = opt("runs/qat", "output folder: config.toml, metrics.jsonl, last.pt, plots")
    epochs: int = opt(3, "QAT epochs (0: post-training quantization only)")
    lr: float = opt(0.01, "peak learning rate")
    log_every: int = opt(1, "write a step record (α, e^α, R_n, task loss) every N steps")

    @classmethod
    def min_epochs(cls) -> int:
        return 0

    def __post_init__(self) -> None:
        TrainConfig.__post_init__(self)
        QuantConfig.__post_init__(self)
        self._check_choice("reg", MODES)
        self._check(self.lam > 0 and math.isfinite(self.lam), f"lam must be a positive number, got {self.lam}")
        self._check(self.alpha_lr >= 0, "alpha_lr must be ≥ 0")
        self._check_choice("step_rule", STEP_RULES)
        self._check(self.refit_every >= 1, f"refit_every must be ≥ 1, got {self.refit_every}")


@register_recipe("qat")
class QATRecipe(PenaltyRecipe):
    """Quant-aware training with the MSQE regularizer (see the module docstring).

    ``float_weights=False`` skips loading the float checkpoint (used when a QAT checkpoint's state follows).
    """

    config: QATConfig
    config_class = QATConfig
    log_names = ("alpha", "msqe")

    def __init__(self, config: QATConfig, float_weights: bool = True) -> None:
        super().__init__(config)
        self.float_weights = float_weights
        self.regularizer: MSQERegularizer | None = None
        self.initial: dict[str, torch.Tensor] = {}
        self.masks = Masks([])
        self.steps_done = 0  # optimizer steps taken (checkpointed: the refit schedule survives a resume)

    def build(self, bundle: DataBundle, env: DistEnv) -> nn.Module:
        c = self.config
        model = build_model(c.model, bundle, c.model_args)
        if self.float_weights:
            if c.float_checkpoint is None:
                raise ToolchainError("QAT needs --float-checkpoint (a float checkpoint or state dict to start from)")
            load_weights(model, c.float_checkpoint)
        if c.io_sign == "auto":  # images in [0, 1] in and out for super-resolution; normalised data elsewhere
            c = c.replace(io_sign="unsigned" if bundle.task == "super_resolution" else "signed")
        qat = prepare_qat(model.to(env.device), c).to(env.device)
        # Every process calibrates on the same (first, un-augmented) batches, so all start from identical steps.
        batches = bundle.train.batches(c.batch_size, seed=c.seed, train=False)
        calibrate(qat, (x.to(env.device) for x, _ in itertools.islice(batches, c.calib_batches)))
        self.attach(MSQERegularizer(qat, c.lam, c.reg, c.step_grad).to(env.device))
        if c.keep_zeros and self.float_weights:
            self.masks = Masks.from_zeros([m for _, m in quant_weight_layers(qat)])
        self.layer = c.plot_layer or _largest_inner_layer(qat, c.wbits)
        self.initial = _snapshot(qat, self.layer)
        named = quant_weight_layers(qat)
        self.drift = StepDrift(named)
        if c.step_rule == "refit":
            freeze_steps([m for _, m in named])
        return qat

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "scaling_impl" not in name else no_decay).append(p)
        assert self.regularizer is not None
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        groups += coefficient_group(self.regularizer, self.config.optimizer, self.config.alpha_lr)
        return groups

    def after_step(self) -> None:
        self.masks.apply()
        super().after_step()
        self.steps_done += 1
        if self.config.step_rule == "refit" and self.steps_done % self.config.refit_every == 0:
            refit_steps([m for _, m in self.drift.layers])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps_done": self.steps_done}  # keeps the refit schedule on resume

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state.get("steps_done", 0))

    def eval_extras(self) -> dict[str, Any]:
        assert self.regularizer is not None
        return {
            "pruned_weights": self.masks.pruned,
            "near_level_share": self.regularizer.near_level_share(),
            "alpha": self.regularizer.alpha.item(),
            **self.drift.summary(),
        }

    def finish(self, out_dir: Path, model: nn.Module, records: list[dict[str, Any]]) -> dict[str, Any]:
        from ..reports.plots import plot_convergence, plot_weight_histogram

        paths = [plot_convergence(records, out_dir / "convergence.png", self.config)]
        final = _snapshot(model, self.layer)
        if self.initial:
            paths.append(plot_weight_histogram(self.initial, final, self.layer, out_dir / "weights.png"))
        assert self.regularizer is not None
        return {"plots": [str(p) for p in paths], "near_level_share": self.regularizer.near_level_share()}


def _largest_inner_layer(model: nn.Module, bits: int) -> str:
    layers: list[tuple[str, Any]] = [(n, m) for n, m in quant_weight_layers(model) if weight_bits(m) == bits]
    layers = layers or quant_weight_layers(model)
    return max(layers, key=lambda nm: nm[1].weight.numel())[0]


@torch.no_grad()
def _snapshot(model: nn.Module, layer_name: str) -> dict[str, torch.Tensor]:
    """Weights of one layer in units of their step (w/δ) and its bit-width: levels sit at the integers."""
    layer: Any = model.get_submodule(layer_name)
    return {
        "w_over_step": (layer.weight / weight_step(layer)).flatten().cpu().clone(),
        "bits": torch.tensor(weight_bits(layer)),
    }

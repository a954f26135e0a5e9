"""Quant-aware training (and post-training quantization) as a recipe of the shared training loop.

Build: the float model (registry name + ``float_checkpoint``, a toolchain checkpoint or plain state dict) →
``prepare_qat`` → activation steps from ``calib_batches`` un-augmented training batches. Train: the task loss on the
quantized forward pass plus the MSQE penalty ``e^α R_n − λα`` (``reg = msqe``), ``e^{α₀} R_n`` (``fixed``) or nothing
(``none``). Parameter groups: weights with weight decay; biases, batch norm and the learned steps without; α alone,
with its own learning rate and no decay. ``epochs = 0`` is post-training quantization: calibrate, evaluate, save.
With ``keep_zeros`` (default) the weights that are exactly 0 in the float checkpoint (a pruned model) are masked
and stay 0 after every step, so a pruned model reaches the exported integer levels with its zeros.

**Defaults** (shared by ``qat`` and ``compress``; BENCHMARKS.md, "The settling experiment"): λ = 1, α rising from a
hundredth of its balance by its own clipped steps (``alpha_update = rise``), and ``step_rule = auto``: the steps
re-fitted by the MSQE under a regularizer, learned from the task loss in plain QAT. The combination that collapses
(task-learned steps under an MSQE pull, the defaults before config version 3) stays available for ablations and
prints :func:`collapse_risk` at start.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.quant.islands import float_islands
from models.quant.prepare import calibrate, prepare_qat, weight_bits, weight_step
from runtime import ToolchainError

from ..config import TrainConfig, opt
from ..data import DataBundle
from ..modeling import build_model, load_weights
from ..pruning.masks import Masks
from ..training.distributed import DistEnv
from ..training.penalty import coefficient_group
from ..training.recipe import PenaltyRecipe, register_recipe
from .config import QuantConfig
from .ptq import MOVES_WEIGHTS, CalibrationBatches, parse_stages, reconstruct
from .regularizer import MODES, MSQERegularizer, quant_weight_layers
from .steps import STEP_RULES, StepDrift, freeze_steps, refit_steps

__all__ = ["ALPHA_UPDATES", "QATConfig", "QATRecipe", "collapse_risk"]

ALPHA_UPDATES = ("rise", "optimizer")
AUTO = "auto"
RISE_START = 4.6  # e-folds below balance that α starts at under reg = msqe by default: a hundredth of the balance


@dataclasses.dataclass(frozen=True)
class QATConfig(QuantConfig, TrainConfig):
    """A quant-aware training run: a float training config plus quantization and regularizer settings."""

    float_checkpoint: str | None = opt(None, "float starting point: toolchain checkpoint or plain state dict")
    reg: str = opt(
        "msqe", "regularizer: msqe (learnable coefficient), fixed (α frozen at α₀), none (plain QAT)", choices=MODES
    )
    lam: float = opt(
        1.0,
        "λ, in units of the loss: at balance the penalty e^α·R_n equals λ (1 puts nearly all 2-bit weights on their "
        "levels at no measured accuracy cost; 10 pins them all)",
    )
    alpha_lr: float = opt(
        1e-2, "learning rate of α (SGD: relative to λ, the group's rate is alpha_lr/λ; AdamW: as is; no weight decay)"
    )
    alpha_start: float | None = opt(
        None,
        "start α this many e-folds below balance: e^α₀ = e^(−alpha_start)·λ/R_n(W₀) (0: at balance; 4.6: a "
        f"hundredth). Default: {RISE_START} with reg = msqe (the coefficient rises from a hundredth of its "
        "balance, as in the paper), 0 with reg = fixed (the coefficient fixed at balance)",
    )
    alpha_update: str = opt(
        "rise",
        "how the learnable α moves: rise (plain gradient steps at a constant rate, clipped to ±rate per step; the "
        "rate is set by alpha_rise when alpha_start > 0, else alpha_lr) or optimizer (in the main optimizer: "
        "momentum, cosine decay, rate alpha_lr)",
        choices=ALPHA_UPDATES,
    )
    alpha_rise: float = opt(
        0.5, "with alpha_update = rise and alpha_start > 0: the share of the training steps α takes to climb to balance"
    )
    alpha_stop: float = opt(
        0.99, "with alpha_update = rise: freeze α once this share of weights lies within δ/10 of its level (> 1: never)"
    )
    step_grad: bool = opt(False, "let the regularizer's gradient reach the weight steps δ")
    step_rule: str = opt(
        "auto",
        "how the weight steps δ learn: auto (refit with reg = msqe or fixed, task with reg = none: each the best "
        "measured rule for its arm; for a fair regularizer-against-plain comparison name one rule for both), task "
        "(from the task loss, LSQ-like; the most accurate for plain QAT, but under an MSQE pull the steps shrink "
        "until the network fails), refit (no gradient; re-fitted to the weights by the closed-form MSQE minimiser "
        "every refit_every steps) or msqe (no task gradient; one curvature-scaled gradient step on the MSQE per "
        "optimizer step, at rate step_lr)",
        choices=(AUTO, *STEP_RULES),
    )
    refit_every: int = opt(1, "with step_rule = refit: re-fit the steps every N optimizer steps")
    step_lr: float = opt(0.1, "with step_rule = msqe: the steps' constant rate (1 = a full re-fit every step)")
    keep_zeros: bool = opt(True, "weights that are exactly 0 in the float checkpoint (pruned) stay 0 (masks)")
    ptq: str = opt(
        "",
        "post-training reconstruction after calibration, on the calib_batches images: stages in order, comma-"
        "separated, from Brevitas's algorithms: gptq, gpfq, qronos, learned-round (AdaRound, layer by layer), "
        "bias-correction, calibrate (re-fit the activation steps); empty: weights rounded to the nearest level. "
        "Pruned weights stay 0",
    )
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
        self._check_choice("step_rule", (AUTO, *STEP_RULES))
        self._check(self.refit_every >= 1, f"refit_every must be ≥ 1, got {self.refit_every}")
        self._check(0 < self.step_lr <= 1, f"step_lr must be in (0, 1], got {self.step_lr}")
        start = self.alpha_start
        self._check(start is None or (math.isfinite(start) and start >= 0), "alpha_start must be ≥ 0 e-folds")
        self._check_choice("alpha_update", ALPHA_UPDATES)
        self._check(0 < self.alpha_rise <= 1, f"alpha_rise must be in (0, 1], got {self.alpha_rise}")
        self._check(self.alpha_stop > 0, f"alpha_stop must be > 0, got {self.alpha_stop}")
        try:
            parse_stages(self.ptq)
        except ToolchainError as e:
            self._check(False, str(e))

    @property
    def steps_by(self) -> str:
        """The step rule in force: ``step_rule``, with ``auto`` resolved (refit under a regularizer, task without)."""
        if self.step_rule != AUTO:
            return self.step_rule
        return "task" if self.reg == "none" else "refit"

    @property
    def alpha_below(self) -> float:
        """The e-folds below balance that α starts at: ``alpha_start``, or its default for ``reg``."""
        if self.alpha_start is not None:
            return self.alpha_start
        return RISE_START if self.reg == "msqe" else 0.0


def collapse_risk(config: QATConfig) -> str | None:
    """One line naming the risk of a setting known to collapse, or None (BENCHMARKS.md, settling)."""
    if config.reg != "none" and config.epochs > 0 and MOVES_WEIGHTS & set(parse_stages(config.ptq)):
        return (
            f"warning: --reg {config.reg} after --ptq {config.ptq}: reconstruction leaves every weight on its level, "
            "so R_n starts at 0 and the coefficient's balance e^α = λ/R_n is unbounded; α starts at its stability "
            "cap (SGD) instead, the stiffest pull (not measured further); --reg none is the setting measured after "
            "reconstruction"
        )
    if config.reg != "none" and config.steps_by == "task":
        return (
            f"warning: --reg {config.reg} with --step-rule task: steps learned from the task loss shrink under the "
            "MSQE pull until the network fails (measured: LeNet-5 W2A8 on Fashion-MNIST at λ = 10 fell to 8.2 % "
            "with α at balance and 18.3 % with α rising, against 89.4 % for plain QAT; BENCHMARKS.md, the settling "
            "experiment); the default --step-rule auto re-fits them by the MSQE instead"
        )
    return None


@register_recipe("qat")
class QATRecipe(PenaltyRecipe):
    """Quant-aware training with the MSQE regularizer (see the module docstring).

    ``restoring=True`` builds the shell a QAT checkpoint's state is loaded over: no float weights, no post-training
    stage, no masks.
    """

    config: QATConfig
    config_class = QATConfig
    log_names = ("alpha", "msqe")

    def __init__(self, config: QATConfig, restoring: bool = False) -> None:
        super().__init__(config)
        self.restoring = restoring
        self.regularizer: MSQERegularizer | None = None
        self.initial: dict[str, torch.Tensor] = {}
        self.masks = Masks([])
        self.steps_done = 0  # optimizer steps taken (checkpointed: the refit schedule survives a resume)
        self.alpha_rate = 0.0  # the rise update's constant rate (set in build)
        self.alpha_stopped: int | None = None  # the step at which the rise update froze α (alpha_stop)
        self.near_level_start = math.nan  # share of weights within δ/10 of a level after calibration
        self.islands: dict[str, str] = {}  # layers without a quantization rule, computed in float
        self.ptq_seconds: dict[str, float] = {}  # wall time of each post-training stage (config.ptq)

    def build(self, bundle: DataBundle, env: DistEnv) -> nn.Module:
        c = self.config
        model = build_model(c.model, bundle, c.model_args)
        if not self.restoring:
            if c.float_checkpoint is None:
                raise ToolchainError("QAT needs --float-checkpoint (a float checkpoint or state dict to start from)")
            load_weights(model, c.float_checkpoint)
        if c.io_sign == "auto":  # images in [0, 1] in and out for super-resolution; normalised data elsewhere
            c = c.replace(io_sign="unsigned" if bundle.task == "super_resolution" else "signed")
        qat = prepare_qat(model.to(env.device), c).to(env.device)
        self.islands = float_islands(qat)
        if self.islands and env.is_main and not self.restoring:  # once, when training starts (not on restore)
            shown = ", ".join(f"{name} ({kind})" for name, kind in self.islands.items())
            print(f"float islands (no quantization rule: float between dequantize and quantize): {shown}",
                  file=sys.stderr)  # fmt: skip
        risk = collapse_risk(c)
        if risk and env.is_main and not self.restoring:
            print(risk, file=sys.stderr)
        if c.keep_zeros and not self.restoring:  # the float model's zeros (pruned), before reconstruction rounds
            self.masks = Masks.from_zeros([m for _, m in quant_weight_layers(qat)])  # more weights to level 0
        if not self.restoring:  # calibration and reconstruction (on restore, the checkpoint's state replaces both)
            # Every process calibrates on the same (first, un-augmented) batches, so all start from identical steps.
            batches = CalibrationBatches(bundle.train.batches(c.batch_size, seed=c.seed, train=False),
                                         c.calib_batches, env.device)  # fmt: skip
            calibrate(qat, batches)
            log = (lambda line: print(line, file=sys.stderr)) if env.is_main else (lambda line: None)
            self.ptq_seconds = reconstruct(qat, batches, parse_stages(c.ptq), log)
        regularizer = MSQERegularizer(qat, c.lam, c.reg, c.step_grad)
        if c.alpha_below:
            regularizer.reset_alpha(below=c.alpha_below)
        if c.alpha_update == "rise":
            regularizer.alpha.requires_grad_(False)  # moved by relax_alpha, not by autograd and the optimizer
        self.attach(regularizer.to(env.device))
        total_steps = max(1, bundle.train.steps(c.batch_size, world=env.world) * c.epochs)
        self.alpha_rate = c.alpha_below / (c.alpha_rise * total_steps) if c.alpha_below else c.alpha_lr
        self.near_level_start = regularizer.near_level_share()
        self.layer = c.plot_layer or _largest_inner_layer(qat, c.wbits)
        self.initial = _snapshot(qat, self.layer)
        self.drift = StepDrift(quant_weight_layers(qat))
        return qat

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        if self.config.steps_by in ("refit", "msqe"):  # here, after any state load: Brevitas re-creates the steps
            freeze_steps([m for _, m in quant_weight_layers(model)])  # parameter when it loads a state dict
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
        if self.config.alpha_update == "optimizer":
            groups += coefficient_group(self.regularizer, self.config.optimizer, self.config.alpha_lr)
        return groups

    def after_step(self) -> None:
        c, reg = self.config, self.regularizer
        assert reg is not None
        self.masks.apply()
        self.steps_done += 1
        if c.alpha_update == "rise" and self.alpha_stopped is None:
            reg.relax_alpha(self.alpha_rate)
            if reg.kind == "learned" and reg.near_level_share() >= c.alpha_stop:
                self.alpha_stopped = self.steps_done  # the runaway policy: nearly all weights are on their levels
        super().after_step()  # the stability cap, after every way α can move
        layers = [m for _, m in self.drift.layers]
        if c.steps_by == "refit" and self.steps_done % c.refit_every == 0:
            refit_steps(layers)
        elif c.steps_by == "msqe":
            refit_steps(layers, rate=c.step_lr)

    def state_dict(self) -> dict[str, Any]:
        assert self.regularizer is not None
        return {  # the refit schedule and the coefficient's policy survive a resume
            **super().state_dict(),
            "steps_done": self.steps_done,
            "alpha_stopped": self.alpha_stopped,
            "alpha_capped_steps": int(self.regularizer.capped_steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state.get("steps_done", 0))
        self.alpha_stopped = state.get("alpha_stopped")
        if self.regularizer is not None:
            self.regularizer.capped_steps.fill_(int(state.get("alpha_capped_steps", 0)))

    def eval_extras(self) -> dict[str, Any]:
        assert self.regularizer is not None
        return {
            "pruned_weights": self.masks.pruned,
            "near_level_share": self.regularizer.near_level_share(),
            "near_level_share_start": self.near_level_start,
            "alpha": self.regularizer.alpha.item(),
            "alpha_capped_steps": int(self.regularizer.capped_steps),
            "alpha_stopped_step": self.alpha_stopped,
            **self.drift.summary(),
        }

    def finish(self, out_dir: Path, model: nn.Module, records: list[dict[str, Any]]) -> dict[str, Any]:
        from ..reports.plots import plot_convergence, plot_weight_histogram

        paths = [plot_convergence(records, out_dir / "convergence.png", self.config)]
        final = _snapshot(model, self.layer)
        if self.initial:
            paths.append(plot_weight_histogram(self.initial, final, self.layer, out_dir / "weights.png"))
        assert self.regularizer is not None
        return {
            "plots": [str(p) for p in paths],
            "near_level_share": self.regularizer.near_level_share(),
            "float_islands": self.islands,
            "ptq_seconds": self.ptq_seconds,
        }


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

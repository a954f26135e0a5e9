"""The pruning phase as a recipe of the shared training loop: partial-L2 (or plain) training, then a hard prune.

Build: the float model from ``float_checkpoint``; the prunable layers (``protect`` excluded); the partial L2
regularizer. Train: task loss + ``e^β P_r − λ_p β`` (``method = partial-l2``) or the task loss alone
(``magnitude``; ``epochs = 0`` prunes the checkpoint as it is). Finish: zero every prunable weight with
``|w| ≤ θ_r``, evaluate the pruned model and write ``pruned.pt``, the float starting point of quant-aware
training (its zeros are the masks; see :mod:`toolchain.pruning.masks`), plus ``pruning.png``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from torch import nn

from runtime import ToolchainError

from ..config import TrainConfig, opt
from ..data import DataBundle
from ..modeling import build_model, load_weights
from ..training.checkpoint import save_checkpoint
from ..training.distributed import DistEnv
from ..training.loop import evaluate
from ..training.optim import param_groups
from ..training.penalty import coefficient_group
from ..training.recipe import PenaltyRecipe, register_recipe
from .masks import hard_prune
from .regularizer import METHODS, PartialL2Regularizer
from .selection import PROTECT_RULES, SCOPES, prunable_layers, weighted_layers

__all__ = ["PruneConfig", "PruneRecipe"]


@dataclasses.dataclass(frozen=True)
class PruneConfig(TrainConfig):
    """A pruning run: float training settings plus the target ratio, scope, protected layers and regularizer."""

    float_checkpoint: str | None = opt(None, "float model to prune: toolchain checkpoint or plain state dict")
    method: str = opt("partial-l2", "partial-l2 (learnable partial L2 term) or magnitude (no term)", choices=METHODS)
    ratio: float = opt(0.5, "target share r of the prunable weights set to 0 (0 ≤ r < 1)")
    scope: str = opt("layer", "θ_r per layer, or one global θ_r over all prunable weights", choices=SCOPES)
    protect: str = opt(
        "first,last,depthwise",
        f"comma-separated layers never pruned: rules ({', '.join(PROTECT_RULES)}) or module-name patterns",
    )
    lam_p: float = opt(1.0, "λ_p, in units of the loss: at balance the penalty e^β·P_r equals λ_p")
    beta_lr: float = opt(0.01, "learning rate of β (SGD: relative to λ_p; AdamW: as is; no weight decay)")
    out_dir: str = opt("runs/prune", "output folder: config.toml, metrics.jsonl, last.pt, pruned.pt, pruning.png")
    epochs: int = opt(3, "pruning-phase epochs (0: prune the float checkpoint as it is)")
    lr: float = opt(0.01, "peak learning rate")
    log_every: int = opt(1, "write a step record (β, e^β, P_r, task loss) every N steps")

    @classmethod
    def min_epochs(cls) -> int:
        return 0

    @property
    def protected(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.protect.split(",") if p.strip())

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("method", METHODS)
        self._check_choice("scope", SCOPES)
        self._check(0.0 <= self.ratio < 1.0, f"ratio must be in [0, 1), got {self.ratio}")
        self._check(self.lam_p > 0 and math.isfinite(self.lam_p), f"lam_p must be a positive number, got {self.lam_p}")
        self._check(self.beta_lr >= 0, "beta_lr must be ≥ 0")


@register_recipe("prune")
class PruneRecipe(PenaltyRecipe):
    """Pruning phase (see the module docstring); ``restoring=True`` skips loading the float checkpoint."""

    config: PruneConfig
    config_class = PruneConfig
    log_names = ("beta", "partial_l2")

    def __init__(self, config: PruneConfig, restoring: bool = False) -> None:
        super().__init__(config)
        self.restoring = restoring
        self.regularizer: PartialL2Regularizer | None = None
        self.layers: list[Any] = []

    def build(self, bundle: DataBundle, env: DistEnv) -> nn.Module:
        c = self.config
        model = build_model(c.model, bundle, c.model_args)
        if not self.restoring:
            if c.float_checkpoint is None:
                raise ToolchainError("pruning needs --float-checkpoint (the float model to prune)")
            load_weights(model, c.float_checkpoint)
        model = model.to(env.device)
        self.layers = [m for _, m in prunable_layers(model, c.protected)]
        self.attach(PartialL2Regularizer(self.layers, c.ratio, c.scope, c.lam_p, c.method).to(env.device))
        self.bundle, self.device = bundle, env.device
        return model

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        assert self.regularizer is not None
        groups = param_groups(model, self.config.weight_decay)
        return groups + coefficient_group(self.regularizer, self.config.optimizer, self.config.beta_lr)

    def eval_extras(self) -> dict[str, float]:
        assert self.regularizer is not None
        return {"pruned_energy": self.regularizer.pruned_energy(), "beta": self.regularizer.alpha.item()}

    def finish(self, out_dir: Path, model: nn.Module, records: list[dict[str, Any]]) -> dict[str, Any]:
        from ..reports.plots import plot_penalty

        c = self.config
        assert self.regularizer is not None
        energy = self.regularizer.pruned_energy()
        masks = hard_prune(self.layers, c.ratio, c.scope)
        layers: list[Any] = [m for _, m in weighted_layers(model)]
        total = sum(int(m.weight.numel()) for m in layers)
        # nothing pruned: the model is the one the loop has just evaluated (the phase's own metrics)
        pruned = evaluate(model, self.bundle.test, self.bundle.task, self.device) if masks.pruned else None
        path = save_checkpoint(
            out_dir / "pruned.pt",
            model=model.state_dict(),
            config=c.to_dict(),
            recipe="prune",
            task=self.bundle.task,
            model_name=c.model,
            class_names=self.bundle.class_names,
        )
        facts: dict[str, Any] = {
            "pruned_checkpoint": str(path),
            "pruned_weights": masks.pruned,
            "prunable_sparsity": masks.pruned / max(self.regularizer.count, 1),
            "weight_sparsity": masks.pruned / max(total, 1),
            "pruned_energy": energy,
            "after_prune": pruned,  # None: as the phase's metrics
        }
        if c.method == "partial-l2" and c.epochs > 0:
            title = f"{c.model}: partial L2, r={c.ratio:g} ({c.scope}), λ_p={c.lam_p:g}"
            series = [("beta", "β", False), ("coef", "coefficient e^β", True), ("partial_l2", "partial L2 P_r", True)]
            facts["plots"] = [str(plot_penalty(records, out_dir / "pruning.png", series, title))]
        return facts

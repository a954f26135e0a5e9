"""Recipes: what a training phase builds and adds to the shared loop (float training is the base recipe).

The loop (:mod:`toolchain.training.loop`) owns data, optimisation, checkpoints, logging and distribution. A recipe
supplies only what differs between phases: how the model is built, the parameter groups, an extra loss term with
its log fields, work after each optimizer step, extra state to checkpoint, and what to write when training ends.
Recipes register by name so that a checkpoint can say which recipe rebuilds it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..data import DataBundle
from ..modeling import build_model
from .distributed import DistEnv
from .optim import param_groups

__all__ = ["RECIPES", "PenaltyRecipe", "Recipe", "register_recipe"]

RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(name: str):
    def deco(cls: type[Recipe]) -> type[Recipe]:
        cls.name = name
        RECIPES[name] = cls
        return cls

    return deco


@register_recipe("float")
class Recipe:
    """Float training: the registry model, decay on weights only, no extra loss."""

    name = "float"
    config_class: type[TrainConfig] = TrainConfig

    def __init__(self, config: TrainConfig, restoring: bool = False) -> None:
        """``restoring=True``: the built model is a shell that a checkpoint's state will be loaded over (eval,
        export, verify), so ``build`` skips the start of training: loading starting weights, calibration,
        post-training reconstruction, masks (float training starts from scratch either way)."""
        self.config = config

    def build(self, bundle: DataBundle, env: DistEnv) -> nn.Module:
        return build_model(self.config.model, bundle, self.config.model_args).to(env.device)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return param_groups(model, self.config.weight_decay)

    def penalty(self, logged: bool) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Extra loss term added to the task loss, and scalars to log (computed when ``logged`` or needed)."""
        return None, {}

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to keep pruned weights at 0)."""

    def eval_extras(self) -> dict[str, float]:
        """Scalars added to each epoch's evaluation record."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def finish(self, out_dir: Path, model: nn.Module, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Called on the main process after the last epoch; returns facts added to the result."""
        return {}


class PenaltyRecipe(Recipe):
    """A recipe whose extra loss is one :class:`toolchain.training.penalty.LearnedPenalty` (MSQE, partial L2).

    Subclasses set ``self.regularizer`` in ``build`` through :meth:`attach` and name the logged fields in
    ``log_names``: (the log-coefficient, the measure). Logged per step: those two and ``coef = e^α``.
    """

    log_names: tuple[str, str] = ("alpha", "measure")
    regularizer: Any = None

    def attach(self, regularizer: Any) -> Any:
        """Adopt ``regularizer`` with α capped at the optimizer's stability limit (see ``stability_cap``)."""
        from .penalty import stability_cap

        c = self.config
        regularizer.max_alpha = stability_cap(regularizer.count, c.optimizer, c.lr, c.momentum)
        regularizer.clamp_alpha()
        regularizer.capped_steps.zero_()  # count training steps only, not a start above the cap
        self.regularizer = regularizer
        return regularizer

    def penalty(self, logged: bool) -> tuple[torch.Tensor | None, dict[str, float]]:
        reg = self.regularizer
        assert reg is not None
        if reg.kind == "off" and not logged:
            return None, {}
        term, r = reg()
        if not logged:
            return term, {}
        alpha = reg.alpha.item()
        coefficient, measure = self.log_names
        return term, {coefficient: alpha, "coef": math.exp(alpha), measure: float(r)}

    def after_step(self) -> None:
        assert self.regularizer is not None
        self.regularizer.clamp_alpha()

    def state_dict(self) -> dict[str, Any]:
        return {"regularizer": self.regularizer.state_dict()} if self.regularizer is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.regularizer is not None and "regularizer" in state:
            self.regularizer.load_state_dict(state["regularizer"])

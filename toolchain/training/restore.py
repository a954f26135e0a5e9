"""Rebuild a trained model from a toolchain checkpoint, the way its training phase built it.

A checkpoint records its recipe ("float", "qat", ...) and frozen config; the recipe rebuilds the module (e.g.
``prepare_qat`` for quant-aware models) and the saved state is loaded into it. Commands that consume trained
models (eval, export, verify) share this one path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..data import DataBundle
from .checkpoint import load_checkpoint
from .distributed import DistEnv
from .loop import load_bundle
from .recipe import RECIPES

__all__ = ["Restored", "restore"]


@dataclass
class Restored:
    model: nn.Module
    config: TrainConfig
    recipe: str
    bundle: DataBundle


def restore(path: str | Path, **data_overrides: Any) -> Restored:
    """The checkpoint's model (on CPU, eval mode), config, recipe name and data bundle.

    ``data_overrides`` (``data``, ``data_dir``) replace the checkpoint's data set when given (not ``None``); the
    training subset is dropped so that evaluation sees the whole test split.
    """
    from ..pruning import recipe  # noqa: F401 - registers the "prune" recipe
    from ..quant import qat  # noqa: F401 - registers the "qat" recipe

    ckpt = load_checkpoint(path)
    name = ckpt.get("recipe", "float")
    recipe_cls = RECIPES[name]
    config = recipe_cls.config_class.from_dict(ckpt["config"])
    changes = {k: v for k, v in data_overrides.items() if v is not None}
    config = config.replace(**changes, subset=None)
    bundle = load_bundle(config)
    model = recipe_cls(config, float_weights=False).build(bundle, DistEnv(0, 1, 0, torch.device("cpu")))
    model.load_state_dict(ckpt["model"])
    return Restored(model.eval(), config, name, bundle)

"""Rebuild a trained model from a toolchain checkpoint, the way its training phase built it.

A checkpoint records its recipe ("float", "qat", ...) and frozen config; the recipe rebuilds the module (e.g.
``prepare_qat`` for quant-aware models) and the saved state is loaded into it. Commands that consume trained
models (eval, export, verify) share this one path.

Checkpoints are files people share, so nothing in one may choose code to import. A registry model name is safe (it
only picks an entry of :mod:`models`); a user's factory ``package.module:function`` would import and call code named
by the file (``os:system`` with ``model_args = {command = ...}`` runs a shell command). Such a checkpoint is rebuilt
only when the caller names the same factory itself (``trusted_model``, the CLI's ``--model``), the way
``trust_remote_code`` works elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runtime import ToolchainError

from .config import TrainConfig
from .data import DataBundle
from .modeling import is_user_factory
from .pruning import recipe as _prune_recipe  # noqa: F401 - registers the "prune" recipe
from .quant import qat as _qat_recipe  # noqa: F401 - registers the "qat" recipe
from .training.checkpoint import CheckpointError, load_checkpoint
from .training.distributed import DistEnv
from .training.loop import load_bundle
from .training.recipe import RECIPES

__all__ = ["MODEL_FIELDS", "Restored", "check_model_trusted", "recorded_model", "restore"]

# What a checkpoint records about the network it holds and the data it was trained on.
MODEL_FIELDS = ("model", "model_args")
DATA_FIELDS = ("data", "data_dir", "data_args")


@dataclass
class Restored:
    model: nn.Module
    config: TrainConfig
    recipe: str
    bundle: DataBundle


def restore(path: str | Path, *, trusted_model: str | None = None, **data_overrides: Any) -> Restored:
    """The checkpoint's model (on CPU, eval mode), config, recipe name and data bundle.

    ``data_overrides`` (``data``, ``data_dir``) replace the checkpoint's data set when given (not ``None``); the
    training subset is dropped so that evaluation sees the whole test split. A checkpoint that names a user's model
    factory (``module:function``) is refused unless ``trusted_model`` names the same factory (see the module
    docstring).
    """
    ckpt = load_checkpoint(path)
    name = ckpt.get("recipe", "float")
    if name not in RECIPES:
        raise CheckpointError(f"{path} was written by an unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    recipe_cls = RECIPES[name]
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} lacks its configuration or model state: not a complete toolchain checkpoint")
    try:
        config = recipe_cls.config_class.from_dict(ckpt["config"])
    except (ToolchainError, TypeError) as e:  # TypeError: a required field missing
        raise CheckpointError(f"{path} holds an invalid configuration: {e}") from None
    check_model_trusted(config.model, trusted_model, path)
    changes = {k: v for k, v in data_overrides.items() if v is not None}
    config = config.replace(**changes, subset=None)
    bundle = load_bundle(config)
    model = recipe_cls(config, restoring=True).build(bundle, DistEnv(0, 1, 0, torch.device("cpu")))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: the saved state does not fit its model: {first}") from None
    return Restored(model.eval(), config, name, bundle)


def check_model_trusted(model: str, trusted_model: str | None, source: str | Path) -> None:
    """Refuse a ``module:function`` model named by a file (``source``) unless the caller named it too."""
    if is_user_factory(model) and model != trusted_model:
        raise CheckpointError(
            f"{source} names the model factory {model!r}, which would import and run code from that module; "
            f"checkpoints never import code on their own. If it is your code and you trust the file, pass "
            f"--model {model}"
        )


def recorded_model(path: str | Path) -> dict[str, Any]:
    """The model and data fields a toolchain checkpoint's config records (``MODEL_FIELDS`` + ``DATA_FIELDS``); ``{}``
    for a plain state dict or a file that is not there (the later load reports those). A checkpoint naming a user's
    factory is refused here: a file never chooses code, so the caller must name it with ``--model``."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return {}
    config = ckpt.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        return {}
    check_model_trusted(config["model"], None, path)
    return {k: config[k] for k in (*MODEL_FIELDS, *DATA_FIELDS) if k in config}

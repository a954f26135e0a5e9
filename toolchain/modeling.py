"""Building registry models to fit a data set, and loading weights from checkpoints or plain state dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import create_model, get_model_spec
from models.registry import UnknownModelError
from runtime import ToolchainError

from .data import DataBundle

__all__ = ["build_model", "load_weights"]


def build_model(name: str, bundle: DataBundle, model_args: dict[str, Any] | None = None) -> nn.Module:
    """Create ``name`` with the data set's facts (classes, channels, scale, input size) that the model consumes.

    The registry entry's ``data_args`` lists which facts a model takes; explicit ``model_args`` win.
    """
    try:
        spec = get_model_spec(name)
    except UnknownModelError as e:
        raise ToolchainError(str(e)) from None
    if spec.task != bundle.task:
        raise ToolchainError(f"model {name!r} is a {spec.task} model but data set {bundle.name!r} is {bundle.task}")
    facts = {
        "num_classes": bundle.num_classes,
        "in_chans": bundle.in_chans,
        "input_size": bundle.input_size,
        "scale": bundle.scale,
    }
    kwargs = {k: facts[k] for k in spec.data_args if facts[k]}  # 0 = the data set does not say (e.g. unlabelled)
    try:
        return create_model(name, **{**kwargs, **(model_args or {})})
    except TypeError as e:
        raise ToolchainError(f"cannot build {name!r} with arguments {model_args}: {e}") from None


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Load a plain state dict or a toolchain checkpoint's ``model`` entry; mismatches are reported by key."""
    p = Path(path)
    if not p.is_file():
        raise ToolchainError(f"weights file {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ToolchainError(f"cannot read weights {p}: {type(e).__name__}: {e}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise ToolchainError(f"weights {p} do not fit the model: {e}") from None
    return model

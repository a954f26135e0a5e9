"""Building registry models to fit a data set, and loading weights from checkpoints or plain state dicts."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from torch import nn

from models import create_model, get_model_spec
from models.registry import UnknownModelError
from runtime import ToolchainError

from .data import DataBundle
from .torchfile import read_torch_file

__all__ = ["build_model", "is_user_factory", "load_weights"]


def build_model(name: str, bundle: DataBundle, model_args: dict[str, Any] | None = None) -> nn.Module:
    """Create ``name`` with the data set's facts (classes, channels, scale, input size) that the model consumes.

    ``name`` is a registry name, whose entry's ``data_args`` lists which facts the model takes, or a user's factory
    ``package.module:function`` (bring your own model), which gets the facts its signature names. Explicit
    ``model_args`` win.
    """
    facts = {
        "num_classes": bundle.num_classes,
        "in_chans": bundle.in_chans,
        "input_size": bundle.input_size,
        "scale": bundle.scale,
    }
    if is_user_factory(name):
        return _user_model(name, facts, model_args or {})
    try:
        spec = get_model_spec(name)
    except UnknownModelError as e:
        raise ToolchainError(str(e)) from None
    if spec.task != bundle.task:
        raise ToolchainError(f"model {name!r} is a {spec.task} model but data set {bundle.name!r} is {bundle.task}")
    kwargs = {k: facts[k] for k in spec.data_args if facts[k]}  # 0 = the data set does not say (e.g. unlabelled)
    try:
        return create_model(name, **{**kwargs, **(model_args or {})})
    except TypeError as e:
        raise ToolchainError(f"cannot build {name!r} with arguments {model_args}: {e}") from None


def is_user_factory(name: str) -> bool:
    """``package.module:function`` (code the user brings) rather than a registry name."""
    return ":" in name


def _user_model(name: str, facts: dict[str, Any], model_args: dict[str, Any]) -> nn.Module:
    """``package.module:function`` → ``function(**facts it accepts, **model_args)``, checked to be an nn.Module."""
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as e:
        raise ToolchainError(f"cannot import {module_name!r} for model {name!r}: {e} (is it on PYTHONPATH?)") from None
    except AttributeError:
        raise ToolchainError(f"module {module_name!r} has no {attr!r} (model {name!r})") from None
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in facts.items() if v and (k in params or takes_all)}
    try:
        model = factory(**{**kwargs, **model_args})
    except TypeError as e:
        raise ToolchainError(f"cannot build {name!r} with arguments {model_args}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ToolchainError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Load a plain state dict or a toolchain checkpoint's ``model`` entry; mismatches are reported by key."""
    p = Path(path)
    if not p.is_file():
        raise ToolchainError(f"weights file {p} does not exist")
    state = read_torch_file(p, "weights file")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise ToolchainError(f"weights {p} do not fit the model: {e}") from None
    return model

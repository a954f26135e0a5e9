"""Model registry: models register by name, are built by name, and are listed by glob pattern.

A registry entry is a factory plus the facts the rest of the toolchain needs without building the model
(task, default input shape). Tiny variants are registered beside the real ones (tag ``"tiny"``) so that tests can
iterate over every architecture in seconds::

    @register_model(task="classification", input_size=224, in_chans=3)
    def mobilenet_v2(**kw) -> nn.Module: ...

    model = create_model("mobilenet_v2", num_classes=10, in_chans=1, small_input=True)
    list_models("shufflenet*")
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["ModelSpec", "UnknownModelError", "create_model", "get_model_spec", "list_models", "register_model"]

TASKS = ("classification", "super_resolution")


class UnknownModelError(KeyError):
    """Raised when a model name is not in the registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model before building it.

    Attributes:
        name: registry name.
        factory: callable building the ``nn.Module`` from keyword overrides.
        task: ``"classification"`` or ``"super_resolution"``.
        input_size: default spatial input size (square).
        in_chans: default number of input channels.
        defaults: keyword arguments applied before the caller's overrides.
        tags: free-form labels, e.g. ``"tiny"`` for the test-sized variants.
        data_args: which facts of a data set the factory takes (``num_classes``, ``in_chans``, ``input_size``,
            ``scale``); the toolchain passes exactly these when it builds a model for a data set.
    """

    name: str
    factory: Callable[..., nn.Module]
    task: str
    input_size: int
    in_chans: int
    defaults: dict[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    data_args: tuple[str, ...] = ()


DEFAULT_DATA_ARGS = {"classification": ("num_classes", "in_chans"), "super_resolution": ("in_chans", "scale")}
_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str | None = None,
    *,
    task: str = "classification",
    input_size: int = 224,
    in_chans: int = 3,
    tags: tuple[str, ...] = (),
    data_args: tuple[str, ...] | None = None,
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory under ``name`` (default: the function's name).

    Extra keyword arguments become the entry's defaults, which lets one factory register several variants.
    ``data_args`` defaults to the task's usual facts (classes and channels; channels and scale for SR).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or factory.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = ModelSpec(
            key,
            factory,
            task,
            input_size,
            in_chans,
            dict(defaults),
            frozenset(tags),
            DEFAULT_DATA_ARGS[task] if data_args is None else data_args,
        )
        return factory

    return decorator


def get_model_spec(name: str) -> ModelSpec:
    """Return the registry entry for ``name`` or raise :class:`UnknownModelError` naming close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = [n for n in _REGISTRY if name.split("_")[0] in n] or sorted(_REGISTRY)
        raise UnknownModelError(f"unknown model {name!r}; registered models include: {', '.join(close)}") from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` win over the entry's defaults.

    The entry's ``in_chans`` and ``input_size`` are passed as defaults to factories that take them (``data_args``),
    so a model built without arguments matches its registration.
    """
    spec = get_model_spec(name)
    facts: dict[str, Any] = {k: getattr(spec, k) for k in ("in_chans", "input_size") if k in spec.data_args}
    return spec.factory(**{**facts, **spec.defaults, **overrides})


def list_models(pattern: str = "*", *, task: str | None = None, tag: str | None = None) -> list[str]:
    """Sorted names matching a glob ``pattern``, optionally filtered by task and tag."""
    return sorted(
        n
        for n, s in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (task is None or s.task == task) and (tag is None or tag in s.tags)
    )

"""Data-set registry and the common shape every data set takes (:class:`DataBundle`).

A data set registers a loader ``load(data_dir, subset) -> DataBundle`` by name. A bundle holds a training and a
test :class:`BatchSource` plus the facts a model needs (classes, channels, input size). Sources produce batches
deterministically from ``(seed, epoch, step)`` alone, so an interrupted run that resumes at step k sees exactly the
batches an uninterrupted run sees, with no data-loader state to checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from runtime import ToolchainError

__all__ = [
    "BatchSource",
    "DataBundle",
    "DataError",
    "SourceBase",
    "batch_seed",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "shard_order",
]


class DataError(ToolchainError):
    """A data set is missing, corrupt or of the wrong layout; the message says how to get it."""


class BatchSource(Protocol):
    """Anything that yields ``(inputs, targets)`` batches for one epoch."""

    def __len__(self) -> int: ...

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int = 0,
        seed: int = 0,
        train: bool = False,
        rank: int = 0,
        world: int = 1,
        skip: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield batches; ``train`` shuffles and augments; ``skip`` drops the first batches (resume)."""
        ...

    def steps(self, batch_size: int, *, world: int = 1) -> int:
        """Number of batches ``batches(train=True)`` yields per process."""
        ...


class SourceBase:
    """Shared step arithmetic: each of ``world`` processes gets ``len // world`` samples, in batches."""

    def __len__(self) -> int:
        raise NotImplementedError

    def steps(self, batch_size: int, *, world: int = 1) -> int:
        return -(-(len(self) // world) // batch_size)


@dataclass
class DataBundle:
    """A loaded data set: sources plus the facts needed to build a matching model."""

    name: str
    task: str
    train: BatchSource
    test: BatchSource
    in_chans: int
    input_size: int
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    scale: int = 1
    preprocess: dict[str, Any] = field(default_factory=dict)  # how one image becomes an input (data.preprocess)


Loader = Callable[..., DataBundle]
_DATASETS: dict[str, tuple[Loader, str]] = {}


def register_dataset(name: str, description: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``load(data_dir=None, subset=None, **kw) -> DataBundle`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        _DATASETS[name] = (fn, description)
        return fn

    return deco


def list_datasets() -> dict[str, str]:
    """Registered data-set names and one-line descriptions."""
    return {n: d for n, (_, d) in sorted(_DATASETS.items())}


def load_dataset(name: str, data_dir: str | None = None, subset: int | None = None, **kw: object) -> DataBundle:
    """Load a registered data set by name; a folder path instead of a name is an ImageNet-layout image folder."""
    if name not in _DATASETS and Path(name).is_dir():
        name, data_dir = "image-folder", name
    if name not in _DATASETS:
        raise DataError(
            f"unknown data set {name!r}; available: {', '.join(sorted(_DATASETS))}, or an image folder's path"
        )
    loader = _DATASETS[name][0]
    try:
        inspect.signature(loader).bind(data_dir=data_dir, subset=subset, **kw)
    except TypeError as e:
        raise DataError(f"data set {name!r} does not take these arguments ({e}); see `toolchain data`") from None
    return loader(data_dir=data_dir, subset=subset, **kw)


def batch_seed(seed: int, epoch: int, step: int) -> int:
    """A 63-bit seed unique to one (run seed, epoch, step): augmentation randomness without carried state."""
    return (seed * 1_000_003 + epoch * 10_007 + step) * 2_654_435_761 % (2**63 - 1)


def shard_order(n: int, *, epoch: int, seed: int, shuffle: bool, rank: int, world: int) -> torch.Tensor:
    """Sample order of one process: a seeded permutation of ``n``, cut to a multiple of ``world``, strided by rank.

    Every process gets the same number of samples, so distributed processes take the same number of steps.
    """
    order = (
        torch.randperm(n, generator=torch.Generator().manual_seed(batch_seed(seed, epoch, 0)))
        if shuffle
        else torch.arange(n)
    )
    usable = n - n % world if world > 1 else n
    return order[:usable][rank::world]

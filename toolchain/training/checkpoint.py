"""Resumable checkpoints written atomically (temporary file, fsync, rename).

A checkpoint holds everything needed to continue exactly where a run stopped: model, optimizer and scheduler
state, the position (epoch, step within the epoch, global step), the RNG states of Python, NumPy and torch, the
run's configuration and any extra entries a phase adds. Data order and augmentation are functions of
(seed, epoch, step) and need no state.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from runtime import ToolchainError, atomic_write_bytes

from ..torchfile import read_torch_file

__all__ = [
    "CheckpointError",
    "ForeignCheckpointError",
    "load_checkpoint",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
]

FORMAT = "toolchain-checkpoint/1"


class CheckpointError(ToolchainError):
    """A checkpoint is missing, unreadable or not one of ours."""


class ForeignCheckpointError(CheckpointError):
    """A readable file that is not a toolchain checkpoint (a plain state dict, say)."""


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain Python values, so checkpoints load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **entries: Any) -> Path:
    """Serialise ``entries`` (plus the format tag and RNG states) and atomically replace ``path``."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "rng": rng_state(), **entries}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for missing or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        ckpt = read_torch_file(p, "checkpoint", map_location)
    except ToolchainError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ForeignCheckpointError(
            f"{p} is not a toolchain checkpoint (expected format {FORMAT!r}); for plain state dicts use --weights"
        )
    return ckpt

"""Process-group set-up for ``torchrun`` (DistributedDataParallel) and the single-process default.

``torchrun --nproc_per_node=N`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; we then join a process group
(gloo on CPU, nccl on CUDA). Without those variables everything runs in one process and no group is created.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistEnv", "init_distributed", "param_digest", "shutdown_distributed"]


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available else CPU; ``cuda`` without a GPU is an error, not a silent fallback."""
    from runtime import ToolchainError

    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ToolchainError("--device cuda was requested but PyTorch sees no CUDA device; use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun; otherwise describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world, local_rank, device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def param_digest(model: nn.Module, extra: dict[str, Any] | None = None) -> str:
    """SHA-256 of every parameter and buffer's bytes (and of ``extra``'s tensors): equal digests, identical state."""
    h = hashlib.sha256()
    tensors = {**model.state_dict(), **{k: v for k, v in (extra or {}).items() if isinstance(v, torch.Tensor)}}
    for name, t in tensors.items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_digests(model: nn.Module, env: DistEnv, extra: dict[str, Any] | None = None) -> list[str]:
    """Every process's :func:`param_digest` (a one-element list in a single process)."""
    digest = param_digest(model, extra)
    if not env.distributed:
        return [digest]
    out: list[str] = [""] * env.world
    dist.all_gather_object(out, digest)
    return out

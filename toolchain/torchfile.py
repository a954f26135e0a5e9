"""Reading PyTorch files (checkpoints, state dicts) people share: tensors only, and one-line errors.

``torch.load(weights_only=True)`` refuses pickled code, but its refusal is five lines that end by suggesting
``weights_only=False``, which would run that code: wrong advice for a command-line user. :func:`read_torch_file`
says in one line that the file is not readable and, for a refused pickle, which global it tried to load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from runtime import ToolchainError

__all__ = ["read_torch_file"]


def read_torch_file(path: Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any failure is a :class:`ToolchainError` of one line."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt, foreign or malicious files
        text = str(e)
        refused = re.search(r"unsupported GLOBAL (\S+)", text)
        reason = f"it asks to run code ({refused.group(1)}), which is never loaded" if refused else type(e).__name__
        raise ToolchainError(f"{path} is not a readable {what}: {reason}") from None

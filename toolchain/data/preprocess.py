"""One image file → one model input, as the data set that trained the model prepared its test images.

Each data set records a small JSON-able description in ``DataBundle.preprocess`` (``{"kind": ..., ...}``); the
exporter stores it in the ONNX metadata so that ``toolchain run`` can prepare a user's images the same way. The
kinds, in a registry:

* ``gray``: greyscale, resized to ``size × size``, ``(x/255 − mean) / std`` (digits, Fashion-MNIST);
* ``imagenet``: resize the short side to ``size/0.875``, centre crop ``size``, ImageNet mean/std (image folders);
* ``y``: the BT.601 luma (Y) plane at full size, in [0, 1] (super-resolution; the model upscales it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from runtime import ToolchainError

__all__ = ["PREPROCESSORS", "prepare_image"]


def _gray(img: Any, spec: dict[str, Any]) -> torch.Tensor:
    from PIL import Image

    size = int(spec["size"])
    g = np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return ((torch.from_numpy(g) / 255.0 - float(spec["mean"])) / float(spec["std"]))[None]


def _imagenet(img: Any, spec: dict[str, Any]) -> torch.Tensor:
    from .image_folder import eval_transform

    return eval_transform(img.convert("RGB"), int(spec["size"]))


def _luma(img: Any, spec: dict[str, Any]) -> torch.Tensor:
    from .super_resolution import rgb_to_y

    return rgb_to_y(np.asarray(img.convert("RGB")))[None]


PREPROCESSORS: dict[str, Callable[[Any, dict[str, Any]], torch.Tensor]] = {
    "gray": _gray,
    "imagenet": _imagenet,
    "y": _luma,
}


def prepare_image(img: Any, spec: dict[str, Any]) -> torch.Tensor:
    """``(C, H, W)`` float tensor for a PIL image, following ``spec`` (a data set's ``preprocess``)."""
    kind = spec.get("kind")
    if kind not in PREPROCESSORS:
        raise ToolchainError(f"unknown preprocessing {kind!r} (known: {', '.join(PREPROCESSORS)})")
    return PREPROCESSORS[kind](img, spec)

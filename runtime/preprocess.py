"""One image → one model input, in numpy (no torch): how each data set prepares its test images.

Each data set records a small JSON-able description in its ``preprocess`` (``{"kind": ..., ...}``); the exporter
stores it in the ONNX metadata, so a deployment can prepare a user's images exactly as the model's test images were
prepared. The training code builds its test inputs with these same functions (``toolchain.data``), so the two
cannot drift apart. The kinds, in a registry:

* ``gray``: greyscale, resized to ``size × size`` (bilinear), ``(x/255 − mean) / std`` (digits, Fashion-MNIST);
* ``imagenet``: resize the short side to ``size·256/224`` (bilinear), centre crop ``size``, ImageNet mean/std;
* ``y``: the BT.601 luma (Y) plane at full size, in [16/255, 235/255] (super-resolution; the model upscales it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ToolchainError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PREPROCESSORS",
    "check_spec",
    "imagenet_eval",
    "luma",
    "normalise",
    "prepare_image",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(hwc: Any, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` → ``(3, H, W)`` float32, ``(x/255 − mean) / std`` per channel."""
    x = np.asarray(hwc, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def imagenet_eval(img: Any, size: int = 224) -> np.ndarray:
    """A PIL image → ``(3, size, size)``: short side to ``size·256/224``, centre crop, ImageNet normalisation."""
    from PIL import Image

    img = img.convert("RGB")
    short = round(size * 256 / 224)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return normalise(img.crop((left, top, left + size, top + size)))


def luma(rgb: Any) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` or grey ``(H, W)`` → BT.601 luma in [16/255, 235/255], float32 ``(H, W)``."""
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    if x.ndim == 2:
        x = np.stack([x] * 3, axis=-1)
    y = (16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    return np.ascontiguousarray(y, dtype=np.float32)


def _gray(img: Any, spec: dict[str, Any]) -> np.ndarray:
    from PIL import Image

    size = int(spec["size"])
    g = np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return ((g / np.float32(255.0) - np.float32(spec["mean"])) / np.float32(spec["std"]))[None]


PREPROCESSORS: dict[str, Callable[[Any, dict[str, Any]], np.ndarray]] = {
    "gray": _gray,
    "imagenet": lambda img, spec: imagenet_eval(img, int(spec["size"])),
    "y": lambda img, spec: luma(np.asarray(img.convert("RGB")))[None],
}


def prepare_image(img: Any, spec: dict[str, Any]) -> np.ndarray:
    """``(C, H, W)`` float32 array for a PIL image, following ``spec`` (a data set's ``preprocess``)."""
    kind = spec.get("kind")
    if kind not in PREPROCESSORS:
        raise ToolchainError(f"unknown preprocessing {kind!r} (known: {', '.join(PREPROCESSORS)})")
    return PREPROCESSORS[kind](img, spec)


def _number(spec: dict[str, Any], key: str, low: float, high: float, integer: bool) -> str | None:
    """Why ``spec[key]`` is not a number in ``[low, high]`` (an integer where ``integer``), or None."""
    value = spec.get(key)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        return f"{key} must be {'an integer' if integer else 'a number'} in [{low:g}, {high:g}], got {value!r}"
    return None


def check_spec(spec: Any, side: int | None) -> str | None:
    """Why a recorded ``preprocess`` cannot prepare inputs for a model whose input is ``side × side`` (None: not
    fixed), or None when it can. Read from a file, so nothing in it is trusted: a size of 40,000 would allocate a
    6 GB image before the model ever refused it."""
    if not isinstance(spec, dict):
        return f"preprocess must be an object, got {type(spec).__name__}"
    kind = spec.get("kind")
    if kind not in PREPROCESSORS:
        return f"unknown preprocessing {kind!r} (known: {', '.join(PREPROCESSORS)})"
    problems = []
    if kind in ("gray", "imagenet"):
        problems.append(_number(spec, "size", 1, 8192, integer=True))
        if not problems[-1] and side is not None and spec["size"] != side:
            problems.append(f"size {spec['size']} does not match the model's {side}×{side} input")
    if kind == "gray":
        problems += [_number(spec, "mean", -1e6, 1e6, integer=False), _number(spec, "std", 1e-12, 1e6, integer=False)]
    if kind == "y":
        problems.append(_number(spec, "scale", 1, 16, integer=True))
    found = [p for p in problems if p]
    return "; ".join(found) if found else None

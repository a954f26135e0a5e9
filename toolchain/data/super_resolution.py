"""Super-resolution data: high-resolution (HR) photos, low-resolution (LR) inputs made by bicubic down-scaling.

Images are converted to the luma channel Y of ITU-R BT.601 as the SR literature does
(``Y = 16/255 + (65.481 R + 128.553 G + 24.966 B)/255`` with R, G, B in [0, 1]; grey images use R = G = B), and
cropped so both sides are multiples of the scale ("modcrop"). LR = bicubic down-scaling of HR by ``scale`` with
anti-aliasing. Training draws random HR patches with one of the 8 flips/rotations; evaluation uses whole images.

The embedded default is a fixed split of scikit-image's bundled photographs; any folder with ``train/`` and
``test/`` sub-folders of images (Set5/Set14/DIV2K arranged that way) works the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runtime.preprocess import luma

from .image_folder import IMAGE_EXTENSIONS, load_image
from .registry import DataBundle, DataError, SourceBase, batch_seed, register_dataset

__all__ = ["SKIMAGE_TEST", "SKIMAGE_TRAIN", "SRImageSource", "SRPatchSource", "downscale", "modcrop", "rgb_to_y"]

SKIMAGE_TRAIN = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
    "moon",
    "clock",
    "page",
    "text",
    "motorcycle_left",
    "motorcycle_right",
)
SKIMAGE_TEST = ("chelsea", "coffee", "camera", "coins")
# photos that are not a function of their own in skimage.data: the two views of the stereo pair
_STEREO = {"motorcycle_left": 0, "motorcycle_right": 1}
SCALES = (2, 3, 4)


def rgb_to_y(img: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or grey (H, W) → BT.601 luma in [16/255, 235/255] as float32 (H, W)
    (:func:`runtime.preprocess.luma`)."""
    return torch.from_numpy(luma(img))


def modcrop(y: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the trailing rows/columns so that H and W are multiples of ``scale``."""
    h, w = y.shape[-2:]
    return y[..., : h - h % scale, : w - w % scale]


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Anti-aliased bicubic down-scaling of (N, C, H, W) by an integer factor, clamped to [0, 1]."""
    return F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


class SRPatchSource(SourceBase):
    """Random HR patches (``patch`` pixels, a multiple of the scale) and their LR versions."""

    def __init__(self, images: list[torch.Tensor], scale: int, patch: int = 48, samples_per_epoch: int = 4096):
        if not images:
            raise DataError("no training images for super-resolution")
        self.patch = patch - patch % scale
        small = [tuple(im.shape) for im in images if min(im.shape) < self.patch]
        if small:
            raise DataError(f"images smaller than the {self.patch}-pixel patch: {small}")
        self.images, self.scale, self.samples = images, scale, samples_per_epoch

    def __len__(self) -> int:
        return self.samples

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int = 0,
        seed: int = 0,
        train: bool = True,
        rank: int = 0,
        world: int = 1,
        skip: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        p = self.patch
        for step in range(skip, self.steps(batch_size, world=world)):
            rng = np.random.default_rng(batch_seed(seed, epoch, (step + 1) * world + rank))
            crops = []
            for _ in range(batch_size):
                im = self.images[rng.integers(len(self.images))]
                top, left = rng.integers(im.shape[0] - p + 1), rng.integers(im.shape[1] - p + 1)
                crop = im[top : top + p, left : left + p]
                crop = torch.rot90(crop, int(rng.integers(4)))
                crops.append(crop.flip(1) if rng.random() < 0.5 else crop)
            hr = torch.stack(crops)[:, None].contiguous()
            yield downscale(hr, self.scale), hr


class SRImageSource:
    """Whole test images, one per batch: ``(LR (1,1,h,w), HR (1,1,h·s,w·s))``."""

    def __init__(self, images: list[torch.Tensor], scale: int, names: list[str] | None = None) -> None:
        self.images = [modcrop(im, scale) for im in images]
        self.scale, self.names = scale, names or [str(i) for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.images)

    def steps(self, batch_size: int, *, world: int = 1) -> int:
        return len(self.images)

    def batches(
        self,
        batch_size: int = 1,
        *,
        epoch: int = 0,
        seed: int = 0,
        train: bool = False,
        rank: int = 0,
        world: int = 1,
        skip: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for im in self.images[skip:]:
            hr = im[None, None]
            yield downscale(hr, self.scale), hr


def _check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise DataError(f"super-resolution scale must be one of {SCALES}, got {scale}")


def _bundle(
    name: str, train: list[torch.Tensor], test: list[torch.Tensor], test_names: list[str], scale: int, patch: int
) -> DataBundle:
    return DataBundle(
        name,
        "super_resolution",
        SRPatchSource(train, scale, patch),
        SRImageSource(test, scale, test_names),
        in_chans=1,
        input_size=patch // scale,
        scale=scale,
        preprocess={"kind": "y", "scale": scale},
    )


def _photo(name: str) -> np.ndarray:
    import skimage.data

    if name in _STEREO:
        return skimage.data.stereo_motorcycle()[_STEREO[name]]
    return getattr(skimage.data, name)()


@register_dataset("sr-photos", "scikit-image's bundled photos as Y-channel SR data (fixed train/test split)")
def load_skimage_photos(
    data_dir: str | None = None, subset: int | None = None, scale: int = 3, patch: int = 48
) -> DataBundle:
    _check_scale(scale)
    train = [rgb_to_y(_photo(n)) for n in SKIMAGE_TRAIN[:subset]]
    test = [rgb_to_y(_photo(n)) for n in SKIMAGE_TEST]
    return _bundle("sr-photos", train, test, list(SKIMAGE_TEST), scale, patch)


def _read_folder(folder: Path) -> tuple[list[torch.Tensor], list[str]]:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [rgb_to_y(np.asarray(load_image(f))) for f in files], [f.name for f in files]


@register_dataset("sr-folder", "any folder with train/ and test/ sub-folders of images, as Y-channel SR data")
def load_sr_folder(
    data_dir: str | None = None, subset: int | None = None, scale: int = 3, patch: int = 48
) -> DataBundle:
    _check_scale(scale)
    if data_dir is None:
        raise DataError("the sr-folder data set needs --data-dir pointing to DIR/train/*.png and DIR/test/*.png")
    root = Path(data_dir)
    for sub in ("train", "test"):
        if not (root / sub).is_dir():
            raise DataError(f"{root / sub} does not exist; expected DIR/train/ and DIR/test/ folders of images")
    train, _ = _read_folder(root / "train")
    test, names = _read_folder(root / "test")
    return _bundle("sr-folder", train[:subset], test, names, scale, patch)

"""Image folders: labelled ImageNet-layout folders and unlabelled folders of any layout.

* ``image-folder``: ``root/{train,val}/<class>/<image>`` (or ``root/<class>/<image>``), any class names. Class
  indices are the sorted folder names, unless a class list says otherwise: ``classes.txt`` at the root (or the
  ``classes`` argument), one class per line, ``<folder name> [<readable name>]``, line i = index i (ImageNet's
  1,000 classes in the standard order, say). With a list, ``train/`` and ``val/`` may hold different subsets of it.
* ``unlabelled-folder``: every image below the root, found recursively, label −1: data for distillation from a
  teacher (``--distill 1``) and calibration when there are no labels.

Preprocessing follows the standard ImageNet recipe, implemented on PIL images (no torchvision):

* evaluation: resize the shorter side to ``size · 256/224`` (bilinear), centre-crop ``size``;
* training: random-resized crop (area fraction U(0.08, 1), log-uniform aspect ratio in [3/4, 4/3]) to ``size``,
  horizontal flip with probability ½;
* both: scale to [0, 1] and normalise with the ImageNet mean/std per channel.

Random choices are drawn from a generator seeded by (run seed, epoch, sample index), so worker processes need no
shared state and a resumed run sees the same crops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, imagenet_eval, normalise

from .registry import DataBundle, DataError, SourceBase, batch_seed, register_dataset, shard_order

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "FolderSource", "PhotoSource", "eval_transform", "load_image", "to_tensor"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


def load_image(path: Path):  # -> PIL.Image.Image
    """Open an image as RGB; a clear error names an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:  # bomb: e.g. 60000×60000 declared
        raise DataError(f"cannot read image {path}: {e}") from None


def to_tensor(img, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:  # img: PIL.Image.Image
    """HWC uint8 → normalised CHW float32 (:func:`runtime.preprocess.normalise`)."""
    return torch.from_numpy(normalise(np.asarray(img), mean, std))


def eval_transform(img, size: int = 224) -> torch.Tensor:
    """Resize shorter side to size·256/224, centre-crop ``size``, normalise: the deployment's own
    :func:`runtime.preprocess.imagenet_eval`, so training and ``toolchain run`` prepare images identically."""
    return torch.from_numpy(imagenet_eval(img, size))


def train_transform(img, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Random-resized crop + horizontal flip, normalise."""
    from PIL import Image

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:  # fall back to the central square
        cw = ch = min(w, h)
        left, top = (w - cw) // 2, (h - ch) // 2
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(img)


def _images(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())


def read_class_list(path: Path) -> tuple[list[str], list[str]]:
    """Folder names and readable names from a class list: line i = class i, ``<folder name> [<readable name>]``."""
    if not path.is_file():
        raise DataError(f"class list {path} does not exist")
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read class list {path}: {e}") from None
    parts = [ln.split(maxsplit=1) for ln in lines]
    folders, names = [p[0] for p in parts], [p[-1] for p in parts]  # no readable name: the folder name
    if not folders:
        raise DataError(f"class list {path} is empty")
    if len(set(folders)) != len(folders):
        raise DataError(f"class list {path} names a folder twice")
    return folders, names


def scan_classes(root: Path, class_list: list[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and (file, label) pairs: labels are indices into ``class_list`` when given, otherwise into the
    sorted sub-folder names."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise DataError(f"{root} has no class sub-folders; expected the layout {root}/<class>/<image>.jpg")
    classes = class_list if class_list is not None else folders
    index = {c: i for i, c in enumerate(classes)}
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise DataError(f"{root} has folders that are not in the class list: {', '.join(unknown[:5])}")
    samples = [(f, index[c]) for c in folders for f in _images(root / c)]
    if not samples:
        raise DataError(f"{root} has class folders but no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return classes, samples


class _Samples(Dataset):
    def __init__(self, samples: list[tuple[Path, int]], size: int, train: bool, seed: int, epoch: int) -> None:
        self.samples, self.size, self.train, self.seed, self.epoch = samples, size, train, seed, epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        img = load_image(path)
        if self.train:
            return train_transform(img, self.size, np.random.default_rng(batch_seed(self.seed, self.epoch, i))), label
        return eval_transform(img, self.size), label


class FolderSource(SourceBase):
    """Batches decoded by a DataLoader (``num_workers`` processes) in a seeded, sharded order."""

    def __init__(self, samples: list[tuple[Path, int]], size: int = 224, num_workers: int = 0) -> None:
        self.samples, self.size, self.num_workers = samples, size, num_workers

    def __len__(self) -> int:
        return len(self.samples)

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
        order = shard_order(len(self), epoch=epoch, seed=seed, shuffle=train, rank=rank, world=world)
        indices = order[skip * batch_size :].tolist()
        loader = DataLoader(
            _Samples(self.samples, self.size, train, seed, epoch),
            batch_size=batch_size,
            sampler=indices,
            num_workers=self.num_workers,
        )
        yield from loader


@register_dataset(
    "image-folder", "ImageNet-layout folder: DIR/{train,val}/<class>/*.jpg (+ DIR/classes.txt), 224×224 RGB"
)
def load_image_folder(
    data_dir: str | None = None,
    subset: int | None = None,
    image_size: int = 224,
    num_workers: int = 0,
    classes: str | None = None,
) -> DataBundle:
    """``classes``: a class-list file (default: ``DIR/classes.txt`` when it exists; see the module docstring)."""
    if data_dir is None:
        raise DataError("the image-folder data set needs --data-dir pointing to DIR/{train,val}/<class>/<image>")
    root = Path(data_dir)
    train_dir = root / "train" if (root / "train").is_dir() else None
    val_dir = next((root / d for d in ("val", "validation", "test") if (root / d).is_dir()), None)
    train_dir = train_dir or val_dir or root  # a folder with one split (or none) serves as both
    val_dir = val_dir or train_dir
    list_path = Path(classes) if classes else root / "classes.txt"
    folders, names = read_class_list(list_path) if classes or list_path.is_file() else (None, None)
    train_classes, train = scan_classes(train_dir, folders)
    val_classes, val = scan_classes(val_dir, folders)
    if val_classes != train_classes:
        raise DataError(
            f"{val_dir} and {train_dir} have different class folders; put a class list (classes.txt) at {root} "
            "to index both by it"
        )
    return DataBundle(
        "image-folder",
        "classification",
        FolderSource(train[:subset], image_size, num_workers),
        FolderSource(val, image_size, num_workers),
        in_chans=3,
        input_size=image_size,
        num_classes=len(train_classes),
        class_names=names or train_classes,
        preprocess={"kind": "imagenet", "size": image_size},
    )


@register_dataset("unlabelled-folder", "images in any layout below DIR (found recursively), no labels: for --distill 1")
def load_unlabelled_folder(
    data_dir: str | None = None,
    subset: int | None = None,
    image_size: int = 224,
    num_workers: int = 0,
    test_images: int = 64,
) -> DataBundle:
    """Every image below ``data_dir`` trains (label −1); the first ``test_images`` of them, centre-cropped, are the
    test split, which has no labels to score but feeds export checks and calibration."""
    if data_dir is None:
        raise DataError("the unlabelled-folder data set needs --data-dir, a folder with images anywhere below it")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    images = [(f, -1) for f in _images(root)]
    if not images:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return DataBundle(
        "unlabelled-folder",
        "classification",
        FolderSource(images[:subset], image_size, num_workers),
        FolderSource(images[: max(1, test_images)], image_size, num_workers),
        in_chans=3,
        input_size=image_size,
        num_classes=0,
        preprocess={"kind": "imagenet", "size": image_size},
    )


class PhotoSource(SourceBase):
    """Unlabelled ImageNet-style crops of a fixed list of photos (label −1): calibration data for models whose
    training data is not at hand. Training batches are seeded random-resized crops; evaluation uses centre crops."""

    def __init__(self, images: list, size: int = 224, crops_per_epoch: int = 64) -> None:
        self.images, self.size, self.crops = images, size, crops_per_epoch

    def __len__(self) -> int:
        return self.crops

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
        if not train:  # one centre crop per photo
            for start in range(skip * batch_size, len(self.images), batch_size):
                chunk = self.images[start : start + batch_size]
                yield torch.stack([eval_transform(im, self.size) for im in chunk]), torch.full((len(chunk),), -1)
            return
        for step in range(skip, self.steps(batch_size, world=world)):
            rng = np.random.default_rng(batch_seed(seed, epoch, (step + 1) * world + rank))
            picks = rng.integers(len(self.images), size=batch_size)
            x = torch.stack([train_transform(self.images[i], self.size, rng) for i in picks])
            yield x, torch.full((batch_size,), -1)


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat")


@register_dataset("photos", "scikit-image's colour photos as unlabelled ImageNet-style crops (calibration only)")
def load_photos(
    data_dir: str | None = None, subset: int | None = None, image_size: int = 224, crops_per_epoch: int = 64
) -> DataBundle:
    import skimage.data
    from PIL import Image

    images = [Image.fromarray(np.asarray(getattr(skimage.data, n)())[..., :3]) for n in PHOTOS[:subset]]
    source = PhotoSource(images, image_size, crops_per_epoch)
    return DataBundle(
        "photos",
        "classification",
        source,
        PhotoSource(images, image_size),
        in_chans=3,
        input_size=image_size,
        num_classes=0,
        preprocess={"kind": "imagenet", "size": image_size},
    )

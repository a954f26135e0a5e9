"""Fashion-MNIST (Xiao et al. 2017) from its IDX files: 60,000 train / 10,000 test 28×28 grey photos, 10 classes.

IDX layout: a big-endian header ``0x0000 <type=0x08 (ubyte)> <ndim>`` followed by ``ndim`` uint32 sizes, then the
raw bytes. Files may be gzip-compressed (``.gz``). Every declared size is checked against the file's length before
anything is allocated.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from .arrays import ArraySource
from .registry import DataBundle, DataError, register_dataset

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530  # training-set statistics
HOW_TO_GET = (
    "install it with `apt-get install dataset-fashion-mnist` (Debian; files land in "
    f"{DEFAULT_DIR}) or pass --data-dir pointing to a folder with the four IDX files"
)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an uint8 IDX file with ``ndim`` dimensions, checking magic and declared sizes."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {path}: {e}; {HOW_TO_GET}") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated ({len(raw)} bytes); {HOW_TO_GET}")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or dims != ndim:
        raise DataError(f"{path} is not a {ndim}-d uint8 IDX file (header {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path} declares shape {shape} but holds {len(raw) - header} data bytes (corrupt?)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"Fashion-MNIST file {folder / stem}[.gz] not found; {HOW_TO_GET}")


@register_dataset("fashion-mnist", "Fashion-MNIST IDX files, 28×28 grey, 10 classes")
def load_fashion_mnist(data_dir: str | None = None, subset: int | None = None, holdout: int | str = 0) -> DataBundle:
    """``holdout=N`` (``--data-args holdout=N``): the last N training images become the evaluation split and are
    never trained on; the test set is not read. For choosing settings without looking at the reported numbers."""
    folder = Path(data_dir or DEFAULT_DIR)
    if not folder.is_dir():
        raise DataError(f"Fashion-MNIST folder {folder} does not exist; {HOW_TO_GET}")
    try:
        held = int(holdout)
    except ValueError:
        raise DataError(f"holdout must be a whole number of images, got {holdout!r}") from None

    def read(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"), 3)
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"), 1)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {prefix} has {len(images)} images but {len(labels)} labels")
        if labels.max(initial=0) >= len(CLASSES):
            raise DataError(f"{folder}: {prefix} labels exceed {len(CLASSES) - 1} (corrupt?)")
        return images, labels

    def source(images: np.ndarray, labels: np.ndarray) -> ArraySource:
        return ArraySource(
            torch.from_numpy(images.copy())[:, None],
            torch.from_numpy(labels.astype(np.int64)),
            MEAN,
            STD,
            pad=2,
            flip=True,
        )

    images, labels = read("train")
    if not 0 <= held < len(images):
        raise DataError(f"holdout must be 0 … {len(images) - 1} of the {len(images)} training images, got {held}")
    cut = len(images) - held
    test = source(images[cut:], labels[cut:]) if held else source(*read("t10k"))
    train = source(images[:cut][:subset], labels[:cut][:subset])
    return DataBundle(
        "fashion-mnist",
        "classification",
        train,
        test,
        in_chans=1,
        input_size=28,
        num_classes=10,
        class_names=list(CLASSES),
        preprocess={"kind": "gray", "size": 28, "mean": MEAN, "std": STD},
    )

"""Data sets: real embedded digits, generated IDX / image-folder / SR layouts, corrupt files, determinism."""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolchain.data import DataError, load_dataset
from toolchain.data.arrays import random_translate_flip
from toolchain.data.fashion_mnist import DEFAULT_DIR, read_idx


def test_digits_embedded_default() -> None:
    b = load_dataset("digits")
    assert (len(b.train), len(b.test), b.num_classes, b.in_chans, b.input_size) == (1438, 359, 10, 1, 8)
    x, y = next(b.train.batches(16, train=True))
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(torch.cat([x for x, _ in b.train.batches(512)]).mean())) < 0.05  # normalised


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    raw = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.fixture
def fake_fashion(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 50, True), ("t10k", 20, False)):
        _write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            gz,
        )
        _write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte{'.gz' if gz else ''}", rng.integers(0, 10, n, dtype=np.uint8), gz
        )
    return tmp_path


def test_fashion_mnist_from_idx_files(fake_fashion: Path) -> None:
    b = load_dataset("fashion-mnist", str(fake_fashion), subset=30)
    assert (len(b.train), len(b.test), b.input_size) == (30, 20, 28)
    assert b.class_names[9] == "Ankle boot"


def test_fashion_mnist_holdout_evaluates_on_unseen_training_images(fake_fashion: Path) -> None:
    full = load_dataset("fashion-mnist", str(fake_fashion))
    b = load_dataset("fashion-mnist", str(fake_fashion), holdout=15)
    assert (len(b.train), len(b.test)) == (35, 15)
    assert torch.equal(b.train.images, full.train.images[:35]) and torch.equal(b.test.images, full.train.images[35:])
    with pytest.raises(DataError, match="holdout"):
        load_dataset("fashion-mnist", str(fake_fashion), holdout=50)


def test_fashion_mnist_missing_folder_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", str(tmp_path / "nope"))


def test_truncated_idx_is_rejected(fake_fashion: Path) -> None:
    path = fake_fashion / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="declares shape"):
        read_idx(path, 3)


@pytest.mark.skipif(not Path(DEFAULT_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    b = load_dataset("fashion-mnist")
    assert (len(b.train), len(b.test)) == (60000, 10000)


def test_augmentation_is_deterministic_and_shape_preserving() -> None:
    b = load_dataset("digits")
    first = [x for x, _ in b.train.batches(64, epoch=2, seed=5, train=True)]
    again = [x for x, _ in b.train.batches(64, epoch=2, seed=5, train=True)]
    other = [x for x, _ in b.train.batches(64, epoch=3, seed=5, train=True)]
    assert all(torch.equal(a, c) for a, c in zip(first, again))
    assert not torch.equal(first[0], other[0])
    resumed = [x for x, _ in b.train.batches(64, epoch=2, seed=5, train=True, skip=3)]
    assert all(torch.equal(a, c) for a, c in zip(first[3:], resumed))


def test_translate_moves_pixels() -> None:
    x = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    x[0, 0, 2, 2] = 255
    shifted = {
        tuple(torch.nonzero(random_translate_flip(x, torch.Generator().manual_seed(s), 1, False))[0, 2:].tolist())
        for s in range(30)
    }
    assert len(shifted) > 1 and all(1 <= r <= 3 and 1 <= c <= 3 for r, c in shifted)


def test_sharding_gives_each_rank_disjoint_equal_parts() -> None:
    b = load_dataset("digits")
    parts = [torch.cat([y for _, y in b.train.batches(1000, train=False, rank=r, world=2)]) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(b.train) // 2


def _image_folder(root: Path, classes=("cat", "dog"), per_class=3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_image_folder_layout(tmp_path: Path) -> None:
    b = load_dataset("image-folder", str(_image_folder(tmp_path)), image_size=32)
    assert b.class_names == ["cat", "dog"] and b.num_classes == 2
    x, y = next(b.train.batches(4, train=True))
    assert x.shape == (4, 3, 32, 32) and set(y.tolist()) <= {0, 1}
    x, _ = next(b.test.batches(6))
    assert x.shape == (6, 3, 32, 32)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("image-folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("image-folder", str(tmp_path / "empty"))


def _save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_class_list_gives_the_indices_and_splits_may_differ(tmp_path: Path) -> None:
    """ImageNet-style: classes.txt at the root lists every class in index order; train/ and val/ hold subsets."""
    classes = ["n00", "n01", "n02", "n03", "n04"]
    (tmp_path / "classes.txt").write_text("".join(f"{c} name of {c}\n" for c in classes))
    for split, held in (("train", ("n00", "n01", "n04")), ("val", ("n02",))):
        for c in held:
            _save(tmp_path / split / c / "a.png", classes.index(c))
    b = load_dataset(str(tmp_path), image_size=16)
    assert b.num_classes == 5 and b.class_names[3] == "name of n03"
    assert sorted(torch.cat([y for _, y in b.train.batches(8)]).tolist()) == [0, 1, 4]
    assert torch.cat([y for _, y in b.test.batches(8)]).tolist() == [2]
    # without the list, the sorted folder names would number val's only class 0 and refuse the differing splits
    (tmp_path / "classes.txt").rename(tmp_path / "other.txt")
    with pytest.raises(DataError, match="class list"):
        load_dataset(str(tmp_path), image_size=16)
    explicit = load_dataset("image-folder", str(tmp_path), image_size=16, classes=str(tmp_path / "other.txt"))
    assert torch.cat([y for _, y in explicit.test.batches(8)]).tolist() == [2]


def test_class_list_errors(tmp_path: Path) -> None:
    _save(tmp_path / "train" / "stray" / "a.png", 0)
    (tmp_path / "classes.txt").write_text("n00\nn01\n")
    with pytest.raises(DataError, match="not in the class list: stray"):
        load_dataset(str(tmp_path))
    (tmp_path / "classes.txt").write_text("n00\nn00\n")
    with pytest.raises(DataError, match="twice"):
        load_dataset(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("image-folder", str(tmp_path), classes=str(tmp_path / "missing.txt"))


def test_unlabelled_folder_finds_images_anywhere(tmp_path: Path) -> None:
    for i, rel in enumerate(("a.png", "2024/b.jpg", "2024/trip/c.png", "notes.txt")):
        if rel.endswith(".txt"):
            (tmp_path / rel).write_text("not an image")
        else:
            _save(tmp_path / rel, i)
    b = load_dataset("unlabelled-folder", str(tmp_path), image_size=16, test_images=2)
    assert b.num_classes == 0 and len(b.train) == 3 and len(b.test) == 2
    x, y = next(b.train.batches(3, train=True))
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [-1, -1, -1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("unlabelled-folder", str(tmp_path / "empty"))


def test_an_image_declaring_60000_squared_pixels_is_a_clear_error(tmp_path: Path) -> None:
    from toolchain.data.image_folder import load_image

    Image.new("L", (1, 1)).save(tmp_path / "x.png")
    raw = (tmp_path / "x.png").read_bytes()  # the IHDR chunk's width and height (and its CRC): PIL's bomb check
    ihdr = (60000).to_bytes(4, "big") * 2 + raw[24:29]
    crc = zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big")
    (tmp_path / "x.png").write_bytes(raw[:16] + ihdr + crc + raw[33:])
    with pytest.raises(DataError, match="cannot read image"):
        load_image(tmp_path / "x.png")


def test_eval_transform_matches_imagenet_recipe() -> None:
    from toolchain.data.image_folder import eval_transform

    img = Image.fromarray(np.full((300, 400, 3), 128, np.uint8))
    x = eval_transform(img)
    assert x.shape == (3, 224, 224)
    assert torch.allclose(
        x[:, 0, 0],
        (torch.tensor(128 / 255) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
        atol=1e-5,
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_photos(scale: int) -> None:
    b = load_dataset("sr-photos", subset=2, scale=scale, patch=24)
    lr, hr = next(b.train.batches(4, train=True))
    p = 24 - 24 % scale
    assert hr.shape == (4, 1, p, p) and lr.shape == (4, 1, p // scale, p // scale)
    lr, hr = next(b.test.batches(1))
    assert hr.shape[-2] == lr.shape[-2] * scale and hr.shape[-1] == lr.shape[-1] * scale
    assert hr.min() >= 16 / 255 - 1e-6 and hr.max() <= 235 / 255 + 1e-6  # BT.601 Y range


def test_sr_photos_split() -> None:
    """The embedded split: train and test photos are disjoint, and both views of the stereo pair load as photos."""
    from toolchain.data.super_resolution import SKIMAGE_TEST, SKIMAGE_TRAIN, _photo

    assert not set(SKIMAGE_TRAIN) & set(SKIMAGE_TEST)
    left, right = _photo("motorcycle_left"), _photo("motorcycle_right")
    assert left.shape == right.shape and left.ndim == 3 and left.dtype == np.uint8
    assert not np.array_equal(left, right)


def test_sr_folder_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        Image.fromarray(rng.integers(0, 256, (60, 64, 3), dtype=np.uint8)).save(tmp_path / split / "a.png")
    b = load_dataset("sr-folder", str(tmp_path), scale=2, patch=32)
    assert next(b.train.batches(2))[1].shape == (2, 1, 32, 32)
    with pytest.raises(DataError, match="scale"):
        load_dataset("sr-folder", str(tmp_path), scale=5)

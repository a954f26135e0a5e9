"""The torch-free runtime prepares an image file exactly as the data set that trained the model prepared its test
images, following the ``preprocess`` description the exporter stores in the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime import ToolchainError
from runtime.preprocess import luma, prepare_image
from toolchain.data import load_dataset


def test_image_folder_test_batches_are_what_the_runtime_prepares(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)).save(tmp_path / split / "cat" / "0.png")
    bundle = load_dataset("image-folder", str(tmp_path), image_size=32)
    x, _ = next(bundle.test.batches(1))
    with Image.open(tmp_path / "val" / "cat" / "0.png") as img:
        prepared = prepare_image(img, bundle.preprocess)
    assert prepared.dtype == np.float32 and prepared.shape == (3, 32, 32)
    np.testing.assert_array_equal(prepared, x[0].numpy())


@pytest.mark.parametrize("name", ["digits"])
def test_grey_test_images_are_what_the_runtime_prepares(name: str) -> None:
    bundle = load_dataset(name)
    x, _ = next(bundle.test.batches(4))
    for i in range(4):
        raw = bundle.test.images[i, 0].numpy()  # the stored uint8 image, already at the model's size
        prepared = prepare_image(Image.fromarray(raw), bundle.preprocess)
        np.testing.assert_allclose(prepared, x[i].numpy(), rtol=0, atol=1e-6)


def test_luma_is_bt601() -> None:
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(luma(pixels)[0], [16 / 255, 235 / 255, (16 + 65.481) / 255], atol=1e-6)
    y = prepare_image(Image.fromarray(pixels), {"kind": "y"})
    assert y.shape == (1, 1, 3) and y.dtype == np.float32


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(ToolchainError, match="unknown preprocessing 'sepia'"):
        prepare_image(Image.new("RGB", (4, 4)), {"kind": "sepia"})

"""scikit-learn's handwritten digits (1,797 real 8×8 scans, 10 classes): the embedded default, no set-up.

A fixed, seeded 80/20 split (1,437 train / 360 test). Pixel values 0..16 are rescaled to 0..255. Augmentation is
translation by one pixel only: digits are not mirror-symmetric.
"""

from __future__ import annotations

import numpy as np
import torch

from .arrays import ArraySource
from .registry import DataBundle, register_dataset

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@register_dataset("digits", "scikit-learn handwritten digits, 8×8 grey, 10 classes (embedded default)")
def load_digits(data_dir: str | None = None, subset: int | None = None) -> DataBundle:
    from sklearn.datasets import load_digits as sk_load_digits

    ds = sk_load_digits()
    images = np.clip(ds.images * 16, 0, 255).astype(np.uint8)[:, None]
    labels = ds.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_test = round(len(images) * TEST_FRACTION)
    test_idx, train_idx = order[:n_test], order[n_test:]
    x_train = torch.from_numpy(images[train_idx]).float()  # statistics of the whole split, whatever the subset
    mean, std = float(x_train.mean() / 255), float(x_train.std() / 255)
    if subset is not None:
        train_idx = train_idx[:subset]

    def source(idx: np.ndarray) -> ArraySource:
        return ArraySource(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]), mean, std, pad=1)

    return DataBundle(
        "digits",
        "classification",
        source(train_idx),
        source(test_idx),
        in_chans=1,
        input_size=8,
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        preprocess={"kind": "gray", "size": 8, "mean": mean, "std": std},
    )

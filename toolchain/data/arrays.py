"""In-memory image classification data (digits, Fashion-MNIST) with batched, seeded augmentation.

Images are kept as uint8 ``(N, C, H, W)``; a batch is normalised as ``(x/255 - mean) / std``. Training augmentation
is applied to the whole batch at once: a random translation by up to ``pad`` pixels (zero padding, the usual
"random crop with padding") and, where the classes are mirror-symmetric, a horizontal flip with probability ½.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .registry import SourceBase, batch_seed, shard_order

__all__ = ["ArraySource", "random_translate_flip"]


def random_translate_flip(x: torch.Tensor, gen: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """Shift each image by a uniform offset in ``[-pad, pad]²`` (zero fill) and optionally mirror half of them."""
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (N, H+2p, W+2p, C)
        oy, ox = torch.randint(0, 2 * pad + 1, (2, n), generator=gen)
        rows = oy[:, None] + torch.arange(h)
        cols = ox[:, None] + torch.arange(w)
        x = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


class ArraySource(SourceBase):
    """Batches from in-memory uint8 images and integer labels."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, *, pad: int = 2, flip: bool = False
    ) -> None:
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.mean, self.std, self.pad, self.flip = mean, std, pad, flip

    def __len__(self) -> int:
        return len(self.images)

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
        for step in range(skip, -(-len(order) // batch_size)):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = self.images[idx]
            if train and (self.pad or self.flip):
                gen = torch.Generator().manual_seed(batch_seed(seed, epoch, step + 1))
                x = random_translate_flip(x, gen, self.pad, self.flip)
            yield (x.float() / 255.0 - self.mean) / self.std, self.labels[idx]

"""A small vision transformer for 28×28 / 32×32 images: patch embedding, learned position embedding, pre-norm blocks
of multi-head self-attention and a GELU MLP, mean over tokens, linear head.

Written for ``torch.fx`` and the quantizer: the token count is fixed at construction (no ``x.shape`` in
``forward``), heads are split with ``reshape``/``transpose``, and the class token is replaced by the mean over
tokens. Every ``Linear`` runs on the (N, T, C) token tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model

__all__ = ["VisionTransformer"]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.tokens, self.head_dim = heads, tokens, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, C) → (N, heads, T, C / heads)."""
        return x.reshape(-1, self.tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        attention = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (attention @ v).transpose(1, 2).reshape(-1, self.tokens, self.heads * self.head_dim)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, tokens: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, tokens)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int = 28,
        patch: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__()
        if input_size % patch:
            raise ValueError(f"input size {input_size} is not a multiple of the patch size {patch}")
        tokens = (input_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_chans, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, tokens, mlp_ratio) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        return self.head(self.norm(self.blocks(tokens)).mean(1))


_DATA_ARGS = ("num_classes", "in_chans", "input_size")


@register_model("vit_small", input_size=28, in_chans=1, num_classes=10, data_args=_DATA_ARGS)
def _vit_small(**kw) -> VisionTransformer:
    """4 blocks of width 64 (4 heads) on 7×7 patches of 4×4 pixels: about 140 k parameters."""
    return VisionTransformer(**kw)


@register_model("vit_tiny", input_size=28, in_chans=1, num_classes=10, tags=("tiny",), data_args=_DATA_ARGS)
def _vit_tiny(**kw) -> VisionTransformer:
    return VisionTransformer(**{"dim": 16, "depth": 1, "heads": 2, "patch": 4, **kw})

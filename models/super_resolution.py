"""Single-image super-resolution networks: SRCNN, FSRCNN and ESPCN.

All three map a low-resolution image ``(N, C, H, W)`` to a high-resolution one ``(N, C, scale·H, scale·W)``, with
``scale`` in {2, 3, 4} and ``in_chans`` channels (default 1: the Y channel of YCbCr, as in the papers). They differ
in where the upscaling happens:

* SRCNN 9-5-5 (Dong et al. 2014) works at HR size on a bicubic-upscaled input: conv9×9 (C → 64) + ReLU →
  conv5×5 (64 → 32) + ReLU → conv5×5 (32 → C), all with "same" padding. The paper upscales outside the network;
  here the module's first step is the bicubic upscale (an ``nn.Upsample`` module, i.e.
  ``F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)``), so that every model here has the
  same LR → HR signature.
* FSRCNN(d=56, s=12, m=4) (Dong et al. 2016) works at LR size and upscales at the end: conv5×5 (C → d) → shrink
  1×1 (d → s) → m × conv3×3 (s → s) → expand 1×1 (s → d), each followed by ReLU, then a 9×9 transposed convolution
  (d → C, stride ``scale``, padding 4, output padding ``scale - 1``) whose output is exactly ``scale`` × the input
  size. The paper uses PReLU; ReLU is used here because it quantizes and fuses more simply.
* ESPCN (Shi et al. 2016) works at LR size and upscales with a sub-pixel convolution: conv5×5 (C → 64) + ReLU →
  conv3×3 (64 → 32) + ReLU → conv3×3 (32 → C·scale²) → ``nn.PixelShuffle(scale)``. The paper uses tanh; ReLU is
  used here for the same reason.

The layer widths are constructor arguments, which the ``*_tiny`` registry entries use for test-sized variants.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .mobilenet_v2 import _init_weights
from .registry import register_model

__all__ = ["ESPCN", "FSRCNN", "SRCNN"]

_SCALES = (2, 3, 4)


def _check_scale(scale: int) -> None:
    if scale not in _SCALES:
        raise ValueError(f"super-resolution scale must be one of {_SCALES}, got {scale}")


def _conv(inp: int, oup: int, kernel: int) -> nn.Conv2d:
    """Convolution with bias and "same" padding (odd ``kernel``)."""
    return nn.Conv2d(inp, oup, kernel, padding=kernel // 2)


class SRCNN(nn.Module):
    """SRCNN 9-5-5; ``forward`` bicubic-upscales the LR input by ``scale`` before the three convolutions."""

    def __init__(self, scale: int = 3, in_chans: int = 1, widths: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.upsample = nn.Upsample(scale_factor=scale, mode="bicubic", align_corners=False)
        self.body = nn.Sequential(
            _conv(in_chans, widths[0], 9),
            nn.ReLU(inplace=True),
            _conv(widths[0], widths[1], 5),
            nn.ReLU(inplace=True),
            _conv(widths[1], in_chans, 5),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(x))


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m) with ReLU instead of PReLU; the final transposed convolution upscales by ``scale``."""

    def __init__(self, scale: int = 3, in_chans: int = 1, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.feature = nn.Sequential(_conv(in_chans, d, 5), nn.ReLU(inplace=True))
        self.shrink = nn.Sequential(_conv(d, s, 1), nn.ReLU(inplace=True))
        mapping: list[nn.Module] = []
        for _ in range(m):
            mapping += [_conv(s, s, 3), nn.ReLU(inplace=True)]
        self.mapping = nn.Sequential(*mapping)
        self.expand = nn.Sequential(_conv(s, d, 1), nn.ReLU(inplace=True))
        self.deconv = nn.ConvTranspose2d(d, in_chans, 9, stride=scale, padding=4, output_padding=scale - 1)
        _init_weights(self)
        # As in the paper: the deconvolution starts from N(0, 0.001) (``_init_weights`` covers Conv2d only).
        nn.init.normal_(self.deconv.weight, 0.0, 0.001)
        if self.deconv.bias is not None:
            nn.init.zeros_(self.deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.expand(self.mapping(self.shrink(self.feature(x)))))


class ESPCN(nn.Module):
    """ESPCN with ReLU instead of tanh; a sub-pixel convolution (``nn.PixelShuffle``) upscales by ``scale``."""

    def __init__(self, scale: int = 3, in_chans: int = 1, widths: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        self.body = nn.Sequential(
            _conv(in_chans, widths[0], 5),
            nn.ReLU(inplace=True),
            _conv(widths[0], widths[1], 3),
            nn.ReLU(inplace=True),
            _conv(widths[1], in_chans * scale**2, 3),
        )
        self.pixel_shuffle = nn.PixelShuffle(scale)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel_shuffle(self.body(x))


_SR: dict[str, Any] = {"task": "super_resolution", "input_size": 32, "in_chans": 1, "scale": 3}


@register_model("srcnn", **_SR)
@register_model("srcnn_tiny", tags=("tiny",), widths=(16, 8), **_SR)
def _srcnn(**kw) -> SRCNN:
    """SRCNN 9-5-5 (LR input, bicubic upscale inside)."""
    return SRCNN(**kw)


@register_model("fsrcnn", **_SR)
@register_model("fsrcnn_tiny", tags=("tiny",), d=16, s=8, m=1, **_SR)
def _fsrcnn(**kw) -> FSRCNN:
    """FSRCNN(56, 12, 4) with ReLU."""
    return FSRCNN(**kw)


@register_model("espcn", **_SR)
@register_model("espcn_tiny", tags=("tiny",), widths=(16, 8), **_SR)
def _espcn(**kw) -> ESPCN:
    """ESPCN with ReLU."""
    return ESPCN(**kw)

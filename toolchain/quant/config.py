"""Quantization settings shared by ``prepare_qat``, QAT runs and post-training quantization."""

from __future__ import annotations

import dataclasses
from typing import Any

from models.quant.quantizers import BITS_RANGE

from ..config import Config, opt

__all__ = ["IO_SIGNS", "QuantConfig"]

IO_SIGNS = ("auto", "signed", "unsigned")


@dataclasses.dataclass(frozen=True)
class QuantConfig(Config):
    """Bit-widths and granularity. ``first``/``last`` are the first and last weighted layers in graph order."""

    wbits: int = opt(4, "weight bits n of the inner layers (2 = ternary … 8)")
    abits: int = opt(8, "activation bits m of the inner layers (2 … 8)")
    first_wbits: int = opt(8, "weight bits of the first weighted layer")
    last_wbits: int = opt(8, "weight bits of the last weighted layer")
    io_abits: int = opt(8, "bits of the network's input and output activations")
    io_sign: str = opt(
        "auto",
        "sign of the input/output quantizers: signed, unsigned (data in [0, 1], e.g. images for super-resolution; "
        "signed would waste one of the 8 bits), auto (unsigned for super-resolution data, else signed)",
        choices=IO_SIGNS,
    )
    depthwise_wbits: int = opt(
        0,
        "weight bits of depthwise convolutions (one filter per channel: few weights, each carrying a whole channel; "
        "0: the inner layers' wbits). layer_wbits and the first/last layer settings take precedence",
    )
    per_channel: bool = opt(True, "one learnable weight step per output channel (else one per layer)")
    layer_wbits: dict[str, Any] = opt(
        None, "per-layer weight bits by module name, e.g. features.1.conv.0.0=8", default_factory=dict
    )
    calib_batches: int = opt(8, "training batches used to initialise the activation steps")

    def __post_init__(self) -> None:
        for name in ("wbits", "abits", "first_wbits", "last_wbits", "io_abits"):
            value = getattr(self, name)
            self._check(isinstance(value, int) and value in BITS_RANGE, f"{name} must be 2…8 bits, got {value!r}")
        self._check(
            self.depthwise_wbits == 0 or self.depthwise_wbits in BITS_RANGE,
            f"depthwise_wbits must be 0 (as wbits) or 2…8 bits, got {self.depthwise_wbits!r}",
        )
        for layer, bits in self.layer_wbits.items():
            self._check(isinstance(bits, int) and bits in BITS_RANGE, f"layer_wbits[{layer!r}] must be 2…8")
        self._check(self.calib_batches >= 1, "calib_batches must be ≥ 1")
        self._check_choice("io_sign", IO_SIGNS)

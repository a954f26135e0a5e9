"""Integer weight levels: the symmetric narrow-range bound and the checks every codec applies.

A b-bit level q satisfies ``|q| ≤ L = 2^(b−1) − 1`` (b = 2: ternary {−1, 0, 1}); levels travel as int8. In the
graph a weight's initializer is its **container**: ``q·m`` as int8 (zero-point 0), or ``q·m + 128`` as uint8
(zero-point 128), with ``m`` the container multiplier (:func:`to_container`, :func:`from_container`).
"""

from __future__ import annotations

import numpy as np

from .errors import ToolchainError

__all__ = [
    "CodecError",
    "Coded",
    "checked",
    "flat_levels",
    "from_container",
    "level_limit",
    "max_level",
    "to_container",
]

Coded = bytes | memoryview  # coded bytes as decoders receive them: a sidecar hands out views of its payload


class CodecError(ToolchainError):
    """Coded bytes that do not decode to the declared number of in-range levels."""


def max_level(bits: int) -> int:
    """L = 2^(bits−1) − 1, the largest level magnitude of a signed narrow-range ``bits``-bit quantizer: the one
    definition that the quantizers (``models.quant``), the exporter, the reports and the sidecar all call."""
    return 2 ** (bits - 1) - 1


def level_limit(bits: int) -> int:
    """:func:`max_level` for a bit-width a sidecar may hold (2..8), else :class:`CodecError`."""
    if not 2 <= bits <= 8:
        raise CodecError(f"bit-width {bits} outside 2..8")
    return max_level(bits)


def flat_levels(levels: np.ndarray, bits: int) -> np.ndarray:
    """``levels`` as a contiguous 1-D int8 array, checked against ``±L``."""
    if levels.dtype != np.int8:
        raise TypeError(f"levels must be int8, got {levels.dtype}")
    flat = np.ascontiguousarray(levels).reshape(-1)
    lim = level_limit(bits)
    if flat.size and (int(flat.min()) < -lim or int(flat.max()) > lim):
        raise ValueError(f"levels outside ±{lim} cannot be coded at {bits} bits")
    return flat


def checked(levels: np.ndarray, count: int, bits: int, codec: str) -> np.ndarray:
    """A decoder's output, refused unless it holds exactly ``count`` levels within ``±L``."""
    if levels.size != count:
        raise CodecError(f"{codec} codec: stream holds {levels.size} levels, expected {count}")
    lim = level_limit(bits)
    if levels.size and (int(levels.min()) < -lim or int(levels.max()) > lim):
        raise CodecError(f"{codec} codec: levels outside ±{lim} for {bits} bits")
    return levels


def to_container(levels: np.ndarray, multiplier: int, zero_point: int, out: np.ndarray | None = None) -> np.ndarray:
    """The graph initializer holding the int8 ``levels``: ``q·m`` as int8 (``zero_point`` 0) or ``q·m + 128`` as
    uint8 (``zero_point`` 128), written into ``out`` when given (of that type and size). ``|q·m| ≤ 127`` is the
    caller's to guarantee."""
    if zero_point not in (0, 128):
        raise ValueError(f"a weight container has zero-point 0 (int8) or 128 (uint8), not {zero_point}")
    out = np.empty(levels.shape, np.uint8 if zero_point else np.int8) if out is None else out
    np.multiply(levels, np.int8(multiplier), out=out.view(np.int8))
    if zero_point:
        np.bitwise_xor(out, np.uint8(0x80), out=out)  # two's complement: flipping the top bit adds 128
    return out


def from_container(values: np.ndarray, multiplier: int, zero_point: int) -> np.ndarray:
    """The int8 levels ``q`` held by a container (the inverse of :func:`to_container`)."""
    stored = values if zero_point == 0 else (values.view(np.uint8) ^ np.uint8(0x80)).view(np.int8)
    return stored // np.int8(multiplier)

"""Lossless codecs for integer weight levels, kept in a registry by name (numpy and the standard library only).

A codec turns the int8 levels of one tensor (flattened, C order) into bytes and back. Decoding is *bounded*: the
caller states how many levels it expects (from the graph, before anything is read), and a codec that would produce
more or fewer raises :class:`CodecError` instead of allocating.

Registered here:

* ``raw``: the int8 bytes as they are (8 bits per level; the reference and the fallback).
* ``deflate``: zlib/DEFLATE at level 9 over the int8 bytes. DEFLATE is LZ77 followed by Huffman coding, so runs of
  zeros (pruned weights) and skewed level histograms (low bit-widths) both shrink.

``choose_codec`` picks the codec with the smallest output for a tensor, but keeps ``raw`` unless another codec
saves at least :data:`MIN_SAVING` of it: decoding ``raw`` is a copy, inflating costs ~3 ns per level, and for
8-bit weights DEFLATE rarely saves more than a few percent. A sidecar never stores a tensor larger than its raw
levels.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ToolchainError

__all__ = ["CODECS", "MIN_SAVING", "Codec", "CodecError", "choose_codec", "register_codec"]

MIN_SAVING = 0.05  # a codec other than raw must save at least this share of the raw size


class CodecError(ToolchainError):
    """Coded bytes that do not decode to the declared number of levels."""


@dataclass(frozen=True)
class Codec:
    """``encode(levels) -> bytes`` and ``decode(data, count) -> levels`` (int8, 1-D, exactly ``count`` long)."""

    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, int], np.ndarray]


CODECS: dict[str, Codec] = {}


def register_codec(codec: Codec) -> Codec:
    if codec.name in CODECS:
        raise ValueError(f"codec {codec.name!r} registered twice")
    CODECS[codec.name] = codec
    return codec


def _levels(levels: np.ndarray) -> np.ndarray:
    if levels.dtype != np.int8:
        raise TypeError(f"levels must be int8, got {levels.dtype}")
    return np.ascontiguousarray(levels).reshape(-1)


def _raw_decode(data: bytes, count: int) -> np.ndarray:
    if len(data) != count:
        raise CodecError(f"raw codec: {len(data)} bytes for {count} levels")
    return np.frombuffer(data, dtype=np.int8).copy()


def _deflate_decode(data: bytes, count: int) -> np.ndarray:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, count)  # never more than ``count`` bytes, whatever the input claims
    except zlib.error as e:
        raise CodecError(f"deflate codec: corrupt stream ({e})") from None
    if len(out) != count or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise CodecError(f"deflate codec: stream does not hold exactly {count} levels")
    return np.frombuffer(out, dtype=np.int8).copy()


register_codec(Codec("raw", lambda levels: _levels(levels).tobytes(), _raw_decode))
register_codec(Codec("deflate", lambda levels: zlib.compress(_levels(levels).tobytes(), 9), _deflate_decode))


def choose_codec(levels: np.ndarray, names: tuple[str, ...] | None = None) -> tuple[str, bytes]:
    """The registered codec (among ``names``, default all) with the shortest encoding, and that encoding;
    ``raw`` wins unless the shortest saves at least :data:`MIN_SAVING` of the raw size."""
    candidates = [(name, CODECS[name].encode(levels)) for name in names or tuple(CODECS)]
    name, data = min(candidates, key=lambda c: len(c[1]))
    raw = next((c for c in candidates if c[0] == "raw"), None)
    if raw is not None and len(data) > (1 - MIN_SAVING) * len(raw[1]):
        return raw
    return name, data

"""Lossless codecs for integer weight levels, kept in a registry by name (numpy, zlib, zstd and ``constriction``).

A codec turns the int8 levels ``q`` of one tensor (flattened, C order; ``|q| ≤ L = 2^(bits−1) − 1``) into bytes and
back. Decoding is *bounded*: the caller states how many levels it expects (from the graph, before anything is read)
and the bit-width, and a codec that would produce more or fewer levels, or levels outside ``±L``, raises
:class:`CodecError` instead of allocating or returning them.

Each codec states its decoding cost (:attr:`Codec.decode_cost`, :data:`DECODE_COSTS`); :data:`CODECS` holds them
cheapest first whatever order they were registered in, and :func:`choose_codec` ranks by it. Here, cheapest first:

* ``raw``: the int8 bytes as they are (8 bits per level; the reference and the fallback).
* ``packed-zstd`` and ``sparse-zstd``: ``packed`` and ``sparse`` (below) with their bytes Huffman-coded in a
  Zstandard frame (:mod:`runtime.zstd_stage`) instead of a DEFLATE stream: the same sizes to within a fraction of
  a percent, decoded 4–11× faster (zstd's Huffman decoder reads four streams at once; zlib's one symbol at a time).
* ``packed``: the paper's coder made near-optimal. Levels become base-K digits (K = 2L + 1 = 2^bits − 1), packed
  ``k = ⌊log_K 256⌋`` to a byte (5 ternary levels, 2 three- or four-bit levels, 1 level from five bits up), then
  Huffman-coded (zlib's Huffman-only strategy, raw DEFLATE). Huffman coding wastes up to ~``p_max + 0.086`` bits
  per *symbol*; packing k levels per symbol divides that waste by k, which matters for low-entropy ternary and
  pruned tensors.
* ``huffman``: Huffman coding of the levels one per symbol (zlib Huffman-only, no string matching): the paper's
  coder, kept as the baseline. It cannot spend less than 1 bit per level.
* ``sparse``: where the zeros are, then what the others are. A bitmap of the non-zero levels (8 levels per byte,
  Huffman-coded like ``huffman``), then the non-zero levels alone, coded as ``packed``. Order-0 entropy splits the
  same way (``H(q) = H(q ≠ 0) + P(q ≠ 0)·H(q | q ≠ 0)``), so this reaches the entropy of pruned tensors where
  Huffman coding one level per symbol cannot spend under 1 bit on a zero (8-bit levels at 70 % zeros: 5 % over),
  at Huffman's decoding speed instead of rANS's.
* ``deflate``: zlib/DEFLATE level 9 (LZ77 + Huffman) over the int8 bytes.
* ``ans``: range asymmetric numeral systems (rANS, :mod:`runtime.ans`) with the tensor's own level histogram,
  within a fraction of a percent of the order-0 entropy, but the slowest to decode.

``choose_codec`` picks, among the candidates, the cheapest-to-decode codec whose output is within
:data:`SIZE_TOLERANCE` of the smallest. Exactness is only ever traded for decoding speed inside that tolerance.

A new codec is one :func:`register_codec` call with its own cost; two codecs may not share a cost, so that the
choice never depends on the order of registration. ``docs/sidecar.md`` lists the codecs in the same order
(``tests/runtime/test_codecs.py`` holds its lists against this registry).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import ans, zstd_stage
from .levels import CodecError, Coded, checked, flat_levels, level_limit

__all__ = [
    "CODECS",
    "DECODE_COSTS",
    "SIZE_TOLERANCE",
    "Codec",
    "CodecError",
    "choose_codec",
    "level_limit",
    "register_codec",
    "split_levels",
]

SIZE_TOLERANCE = 0.01  # a cheaper-to-decode codec wins if its output is at most 1 % larger than the smallest

# Decoding cost, about nanoseconds per level on one thread: the medians of BENCHMARKS.md, "Sidecar format 2"
# (MobileNetV2 at 3, 4 and 8 bits, 0-70 % zeros): raw 1.3, packed-zstd 3.1, sparse-zstd 6.1, ans 31. packed,
# huffman, sparse and deflate all measure 7.6-11 ns, within each other's run-to-run noise, and keep the order
# they had before costs were explicit (packed, huffman, sparse, deflate), so that exports choose as they did.
DECODE_COSTS = {
    "raw": 1,
    "packed-zstd": 3,
    "sparse-zstd": 6,
    "packed": 8,
    "huffman": 9,
    "sparse": 10,
    "deflate": 11,
    "ans": 31,
}


@dataclass(frozen=True)
class Codec:
    """``encode(levels, bits) -> bytes`` and ``decode(data, count, bits) -> levels`` (int8, 1-D, ``count`` long);
    ``decode_cost``: how dear decoding is, about nanoseconds per level on one thread (:data:`DECODE_COSTS`)."""

    name: str
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[Coded, int, int], np.ndarray]
    decode_cost: float


CODECS: dict[str, Codec] = {}  # by decode cost, cheapest first


def register_codec(codec: Codec) -> Codec:
    """Add a codec, and keep :data:`CODECS` ordered by decode cost (cheapest first). A codec whose cost equals
    another's is refused: :func:`choose_codec` breaks size ties by cost, never by the order of registration."""
    if codec.name in CODECS:
        raise ValueError(f"codec {codec.name!r} registered twice")
    if not codec.decode_cost > 0:
        raise ValueError(f"codec {codec.name!r}: decode cost must be positive, got {codec.decode_cost!r}")
    same = [c.name for c in CODECS.values() if c.decode_cost == codec.decode_cost]
    if same:
        raise ValueError(f"codec {codec.name!r}: decode cost {codec.decode_cost} is {same[0]!r}'s; give it its own")
    ordered = sorted([*CODECS.values(), codec], key=lambda c: c.decode_cost)
    CODECS.clear()
    CODECS.update((c.name, c) for c in ordered)
    return codec


# -- zlib streams ---------------------------------------------------------------------------------------------------


def _zlib_encode(data: bytes, strategy: int, wbits: int = -15) -> bytes:
    """A DEFLATE stream at level 9; ``wbits = -15`` writes it raw (no zlib header or checksum: the sidecar has its
    own CRC), ``15`` with the zlib wrapper (the ``deflate`` codec's format since version 1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits, 9, strategy)
    return comp.compress(data) + comp.flush()


def _zlib_decode(data: Coded, size: int, codec: str, wbits: int = -15) -> bytes:
    """Inflate at most ``size`` bytes; the stream must end exactly there."""
    inflater = zlib.decompressobj(wbits)
    try:
        # never more than ``size`` bytes, whatever the input claims (zlib reads max_length 0 as "unlimited", so an
        # empty tensor asks for 1 byte and any output is then an error)
        out = inflater.decompress(data, max(size, 1))
    except zlib.error as e:
        raise CodecError(f"{codec} codec: corrupt stream ({e})") from None
    if len(out) != size or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise CodecError(f"{codec} codec: stream does not hold exactly {size} bytes")
    return out


# -- packing k base-K digits per byte -------------------------------------------------------------------------------


def pack_factor(bits: int) -> int:
    """k = ⌊log_K 256⌋ levels per byte, K = 2^bits − 1 (5 for ternary, 2 for 3–4 bits, 1 from 5 bits)."""
    k = 2 * level_limit(bits) + 1
    return max(1, math.floor(math.log(256) / math.log(k) + 1e-9))


@cache
def _unpack_table(bits: int) -> tuple[np.ndarray, int]:
    """Row b of the table holds the k levels packed into byte b; the second value is the number of valid bytes."""
    lim, k = level_limit(bits), pack_factor(bits)
    base = 2 * lim + 1
    valid = min(256, base**k)
    codes = np.arange(valid)
    digits = np.stack([(codes // base**j) % base for j in range(k)], axis=1) - lim
    table = np.zeros((256, k), np.int8)
    table[:valid] = digits
    table.flags.writeable = False
    return table, valid


def pack(levels: np.ndarray, bits: int) -> np.ndarray:
    """Levels → bytes, k base-K digits each (the last byte padded with level 0)."""
    flat = flat_levels(levels, bits)
    lim, k = level_limit(bits), pack_factor(bits)
    if k == 1:
        return flat.view(np.uint8)
    digits = (flat.astype(np.int16) + lim).astype(np.uint16)
    digits = np.pad(digits, (0, -flat.size % k), constant_values=lim).reshape(-1, k)
    weights = (2 * lim + 1) ** np.arange(k, dtype=np.uint16)
    return (digits * weights).sum(axis=1).astype(np.uint8)


def unpack(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Bytes → the first ``count`` levels; bytes that no k digits produce, and non-zero padding, are refused."""
    k = pack_factor(bits)
    if packed.size != -(-count // k):
        raise CodecError(f"packed levels: {packed.size} bytes cannot hold exactly {count} levels")
    if k == 1:
        return packed.view(np.int8).copy()
    table, valid = _unpack_table(bits)
    if packed.size and int(packed.max()) >= valid:
        raise CodecError(f"packed levels: byte {int(packed.max())} is not a code of {k} {bits}-bit levels")
    if k == 2:  # two digits by integer division by the constant K: ~3× faster than any table gather here
        lim, base = level_limit(bits), np.uint8(2 * level_limit(bits) + 1)
        high = packed // base
        levels = np.empty(2 * packed.size, np.int8)
        levels[0::2] = (packed - high * base).view(np.int8) - np.int8(lim)
        levels[1::2] = high.view(np.int8) - np.int8(lim)
    else:  # np.take of whole rows: ~4× faster than fancy indexing
        levels = np.take(table, packed, axis=0).reshape(-1)
    if np.any(levels[count:]):
        raise CodecError(f"packed levels: the last byte holds more than {count} levels (padding is not level 0)")
    return levels[:count]


# -- the registry ---------------------------------------------------------------------------------------------------


def _raw_decode(data: Coded, count: int, bits: int) -> np.ndarray:
    if len(data) != count:
        raise CodecError(f"raw codec: {len(data)} bytes for {count} levels")
    return checked(np.frombuffer(data, dtype=np.int8).copy(), count, bits, "raw")


@dataclass(frozen=True)
class ByteCoder:
    """The entropy stage under ``packed`` and ``sparse``: bytes → bytes, and back to exactly ``size`` bytes."""

    encode: Callable[[bytes], bytes]
    decode: Callable[[Coded, int, str], bytes]  # (data, size, codec name for errors)


ZLIB_HUFFMAN = ByteCoder(lambda data: _zlib_encode(data, zlib.Z_HUFFMAN_ONLY), _zlib_decode)
ZSTD = ByteCoder(zstd_stage.encode, zstd_stage.decode)


def _packed_codec(name: str, coder: ByteCoder) -> Codec:
    """Levels packed k to a byte (:func:`pack`), the bytes through ``coder``."""

    def encode(levels: np.ndarray, bits: int) -> bytes:
        return coder.encode(pack(levels, bits).tobytes())

    def decode(data: Coded, count: int, bits: int) -> np.ndarray:
        packed = np.frombuffer(coder.decode(data, -(-count // pack_factor(bits)), name), dtype=np.uint8)
        return checked(unpack(packed, count, bits), count, bits, name)

    return Codec(name, encode, decode, DECODE_COSTS[name])


_MASK_LENGTH = struct.Struct("<I")  # a sparse codec's first field: the length of its bitmap stream


def _sparse_codec(name: str, coder: ByteCoder, values: Codec) -> Codec:
    """A bitmap of the non-zero levels through ``coder``, then the non-zero levels coded by ``values``."""

    def encode(levels: np.ndarray, bits: int) -> bytes:
        flat = flat_levels(levels, bits)
        nonzero = flat != 0
        mask = coder.encode(np.packbits(nonzero, bitorder="little").tobytes())
        return _MASK_LENGTH.pack(len(mask)) + mask + values.encode(flat[nonzero], bits)

    def decode(data: Coded, count: int, bits: int) -> np.ndarray:
        if len(data) < _MASK_LENGTH.size:
            raise CodecError(f"{name} codec: truncated before the bitmap length")
        (mask_length,) = _MASK_LENGTH.unpack_from(data)
        end = _MASK_LENGTH.size + mask_length
        if end > len(data):
            raise CodecError(f"{name} codec: bitmap stream of {mask_length} bytes runs past the tensor's data")
        mask_bytes = np.frombuffer(coder.decode(data[_MASK_LENGTH.size : end], -(-count // 8), name), np.uint8)
        nonzero = np.unpackbits(mask_bytes, bitorder="little").view(bool)
        if nonzero[count:].any():
            raise CodecError(f"{name} codec: the bitmap marks levels past the end of the tensor")
        where = np.flatnonzero(nonzero[:count])
        found = values.decode(data[end:], where.size, bits)
        if not found.all():
            raise CodecError(f"{name} codec: a level the bitmap marks non-zero is 0")
        out = np.zeros(count, np.int8)
        out[where] = found
        return out

    return Codec(name, encode, decode, DECODE_COSTS[name])


def _zlib_codec(name: str, strategy: int, wbits: int) -> Codec:
    """Codec over the int8 bytes, one level per byte, with a zlib strategy."""

    def encode(levels: np.ndarray, bits: int) -> bytes:
        return _zlib_encode(flat_levels(levels, bits).tobytes(), strategy, wbits)

    def decode(data: Coded, count: int, bits: int) -> np.ndarray:
        out = np.frombuffer(_zlib_decode(data, count, name, wbits), dtype=np.int8).copy()
        return checked(out, count, bits, name)

    return Codec(name, encode, decode, DECODE_COSTS[name])


_PACKED = _packed_codec("packed", ZLIB_HUFFMAN)
_PACKED_ZSTD = _packed_codec("packed-zstd", ZSTD)

register_codec(Codec("raw", lambda levels, bits: flat_levels(levels, bits).tobytes(), _raw_decode, DECODE_COSTS["raw"]))
register_codec(_PACKED_ZSTD)
register_codec(_sparse_codec("sparse-zstd", ZSTD, _PACKED_ZSTD))
register_codec(_PACKED)
register_codec(_zlib_codec("huffman", zlib.Z_HUFFMAN_ONLY, -15))
register_codec(_sparse_codec("sparse", ZLIB_HUFFMAN, _PACKED))
register_codec(_zlib_codec("deflate", zlib.Z_DEFAULT_STRATEGY, 15))
register_codec(Codec("ans", ans.encode, ans.decode, DECODE_COSTS["ans"]))


def split_levels(levels: np.ndarray, chunk_levels: int) -> list[np.ndarray]:
    """The flattened levels in pieces of ``chunk_levels`` (the last one shorter; one empty piece for no levels)."""
    flat = np.ascontiguousarray(levels).reshape(-1)
    return [flat[i : i + chunk_levels] for i in range(0, flat.size, chunk_levels)] or [flat]


def choose_codec(
    levels: np.ndarray,
    bits: int,
    names: tuple[str, ...] | None = None,
    tolerance: float = SIZE_TOLERANCE,
    chunk_levels: int | None = None,
) -> tuple[str, list[bytes]]:
    """The cheapest-to-decode codec (:attr:`Codec.decode_cost`) among ``names`` (default: all) whose encoding is
    within ``tolerance`` of the shortest, and that encoding: one coded piece per ``chunk_levels`` levels
    (:func:`split_levels`), each decodable on its own, or a single piece when ``chunk_levels`` is None. With
    ``tolerance = 0`` the shortest wins (ties go to the cheaper codec)."""
    order = sorted((n for n in CODECS if n in (names or CODECS)), key=lambda n: CODECS[n].decode_cost)
    unknown = set(names or ()) - set(CODECS)
    if unknown or not order:
        raise CodecError(f"unknown codec(s) {sorted(unknown)}; known: {', '.join(CODECS)}")
    pieces = split_levels(levels, chunk_levels) if chunk_levels else [levels]
    candidates = [(name, [CODECS[name].encode(piece, bits) for piece in pieces]) for name in order]
    sizes = {name: sum(map(len, coded)) for name, coded in candidates}
    shortest = min(sizes.values())
    return next((n, coded) for n, coded in candidates if sizes[n] <= shortest * (1 + tolerance))

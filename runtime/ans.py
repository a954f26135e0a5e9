"""The ``ans`` codec: rANS entropy coding of integer levels with the tensor's own histogram (``constriction``).

An order-0 model needs the probabilities p(q) of each level; coding a tensor of N levels then costs about
``N · H`` bits, ``H = −Σ p log₂ p``, plus the table. The coder is ``constriction``'s stack-based ANS coder (Rust,
32-bit words), whose overhead over ``N · H`` is a few words per tensor.

Byte layout (little-endian)::

    varint   N, the number of levels (the decoder checks it against the count the graph declares)
    1 byte   lo, the smallest level present (int8)
    1 byte   span S = (largest level present) − lo + 1, 1..255
    ⌈S/8⌉    presence bitmap over lo .. lo+S−1 (bit i of byte i//8 = level lo+i occurs)
    varints  one LEB128 frequency f ≥ 1 per present level, in increasing level order
    rest     the ANS stream, 32-bit words (empty when a single level is present)

Frequencies are the counts rescaled to a total T (each at least 1; the exact counts when N ≤ T). The encoder tries
T = 2^8, 2^10, …, 2^16 and keeps the shortest output: a coarse table costs fewer bytes (1-byte varints below 128)
but codes the levels with slightly wrong probabilities, which pays off only for small tensors. Both sides build the
model from the same integers, ``p = f / Σf`` in float64, so encoder and decoder agree exactly. An
empty tensor is coded as no bytes.

``constriction``'s bit stream is part of this format: ``tests/runtime/test_codecs.py`` decodes a stored stream so
that a library release that changed it would fail CI rather than old sidecars.
"""

from __future__ import annotations

import constriction
import numpy as np

from .levels import CodecError, Coded, checked, flat_levels

__all__ = ["decode", "encode"]

TABLE_TOTALS = (1 << 8, 1 << 10, 1 << 12, 1 << 14, 1 << 16)  # frequency totals the encoder tries


def _model(freqs: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(freqs / freqs.sum(), perfect=False)


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():  # at most 255 table entries, not a per-level loop
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _read_varints(data: Coded, pos: int, n: int) -> tuple[np.ndarray, int]:
    """``n`` positive LEB128 integers (each < 2^35) from ``data[pos:]``, and the position after them."""
    values = []
    for _ in range(n):
        v, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 28:
                raise CodecError("ans codec: truncated or oversized frequency table")
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if v == 0:
            raise CodecError("ans codec: zero frequency in the table")
        values.append(v)
    return np.asarray(values, dtype=np.float64), pos


def encode(levels: np.ndarray, bits: int) -> bytes:
    flat = flat_levels(levels, bits)
    if flat.size == 0:
        return b""
    lo, hi = int(flat.min()), int(flat.max())
    counts = np.bincount(flat.astype(np.int32) - lo, minlength=hi - lo + 1)
    present = counts > 0
    bitmap = np.packbits(present, bitorder="little").tobytes()
    head = _varints(np.array([flat.size])) + np.int8(lo).tobytes() + bytes([hi - lo + 1]) + bitmap
    symbols = (np.cumsum(present) - 1)[flat.astype(np.int32) - lo].astype(np.int32)  # index among present levels
    best = b""
    for total in TABLE_TOTALS:
        freqs = counts[present].astype(np.int64)
        if flat.size > total:
            freqs = np.maximum(1, np.rint(freqs * (total / flat.size))).astype(np.int64)
        coded = head + _varints(freqs)
        if freqs.size > 1:
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(symbols, _model(freqs.astype(np.float64)))
            coded += coder.get_compressed().astype("<u4").tobytes()
        if not best or len(coded) < len(best):
            best = coded
        if flat.size <= total:  # exact counts: finer totals cannot change the table
            break
    return best


def decode(data: Coded, count: int, bits: int) -> np.ndarray:
    if count == 0 or not data:
        if count or data:
            raise CodecError(f"ans codec: {len(data)} bytes for {count} levels")
        return np.zeros(0, np.int8)
    stored, pos = _read_varints(data, 0, 1)
    if int(stored[0]) != count:
        raise CodecError(f"ans codec: stream holds {int(stored[0])} levels, expected {count}")
    if len(data) < pos + 3:
        raise CodecError("ans codec: truncated table")
    lo, span = int(np.frombuffer(data[pos : pos + 1], np.int8)[0]), data[pos + 1]
    nmap = -(-span // 8)
    pos += 2
    if span == 0 or len(data) < pos + nmap:
        raise CodecError("ans codec: invalid or truncated table")
    present = np.unpackbits(np.frombuffer(data[pos : pos + nmap], np.uint8), bitorder="little")[:span].astype(bool)
    levels_present = (lo + np.flatnonzero(present)).astype(np.int8)
    if levels_present.size == 0 or not (present[0] and present[-1]):
        raise CodecError("ans codec: the table's range does not start and end on a present level")
    freqs, pos = _read_varints(data, pos + nmap, levels_present.size)
    if levels_present.size == 1:
        if pos != len(data):
            raise CodecError("ans codec: trailing bytes after a single-level table")
        return checked(np.full(count, levels_present[0], np.int8), count, bits, "ans")
    body = data[pos:]
    if len(body) % 4:
        raise CodecError("ans codec: the stream is not a whole number of 32-bit words")
    try:  # the constructor refuses some streams too (e.g. one ending in a zero word)
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(body, "<u4").astype(np.uint32))
        symbols = coder.decode(_model(freqs), count)
    except Exception as e:  # constriction raises its own error types on exhausted or invalid streams
        raise CodecError(f"ans codec: corrupt stream ({e})") from None
    if not coder.is_empty():
        raise CodecError(f"ans codec: the stream holds more than {count} levels")
    return checked(levels_present[symbols], count, bits, "ans")

"""Golden sidecars: small files whose bytes are pinned, one per codec, so that neither the writer nor the reader
can drift from docs/sidecar.md unnoticed. Each holds the same 3-bit tensor (2 channels on axis 0, steps 0.5 and
0.25) and a 5-bit one (one step), coded with one codec, in chunks of 16 levels (the 3-bit tensor in two chunks).
``golden/v1/`` keeps the files of format version 1 (one chunk per tensor, no ``sparse`` codec), which must still
read.

To regenerate after a *deliberate* format change (a new format version; move the old files to ``golden/vN/``
first): `python tests/runtime/test_golden.py`.
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from runtime.codecs import CODECS
from runtime.sidecar import SidecarTensor, encode_sidecar, parse_sidecar

GOLDEN = Path(__file__).parent / "golden"
CHUNK = 16  # levels per chunk in the golden files
# fmt: off
LEVELS_3BIT = np.array([[0, 1, -1, 3, -3, 2, 0, 0, 1, -2, 0, 0],
                        [0, 0, 0, -1, 1, 0, 0, 2, -2, 0, 3, -3]], np.int8)
# fmt: on
LEVELS_5BIT = np.array([0, 15, -15, 7, -8, 1, 0, 0, -1], np.int8)


def tensors() -> list[SidecarTensor]:
    return [
        SidecarTensor("a.weight", LEVELS_3BIT, 3, np.array([0.5, 0.25], np.float32), 0, 21),
        SidecarTensor("b.weight", LEVELS_5BIT, 5, np.array([0.125], np.float32), None, 4),
    ]


def written(codec: str) -> bytes:
    return encode_sidecar(tensors(), {"golden": 1}, codecs=(codec,), chunk_levels=CHUNK)


def chunk_bodies(index, record) -> list[bytes]:
    return [bytes(index.payload[start : start + length]) for _, _, start, length in record.chunk_spans()]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_writer_still_writes_the_golden_bytes(codec: str) -> None:
    assert written(codec) == (GOLDEN / f"{codec}.qsc").read_bytes()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_golden_file_reads_as_the_spec_says(codec: str) -> None:
    data = (GOLDEN / f"{codec}.qsc").read_bytes()
    magic, version, reserved, length, crc = struct.unpack_from("<8sHHII", data)  # the preamble, by hand
    assert (magic, version, reserved) == (b"QDQSIDE\0", 2, 0) and zlib.crc32(data[20 : 20 + length]) == crc
    header = json.loads(data[20 : 20 + length])
    first = header["tensors"][0]
    assert np.frombuffer(base64.b64decode(first["steps"]), "<f4").tolist() == [0.5, 0.25]
    assert first["offset"] == 0 and len(data) == 20 + length + sum(t["length"] for t in header["tensors"])
    assert first["chunk_levels"] == CHUNK and len(first["chunks"]) == 2  # 24 levels in chunks of 16
    assert sum(n for n, _ in first["chunks"]) == first["length"]
    body = data[20 + length :]
    assert zlib.crc32(body[: first["chunks"][0][0]]) == first["chunks"][0][1]  # each chunk carries its own CRC
    index = parse_sidecar(data)
    np.testing.assert_array_equal(index.decode(index.records[0]), LEVELS_3BIT * 21)
    np.testing.assert_array_equal(index.decode(index.records[1]), LEVELS_5BIT * 4)
    np.testing.assert_array_equal(index.decode_all(workers=2)[0], LEVELS_3BIT * 21)


@pytest.mark.parametrize("path", sorted((GOLDEN / "v1").glob("*.qsc")), ids=lambda p: p.stem)
def test_format_version_1_files_still_read(path: Path) -> None:
    data = path.read_bytes()
    assert struct.unpack_from("<H", data, 8) == (1,)
    index = parse_sidecar(data)
    assert all(len(r.chunks) == 1 for r in index.records)
    np.testing.assert_array_equal(index.decode(index.records[0]), LEVELS_3BIT * 21)
    np.testing.assert_array_equal(index.decode_all()[1], LEVELS_5BIT * 4)


def test_a_non_zero_reserved_field_is_refused() -> None:
    from runtime.sidecar import SidecarError

    data = bytearray((GOLDEN / "raw.qsc").read_bytes())
    data[10:12] = struct.pack("<H", 1)
    with pytest.raises(SidecarError, match="reserved"):
        parse_sidecar(bytes(data))


def test_packed_bytes_by_hand() -> None:
    """The spec's packing rule, applied by hand to the first bytes: 3 bits, K = 7, two digits per byte
    (d = q + 3, first level in the low digit); at 5 bits each byte is the int8 level itself."""
    index = parse_sidecar((GOLDEN / "packed.qsc").read_bytes())
    packed = b"".join(zlib.decompress(body, -15) for body in chunk_bodies(index, index.records[0]))
    flat = LEVELS_3BIT.reshape(-1).astype(int) + 3
    assert list(packed) == [int(flat[i] + 7 * flat[i + 1]) for i in range(0, flat.size, 2)]
    (body,) = chunk_bodies(index, index.records[1])
    assert zlib.decompress(body, -15) == LEVELS_5BIT.tobytes()


def test_packed_zstd_bytes_by_hand() -> None:
    """``packed-zstd`` is ``packed`` with one Zstandard frame (RFC 8878) in place of the DEFLATE stream."""
    import zstandard

    packed, zstd = (parse_sidecar((GOLDEN / f"{c}.qsc").read_bytes()) for c in ("packed", "packed-zstd"))
    for a, b in zip(packed.records, zstd.records):
        for deflated, framed in zip(chunk_bodies(packed, a), chunk_bodies(zstd, b)):
            assert zstandard.ZstdDecompressor().decompress(framed) == zlib.decompress(deflated, -15)


def test_sparse_bytes_by_hand() -> None:
    """The spec's sparse layout, by hand: u32 bitmap-stream length, the bitmap (raw DEFLATE, bit i of byte i/8 least
    significant first), then the non-zero levels coded as ``packed``."""
    index = parse_sidecar((GOLDEN / "sparse.qsc").read_bytes())
    levels = LEVELS_3BIT.reshape(-1)
    for (first, count, _, _), body in zip(index.records[0].chunk_spans(), chunk_bodies(index, index.records[0])):
        chunk = levels[first : first + count]
        (mask_length,) = struct.unpack_from("<I", body)
        mask = np.frombuffer(zlib.decompress(body[4 : 4 + mask_length], -15), np.uint8)
        assert mask.tolist() == np.packbits(chunk != 0, bitorder="little").tolist()
        nonzero = chunk[chunk != 0].astype(int) + 3
        nonzero = np.append(nonzero, [3] * (nonzero.size % 2))  # padded with level 0
        packed = zlib.decompress(body[4 + mask_length :], -15)
        assert list(packed) == [int(nonzero[i] + 7 * nonzero[i + 1]) for i in range(0, nonzero.size, 2)]


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def spec_ans_decode(body: bytes) -> np.ndarray:
    """The `ans` codec decoded from docs/sidecar.md alone: plain Python integers, no constriction."""
    import struct as st

    n_levels, pos = _leb128(body, 0)
    lo, span = st.unpack_from("<bB", body, pos)
    pos += 2
    bitmap = body[pos : pos + -(-span // 8)]
    pos += len(bitmap)
    present = [lo + i for i in range(span) if bitmap[i // 8] >> (i % 8) & 1]
    freqs = []
    for _ in present:
        f, pos = _leb128(body, pos)
        freqs.append(f)
    if len(present) == 1:
        return np.full(n_levels, present[0], np.int8)
    n, total = len(present), float(sum(freqs))
    probs = [f / total for f in freqs]
    z = 0.0
    for q in probs:
        z += q
    scale = float((1 << 24) - n) / z
    cdf, cumulative = [], 0.0
    for s, q in enumerate(probs):
        cdf.append(int(cumulative * scale) + s)
        cumulative += q
    cdf.append(1 << 24)
    words = list(st.unpack_from(f"<{(len(body) - pos) // 4}I", body, pos))
    assert not words or words[-1] != 0
    x = 0
    while words and x < 1 << 32:
        x = (x << 32) | words.pop()
    out = []
    for _ in range(n_levels):
        r = x & ((1 << 24) - 1)
        s = next(i for i in range(n) if cdf[i] <= r < cdf[i + 1])
        x = (x >> 24) * (cdf[s + 1] - cdf[s]) + (r - cdf[s])
        if x < 1 << 32 and words:
            x = (x << 32) | words.pop()
        out.append(present[s])
    assert not words and x == 0
    return np.array(out, np.int8)


def test_the_ans_stream_decodes_from_the_spec_alone() -> None:
    """A decoder written from docs/sidecar.md (no constriction) reads the golden file and random tensors exactly."""
    index = parse_sidecar((GOLDEN / "ans.qsc").read_bytes())
    for record, levels in zip(index.records, (LEVELS_3BIT, LEVELS_5BIT)):
        decoded = np.concatenate([spec_ans_decode(body) for body in chunk_bodies(index, record)])
        np.testing.assert_array_equal(decoded, levels.reshape(-1))
    rng = np.random.default_rng(0)
    for size, bits, spread in ((1, 4, 1.0), (300, 2, 0.3), (5000, 4, 2.0), (20000, 8, 12.0)):  # 20000 > 2^14 rescales
        lim = 2 ** (bits - 1) - 1
        levels = np.clip(np.rint(rng.laplace(0, spread, size)), -lim, lim).astype(np.int8)
        body = CODECS["ans"].encode(levels, bits)
        np.testing.assert_array_equal(spec_ans_decode(body), levels)


if __name__ == "__main__":  # regenerate
    GOLDEN.mkdir(exist_ok=True)
    for name in sorted(CODECS):
        (GOLDEN / f"{name}.qsc").write_bytes(written(name))
        print(name, len(written(name)), "bytes")
    sys.exit(0)

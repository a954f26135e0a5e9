"""Golden sidecars: small files whose bytes are pinned, one per codec, so that neither the writer nor the reader
can drift from docs/sidecar.md unnoticed. Each holds the same 3-bit tensor (2 channels on axis 0, steps 0.5 and
0.25) and a 5-bit one (one step), coded with one codec, in chunks of 16 levels (the 3-bit tensor in two chunks).
``golden/edge/`` holds, per codec, the cases an independent reader had to guess at (issue 31, item 5): an 8-bit
uint8 record in three chunks (16, 16 and 8 levels) with level −1 (byte 0xFF) and ±127, a ternary tensor whose last
packed byte is padded, a fully pruned tensor in two chunks (no non-zero level: M = 0) and a tensor with no levels.
``golden/v1/`` keeps the files of format version 1 (one chunk per tensor, no ``sparse`` codec), which must still
read.

`python tests/runtime/test_golden.py` writes the golden files that are missing (a new codec's) and leaves the others
alone; ``--force`` rewrites them all, for a *deliberate* format change only (a new format version: move the old
files to ``golden/vN/`` first).
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from runtime.codecs import CODECS, CodecError
from runtime.levels import to_container
from runtime.sidecar import SidecarTensor, encode_sidecar, parse_sidecar

GOLDEN = Path(__file__).parent / "golden"
EDGE = "edge"  # the edge cases' folder under GOLDEN
CHUNK = 16  # levels per chunk in the golden files
# fmt: off
LEVELS_3BIT = np.array([[0, 1, -1, 3, -3, 2, 0, 0, 1, -2, 0, 0],
                        [0, 0, 0, -1, 1, 0, 0, 2, -2, 0, 3, -3]], np.int8)
# fmt: on
LEVELS_5BIT = np.array([0, 15, -15, 7, -8, 1, 0, 0, -1], np.int8)


# fmt: off
LEVELS_8BIT = np.array([[0, -1, 127, -127, -1, 1, 0, 0, 64, -64, -1, 2, -2, 0, 0, 3,  # chunk 1: the ans span is 255
                         -1, -1, -1, -1],
                        [0, 0, 0, 0, 5, -5, 100, -100, 1, -1, 0, 0,  # chunk 2 ends here
                         -1, -1, 0, 0, 0, 0, 0, -1]], np.int8)  # chunk 3: 8 levels
# fmt: on
LEVELS_TERNARY = np.array([-1, 0, 1, 1, 0, -1, 1], np.int8)  # 7 levels, 5 per byte: the second byte is padded
LEVELS_PRUNED = np.zeros((4, 5), np.int8)  # 20 levels in chunks of 16 and 4, none of them non-zero
LEVELS_EMPTY = np.zeros((0, 4), np.int8)  # no levels: one empty chunk


def tensors() -> list[SidecarTensor]:
    return [
        SidecarTensor("a.weight", LEVELS_3BIT, 3, np.array([0.5, 0.25], np.float32), 0, 21),
        SidecarTensor("b.weight", LEVELS_5BIT, 5, np.array([0.125], np.float32), None, 4),
    ]


def edge_tensors() -> list[SidecarTensor]:
    return [
        SidecarTensor("c.weight", LEVELS_8BIT, 8, np.array([0.5, 0.25], np.float32), 0, 1, 128),
        SidecarTensor("d.weight", LEVELS_TERNARY, 2, np.array([0.75], np.float32), None, 63),
        SidecarTensor("e.weight", LEVELS_PRUNED, 4, np.array([0.125], np.float32), None, 9),
        SidecarTensor("f.weight", LEVELS_EMPTY, 3, np.array([1.0], np.float32), None, 21),
    ]


SETS: dict[str, Callable[[], list[SidecarTensor]]] = {"": tensors, EDGE: edge_tensors}  # folder under GOLDEN


def written(codec: str, folder: str = "") -> bytes:
    return encode_sidecar(SETS[folder](), {"golden": 1}, codecs=(codec,), chunk_levels=CHUNK)


def regenerate(root: Path = GOLDEN, force: bool = False) -> list[Path]:
    """Write the golden files under ``root`` that are missing (a newly registered codec's), or with ``force`` all
    of them; returns the paths written. A file that exists is the format's record, never rewritten unasked."""
    out = []
    for folder in SETS:
        for codec in sorted(CODECS):
            path = root / folder / f"{codec}.qsc"
            if force or not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(written(codec, folder))
                out.append(path)
    return out


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


# -- the edge cases (golden/edge/): what docs/sidecar.md says where a reader had to guess (issue 31, item 5) --------

EDGE_LEVELS = {"c.weight": LEVELS_8BIT, "d.weight": LEVELS_TERNARY, "e.weight": LEVELS_PRUNED, "f.weight": LEVELS_EMPTY}
EMPTY_CHUNK = {  # docs/sidecar.md, "Zero levels": the bytes of a chunk with no levels, per codec
    "raw": b"",
    "packed-zstd": b"",
    "sparse-zstd": bytes.fromhex("00000000"),
    "packed": bytes.fromhex("0300"),
    "huffman": bytes.fromhex("0300"),
    "sparse": bytes.fromhex("0200000003000300"),
    "deflate": bytes.fromhex("78da030000000001"),
    "ans": b"",
}


def edge(codec: str):
    return parse_sidecar((GOLDEN / EDGE / f"{codec}.qsc").read_bytes())


def spans(index, name: str) -> list[tuple[np.ndarray, bytes]]:
    """Each chunk of tensor ``name`` of an edge file: (its levels, its coded bytes)."""
    record, flat = index.record(name), EDGE_LEVELS[name].reshape(-1)
    bodies = chunk_bodies(index, record)
    return [(flat[first : first + count], body) for (first, count, _, _), body in zip(record.chunk_spans(), bodies)]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_writer_still_writes_the_edge_golden_bytes(codec: str) -> None:
    assert written(codec, EDGE) == (GOLDEN / EDGE / f"{codec}.qsc").read_bytes()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_edge_golden_file_reads_chunk_by_chunk(codec: str) -> None:
    """Three chunks with a shorter last one, one padded chunk, two fully pruned ones, one empty one: each decodes on
    its own, and the whole tensors as their containers (the 8-bit one in uint8, ``q + 128``)."""
    index = edge(codec)
    counts = {r.name: [count for _, count, _, _ in r.chunk_spans()] for r in index.records}
    assert counts == {"c.weight": [16, 16, 8], "d.weight": [7], "e.weight": [16, 4], "f.weight": [0]}
    assert (index.records[0].dtype, index.records[0].zero_point) == ("uint8", 128)
    for record, decoded in zip(index.records, index.decode_all(workers=2)):
        levels = EDGE_LEVELS[record.name]
        np.testing.assert_array_equal(decoded, to_container(levels, record.multiplier, record.zero_point))
        for chunk, body in spans(index, record.name):
            np.testing.assert_array_equal(CODECS[codec].decode(body, chunk.size, record.bits), chunk)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_zero_levels_are_coded_as_the_spec_says(codec: str) -> None:
    """n = 0: an empty DEFLATE or zlib stream, never zero bytes; no bytes for zstd, ``raw`` and ``ans``. M = 0 (a
    fully pruned chunk): ``sparse`` ends in an empty DEFLATE stream, ``sparse-zstd`` right after its bitmap frame."""
    index = edge(codec)
    ((_, empty),) = spans(index, "f.weight")
    assert empty == EMPTY_CHUNK[codec]
    other = bytes.fromhex("28b52ffd2000010000") if codec.endswith("zstd") else b""  # the other guess: refused
    if empty != other:
        with pytest.raises(CodecError):
            CODECS[codec].decode(other, 0, 3)
    if codec.startswith("sparse"):
        for _, body in spans(index, "e.weight"):
            (mask_length,) = struct.unpack_from("<I", body)
            assert body[4 + mask_length :] == (b"" if codec == "sparse-zstd" else bytes.fromhex("0300"))


def test_8_bit_packed_bytes_are_the_levels_and_0xff_is_level_minus_1() -> None:
    """From 5 bits each packed byte is the int8 level itself: at 8 bits byte 0xFF is the valid level −1 (a reader
    that refused bytes ≥ K^k = 255 there would refuse every 8-bit file)."""
    index = edge("packed")
    inflated = b"".join(zlib.decompress(body, -15) for _, body in spans(index, "c.weight"))
    assert inflated == LEVELS_8BIT.tobytes() and 0xFF in inflated
    np.testing.assert_array_equal(index.decode(index.record("c.weight")).view(np.int8) ^ np.int8(-128), LEVELS_8BIT)


def test_ternary_packing_pads_the_last_byte_with_level_0() -> None:
    index = edge("packed")
    ((_, body),) = spans(index, "d.weight")
    digits = np.append(LEVELS_TERNARY.astype(int) + 1, [1, 1, 1])  # K = 3, 5 digits a byte, padding digit 1
    expected = [int(sum(d * 3**j for j, d in enumerate(digits[i : i + 5]))) for i in (0, 5)]
    assert list(zlib.decompress(body, -15)) == expected


@pytest.mark.parametrize("folder", ["", EDGE])
def test_the_ans_span_is_largest_minus_smallest_plus_1(folder: str) -> None:
    """The table's ``S`` (u8) is (largest level present) − lo + 1, per chunk: 255 for a chunk holding ±127."""
    index = parse_sidecar((GOLDEN / folder / "ans.qsc").read_bytes())
    levels = dict(zip(("a.weight", "b.weight"), (LEVELS_3BIT, LEVELS_5BIT))) | EDGE_LEVELS
    spans_seen = []
    for record in index.records:
        flat = levels[record.name].reshape(-1)
        for (first, count, _, _), body in zip(record.chunk_spans(), chunk_bodies(index, record)):
            chunk = flat[first : first + count]
            if not count:
                assert body == b""
                continue
            n, pos = _leb128(body, 0)
            lo, span = struct.unpack_from("<bB", body, pos)
            assert (n, lo, span) == (count, chunk.min(), int(chunk.max()) - int(chunk.min()) + 1)
            spans_seen.append(span)
            np.testing.assert_array_equal(spec_ans_decode(body), chunk)
    assert (255 in spans_seen) == (folder == EDGE)


@pytest.mark.parametrize("folder", ["", EDGE])
def test_sparse_zstd_keeps_the_u32_bitmap_length(folder: str) -> None:
    """``sparse-zstd``: the u32 length A of the bitmap frame, the frame (declaring ⌈n/8⌉ bytes; none for n = 0),
    then the non-zero levels as ``packed-zstd`` (no bytes for M = 0)."""
    import zstandard

    from runtime.codecs import pack

    index = parse_sidecar((GOLDEN / folder / "sparse-zstd.qsc").read_bytes())
    levels = dict(zip(("a.weight", "b.weight"), (LEVELS_3BIT, LEVELS_5BIT))) | EDGE_LEVELS
    for record in index.records:
        flat = levels[record.name].reshape(-1)
        for (first, count, _, _), body in zip(record.chunk_spans(), chunk_bodies(index, record)):
            chunk = flat[first : first + count]
            (mask_length,) = struct.unpack_from("<I", body)
            frame, rest = body[4 : 4 + mask_length], body[4 + mask_length :]
            if count:
                assert zstandard.get_frame_parameters(frame).content_size == -(-count // 8)
                mask = zstandard.ZstdDecompressor().decompress(frame)
                assert mask == np.packbits(chunk != 0, bitorder="little").tobytes()
            else:
                assert frame == b""
            nonzero = chunk[chunk != 0]
            packed = zstandard.ZstdDecompressor().decompress(rest) if nonzero.size else rest
            assert packed == pack(nonzero, record.bits).tobytes()


def test_regenerating_writes_only_the_missing_files_unless_forced(tmp_path: Path) -> None:
    everything = regenerate(tmp_path)
    assert len(everything) == len(SETS) * len(CODECS)
    assert all(path.read_bytes() == (GOLDEN / path.relative_to(tmp_path)).read_bytes() for path in everything)
    kept = tmp_path / "raw.qsc"
    kept.write_bytes(b"a golden file someone means to keep")
    (tmp_path / EDGE / "ans.qsc").unlink()
    assert regenerate(tmp_path) == [tmp_path / EDGE / "ans.qsc"]  # the missing one only
    assert kept.read_bytes() == b"a golden file someone means to keep"
    assert sorted(regenerate(tmp_path, force=True)) == sorted(everything)
    assert kept.read_bytes() == (GOLDEN / "raw.qsc").read_bytes()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the missing golden sidecars (all of them with --force).")
    parser.add_argument("--force", action="store_true", help="rewrite existing files too (a new format version)")
    for path in regenerate(force=parser.parse_args().force):
        print(path.relative_to(GOLDEN), path.stat().st_size, "bytes")

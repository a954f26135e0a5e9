"""Codecs: lossless round trips over sizes, bit-widths and sparsities; bounded, checked decoding; the choice rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import ans
from runtime.codecs import CODECS, CodecError, choose_codec, pack, pack_factor, split_levels, unpack


@st.composite
def level_arrays(draw) -> tuple[np.ndarray, int]:
    """int8 levels of a random size (0 and 1 included), bit-width, spread and sparsity, from a seeded generator."""
    bits = draw(st.integers(2, 8))
    size = draw(st.sampled_from([0, 1, 2, 5, 7, 64, 1000, 4099, 70_001]))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.7, 0.95, 1.0]))
    spread = draw(st.sampled_from([0.3, 1.0, 3.0]))  # narrow (few levels used) to uniform-ish
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    lim = 2 ** (bits - 1) - 1
    levels = np.clip(np.rint(rng.standard_normal(size) * spread * lim / 2), -lim, lim).astype(np.int8)
    levels[rng.random(size) < sparsity] = 0
    return levels, bits


@settings(max_examples=80, deadline=None)
@given(level_arrays(), st.sampled_from(sorted(CODECS)))
def test_every_codec_round_trips(case: tuple[np.ndarray, int], codec: str) -> None:
    levels, bits = case
    data = CODECS[codec].encode(levels, bits)
    decoded = CODECS[codec].decode(data, levels.size, bits)
    assert decoded.dtype == np.int8
    np.testing.assert_array_equal(decoded, levels)


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_empty_and_single_symbol_tensors(codec: str, bits: int) -> None:
    lim = 2 ** (bits - 1) - 1
    for levels in (np.zeros(0, np.int8), np.full(5000, -lim, np.int8), np.zeros(1, np.int8)):
        data = CODECS[codec].encode(levels, bits)
        np.testing.assert_array_equal(CODECS[codec].decode(data, levels.size, bits), levels)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_decoding_is_bounded_by_the_declared_count(codec: str) -> None:
    levels = np.resize(np.array([0, 1, -1, 0, 1], np.int8), 1000)  # ends on a non-zero level: packing pads with 0
    data = CODECS[codec].encode(levels, 2)
    for count in (999, 1001, 0):
        with pytest.raises(CodecError):
            CODECS[codec].decode(data, count, 2)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_levels_outside_the_bit_width_are_refused(codec: str) -> None:
    with pytest.raises(ValueError):
        CODECS[codec].encode(np.array([0, 2, -1], np.int8), 2)  # 2 is not a ternary level
    data = CODECS[codec].encode(np.array([0, 5, -7, 3], np.int8), 4)
    with pytest.raises(CodecError):
        CODECS[codec].decode(data, 4, 2)  # the same stream read as ternary decodes out-of-range levels


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_garbage_never_crashes(codec: str) -> None:
    rng = np.random.default_rng(1)
    for n in (1, 3, 17, 200):
        for _ in range(20):
            junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            try:
                out = CODECS[codec].decode(junk, 100, 3)
            except CodecError:
                continue
            assert out.size == 100 and np.abs(out).max() <= 3


@pytest.mark.parametrize("bits,k", [(2, 5), (3, 2), (4, 2), (5, 1), (8, 1)])
def test_packing_factor_and_round_trip(bits: int, k: int) -> None:
    assert pack_factor(bits) == k
    lim = 2 ** (bits - 1) - 1
    levels = np.arange(-lim, lim + 1, dtype=np.int8).repeat(3)
    packed = pack(levels, bits)
    assert packed.size == -(-levels.size // k)
    np.testing.assert_array_equal(unpack(packed, levels.size, bits), levels)
    if k > 1:  # 3^5 = 243 codes for ternary: bytes 243..255 are not codes
        with pytest.raises(CodecError):
            unpack(np.array([255], np.uint8), k, bits)


def test_ans_stream_is_stable_across_library_releases() -> None:
    """A stream written by constriction 0.5; a release that changed the bit stream would break old sidecars."""
    levels = np.array([0, 0, 1, -1, 0, 3, -3, 0, 0, 0, 2, 0, -1, 0, 0, 1] * 4, np.int8)
    stored = bytes.fromhex("40fd077d040824080404f284b7c795b552ea0003e847944f4b3a739c0500")
    np.testing.assert_array_equal(ans.decode(stored, levels.size, 3), levels)
    assert ans.encode(levels, 3) == stored


def test_ans_is_within_a_percent_of_the_entropy() -> None:
    rng = np.random.default_rng(0)
    levels = rng.choice(np.array([-1, 0, 1], np.int8), size=200_000, p=[0.15, 0.7, 0.15])
    p = np.array([0.15, 0.7, 0.15])
    entropy_bytes = levels.size * float(-(p * np.log2(p)).sum()) / 8
    assert len(ans.encode(levels, 2)) <= 1.01 * entropy_bytes
    assert len(CODECS["huffman"].encode(levels, 2)) >= 1.1 * entropy_bytes  # one bit per level at best


def test_choose_codec_prefers_cheap_decoding_within_the_tolerance() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(-127, 128, 4096).astype(np.int8)
    assert choose_codec(noise, 8)[0] == "raw"  # uniform 8-bit levels do not compress
    ternary = rng.choice(np.array([-1, 0, 1], np.int8), size=50_000, p=[0.15, 0.7, 0.15])
    sizes = {name: len(codec.encode(ternary, 2)) for name, codec in CODECS.items()}
    name, (data,) = choose_codec(ternary, 2)
    assert len(data) <= 1.01 * min(sizes.values())
    assert list(CODECS).index(name) <= min(list(CODECS).index(n) for n, s in sizes.items() if s == len(data))
    assert choose_codec(ternary, 2, tolerance=0.0)[1] == [min((c.encode(ternary, 2) for c in CODECS.values()), key=len)]
    assert choose_codec(ternary, 2, names=("raw", "huffman"))[0] == "huffman"
    with pytest.raises(CodecError, match="unknown codec"):
        choose_codec(ternary, 2, names=("zip",))


def test_chunks_decode_on_their_own_and_choose_one_codec_for_the_tensor() -> None:
    rng = np.random.default_rng(2)
    levels = np.clip(np.rint(rng.laplace(0, 2, 10_001)), -7, 7).astype(np.int8)
    name, pieces = choose_codec(levels, 4, chunk_levels=4096)
    assert [len(p) for p in split_levels(levels, 4096)] == [4096, 4096, 1809] and len(pieces) == 3
    decoded = [CODECS[name].decode(piece, n, 4) for piece, n in zip(pieces, (4096, 4096, 1809))]
    np.testing.assert_array_equal(np.concatenate(decoded), levels)
    assert [len(p) for p in split_levels(np.zeros(0, np.int8), 4096)] == [0]  # an empty tensor is one empty chunk


def test_the_sparse_codec_reaches_the_entropy_of_pruned_8_bit_levels_where_huffman_cannot() -> None:
    """H(q) = H(q ≠ 0) + P(q ≠ 0)·H(q | q ≠ 0): a bitmap plus the non-zero levels is near-entropy at 70 % zeros."""
    rng = np.random.default_rng(3)
    levels = np.clip(np.rint(rng.laplace(0, 20, 200_000)), -127, 127).astype(np.int8)
    levels[rng.random(levels.size) < 0.7] = 0
    counts = np.bincount(levels.astype(np.int64) + 127)
    p = counts[counts > 0] / levels.size
    entropy_bytes = levels.size * float(-(p * np.log2(p)).sum()) / 8
    assert len(CODECS["sparse"].encode(levels, 8)) <= 1.01 * entropy_bytes
    assert len(CODECS["sparse-zstd"].encode(levels, 8)) <= 1.02 * entropy_bytes  # zstd: Huffman codes ≤ 11 bits
    assert len(CODECS["huffman"].encode(levels, 8)) >= 1.03 * entropy_bytes
    assert len(CODECS["packed-zstd"].encode(levels, 8)) >= 1.03 * entropy_bytes
    assert choose_codec(levels, 8)[0].startswith("sparse")  # within the tolerance of rANS, and cheaper to decode


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:3],  # no room for the bitmap length
        lambda d: b"\xff\xff\x00\x00" + d[4:],  # a bitmap stream longer than the data
        lambda d: d[:-2],  # the non-zero levels cut short
    ],
)
@pytest.mark.parametrize("codec", ["sparse", "sparse-zstd"])
def test_a_damaged_sparse_stream_is_refused(damage, codec: str) -> None:
    levels = np.array([0, 3, 0, 0, -2, 1, 0, 0, 0, 7], np.int8)
    data = CODECS[codec].encode(levels, 4)
    with pytest.raises(CodecError):
        CODECS[codec].decode(damage(data), levels.size, 4)


@pytest.mark.parametrize("codec", ["sparse", "sparse-zstd"])
def test_the_sparse_codecs_refuse_a_zero_among_the_non_zero_levels_and_marks_past_the_end(codec: str) -> None:
    import struct
    import zlib

    from runtime import zstd_stage

    def forge(mask_bits: list[int], values: list[int]) -> bytes:
        bitmap = np.packbits(np.array(mask_bits, bool), bitorder="little").tobytes()
        mask = zstd_stage.encode(bitmap) if codec == "sparse-zstd" else zlib.compress(bitmap, 9, -15)
        inner = "packed-zstd" if codec == "sparse-zstd" else "packed"
        return struct.pack("<I", len(mask)) + mask + CODECS[inner].encode(np.array(values, np.int8), 4)

    assert CODECS[codec].decode(forge([0, 1, 1], [2, -1]), 3, 4).tolist() == [0, 2, -1]  # the forge is right
    with pytest.raises(CodecError, match="is 0"):
        CODECS[codec].decode(forge([0, 1, 1], [2, 0]), 3, 4)
    with pytest.raises(CodecError, match="past the end"):
        CODECS[codec].decode(forge([0, 1, 1, 1], [2, 1, 1]), 3, 4)


def test_a_zstd_frame_must_declare_exactly_the_expected_bytes_and_end_the_data() -> None:
    """The frame header's content size bounds the output buffer; extra data, a short frame or an empty frame in place
    of no bytes (zstd returns nothing for it without reading on) are refused."""
    from runtime import zstd_stage

    frame = zstd_stage.encode(b"abc" * 100)
    assert zstd_stage.decode(memoryview(frame), 300, "t") == b"abc" * 100
    empty_frame = bytes.fromhex("28b52ffd2000010000")  # a valid frame declaring 0 bytes
    for data, size in (
        (frame + b"junk", 300),
        (frame[:-1], 300),
        (frame, 299),
        (frame, 301),
        (empty_frame, 0),
        (b"", 1),
    ):
        with pytest.raises(CodecError):
            zstd_stage.decode(data, size, "t")
    assert zstd_stage.encode(b"") == b"" and zstd_stage.decode(b"", 0, "t") == b""


# -- decode costs and the spec's codec lists (issue 31, item 6) ------------------------------------------------------

TODAYS_ORDER = ["raw", "packed-zstd", "sparse-zstd", "packed", "huffman", "sparse", "deflate", "ans"]


def test_each_codec_states_its_decode_cost_and_the_registry_is_in_cost_order() -> None:
    """The order exports chose by before costs were explicit: the cost table reproduces it, and CODECS follows it."""
    from runtime.codecs import DECODE_COSTS

    costs = {name: codec.decode_cost for name, codec in CODECS.items()}
    assert costs == DECODE_COSTS and len(set(costs.values())) == len(costs)
    assert list(CODECS) == sorted(CODECS, key=costs.__getitem__) == TODAYS_ORDER


def test_the_choice_follows_the_cost_not_the_order_of_registration() -> None:
    """A codec registered last but cheaper to decode wins a size tie; one that shares a cost is refused."""
    from runtime.codecs import Codec, register_codec

    twin = CODECS["packed"]
    late = register_codec(Codec("late-packed", twin.encode, twin.decode, CODECS["packed-zstd"].decode_cost - 0.5))
    try:
        assert list(CODECS)[:3] == ["raw", "late-packed", "packed-zstd"]
        ternary = np.resize(np.array([0, 0, 1, 0, -1, 0, 0], np.int8), 5000)
        assert choose_codec(ternary, 2, names=("packed", "late-packed"), tolerance=0.0)[0] == "late-packed"
        with pytest.raises(ValueError, match="decode cost"):
            register_codec(Codec("same-cost", twin.encode, twin.decode, late.decode_cost))
    finally:
        del CODECS["late-packed"]
    assert list(CODECS) == TODAYS_ORDER


def _spec() -> str:
    from pathlib import Path

    return (Path(__file__).parents[2] / "docs" / "sidecar.md").read_text()


def test_the_spec_lists_the_codecs_of_the_registry() -> None:
    """docs/sidecar.md names the codecs three times: the record's ``codec`` field (in cost order), one description
    each under "Codecs", and the decode-cost table. A codec added to the registry must appear in all three."""
    import re

    spec = _spec()
    (field,) = [line for line in spec.splitlines() if line.startswith("| `codec`")]
    assert re.findall(r"`([a-z0-9-]+)`", field)[1:] == list(CODECS)  # after the field's own name
    section = spec.split("### Codecs", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^- `([a-z0-9-]+)`:", section, re.M)) == sorted(CODECS)
    table = dict(re.findall(r"^\| `([a-z0-9-]+)` +\| +([0-9.]+) +\|$", spec, re.M))
    assert list(table) == list(CODECS)
    assert {name: float(cost) for name, cost in table.items()} == {n: c.decode_cost for n, c in CODECS.items()}

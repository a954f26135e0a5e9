"""The sidecar format: round trip, determinism, and every kind of bad file refused with SidecarError."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest

from runtime.levels import from_container
from runtime.sidecar import MAGIC, SidecarError, SidecarTensor, encode_sidecar, parse_sidecar
from tests.runtime.helpers import edit_header


def _tensors() -> list[SidecarTensor]:
    rng = np.random.default_rng(1)
    return [
        SidecarTensor("conv.weight", rng.integers(-1, 2, (8, 4, 3, 3)).astype(np.int8), 2, np.full(8, 0.1), 0, 63),
        SidecarTensor("fc.weight", rng.integers(-127, 128, (10, 8)).astype(np.int8), 8, np.array([0.02]), None),
        SidecarTensor("head.weight", rng.integers(-127, 128, (4, 8)).astype(np.int8), 8, np.full(4, 0.1), 0, 1, 128),
    ]


def test_sidecar_round_trip_and_determinism() -> None:
    data = encode_sidecar(_tensors(), {"k": 2})
    assert data == encode_sidecar(_tensors(), {"k": 2})
    index = parse_sidecar(data)
    assert index.config == {"k": 2} and [r.name for r in index.records] == [
        "conv.weight",
        "fc.weight",
        "head.weight",
    ]
    for t, r, decoded in zip(_tensors(), index.records, index.decode_all(2)):
        np.testing.assert_array_equal(index.decode(r), decoded)
        if t.zero_point:  # a uint8 container: q + 128
            assert decoded.dtype == np.uint8 and r.dtype == "uint8" and r.zero_point == 128
            np.testing.assert_array_equal(decoded.astype(int), t.levels.astype(int) + 128)
        else:
            assert decoded.dtype == np.int8 and r.dtype == "int8" and r.zero_point == 0
            np.testing.assert_array_equal(decoded, t.levels * np.int8(t.multiplier))
        np.testing.assert_array_equal(from_container(decoded, r.multiplier, r.zero_point), t.levels)
        assert r.bits == t.bits and r.axis == t.axis and len(r.steps) == t.steps.size


def _b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode()


def _set(record: int, key: str, value):
    return lambda h: h["tensors"][record].__setitem__(key, value)


BAD = {
    "empty file": lambda d: b"",
    "truncated preamble": lambda d: d[:10],
    "wrong magic": lambda d: b"NOTASIDE" + d[8:],
    "unknown version": lambda d: d[:8] + struct.pack("<H", 99) + d[10:],
    "truncated payload": lambda d: d[:-1],
    "padded payload": lambda d: d + b"\0",
    "header length beyond file": lambda d: d[:12] + struct.pack("<I", 10**9) + d[16:],
    "flipped header byte": lambda d: d[:30] + bytes([d[30] ^ 0x40]) + d[31:],
    "unknown codec": lambda d: edit_header(d, _set(0, "codec", "lzma9")),
    "unknown sparsity": lambda d: edit_header(d, _set(0, "sparsity", "csr")),
    "bits out of range": lambda d: edit_header(d, _set(0, "bits", 9)),
    "multiplier overflow": lambda d: edit_header(d, _set(1, "multiplier", 2)),
    "uint8 container with zero-point 0": lambda d: edit_header(d, _set(0, "dtype", "uint8")),
    "int8 container with zero-point 128": lambda d: edit_header(d, _set(2, "dtype", "int8")),
    "weight zero-point neither 0 nor 128": lambda d: edit_header(d, _set(2, "zero_point", 127)),
    "declared size mismatch": lambda d: edit_header(d, _set(0, "decoded_bytes", 1)),
    "huge shape": lambda d: edit_header(d, _set(0, "shape", [2**30, 2**30])),
    "negative dimension": lambda d: edit_header(d, _set(0, "shape", [-8, 4, 3, 3])),
    "steps count": lambda d: edit_header(d, _set(0, "steps", _b64([0.1]))),
    "non-positive step": lambda d: edit_header(d, _set(1, "steps", _b64([0.0]))),
    "non-finite step": lambda d: edit_header(d, _set(1, "steps", _b64([float("nan")]))),
    "steps not base64": lambda d: edit_header(d, _set(1, "steps", "!!")),
    "missing field": lambda d: edit_header(d, lambda h: h["tensors"][0].pop("chunks")),
    "a version-1 field in version 2": lambda d: edit_header(d, lambda h: h["tensors"][0].pop("chunk_levels")),
    "no chunk levels": lambda d: edit_header(d, _set(0, "chunk_levels", 0)),
    "too few chunks": lambda d: edit_header(d, _set(0, "chunk_levels", 1)),
    "chunk lengths disagree": lambda d: edit_header(d, lambda h: h["tensors"][0]["chunks"][0].__setitem__(0, 1)),
    "chunk not a pair": lambda d: edit_header(d, lambda h: h["tensors"][0]["chunks"][0].append(0)),
    "chunk CRC out of range": lambda d: edit_header(d, lambda h: h["tensors"][0]["chunks"][0].__setitem__(1, -1)),
    "wrong field type": lambda d: edit_header(d, _set(0, "bits", "2")),
    "non-contiguous offsets": lambda d: edit_header(d, _set(1, "offset", 0)),
    "duplicate name": lambda d: edit_header(d, _set(1, "name", "conv.weight")),
    "header not an object": lambda d: edit_header(d, lambda h: h.clear()),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sidecars_are_refused_before_decoding(case: str) -> None:
    data = BAD[case](encode_sidecar(_tensors(), {}))
    with pytest.raises(SidecarError):
        index = parse_sidecar(data)
        for r in index.records:
            index.decode(r)


def test_a_flipped_payload_byte_fails_the_crc() -> None:
    data = bytearray(encode_sidecar(_tensors(), {}))
    data[-3] ^= 0x01
    index = parse_sidecar(bytes(data))
    with pytest.raises(SidecarError, match="CRC"):
        index.decode(index.records[-1])


def test_magic_is_eight_bytes() -> None:
    assert len(MAGIC) == 8


def _large(n: int = 40_000) -> list[SidecarTensor]:
    rng = np.random.default_rng(4)
    levels = np.clip(np.rint(rng.laplace(0, 2, n)), -7, 7).astype(np.int8)
    return [SidecarTensor("fc.weight", levels.reshape(40, -1), 4, np.full(40, 0.1), 0, 9)]


def test_the_threads_of_a_load_share_one_large_tensor(monkeypatch) -> None:
    """Item 10 of the trustworthy-artefacts issue: one large tensor is coded in independent chunks, and the decoding
    threads split it (a load used to decode each tensor on one thread, so the classifier alone set the time)."""
    import threading

    from runtime.sidecar import SidecarIndex

    index = parse_sidecar(encode_sidecar(_large(), {}, chunk_levels=10_000))
    (record,) = index.records
    assert [(first, count) for first, count, _, _ in record.chunk_spans()] == [(i * 10_000, 10_000) for i in range(4)]
    seen: dict[int, int] = {}
    decode_chunk = SidecarIndex._decode_chunk

    def spy(self, rec, chunk, out):
        seen[chunk] = threading.get_ident()
        decode_chunk(self, rec, chunk, out)

    monkeypatch.setattr(SidecarIndex, "_decode_chunk", spy)
    (weight,) = index.decode_all(workers=2)
    np.testing.assert_array_equal(weight, _large()[0].levels * np.int8(9))
    assert sorted(seen) == [0, 1, 2, 3] and len(set(seen.values())) == 2


def test_a_damaged_chunk_is_named_and_stops_the_whole_load() -> None:
    data = bytearray(encode_sidecar(_large(), {}, chunk_levels=10_000))
    data[-5] ^= 0x10  # inside the last chunk
    index = parse_sidecar(bytes(data))
    with pytest.raises(SidecarError, match="chunk 3 of 4"):
        index.decode_all(workers=2)


# -- issue 31: the header's bit settings, and records that mix the format versions ----------------------------------


def test_the_header_states_no_weight_bit_settings_and_older_ones_are_ignored() -> None:
    """The training configuration's ``wbits`` (4: the inner layers) was wrong for the 8-bit first and last layers,
    and nothing checked it: the writer leaves every weight bit setting out, the records' ``bits`` are the truth, and a
    reader ignores the settings an older file carries."""
    import json

    bit_settings = {"wbits": 4, "first_wbits": 8, "last_wbits": 8, "depthwise_wbits": 0, "layer_wbits": {"fc": 8}}
    config = {"k": 1, **bit_settings, "checkpoint_config": {"abits": 8, **bit_settings}}
    data = encode_sidecar(_tensors(), config)
    (length,) = struct.unpack_from("<I", data, 12)
    assert json.loads(data[20 : 20 + length])["config"] == {"k": 1, "checkpoint_config": {"abits": 8}}
    assert [r.bits for r in parse_sidecar(data).records] == [2, 8, 8]
    older = edit_header(data, lambda h: h["config"].update(config))  # as files written before the rule hold it
    index = parse_sidecar(older)
    assert index.config == {"k": 1, "checkpoint_config": {"abits": 8}}
    np.testing.assert_array_equal(index.decode(index.records[0]), _tensors()[0].levels * np.int8(63))


def test_records_that_mix_the_format_versions_are_refused() -> None:
    """A version-2 record with version 1's ``crc32``, or a version-1 record with version 2's ``chunk_levels`` or
    ``chunks``: which chunking would a reader believe? Neither: the file is refused."""
    from pathlib import Path

    v2 = encode_sidecar(_tensors(), {})
    with pytest.raises(SidecarError, match="'crc32' from another format version in a version 2 file"):
        parse_sidecar(edit_header(v2, _set(0, "crc32", 0)))
    v1 = (Path(__file__).parent / "golden" / "v1" / "raw.qsc").read_bytes()
    record = parse_sidecar(v1).records[0]
    for key, value in (("chunk_levels", record.count), ("chunks", [list(c) for c in record.chunks])):
        with pytest.raises(SidecarError, match=f"'{key}' from another format version in a version 1 file"):
            parse_sidecar(edit_header(v1, _set(0, key, value)))
    parse_sidecar(edit_header(v2, _set(0, "note", "fields no version defines are ignored")))

"""Golden sidecars: small files whose bytes are pinned, one per codec, so that neither the writer nor the reader
can drift from docs/sidecar.md unnoticed. Each holds the same 3-bit tensor (2 channels on axis 0, steps 0.5 and
0.25) and a 5-bit one (one step), coded with one codec.

To regenerate after a *deliberate* format change (a new format version): `python tests/runtime/test_golden.py`.
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
    return encode_sidecar(tensors(), {"golden": 1}, codecs=(codec,))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_writer_still_writes_the_golden_bytes(codec: str) -> None:
    assert written(codec) == (GOLDEN / f"{codec}.qsc").read_bytes()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_golden_file_reads_as_the_spec_says(codec: str) -> None:
    data = (GOLDEN / f"{codec}.qsc").read_bytes()
    magic, version, reserved, length, crc = struct.unpack_from("<8sHHII", data)  # the preamble, by hand
    assert (magic, version, reserved) == (b"QDQSIDE\0", 1, 0) and zlib.crc32(data[20 : 20 + length]) == crc
    header = json.loads(data[20 : 20 + length])
    first = header["tensors"][0]
    assert np.frombuffer(base64.b64decode(first["steps"]), "<f4").tolist() == [0.5, 0.25]
    assert first["offset"] == 0 and len(data) == 20 + length + sum(t["length"] for t in header["tensors"])
    index = parse_sidecar(data)
    np.testing.assert_array_equal(index.decode(index.records[0]), LEVELS_3BIT * 21)
    np.testing.assert_array_equal(index.decode(index.records[1]), LEVELS_5BIT * 4)


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
    body = bytes(index.payload[index.records[0].offset : index.records[0].offset + index.records[0].length])
    packed = zlib.decompress(body, -15)
    flat = LEVELS_3BIT.reshape(-1).astype(int) + 3
    assert list(packed) == [int(flat[i] + 7 * flat[i + 1]) for i in range(0, flat.size, 2)]
    second = index.records[1]
    body = bytes(index.payload[second.offset : second.offset + second.length])
    assert zlib.decompress(body, -15) == LEVELS_5BIT.tobytes()


if __name__ == "__main__":  # regenerate
    GOLDEN.mkdir(exist_ok=True)
    for name in sorted(CODECS):
        (GOLDEN / f"{name}.qsc").write_bytes(written(name))
        print(name, len(written(name)), "bytes")
    sys.exit(0)

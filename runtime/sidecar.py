"""The sidecar: integer weight levels of a QDQ graph, entropy-coded, in one versioned, checksummed file.

This module is the single definition of the format: the exporter writes sidecars with :func:`encode_sidecar` and
the runtime reads them with :func:`parse_sidecar`, so the two cannot drift. ``docs/sidecar.md`` is the
specification in prose. Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"QDQSIDE\\0"
    8       2     format version (u16: 2 is written, 1 and 2 are read)
    10      2     reserved, 0 (u16)
    12      4     header length H in bytes (u32)
    16      4     CRC-32 of the header bytes (u32)
    20      H     header: UTF-8 JSON object {"config": {...}, "tensors": [record, ...]}
    20+H    P     payload: the coded tensors back to back, in record order

A record describes one weight initializer of the graph::

    {"name", "dtype": "int8" | "uint8", "shape": [...], "bits": 2..8, "multiplier": 1..63, "axis": int | null,
     "steps": "<base64 float32>", "zero_point": 0 | 128, "sparsity": "none",
     "codec": <a name in runtime.codecs.CODECS>, "offset", "length", "decoded_bytes", "chunk_levels",
     "chunks": [[length, crc32], ...]}

The coded values are the integer levels ``q`` (``|q| ≤ 2^(bits−1) − 1``); the graph's initializer (its container,
:func:`runtime.levels.to_container`) holds ``q · multiplier`` as int8 with zero-point 0, or ``q · multiplier + 128``
as uint8 with zero-point 128 (8-bit weights, which onnxruntime's AVX2 u8×s8 kernels would saturate), with scale
``steps / multiplier`` (a finer int32 bias grid for sub-8-bit weights).

``offset``/``length`` locate the coded bytes inside the payload and ``decoded_bytes`` is the size of the decoded
levels (``prod(shape)``). The levels (flattened, C order) are coded in independent chunks of ``chunk_levels``
levels (the last one shorter), back to back, each with its length and CRC-32, so that the threads of a load share
out one large tensor as well as many small ones (:meth:`SidecarIndex.decode_all`). Format version 1 had one chunk
per tensor and its CRC-32 in a ``crc32`` field; it is still read, and a record carrying the other version's fields
is refused. The header's ``config`` states no weight bit-widths (:func:`header_config`): the records' ``bits`` do.
The file is exactly ``20 + H + Σ length`` bytes long. Parsing checks every field and bound before anything is
decoded, and decoding checks each chunk's CRC before the codec runs, so a truncated, flipped or foreign file is
refused with a :class:`SidecarError`, never a crash or a huge allocation.

Memory is bounded before anything is decoded (:func:`check_memory_bounds`): a chunk holds at most
:data:`MAX_CHUNK_LEVELS` levels (a version-1 record, one chunk, at most :data:`MAX_V1_LEVELS`), so a decoder's
intermediates stay small whatever the tensor; the records declare at most :data:`FREE_LEVELS` plus
:data:`MAX_EXPANSION` levels per coded payload byte; and at most ``max_levels`` levels in all, by default
:data:`DEFAULT_MAX_LEVELS` (256 MiB of int8 containers), raised for a genuinely larger model by ``max_levels`` or the
environment variable :data:`MAX_LEVELS_ENV`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import math
import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codecs import CODECS, SIZE_TOLERANCE, CodecError, choose_codec
from .errors import ToolchainError
from .levels import max_level, to_container

__all__ = [
    "CHUNK_LEVELS",
    "DEFAULT_MAX_LEVELS",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CHUNK_LEVELS",
    "MAX_LEVELS_ENV",
    "MAX_V1_LEVELS",
    "READ_VERSIONS",
    "SidecarError",
    "SidecarIndex",
    "SidecarTensor",
    "TensorRecord",
    "check_decoded_budget",
    "check_memory_bounds",
    "decoded_budget",
    "encode_sidecar",
    "header_config",
    "max_levels_limit",
    "parse_sidecar",
]

MAGIC = b"QDQSIDE\0"
FORMAT_VERSION = 2  # the version written
READ_VERSIONS = (1, 2)  # the versions read
CONTAINER_DTYPES = {0: "int8", 128: "uint8"}  # a weight container's type, by its zero-point
CHUNK_LEVELS = 1 << 18  # levels per independently coded chunk (a few hundred bytes of tables per MB of levels)
_PREAMBLE = struct.Struct("<8sHHII")  # magic, version, reserved, header length, header CRC-32
MAX_HEADER_BYTES = 64 << 20
MAX_TENSOR_ELEMENTS = 1 << 31
FREE_LEVELS = 64 << 20  # decoded levels any sidecar may declare (64 MiB of int8)
MAX_EXPANSION = 1024  # ... plus this many levels per byte of its coded payload (0.008 bit per level; not the header)
MAX_CHUNK_LEVELS = 1 << 20  # levels one chunk may hold: 4x the writer's CHUNK_LEVELS; ≤ 12 MiB of decoder scratch
MAX_V1_LEVELS = 1 << 24  # levels a version-1 record (one chunk per tensor) may hold: 13x the zoo's largest tensor
DEFAULT_MAX_LEVELS = 1 << 28  # levels all records together may hold unless raised: 256 MiB of int8 containers
MAX_LEVELS_ENV = "TOOLCHAIN_MAX_LEVELS"  # the environment variable that raises (or lowers) DEFAULT_MAX_LEVELS
SPARSITY_ENCODINGS = ("none",)  # "none": zeros are ordinary levels, left to the codec
# a training configuration's weight bit settings: they name the inner layers' bits, which the first and last layers,
# depthwise layers and an allocation override, so a header never carries them (each record's ``bits`` is the truth)
WEIGHT_BIT_SETTINGS = ("wbits", "first_wbits", "last_wbits", "depthwise_wbits", "layer_wbits")


class SidecarError(ToolchainError):
    """A sidecar that is truncated, corrupted, of an unknown version, or inconsistent with its graph."""


@dataclass(frozen=True)
class SidecarTensor:
    """One weight as the exporter builds it and hands it to :func:`encode_sidecar`: ``weight = levels · steps``
    along ``axis`` (``exporters.WeightTensor`` is this type).

    The graph stores the container ``levels · multiplier`` (+ ``zero_point``, as uint8, when that is 128) with scale
    ``steps / multiplier`` (see ``exporters.folding.container_multiplier`` and ``container_zero_point``).
    """

    name: str
    levels: np.ndarray  # int8
    bits: int
    steps: np.ndarray  # float32, one per slice along ``axis`` (or one for the tensor)
    axis: int | None
    multiplier: int = 1
    zero_point: int = 0  # of the container: 0 (int8) or 128 (uint8)


@dataclass(frozen=True, eq=False)
class TensorRecord:
    name: str
    dtype: str
    shape: tuple[int, ...]
    bits: int
    multiplier: int
    axis: int | None
    steps: np.ndarray  # float32, read-only
    zero_point: int
    sparsity: str
    codec: str
    offset: int
    length: int
    decoded_bytes: int
    chunk_levels: int
    chunks: tuple[tuple[int, int], ...]  # (coded length, CRC-32) of each chunk, in order

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def chunk_spans(self) -> list[tuple[int, int, int, int]]:
        """Per chunk: (first level, level count, payload offset, coded length); CRCs are in :attr:`chunks`."""
        return list(self._spans)

    @functools.cached_property
    def _spans(self) -> tuple[tuple[int, int, int, int], ...]:  # once per record: decoding reads it per chunk
        starts = itertools.accumulate((length for length, _ in self.chunks), initial=self.offset)
        return tuple(
            (i * self.chunk_levels, min(self.chunk_levels, self.count - i * self.chunk_levels), start, length)
            for i, (start, (length, _)) in enumerate(zip(starts, self.chunks))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "bits": self.bits,
            "multiplier": self.multiplier,
            "axis": self.axis,
            "steps": base64.b64encode(self.steps.astype("<f4").tobytes()).decode("ascii"),
            "zero_point": self.zero_point,
            "sparsity": self.sparsity,
            "codec": self.codec,
            "offset": self.offset,
            "length": self.length,
            "decoded_bytes": self.decoded_bytes,
            "chunk_levels": self.chunk_levels,
            "chunks": [list(c) for c in self.chunks],
        }


@dataclass(frozen=True)
class SidecarIndex:
    """A parsed, validated sidecar: its header and a view of its payload. Tensors decode on demand."""

    version: int
    config: dict[str, Any]
    records: tuple[TensorRecord, ...]
    payload: memoryview

    def record(self, name: str) -> TensorRecord:
        for r in self.records:
            if r.name == name:
                return r
        raise SidecarError(f"sidecar has no tensor {name!r}")

    def decode(self, record: TensorRecord) -> np.ndarray:
        """The graph initializer (the container of the levels, in its shape); each chunk's CRC is checked before
        it is decoded."""
        out = np.empty(record.count, record.dtype)
        for chunk in range(len(record.chunks)):
            self._decode_chunk(record, chunk, out)
        return out.reshape(record.shape)

    def decode_all(self, workers: int | None = None) -> list[np.ndarray]:
        """Every record's initializer (as :meth:`decode`), the chunks shared out among ``workers`` threads (default:
        the CPU count) by level count, largest first; zlib, CRC-32 and numpy release the GIL while they work."""
        outs = [np.empty(r.count, r.dtype) for r in self.records]
        tasks = sorted(
            (
                (min(r.chunk_levels, max(r.count, 1)), i, c)
                for i, r in enumerate(self.records)
                for c in range(len(r.chunks))
            ),
            reverse=True,
        )
        workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
        shares: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for size, i, c in tasks:  # longest processing time first: each chunk to the least loaded thread
            w = loads.index(min(loads))
            shares[w].append((i, c))
            loads[w] += size

        def run(share: list[tuple[int, int]]) -> None:
            for i, c in share:
                self._decode_chunk(self.records[i], c, outs[i])

        if workers == 1:
            run(shares[0])
        else:
            with ThreadPoolExecutor(max_workers=workers - 1) as pool:
                pending = [pool.submit(run, share) for share in shares[1:]]
                run(shares[0])
                for done in pending:
                    done.result()
        return [out.reshape(r.shape) for out, r in zip(outs, self.records)]

    def _decode_chunk(self, record: TensorRecord, chunk: int, out: np.ndarray) -> None:
        """Decode chunk ``chunk`` of ``record`` into its slice of the flat ``out``: its container."""
        first, count, start, length = record._spans[chunk]
        body = self.payload[start : start + length]  # codecs and zlib read memoryviews without a copy
        if zlib.crc32(body) != record.chunks[chunk][1]:
            where = f" (chunk {chunk} of {len(record.chunks)})" if len(record.chunks) > 1 else ""
            raise SidecarError(f"tensor {record.name!r}: CRC-32 mismatch{where} (the sidecar is corrupted)")
        try:
            flat = CODECS[record.codec].decode(body, count, record.bits)
        except CodecError as e:
            raise SidecarError(f"tensor {record.name!r}: {e}") from None
        # |q·m| ≤ 127 was checked at parse time
        to_container(flat, record.multiplier, record.zero_point, out=out[first : first + count])


def encode_sidecar(
    tensors: Sequence[SidecarTensor],
    config: dict[str, Any],
    codecs: tuple[str, ...] | None = None,
    tolerance: float = SIZE_TOLERANCE,
    chunk_levels: int = CHUNK_LEVELS,
) -> bytes:
    """Serialise ``tensors`` (in the given order) and the exporting ``config``; deterministic for equal inputs.

    Each tensor gets the codec :func:`runtime.codecs.choose_codec` picks among ``codecs`` (default: all) with
    ``tolerance``, over chunks of ``chunk_levels`` levels. The header carries ``config`` as :func:`header_config`
    gives it: without weight bit settings, which each record states as its ``bits``."""
    if not 1 <= chunk_levels <= MAX_CHUNK_LEVELS:
        raise ValueError(f"chunk_levels must be 1..{MAX_CHUNK_LEVELS} (what a reader accepts), got {chunk_levels}")
    records, bodies, offset = [], [], 0
    for t in tensors:
        if t.levels.dtype != np.int8:
            raise TypeError(f"{t.name}: levels must be int8")
        if t.zero_point not in CONTAINER_DTYPES:
            raise ValueError(f"{t.name}: a weight container has zero-point 0 (int8) or 128 (uint8), not {t.zero_point}")
        codec, pieces = choose_codec(t.levels, t.bits, codecs, tolerance, chunk_levels)
        length = sum(map(len, pieces))
        records.append(
            TensorRecord(
                t.name,
                CONTAINER_DTYPES[t.zero_point],
                tuple(int(d) for d in t.levels.shape),
                int(t.bits),
                int(t.multiplier),
                t.axis,
                np.asarray(t.steps, dtype=np.float32).reshape(-1),
                t.zero_point,
                "none",
                codec,
                offset,
                length,
                int(t.levels.size),
                chunk_levels,
                tuple((len(piece), zlib.crc32(piece)) for piece in pieces),
            ).to_json()
        )
        bodies.extend(pieces)
        offset += length
    header = {"config": header_config(config), "tensors": records}
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes), zlib.crc32(header_bytes))
    return preamble + header_bytes + b"".join(bodies)


def parse_sidecar(data: bytes | memoryview, max_levels: int | None = None) -> SidecarIndex:
    """Validate the preamble, header and every record's bounds; decode nothing yet. ``max_levels``: the most levels
    the records may declare in all (default: :func:`max_levels_limit`, the environment's or 2^28)."""
    view = memoryview(data)
    if len(view) < _PREAMBLE.size:
        raise SidecarError(f"not a sidecar: {len(view)} bytes is shorter than the {_PREAMBLE.size}-byte preamble")
    magic, version, reserved, header_len, header_crc = _PREAMBLE.unpack_from(view)
    if magic != MAGIC:
        raise SidecarError(f"not a sidecar: magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version not in READ_VERSIONS:
        known = " and ".join(map(str, READ_VERSIONS))
        raise SidecarError(f"unsupported sidecar format version {version} (this runtime reads {known})")
    if reserved != 0:  # room for a later version's flags: a reader must not guess their meaning
        raise SidecarError(f"reserved preamble field is {reserved}, must be 0 in format version {version}")
    if header_len > min(MAX_HEADER_BYTES, len(view) - _PREAMBLE.size):
        raise SidecarError(f"header length {header_len} exceeds the file ({len(view)} bytes): truncated?")
    header_bytes = bytes(view[_PREAMBLE.size : _PREAMBLE.size + header_len])
    if zlib.crc32(header_bytes) != header_crc:
        raise SidecarError("header CRC-32 mismatch (the sidecar is corrupted)")
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError) as e:  # RecursionError: arrays or objects nested thousands deep
        raise SidecarError(f"header is not valid JSON: {type(e).__name__}: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise SidecarError("header must be an object with a 'tensors' list")
    config = header.get("config", {})
    if not isinstance(config, dict):
        raise SidecarError("header 'config' must be an object")
    config = header_config(config)  # older files carry weight bit settings: ignored
    payload = view[_PREAMBLE.size + header_len :]
    records = tuple(_record(r, i, version) for i, r in enumerate(header["tensors"]))
    expected = 0
    names = set()
    for r in records:
        if r.name in names:
            raise SidecarError(f"tensor {r.name!r} appears twice")
        names.add(r.name)
        if r.offset != expected:
            raise SidecarError(f"tensor {r.name!r}: offset {r.offset}, expected {expected} (records are contiguous)")
        expected += r.length
    if expected != len(payload):
        raise SidecarError(f"payload is {len(payload)} bytes but the records need {expected}: truncated or padded file")
    check_memory_bounds(records, len(payload), max_levels)
    return SidecarIndex(version, config, records, payload)


def header_config(config: dict[str, Any]) -> dict[str, Any]:
    """The exporting ``config`` as a sidecar header holds it: the training configuration's weight bit settings
    (:data:`WEIGHT_BIT_SETTINGS`, at the top level or in ``checkpoint_config``) left out. They say what the inner
    layers were trained at (``wbits: 4`` while the first and last layers hold 8 bits), not what the file holds; the
    records' ``bits`` do. The writer drops them, and a reader drops them from older files that carry them."""
    kept = {k: v for k, v in config.items() if k not in WEIGHT_BIT_SETTINGS}
    nested = kept.get("checkpoint_config")
    if isinstance(nested, dict):
        kept["checkpoint_config"] = {k: v for k, v in nested.items() if k not in WEIGHT_BIT_SETTINGS}
    return kept


def max_levels_limit(max_levels: int | None = None) -> int:
    """The most weight levels a sidecar may declare in all: ``max_levels`` when given, else the environment variable
    ``TOOLCHAIN_MAX_LEVELS`` (a positive integer, ``_`` separators allowed) when set, else
    :data:`DEFAULT_MAX_LEVELS` (2^28 = 268 M weights, 256 MiB of int8 containers: ImageNet MobileNetV2 has 3.5 M,
    VGG-16 138 M). onnxruntime packs another copy of most weights for its kernels, so a model at the limit needs
    about twice that in memory."""
    if max_levels is None:
        raw = os.environ.get(MAX_LEVELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_LEVELS
        try:
            max_levels = int(raw)
        except ValueError:
            max_levels = 0
        if max_levels < 1:
            raise SidecarError(f"{MAX_LEVELS_ENV}={raw[:40]!r} must be a positive number of weight levels")
    if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 1:
        raise SidecarError(f"max_levels must be a positive number of weight levels, got {max_levels!r}")
    return max_levels


def check_memory_bounds(records: Sequence[TensorRecord], coded_bytes: int, max_levels: int | None = None) -> None:
    """Refuse, before anything is allocated, records that declare more levels than the file justifies
    (:func:`check_decoded_budget` over the ``coded_bytes`` of the payload) or than ``max_levels`` in all
    (:func:`max_levels_limit`). Each chunk's size was bounded by :func:`_chunks`."""
    levels = sum(r.count for r in records)
    check_decoded_budget(levels, coded_bytes)
    limit = max_levels_limit(max_levels)
    if levels > limit:
        raise SidecarError(
            f"the sidecar declares {levels:,} weight levels ({levels / 2**20:,.0f} MiB decoded), over the limit of "
            f"{limit:,}: refused before decoding; for a genuinely larger model raise it with {MAX_LEVELS_ENV}=N "
            "or runtime.load(..., max_levels=N)"
        )


def decoded_budget(coded_bytes: int) -> int:
    """The most int8 levels a sidecar with ``coded_bytes`` of payload may decode to: ``FREE_LEVELS`` plus
    ``MAX_EXPANSION`` levels per coded byte. Real exports code at ≥ 0.1 bit per level, far inside it; a few crafted
    bytes that declare a huge tensor (a one-level rANS table, say) are refused before anything is allocated. The
    header does not count: padding its ``config`` must not raise the budget."""
    return FREE_LEVELS + MAX_EXPANSION * coded_bytes


def check_decoded_budget(levels: int, coded_bytes: int) -> None:
    if levels > decoded_budget(coded_bytes):
        raise SidecarError(
            f"the sidecar declares {levels:,} weight levels but codes them in only {coded_bytes:,} bytes (at most "
            f"{decoded_budget(coded_bytes):,} levels for its size): refused before decoding"
        )


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "dtype": str,
    "shape": list,
    "bits": int,
    "multiplier": int,
    "axis": (int, type(None)),
    "steps": str,
    "zero_point": int,
    "sparsity": str,
    "codec": str,
    "offset": int,
    "length": int,
    "decoded_bytes": int,
}
_VERSION_FIELDS: dict[int, dict[str, type | tuple[type, ...]]] = {
    1: {"crc32": int},  # one chunk per tensor
    2: {"chunk_levels": int, "chunks": list},
}


def _record(raw: Any, index: int, version: int) -> TensorRecord:
    """One header record of a format-``version`` file, type- and range-checked."""
    where = f"tensor record {index}"
    if not isinstance(raw, dict):
        raise SidecarError(f"{where} is not an object")
    for key, kind in {**_FIELDS, **_VERSION_FIELDS[version]}.items():
        if key not in raw:
            raise SidecarError(f"{where} lacks {key!r}")
        value = raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SidecarError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    foreign = sorted(k for v, fields in _VERSION_FIELDS.items() if v != version for k in fields if k in raw)
    if foreign:  # a writer that mixed the versions up: which chunking would a reader believe?
        raise SidecarError(
            f"{where}: {', '.join(map(repr, foreign))} from another format version in a version {version} file"
        )
    where = f"tensor {raw['name']!r}"
    shape = raw["shape"]
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < MAX_TENSOR_ELEMENTS for d in shape):
        raise SidecarError(f"{where}: invalid shape {shape}")
    count = math.prod(shape)
    if count > MAX_TENSOR_ELEMENTS:
        raise SidecarError(f"{where}: {count} elements exceed the limit of {MAX_TENSOR_ELEMENTS}")
    if CONTAINER_DTYPES.get(raw["zero_point"]) != raw["dtype"] or raw["decoded_bytes"] != count:
        raise SidecarError(
            f"{where}: dtype {raw['dtype']} with zero-point {raw['zero_point']} and decoded size "
            f"{raw['decoded_bytes']} (expected int8 with 0 or uint8 with 128, and {count})"
        )
    if not 2 <= raw["bits"] <= 8:
        raise SidecarError(f"{where}: bit-width {raw['bits']} outside 2..8")
    if not raw["multiplier"] >= 1 or raw["multiplier"] * max_level(raw["bits"]) > 127:
        raise SidecarError(f"{where}: multiplier {raw['multiplier']} overflows int8 at {raw['bits']} bits")
    if raw["codec"] not in CODECS:
        raise SidecarError(f"{where}: unknown codec {raw['codec']!r} (known: {', '.join(CODECS)})")
    if raw["sparsity"] not in SPARSITY_ENCODINGS:
        raise SidecarError(f"{where}: unknown sparsity encoding {raw['sparsity']!r}")
    axis, steps = raw["axis"], raw["steps"]
    if axis is not None and not 0 <= axis < len(shape):
        raise SidecarError(f"{where}: axis {axis} out of range for shape {shape}")
    n_steps = 1 if axis is None else shape[axis]
    try:
        values = np.frombuffer(base64.b64decode(steps, validate=True), dtype="<f4").astype(np.float32)
    except (ValueError, binascii.Error):
        raise SidecarError(f"{where}: steps are not base64 float32") from None
    if values.size != n_steps or not np.all(np.isfinite(values) & (values > 0)):
        raise SidecarError(f"{where}: expected {n_steps} positive finite steps")
    values.flags.writeable = False
    if raw["offset"] < 0 or raw["length"] < 0:
        raise SidecarError(f"{where}: negative offset or length")
    chunk_levels, chunks = _chunks(raw, count, version, where)
    return TensorRecord(
        raw["name"],
        raw["dtype"],
        tuple(shape),
        raw["bits"],
        raw["multiplier"],
        axis,
        values,
        raw["zero_point"],
        raw["sparsity"],
        raw["codec"],
        raw["offset"],
        raw["length"],
        count,
        chunk_levels,
        chunks,
    )


def _chunks(raw: dict[str, Any], count: int, version: int, where: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The record's chunking: version 1 holds one chunk; version 2 as many as ``chunk_levels`` gives, whose coded
    lengths add up to the record's ``length``."""
    if version == 1:
        if not 0 <= raw["crc32"] < 1 << 32:
            raise SidecarError(f"{where}: invalid CRC field")
        if count > MAX_V1_LEVELS:  # decoded in one piece: its scratch memory grows with the tensor
            raise SidecarError(
                f"{where}: {count:,} levels in one format-1 chunk exceed the limit of {MAX_V1_LEVELS:,}: refused "
                "before decoding (export the model again: format 2 codes large tensors in chunks)"
            )
        return max(count, 1), ((raw["length"], raw["crc32"]),)
    chunk_levels, chunks = raw["chunk_levels"], raw["chunks"]
    if chunk_levels < 1:
        raise SidecarError(f"{where}: chunk_levels {chunk_levels} must be at least 1")
    if min(chunk_levels, count) > MAX_CHUNK_LEVELS:  # a codec decodes a chunk whole, with scratch per level
        raise SidecarError(
            f"{where}: chunks of {chunk_levels:,} levels exceed the limit of {MAX_CHUNK_LEVELS:,} levels per chunk: "
            "refused before decoding"
        )
    expected = max(1, -(-count // chunk_levels))
    if len(chunks) != expected:
        raise SidecarError(
            f"{where}: {len(chunks)} chunks, but {count} levels in chunks of {chunk_levels} need {expected}"
        )
    pairs = []
    for chunk in chunks:
        ok = isinstance(chunk, list) and len(chunk) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in chunk)
        if not ok or chunk[0] < 0 or not 0 <= chunk[1] < 1 << 32:
            raise SidecarError(f"{where}: a chunk must be [coded length ≥ 0, CRC-32], got {str(chunk)[:40]}")
        pairs.append((chunk[0], chunk[1]))
    if sum(length for length, _ in pairs) != raw["length"]:
        raise SidecarError(
            f"{where}: its chunks hold {sum(p[0] for p in pairs)} bytes, the record says {raw['length']}"
        )
    return chunk_levels, tuple(pairs)

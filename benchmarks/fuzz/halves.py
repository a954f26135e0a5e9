"""The two halves of a pair as bytes: random damage, sidecar bytes <-> header and chunk bodies (with lengths and
CRC-32s re-forged), graph proto <-> sealed bytes (SHA-256 and digest recomputed)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import zlib
from typing import Any

import numpy as np

DAMAGE = ("flip", "cut", "insert", "overwrite")
GRAPH = "model.compressed.onnx"
PREAMBLE = struct.Struct("<8sHHII")  # runtime.sidecar's preamble: magic, version, reserved, header length, CRC-32
MAGIC = b"QDQSIDE\0"
CROSS_CHECKED = ("name", "dtype", "shape", "zero_point", "steps", "multiplier", "axis")  # vs the graph (scales.py)


def damage(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: bit flips, cuts of up to 64 bytes, inserts and overwrites of up to 16."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind, at = rng.choice(DAMAGE), rng.randrange(max(len(out), 1))
        if kind == "flip" and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del out[at : at + rng.randint(1, 64)]
        elif kind == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif out:
            n = rng.randint(1, 16)
            out[at : at + n] = rng.randbytes(len(out[at : at + n]))
    return bytes(out)


def split_sidecar(data: bytes) -> tuple[int, int, bytes, bytes]:
    """(version, reserved, header bytes, payload) of a well-formed sidecar."""
    _, version, reserved, length, _ = PREAMBLE.unpack_from(data)
    return version, reserved, data[PREAMBLE.size : PREAMBLE.size + length], data[PREAMBLE.size + length :]


def join_sidecar(header: bytes, payload: bytes, version: int = 2, reserved: int = 0) -> bytes:
    """A sidecar with its header length and CRC-32 (re-)forged."""
    return PREAMBLE.pack(MAGIC, version, reserved, len(header), zlib.crc32(header)) + header + payload


def dump_header(header: Any) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def chunk_bodies(header: dict[str, Any], payload: bytes, version: int) -> list[list[bytes]]:
    """Each record's chunk bodies, as the (intact) header lays them out."""
    out = []
    for r in header["tensors"]:
        lengths = [c[0] for c in r["chunks"]] if version == 2 else [r["length"]]
        starts = np.cumsum([r["offset"], *lengths])
        out.append([payload[s : s + n] for s, n in zip(starts.tolist(), lengths)])
    return out


def relayout(header: dict[str, Any], bodies: list[list[bytes]], version: int) -> bytes:
    """The payload of ``bodies``, with every record's offset, length and chunk lengths and CRC-32s re-forged."""
    offset = 0
    for r, chunks in zip(header["tensors"], bodies):
        r["offset"], r["length"] = offset, sum(map(len, chunks))
        if version == 2:
            r["chunks"] = [[len(b), zlib.crc32(b)] for b in chunks]
        else:
            r["crc32"] = zlib.crc32(chunks[0])
        offset += r["length"]
    return b"".join(b for chunks in bodies for b in chunks)


def to_version_1(sidecar: bytes) -> bytes:
    """A format-2 sidecar whose records have one chunk each, re-written as format 1 (a ``crc32`` per record)."""
    _, _, header_bytes, payload = split_sidecar(sidecar)
    header = json.loads(header_bytes)
    for r in header["tensors"]:
        assert len(r["chunks"]) == 1, "format 1 holds one chunk per tensor"
        r["crc32"] = r.pop("chunks")[0][1]
        del r["chunk_levels"]
    return join_sidecar(dump_header(header), payload, version=1)


def seal(proto: Any, sidecar: bytes | None = None) -> bytes:
    """The graph's bytes with the SHA-256 of ``sidecar`` recorded (when given) and its own digest recomputed (when it
    has the entry): what an attacker who rewrites both files writes."""
    from runtime.session import META_GRAPH_SHA256, META_SIDECAR_SHA256, graph_digest

    if sidecar is not None:
        for entry in proto.metadata_props:
            if entry.key == META_SIDECAR_SHA256:
                entry.value = hashlib.sha256(sidecar).hexdigest()
    entries = [e for e in proto.metadata_props if e.key == META_GRAPH_SHA256]
    if entries:
        digest = graph_digest(proto)
        for entry in entries:
            entry.value = digest
    return bytes(proto.SerializeToString(deterministic=True))


def parse_graph(data: bytes) -> Any | None:
    import onnx

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception:  # protobuf's DecodeError and friends
        return None
    return proto


def cross_checked_changed(old: dict[str, Any], new: Any) -> bool:
    """Whether the header ``new`` (object or bytes) differs from ``old`` in a field that the runtime checks against
    the graph (or no longer parses, or names other tensors): a loaded pair with changed outputs is then a finding."""
    if isinstance(new, bytes):
        try:
            new = json.loads(new)
        except (ValueError, RecursionError):
            return True
    if not isinstance(new, dict) or not isinstance(new.get("tensors"), list):
        return True
    if not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in new["tensors"]):
        return True
    before = {r["name"]: r for r in old["tensors"]}
    after = {r["name"]: r for r in new["tensors"]}
    if set(before) != set(after) or len(after) != len(new["tensors"]):
        return True
    return any(before[n].get(f) != after[n].get(f) for n in before for f in CROSS_CHECKED)

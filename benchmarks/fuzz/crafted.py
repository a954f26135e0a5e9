"""The crafted-size families: hand-built pairs at random declared sizes (``crafted-size-pairs``) and real bases
edited to declare huge sizes or headers (``crafted-size-edits``)."""

from __future__ import annotations

import math
import random
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fuzz.bases import Base, Case, sealed_case
from benchmarks.fuzz.halves import GRAPH, chunk_bodies, cross_checked_changed, dump_header, join_sidecar, split_sidecar
from benchmarks.fuzz.values import _deep


def gen_crafted_pair(rng: random.Random, base: Base) -> Case:
    """``tests/runtime/crafted.py``'s pairs at random declared sizes (up to 2^32 levels)."""
    from tests.runtime.crafted import GRAPH_NAME, crafted_pair

    if rng.random() < 0.2:
        shape = (rng.randint(1, 1 << 16), rng.randint(1, 1 << 16))
    else:
        total = rng.randint(0, 32)
        a = rng.randint(max(0, total - 16), min(16, total))
        shape = (1 << a, 1 << (total - a))
    count = math.prod(shape)
    version = 1 if rng.random() < 0.2 else 2
    chunk_levels = rng.choice((None, 1 << 18, 1 << 20, (1 << 20) + 1, 1 << 30, rng.randint(1, 1 << 21), 2**62, 7))
    if chunk_levels is not None and count // chunk_levels > 100_000:  # the builder lists every chunk
        chunk_levels = -(-count // 100_000)
    chunks = 1 if chunk_levels is None or version == 1 else max(1, -(-count // chunk_levels))
    pad = rng.choice((0, 0, 0, 1000, 100_000, 1_000_000, 8_000_000))
    uint8 = rng.random() < 0.3
    per_chunk = count if chunk_levels is None or version == 1 else min(chunk_levels, count)
    dense = rng.random() < 0.3 and chunks <= 4096 and per_chunk <= 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        crafted_pair(Path(tmp), shape, chunk_levels, version, pad, uint8, dense)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir()}
    files[GRAPH] = files.pop(GRAPH_NAME)
    x = np.random.default_rng(rng.randrange(1 << 30)).standard_normal((1, shape[0])).astype(np.float32)
    level = f"2^{round(math.log2(max(count, 1)))}"
    label = f"{level} v{version}{' dense' if dense else ''}{' uint8' if uint8 else ''}{' padded' if pad else ''}"
    return Case(label, files, None, x=x)


def _set_dims(proto: Any, name: str, shape: list[int]) -> None:
    for init in proto.graph.initializer:
        if init.name == name:
            del init.dims[:]
            init.dims.extend(shape)


def gen_crafted_edits(rng: random.Random, base: Base) -> Case:
    """A real base made to declare huge decoded sizes or headers, the graph's dims following, checksums re-forged."""
    version, reserved, _, payload = split_sidecar(base.sidecar)
    header = base.header_copy()
    proto = base.proto_copy()
    bodies = chunk_bodies(base.header, payload, version)
    i = rng.randrange(len(header["tensors"]))
    r = header["tensors"][i]
    kind = rng.choice(
        (
            "huge shape",
            "huge shape",
            "chunk_levels",
            "many chunks",
            "padded config",
            "padded record",
            "nested config",
            "big number",
            "version 1 huge",
            "zero dim",
        )
    )
    raw_header: bytes | None = None
    if kind in ("huge shape", "version 1 huge", "zero dim"):
        shape = list(r["shape"])
        others = [d for d in range(len(shape)) if d != r["axis"]] or [len(shape)]
        if others == [len(shape)]:
            shape.append(1)
        j = rng.choice(others)
        if kind == "zero dim":
            shape[j] = 0
        else:
            target = rng.randint(20, 44) if kind == "huge shape" else rng.randint(24, 30)
            shape[j] = min((1 << 31) - 1, max(1, (1 << target) // max(1, math.prod(shape) // shape[j])))
        count = math.prod(shape)
        r["shape"], r["decoded_bytes"] = shape, count
        body = b"".join(bodies[i])
        if kind == "version 1 huge":
            version = 1
            for other, chunks in zip(header["tensors"], bodies):
                other["crc32"] = zlib.crc32(b"".join(chunks))
                other.pop("chunk_levels", None)
                other.pop("chunks", None)
        elif version == 2:
            r["chunk_levels"] = rng.choice((count, 1 << 18, 1 << 20, 1 << 30)) or 1
            n = max(1, -(-count // r["chunk_levels"]))
            if n > 200_000:
                r["chunk_levels"] = -(-count // 200_000)
                n = max(1, -(-count // r["chunk_levels"]))
            r["chunks"] = [[len(body), zlib.crc32(body)]] + [[0, 0]] * (n - 1)
        else:
            r["crc32"] = zlib.crc32(body)
        if kind == "version 1 huge":  # format 1 holds one chunk per record: its payload re-laid out
            payload = b"".join(b"".join(chunks) for chunks in bodies)
            offset = 0
            for other, chunks in zip(header["tensors"], bodies):
                other["offset"], other["length"] = offset, sum(map(len, chunks))
                offset += other["length"]
        _set_dims(proto, r["name"], shape)
        kind = f"{kind} 2^{round(math.log2(max(count, 1)))}" if count else kind
    elif kind == "chunk_levels":
        if version == 1:
            r["crc32"] = r["crc32"] ^ 1
        else:
            r["chunk_levels"] = rng.choice((1 << 30, 1 << 31, 1 << 40, 2**63, 2**64, 10**20))
        kind = f"chunk_levels huge, {'one chunk' if len(bodies[i]) == 1 else 'chunked'}"
    elif kind == "many chunks" and version == 1:
        kind = "many chunks (format 1: no edit)"
    elif kind == "many chunks":
        step = rng.choice((1, 2, 7, 64))
        body = b"".join(bodies[i])
        n = max(1, -(-math.prod(r["shape"]) // step))
        r["chunk_levels"] = step
        r["chunks"] = [[len(body), zlib.crc32(body)]] + [[0, 0]] * (n - 1)
        kind = f"many chunks of {step}"
    elif kind == "padded config":
        size = rng.choice(
            (10_000, 100_000, 1_000_000, 4_000_000, 16_000_000, (64 << 20) + 1)
            if rng.random() > 0.02
            else ((64 << 20) + 1,)
        )
        header["config"]["pad"] = "x" * size
        kind = f"padded config {'over 64 MiB' if size > 64 << 20 else f'{size:,}'}"
    elif kind == "padded record":
        r["pad" * rng.randint(1, 3)] = "x" * rng.choice((1000, 1_000_000, 8_000_000))
    elif kind == "nested config":
        depth = rng.choice((100, 1000, 10_000, 100_000, 1_000_000))
        text = dump_header(header)
        raw_header = text.replace(b'"config":{', b'"config":{"deep":' + _deep(depth).encode() + b",", 1)
        kind = f"nested config {depth}"
    elif kind == "big number":
        key = rng.choice(("length", "offset", "decoded_bytes", "chunk_levels", "bits", "multiplier"))
        literal = rng.choice(("1" + "0" * 4000, "1" + "0" * 5000, "1e400", "-1e400", "1" * 300))
        r[key] = "@@big@@"  # a placeholder, replaced by the literal in the JSON text
        raw_header = dump_header(header).replace(b'"@@big@@"', literal.encode())
        kind = f"big number {key} {len(literal)} chars"
    header_bytes = raw_header if raw_header is not None else dump_header(header)
    sidecar = join_sidecar(header_bytes, payload, version, reserved)
    expect = cross_checked_changed(base.header, header_bytes if raw_header is not None else header)
    return sealed_case(kind, base, sidecar, expect, proto)

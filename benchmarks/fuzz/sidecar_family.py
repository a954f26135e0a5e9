"""The sidecar families: byte damage to the whole sidecar (``sidecar-bytes``, ``sidecar-bytes-resealed``) or to its
JSON header (``sidecar-header-bytes-reforged``), one structured edit of the header or its chunk tables
(``sidecar-header-edits-reforged``), one chunk's coded bytes changed (``sidecar-payload-reforged``)."""

from __future__ import annotations

import copy
import random
from typing import Any

from benchmarks.fuzz.bases import Base, Case, pair, sealed_case
from benchmarks.fuzz.halves import (
    chunk_bodies,
    cross_checked_changed,
    damage,
    dump_header,
    join_sidecar,
    relayout,
    seal,
    split_sidecar,
)
from benchmarks.fuzz.values import mutate_value


def gen_sidecar_bytes(rng: random.Random, base: Base) -> Case:
    return Case("bytes", pair(base, base.graph, damage(base.sidecar, rng)), base)


def gen_sidecar_bytes_resealed(rng: random.Random, base: Base) -> Case:
    damaged = damage(base.sidecar, rng)  # the CRCs are intact: any loaded change is a finding
    return Case(
        "bytes, resealed",
        pair(base, seal(base.proto_copy(), damaged), damaged),
        base,
        reforged=True,
        expect_refusal=True,
    )


def gen_header_bytes(rng: random.Random, base: Base) -> Case:
    version, reserved, header, payload = split_sidecar(base.sidecar)
    damaged = damage(header, rng)
    sidecar = join_sidecar(damaged, payload, version, reserved)
    return sealed_case("header bytes", base, sidecar, cross_checked_changed(base.header, damaged))


def header_edit(rng: random.Random, base: Base, header: dict[str, Any]) -> tuple[str, Any, bytes | None, int]:
    """One structured edit: (label, new header, new payload or None, version to write)."""
    version = base.version
    records = header["tensors"]
    kind = rng.choice(
        (
            "field value",
            "field value",
            "field value",
            "field drop",
            "field add",
            "field rename",
            "record drop",
            "record duplicate",
            "record swap",
            "record swap relayout",
            "record swap names",
            "tensors",
            "config",
            "top level",
            "codec",
            "chunk table",
            "version",
            "bits",
        )
    )
    payload = None
    if kind in ("field value", "field drop", "field rename"):
        r = rng.choice(records)
        key = rng.choice(sorted(r))
        if kind == "field value":
            r[key] = mutate_value(rng, r[key])
        elif kind == "field drop":
            del r[key]
        else:
            r[key + rng.choice(("_", "s", " "))] = r.pop(key)
        return f"{kind} {key}", header, payload, version
    if kind == "field add":
        rng.choice(records)[rng.choice(("extra", "crc32", "chunk_levels", "sparsity_", ""))] = mutate_value(rng, 1)
        return kind, header, payload, version
    if kind == "record drop":
        del records[rng.randrange(len(records))]
    elif kind == "record duplicate":
        i = rng.randrange(len(records))
        records.insert(i, copy.deepcopy(records[i]))
    elif kind in ("record swap", "record swap names") and len(records) > 1:
        i, j = rng.sample(range(len(records)), 2)
        if kind == "record swap":
            records[i], records[j] = records[j], records[i]
        else:
            records[i]["name"], records[j]["name"] = records[j]["name"], records[i]["name"]
    elif kind == "record swap relayout" and len(records) > 1:  # the same tensors in another order: loads the same
        _, _, _, old_payload = split_sidecar(base.sidecar)
        bodies = chunk_bodies(base.header, old_payload, version)
        i, j = rng.sample(range(len(records)), 2)
        records[i], records[j] = records[j], records[i]
        bodies[i], bodies[j] = bodies[j], bodies[i]
        payload = relayout(header, bodies, version)
    elif kind == "tensors":
        header["tensors"] = rng.choice(({}, None, "x", [1, 2], [[]], records[:1] * 3, [None], []))
    elif kind == "config":
        header["config"] = rng.choice(([], None, "x", 1, {"a": [1] * 1000}, {"fuzz": False}, {"b": {"c": None}}))
    elif kind == "top level":
        which = rng.choice(("drop config", "extra key", "list", "string", "number", "null"))
        if which == "drop config":
            header.pop("config", None)
        elif which == "extra key":
            header["version"] = 3
        else:
            tops: dict[str, Any] = {"list": [header], "string": "header", "number": 2, "null": None}
            header = tops[which]
        return f"top level {which}", header, payload, version
    elif kind == "codec":
        from runtime.codecs import CODECS

        r = rng.choice(records)
        r["codec"] = rng.choice([c for c in CODECS if c != r["codec"]])
    elif kind == "chunk table":
        return chunk_table_edit(rng, base, header)
    elif kind == "version":
        version = rng.choice([v for v in (0, 1, 2, 3, 65535) if v != version])
    elif kind == "bits":
        r = rng.choice(records)
        r["bits"] = rng.choice([b for b in range(1, 10) if b != r["bits"]])
    return kind, header, payload, version


def chunk_table_edit(rng: random.Random, base: Base, header: dict[str, Any]) -> tuple[str, Any, bytes | None, int]:
    """Edits of a record's chunking: entries dropped, added, swapped, merged or split (CRC-32s re-forged where the
    bytes allow), ``chunk_levels`` changed."""
    version = base.version
    _, _, _, payload = split_sidecar(base.sidecar)
    bodies = chunk_bodies(base.header, payload, version)
    i = rng.randrange(len(header["tensors"]))
    r = header["tensors"][i]
    if version == 1:
        r["crc32"] = mutate_value(rng, r["crc32"])
        return "chunk table crc32 (v1)", header, None, version
    which = rng.choice(("drop", "add empty", "swap", "merge", "split", "chunk_levels", "entry"))
    chunks = bodies[i]
    if which == "drop" and len(chunks) > 1:
        del chunks[rng.randrange(len(chunks))]
    elif which == "add empty":
        chunks.insert(rng.randrange(len(chunks) + 1), b"")
    elif which == "swap" and len(chunks) > 1:
        a, b = rng.sample(range(len(chunks)), 2)
        chunks[a], chunks[b] = chunks[b], chunks[a]
    elif which == "merge" and len(chunks) > 1:
        a = rng.randrange(len(chunks) - 1)
        chunks[a : a + 2] = [chunks[a] + chunks[a + 1]]
    elif which == "split" and chunks[0]:
        a = rng.randrange(len(chunks))
        cut = rng.randrange(len(chunks[a]) + 1)
        chunks[a : a + 1] = [chunks[a][:cut], chunks[a][cut:]]
    elif which == "chunk_levels":
        payload = relayout(header, bodies, version)
        r["chunk_levels"] = rng.choice(
            (
                r["chunk_levels"] + 1,
                r["chunk_levels"] - 1,
                r["chunk_levels"] * 2,
                r["chunk_levels"] // 2,
                0,
                -1,
                1,
                1 << 30,
                2**63,
                2**64,
            )
        )
        return "chunk table chunk_levels", header, payload, version
    elif which == "entry":
        payload = relayout(header, bodies, version)
        entry = r["chunks"][rng.randrange(len(r["chunks"]))]
        entry[rng.randrange(2)] = mutate_value(rng, entry[0])
        return "chunk table entry value", header, payload, version
    payload = relayout(header, bodies, version)
    return f"chunk table {which}", header, payload, version


def gen_header_edits(rng: random.Random, base: Base) -> Case:
    header = base.header_copy()
    label, new, payload, version = header_edit(rng, base, header)
    _, reserved, _, old_payload = split_sidecar(base.sidecar)
    if label == "version" and rng.random() < 0.3:
        reserved, label = rng.choice((1, 255, 65535)), "reserved"
    header_bytes = dump_header(new)
    sidecar = join_sidecar(header_bytes, old_payload if payload is None else payload, version, reserved)
    expect = cross_checked_changed(base.header, new)
    return sealed_case(label, base, sidecar, expect)


def gen_payload(rng: random.Random, base: Base) -> Case:
    """One chunk's coded bytes changed, with its length and CRC-32 (and the offsets after it) re-forged."""
    version, reserved, _, payload = split_sidecar(base.sidecar)
    header = base.header_copy()
    bodies = chunk_bodies(base.header, payload, version)
    i = rng.randrange(len(bodies))
    c = rng.randrange(len(bodies[i]))
    body = bodies[i][c]
    how = rng.choice(
        (
            "damage",
            "damage",
            "damage",
            "flip one bit",
            "truncate",
            "extend",
            "random",
            "empty",
            "zeros",
            "ones",
            "transplant",
            "swap",
        )
    )
    if how == "damage":
        body = damage(body, rng)
    elif how == "flip one bit" and body:
        at = rng.randrange(len(body))
        body = body[:at] + bytes([body[at] ^ (1 << rng.randrange(8))]) + body[at + 1 :]
    elif how == "truncate":
        body = body[: rng.randrange(len(body) + 1)]
    elif how == "extend":
        body = body + rng.randbytes(rng.choice((1, 2, 3, 4, 100)))
    elif how == "random":
        body = rng.randbytes(len(body))
    elif how == "empty":
        body = b""
    elif how == "zeros":
        body = bytes(len(body))
    elif how == "ones":
        body = b"\xff" * len(body)
    elif how in ("transplant", "swap"):  # another chunk's stream: valid for some codec, wrong for this chunk
        j = rng.randrange(len(bodies))
        k = rng.randrange(len(bodies[j]))
        other = bodies[j][k]
        if how == "swap":
            bodies[j][k] = body
        body = other
    bodies[i][c] = body
    new_payload = relayout(header, bodies, version)
    sidecar = join_sidecar(dump_header(header), new_payload, version, reserved)
    codec = base.header["tensors"][i]["codec"]
    return sealed_case(f"{how} [{codec}]", base, sidecar, False)

"""Fuzz both halves of exported graph + sidecar pairs: damage or edit one file (or both, with their checksums
re-forged), then ``runtime.load`` and one inference in a worker process with a time limit and a memory ceiling.

Every case ends in one of these outcomes:

* ``refused``: a ``ToolchainError`` (the answer a damaged or inconsistent file must get);
* ``identical``: it loaded and every output is bit-identical to the intact pair's (an edit that changes nothing);
* ``loaded``: a crafted pair (no intact twin to compare with) loaded within the memory limits;
* ``accepted``: it loaded and the outputs differ, but the case re-forged the checksums that would have caught it
  (the graph's digest, the sidecar's SHA-256 in the graph, the header or chunk CRC-32s) and changed nothing that a
  cross-check of the runtime covers: accepted by design, as a digest and CRCs are integrity, not a signature
  (``runtime.load(public_key=)`` is the answer to an attacker who rewrites both files);
* ``silent``: it loaded and the outputs differ, and either nothing was re-forged or the edit contradicts a check
  the runtime documents (a weight's name, shape, type, zero-point, steps, multiplier or axis in one half against the
  other; a hollow weight's external-data entries): the failure this measures;
* ``crash``: any other exception (or the worker process died);
* ``hang``: no answer within ``--time-limit`` seconds (the worker is killed and restarted);
* ``memory``: out of memory under the worker's address-space ceiling (``--memory-limit-mib``, RLIMIT_AS), or a
  case whose peak RSS grew more than ``--rss-limit-mib`` over the RSS it started at (the worker resets its peak
  before each case).

The bases: ``lenet5_tiny`` at W2 restricted to each codec in turn (one chunk per tensor), at W4 restricted to each
codec with chunks of 2,048 levels (up to 46 chunks per tensor), at W8 with uint8 containers, at W2 re-written as
format 1, and ``resnet20_tiny`` at W4 with the codecs the exporter picks. The families (``--families``):

* ``graph-bytes``, ``sidecar-bytes``: random byte damage (one to four flips, cuts of up to 64 bytes, inserts or
  overwrites of up to 16) to one file;
* ``graph-bytes-resealed``: byte damage to the graph (retried until it still parses as ONNX), then its digest
  recomputed; ``sidecar-bytes-resealed``: byte damage to the sidecar, its new SHA-256 written into the graph and the
  graph's digest recomputed;
* ``graph-edits-resealed``: one structured edit of the graph (metadata, hollow initializers' dims, types and
  external-data entries, weight and activation scales and zero-points, biases, node inputs, types and attributes,
  graph inputs, opsets, external tensors), digest recomputed;
* ``sidecar-header-bytes-reforged``: byte damage inside the JSON header, its length and CRC-32 re-forged, then the
  SHA-256 and digest; ``sidecar-header-edits-reforged``: one structured edit of the header (a field's value or
  type, keys dropped, added or renamed, records dropped, duplicated, swapped or renamed, chunk tables, codecs, the
  preamble's version), all checksums re-forged;
* ``sidecar-payload-reforged``: one chunk's coded bytes damaged, truncated, extended, replaced or swapped with
  another chunk's, its length and CRC-32 re-forged (and every offset after it), so every codec's decoder meets
  streams that pass every checksum;
* ``crafted-size-pairs``: the hand-built pairs of ``tests/runtime/crafted.py`` at random declared sizes (up to 2^32
  levels), chunk sizes, format versions, containers and header padding;
* ``crafted-size-edits``: a real base edited to declare huge sizes (shapes of up to 2^44 levels with the graph's
  dims to match, huge or tiny ``chunk_levels``, padded configs and records, deeply nested JSON, huge numbers), with
  every checksum re-forged.

A case is reproducible from ``--seed``, its family and its index (``--replay FAMILY:INDEX --keep DIR``).

  nice -n 19 env PYTHONPATH=. .venv/bin/python benchmarks/fuzz_artefacts.py --cases 106000 \\
      --json benchmarks/results/fuzz_artefacts_100k.json
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import math
import os
import random
import re
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAMAGE = ("flip", "cut", "insert", "overwrite")
GRAPH = "model.compressed.onnx"
PREAMBLE = struct.Struct("<8sHHII")  # runtime.sidecar's preamble: magic, version, reserved, header length, CRC-32
MAGIC = b"QDQSIDE\0"
CROSS_CHECKED = ("name", "dtype", "shape", "zero_point", "steps", "multiplier", "axis")  # vs the graph (scales.py)
OUTCOMES = ("refused", "identical", "loaded", "accepted", "silent", "crash", "hang", "memory")
FINE = ("refused", "identical", "loaded", "accepted")
FAMILIES = {  # name: share of --cases (per cent)
    "graph-bytes": 6,
    "graph-bytes-resealed": 11,
    "graph-edits-resealed": 15,
    "sidecar-bytes": 6,
    "sidecar-bytes-resealed": 10,
    "sidecar-header-bytes-reforged": 12,
    "sidecar-header-edits-reforged": 15,
    "sidecar-payload-reforged": 17,
    "crafted-size-pairs": 4,
    "crafted-size-edits": 4,
}


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


# -- the two halves: sidecar bytes <-> header and chunk bodies, graph proto <-> sealed bytes -------------------------


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


@dataclass
class Base:
    """An intact exported pair: its files, parsed halves and input."""

    name: str
    folder: Path
    sidecar_name: str
    graph: bytes
    sidecar: bytes
    proto: Any
    header: dict[str, Any]
    version: int
    x_path: Path

    def proto_copy(self) -> Any:
        import onnx

        proto = onnx.ModelProto()
        proto.CopyFrom(self.proto)
        return proto

    def header_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.header)

    def codecs(self) -> list[str]:
        return sorted({r["codec"] for r in self.header["tensors"]})

    def chunks(self) -> int:
        return max(len(r.get("chunks", [0])) for r in self.header["tensors"])


BASE_SPECS = [  # name, model, weight bits, codecs, chunk levels, uint8 containers, format version
    ("resnet20-w4", "resnet20_tiny", 4, None, None, False, 2),
    ("lenet5-w8-uint8", "lenet5_tiny", 8, None, None, True, 2),
    ("lenet5-w2-v1", "lenet5_tiny", 2, None, None, False, 1),
]


def build_bases(folder: Path) -> list[Base]:
    """Export every base pair (module docstring) into ``folder``."""
    from exporters import export_model
    from runtime.codecs import CODECS
    from runtime.sidecar import SidecarTensor, encode_sidecar
    from tests.exporters.helpers import prepared, sample

    specs = list(BASE_SPECS)
    specs += [(f"lenet5-w2-{c}", "lenet5_tiny", 2, (c,), None, False, 2) for c in CODECS]
    specs += [(f"lenet5-w4-{c}-chunked", "lenet5_tiny", 4, (c,), 2048, False, 2) for c in CODECS]
    bases = []
    for name, model, wbits, codecs, chunk_levels, uint8, version in specs:
        out = folder / name
        config = {"fuzz": True}
        exported = export_model(
            prepared(model, wbits), sample(model, 2), out, config=config, codecs=codecs, uint8_weights=uint8
        )
        assert exported.sidecar is not None and exported.graph is not None
        sidecar = exported.sidecar.read_bytes()
        if chunk_levels:
            tensors = [
                SidecarTensor(w.name, w.levels, w.bits, w.steps, w.axis, w.multiplier, w.zero_point)
                for w in exported.weights
            ]
            sidecar = encode_sidecar(tensors, config, codecs, chunk_levels=chunk_levels)
        if version == 1:
            sidecar = to_version_1(sidecar)
        proto = parse_graph(exported.graph.read_bytes())
        graph = seal(proto, sidecar)
        exported.sidecar.write_bytes(sidecar)
        (out / GRAPH).write_bytes(graph)
        x_path = out / "x.npy"
        np.save(x_path, sample(model, 2, seed=5).numpy())
        version_read, _, header_bytes, _ = split_sidecar(sidecar)
        base = Base(
            name,
            out,
            exported.sidecar.name,
            graph,
            sidecar,
            parse_graph(graph),
            json.loads(header_bytes),
            version_read,
            x_path,
        )
        bases.append(base)
    return bases


@dataclass
class Case:
    """The files of one case (written into an empty folder), and how to judge it."""

    label: str
    files: dict[str, bytes]
    base: Base | None = None
    reforged: bool = False  # checksums re-forged: changed outputs are accepted by design, unless ...
    expect_refusal: bool = False  # ... the edit contradicts a documented cross-check
    links: dict[str, str] = field(default_factory=dict)  # symlink name -> target
    x: np.ndarray | None = None  # the input of a crafted pair (bases have theirs)


def pair(base: Base, graph: bytes, sidecar: bytes) -> dict[str, bytes]:
    return {GRAPH: graph, base.sidecar_name: sidecar}


# -- value mutations ------------------------------------------------------------------------------------------------


def mutate_value(rng: random.Random, old: Any) -> Any:
    """Another JSON value for a header field: a neighbour of ``old`` of its type, or anything else."""
    anything: list[Any] = [
        None,
        True,
        False,
        0,
        1,
        -1,
        2**31,
        2**32,
        2**63,
        -(2**63),
        2**64 + 1,
        10**30,
        1.5,
        float("inf"),
        float("nan"),
        "",
        "x",
        "int8",
        "uint8",
        "ans",
        [],
        {},
        [1, 2],
        "A" * 1000,
        {"a": 1},
        [[1]],
        -0.0,
    ]
    near: list[Any] = []
    if isinstance(old, bool):
        near = [not old, int(old)]
    elif isinstance(old, int):
        near = [old + 1, old - 1, old * 2, old // 2, -old, old ^ (1 << rng.randrange(32)), float(old), str(old)]
    elif isinstance(old, str):
        from runtime.codecs import CODECS

        near = [old + "x", old[:-1], old.upper(), *CODECS, "int8", "uint8", "none", old * 2, old[::-1]]
        if old and len(old) < 100_000:  # a base64 steps string: damage a character
            i = rng.randrange(len(old))
            near.append(old[:i] + rng.choice("AB/+=x") + old[i + 1 :])
            near.append(_steps_variant(rng, old))
    elif isinstance(old, list):
        near = [old[::-1], [*old, 1], old[:-1], old * 2, [old], [str(v) for v in old]]
        if old and all(isinstance(v, int) for v in old):
            i = rng.randrange(len(old))
            near += [
                [v * 2 if j == i else v for j, v in enumerate(old)],
                [v + 1 if j == i else v for j, v in enumerate(old)],
                [-v if j == i else v for j, v in enumerate(old)],
                sorted(old),
            ]
    elif isinstance(old, dict):
        near = [{}, {**old, "x": 1}, dict(list(old.items())[:-1])]
    return rng.choice(near) if near and rng.random() < 0.7 else rng.choice(anything)


def _steps_variant(rng: random.Random, steps: str) -> str:
    """Base64 float32 steps with one value changed (or one more or fewer)."""
    try:
        values = np.frombuffer(base64.b64decode(steps, validate=True), "<f4").copy()
    except Exception:
        return steps + "A"
    if values.size == 0:
        return base64.b64encode(np.ones(1, "<f4").tobytes()).decode()
    i = rng.randrange(values.size)
    how = rng.choice(("next", "double", "negate", "zero", "nan", "inf", "tiny", "more", "fewer"))
    if how == "more":
        values = np.append(values, values[-1])
    elif how == "fewer":
        values = values[:-1]
    else:
        values[i] = {
            "next": np.nextafter(values[i], np.float32(np.inf)),
            "double": values[i] * 2,
            "negate": -values[i],
            "zero": 0,
            "nan": np.nan,
            "inf": np.inf,
            "tiny": np.float32(1e-45),
        }[how]
    return base64.b64encode(values.astype("<f4").tobytes()).decode()


def edit_array(rng: random.Random, init: Any) -> str:
    """Change an initializer's values, type or shape in place; returns what was done."""
    from onnx import numpy_helper

    arr = numpy_helper.to_array(init).copy()
    how = rng.choice(("one", "one", "all", "dtype", "shape"))
    if how in ("one", "all") and arr.size:
        flat = arr.reshape(-1)
        index = slice(None) if how == "all" else rng.randrange(flat.size)
        if np.issubdtype(flat.dtype, np.floating):
            op = rng.choice(("next", "double", "negate", "zero", "nan", "inf", "huge", "tiny"))
            value = flat[index]
            flat[index] = {
                "next": np.nextafter(value, flat.dtype.type(np.inf)),
                "double": value * 2,
                "negate": -value,
                "zero": 0,
                "nan": np.nan,
                "inf": np.inf,
                "huge": 1e30,
                "tiny": 1e-40,
            }[op]
        else:
            op = rng.choice(("plus", "minus", "zero", "max", "min", "xor"))
            wide = flat[index].astype(np.int64)
            info = np.iinfo(flat.dtype)
            new = {
                "plus": wide + 1,
                "minus": wide - 1,
                "zero": wide * 0,
                "max": wide * 0 + info.max,
                "min": wide * 0 + info.min,
                "xor": wide ^ 0x40,
            }[op]
            flat[index] = np.asarray(new).astype(flat.dtype)
        arr = flat.reshape(arr.shape)
        done = f"{how} {op}"
    elif how == "dtype":
        arr = arr.astype(rng.choice((np.float16, np.float64, np.int32, np.int8, np.uint8, np.int64)))
        done = "dtype"
    else:
        shaped = rng.choice(("flat", "expand", "shorter", "longer"))
        if shaped == "flat":
            arr = arr.reshape(-1)
        elif shaped == "expand":
            arr = arr[None]
        elif shaped == "shorter":
            arr = arr.reshape(-1)[:-1]
        else:
            arr = np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]])
        done = f"shape {shaped}"
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return done


# -- graph families -------------------------------------------------------------------------------------------------


def gen_graph_bytes(rng: random.Random, base: Base) -> Case:
    return Case("bytes", pair(base, damage(base.graph, rng), base.sidecar), base)


def gen_graph_bytes_resealed(rng: random.Random, base: Base) -> Case:
    for _ in range(20):
        damaged = damage(base.graph, rng)
        proto = parse_graph(damaged)
        if proto is not None:
            return Case("bytes, resealed", pair(base, seal(proto), base.sidecar), base, reforged=True)
    return Case("bytes, unparseable", pair(base, damaged, base.sidecar), base)


def _weight_readers(proto: Any, hollow: set[str]) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input and n.input[0] in hollow]


def _activation_qdq(proto: Any, hollow: set[str]) -> list[Any]:
    ops = ("QuantizeLinear", "DequantizeLinear")
    return [n for n in proto.graph.node if n.op_type in ops and n.input and n.input[0] not in hollow]


def _meta(proto: Any, key: str) -> Any | None:
    return next((e for e in proto.metadata_props if e.key == key), None)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def graph_edit(rng: random.Random, base: Base, proto: Any) -> tuple[str, bool, dict[str, str], bool]:
    """One structured edit of ``proto`` in place: (label, expect refusal, symlinks, reseal the digest)."""
    import onnx
    from onnx import TensorProto, helper

    from runtime.session import META_CONFIG, META_FORMAT, META_GRAPH_SHA256, META_SIDECAR, META_SIDECAR_SHA256

    inits = {i.name: i for i in proto.graph.initializer}
    hollow = {n for n, i in inits.items() if i.data_location == TensorProto.EXTERNAL}
    weight_dq = _weight_readers(proto, hollow)
    act_qdq = _activation_qdq(proto, hollow)
    kind = rng.choice(
        (
            "meta config",
            "meta drop",
            "meta add",
            "meta sidecar name",
            "meta sidecar sha",
            "meta format",
            "hollow dims",
            "hollow type",
            "hollow location",
            "hollow external",
            "hollow rename",
            "weight scale",
            "weight zero-point",
            "weight axis",
            "weight rewire",
            "activation scale",
            "activation zero-point",
            "bias",
            "node input",
            "node swap inputs",
            "node op",
            "node drop",
            "node duplicate",
            "node clear",
            "node attribute",
            "graph input",
            "opset",
            "external tensor",
        )
    )
    links: dict[str, str] = {}
    if kind == "meta config":
        entry = _meta(proto, META_CONFIG)
        value = rng.choice(
            (
                "{",
                "[]",
                "null",
                '"x"',
                '{"fuzz": true, "extra": [1, 2]}',
                '{"fuzz": false}',
                '{"preprocess": {"kind": "gray", "size": 40000}}',
                '{"preprocess": 1}',
                '{"preprocess": {"kind": "imagenet", "size": 28}}',
                '{"task": "x", "classes": 1e999}',
                "x" * 100_000,
                "deep",
            )
        )
        if value == "deep":
            depth = rng.choice((10, 1000, 10_000, 100_000, 1_000_000))
            value = '{"a": ' + _deep(depth) + "}"
            kind = f"meta config nested {depth}"
        if entry is None:
            proto.metadata_props.add(key=META_CONFIG, value=value)
        else:
            entry.value = value
        return kind, False, links, True
    if kind == "meta drop":
        key = rng.choice([e.key for e in proto.metadata_props])
        kept = [(e.key, e.value) for e in proto.metadata_props if e.key != key]
        del proto.metadata_props[:]
        for k, v in kept:
            proto.metadata_props.add(key=k, value=v)
        vital = key in (META_FORMAT, META_SIDECAR, META_SIDECAR_SHA256, META_GRAPH_SHA256)
        return f"meta drop {key}", vital, links, True
    if kind == "meta add":
        key = rng.choice(
            ("toolchain.extra", "", "k" * 300, META_SIDECAR, META_SIDECAR_SHA256, META_CONFIG, META_FORMAT)
        )
        value = rng.choice(("", "x", "model.compressed.onnx", "../etc/passwd", "0" * 64, "{}", "\u00e9" * 50))
        proto.metadata_props.add(key=key, value=value)
        duplicate = key.startswith("toolchain.") and key != "toolchain.extra"
        return f"meta add {'duplicate ' + key if duplicate else 'key'}", False, links, True
    if kind == "meta sidecar name":
        entry = _meta(proto, META_SIDECAR)
        name = base.sidecar_name
        variants = {
            "traversal": "../" + name,
            "absolute": str(base.folder / name),
            "nul": name + "\0",
            "empty": "",
            "dot": ".",
            "dotdot": "..",
            "upper": name.upper(),
            "long": "x" * 300,
            "backslash": "a\\" + name,
            "graph": GRAPH,
            "link inside": "link.qsc",
            "link outside": "outside.qsc",
            "missing": "missing.qsc",
        }
        which = rng.choice(sorted(variants))
        assert entry is not None
        entry.value = variants[which]
        if which == "link inside":
            links["link.qsc"] = name
        elif which == "link outside":
            links["outside.qsc"] = str(base.folder / name)
        return f"meta sidecar name {which}", which != "link inside", links, True
    if kind == "meta sidecar sha":
        entry = _meta(proto, META_SIDECAR_SHA256)
        assert entry is not None
        which = rng.choice(("random", "upper", "space", "empty", "short"))
        entry.value = {
            "random": rng.randbytes(32).hex(),
            "upper": entry.value.upper(),
            "space": entry.value + " ",
            "empty": "",
            "short": entry.value[:-1],
        }[which]
        return f"meta sidecar sha {which}", which != "upper", links, True
    if kind == "meta format":
        entry = _meta(proto, META_FORMAT)
        assert entry is not None
        entry.value = rng.choice(("qdq-standalone", "", "x", "qdq-sidecar2"))
        return kind, False, links, True
    if kind.startswith("hollow"):
        init = inits[rng.choice(sorted(hollow))]
        if kind == "hollow dims":
            dims = list(init.dims)
            which = rng.choice(("permute", "plus one", "drop", "append", "zero"))
            if which == "permute" and len(set(dims)) > 1:
                while list(init.dims) == dims:
                    rng.shuffle(dims)
            elif which == "plus one":
                dims[rng.randrange(len(dims))] += 1
            elif which == "drop" and len(dims) > 1:
                dims = dims[:-1]
            elif which == "zero":
                dims[0] = 0
            else:
                dims.append(1)
            del init.dims[:]
            init.dims.extend(dims)
            kind = f"hollow dims {which}"
        elif kind == "hollow type":
            types = (TensorProto.UINT8, TensorProto.INT8, TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT4, 0, 99)
            init.data_type = rng.choice([t for t in types if t != init.data_type])
        elif kind == "hollow location":
            init.data_location = TensorProto.DEFAULT
        elif kind == "hollow external":
            which = rng.choice(("location passwd", "location graph", "offset 0", "length 1", "drop", "checksum"))
            entries = {e.key: e for e in init.external_data}
            if which == "location passwd":
                entries["location"].value = "../../../../../../etc/passwd"
            elif which == "location graph":
                entries["location"].value = GRAPH
            elif which == "offset 0":
                entries["offset"].value = "0"
            elif which == "length 1":
                entries["length"].value = "1"
            elif which == "drop":
                del init.external_data[:]
            else:
                init.external_data.add(key="checksum", value="0" * 40)
            kind = f"hollow external {which}"
        else:
            init.name = init.name + "_"
        return kind, True, links, True
    if kind in ("weight scale", "weight zero-point"):
        node = rng.choice(weight_dq)
        position = 1 if kind == "weight scale" else 2
        if position >= len(node.input) or node.input[position] not in inits:
            return f"{kind} absent (no edit)", False, links, True
        if kind == "weight zero-point" and rng.random() < 0.2:
            del node.input[2:]
            return f"{kind} dropped", True, links, True
        return f"{kind} {edit_array(rng, inits[node.input[position]])}", True, links, True
    if kind == "weight axis":
        node = rng.choice(weight_dq)
        axes = [a for a in node.attribute if a.name == "axis"]
        new = rng.choice((-1, 0, 1, 2, 3, 4, -5))
        if axes:
            axes[0].i = new
        else:
            node.attribute.append(helper.make_attribute("axis", new))
        return kind, True, links, True
    if kind == "weight rewire":
        others = [
            n for n in proto.graph.node if n.input and not (n.op_type == "DequantizeLinear" and n.input[0] in hollow)
        ]
        node = rng.choice(others)
        node.input[rng.randrange(len(node.input))] = rng.choice(sorted(hollow))
        return kind, True, links, True
    if kind in ("activation scale", "activation zero-point"):
        position = 1 if kind == "activation scale" else 2
        candidates = [n for n in act_qdq if len(n.input) > position and n.input[position] in inits]
        if not candidates:
            return f"{kind} absent", False, links, True
        node = rng.choice(candidates)
        return f"{kind} {edit_array(rng, inits[node.input[position]])}", False, links, True
    if kind == "bias":
        biases = [i for i in proto.graph.initializer if i.data_type == TensorProto.INT32]
        if not biases:
            return "bias absent", False, links, True
        return f"bias {edit_array(rng, rng.choice(biases))}", False, links, True
    nodes = proto.graph.node
    names = sorted({o for n in nodes for o in n.output} | set(inits) | {i.name for i in proto.graph.input})
    if kind == "node input":
        node = rng.choice([n for n in nodes if n.input])
        new, at = rng.choice(names), rng.randrange(len(node.input))
        old = node.input[at]
        node.input[at] = new
        return kind, new in hollow or old in hollow, links, True
    if kind == "node swap inputs":
        node = rng.choice([n for n in nodes if len(n.input) > 1])
        i, j = rng.sample(range(len(node.input)), 2)
        weight_moved = (node.input[i] in hollow) != (node.input[j] in hollow)
        node.input[i], node.input[j] = node.input[j], node.input[i]
        return kind, weight_moved, links, True
    if kind == "node op":
        node = rng.choice(nodes)
        was_weight_dq = node in weight_dq
        node.op_type = rng.choice(
            (
                "Relu",
                "Sigmoid",
                "Add",
                "Mul",
                "Conv",
                "MatMul",
                "Identity",
                "Reshape",
                "Transpose",
                "QuantizeLinear",
                "DequantizeLinear",
                "ConvTranspose",
                "Gemm",
                "MaxPool",
                "Flatten",
                "Softmax",
                "Concat",
                "Expand",
                "Tile",
                "If",
                "NoSuchOp",
                "Cast",
                "Pad",
            )
        )
        return kind, was_weight_dq and node.op_type != "DequantizeLinear", links, True
    if kind == "node drop":
        at = rng.randrange(len(nodes))
        reads_weight = any(name in hollow for name in nodes[at].input)
        del nodes[at]
        return kind, reads_weight, links, True
    if kind == "node clear":  # a node left without inputs or outputs (a DequantizeLinear, mostly)
        dequantizers = [n for n in nodes if n.op_type == "DequantizeLinear"]
        node = rng.choice(dequantizers if dequantizers and rng.random() < 0.7 else list(nodes))
        reads_weight = any(name in hollow for name in node.input)
        which = rng.choice(("inputs", "outputs", "both"))
        if which != "outputs":
            del node.input[:]
        if which != "inputs":
            del node.output[:]
        return f"node clear {which}", reads_weight and which != "outputs", links, True
    if kind == "node duplicate":
        node = rng.choice(nodes)
        nodes.insert(rng.randrange(len(nodes) + 1), copy.deepcopy(node))
        return kind, False, links, True
    if kind == "node attribute":
        candidates = [(n, a) for n in nodes for a in n.attribute if a.type in (1, 2, 3, 7)]
        node, attr = rng.choice(candidates)
        if attr.type == onnx.AttributeProto.INT:
            attr.i = rng.choice((attr.i + 1, attr.i - 1, 0, -1, 2**31 - 1, -(2**63), 1 << 40))
        elif attr.type == onnx.AttributeProto.INTS and attr.ints:
            values = list(attr.ints)
            which = rng.randrange(len(values))
            values[which] = rng.choice((values[which] + 1, values[which] - 1, 0, -1, 1 << 20, 2**31 - 1))
            if rng.random() < 0.2:
                values = values[:-1] if rng.random() < 0.5 else [*values, 1]
            del attr.ints[:]
            attr.ints.extend(values)
        elif attr.type == onnx.AttributeProto.FLOAT:
            attr.f = rng.choice((attr.f * 2, float("nan"), float("inf"), 0.0, -attr.f))
        elif attr.type == onnx.AttributeProto.STRING:
            attr.s = rng.choice((b"", b"x", b"NOTSET", b"SAME_UPPER", bytes(attr.s) + b"x"))
        axis_of_weight = node in weight_dq and attr.name == "axis"
        return f"node attribute {attr.name}", axis_of_weight, links, True
    if kind == "graph input":
        graph_input = proto.graph.input[0]
        dims = graph_input.type.tensor_type.shape.dim
        which = rng.choice(("dim", "type", "name", "drop dim"))
        if which == "dim" and len(dims):
            dims[rng.randrange(len(dims))].dim_value = rng.choice((1, 3, 0, 1 << 20))
        elif which == "type":
            graph_input.type.tensor_type.elem_type = rng.choice((TensorProto.UINT8, TensorProto.DOUBLE, 0))
        elif which == "name":
            graph_input.name = graph_input.name + "_"
        elif len(dims):
            del dims[-1]
        return f"graph input {which}", False, links, True
    if kind == "opset":
        which = rng.choice(("opset", "ir"))
        if which == "opset":
            proto.opset_import[0].version = rng.choice((1, 9, 10, 13, 19, 21, 1000))
        else:
            proto.ir_version = rng.choice((1, 3, 7, 10, 11, 100))
        return f"opset {which}", False, links, True
    # external tensor: a Constant node, a sparse initializer or a non-weight initializer stored outside the graph
    which = rng.choice(("constant", "scale initializer", "subgraph"))
    external = helper.make_tensor("ext", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    external.ClearField("float_data")
    external.data_location = TensorProto.EXTERNAL
    external.external_data.add(key="location", value=rng.choice((base.sidecar_name, "/etc/passwd", "../x")))
    if which == "constant":
        nodes.insert(0, helper.make_node("Constant", [], ["ext_out"], value=external))
    elif which == "scale initializer":
        target = inits[rng.choice(sorted(set(inits) - hollow))]
        target.ClearField("raw_data")
        target.data_location = TensorProto.EXTERNAL
        target.external_data.add(key="location", value=external.external_data[0].value)
    else:
        body = helper.make_graph(
            [helper.make_node("Constant", [], ["c"], value=external)],
            "b",
            [],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])],
        )
        cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
        proto.graph.initializer.append(cond)
        nodes.append(helper.make_node("If", ["cond"], ["if_out"], then_branch=body, else_branch=body))
    return f"external tensor {which}", True, links, True


def gen_graph_edits(rng: random.Random, base: Base) -> Case:
    proto = base.proto_copy()
    label, expect, links, reseal = graph_edit(rng, base, proto)
    graph = seal(proto) if reseal else bytes(proto.SerializeToString(deterministic=True))
    return Case(label, pair(base, graph, base.sidecar), base, reforged=True, expect_refusal=expect, links=links)


# -- sidecar families -----------------------------------------------------------------------------------------------


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


def sealed_case(label: str, base: Base, sidecar: bytes, expect: bool, proto: Any = None) -> Case:
    graph = seal(proto if proto is not None else base.proto_copy(), sidecar)
    return Case(label, pair(base, graph, sidecar), base, reforged=True, expect_refusal=expect)


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
            header = {"list": [header], "string": "header", "number": 2, "null": None}[which]
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


# -- crafted sizes --------------------------------------------------------------------------------------------------


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


GENERATORS: dict[str, Callable[[random.Random, Base], Case]] = {
    "graph-bytes": gen_graph_bytes,
    "graph-bytes-resealed": gen_graph_bytes_resealed,
    "graph-edits-resealed": gen_graph_edits,
    "sidecar-bytes": gen_sidecar_bytes,
    "sidecar-bytes-resealed": gen_sidecar_bytes_resealed,
    "sidecar-header-bytes-reforged": gen_header_bytes,
    "sidecar-header-edits-reforged": gen_header_edits,
    "sidecar-payload-reforged": gen_payload,
    "crafted-size-pairs": gen_crafted_pair,
    "crafted-size-edits": gen_crafted_edits,
}


def make_case(seed: int, family: str, index: int, bases: list[Base]) -> Case:
    rng = random.Random(f"{seed}/{family}/{index}")
    base = rng.choice(bases)
    return GENERATORS[family](rng, base)


# -- the worker: load and run one case at a time, under a memory ceiling --------------------------------------------


def _status_mib(key: str) -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(rf"{key}:\s*(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def worker(memory_limit_mib: int) -> None:
    """Answer one JSON line per request line: load the case's graph, run it, compare with the base's outputs."""
    import faulthandler

    if memory_limit_mib:
        limit = memory_limit_mib << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    faulthandler.enable()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing a library prints can reach the channel
    import onnxruntime as ort

    import runtime
    from runtime import ToolchainError

    def infer(path: str, x: np.ndarray) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return runtime.load(path, session_options=options).run(x)

    references: dict[str, list[np.ndarray]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("ping"):
            channel.write(json.dumps({"pong": True}) + "\n")
            continue
        x = np.load(request["x"])
        reference = request.get("reference")
        if reference and reference not in references:
            references[reference] = infer(reference, x)
        before = _status_mib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS: this case's peak
        start = time.perf_counter()
        detail = ""
        try:
            outputs = infer(request["graph"], x)
        except ToolchainError as e:
            detail = str(e)
            outcome = "memory" if detail.startswith("out of memory") else "refused"
        except MemoryError as e:
            outcome, detail = "memory", f"MemoryError: {e}"
        except BaseException as e:  # pyo3's PanicException is a BaseException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            import traceback

            frames = traceback.extract_tb(e.__traceback__)
            ours = [f for f in frames if f"{os.sep}runtime{os.sep}" in f.filename] or frames  # the runtime's last
            place = ", ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in (ours[-1], frames[-1]))
            outcome, detail = f"crash:{type(e).__name__}", f"{type(e).__name__}: {e} (at {place})"
        else:
            if not reference:
                outcome = "loaded"
            else:
                expected = references[reference]
                same = len(outputs) == len(expected) and all(
                    o.shape == e.shape and o.dtype == e.dtype and np.array_equal(o, e, equal_nan=True)
                    for o, e in zip(outputs, expected)
                )
                outcome = "identical" if same else "changed"
            del outputs
        seconds = time.perf_counter() - start
        answer = {
            "outcome": outcome,
            "detail": detail[:400],
            "multiline": "\n" in detail.strip(),
            "seconds": round(seconds, 4),
            "peak_mib": round(_status_mib("VmHWM"), 1),
            "before_mib": round(before, 1),
        }
        channel.write(json.dumps(answer) + "\n")


class Worker:
    """A worker process, restarted when it dies or hangs."""

    def __init__(self, memory_limit_mib: int, log: Path) -> None:
        self.memory_limit_mib, self.log = memory_limit_mib, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    "--memory-limit-mib",
                    str(self.memory_limit_mib),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=env,
            )
        self.buffer = b""
        self.starts += 1
        answer = self._ask({"ping": True}, 600)
        assert isinstance(answer, dict) and answer.get("pong"), f"worker did not start: {answer}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | str:
        if self.proc is None:
            self.start()
        answer = self._ask(request, timeout)
        if isinstance(answer, str):
            self.stop()
        return answer

    def _ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return f"died:{self.proc.wait()}"
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hang"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return "hang"
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return f"died:{self.proc.wait()}"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return dict(json.loads(line))


# -- the campaign ---------------------------------------------------------------------------------------------------


def write_case(case: Case, folder: Path) -> Path:
    """Write the case's files into ``folder`` (emptied first: it holds only files of earlier cases)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    for name, target in case.links.items():
        (folder / name).symlink_to(target)
    x_path = folder / "x.npy"
    if case.x is not None:
        np.save(x_path, case.x)
    elif case.base is not None:
        x_path = case.base.x_path
    return x_path


def judge(answer: dict[str, Any] | str, case: Case, rss_limit_mib: float) -> str:
    if isinstance(answer, str):
        return "hang" if answer == "hang" else "crash"
    outcome = str(answer["outcome"])
    if outcome.startswith("crash"):
        return "crash"
    if answer["peak_mib"] - answer["before_mib"] > rss_limit_mib:
        return "memory"
    if outcome == "changed":
        return "accepted" if case.reforged and not case.expect_refusal else "silent"
    return outcome


def reason(detail: str) -> str:
    """A refusal's message without paths, names and numbers: its kind."""
    text = re.sub(r"/[^\s:'\",)]+", "<path>", detail.splitlines()[0] if detail else "")
    text = re.sub(r"'[^'\s]{0,80}'", "'…'", text)
    text = re.sub(r"\d[\d,_.]*", "#", text)
    return text[:90]


def run_family(
    family: str,
    cases: int,
    args: argparse.Namespace,
    bases: list[Base],
    worker_: Worker,
    scratch: Path,
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    used: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    peak = before = slowest = 0.0
    multiline, multiline_examples = 0, []
    start = time.time()
    for index in range(args.start, args.start + cases):
        case = make_case(args.seed, family, index, bases)
        folder = scratch / "case"
        x_path = write_case(case, folder)
        reference = str(case.base.folder / GRAPH) if case.base is not None and case.x is None else None
        request = {"graph": str(folder / GRAPH), "x": str(x_path), "reference": reference}
        answer = worker_.ask(request, args.time_limit)
        verdict = judge(answer, case, args.rss_limit_mib)
        outcomes[verdict] += 1
        kinds[case.label][verdict] += 1
        used[case.base.name if case.base else "crafted"] += 1
        if isinstance(answer, dict):
            peak = max(peak, answer["peak_mib"] - answer["before_mib"])
            before = max(before, answer["before_mib"])
            slowest = max(slowest, answer["seconds"])
            if verdict == "refused":
                reasons[reason(answer["detail"])] += 1
                if answer["multiline"]:
                    multiline += 1
                    if len(multiline_examples) < 5:
                        multiline_examples.append({"index": index, "label": case.label, "detail": answer["detail"]})
        if verdict not in FINE:
            detail = answer if isinstance(answer, str) else answer["detail"]
            finding = {
                "family": family,
                "index": index,
                "label": case.label,
                "outcome": verdict,
                "base": case.base.name if case.base else None,
                "detail": detail[:400],
                "peak_mib": None if isinstance(answer, str) else answer["peak_mib"],
            }
            findings.append(finding)
            print("FINDING", json.dumps(finding), flush=True)
            if args.findings and sum(1 for f in findings if f["family"] == family) <= 20:
                shutil.copytree(folder, args.findings / f"{family}-{index}", symlinks=True, dirs_exist_ok=True)
        done = index - args.start + 1
        if done % args.progress == 0:
            rate = done / (time.time() - start)
            print(f"  {family}: {done}/{cases} ({rate:.1f}/s) {dict(outcomes)}", flush=True)
    summary = {
        "cases": cases,
        "outcomes": {k: outcomes[k] for k in OUTCOMES if outcomes[k]},
        "wall_s": round(time.time() - start, 1),
        "max_case_s": round(slowest, 2),
        "max_peak_rss_over_start_mib": round(peak, 1),
        "max_rss_at_case_start_mib": round(before, 1),
        "multiline_refusals": multiline,
        "multiline_examples": multiline_examples,
        "bases": dict(sorted(used.items())),
        "kinds": {k: dict(v) for k, v in sorted(kinds.items())},
        "refusal_reasons": dict(reasons.most_common(15)),
    }
    print(
        family,
        json.dumps(
            {k: summary[k] for k in ("cases", "outcomes", "wall_s", "max_case_s", "max_peak_rss_over_start_mib")}
        ),
        flush=True,
    )
    return summary


def split_cases(total: int, families: list[str]) -> dict[str, int]:
    share = sum(FAMILIES[f] for f in families)
    return {f: max(1, round(total * FAMILIES[f] / share)) for f in families}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=3000, help="cases in all, shared out by family (default: 3000)")
    p.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case index of each family (to resume)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds a case may take before it is a hang")
    p.add_argument("--memory-limit-mib", type=int, default=4096, help="the worker's address-space ceiling")
    p.add_argument("--rss-limit-mib", type=float, default=1536.0, help="a case's RSS growth counted as a finding")
    p.add_argument("--progress", type=int, default=1000, help="print counts every this many cases")
    p.add_argument("--findings", type=Path, help="copy the files of the first 20 findings per family here")
    p.add_argument("--replay", help="FAMILY:INDEX: run that one case and print its answer")
    p.add_argument("--keep", type=Path, help="with --replay: write the case's files here")
    p.add_argument("--json", type=Path, help="write the results here (after each family)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.memory_limit_mib)
        return 0
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="fuzz_artefacts_") as tmp:
        scratch = Path(tmp)
        bases = build_bases(scratch / "bases")
        print(
            f"{len(bases)} bases in {time.time() - start:.0f} s: "
            + ", ".join(f"{b.name} ({'/'.join(b.codecs())}, ≤{b.chunks()} chunks, v{b.version})" for b in bases),
            flush=True,
        )
        worker_ = Worker(args.memory_limit_mib, scratch / "worker.log")
        if args.replay:
            family, index = args.replay.split(":")
            case = make_case(args.seed, family, int(index), bases)
            folder = args.keep or scratch / "case"
            if args.keep and args.keep.exists() and any(args.keep.iterdir()):
                p.error(f"--keep {args.keep} must be a new or empty folder")
            x_path = write_case(case, folder)
            reference = str(case.base.folder / GRAPH) if case.base is not None and case.x is None else None
            answer = worker_.ask(
                {"graph": str(folder / GRAPH), "x": str(x_path), "reference": reference}, args.time_limit
            )
            print(
                json.dumps({"label": case.label, "answer": answer, "verdict": judge(answer, case, args.rss_limit_mib)})
            )
            worker_.stop()
            return 0
        if args.findings:
            args.findings.mkdir(parents=True, exist_ok=True)
        from benchmarks.common import cpu_facts

        report: dict[str, Any] = {
            "command": " ".join(sys.argv),
            "seed": args.seed,
            "host": cpu_facts(),
            "limits": {
                "time_limit_s": args.time_limit,
                "memory_limit_mib": args.memory_limit_mib,
                "rss_limit_mib": args.rss_limit_mib,
            },
            "bases": {
                b.name: {
                    "codecs": b.codecs(),
                    "max_chunks": b.chunks(),
                    "version": b.version,
                    "sidecar_bytes": len(b.sidecar),
                    "graph_bytes": len(b.graph),
                }
                for b in bases
            },
            "families": {},
            "findings": [],
        }
        findings: list[dict[str, Any]] = []
        try:
            for family, cases in split_cases(args.cases, args.families).items():
                report["families"][family] = run_family(family, cases, args, bases, worker_, scratch, findings)
                report["findings"] = findings[:300]
                report["cases"] = sum(f["cases"] for f in report["families"].values())
                report["totals"] = dict(sum((Counter(f["outcomes"]) for f in report["families"].values()), Counter()))
                report["wall_s"] = round(time.time() - start, 1)
                report["worker_starts"] = worker_.starts
                if args.json:
                    args.json.write_text(json.dumps(report, indent=1) + "\n")
        finally:
            worker_.stop()
    print(json.dumps({k: report.get(k) for k in ("cases", "totals", "wall_s", "worker_starts")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

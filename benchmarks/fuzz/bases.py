"""The intact exported pairs every case starts from (``Base``, ``build_bases``), and a case: its files and how to
judge it (``Case``, with ``pair`` and ``sealed_case`` to build its files)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fuzz.halves import GRAPH, parse_graph, seal, split_sidecar, to_version_1


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


# name, model, weight bits, codecs, chunk levels, uint8 containers, format version
BaseSpec = tuple[str, str, int, tuple[str, ...] | None, int | None, bool, int]
BASE_SPECS: list[BaseSpec] = [
    ("resnet20-w4", "resnet20_tiny", 4, None, None, False, 2),
    ("lenet5-w8-uint8", "lenet5_tiny", 8, None, None, True, 2),
    ("lenet5-w2-v1", "lenet5_tiny", 2, None, None, False, 1),
]


def build_bases(folder: Path) -> list[Base]:
    """Export every base pair (the docstring of ``benchmarks/fuzz_artefacts.py``) into ``folder``."""
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


def sealed_case(label: str, base: Base, sidecar: bytes, expect: bool, proto: Any = None) -> Case:
    graph = seal(proto if proto is not None else base.proto_copy(), sidecar)
    return Case(label, pair(base, graph, sidecar), base, reforged=True, expect_refusal=expect)

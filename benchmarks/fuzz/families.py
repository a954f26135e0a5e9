"""The registry of families: each one's share of ``--cases`` and its generator, and ``make_case``, which draws a
case's base and edits from its seed, family and index."""

from __future__ import annotations

import random
from collections.abc import Callable

from benchmarks.fuzz.bases import Base, Case
from benchmarks.fuzz.crafted import gen_crafted_edits, gen_crafted_pair
from benchmarks.fuzz.graph_family import gen_graph_bytes, gen_graph_bytes_resealed, gen_graph_edits
from benchmarks.fuzz.sidecar_family import (
    gen_header_bytes,
    gen_header_edits,
    gen_payload,
    gen_sidecar_bytes,
    gen_sidecar_bytes_resealed,
)

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

"""Helpers for crafting sidecars that are wrong in exactly one field."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEM = "model"  # the file stem of the exported fixtures (tests/runtime/conftest.py)
GRAPH = f"{STEM}.compressed.onnx"


def sidecar_of(folder: Path) -> Path:
    """The sidecar the pair's graph names (its file name carries a digest of its content)."""
    import onnx

    graph = onnx.load(str(folder / GRAPH), load_external_data=False)
    return folder / {p.key: p.value for p in graph.metadata_props}["toolchain.sidecar"]


def edit_header(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """Re-encode the header after ``edit(header_dict)``, with a valid CRC, so only the edited field is wrong."""
    magic, version, reserved, length, _ = struct.unpack_from("<8sHHII", data)
    header = json.loads(data[20 : 20 + length])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<8sHHII", magic, version, reserved, len(raw), zlib.crc32(raw)) + raw + data[20 + length :]


def sealed(graph: Any) -> bytes:
    """The graph's bytes with its digest recomputed: an edit an attacker who rewrites the whole file could make, so
    that a test reaches the checks behind the digest."""
    from runtime.session import META_GRAPH_SHA256, graph_digest

    digest = graph_digest(graph)
    for p in graph.metadata_props:
        if p.key == META_GRAPH_SHA256:
            p.value = digest
    return graph.SerializeToString()


def set_meta(folder: Path, key: str, value: str) -> None:
    """Set one metadata entry of the exported pair's graph, resealed (see :func:`sealed`)."""
    import onnx

    graph = onnx.load(str(folder / GRAPH), load_external_data=False)
    for p in graph.metadata_props:
        if p.key == key:
            p.value = value
    (folder / GRAPH).write_bytes(sealed(graph))


def resign(folder: Path, sidecar: bytes) -> None:
    """Write ``sidecar`` and record its SHA-256 in the graph, so that only the sidecar's own checks can refuse it."""
    import hashlib

    sidecar_of(folder).write_bytes(sidecar)
    set_meta(folder, "toolchain.sidecar_sha256", hashlib.sha256(sidecar).hexdigest())

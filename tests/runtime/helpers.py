"""Helpers for crafting sidecars that are wrong in exactly one field."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any


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

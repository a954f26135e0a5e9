"""Graph + sidecar pairs built by hand, for the memory bounds of ``runtime.load`` (issue 31, "Bounded memory").

:func:`crafted_pair` writes a sealed pair whose one hollow weight ``w`` (int8, ``shape``) is dequantized and
multiplied into the input, and whose sidecar codes the weight as one-level ``ans`` chunks: a few bytes per chunk
whatever its level count. Every check of the load passes (digests, names, shapes, scales), so only the memory
bounds stand between a few kilobytes on disk and gigabytes of decoded levels.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from runtime import ans

GRAPH_NAME = "crafted.compressed.onnx"
SIDECAR_NAME = "crafted.compressed.qsc"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def one_level_ans(count: int) -> bytes:
    """The ``ans`` coding of ``count`` zero levels: count, lo = 0, span 1, bitmap, frequency 1; no stream."""
    return _varint(count) + b"\x00\x01\x01" + _varint(1) if count else b""


@functools.cache
def dense_ans(count: int) -> bytes:
    """The ``ans`` coding (8 bits) of ``count`` levels that start with each of −127 … 127 once, then zeros: about
    800 bytes of table and stream, whatever ``count``, so a file needs no padding to be allowed many levels."""
    levels = np.zeros(count, np.int8)
    levels[:255] = np.arange(-127, 128)[: min(count, 255)]
    return ans.encode(levels, 8)


def crafted_sidecar(
    shape: tuple[int, ...],
    chunk_levels: int | None = None,
    version: int = 2,
    pad: int = 0,
    uint8: bool = False,
    dense: bool = False,
) -> bytes:
    """A sidecar holding one weight ``w`` of ``shape`` (one step of 1.0), all zeros, coded in one-level ``ans``
    chunks of ``chunk_levels`` (default: the whole tensor, one chunk; version 1 always has one), with a
    ``pad``-character string in its ``config``: a 2-bit int8 container, or with ``uint8`` an 8-bit uint8 one
    (zero-point 128), which hosts with exact u8×s8 kernels switch to int8 (the rewritten graph of ``load``). With
    ``dense``, each chunk codes every 8-bit level once (:func:`dense_ans`): ~800 coded bytes per chunk."""
    count = math.prod(shape)
    chunk_levels = max(count, 1) if chunk_levels is None or version == 1 else chunk_levels
    sizes = [min(chunk_levels, count - i) for i in range(0, count, chunk_levels)] or [0]
    bodies = [dense_ans(n) if dense else one_level_ans(n) for n in sizes]
    record = {
        "name": "w",
        "dtype": "uint8" if uint8 else "int8",
        "shape": list(shape),
        "bits": 8 if uint8 or dense else 2,
        "multiplier": 1,
        "axis": None,
        "steps": base64.b64encode(np.ones(1, "<f4").tobytes()).decode(),
        "zero_point": 128 if uint8 else 0,
        "sparsity": "none",
        "codec": "ans",
        "offset": 0,
        "length": sum(map(len, bodies)),
        "decoded_bytes": count,
    }
    if version == 1:
        record["crc32"] = zlib.crc32(bodies[0])
    else:
        record["chunk_levels"] = chunk_levels
        record["chunks"] = [[len(b), zlib.crc32(b)] for b in bodies]
    header = json.dumps({"config": {"pad": "x" * pad}, "tensors": [record]}).encode()
    return struct.pack("<8sHHII", b"QDQSIDE\0", version, 0, len(header), zlib.crc32(header)) + header + b"".join(bodies)


def crafted_pair(
    folder: Path,
    shape: tuple[int, int],
    chunk_levels: int | None = None,
    version: int = 2,
    pad: int = 0,
    uint8: bool = False,
    dense: bool = False,
) -> Path:
    """Write the graph (``y = x · dequantize(w)`` in QDQ form, ``x`` float ``[1, shape[0]]``) and its sidecar
    (:func:`crafted_sidecar`) into ``folder``; returns the graph's path."""
    from onnx import TensorProto, helper

    from runtime.session import (
        META_FORMAT,
        META_GRAPH_SHA256,
        META_SIDECAR,
        META_SIDECAR_SHA256,
        graph_digest,
    )

    folder.mkdir(parents=True, exist_ok=True)
    sidecar = crafted_sidecar(shape, chunk_levels, version, pad, uint8, dense)
    (folder / SIDECAR_NAME).write_bytes(sidecar)
    weight = TensorProto(name="w", data_type=TensorProto.UINT8 if uint8 else TensorProto.INT8, dims=list(shape))
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", SIDECAR_NAME), ("offset", str(1 << 40)), ("length", str(math.prod(shape)))):
        weight.external_data.add(key=key, value=value)
    scale = helper.make_tensor("w_scale", TensorProto.FLOAT, [], [1.0])
    zero = helper.make_tensor("w_zero", *((TensorProto.UINT8, [], [128]) if uint8 else (TensorProto.INT8, [], [0])))
    x_zero = helper.make_tensor("x_zero", TensorProto.UINT8, [], [0])
    nodes = [  # the QDQ form the exporter writes, which onnxruntime fuses into an integer kernel
        helper.make_node("QuantizeLinear", ["x", "w_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "w_scale", "x_zero"], ["x_float"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["w_float"]),
        helper.make_node("MatMul", ["x_float", "w_float"], ["y_float"]),
        helper.make_node("QuantizeLinear", ["y_float", "w_scale", "x_zero"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "w_scale", "x_zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "crafted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, shape[1]])],
        [weight, scale, zero, x_zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {
        META_FORMAT: "qdq-sidecar",
        META_SIDECAR: SIDECAR_NAME,
        META_SIDECAR_SHA256: hashlib.sha256(sidecar).hexdigest(),
    }
    for key in sorted(meta):
        model.metadata_props.add(key=key, value=meta[key])
    model.metadata_props.add(key=META_GRAPH_SHA256, value=graph_digest(model))
    path = folder / GRAPH_NAME
    path.write_bytes(model.SerializeToString(deterministic=True))
    return path

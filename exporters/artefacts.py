"""The two export artefacts, written atomically and deterministically.

* **standalone** ``<stem>.onnx``: the QDQ graph with every initializer embedded, for plain onnxruntime/TensorRT.
* **sidecar pair** ``<stem>.compressed.onnx`` + ``<stem>.compressed.<digest>.qsc``: the same graph whose int8 weight
  initializers keep their name, shape and type but carry no data: they are marked external, located in the
  sidecar at an offset beyond its end (:data:`HOLLOW_OFFSET`), so a plain onnxruntime session refuses the graph
  ("out of bounds") rather than read coded bytes as weights; and the sidecar with those weights entropy-coded
  (:mod:`runtime.sidecar`). The graph's ``metadata_props`` name the sidecar (``toolchain.sidecar``) and its
  SHA-256 (``toolchain.sidecar_sha256``); ``runtime.load`` checks both.

Both graphs record their own digest (``toolchain.graph_sha256``, :func:`runtime.session.graph_digest`), so a change
to a scale, zero-point, bias or metadata value after export is refused rather than run.

Everything is serialised in memory and checked (``onnx.checker`` with ``full_check``) before the first file is
written, and the files are staged as synced temporaries before any is renamed (``runtime.atomic_write_many``): a
failed export leaves earlier files untouched. The same model and configuration give identical bytes.

The pair has one commit point, the rename of the graph. The sidecar's name carries the first 16 hex digits of its
SHA-256, so a new sidecar never replaces the one the current graph names: until the graph is renamed, the old pair
is whole; after it, the new one. Only then are the stem's other sidecars (and temporaries that a killed export
left) deleted; a graph copied elsewhere keeps working only with its sidecar copied beside it.

With ``sign`` (a private key, :mod:`runtime.signing`), each graph gets a signature file beside it, computed before
anything is written and renamed right after the files it covers: ``<stem>.sig`` (the standalone graph) and
``<stem>.compressed.sig`` (the graph and its sidecar). Without it, the signatures of the graphs this export rewrote
are deleted after the commit, since they no longer match: a signature on disk always describes the files beside it
(or, in the moment between two renames, is refused as stale; never accepted for other bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.fx as fx

from runtime import ToolchainError, atomic_write_many
from runtime.fileio import remove_stale_temporaries
from runtime.session import (
    META_CONFIG,
    META_FORMAT,
    META_GRAPH_SHA256,
    META_SIDECAR,
    META_SIDECAR_SHA256,
    graph_digest,
)
from runtime.sidecar import encode_sidecar
from runtime.signing import Signer, signature_path

from .graph import BuiltGraph, WeightTensor, build_graph

__all__ = ["ExportResult", "export_model", "sidecar_graph", "sidecar_name"]

# Hollow weight initializers point into the sidecar at an offset no sidecar reaches: a plain onnxruntime session
# refuses them ("out of bounds") instead of reading coded bytes as weights; runtime.load supplies the decoded ones.
HOLLOW_OFFSET = 1 << 40


@dataclass(frozen=True)
class ExportResult:
    """Paths and sizes of what ``export_model`` wrote."""

    standalone: Path
    graph: Path | None
    sidecar: Path | None
    built: BuiltGraph
    signatures: tuple[Path, ...] = ()  # with ``sign``: the standalone graph's, then the pair's

    @property
    def weights(self) -> list[WeightTensor]:
        return self.built.weights

    def sizes(self) -> dict[str, int]:
        files = (self.standalone, self.graph, self.sidecar, *self.signatures)
        return {p.name: p.stat().st_size for p in files if p is not None}


def export_model(
    model: fx.GraphModule,
    example: torch.Tensor,
    out_dir: str | Path,
    stem: str = "model",
    config: dict[str, Any] | None = None,
    sidecar: bool = True,
    codecs: tuple[str, ...] | None = None,
    uint8_weights: bool = False,
    sign: str | Path | None = None,
) -> ExportResult:
    """Export a model returned by ``prepare_qat`` (trained or calibrated) to ``out_dir``.

    Args:
        model: the quant-aware ``GraphModule``.
        example: one input batch (its shape fixes channels and, where the graph needs it, the spatial size).
        out_dir: destination folder (created if missing).
        stem: file name stem of the artefacts.
        config: the exporting configuration, stored in both artefacts (JSON-serialisable).
        sidecar: also write the graph + sidecar pair.
        codecs: the weight codecs the sidecar may use (default: every one in ``runtime.codecs.CODECS``; each
            tensor gets the cheapest to decode within 1 % of the smallest).
        uint8_weights: store 8-bit weights in uint8 containers (zero-point 128) instead of int8: exact on AVX2-only
            CPUs, whose u8×s8 kernels saturate, slower elsewhere (see ``folding.container_zero_point``).
        sign: an elliptic-curve private key (PEM) to sign each graph with (module docstring); it is loaded first,
            so an unusable key stops the export before anything is built or written.
    """
    out = Path(out_dir)
    signer = Signer(sign) if sign is not None else None
    config = dict(config or {})
    try:
        config_json = json.dumps(config, sort_keys=True)
    except TypeError as e:
        raise ToolchainError(f"export config is not JSON-serialisable: {e}") from None
    built = build_graph(model, example, name=stem, uint8_weights=uint8_weights)
    proto, weights = built.model, built.weights
    _set_metadata(proto, {META_FORMAT: "qdq-standalone", META_CONFIG: config_json})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ToolchainError(f"the exported graph is not valid ONNX: {e}") from None
    standalone_path = out / f"{stem}.onnx"
    files: list[tuple[Path, bytes]] = [(standalone_path, _serialise(proto))]
    graph_path = sidecar_path = None
    if sidecar:
        side = encode_sidecar(weights, config, codecs)  # the graph's weight records are the sidecar's tensors
        sidecar_path, graph_path = out / sidecar_name(stem, side), out / f"{stem}.compressed.onnx"
        graph = _serialise(sidecar_graph(proto, weights, sidecar_path.name, side))
        files = [(sidecar_path, side), *files, (graph_path, graph)]  # renamed in this order: the graph commits
    # each graph with the files its signature covers: itself, and the pair's graph its sidecar
    units = {path: [(path, data)] for path, data in files if path.suffix == ".onnx"}
    if graph_path is not None:
        units[graph_path].insert(0, files[0])
    signatures = [signature_path(path) for path in units] if signer is not None else []
    if signer is not None:  # signed before anything is written; each renamed right after the graph it covers
        for graph_file, covered in units.items():
            signed = signer.sign([(p.name, data) for p, data in covered], out.resolve().name)
            at = next(i for i, (p, _) in enumerate(files) if p == graph_file)
            files.insert(at + 1, (signature_path(graph_file), signed))
    atomic_write_many(files)
    _remove_stale(out, stem, keep=sidecar_path.name if sidecar_path else None)
    if signer is None:  # the signatures of the graphs just rewritten no longer match them
        for graph_file in units:
            signature_path(graph_file).unlink(missing_ok=True)
    return ExportResult(standalone_path, graph_path, sidecar_path, built, tuple(signatures))


def sidecar_name(stem: str, data: bytes) -> str:
    """The sidecar's file name: content-addressed, so a new export never overwrites the one a graph names."""
    return f"{stem}.compressed.{hashlib.sha256(data).hexdigest()[:16]}.qsc"


def _remove_stale(out: Path, stem: str, keep: str | None) -> None:
    """After the commit: the stem's sidecars that no graph of this export names (an earlier export's, or a
    killed one's) and the temporaries a killed export left."""
    ours = re.compile(re.escape(stem) + r"(\.onnx|\.sig|\.compressed\.(onnx|sig)|\.compressed(\.[0-9a-f]{16})?\.qsc)")
    remove_stale_temporaries(out, lambda name: ours.fullmatch(name) is not None)
    if keep is None:  # no pair was written: the earlier pair, if any, is left whole
        return
    sidecars = re.compile(re.escape(stem) + r"\.compressed(\.[0-9a-f]{16})?\.qsc")
    for path in out.iterdir():
        if path.name != keep and sidecars.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def sidecar_graph(
    standalone: onnx.ModelProto, weights: list[WeightTensor], sidecar_name: str, sidecar_bytes: bytes
) -> onnx.ModelProto:
    """A copy of ``standalone`` with hollow weight initializers (name, shape, type) and metadata naming the sidecar."""
    proto = onnx.ModelProto()
    proto.CopyFrom(standalone)
    names = {w.name for w in weights}
    for init in proto.graph.initializer:
        if init.name in names:
            size = int(np.prod(init.dims))
            init.ClearField("raw_data")
            init.ClearField("int32_data")
            init.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", sidecar_name), ("offset", str(HOLLOW_OFFSET)), ("length", str(size))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
    _set_metadata(
        proto,
        {
            META_FORMAT: "qdq-sidecar",
            META_SIDECAR: sidecar_name,
            META_SIDECAR_SHA256: hashlib.sha256(sidecar_bytes).hexdigest(),
        },
    )
    return proto


def _set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    current = {p.key: p.value for p in proto.metadata_props}
    current.update(values)
    del proto.metadata_props[:]
    for key in sorted(current):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, current[key]


def _serialise(proto: onnx.ModelProto) -> bytes:
    """The sealed bytes: the graph's digest (``runtime.session.graph_digest``) recorded in its metadata."""
    _set_metadata(proto, {META_GRAPH_SHA256: graph_digest(proto)})
    return proto.SerializeToString(deterministic=True)

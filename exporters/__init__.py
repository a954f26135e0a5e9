"""Exporters: quant-aware models → QDQ ONNX graphs and compressed-weight sidecars (torch, onnx, onnx-graphsurgeon).

``export_model(prepared_model, example_batch, out_dir)`` writes the standalone QDQ ``.onnx`` and the graph +
sidecar pair; :mod:`exporters.graph` builds the graph, :mod:`exporters.ops` holds the op registry and
:mod:`exporters.artefacts` the files. The sidecar format itself is defined once, in :mod:`runtime.sidecar`.
"""

from .artefacts import ExportResult, export_model, sidecar_graph
from .graph import build_graph

__all__ = ["ExportResult", "build_graph", "export_model", "sidecar_graph"]

"""Exporters: frozen quantized models → QDQ ONNX graphs and compressed-weight sidecars (torch, onnx, graphsurgeon).

Not implemented yet: the export issue builds this package on top of ``toolchain``'s ``freeze`` and ``runtime``'s
sidecar format.
"""

__all__: list[str] = []

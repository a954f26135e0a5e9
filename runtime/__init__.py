"""Deployment runtime: sidecar format, codecs and the onnxruntime session (numpy, onnx, onnxruntime; never torch).

``runtime.load(path, device="cpu")`` opens an exported model, standalone or graph + sidecar (see
:mod:`runtime.session`); :mod:`runtime.sidecar` defines the sidecar format, :mod:`runtime.codecs` its codecs and
:mod:`runtime.kernels` the fixed-point check (which integer kernels onnxruntime runs).

A deployment installs this package without torch; ``tests/runtime/test_no_torch.py`` keeps it that way.
"""

from .errors import ToolchainError
from .fileio import atomic_write, atomic_write_bytes, atomic_write_many, atomic_write_text
from .session import Model, load

__all__ = [
    "Model",
    "ToolchainError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "load",
]

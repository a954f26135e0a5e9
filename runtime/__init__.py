"""Deployment runtime: sidecar format, codecs and the onnxruntime session (numpy, onnx, onnxruntime; never torch).

A deployment installs this package without torch; ``tests/runtime/test_no_torch.py`` keeps it that way.
"""

from .errors import ToolchainError
from .fileio import atomic_write, atomic_write_bytes, atomic_write_many, atomic_write_text

__all__ = ["ToolchainError", "atomic_write", "atomic_write_bytes", "atomic_write_many", "atomic_write_text"]

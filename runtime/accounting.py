"""Compression accounting of an exported graph + sidecar pair: what it costs to rebuild the model's parameters.

The float model being compressed is the deployable one (batch norm folded): its parameters are the weights
(``N_w`` values, coded in the sidecar) and the biases (``N_b`` values, int32 in the graph). Then

* **total ratio** = ``32 · (N_w + N_b) / (8 · (sidecar file bytes + 4 · N_b))`` (bits over bits). The sidecar's
  bytes cover the coded levels with their coder tables, the sparsity information (zeros are coded as levels,
  ``sparsity = "none"``), the steps, the per-tensor records and the file header (with the exporting configuration);
* **weights-only ratio** = ``32 · N_w / (8 · (Σ coded level bytes + 4 · number of steps))``, the paper's figure:
  the coded levels (tables included) and their steps, the "codebook" of a uniform quantizer;
* **bits per weight** = ``8 · Σ coded level bytes / N_w``.

Per tensor: the levels' order-0 entropy ``H = −Σ_q p(q) log₂ p(q)`` (bits per level), their sparsity (share of
zero levels), and the coded size, so that ``coded bytes / (N · H / 8)`` measures the coder against the entropy.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ToolchainError
from .session import META_SIDECAR, Model, _sidecar_path, load

__all__ = ["Accounting", "TensorAccount", "account", "entropy_bits"]


HISTOGRAM_SLICE = 1 << 20  # values counted at a time: the scratch of a histogram is 8 bytes per value of a slice


def entropy_bits(levels: np.ndarray) -> float:
    """Order-0 entropy of ``levels`` in bits per level (0 for an empty or constant tensor)."""
    return _entropy(byte_counts(levels), levels.size)


def byte_counts(values: np.ndarray) -> np.ndarray:
    """How often each of the 256 byte values occurs in the one-byte ``values`` (int8 levels or a container), counted
    a slice at a time so that the scratch stays small whatever the tensor (``np.bincount`` widens to int64)."""
    if values.dtype.itemsize != 1:
        raise TypeError(f"byte counts need one-byte values (int8 or uint8), got {values.dtype}")
    flat = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
    counts = np.zeros(256, np.int64)
    for start in range(0, flat.size, HISTOGRAM_SLICE):
        counts += np.bincount(flat[start : start + HISTOGRAM_SLICE], minlength=256)
    return counts


def _entropy(counts: np.ndarray, n: int) -> float:
    if n == 0:
        return 0.0
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum()) + 0.0


@dataclass(frozen=True)
class TensorAccount:
    name: str
    shape: tuple[int, ...]
    params: int
    bits: int
    sparsity: float  # share of zero levels
    entropy: float  # bits per level, order 0
    codec: str
    coded_bytes: int
    steps: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.coded_bytes / max(self.params, 1)

    @property
    def vs_entropy(self) -> float:
        """Coded size over the entropy bound ``N·H/8`` (inf when the entropy is 0 and bytes were spent)."""
        bound = self.params * self.entropy / 8
        return self.coded_bytes / bound if bound else (1.0 if self.coded_bytes == 0 else math.inf)


@dataclass(frozen=True)
class Accounting:
    tensors: tuple[TensorAccount, ...]
    bias_params: int
    sidecar_bytes: int
    graph_bytes: int

    @property
    def weight_params(self) -> int:
        return sum(t.params for t in self.tensors)

    @property
    def coded_bytes(self) -> int:
        return sum(t.coded_bytes for t in self.tensors)

    @property
    def step_bytes(self) -> int:
        return 4 * sum(t.steps for t in self.tensors)

    @property
    def total_ratio(self) -> float:
        return 32 * (self.weight_params + self.bias_params) / (8 * (self.sidecar_bytes + 4 * self.bias_params))

    @property
    def weights_ratio(self) -> float:
        return 32 * self.weight_params / max(8 * (self.coded_bytes + self.step_bytes), 1)

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.coded_bytes / max(self.weight_params, 1)

    @property
    def sparsity(self) -> float:
        return sum(t.sparsity * t.params for t in self.tensors) / max(self.weight_params, 1)

    @property
    def entropy_bytes(self) -> float:
        """Σ per-tensor ``N·H/8``: the order-0 bound on the coded levels."""
        return sum(t.params * t.entropy / 8 for t in self.tensors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight_params": self.weight_params,
            "bias_params": self.bias_params,
            "sidecar_bytes": self.sidecar_bytes,
            "graph_bytes": self.graph_bytes,
            "coded_bytes": self.coded_bytes,
            "step_bytes": self.step_bytes,
            "total_ratio": self.total_ratio,
            "weights_ratio": self.weights_ratio,
            "bits_per_weight": self.bits_per_weight,
            "sparsity": self.sparsity,
            "entropy_bytes": self.entropy_bytes,
            "tensors": [
                {**asdict(t), "bits_per_weight": t.bits_per_weight, "vs_entropy": t.vs_entropy} for t in self.tensors
            ],
        }


def account(model: str | os.PathLike[str] | Model) -> Accounting:
    """Account for a graph + sidecar pair: a :class:`runtime.Model` already loaded, or a path to load (every check
    of :func:`runtime.load`)."""
    import onnx

    if not isinstance(model, Model):
        model = load(model)
    if model.sidecar is None:
        raise ToolchainError(
            f"{model.path} is a standalone graph; compression accounting needs the graph + sidecar pair "
            "(model.compressed.onnx)"
        )
    containers = model.weights()  # a container is a one-to-one image of the levels: the same entropy, zero at 0 or 128
    tensors = []
    for r in model.sidecar.records:
        container = containers[r.name]
        counts = byte_counts(container)  # no whole-tensor copy: inspect stays near the size of the weights
        tensors.append(
            TensorAccount(
                r.name,
                r.shape,
                r.count,
                r.bits,
                float(counts[128 if container.dtype == np.uint8 else 0]) / max(r.count, 1),
                _entropy(counts, r.count),
                r.codec,
                r.length,
                r.steps.size,
            )
        )
    graph = onnx.load(str(model.path), load_external_data=False)
    # the int32 biases are the values a DequantizeLinear reads (its zero-point, also int32, is no parameter)
    dequantized = {n.input[0] for n in graph.graph.node if n.op_type == "DequantizeLinear"}
    bias = sum(
        math.prod(i.dims)
        for i in graph.graph.initializer
        if i.data_type == onnx.TensorProto.INT32 and i.dims and i.name in dequantized
    )
    sidecar_file = _sidecar_path(model.path, model.metadata[META_SIDECAR])
    return Accounting(tuple(tensors), bias, sidecar_file.stat().st_size, model.path.stat().st_size)

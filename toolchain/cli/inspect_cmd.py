"""Inspect an exported model: compression accounting, and which kernels onnxruntime runs (the fixed-point check).

For a graph + sidecar pair, each weight tensor is listed with its parameters, bit-width, sparsity, order-0 entropy
(H, bits per level), codec, coded bytes, bits per weight and coded size over the entropy bound (/H); then the
totals: bits per weight, the total compression ratio (32-bit weights and biases over everything needed to rebuild
them: the sidecar file and the int32 biases) and the weights-only ratio (the paper's figure). Definitions:
runtime/accounting.py.

The fixed-point check lists the integer kernels onnxruntime's optimizer fused (QLinearConv, QGemm, QLinearAdd,
...) and any convolution or matrix product left in float, which would mean the export missed.

Examples:
  toolchain inspect runs/qat/export/model.compressed.onnx
  toolchain inspect deploy/model.onnx --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .options import add_containers, add_public_key

HELP = "show an exported model's compression (per tensor and total) and the kernels onnxruntime runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="exported .onnx (standalone, or graph naming its sidecar)")
    add_containers(p)
    add_public_key(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    import runtime
    from runtime.accounting import account
    from runtime.kernels import describe_kernels

    model = runtime.load(args.model, containers=args.containers, public_key=args.public_key)
    kernels = model.kernels()
    choice = model.containers
    accounting = account(model) if model.sidecar is not None else None
    summary: dict[str, Any] = {
        "model": str(model.path),
        "format": model.metadata.get("toolchain.format", "onnx"),
        "bytes": model.path.stat().st_size,
        "compression": accounting.to_dict() if accounting else None,
        "kernels": kernels,
        "containers": {"summary": choice.summary(), "switched": choice.switched, "at_risk": choice.at_risk},
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['model']}: {summary['format']}, {summary['bytes'] / 1024:.1f} KiB")
    if accounting is not None:
        print(compression_text(accounting, model.config.get("allocation")))
    else:
        print("standalone graph: compression accounting needs the graph + sidecar pair (model.compressed.onnx)")
    print(describe_kernels(kernels))
    print(choice.summary())
    if choice.warning():
        print(f"warning: {choice.warning()}")
    return 0


def compression_text(a: Any, allocation: dict[str, Any] | None = None) -> str:
    """The per-tensor table and the totals of a :class:`runtime.accounting.Accounting`; with the ``allocation`` an
    export recorded (``compress --target-ratio``), each tensor's measured sensitivity and the budget too."""
    layers = allocation.get("layers", {}) if isinstance(allocation, dict) else {}
    head = (
        f"{'tensor':<36} {'shape':<16} {'params':>9} {'bits':>4} {'sparse%':>7} {'H b/w':>6} {'codec':<8} "
        f"{'bytes':>9} {'b/w':>5} {'/H':>6}" + (f" {'sensitivity':>11}" if layers else "")
    )
    lines = [head]
    for t in a.tensors:
        shape = "×".join(map(str, t.shape))
        sens = layers.get(t.name, {}).get("sensitivity") if layers else None
        lines.append(
            f"{t.name:<36} {shape:<16} {t.params:>9,} {t.bits:>4} {100 * t.sparsity:>7.1f} {t.entropy:>6.2f} "
            f"{t.codec:<8} {t.coded_bytes:>9,} {t.bits_per_weight:>5.2f} {t.vs_entropy:>6.3f}"
            + (f" {sens:>11.2e}" if isinstance(sens, int | float) else (f" {'–':>11}" if layers else ""))
        )
    lines += [
        f"weights {a.weight_params:,} (sparsity {100 * a.sparsity:.1f} %), biases {a.bias_params:,} (int32)",
        f"coded levels {a.coded_bytes:,} B = {a.bits_per_weight:.3f} bits/weight "
        f"({a.coded_bytes / max(a.entropy_bytes, 1e-9):.4f} × the order-0 entropy); steps {a.step_bytes:,} B; "
        f"sidecar file {a.sidecar_bytes:,} B",
        f"compression: total {a.total_ratio:.2f}× (32-bit weights and biases / sidecar + int32 biases), "
        f"weights only {a.weights_ratio:.2f}× (32-bit weights / coded levels + steps)",
    ]
    budget = allocation.get("size_budget") if isinstance(allocation, dict) else None
    if isinstance(budget, int | float) and budget > 0:
        size = a.sidecar_bytes + 4 * a.bias_params
        lines.append(
            f"allocated to {budget / 1024:.1f} KiB (sidecar + int32 biases): {size / 1024:.1f} KiB, "
            f"{100 * (size / budget - 1):+.2f} %; sensitivity: the output noise each layer's choice adds alone"
        )
    return "\n".join(lines)

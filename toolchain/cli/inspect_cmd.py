"""Inspect an exported model: format, sidecar tensors, and which kernels onnxruntime runs (the fixed-point check).

For a graph + sidecar pair, each weight tensor is listed with its shape, bit-width, codec, coded size and bits
per weight. The fixed-point check lists the integer kernels onnxruntime's optimizer fused (QLinearConv, QGemm,
QLinearAdd, ...) and any convolution or matrix product left in float, which would mean the export missed.

Examples:
  toolchain inspect runs/qat/export/model.compressed.onnx
  toolchain inspect deploy/model.onnx --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "show an exported model's sidecar tensors and the integer/float kernels onnxruntime runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="exported .onnx (standalone, or graph naming its sidecar)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    import runtime
    from runtime.kernels import describe_kernels

    model = runtime.load(args.model)
    kernels = model.kernels()
    tensors: list[dict[str, Any]] = [
        {
            "name": r.name,
            "shape": list(r.shape),
            "bits": r.bits,
            "codec": r.codec,
            "coded_bytes": r.length,
            "bits_per_weight": 8 * r.length / max(r.count, 1),
        }
        for r in (model.sidecar.records if model.sidecar else ())
    ]
    summary: dict[str, Any] = {
        "model": str(model.path),
        "format": model.metadata.get("toolchain.format", "onnx"),
        "bytes": model.path.stat().st_size,
        "sidecar_bytes": sum(t["coded_bytes"] for t in tensors) if tensors else None,
        "tensors": tensors,
        "kernels": kernels,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['model']}: {summary['format']}, {summary['bytes'] / 1024:.1f} KiB")
    if tensors:
        print(f"{'tensor':<40} {'shape':<18} {'bits':>4} {'codec':<8} {'bytes':>9} {'bits/w':>7}")
        for t in tensors:
            shape = "×".join(map(str, t["shape"]))
            print(
                f"{t['name']:<40} {shape:<18} {t['bits']:>4} {t['codec']:<8} {t['coded_bytes']:>9} "
                f"{t['bits_per_weight']:>7.2f}"
            )
    print(describe_kernels(kernels))
    return 0

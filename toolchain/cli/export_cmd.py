"""Export a quantized checkpoint to QDQ ONNX: a standalone graph and a graph + compressed-weight sidecar.

The checkpoint must come from `toolchain qat` (use --epochs 0 there for post-training quantization). The export
runs one test batch through onnxruntime and reports its agreement, in output steps, with the PyTorch model of the
export (batch norm folded, bias rounded to int32) and with the quant-aware model; and it counts the integer
kernels onnxruntime's optimizer fused.

Files (in --out, default: the checkpoint's folder/export):
  model.onnx             standalone QDQ graph, weights embedded (plain onnxruntime, TensorRT)
  model.compressed.onnx  the same graph without weight data, naming its sidecar and the sidecar's SHA-256
  model.compressed.<digest>.qsc
                         the integer weight levels, entropy-coded (format: docs/sidecar.md); the name carries a
                         digest of the content, so replacing the graph is the one step that switches the pair
  model.sig, model.compressed.sig
                         with --sign KEY: signatures of the standalone graph, and of the graph and its sidecar
                         (docs/signing.md); an export without --sign deletes the ones it would make stale

Examples:
  toolchain export runs/qat/last.pt
  toolchain export runs/qat/last.pt --out deploy --name lenet --no-sidecar
  toolchain export runs/qat/last.pt --sign signing-key.pem
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..exporting import UINT8_WEIGHTS_HELP
from .options import add_out_dir, add_trusted_model

HELP = "export a quantized checkpoint to QDQ ONNX (standalone + sidecar) and check it in onnxruntime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="quant-aware checkpoint written by `toolchain qat` (last.pt)")
    add_out_dir(p, "output folder (default: <checkpoint folder>/export)")
    p.add_argument("--name", default="model", help="file name stem of the artefacts (default: model)")
    p.add_argument("--no-sidecar", action="store_true", help="write only the standalone .onnx")
    p.add_argument("--data-dir", help="data set folder (default: the checkpoint's), used for the check batch")
    p.add_argument("--check-batch", type=int, default=64, help="test samples run for the agreement check (64)")
    p.add_argument(
        "--codecs",
        help="comma-separated weight codecs the sidecar may use (default: all; see docs/sidecar.md), e.g. huffman",
    )
    p.add_argument("--uint8-weights", action="store_true", help=UINT8_WEIGHTS_HELP)
    p.add_argument("--int8-weights", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    add_trusted_model(p)
    p.add_argument(
        "--sign",
        type=Path,
        metavar="KEY",
        help="sign the export with this elliptic-curve private key (PEM): <name>.sig beside the standalone graph, "
        "<name>.compressed.sig beside the pair; checked by verify/run/inspect --public-key and runtime.load "
        "(docs/signing.md; needs the sign extra)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")


def run(args: argparse.Namespace) -> int:
    from runtime.kernels import describe_kernels

    from ..exporting import export_checkpoint

    summary = export_checkpoint(
        args.checkpoint,
        args.out_dir,
        name=args.name,
        sidecar=not args.no_sidecar,
        data_dir=args.data_dir,
        check_batch=args.check_batch,
        codecs=tuple(c.strip() for c in args.codecs.split(",")) if args.codecs else None,
        trusted_model=args.model,
        uint8_weights=args.uint8_weights,
        sign=args.sign,
    )
    agreement, with_qat = summary["agreement"], summary["agreement_with_qat"]
    if args.json:
        keys = ("files", "weights", "integer_kernels", "float_kernels")
        print(
            json.dumps(
                {
                    **{k: summary[k] for k in keys},
                    "float_islands": summary["kernels"]["float_islands"],
                    "agreement": agreement.to_dict(),
                    "agreement_with_qat": with_qat.to_dict(),
                }
            )
        )
        return 0
    for path, size in summary["files"].items():
        print(f"{path:<48} {size / 1024:9.1f} KiB")
    print(f"weights: {summary['weights']:,} levels in {summary['tensors']} tensors")
    for label, a in (("the exported model in PyTorch", agreement), ("the quant-aware model", with_qat)):
        print(
            f"onnxruntime vs {label}: max {a.max_steps:.2f} output steps, "
            f"{100 * a.within_one:.2f}% of {a.elements:,} outputs within ±1"
        )
    print(describe_kernels(summary["kernels"]))
    return 0

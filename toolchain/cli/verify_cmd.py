"""Verify an exported model before deploying it: accuracy in onnxruntime next to PyTorch, agreement, localisation.

MODEL is a standalone .onnx or a graph with its sidecar (model.compressed.onnx). The data set defaults to the one
the model was trained on (recorded at export); --qat adds the quant-aware PyTorch model's accuracy and the
agreement in output steps, --float the float model's accuracy (a float checkpoint, or plain weights of the same
architecture) and, for classifiers, the top-1 agreement and logit SQNR of the export against it, image by image.
With --qat the export is also checked layer by layer: every activation quantizer of the PyTorch model of the export
computes its values from onnxruntime's own values upstream, and each must agree within ±1 step on --min-within-one
of them; a layer that computes something else is named. End to end, deep networks amplify flipped rounding ties
(float noise) until far fewer outputs agree, so that figure is reported next to its floor: the PyTorch model
against itself under a 1e-6 relative jitter. Exit status 1 when a threshold is missed.

Examples:
  toolchain verify runs/qat/export/model.compressed.onnx --qat runs/qat/last.pt --float runs/float/last.pt
  toolchain verify deploy/model.onnx --data fashion-mnist --json
  toolchain verify deploy/model.compressed.onnx --public-key signing-key.pub.pem
  toolchain verify runs/mbv2/export/model.compressed.onnx --data ~/imagenet --float mobilenet_v2-b0353104.pth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_containers, add_device, add_public_key, add_trusted_model

HELP = "accuracy and agreement of an exported model in onnxruntime vs PyTorch; non-zero exit on a missed threshold"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="exported .onnx (standalone, or graph naming its sidecar)")
    p.add_argument("--qat", type=Path, help="the quant-aware checkpoint the model was exported from")
    p.add_argument(
        "--float-checkpoint",
        "--float",
        dest="float_checkpoint",
        type=Path,
        help="the float model: a toolchain checkpoint or plain weights (state dict) of the exported architecture",
    )
    p.add_argument("--data", help="data set name (default: the model's)")
    p.add_argument("--data-dir", help="data set folder (default: the model's)")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    add_device(p, "onnxruntime")
    p.add_argument("--allow-cpu-fallback", action="store_true", help="run on CPU when CUDA is not available")
    # Defaults live in verify.Thresholds (the CLI does not import it at start-up); a test checks the help agrees.
    p.add_argument(
        "--max-drop",
        type=float,
        help="allowed top-1 (points; at least one image) or PSNR (dB) loss vs QAT (default: 0.1)",
    )
    p.add_argument(
        "--min-within-one",
        type=float,
        help="required share of each activation quantizer's values within ±1 step of the PyTorch model of the export "
        "computing it from onnxruntime's own inputs (default: 0.999)",
    )
    add_trusted_model(p, "with --qat/--float: ")
    add_containers(p)
    add_public_key(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from runtime import ToolchainError

    from ..verify import Thresholds, verify

    given = {"max_drop": args.max_drop, "min_within_one": args.min_within_one}
    thresholds = Thresholds(**{k: v for k, v in given.items() if v is not None})
    if args.batch_size < 1 or not 0 <= thresholds.min_within_one <= 1 or thresholds.max_drop < 0:
        raise ToolchainError("--batch-size must be ≥ 1, --min-within-one in [0, 1], --max-drop ≥ 0")
    report = verify(
        args.model,
        qat=args.qat,
        float_checkpoint=args.float_checkpoint,
        data=args.data,
        data_dir=args.data_dir,
        device=args.device,
        allow_fallback=args.allow_cpu_fallback,
        batch_size=args.batch_size,
        thresholds=thresholds,
        progress=not args.json,
        trusted_model=args.model,
        containers=args.containers,
        public_key=args.public_key,
    )
    if args.json:
        print(report.to_json())
        return 0 if report.ok else 1
    print(f"{report.model} on {report.data} ({report.task}), onnxruntime providers: {', '.join(report.providers)}")
    print(report.containers)
    keys = [k for k in ("top1", "top5", "psnr", "ssim") if k in report.metrics["onnxruntime"]]
    print(f"{'model':<14}" + "".join(f"{k:>10}" for k in keys) + f"{'n':>8}")
    for name, m in report.metrics.items():
        print(f"{name:<14}" + "".join(f"{m[k]:>10.3f}" for k in keys) + f"{int(m['n']):>8}")
    if report.float_agreement:
        fa = report.float_agreement
        print(
            f"onnxruntime vs float: top-1 agreement {100 * fa['top1_agreement']:.2f}% of {int(fa['n'])} images, "
            f"logit SQNR {fa['logit_sqnr_db']:.1f} dB"
        )
    for name, a in report.agreement.items():
        label = "PyTorch model of the export" if name == "export_reference" else "quant-aware model"
        print(
            f"agreement with the {label}: max {a['max_steps']:.2f} output steps, "
            f"{100 * a['within_one']:.2f}% of {a['elements']:,} within ±1"
        )
    if report.noise_floor:
        nf = report.noise_floor
        print(f"  end-to-end float noise floor (the PyTorch model against itself, 1e-6 jitter): max "
              f"{nf['max_steps']:.2f} steps, {100 * nf['within_one']:.2f}% within ±1")  # fmt: skip
    if report.near_ties:
        print(f"  top-1: {report.near_ties} of the images ranked differently are near ties the quant-aware model "
              "itself ranks differently under a 1e-6 jitter (float noise; allowed)")  # fmt: skip
    if report.layers:
        worst = min(report.layers, key=lambda r: r["within_one"])
        print(
            f"layer by layer ({len(report.layers)} quantizers, each from onnxruntime's own inputs): worst "
            f"{worst['quantizer']}, max {worst['max_steps']:.2f} steps, {100 * worst['within_one']:.3f}% within ±1"
        )
        for row in report.layers:
            if row["within_one"] < thresholds.min_within_one:
                print(f"  {row['quantizer']:<40} max {row['max_steps']:6.2f} steps, "
                      f"{100 * row['within_one']:7.3f}% within ±1")  # fmt: skip
    for failure in report.failures:
        print(f"FAILED: {failure}")
    print("OK" if report.ok else "NOT OK")
    return 0 if report.ok else 1

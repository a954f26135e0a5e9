"""Export a quantized checkpoint to QDQ ONNX: a standalone graph and a graph + compressed-weight sidecar.

The checkpoint must come from `toolchain qat` (use --epochs 0 there for post-training quantization). The export
runs one test batch through onnxruntime and reports its agreement, in output steps, with the PyTorch model of the
export (batch norm folded, bias rounded to int32) and with the quant-aware model; and it counts the integer
kernels onnxruntime's optimizer fused.

Files (in --out, default: the checkpoint's folder/export):
  model.onnx             standalone QDQ graph, weights embedded (plain onnxruntime, TensorRT)
  model.compressed.onnx  the same graph without weight data, naming its sidecar and the sidecar's SHA-256
  model.compressed.qsc   the int8 weight levels, entropy-coded (format: docs/sidecar.md)

Examples:
  toolchain export runs/qat/last.pt
  toolchain export runs/qat/last.pt --out deploy --name lenet --no-sidecar
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from runtime import ToolchainError

HELP = "export a quantized checkpoint to QDQ ONNX (standalone + sidecar) and check it in onnxruntime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="quant-aware checkpoint written by `toolchain qat` (last.pt)")
    p.add_argument("--out", type=Path, help="output folder (default: <checkpoint folder>/export)")
    p.add_argument("--name", default="model", help="file name stem of the artefacts (default: model)")
    p.add_argument("--no-sidecar", action="store_true", help="write only the standalone .onnx")
    p.add_argument("--data-dir", help="data set folder (default: the checkpoint's), used for the check batch")
    p.add_argument("--check-batch", type=int, default=64, help="test samples run for the agreement check (64)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort
    import torch
    import torch.fx as fx

    from exporters import export_model
    from exporters.reference import folded_model
    from runtime.kernels import classify_kernels, describe_kernels, optimized_graph

    from ..agreement import compare, output_step
    from ..training.restore import restore

    if args.check_batch < 1:
        raise ToolchainError(f"--check-batch must be at least 1, got {args.check_batch}")
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise ToolchainError(f"--name must be a plain file name stem, got {args.name!r}")
    restored = restore(args.checkpoint, data_dir=args.data_dir)
    if restored.recipe != "qat":
        raise ToolchainError(
            f"{args.checkpoint} is a {restored.recipe} checkpoint; quantize it first with "
            f"`toolchain qat --float-checkpoint {args.checkpoint}` (--epochs 0 for post-training quantization)"
        )
    model = restored.model
    assert isinstance(model, fx.GraphModule)
    x = next(iter(restored.bundle.test.batches(args.check_batch)))[0]
    out = args.out or args.checkpoint.parent / "export"
    bundle = restored.bundle
    config = {
        "checkpoint_config": restored.config.to_dict(),
        "recipe": restored.recipe,
        "stem": args.name,
        "task": bundle.task,
        "class_names": list(bundle.class_names),
        "preprocess": bundle.preprocess,
    }
    result = export_model(model, x, out, args.name, config, sidecar=not args.no_sidecar)

    session = ort.InferenceSession(str(result.standalone), providers=["CPUExecutionProvider"])
    candidate = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        folded, qat = folded_model(model, result.built)(x).numpy(), model(x).numpy()
    step = output_step(model)
    agreement, with_qat = compare(folded, candidate, step), compare(qat, candidate, step)
    kernels = classify_kernels(optimized_graph(result.standalone))
    summary: dict[str, Any] = {
        "files": {str(p): p.stat().st_size for p in (result.standalone, result.graph, result.sidecar) if p},
        "weights": sum(w.levels.size for w in result.weights),
        "agreement": agreement.to_dict(),
        "agreement_with_qat": with_qat.to_dict(),
        "integer_kernels": kernels["integer"],
        "float_kernels": kernels["float"],
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    for path, size in summary["files"].items():
        print(f"{path:<48} {size / 1024:9.1f} KiB")
    print(f"weights: {summary['weights']:,} levels in {len(result.weights)} tensors")
    for label, a in (("the exported model in PyTorch", agreement), ("the quant-aware model", with_qat)):
        print(
            f"onnxruntime vs {label}: max {a.max_steps:.2f} output steps, "
            f"{100 * a.within_one:.2f}% of {a.elements:,} outputs within ±1"
        )
    print(describe_kernels(kernels))
    return 0

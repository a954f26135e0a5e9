"""Evaluate a checkpoint (or plain weights) on a data set: top-1/top-5 for classifiers, PSNR for SR models.

A toolchain checkpoint (last.pt) knows its model and data set; --data/--data-dir override them. Plain state dicts
(e.g. torchvision's ImageNet weights) need --model and --weights.

Examples:
  toolchain eval runs/demo/last.pt
  toolchain eval --model mobilenet_v2 --weights mobilenet_v2-b0353104.pth --data image-folder --data-dir ~/imagenet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime import ToolchainError

from .options import add_device, add_trusted_model

HELP = "top-1/top-5 (or PSNR) of a checkpoint on a data set; table or --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", type=Path, help="toolchain checkpoint (last.pt)")
    add_trusted_model(p, "registry model name or package.module:function (with --weights); with a checkpoint: ")
    p.add_argument("--weights", type=Path, help="plain state dict or checkpoint to load into --model")
    p.add_argument("--data", help="data set name (default: the checkpoint's)")
    p.add_argument("--data-dir", help="data set folder (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    add_device(p, "PyTorch")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..modeling import build_model, load_weights
    from ..restore import restore
    from ..training import evaluate, load_bundle
    from ..training.distributed import resolve_device

    if args.batch_size < 1:
        raise ToolchainError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.checkpoint is not None:
        restored = restore(args.checkpoint, trusted_model=args.model, data=args.data, data_dir=args.data_dir)
        config, bundle, model = restored.config, restored.bundle, restored.model
    elif args.model and args.weights:
        config = TrainConfig(model=args.model, data=args.data or "digits", data_dir=args.data_dir)
        bundle = load_bundle(config)
        model = load_weights(build_model(config.model, bundle, config.model_args), args.weights)
    else:
        raise ToolchainError("give a checkpoint, or --model and --weights")
    device = resolve_device(args.device)
    metrics = evaluate(model.to(device), bundle.test, bundle.task, device, args.batch_size, progress=True)
    result: dict[str, object] = {"model": config.model, "data": config.data, **metrics}
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0

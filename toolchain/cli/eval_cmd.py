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

HELP = "top-1/top-5 (or PSNR) of a checkpoint on a data set; table or --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", type=Path, help="toolchain checkpoint (last.pt)")
    p.add_argument("--model", help="registry model name (with --weights)")
    p.add_argument("--weights", type=Path, help="plain state dict or checkpoint to load into --model")
    p.add_argument("--data", help="data set name (default: the checkpoint's)")
    p.add_argument("--data-dir", help="data set folder (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="compute device")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..modeling import build_model, load_weights
    from ..quant import qat  # noqa: F401 - registers the "qat" recipe
    from ..training import evaluate, load_bundle, load_checkpoint
    from ..training.distributed import DistEnv, resolve_device
    from ..training.recipe import RECIPES, Recipe

    recipe_cls: type[Recipe] = Recipe
    if args.checkpoint is not None:
        ckpt = load_checkpoint(args.checkpoint)
        recipe_cls = RECIPES[ckpt.get("recipe", "float")]
        config = recipe_cls.config_class.from_dict(ckpt["config"])
        state = ckpt["model"]
    elif args.model and args.weights:
        config, state = TrainConfig(model=args.model, data=args.data or "digits"), None
    else:
        raise ToolchainError("give a checkpoint, or --model and --weights")
    config = config.replace(data=args.data or config.data, data_dir=args.data_dir or config.data_dir, subset=None)
    bundle = load_bundle(config)
    device = resolve_device(args.device)
    if state is None:
        model = load_weights(build_model(config.model, bundle, config.model_args), args.weights)
    else:  # rebuild the model the way its training phase did (e.g. prepare_qat), then load its state
        model = recipe_cls(config, float_weights=False).build(bundle, DistEnv(0, 1, 0, device))
        model.load_state_dict(state)
    metrics = evaluate(model.to(device), bundle.test, bundle.task, device, args.batch_size, progress=True)
    result: dict[str, object] = {"model": config.model, "data": config.data, **metrics}
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0

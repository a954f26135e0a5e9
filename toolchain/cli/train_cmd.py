"""Float training of a registry model on a data set.

Options come from a TOML/JSON file (--config) and/or the command line (command line wins). Outputs in --out-dir:
config.toml (the exact configuration), metrics.jsonl (step and epoch records), last.pt (resumable checkpoint).
Run under `torchrun --nproc_per_node=N -m toolchain train ...` for DistributedDataParallel.

Example:
  toolchain train --model mobilenet_v2_small --data fashion-mnist --epochs 15 --out-dir runs/mbv2
"""

from __future__ import annotations

import argparse
import json

from ..config import TrainConfig, add_config_arguments, config_from_args

HELP = "train a float model (resumable, distributed under torchrun)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt if it exists")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the final result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..training import train

    config = config_from_args(TrainConfig, args)
    assert isinstance(config, TrainConfig)
    result = train(config, resume=args.resume, progress=args.progress)
    if result["rank"] != 0:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k}={result[k]:.2f}" for k in ("top1", "top5", "psnr") if k in result)
        print(f"{config.model} on {config.data}: {metrics} ({result['wall_s']:.1f} s) -> {result['out_dir']}")
    return 0

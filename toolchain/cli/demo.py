"""The main job on the embedded default: train LeNet-5 on scikit-learn's digits and evaluate it.

Needs no data set-up. Outputs land in --out-dir (config.toml, metrics.jsonl, last.pt).
"""

from __future__ import annotations

import argparse

HELP = "the main job on the embedded digits data (no set-up needed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=30, help="float training epochs (default: 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..training import train

    config = TrainConfig(out_dir=f"{args.out_dir}/float", epochs=args.epochs, seed=args.seed)
    print(f"[1/1] float training: {config.model} on {config.data}, {config.epochs} epochs")
    result = train(config)
    print()
    print("| stage | model | data | top-1 % | top-5 % | wall s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| float | {config.model} | {config.data} | {result['top1']:.2f} | {result['top5']:.2f} "
        f"| {result['wall_s']:.1f} |"
    )
    return 0

"""Quant-aware training from a float checkpoint with the learnable MSQE regularizer (or its baselines).

n-bit weights (--wbits; 2 = ternary) and m-bit activations (--abits) through Brevitas layers; the first and last
weighted layers keep --first-wbits/--last-wbits. --reg msqe adds e^α·R_n − λ·α with a learnable α, --reg fixed
freezes α at its balance value, --reg none is plain QAT. --epochs 0 is post-training quantization (calibration
only). Outputs in --out-dir: config.toml, metrics.jsonl (α, e^α, R_n, task loss per step; top-1 and the share of
weights within δ/10 of a level per epoch), last.pt, convergence.png, weights.png.

Example:
  toolchain qat --model mobilenet_v2_small --model-args width_mult=0.5 --data fashion-mnist \\
      --float-checkpoint runs/float/mbv2/last.pt --wbits 2 --abits 8 --reg msqe --lam 0.1 --epochs 3
"""

from __future__ import annotations

import argparse
import json

from ..config import add_config_arguments, config_from_args

HELP = "quant-aware training with the learnable MSQE regularizer (or post-training quantization)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..quant.qat import QATConfig

    add_config_arguments(p, QATConfig)
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt if it exists")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the final result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..quant.qat import QATConfig, QATRecipe
    from ..training import train

    config = config_from_args(QATConfig, args)
    assert isinstance(config, QATConfig)
    result = train(config, resume=args.resume, progress=args.progress, recipe=QATRecipe(config))
    if result["rank"] != 0:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k}={result[k]:.2f}" for k in ("top1", "top5", "psnr") if k in result)
        print(
            f"{config.model} W{config.wbits}A{config.abits} reg={config.reg}: {metrics}, "
            f"{100 * result['near_level_share']:.1f}% of weights within δ/10 of a level "
            f"({result['wall_s']:.1f} s) -> {result['out_dir']}"
        )
    return 0

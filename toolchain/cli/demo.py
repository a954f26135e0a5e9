"""The main job on the embedded default (scikit-learn's digits, no set-up needed):

  1. float training of LeNet-5;
  2. post-training quantization to W4A8 (calibration only), the baseline QAT must beat;
  3. quant-aware training at W4A8 with the learnable MSQE regularizer, from the float checkpoint;

then a table of accuracies. Outputs land in --out-dir/{float,ptq,qat} (config.toml, metrics.jsonl, last.pt, and the
QAT run's convergence.png / weights.png). Later milestones add pruning, compression, export and verification.
"""

from __future__ import annotations

import argparse

HELP = "the main job on the embedded digits data (no set-up needed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=30, help="float training epochs (default: 30)")
    p.add_argument("--qat-epochs", type=int, default=5, help="quant-aware training epochs (default: 5)")
    p.add_argument("--wbits", type=int, default=4, help="weight bits of the inner layers (default: 4)")
    p.add_argument("--abits", type=int, default=8, help="activation bits (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..quant.qat import QATConfig, QATRecipe
    from ..training import train

    out = args.out_dir
    float_cfg = TrainConfig(out_dir=f"{out}/float", epochs=args.epochs, seed=args.seed)
    print(f"[1/3] float training: {float_cfg.model} on {float_cfg.data}, {float_cfg.epochs} epochs")
    rows = [("float", "32/32", train(float_cfg))]
    quant = dict(
        float_checkpoint=f"{out}/float/last.pt", wbits=args.wbits, abits=args.abits, seed=args.seed, lam=1.0, lr=0.01
    )
    ptq = QATConfig(out_dir=f"{out}/ptq", epochs=0, **quant)
    print(f"[2/3] post-training quantization W{args.wbits}A{args.abits} (calibration only)")
    rows.append(("PTQ", f"{args.wbits}/{args.abits}", train(ptq, recipe=QATRecipe(ptq))))
    qat = QATConfig(out_dir=f"{out}/qat", epochs=args.qat_epochs, reg="msqe", **quant)
    print(f"[3/3] quant-aware training W{args.wbits}A{args.abits}, learnable MSQE (λ={qat.lam:g}), {qat.epochs} epochs")
    rows.append(("QAT + MSQE", f"{args.wbits}/{args.abits}", train(qat, recipe=QATRecipe(qat))))
    print()
    print("| stage | bits (w/a) | top-1 % | top-5 % | weights within δ/10 of a level | wall s |")
    print("|---|---|---|---|---|---|")
    for name, bits, r in rows:
        share = f"{100 * r['near_level_share']:.1f} %" if "near_level_share" in r else "–"
        print(f"| {name} | {bits} | {r['top1']:.2f} | {r['top5']:.2f} | {share} | {r['wall_s']:.1f} |")
    print(f"\nplots: {out}/qat/convergence.png, {out}/qat/weights.png")
    return 0

"""Low-precision accuracy grid: every (bits, regularizer, seed) cell from the same float checkpoint.

Each cell is one `toolchain qat` run (same data subset, epochs and seed across regularizers); results are appended
to a JSON file as they finish, so an interrupted grid can be continued with the same command (finished cells are
skipped). Prints a Markdown table at the end.

Example (BENCHMARKS.md):
  python benchmarks/qat_grid.py --float runs/float/mbv2_w05_fmnist/last.pt --model mobilenet_v2_small \
      --model-args width_mult=0.5 --data fashion-mnist --bits W8A8 W4A8 W3A8 W2A8 W4A4 \
      --regs none fixed msqe --subset 10000 --epochs 1 --out runs/qat_grid/mbv2 --json benchmarks/qat_mbv2.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path


def parse_bits(cell: str) -> tuple[int, int]:
    m = re.fullmatch(r"W(\d)A(\d)", cell)
    if not m:
        raise SystemExit(f"bits must look like W4A8, got {cell!r}")
    return int(m.group(1)), int(m.group(2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--float", required=True, dest="float_ckpt", help="float checkpoint every cell starts from")
    p.add_argument("--model", required=True)
    p.add_argument("--model-args", nargs="*", default=[])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--bits", nargs="+", default=["W4A8"])
    p.add_argument("--regs", nargs="+", default=["none", "msqe"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", required=True, help="folder for the runs")
    p.add_argument("--json", required=True, help="results file (appended, resumable)")
    args = p.parse_args()

    results_path = Path(args.json)
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {(r["bits"], r["reg"], r["seed"]) for r in results}
    for cell in args.bits:
        wbits, abits = parse_bits(cell)
        for seed in args.seeds:
            for reg in args.regs:
                if (cell, reg, seed) in done:
                    continue
                out = Path(args.out) / f"{cell}_{reg}_s{seed}"
                cmd = [
                    sys.executable,
                    "-m",
                    "toolchain",
                    "qat",
                    "--model",
                    args.model,
                    "--data",
                    args.data,
                    "--float-checkpoint",
                    args.float_ckpt,
                    "--wbits",
                    str(wbits),
                    "--abits",
                    str(abits),
                    "--reg",
                    reg,
                    "--lam",
                    str(args.lam),
                    "--lr",
                    str(args.lr),
                    "--epochs",
                    str(args.epochs),
                    "--batch-size",
                    str(args.batch_size),
                    "--seed",
                    str(seed),
                    "--log-every",
                    "10",
                    "--no-progress",
                    "--json",
                    "--out-dir",
                    str(out),
                ]
                for kv in args.model_args:
                    cmd += ["--model-args", kv]
                if args.subset:
                    cmd += ["--subset", str(args.subset)]
                start = time.time()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return proc.returncode
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                row = {
                    "bits": cell,
                    "reg": reg,
                    "seed": seed,
                    "top1": r["top1"],
                    "near_level_share": r["near_level_share"],
                    "wall_s": round(time.time() - start, 1),
                    "epochs": args.epochs,
                    "subset": args.subset,
                    "lam": args.lam,
                    "model": args.model,
                }
                results.append(row)
                results_path.write_text(json.dumps(results, indent=1))
                print(json.dumps(row), flush=True)
    print(table(results))
    return 0


def table(results: list[dict]) -> str:
    regs = sorted({r["reg"] for r in results}, key=["none", "fixed", "msqe"].index)
    lines = ["| bits | " + " | ".join(f"{r} top-1 %" for r in regs) + " |", "|---" * (len(regs) + 1) + "|"]
    for cell in dict.fromkeys(r["bits"] for r in results):
        row = []
        for reg in regs:
            vals = [r["top1"] for r in results if r["bits"] == cell and r["reg"] == reg]
            if not vals:
                row.append("–")
            elif len(vals) == 1:
                row.append(f"{vals[0]:.2f}")
            else:
                mean = sum(vals) / len(vals)
                spread = (max(vals) - min(vals)) / 2
                row.append(f"{mean:.2f} ± {spread:.2f} (n={len(vals)})")
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Low-precision accuracy grid: every (bits, regularizer, seed) cell from the same float checkpoint.

Each cell is one `toolchain qat` run (same data subset, epochs and seed across regularizers); results are appended
to a JSON file as they finish, so an interrupted grid can be continued with the same command (finished cells are
skipped). Prints a Markdown table at the end; ``--report FILE ...`` prints the table of finished results only.

Example (BENCHMARKS.md):
  python benchmarks/qat_grid.py --float runs/float/mbv2_w05_fmnist/last.pt --model mobilenet_v2_small \
      --model-args width_mult=0.5 --data fashion-mnist --bits W8A8 W4A8 W3A8 W2A8 W4A4 \
      --regs none fixed msqe --subset 10000 --epochs 1 --out runs/qat_grid/mbv2 --json benchmarks/qat_mbv2.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import EARLIER_QAT_FLAGS


def parse_bits(cell: str) -> tuple[int, int]:
    m = re.fullmatch(r"W(\d)A(\d)", cell)
    if not m:
        raise SystemExit(f"bits must look like W4A8, got {cell!r}")
    return int(m.group(1)), int(m.group(2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", nargs="+", type=Path, help="only print the table of these results files, run nothing")
    p.add_argument("--float", dest="float_ckpt", help="float checkpoint every cell starts from")
    p.add_argument("--model")
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
    p.add_argument("--out", help="folder for the runs")
    p.add_argument("--json", help="results file (appended, resumable)")
    args = p.parse_args()
    if args.report:
        print(table([row for path in args.report for row in json.loads(path.read_text())]))
        return 0
    required = {"float_ckpt": "--float", "model": "--model", "out": "--out", "json": "--json"}
    missing = [flag for dest, flag in required.items() if getattr(args, dest) is None]
    if missing:
        p.error(f"a grid run needs {', '.join(missing)}")

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
                    *EARLIER_QAT_FLAGS,
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
    """Markdown table, one row per (model, bits, λ, epochs), one column per regularizer.

    Each cell is ``mean ± sd (n)`` of top-1 over the seeds (sample standard deviation, n − 1), then the mean share
    of weights within δ/10 of their level; a last column gives learnable MSQE minus plain QAT, mean over seeds.
    """
    regs = [r for r in ("none", "fixed", "msqe") if any(row["reg"] == r for row in results)]
    columns = ["model", "bits", "λ", "epochs", *(f"{r}: top-1 % / near level" for r in regs), "msqe − none"]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    # `none` has no λ: its cells join every λ row of the same (model, bits, epochs), or stand alone without one
    penalised = dict.fromkeys((r["model"], r["bits"], r["epochs"], r["lam"]) for r in results if r["reg"] != "none")
    plain = dict.fromkeys((r["model"], r["bits"], r["epochs"], None) for r in results if r["reg"] == "none")
    keys = list(penalised) + [k for k in plain if not any(p[:3] == k[:3] for p in penalised)]
    for model, bits, epochs, lam in keys:
        means: dict[str, float] = {}
        row = []
        for reg in regs:
            cells = [
                r
                for r in results
                if (r["model"], r["bits"], r["epochs"], r["reg"]) == (model, bits, epochs, reg)
                and (reg == "none" or r["lam"] == lam)
            ]
            if not cells:
                row.append("–")
                continue
            top1 = [r["top1"] for r in cells]
            means[reg] = statistics.fmean(top1)
            near = statistics.fmean(r["near_level_share"] for r in cells)
            sd = f" ± {statistics.stdev(top1):.2f}" if len(top1) > 1 else ""
            row.append(f"{means[reg]:.2f}{sd} ({len(top1)}) / {100 * near:.0f} %")
        gap = f"{means['msqe'] - means['none']:+.2f}" if {"msqe", "none"} <= means.keys() else "–"
        lam_text = "–" if lam is None else f"{lam:g}"
        lines.append(f"| {model} | {bits} | {lam_text} | {epochs} | " + " | ".join(row) + f" | {gap} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

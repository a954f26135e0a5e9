"""`toolchain qat` with its defaults, as a new user runs it (issue: qat defaults that cannot collapse).

The issue's setting: LeNet-5 on the first 12,800 Fashion-MNIST training images, 2 float epochs at lr 0.05, then
`toolchain qat --wbits 2 --abits 8 --epochs 3` with every other option at its default, under each regularizer:
`--reg none` (also with the regularizer's step rule, `--step-rule refit`), `--reg msqe --lam 1`, `--reg msqe --lam
10`, `--reg fixed --lam 10` and, for reference, the combination the earlier defaults used (α at balance moved by the
optimizer, task-learned steps), over several seeds. Top-1 on the 10,000 test images. Nothing is chosen here: the
defaults come from the settling experiment, which chose on held-out training images.

Each arm runs as its own `toolchain qat` process (two at a time with one thread each); finished cells in the
JSONL file are skipped. `--report` prints the table.

  PYTHONPATH=. .venv/bin/python benchmarks/qat_defaults.py --out runs/qat_defaults \\
      --json benchmarks/results/qat_defaults.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COMMON = ["--model", "lenet5", "--data", "fashion-mnist", "--subset", "12800"]
# The defaults before config version 3: α at balance in the main optimizer, steps learned from the task loss.
EARLIER = ["--alpha-update", "optimizer", "--alpha-start", "0", "--step-rule", "task"]
ARMS: dict[str, list[str]] = {
    "none": ["--reg", "none"],
    "none, refit": ["--reg", "none", "--step-rule", "refit"],  # the fair plain arm: the regularizer's step rule
    "msqe λ=1": ["--reg", "msqe", "--lam", "1"],
    "msqe λ=10": ["--reg", "msqe", "--lam", "10"],
    "fixed λ=10": ["--reg", "fixed", "--lam", "10"],
    "msqe λ=10, earlier defaults": ["--reg", "msqe", "--lam", "10", *EARLIER],
}


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def float_checkpoint(out: Path) -> Path:
    ckpt = out / "float" / "last.pt"
    if not ckpt.exists():
        _run([sys.executable, "-m", "toolchain", "train", *COMMON, "--epochs", "2", "--lr", "0.05",
              "--out-dir", str(out / "float"), "--no-progress", "--json"])  # fmt: skip
    return ckpt


def run_arm(out: Path, ckpt: Path, arm: str, seed: int) -> dict:
    folder = out / f"{arm.replace(' ', '').replace(',', '_').replace('=', '')}_s{seed}"
    cmd = [sys.executable, "-m", "toolchain", "qat", "--float-checkpoint", str(ckpt), "--data", "fashion-mnist",
           "--subset", "12800", "--wbits", "2", "--abits", "8", "--epochs", "3", "--seed", str(seed),
           "--out-dir", str(folder), "--no-progress", "--json", *ARMS[arm]]  # fmt: skip
    start = time.time()
    result = _run(cmd)
    return {"arm": arm, "seed": seed, "top1": result["top1"], "near_level_share": result["near_level_share"],
            "wall_s": time.time() - start, "command": " ".join(cmd[2:])}  # fmt: skip


def report(rows: list[dict]) -> str:
    base = [r["top1"] for r in rows if r["arm"] == "none"]
    lines = ["| arm (`toolchain qat --wbits 2 --abits 8 --epochs 3` + …) | top-1 % (mean ± sd) | seeds | "
             "near level | vs `--reg none` |", "|---|---|---|---|---|"]  # fmt: skip
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        if not rs:
            continue
        top = [r["top1"] for r in rs]
        sd = statistics.stdev(top) if len(top) > 1 else 0.0
        gap = f"{statistics.mean(top) - statistics.mean(base):+.2f}" if base and arm != "none" else "–"
        near = statistics.mean(r["near_level_share"] for r in rs)
        lines.append(
            f"| {' '.join(ARMS[arm])} | {statistics.mean(top):.2f} ± {sd:.2f} | {len(rs)} | {near:.0%} | {gap} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/qat_defaults"), help="run folders")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/qat_defaults.jsonl"), help="results file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--report", action="store_true", help="print the table of --json and run nothing")
    args = p.parse_args()
    rows = [json.loads(x) for x in args.json.read_text().splitlines()] if args.json.exists() else []
    if not args.report:
        start = time.time()
        ckpt = float_checkpoint(args.out)
        done = {(r["arm"], r["seed"]) for r in rows}
        todo = [(a, s) for a in args.arms for s in args.seeds if (a, s) not in done]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            for row in pool.map(lambda cell: run_arm(args.out, ckpt, *cell), todo):
                rows.append(row)
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{row['arm']} seed {row['seed']}: {row['top1']:.2f} % ({row['wall_s']:.0f} s)", file=sys.stderr)
        print(f"wall time {time.time() - start:.0f} s", file=sys.stderr)
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

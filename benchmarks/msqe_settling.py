"""The settling experiment of the learnable MSQE regularizer (issue: MSQE dynamics): does the regularizer beat plain
quant-aware training once its coefficient rises from below balance and its steps cannot collapse?

Arms differ only in ``toolchain qat`` flags (``ARMS``). Every plain arm uses the same step rule as the regularizer
arms it is compared with, so that only the regularizer differs. Two stages, each resumable (finished runs in the
JSONL file are skipped):

* ``select`` – one seed, every regularizer arm at every λ of ``--lams`` (and each plain arm once, as the reference),
  trained on the training set minus its last 10,000 images and scored on those 10,000 (``--data-args
  holdout=10000``); the test set is never read.
* ``final``  – every arm at its selected λ (the best held-out top-1 of that arm), trained on the full training set,
  scored on the test set, one run per seed.

``--report`` prints both stages as Markdown: mean ± sd over seeds, and for each regularizer arm its difference from
the plain arm with the same step rule, marked a benefit when it is ≥ 0.5 point and more than twice the pooled sd.

Example (BENCHMARKS.md):
  python benchmarks/msqe_settling.py --float runs/msqe/float_lenet5/last.pt --model lenet5 --wbits 2 \\
      --epochs 5 --stage select final --seeds 0 1 2 --out runs/msqe/lenet5_w2 \\
      --json benchmarks/results/msqe_lenet5_w2.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

HOLDOUT = 10000
RISE = ["--reg", "msqe", "--alpha-update", "rise", "--alpha-start", "4.6"]  # α from 1 % of balance, rising

# name -> (flags, the plain arm it is compared with or None for a plain arm)
ARMS: dict[str, tuple[list[str], str | None]] = {
    "plain-task": (["--reg", "none", "--step-rule", "task"], None),
    "plain-refit": (["--reg", "none", "--step-rule", "refit"], None),
    "plain-msqe": (["--reg", "none", "--step-rule", "msqe"], None),
    "balance-task": (
        ["--reg", "msqe", "--alpha-update", "optimizer", "--alpha-start", "0", "--step-rule", "task"],
        "plain-task",
    ),
    "rise-task": ([*RISE, "--step-rule", "task"], "plain-task"),
    "rise-refit": ([*RISE, "--step-rule", "refit"], "plain-refit"),
    "rise-msqe": ([*RISE, "--step-rule", "msqe"], "plain-msqe"),
}


def run_arm(args: argparse.Namespace, arm: str, lam: float | None, seed: int, stage: str) -> dict:
    tag = f"{stage}_{arm}" + (f"_lam{lam:g}" if lam is not None else "") + f"_s{seed}"
    out = Path(args.out) / tag
    flags, _ = ARMS[arm]
    cmd = [sys.executable, "-m", "toolchain", "qat", "--model", args.model, "--data", args.data,
           "--float-checkpoint", args.float_ckpt, "--wbits", str(args.wbits), "--abits", str(args.abits),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--seed", str(seed), "--out-dir", str(out), "--no-progress", "--json", *flags, *args.extra]  # fmt: skip
    if lam is not None:
        cmd += ["--lam", str(lam)]
    if stage == "select":
        cmd += ["--data-args", f"holdout={HOLDOUT}"]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tag} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"phase": "eval"' in x]
    last = evals[-1]
    return {
        "stage": stage, "arm": arm, "lam": lam, "seed": seed, "wbits": args.wbits, "abits": args.abits,
        "model": args.model, "epochs": args.epochs, "steps": result["steps"], "top1": result["top1"],
        "near_level_share": last.get("near_level_share"), "alpha": last.get("alpha"),
        "alpha_stopped_step": last.get("alpha_stopped_step"), "alpha_capped_steps": last.get("alpha_capped_steps"),
        "step_ratio_median": last.get("step_ratio_median"), "step_ratio_min": last.get("step_ratio_min"),
        "norm_ratio_median": last.get("norm_ratio_median"), "wall_s": time.time() - start, "out_dir": str(out),
    }  # fmt: skip


def selected_lams(rows: list[dict]) -> dict[str, float]:
    """Each regularizer arm's λ with the best held-out top-1 (stage ``select``)."""
    best: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r["stage"] != "select" or r["lam"] is None:
            continue
        if r["arm"] not in best or r["top1"] > best[r["arm"]][1]:
            best[r["arm"]] = (r["lam"], r["top1"])
    return {arm: lam for arm, (lam, _) in best.items()}


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def report(rows: list[dict]) -> str:
    unique: dict[tuple, dict] = {}
    for r in rows:  # two processes may have run the same cell: the first result counts
        unique.setdefault((r["stage"], r["arm"], r["lam"], r["seed"]), r)
    rows = list(unique.values())
    lines = ["Stage select (held-out top-1 %, seed 0; λ chosen per arm):", "",
             "| arm | λ | held-out top-1 % | near level | α end | α stopped at step |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    order = list(ARMS)
    for r in sorted((r for r in rows if r["stage"] == "select"), key=lambda r: (order.index(r["arm"]), r["lam"] or 0)):
        lam = "–" if r["lam"] is None else f"{r['lam']:g}"
        alpha = "–" if r["arm"].startswith("plain") else f"{r['alpha']:.2f}"
        stopped = r["alpha_stopped_step"] if r["alpha_stopped_step"] is not None else "–"
        lines.append(f"| {r['arm']} | {lam} | {r['top1']:.2f} | {r['near_level_share']:.0%} | {alpha} | {stopped} |")
    final = [r for r in rows if r["stage"] == "final"]
    cells: dict[str, list[dict]] = {}
    for r in final:
        cells.setdefault(r["arm"], []).append(r)
    lines += ["", "Stage final (test top-1 %, mean ± sd over seeds):", "",
              "| arm | λ | top-1 % | seeds | near level | δ/δ₀ median (min) | ‖w‖/‖w₀‖ | vs plain (same step rule) |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in ARMS:
        if arm not in cells:
            continue
        rs = cells[arm]
        mean, sd = stats([r["top1"] for r in rs])
        versus = "–"
        base = ARMS[arm][1]
        if base in cells:
            bmean, bsd = stats([r["top1"] for r in cells[base]])
            diff = mean - bmean
            pooled = math.sqrt((sd**2 + bsd**2) / 2) if not (math.isnan(sd) or math.isnan(bsd)) else math.nan
            benefit = diff >= 0.5 and diff > 2 * pooled
            versus = f"{diff:+.2f} (pooled sd {pooled:.2f}){' **benefit**' if benefit else ''}"
        lam = rs[0]["lam"]
        lines.append(
            f"| {arm} | {'–' if lam is None else f'{lam:g}'} | {mean:.2f} ± {sd:.2f} | {len(rs)} | "
            f"{statistics.fmean(r['near_level_share'] for r in rs):.0%} | "
            f"{statistics.fmean(r['step_ratio_median'] for r in rs):.3f} "
            f"({min(r['step_ratio_min'] for r in rs):.3f}) | "
            f"{statistics.fmean(r['norm_ratio_median'] for r in rs):.3f} | {versus} |"
        )
    walls = [r["wall_s"] for r in rows]
    lines += [
        "",
        f"{len(rows)} runs, {sum(walls) / 60:.0f} min of run time in all ({min(walls):.0f}–{max(walls):.0f} s each).",
    ]
    return "\n".join(lines)


def plot_collapse(rows: list[dict], lam: float, path: Path) -> Path:
    """Per epoch of the ``select`` runs at ``lam``, one line per arm: the steps against their start (δ/δ₀ of the
    layer with the smallest median) and held-out top-1. The step collapse under the task rule, and its absence under
    refit and msqe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_step, ax_top) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        if r["stage"] != "select" or r["lam"] != lam:
            continue
        lines = (Path(r["out_dir"]) / "metrics.jsonl").read_text().splitlines()
        evals = [json.loads(x) for x in lines if '"phase": "eval"' in x]
        epochs = [e["epoch"] for e in evals]
        ax_step.plot(epochs, [e["step_ratio_min"] for e in evals], marker="o", label=r["arm"])
        ax_top.plot(epochs, [e["top1"] for e in evals], marker="o", label=r["arm"])
    ax_step.set(
        yscale="log",
        xlabel="epoch",
        ylabel="δ/δ₀, the layer with the smallest median",
        title=f"weight steps, λ = {lam:g}",
    )
    ax_top.set(xlabel="epoch", ylabel="held-out top-1 %", title=f"accuracy, λ = {lam:g}")
    for ax in (ax_step, ax_top):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", nargs="+", type=Path, help="only print the tables of these results files")
    p.add_argument("--plot", type=Path, help="with --report: also draw the step-collapse figure at --plot-lam here")
    p.add_argument("--plot-lam", type=float, default=10.0)
    p.add_argument("--float", dest="float_ckpt")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--wbits", type=int, default=2)
    p.add_argument("--abits", type=int, default=8)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--lams", nargs="+", type=float, default=[0.1, 1.0, 10.0])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--stage", nargs="+", default=["select", "final"], choices=["select", "final"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--extra", nargs="*", default=[], help="further `toolchain qat` flags for every run")
    p.add_argument("--out", default="runs/msqe_settling")
    p.add_argument("--json", type=Path, help="results file (JSONL, appended, resumable)")
    args = p.parse_args()
    if args.report:
        rows = [json.loads(x) for path in args.report for x in path.read_text().splitlines() if x.strip()]
        print(report(rows))
        if args.plot:
            print(f"figure: {plot_collapse(rows, args.plot_lam, args.plot)}")
        return 0
    if not (args.float_ckpt and args.json):
        p.error("a run needs --float and --json")
    rows = [json.loads(x) for x in args.json.read_text().splitlines()] if args.json.exists() else []
    done = {(r["stage"], r["arm"], r["lam"], r["seed"]) for r in rows}

    def record(arm: str, lam: float | None, seed: int, stage: str) -> None:
        if (stage, arm, lam, seed) in done:
            return
        row = run_arm(args, arm, lam, seed, stage)
        rows.append(row)
        with args.json.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{stage} {arm} λ={lam} seed={seed}: top-1 {row['top1']:.2f} ({row['wall_s']:.0f} s)", flush=True)

    regularized = [a for a in args.arms if ARMS[a][1] is not None]
    if "select" in args.stage:
        for arm in args.arms:  # the plain arms once, as the held-out reference
            for lam in args.lams if arm in regularized else [None]:
                record(arm, lam, 0, "select")
    if "final" in args.stage:
        lams = selected_lams(rows)
        for seed in args.seeds:
            for arm in args.arms:
                record(arm, lams.get(arm) if arm in regularized else None, seed, "final")
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

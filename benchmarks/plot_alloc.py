"""Accuracy against total compression ratio on the ImageNet sample: uniform bit-widths against bits allocated to a
size (issue 29). Reads the rows `benchmarks/imagenet_distill.py` appended (``recipe-*``: one bit-width for the inner
layers; ``alloc-*``: ``--target-ratio`` / ``--size-kib``), prints the Markdown table and writes the plot.

    PYTHONPATH=. .venv/bin/python benchmarks/plot_alloc.py --results benchmarks/results/imagenet_alloc.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def how(row: dict) -> str:
    """How a row's bits were chosen: one bit-width, or allocated (with pruning options when it offered them)."""
    if not row.get("allocation"):
        return "uniform"
    return "allocated, bits + pruning" if "--alloc-ratios" in row["command"] else "allocated"


def table(rows: list[dict]) -> str:
    lines = [
        "| row | how the bits are chosen | total ratio | sidecar + biases KiB (budget) | top-1 % | Δ top-1 | top-1 "
        "agreement % | logit SQNR dB | verify | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["total_ratio"]):
        alloc = r.get("allocation")
        budget = f" ({alloc['size_budget'] / 1024:.1f})" if alloc else ""
        verify = "passed" if not r["verify_failures"] else "; ".join(r["verify_failures"])
        lines.append(
            f"| {r['row']} | {how(r)} | {r['total_ratio']:.2f}× | {r['size_bytes'] / 1024:.1f}{budget} | "
            f"{r['top1']:.1f} | "
            f"{r['top1'] - r['float_top1']:+.1f} | {100 * r['top1_agreement']:.1f} | {r['logit_sqnr_db']:.1f} | "
            f"{verify} | {r['wall_s'] / 60:.0f} min |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for kind, marker in (("uniform", "s"), ("allocated", "o"), ("allocated, bits + pruning", "^")):
        chosen = sorted((r for r in rows if how(r) == kind), key=lambda r: r["total_ratio"])
        if not chosen:
            continue
        xs = [r["total_ratio"] for r in chosen]
        for ax, key, scale in ((axes[0], "top1", 1), (axes[1], "top1_agreement", 100)):
            ax.plot(xs, [scale * r[key] for r in chosen], marker + "-", label=kind)
            for r in chosen:
                ax.annotate(r["row"], (r["total_ratio"], scale * r[key]), fontsize=7)
    float_top1 = rows[0]["float_top1"]
    axes[0].axhline(float_top1, color="0.5", lw=0.8, ls="--", label=f"float {float_top1:.1f} %")
    axes[0].set(xlabel="total compression ratio", ylabel="top-1 % (val/, 250 images)", title="top-1")
    axes[1].set(xlabel="total compression ratio", ylabel="top-1 agreement with float, %", title="agreement")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "imagenet_alloc.jsonl")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "imagenet_alloc.png")
    args = parser.parse_args()
    latest: dict[str, dict] = {}
    for line in args.results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["row"]] = row  # a row run again replaces its earlier line
    rows = list(latest.values())
    print(table(rows))
    plot(rows, args.plot)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

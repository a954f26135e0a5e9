"""Accuracy against compression ratio from benchmarks/results/compress_fmnist.jsonl (one point per run).

PYTHONPATH=. .venv/bin/python benchmarks/plot_compress.py [--out docs/images/compress_fmnist.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/compress_fmnist.jsonl"))
    p.add_argument("--out", type=Path, default=Path("docs/images/compress_fmnist.png"))
    args = p.parse_args()
    runs = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"mbv2": ("tab:blue", "MobileNetV2 w0.5"), "shv2": ("tab:orange", "ShuffleNetV2 x0.5")}
    for key, (color, label) in styles.items():
        mine = [r for r in runs if r["run"].startswith(key)]
        if not mine:
            continue
        ax.axhline(mine[0]["float_top1"], color=color, lw=0.8, ls=":", label=f"{label} float")
        ax.axhline(mine[0]["float_top1"] - 0.5, color=color, lw=0.6, ls="--", alpha=0.5)
        for method, marker in (("pl2", "o"), ("mag", "x")):
            pts = [r for r in mine if f"_{method}_" in r["run"]]
            ax.scatter(
                [r["total_ratio"] for r in pts],
                [r["ort_top1"] for r in pts],
                color=color,
                marker=marker,
                label=f"{label}, {'partial L2' if method == 'pl2' else 'magnitude'}",
            )
            for r in pts:
                tag = r["run"].split("_", 2)[2]
                ax.annotate(
                    tag, (r["total_ratio"], r["ort_top1"]), fontsize=7, xytext=(4, 2), textcoords="offset points"
                )
    ax.set_xlabel("total compression ratio (32-bit weights + biases / sidecar + int32 biases)")
    ax.set_ylabel("top-1 % in onnxruntime (Fashion-MNIST test)")
    ax.set_title("Fashion-MNIST: prune → learnable-MSQE QAT → entropy-coded sidecar (dashed: float − 0.5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

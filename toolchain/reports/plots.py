"""PNG plots: the paper's convergence picture, weight histograms against their levels, per-layer compression.

Rendered with matplotlib's Agg backend (no display needed) and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from runtime import atomic_write_bytes
from runtime.levels import max_level

__all__ = ["plot_convergence", "plot_layers", "plot_penalty", "plot_weight_histogram"]


def _figure(rows: int, cols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(rows, cols, figsize=size, constrained_layout=True)


def _save(plt, fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_convergence(records: list[dict[str, Any]], path: Path, config: Any = None) -> Path:
    """α, e^α, R_n and the task loss over training steps (one panel each; log scale where it helps)."""
    title = f"{config.model}: W{config.wbits}A{config.abits}, reg={config.reg}, λ={config.lam:g}" if config else None
    series = [("alpha", "α", False), ("coef", "coefficient e^α", True), ("msqe", "MSQE R_n", True)]
    return plot_penalty(records, path, series, title)


def plot_penalty(
    records: list[dict[str, Any]], path: Path, series: list[tuple[str, str, bool]], title: str | None = None
) -> Path:
    """A learnable-coefficient penalty's convergence: three (key, label, log-scale) panels and the task loss."""
    steps = [r for r in records if series[-1][0] in r]
    plt, fig, axes = _figure(2, 2, (10, 6.5))
    for ax, (key, label, log) in zip(axes.flat, [*series, ("loss", "task loss", False)]):
        xs = [r["step"] for r in steps if key in r]
        ys = [r[key] for r in steps if key in r]
        ax.plot(xs, ys, lw=1)
        ax.set_title(label)
        ax.set_xlabel("step")
        if log and ys and min(ys) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_weight_histogram(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], layer: str, path: Path) -> Path:
    """Histogram of w/δ at the start and end of training; the quantization levels are the integers."""
    bits = int(start["bits"])
    lim = max_level(bits)
    plt, fig, axes = _figure(1, 2, (11, 4))
    for ax, (title, snap) in zip(axes, (("start", start), ("end", end))):
        values = snap["w_over_step"].clamp(-lim - 1.5, lim + 1.5).numpy()
        ax.hist(values, bins=min(400, 60 * (2 * lim + 3)), color="tab:blue")
        for level in range(-lim, lim + 1):
            ax.axvline(level, color="tab:red", lw=0.6, alpha=0.6)
        ax.set_title(f"{layer}: w/δ at the {title} ({bits}-bit, levels in red)")
        ax.set_xlabel("w / δ")
        ax.set_yscale("log")
    return _save(plt, fig, path)


def plot_layers(tensors: list[dict[str, Any]], path: Path) -> Path:
    """Per weight tensor: coded bits per weight against the bit-width and the entropy, and the share of zeros."""
    names = [t["name"].removesuffix(".weight") for t in tensors]
    xs = range(len(tensors))
    plt, fig, (top, bottom) = _figure(2, 1, (max(8, 0.22 * len(tensors) + 3), 6.5))
    top.bar(xs, [t["bits_per_weight"] for t in tensors], color="tab:blue", label="coded bits per weight")
    top.plot(xs, [t["entropy"] for t in tensors], "k.", label="order-0 entropy (bits per level)")
    top.plot(xs, [t["bits"] for t in tensors], "r_", markersize=12, label="bit-width")
    top.set_ylabel("bits")
    top.legend(fontsize=8)
    bottom.bar(xs, [100 * t["sparsity"] for t in tensors], color="tab:gray")
    bottom.set_ylabel("zero levels %")
    for ax in (top, bottom):
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names if ax is bottom else [], rotation=90, fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("per-layer compression")
    return _save(plt, fig, path)

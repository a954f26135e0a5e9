"""``report.md``: one page next to a compressed model's artefacts that says what was done and what it gave.

Sections: the exact command, the summary table (accuracy, sparsity, bits, sizes, ratios, latency), the files, the
per-layer compression (table and ``layers.png``), the training curves written by the phases (partial-L2 β and P_r,
MSQE α and R_n, weight histograms against their levels), the fixed-point check and the full configuration. Images
are linked by relative path, so the folder can be moved or zipped as it is.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from runtime import atomic_write_text

from ..config import dumps_toml
from .plots import plot_layers

__all__ = ["qat_dynamics", "write_report"]

CURVES = (
    ("prune/pruning.png", "Pruning phase: β, the coefficient e^β, the partial L2 term P_r and the task loss"),
    ("qat/convergence.png", "Quant-aware training: α, the coefficient e^α, the MSQE R_n and the task loss"),
    ("qat/weights.png", "Weights of one layer in units of their step (w/δ), before and after QAT: levels at integers"),
)


def write_report(out_dir: Path, config: Any, results: dict[str, Any], table: str) -> Path:
    """Write ``out_dir/report.md`` (and ``layers.png``) from a finished compression run; returns the path."""

    export = results["export"]
    acc = export["accounting"]
    plot_layers(acc["tensors"], out_dir / "layers.png")
    command = " ".join(shlex.quote(a) for a in ["toolchain", *sys.argv[1:]]) if sys.argv[0] else "toolchain"
    lines = [
        f"# Compression report: {config.model} on {config.data}",
        "",
        "Command:",
        "",
        f"```\n{command}\n```",
        "",
        "## Summary",
        "",
        table,
        "",
        "Total ratio: 32-bit weights and biases over everything needed to rebuild them (the sidecar file and the int32 "
        "biases); weights-only ratio: 32-bit weights over the coded levels and their steps (the paper's figure). "
        "Latency: onnxruntime on this machine, float ONNX against the exported QDQ graph, sessions interleaved.",
        "",
        "## Files",
        "",
        "| file | bytes |",
        "|---|---|",
        *[
            f"| `{Path(p).relative_to(out_dir) if Path(p).is_relative_to(out_dir) else p}` | {n:,} |"
            for p, n in export["files"].items()
        ],
        "",
        "## Per-layer compression",
        "",
        "![per-layer compression](layers.png)",
        "",
        "| tensor | shape | params | bits | zero levels % | entropy (bits/level) | codec | coded bytes | bits/weight |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {t['name']} | {'×'.join(map(str, t['shape']))} | {t['params']:,} | {t['bits']} | "
            f"{100 * t['sparsity']:.1f} | {t['entropy']:.3f} | {t['codec']} | {t['coded_bytes']:,} | "
            f"{t['bits_per_weight']:.3f} |"
            for t in acc["tensors"]
        ],
        "",
        f"Coded levels: {acc['coded_bytes']:,} bytes, {acc['coded_bytes'] / max(acc['entropy_bytes'], 1e-9):.4f}× "
        "the sum of the tensors' order-0 entropies (coder tables included).",
        "",
        *allocation_section(results.get("allocate"), acc),
        "## Training curves",
        "",
    ]
    for rel, caption in CURVES:
        if (out_dir / rel).is_file():
            lines += [f"{caption}:", "", f"![{caption}]({rel})", ""]
    lines += qat_dynamics(out_dir / "qat" / "metrics.jsonl")
    kernels = ", ".join(f"{k} {v}" for k, v in sorted(export["integer_kernels"].items()))
    floats = ", ".join(f"{k} {v}" for k, v in export["float_kernels"].items())
    lines += [
        "## Fixed-point check",
        "",
        f"Integer kernels in onnxruntime's optimized graph: {kernels or 'none'}; "
        f"float convolutions or matrix products: {floats or 'none'}.",
        "",
        "Verification against the quant-aware model: "
        + ("passed." if not export["verify_failures"] else "; ".join(export["verify_failures"])),
        "",
        *_float_agreement(export.get("float_agreement") or {}),
        "## Configuration",
        "",
        f"```toml\n{dumps_toml(config.to_dict())}```",
        "",
    ]
    return atomic_write_text(out_dir / "report.md", "\n".join(lines))


def allocation_section(allocation: dict[str, Any] | None, acc: dict[str, Any]) -> list[str]:
    """Bits allocated to a size: the budget against the real sidecar, the plot, and each layer's choice with its
    measured sensitivity, estimated (rounded levels) and real (exported) coded bytes."""
    if not allocation:
        return []
    real = acc["sidecar_bytes"] + 4 * acc["bias_params"]
    budget, solved = allocation["size_budget"], allocation["estimated_bytes"]
    coded = {t["name"].removesuffix(".weight"): t["coded_bytes"] for t in acc["tensors"]}
    lines = [
        "## Bits allocated to a size",
        "",
        f"Budget {budget / 1024:.1f} KiB (sidecar + int32 biases); solved for {solved / 1024:.1f} KiB"
        f" on the rounded levels; the export is **{real / 1024:.1f} KiB, {100 * (real / budget - 1):+.2f} %** "
        f"against the budget (reconstruction and training move levels after the solve). Estimated output noise "
        f"of the allocation: {10 * math.log10(max(allocation['sensitivity'], 1e-30)):.1f} dB (the sum of the "
        "layers' measured sensitivities). Measured in "
        f"{allocation['seconds']['measure']:.0f} s, solved in {allocation['seconds']['solve']:.1f} s.",
        "",
        "![allocation](allocate/allocation.png)",
        "",
        "| layer | params | bits | pruned % | sensitivity | coded bytes, estimated | coded bytes, exported |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer in allocation["layers"]:
        lines.append(
            f"| {layer['name']} | {layer['params']:,} | {layer['bits']} | {100 * layer['ratio']:g} | "
            f"{layer['sensitivity']:.2e} | {layer['coded_bytes']:,} | {coded.get(layer['name'], 0):,} |"
        )
    return [*lines, ""]


def _float_agreement(fa: dict[str, float]) -> list[str]:
    """The exported model against the float one, image by image (classifiers); nothing for other tasks."""
    if not fa:
        return []
    return [
        f"Against the float model on the same {int(fa['n'])} images: top-1 agreement "
        f"{100 * fa['top1_agreement']:.1f} %, logit SQNR {fa['logit_sqnr_db']:.1f} dB.",
        "",
    ]


def qat_dynamics(metrics: Path) -> list[str]:
    """What the MSQE regularizer did during QAT, read from the phase's ``metrics.jsonl``: per epoch, α and e^α, R_n,
    the share of weights within δ/10 of their level, the steps against their start (δ/δ₀) and the weight norms."""
    if not metrics.is_file():
        return []
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "msqe" in r and r.get("phase") != "eval"]
    evals = [r for r in records if r.get("phase") == "eval" and "near_level_share" in r]
    if not evals:
        return []
    lines = [
        "## What the MSQE regularizer did",
        "",
        "| epoch | top-1 % | α | e^α | R_n | weights within δ/10 of a level | δ/δ₀ median (min) | ‖w‖/‖w₀‖ median |",
        "|---|---|---|---|---|---|---|---|",
    ]
    start = evals[0].get("near_level_share_start")
    if start is not None and steps:
        first = steps[0]
        lines.append(f"| start | – | {first['alpha']:.2f} | {math.exp(first['alpha']):.3g} | {first['msqe']:.3g} | "
                     f"{100 * start:.0f} % | 1 | 1 |")  # fmt: skip
    for e in evals:
        last = [r for r in steps if r["step"] <= e["step"]][-1:] or [{}]
        r_n = f"{last[0]['msqe']:.3g}" if "msqe" in last[0] else "–"
        top1 = f"{e['top1']:.2f}" if "top1" in e else "–"
        lines.append(
            f"| {e['epoch']} | {top1} | {e['alpha']:.2f} | {math.exp(e['alpha']):.3g} | {r_n} | "
            f"{100 * e['near_level_share']:.0f} % | {e.get('step_ratio_median', 1):.3f} "
            f"({e.get('step_ratio_min', 1):.3f}) | {e.get('norm_ratio_median', 1):.3f} |"
        )
    final = evals[-1]
    notes = []
    if final.get("alpha_stopped_step") is not None:
        notes.append(f"α stopped rising at step {final['alpha_stopped_step']} (nearly all weights on their levels)")
    if final.get("alpha_capped_steps"):
        notes.append(f"the stability cap on α bound on {final['alpha_capped_steps']} steps")
    if notes:
        lines += ["", "; ".join(notes) + "."]
    return [*lines, "", SETTLING_ANSWER, ""]


# What the settling experiment measured (BENCHMARKS.md, "The settling experiment"); quoted in every report so that
# the picture above is read with the answer beside it.
SETTLING_ANSWER = (
    "Does this buy accuracy? Measured with λ chosen on held-out images and three seeds against plain QAT with the "
    'same step rule (BENCHMARKS.md, "The settling experiment"): LeNet-5 W2A8 −0.22 … +0.07 point, W3A8 −0.02; '
    "ShuffleNetV2 x0.5 W2A8 +0.12, W3A8 +0.06 (pooled seed spreads 0.12 and 0.05). No benefit of ≥ 0.5 point: the "
    "regularizer gathers the weights onto their levels as the paper describes, but ties plain quant-aware training."
)

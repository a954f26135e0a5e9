"""Super-resolution: bicubic, float, W8A8 (plain QAT and learnable MSQE) and W4A8, in PyTorch and onnxruntime.

For each network and scale: float training on scikit-image's photos (`sr-photos`: Y channel, random 48×48 HR
patches with the 8 flips/rotations, L1 loss, AdamW with cosine decay), then quant-aware training from that
checkpoint for each variant, export, and `toolchain.verify` of the exported graph + sidecar. PSNR and SSIM are on Y
over the whole test images (chelsea, coffee, camera, coins), with a border crop equal to the scale. Bicubic is
the anti-aliased bicubic downscale followed by PyTorch's bicubic upscale. Results are appended, one JSON line per
cell, so that an interrupted grid resumes where it stopped.

  PYTHONPATH=. OMP_NUM_THREADS=2 .venv/bin/python benchmarks/sr_grid.py --scales 3 --float-epochs 240 \\
      --out runs/sr_grid_x3 --results benchmarks/results/sr_grid_x3_long.jsonl

The first grid (12 training photos, 60 float epochs, ×3 and ×2) is ``--train-photos 12 --out runs/sr_grid
--results benchmarks/results/sr_grid.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch.nn.functional as F

from benchmarks.common import EARLIER_QAT_DEFAULTS

warnings.filterwarnings("ignore")

# name: (wbits, reg, λ). The regularizer's pull on a weight scales as λ/δ², and an 8-bit step is about 18× finer
# than a 4-bit one, so W8's λ is W4's divided by 18² ≈ 300 (the same pull); see BENCHMARKS.md's stability note.
VARIANTS = {
    "W8A8_none": (8, "none", 3e-6),
    "W8A8_msqe": (8, "msqe", 3e-6),
    "W4A8_msqe": (4, "msqe", 1e-3),
}
LABELS = {"W8A8_none": "W8A8 plain QAT", "W8A8_msqe": "W8A8 learnable MSQE", "W4A8_msqe": "W4A8 learnable MSQE"}


def bicubic(scale: int) -> dict[str, float]:
    from toolchain.data import load_dataset
    from toolchain.training.tasks import psnr, ssim

    bundle = load_dataset("sr-photos", scale=scale)
    p = s = 0.0
    n = 0
    for lr, hr in bundle.test.batches(1):
        up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
        p += psnr(up, hr, scale).sum().item()
        s += ssim(up, hr, scale).sum().item()
        n += 1
    return {"psnr": p / n, "ssim": s / n, "n": n}


def main() -> int:
    from exporters import export_model
    from toolchain.config import TrainConfig
    from toolchain.quant.qat import QATConfig, QATRecipe
    from toolchain.restore import restore
    from toolchain.training import train
    from toolchain.verify import verify

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["espcn", "fsrcnn", "srcnn"])
    p.add_argument("--scales", type=int, nargs="+", default=[3, 2])
    p.add_argument("--float-epochs", type=int, default=60)
    p.add_argument("--srcnn-epochs", type=int, default=20, help="SRCNN works at HR size: ~10x slower per epoch")
    p.add_argument("--qat-epochs", type=int, default=5)
    p.add_argument(
        "--train-photos", type=int, default=None, help="train on the first N photos of the split (12: the first grid)"
    )
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("runs/sr_grid"))
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/sr_grid.jsonl"))
    p.add_argument("--report", action="store_true", help="only print the tables of --results, run nothing")
    args = p.parse_args()
    if args.report:
        if not args.results.exists():
            p.error(f"--report: {args.results} does not exist")
        print(table([json.loads(line) for line in args.results.read_text().splitlines()]))
        return 0

    done = set()
    if args.results.exists():
        done = {(r["model"], r["scale"], r["variant"]) for r in map(json.loads, args.results.read_text().splitlines())}

    def record(row: dict) -> None:
        print(json.dumps(row), flush=True)
        with args.results.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    for scale in args.scales:
        if ("bicubic", scale, "bicubic") not in done:
            record({"model": "bicubic", "scale": scale, "variant": "bicubic", "torch": bicubic(scale), "wall_s": 0})
        for model in args.models:
            common = dict(
                model=model,
                data="sr-photos",
                data_args={"scale": scale},
                subset=args.train_photos,
                optimizer="adamw",
                weight_decay=0.0,
            )
            float_dir = args.out / f"{model}_x{scale}" / "float"
            if (model, scale, "float") not in done:
                start = time.time()
                config = TrainConfig(
                    out_dir=str(float_dir),
                    epochs=args.srcnn_epochs if model == "srcnn" else args.float_epochs,
                    batch_size=16,
                    lr=1e-3,
                    **common,
                )
                metrics = train(config, progress=False)
                record(
                    {
                        "model": model,
                        "scale": scale,
                        "variant": "float",
                        "torch": _pick(metrics),
                        "wall_s": time.time() - start,
                    }
                )
            for variant in args.variants:
                if (model, scale, variant) in done:
                    continue
                start = time.time()
                wbits, reg, lam = VARIANTS[variant]
                out = args.out / f"{model}_x{scale}" / variant
                config = QATConfig(
                    float_checkpoint=str(float_dir / "last.pt"),
                    out_dir=str(out),
                    epochs=args.qat_epochs,
                    batch_size=16,
                    lr=1e-4,
                    wbits=wbits,
                    abits=8,
                    reg=reg,
                    lam=lam,
                    log_every=50,
                    **common,
                    **EARLIER_QAT_DEFAULTS,
                )
                metrics = train(config, recipe=QATRecipe(config), progress=False)
                restored = restore(out / "last.pt")
                x = next(iter(restored.bundle.test.batches(1)))[0]
                export_model(
                    restored.model,
                    x,
                    out / "export",
                    "model",
                    {
                        "checkpoint_config": config.to_dict(),
                        "recipe": "qat",
                        "task": "super_resolution",
                        "preprocess": restored.bundle.preprocess,
                    },
                )
                report = verify(
                    out / "export" / "model.compressed.onnx",
                    qat=out / "last.pt",
                    progress=False,
                    thresholds=_sr_thresholds(),
                )
                record(
                    {
                        "model": model,
                        "scale": scale,
                        "variant": variant,
                        "lam": lam,
                        "torch": _pick(metrics),
                        "onnxruntime": _pick(report.metrics["onnxruntime"]),
                        "qat_eval": _pick(report.metrics["qat"]),
                        "agreement": report.agreement,
                        "verify_failures": report.failures,
                        "wall_s": time.time() - start,
                    }
                )
    return 0


def table(rows: list[dict]) -> str:
    """Markdown, one table per scale: onnxruntime's PSNR / SSIM of each quantized variant and its drop from float,
    float against bicubic, and the largest |onnxruntime − PyTorch QAT| PSNR gap over the variants."""
    cell = {(r["model"], r["scale"], r["variant"]): r for r in rows}
    out = []
    for scale in dict.fromkeys(r["scale"] for r in rows):
        bic = cell[("bicubic", scale, "bicubic")]["torch"]
        columns = ["network", "float", "float − bicubic", *(LABELS[v] for v in VARIANTS), "onnxruntime − PyTorch QAT"]
        out += [
            f"**×{scale}** (bicubic: {bic['psnr']:.2f} dB / SSIM {bic['ssim']:.4f})",
            "",
            "| " + " | ".join(columns) + " |",
            "|---" * len(columns) + "|",
        ]
        for model in dict.fromkeys(r["model"] for r in rows if r["scale"] == scale and r["model"] != "bicubic"):
            flt = cell.get((model, scale, "float"), {}).get("torch")
            if flt is None:
                continue
            row = [f"{flt['psnr']:.2f} / {flt['ssim']:.4f}", f"{flt['psnr'] - bic['psnr']:+.2f} dB"]
            gaps = []
            for variant in VARIANTS:
                r = cell.get((model, scale, variant))
                if r is None:
                    row.append("–")
                    continue
                ort = r["onnxruntime"]
                row.append(f"{ort['psnr']:.2f} / {ort['ssim']:.4f} ({ort['psnr'] - flt['psnr']:+.2f})")
                gaps.append(abs(ort["psnr"] - r["qat_eval"]["psnr"]))
            row.append(f"≤ {max(gaps):.4f} dB" if gaps else "–")
            out.append(f"| {model} | " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def _pick(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("psnr", "ssim") if k in metrics}


def _sr_thresholds():
    from toolchain.verify import Thresholds

    return Thresholds(max_drop=0.01, min_within_one=0.999)


if __name__ == "__main__":
    sys.exit(main())

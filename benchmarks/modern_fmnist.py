"""The modern registry networks on Fashion-MNIST: float, then W8A8 and W4A8 quant-aware training, next to onnxruntime's
``quantize_static`` on the same float network (BENCHMARKS.md, "Modern blocks on Fashion-MNIST").

Per network: ``toolchain train`` (float), ``toolchain compress --float-checkpoint`` at W8A8 and at W4A8 (no pruning,
the learnable MSQE regularizer at its defaults), ``quantize_static`` W8A8 of the float export (QDQ, per-channel,
64 training images), then one interleaved latency race at batch 1 (spinning off): FP32, ours W8A8, ours W4A8,
``quantize_static``. Top-1 on the whole Fashion-MNIST test set (10,000 images) for every file.

``--reexport`` reuses the trained float and QAT checkpoints of an earlier run in ``--runs`` (and trains what is
missing), exports again where the export predates the current exporter options (the uint8 8-bit weights), then
measures and races; a reused phase counts with its recorded wall time.

  PYTHONPATH=. OMP_NUM_THREADS=2 .venv/bin/python benchmarks/modern_fmnist.py \
      --subset 6400 --out benchmarks/results/modern_fmnist.json
  PYTHONPATH=. .venv/bin/python benchmarks/modern_fmnist.py --report benchmarks/results/modern_fmnist*.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import EARLIER_QAT_FLAGS

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--data", "fashion-mnist", "--batch-size", "128", "--no-progress", "--json"]
# Optimizer settings per network, float then QAT: the usual recipes (AdamW for the transformer, SGD for the
# convolutional net), set once before any run and not tuned on the test set.
FLOAT = {
    "vit_small": ["--optimizer", "adamw", "--lr", "0.002", "--weight-decay", "0.05"],
    "mobilenet_v3_small_small": ["--lr", "0.1", "--weight-decay", "5e-4"],
    "efficientnet_b0_small": ["--lr", "0.1", "--weight-decay", "5e-4"],
}
QAT = {
    "vit_small": ["--optimizer", "adamw", "--lr", "0.0002", "--weight-decay", "0"],
    "mobilenet_v3_small_small": ["--lr", "0.01", "--weight-decay", "0"],
    "efficientnet_b0_small": ["--lr", "0.01", "--weight-decay", "0"],
}
# Float epochs per network, fixed by one rule: about the float training wall time of MobileNetV3-Small's 4 epochs
# (ViT-small takes a quarter of its time per epoch, so 16); EfficientNet-B0, the slowest, gets the same 4 epochs.
FLOAT_EPOCHS = {"vit_small": 16, "mobilenet_v3_small_small": 4, "efficientnet_b0_small": 4}
NO_PRUNING = ["--ratio", "0", "--prune-epochs", "0", "--abits", "8", "--lam", "0.001", *EARLIER_QAT_FLAGS]


def _toolchain(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "toolchain", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"toolchain {args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def _static(float_onnx: Path, out: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(float_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip


def _top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: x[i : i + 500]})[0] for i in range(0, len(x), 500)])
    return 100 * float((logits.argmax(1) == y).mean())


def _last_eval(folder: Path) -> dict[str, Any]:
    """The last evaluation record of a training run's ``metrics.jsonl`` (top-1 and elapsed seconds)."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return next(r for r in map(json.loads, reversed(lines)) if r.get("phase") == "eval")


def _stale_export(folder: Path) -> bool:
    """An export made before ``--int8-weights`` existed, i.e. with int8 8-bit weights (exporters.folding)."""
    done = folder / "export" / "result.json"
    return done.exists() and "int8_weights" not in json.loads(done.read_text())["config"]


def run_network(
    name: str,
    runs: Path,
    subset: int,
    float_epochs: int | None,
    qat_epochs: int,
    races: int,
    reexport: bool = False,
    wbits: tuple[int, ...] = (8, 4),
) -> dict[str, Any]:
    import torch

    from runtime.kernels import classify_kernels, optimized_graph
    from runtime.latency import race, timing_session
    from toolchain.data import load_dataset

    start = time.time()
    float_epochs = float_epochs or FLOAT_EPOCHS[name]
    out = runs / name
    common = ["--model", name, *DATA, "--subset", str(subset)]
    warmup = str(min(1, float_epochs / 2))
    if not reexport:
        _toolchain("train", *common, *FLOAT[name], "--epochs", str(float_epochs), "--warmup-epochs", warmup,
                   "--out-dir", str(out / "float"))  # fmt: skip
    ckpt, trained = out / "float" / "last.pt", _last_eval(out / "float")
    rows: dict[str, Any] = {"float": {"top1": trained["top1"], "wall_s": trained["elapsed_s"]}}
    for bits in wbits:
        t, folder = time.time(), out / f"w{bits}a8"
        reused = reexport and (folder / "qat" / "result.json").exists()
        if reexport and _stale_export(folder):  # compress reuses every phase with a result.json: drop the export's
            (folder / "export" / "result.json").unlink()
        r = _toolchain("compress", *common, *NO_PRUNING, *QAT[name], "--wbits", str(bits), "--epochs", str(qat_epochs),
                       "--float-checkpoint", str(ckpt), "--out-dir", str(folder))  # fmt: skip
        export, training_s = r["export"], r["prune"]["wall_s"] + r["qat"]["wall_s"]
        rows[f"w{bits}a8"] = {
            "qat_top1": r["qat"]["top1"],
            "top1": export["onnxruntime"]["top1"],
            "float_islands": sorted(set(export["float_islands"].values())),
            "islands": len(export["float_islands"]),
            "integer_kernels": export["integer_kernels"],
            "float_kernels": export["float_kernels"],
            "total_ratio": export["accounting"]["total_ratio"],
            "wall_s": time.time() - t + (training_s if reused else 0.0),
        }
    bundle = load_dataset("fashion-mnist")
    xs, ys = zip(*bundle.test.batches(500))
    x, y = torch.cat(xs).numpy(), torch.cat(ys).numpy()
    calib = torch.cat([b for b, _ in bundle.train.batches(64, train=False)][:1]).numpy()
    files = {"fp32": out / f"w{wbits[0]}a8" / "export" / "float.onnx",
             **{f"w{b}a8": out / f"w{b}a8" / "export" / "model.onnx" for b in wbits}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        files["quantize_static"] = Path(tmp) / "static.onnx"
        _static(files["fp32"], files["quantize_static"], calib)
        kernels = classify_kernels(optimized_graph(files["quantize_static"].read_bytes()))
        rows["quantize_static"] = {
            "top1": _top1(files["quantize_static"], x, y),
            "islands": len(kernels["float_islands"]),
            "integer_kernels": kernels["integer"],
            "float_kernels": kernels["float"],
        }
        rows["float"]["onnx_top1"] = _top1(files["fp32"], x, y)
        timed = race({k: timing_session(p) for k, p in files.items()}, x[:1], races)
    for k, v in timed.items():
        rows["float" if k == "fp32" else k]["latency_b1"] = v
    return {"network": name, "subset": subset, "float_epochs": float_epochs, "qat_epochs": qat_epochs,
            "reexport": reexport, "rows": rows, "wall_s": time.time() - start}  # fmt: skip


def report(paths: list[Path]) -> None:
    print("| network | file | top-1 % | latency batch 1, median | × FP32 | × quantize_static | integer kernels | "
          "float Conv/Gemm left | float islands | wall time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for net in [n for p in paths for n in json.loads(p.read_text())["networks"]]:
        rows = net["rows"]
        base, static = rows["float"]["latency_b1"]["median_ms"], rows["quantize_static"]["latency_b1"]["median_ms"]
        for k in [k for k in ("float", "w8a8", "w4a8", "quantize_static") if k in rows]:
            r = rows[k]
            ms = r["latency_b1"]["median_ms"]
            kernels = ", ".join(f"{op} {n}" for op, n in sorted(r.get("integer_kernels", {}).items())) or "–"
            left = sum(r.get("float_kernels", {}).values()) if k != "float" else "–"
            islands = r.get("islands", "–") if k != "float" else "–"
            top1 = r.get("top1", r.get("onnx_top1"))
            wall = f"{r['wall_s'] / 60:.0f} min" if "wall_s" in r else "–"
            print(f"| {net['network']} | {k} | {top1:.1f} | {ms:.3f} ms | {base / ms:.2f}× | {static / ms:.2f}× | "
                  f"{kernels} | {left} | {islands} | {wall} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(FLOAT), help="comma-separated registry names")
    parser.add_argument("--subset", type=int, default=12800, help="training images (of 60,000)")
    parser.add_argument("--float-epochs", type=int, help="float epochs for every network (default: FLOAT_EPOCHS)")
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--races", type=int, default=300, help="interleaved latency runs per file")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "modern_fmnist")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reexport", action="store_true", help="reuse the trained checkpoints in --runs; export again")
    parser.add_argument("--wbits", default="8,4", help="comma-separated weight bit-widths of the QAT rows (8,4)")
    parser.add_argument("--report", type=Path, nargs="+", help="print the BENCHMARKS.md table from these results files")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return 0
    start = time.time()
    wbits = tuple(int(b) for b in args.wbits.split(","))
    nets = [run_network(m, args.runs, args.subset, args.float_epochs, args.qat_epochs, args.races, args.reexport, wbits)
            for m in args.models.split(",")]  # fmt: skip
    results = {"command": " ".join(sys.argv), "networks": nets, "wall_s": time.time() - start}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

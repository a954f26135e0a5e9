"""onnxruntime CPU latency of the W8A8 super-resolution exports vs their float models, side by side in one run.

Uses the checkpoints and exports of `benchmarks/sr_grid.py`. The float model is exported with torch.onnx.export;
both sessions use 2 intra-op threads with spinning off and are interleaved run by run on one 256×256 LR input.

  PYTHONPATH=. .venv/bin/python benchmarks/sr_latency.py --grid runs/sr_grid --scale 3 --runs 50 \\
      --out benchmarks/results/sr_latency.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.common import save_report
from benchmarks.export_latency import _race, _session

warnings.filterwarnings("ignore")


def main() -> int:
    from runtime.kernels import classify_kernels, optimized_graph
    from toolchain.restore import restore

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=Path, default=Path("runs/sr_grid"))
    p.add_argument("--models", nargs="+", default=["espcn", "fsrcnn", "srcnn"])
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--variant", default="W8A8_msqe")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    x = torch.rand(1, 1, args.size, args.size)
    report: dict = {"input": [1, 1, args.size, args.size], "runs": args.runs, "models": {}}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            run = args.grid / f"{name}_x{args.scale}"
            float_model = restore(run / "float" / "last.pt").model
            fp32 = Path(tmp) / f"{name}_fp32.onnx"
            torch.onnx.export(float_model, x, str(fp32), dynamo=False, opset_version=17, input_names=["input"])
            quantized = run / args.variant / "export" / "model.onnx"
            sessions = {"fp32": _session(fp32), "ours": _session(quantized), "ort_static": _session(fp32)}
            result = _race(sessions, x.numpy(), args.runs)  # ort_static here is a second fp32 session (a control)
            entry = {k: result[k] for k in ("fp32", "ours")}
            entry["fp32_control"] = result["ort_static"]
            entry["kernels"] = classify_kernels(optimized_graph(quantized))
            print(name, entry["ours"], flush=True)
            report["models"][name] = entry
    return save_report(report, args.out, start)


if __name__ == "__main__":
    sys.exit(main())

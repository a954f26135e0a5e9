"""CUDA execution provider check of exported models: runtime.load(device="cuda") vs CPU, side by side.

For each exported model given (standalone or graph + sidecar), opens a CPU and a CUDA session through
``runtime.load``, runs the same random batch on both and reports the providers in use, the largest output
difference (in output quantization steps when the model records it, else absolute) and the median latency of
each over ``--runs`` interleaved runs. Needs onnxruntime-gpu; without it, says so and exits 3.

  python benchmarks/cuda_check.py export/*.onnx --batch 16 --runs 50 --out cuda_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _output_step(path: Path) -> float | None:
    """Scale of the last DequantizeLinear feeding the output (the output quantizer's step), if any."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type != "DequantizeLinear":
        node = producers.get(node.input[0])
    if node is None or node.input[1] not in inits:
        return None
    return float(onnx.numpy_helper.to_array(inits[node.input[1]]).reshape(-1)[0])


def main() -> int:
    import onnxruntime as ort

    import runtime

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    report: dict = {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "python": platform.python_version(),
        "models": [],
    }
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(json.dumps(report))
        print("CUDAExecutionProvider not available: install onnxruntime-gpu", file=sys.stderr)
        return 3
    for path in args.models:
        cpu, gpu = runtime.load(path, "cpu"), runtime.load(path, "cuda")
        shape = [args.batch if not isinstance(d, int) else d for d in cpu.inputs[0].shape]
        shape = [32 if isinstance(d, str) else d for d in shape]  # symbolic spatial sizes (SR models)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        a, b = cpu.run(x)[0], gpu.run(x)[0]
        step = _output_step(path)
        diff = np.abs(a - b) / (step or 1.0)
        times: dict[str, list[float]] = {"cpu": [], "cuda": []}
        for _ in range(5):
            cpu.run(x), gpu.run(x)
        for _ in range(args.runs):
            for name, model in (("cpu", cpu), ("cuda", gpu)):
                t = time.perf_counter()
                model.run(x)
                times[name].append(time.perf_counter() - t)
        row = {
            "model": str(path),
            "providers": gpu.providers,
            "batch": args.batch,
            "max_diff": float(diff.max()),
            "within_one_step": float(np.mean(diff <= 1.0 + 1e-3)) if step else None,
            "diff_unit": "output steps" if step else "absolute",
            **{f"{k}_median_ms": 1e3 * statistics.median(v) for k, v in times.items()},
        }
        print(json.dumps(row), flush=True)
        report["models"].append(row)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

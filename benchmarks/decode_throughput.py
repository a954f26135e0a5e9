"""Sidecar decoding throughput per codec, as a load decodes: chunked tensors shared out among threads.

For each bit-width and sparsity, the ImageNet MobileNetV2's levels (:mod:`benchmarks.weight_levels`) are written as
one sidecar per codec (every tensor forced to that codec) and one with the writer's choice, in chunks of
``runtime.sidecar.CHUNK_LEVELS`` levels. Each is then decoded whole by ``SidecarIndex.decode_all`` on 1 and on 2
threads (CRC checks, decoding, the multiplier and the writes into the initializers included; parsing not), median
of ``--repeats`` after a warm-up. Reported: million levels per second and coded size over the order-0 entropy.

  PYTHONPATH=. .venv/bin/python benchmarks/decode_throughput.py --out benchmarks/results/decode_throughput.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import save_report
from benchmarks.weight_levels import tensor_levels
from runtime.accounting import entropy_bits
from runtime.codecs import CODECS
from runtime.sidecar import CHUNK_LEVELS, SidecarTensor, encode_sidecar, parse_sidecar


def throughput(data: bytes, workers: int, repeats: int) -> float:
    """Million levels per second of ``decode_all`` on ``workers`` threads (median of ``repeats`` after a warm-up)."""
    index = parse_sidecar(data)
    count = sum(r.count for r in index.records)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        index.decode_all(workers)
        times.append(time.perf_counter() - start)
    return count / statistics.median(times[1:]) / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="imagenet_mbv2")
    p.add_argument("--bits", type=int, nargs="+", default=[8, 4, 3])
    p.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.5, 0.7])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    start = time.time()
    torch.set_num_threads(1)
    rows = []
    for bits in args.bits:
        for sparsity in args.sparsity:
            levels = tensor_levels(args.model, bits, sparsity)
            tensors = [SidecarTensor(f"t{i}", x, bits, np.ones(1, np.float32), None) for i, x in enumerate(levels)]
            entropy = sum(x.size * entropy_bits(x) / 8 for x in levels)
            row: dict = {"model": args.model, "bits": bits, "sparsity": sparsity, "levels": sum(x.size for x in levels)}
            for name in [*CODECS, "chosen"]:
                data = encode_sidecar(tensors, {}, codecs=None if name == "chosen" else (name,))
                index = parse_sidecar(data)
                row[name] = {
                    "vs_entropy": len(index.payload) / entropy,
                    "mlevels_per_s_1_thread": throughput(data, 1, args.repeats),
                    "mlevels_per_s_2_threads": throughput(data, 2, args.repeats),
                }
                if name == "chosen":
                    row[name]["codecs"] = {c: sum(r.codec == c for r in index.records) for c in CODECS}
            rows.append(row)
            print(
                f"W{bits} {sparsity:.0%} zeros: "
                + ", ".join(
                    f"{k} {row[k]['mlevels_per_s_2_threads']:.0f} M/s ({row[k]['vs_entropy']:.4f})"
                    for k in [*CODECS, "chosen"]
                ),
                flush=True,
            )
    report = {
        "command": "PYTHONPATH=. python benchmarks/decode_throughput.py",
        "chunk_levels": CHUNK_LEVELS,
        "rows": rows,
    }
    return save_report(report, args.out, start)


if __name__ == "__main__":
    raise SystemExit(main())

"""Weight coders on real trained levels: coded size over the order-0 entropy, and decoding throughput.

For each model (Fashion-MNIST MobileNetV2 / ShuffleNetV2 float checkpoints, the ImageNet MobileNetV2 checkpoint),
each bit-width and each sparsity: every weighted layer is magnitude-pruned per layer to the sparsity (all layers,
this measures coders, not accuracy), quantized with per-channel MSQE-optimal steps (the exporter's levels: batch-norm
folding changes only per-channel steps), and coded per tensor by every registered codec, by the sidecar's choice
rule, and, for comparison, by zstd -19 and gzip -9 over the int8 bytes. Reported per coder: Σ coded bytes /
Σ per-tensor N·H/8 (H: order-0 entropy of the tensor's levels; tables and headers included in the coded bytes),
and decoding throughput in levels per second (whole model, median of 5 after a warm-up, one thread).

  PYTHONPATH=. .venv/bin/python benchmarks/coder_efficiency.py --out benchmarks/results/coder_efficiency.json
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zstandard

from benchmarks.common import save_report
from benchmarks.weight_levels import MODELS, tensor_levels
from runtime.accounting import entropy_bits
from runtime.codecs import CODECS, choose_codec


def coders(bits: int) -> dict[str, tuple[Callable[[np.ndarray], bytes], Callable[[bytes, int], object]]]:
    table = {
        name: (lambda x, c=c: c.encode(x, bits), lambda d, n, c=c: c.decode(d, n, bits)) for name, c in CODECS.items()
    }
    table["zstd-19"] = (
        lambda x: zstandard.ZstdCompressor(level=19).compress(x.tobytes()),
        lambda d, n: zstandard.ZstdDecompressor().decompress(d, max_output_size=n),
    )
    table["gzip-9"] = (lambda x: gzip.compress(x.tobytes(), 9, mtime=0), lambda d, n: gzip.decompress(d))
    return table


def measure(levels: list[np.ndarray], bits: int, repeats: int = 5) -> dict[str, dict[str, float]]:
    entropy = sum(x.size * entropy_bits(x) / 8 for x in levels)
    count = sum(x.size for x in levels)
    result: dict[str, dict[str, float]] = {}
    chosen = [(name, pieces[0]) for name, pieces in (choose_codec(x, bits) for x in levels)]
    table = coders(bits)
    for name, (encode, decode) in table.items():
        coded = [encode(x) for x in levels]
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            for d, x in zip(coded, levels):
                decode(d, x.size)
            times.append(time.perf_counter() - start)
        size = sum(len(d) for d in coded)
        result[name] = {
            "bytes": size,
            "vs_entropy": size / entropy,
            "mlevels_per_s": count / statistics.median(times[1:]) / 1e6,
        }
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for (name, d), x in zip(chosen, levels):
            CODECS[name].decode(d, x.size, bits)
        times.append(time.perf_counter() - start)
    size = sum(len(d) for _, d in chosen)
    result["chosen"] = {
        "bytes": size,
        "vs_entropy": size / entropy,
        "mlevels_per_s": count / statistics.median(times[1:]) / 1e6,
        "codecs": {n: sum(1 for c, _ in chosen if c == n) for n in CODECS},
    }
    result["entropy"] = {"bytes": entropy, "levels": count, "bits_per_level": 8 * entropy / count}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    start = time.time()
    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        for bits in (8, 4, 3):
            for sparsity in (0.0, 0.5, 0.7):
                levels = tensor_levels(name, bits, sparsity)
                r = measure(levels, bits)
                rows.append({"model": name, "bits": bits, "sparsity": sparsity, **r})
                print(
                    f"{name} W{bits} s{sparsity}: H {r['entropy']['bits_per_level']:.3f} b/level; "
                    + ", ".join(
                        f"{k} {v['vs_entropy']:.4f} ({v['mlevels_per_s']:.0f} M/s)"
                        for k, v in r.items()
                        if k != "entropy"
                    ),
                    flush=True,
                )
    report = {
        "command": "PYTHONPATH=. python benchmarks/coder_efficiency.py",
        "rows": rows,
        "versions": {"numpy": np.__version__, "zstandard": zstandard.__version__},
    }
    return save_report(report, args.out, start)


if __name__ == "__main__":
    raise SystemExit(main())

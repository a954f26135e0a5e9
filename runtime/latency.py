"""Latency of onnxruntime sessions measured side by side: interleaved runs, a low percentile and the median.

On a small shared machine one session's spinning worker threads steal the cores of the next, so every session is
created with ``session.intra_op.allow_spinning = 0``, and the sessions are run in turn (A, B, A, B, …) after a
warm-up, so that drift in the machine's load hits them all alike. Report ratios, not absolute times.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np

__all__ = ["race", "timing_session"]


def timing_session(path: str | os.PathLike[str], threads: int = 2, options: Any = None) -> Any:
    """A CPU session for timing: ``threads`` intra-op threads, one inter-op thread, no spinning."""
    import onnxruntime as ort

    options = options or ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def race(sessions: dict[str, Any], x: np.ndarray, runs: int, warmup: int = 10) -> dict[str, dict[str, float]]:
    """Run every session on ``x`` in turn, ``warmup`` then ``runs`` times; per session ``p10_ms`` and
    ``median_ms``, and ``speedup_vs_<first>_median`` / ``_p10`` against the first session."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            start = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - start)
    out: dict[str, dict[str, float]] = {}
    for k, ts in times.items():
        ts.sort()
        out[k] = {"p10_ms": 1e3 * ts[len(ts) // 10], "median_ms": 1e3 * statistics.median(ts)}
    base = next(iter(out))
    for k in out:
        out[k][f"speedup_vs_{base}_median"] = out[base]["median_ms"] / out[k]["median_ms"]
        out[k][f"speedup_vs_{base}_p10"] = out[base]["p10_ms"] / out[k]["p10_ms"]
    return out

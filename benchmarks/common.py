"""What every benchmark script does at the end: stamp the wall time, write the JSON report, print it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

# The quant-aware defaults before config version 3 (α at balance, moved by the optimizer; steps learned from the task
# loss). Rows measured with them pin them, so that their commands still reproduce them.
EARLIER_QAT_DEFAULTS: dict[str, Any] = {"alpha_update": "optimizer", "alpha_start": 0.0, "step_rule": "task"}
EARLIER_QAT_FLAGS = ["--alpha-update", "optimizer", "--alpha-start", "0", "--step-rule", "task"]


def append_row(row: dict[str, Any], path: Path | None) -> None:
    """Print ``row`` as one JSON line and, with ``path``, append it there (results files are JSON lines)."""
    print(json.dumps(row), flush=True)
    if path:
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def cpu_facts() -> dict[str, Any]:
    """The CPU's model name, the ISA flags that decide onnxruntime's integer kernels, and the runtime's saturation
    probe (runtime.containers): recorded with every timing, since hosts differ."""
    import platform

    from runtime.containers import probe

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    lines = {key.strip(): value.strip() for key, value in reversed(fields)}  # the first CPU's values
    flags = set(lines.get("flags", lines.get("Features", "")).split())
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    return {
        "machine": platform.machine(),
        "model": lines.get("model name", ""),
        "cores": os.cpu_count(),
        "isa": sorted(f for f in wanted if f in flags),
        "u8s8_exact": probe().exact,
    }


def save_report(report: dict[str, Any], out: Path | None, start: float) -> int:
    """Add ``wall_s`` (since ``start``), write ``report`` to ``out`` (if given) and print it; returns exit status 0."""
    report["wall_s"] = time.time() - start
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0

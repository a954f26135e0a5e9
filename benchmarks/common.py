"""What every benchmark script does at the end: stamp the wall time, write the JSON report, print it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

# The quant-aware defaults before config version 3 (α at balance, moved by the optimizer; steps learned from the task
# loss). Rows measured with them pin them, so that their commands still reproduce them.
EARLIER_QAT_DEFAULTS: dict[str, Any] = {"alpha_update": "optimizer", "alpha_start": 0.0, "step_rule": "task"}
EARLIER_QAT_FLAGS = ["--alpha-update", "optimizer", "--alpha-start", "0", "--step-rule", "task"]


def save_report(report: dict[str, Any], out: Path | None, start: float) -> int:
    """Add ``wall_s`` (since ``start``), write ``report`` to ``out`` (if given) and print it; returns exit status 0."""
    report["wall_s"] = time.time() - start
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0

"""The project's generic top-level names (models, runtime, exporters, toolchain) resolve to its own code in the
installed environment, from any working directory, whatever the user imported first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import onnxruntime.quantization  # appends onnxruntime/transformers, which holds a `models` folder, to sys.path
import exporters, models, runtime, toolchain
from models import create_model
from toolchain.cli.main import main
assert all(m.__file__.startswith({root!r}) for m in (exporters, models, runtime, toolchain)), [models.__file__]
print("ok")
"""


def test_onnxruntime_quantization_first_does_not_shadow_the_project(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as installed, not as the test runner sees it
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

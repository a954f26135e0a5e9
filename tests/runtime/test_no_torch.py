"""The runtime must deploy without torch."""

import subprocess
import sys

from tests.conftest import ROOT


def test_import_runtime_does_not_import_torch() -> None:
    code = "import sys, runtime, runtime.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"

"""`toolchain export` on a post-training-quantized LeNet: files, JSON summary, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sidecar_in


@pytest.fixture
def checkpoints(lenet_checkpoints) -> tuple[Path, Path]:
    return lenet_checkpoints["float"], lenet_checkpoints["w4"]


def test_export_writes_both_artefacts_and_reports_integer_kernels(cli, checkpoints, tmp_path: Path) -> None:
    _, qat = checkpoints
    done = cli("export", str(qat), "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    names = ["model.compressed.onnx", sidecar_in(tmp_path).name, "model.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert summary["float_kernels"] == {} and summary["integer_kernels"]["QLinearConv"] == 2
    assert summary["agreement"]["within_one"] >= 0.999
    table = cli("export", str(qat), "--out", str(tmp_path / "t"), "--no-sidecar").stdout
    assert "integer kernels: QGemm 3, QLinearConv 2" in table
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["model.onnx"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pt"], "does not exist"),
        (["FLOAT"], "quantize it first"),
        (["QAT", "--check-batch", "0"], "--check-batch"),
        (["QAT", "--name", "../up"], "--name"),
    ],
)
def test_export_errors_are_clear_and_leave_outputs(cli, checkpoints, tmp_path: Path, args, message) -> None:
    float_ckpt, qat = checkpoints
    (tmp_path / "model.onnx").write_bytes(b"earlier output")
    args = [{"FLOAT": str(float_ckpt), "QAT": str(qat)}.get(a, a) for a in args]
    done = cli("export", *args, "--out", str(tmp_path))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "model.onnx").read_bytes() == b"earlier output"

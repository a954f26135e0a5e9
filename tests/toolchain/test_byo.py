"""Bring your own model: the README's Python example runs as written; the CLI takes a user's factory and weights,
and an ImageNet-layout folder path as --data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, sidecar_in, subprocess_env


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- byo-example -->\s*```python\n(.*?)```\s*<!-- /byo-example -->", readme, re.S)
    assert block, "README lost its bring-your-own-model example"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "byo"})
    found = re.search(r"onnxruntime top-1 ([\d.]+) %", capsys.readouterr().out)
    assert found and float(found.group(1)) > 80
    assert sidecar_in(tmp_path / "runs/byo").is_file()


MYNETS = """
from torch import nn

def small_cnn(num_classes: int, in_chans: int = 1, width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )

def not_a_model(num_classes: int):
    return "a string"

class Unruled(nn.Module):  # PReLU, GroupNorm and ELU: no quantization rule for any, so each is a float island

    def __init__(self, num_classes: int, in_chans: int = 1, width: int = 8) -> None:
        super().__init__()
        self.conv1, self.act = nn.Conv2d(in_chans, width, 3, padding=1), nn.PReLU(width)
        self.norm, self.conv2 = nn.GroupNorm(2, width), nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        y = self.norm(self.act(self.conv1(x)))
        return self.fc(nn.functional.elu(self.conv2(y)).mean((2, 3)))
"""


def _toolchain(*args: str, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env()
    env["PYTHONPATH"] = f"{ROOT}:{pythonpath}"
    return subprocess.run(
        [sys.executable, "-m", "toolchain", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
    )


@pytest.mark.heavy
def test_compress_a_user_factory_from_its_own_weights(tmp_path: Path) -> None:
    (tmp_path / "mynets.py").write_text(MYNETS)
    sys.path.insert(0, str(tmp_path))
    try:
        import mynets

        torch.save(mynets.small_cnn(10).state_dict(), tmp_path / "small_cnn.pth")
    finally:
        sys.path.remove(str(tmp_path))
    out = tmp_path / "run"
    done = _toolchain("compress", "--model", "mynets:small_cnn", "--model-args", "width=8", "--weights",
                      str(tmp_path / "small_cnn.pth"), "--prune-epochs", "1", "--epochs", "1", "--protect", "first",
                      "--no-progress", "--json", "--out-dir", str(out), pythonpath=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results["float"]["params"] > 0 and results["export"]["float_kernels"] == {}
    assert results["prune"]["weight_sparsity"] > 0.3
    bad = _toolchain("compress", "--model", "mynets:not_a_model", "--out-dir", str(tmp_path / "bad"),
                     pythonpath=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "not a torch.nn.Module" in bad.stderr
    missing = _toolchain("compress", "--model", "nowhere:net", "--out-dir", str(tmp_path / "bad"), pythonpath=tmp_path)
    assert missing.returncode == 2 and "cannot import 'nowhere'" in missing.stderr


@pytest.mark.heavy
def test_compress_a_network_with_ops_that_have_no_rule(tmp_path: Path) -> None:
    """Float islands end to end: trained, pruned, exported with integer convolutions around them, listed by layer."""
    (tmp_path / "mynets.py").write_text(MYNETS)
    out = tmp_path / "run"
    done = _toolchain("compress", "--model", "mynets:Unruled", "--prune-epochs", "1", "--epochs", "1", "--ratio",
                      "0.3", "--no-progress", "--json", "--out-dir", str(out), pythonpath=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("float islands (no quantization rule") == 1
    assert "act (PReLU), norm (GroupNorm), elu (elu)" in done.stderr
    export = json.loads(done.stdout)["export"]
    assert export["integer_kernels"] == {"QLinearConv": 2, "QGemm": 1} and export["float_kernels"] == {}
    assert {"act/PRelu", "elu/Elu"} <= set(export["float_islands"])
    assert export["verify_failures"] == [] and export["onnxruntime"]["top1"] > 80


@pytest.mark.heavy
def test_compress_the_imagenet_mobilenet_v2_on_an_imagenet_layout_folder(tmp_path: Path) -> None:
    """The documented ImageNet command, on a tiny generated folder (2 classes, 64×64 crops, a few steps)."""
    from PIL import Image

    from toolchain.pretrained import imagenet_mobilenet_v2_path

    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    for split, count in (("train", 8), ("val", 4)):
        for cls in ("n01440764", "n01443537"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (72, 90, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.JPEG", format="JPEG")
    out = tmp_path / "run"
    done = _toolchain("compress", "--model", "mobilenet_v2", "--weights", str(imagenet_mobilenet_v2_path()),
                      "--model-args", "num_classes=1000", "--data", str(root), "--data-args", "image_size=64",
                      "--batch-size", "8", "--calib-batches", "1", "--prune-epochs", "1", "--epochs", "1",
                      "--ratio", "0.3", "--wbits", "8", "--no-progress", "--json", "--out-dir", str(out),
                      pythonpath=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results["export"]["integer_kernels"]["QLinearConv"] == 52 and results["export"]["float_kernels"] == {}
    from models import create_model
    from toolchain.pruning.selection import weighted_layers

    weights = sum(m.weight.numel() for _, m in weighted_layers(create_model("mobilenet_v2")))
    assert results["export"]["accounting"]["weight_params"] == weights
    assert (out / "report.md").is_file()

"""Checkpoints never choose code to import: a ``module:function`` model named by a file runs only when the user
names the same factory on the command line (``--model``), like ``trust_remote_code`` elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toolchain.config import TrainConfig
from toolchain.restore import restore
from toolchain.training import load_checkpoint, save_checkpoint, train
from toolchain.training.checkpoint import CheckpointError

FACTORY = """
from torch import nn


def tiny(num_classes=10, in_chans=1):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * 64, num_classes))
"""


def _attack(tmp_path: Path, marker: Path) -> Path:
    """A valid checkpoint whose config names ``os:system`` with a shell command as its model argument."""
    config = TrainConfig(model="os:system", model_args={"command": f"touch {marker}"}, data="digits")
    return save_checkpoint(tmp_path / "evil.pt", model={}, config=config.to_dict(), recipe="float")


@pytest.mark.parametrize("recipe", ["float", "qat"])
def test_restore_refuses_a_factory_named_by_the_file(tmp_path: Path, recipe: str) -> None:
    marker = tmp_path / "pwned"
    path = _attack(tmp_path, marker)
    if recipe == "qat":  # the QAT recipe rebuilds through the same factory
        from toolchain.quant.qat import QATConfig

        config = QATConfig(model="os:system", model_args={"command": f"touch {marker}"}, data="digits")
        path = save_checkpoint(tmp_path / "evil_qat.pt", model={}, config=config.to_dict(), recipe="qat")
    with pytest.raises(CheckpointError, match="never import code"):
        restore(path)
    with pytest.raises(CheckpointError, match="os:system"):
        restore(path, trusted_model="os:getcwd")  # naming another factory is no consent to this one
    assert not marker.exists()


@pytest.mark.parametrize("command", ["eval", "export", "verify"])
def test_cli_refuses_a_factory_named_by_the_checkpoint(cli, tmp_path: Path, command: str) -> None:
    marker = tmp_path / "pwned"
    path = _attack(tmp_path, marker)
    args = {"eval": [str(path)], "export": [str(path)], "verify": [str(tmp_path / "m.onnx"), "--qat", str(path)]}
    if command == "verify":  # verify loads the ONNX model first: give it a real one
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Identity", ["input"], ["output"])],
            "g",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 8, 8])],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    done = cli(command, *args[command])
    assert done.returncode == 2, done.stderr[-2000:]
    assert "never import code" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


def test_a_named_factory_is_trusted(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mynets_trust.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = TrainConfig(model="mynets_trust:tiny", data="digits", epochs=1, subset=64, out_dir=str(tmp_path / "run"))
    train(config, progress=False)
    path = tmp_path / "run" / "last.pt"
    with pytest.raises(CheckpointError):
        restore(path)
    restored = restore(path, trusted_model="mynets_trust:tiny")
    saved = load_checkpoint(path)["model"]
    assert all(torch.equal(restored.model.state_dict()[k], v) for k, v in saved.items())


def test_registry_models_need_no_consent(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", epochs=1, subset=64, out_dir=str(tmp_path / "run"))
    train(config, progress=False)
    assert restore(tmp_path / "run" / "last.pt").config.model == "lenet5"

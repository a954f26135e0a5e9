"""Distillation from a frozen float teacher (labels optional) and frozen batch-norm statistics in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from runtime import ToolchainError
from toolchain.compress import CompressConfig
from toolchain.config import TrainConfig
from toolchain.data import load_dataset
from toolchain.quant.qat import QATConfig, QATRecipe
from toolchain.training import load_checkpoint, train
from toolchain.training.distill import Objective, freeze_batch_norm
from toolchain.training.tasks import TASKS

from ..conftest import run_cli

CLS = TASKS["classification"]


def test_distillation_loss_is_tempered_kl_and_ignores_labels() -> None:
    torch.manual_seed(0)
    teacher = nn.Linear(6, 4)
    x, out = torch.randn(8, 6), torch.randn(8, 4, requires_grad=True)
    objective = Objective(CLS, TrainConfig(distill=1.0, temperature=2.0), teacher)
    loss = objective(out, x, torch.full((8,), -1))  # no labels at all
    with torch.no_grad():
        t = teacher(x)
    p, q = F.softmax(t / 2, 1), F.softmax(out / 2, 1)
    expected = 4 * (p * (p.log() - q.log())).sum(1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    assert out.grad is not None and teacher.weight.grad is None  # the teacher learns nothing
    same = Objective(CLS, TrainConfig(distill=1.0, temperature=3.0), teacher)
    assert same(t, x, torch.zeros(8, dtype=torch.long)).abs().item() < 1e-6


def test_labels_and_teacher_combine() -> None:
    teacher = nn.Linear(6, 4)
    x, out, y = torch.randn(8, 6), torch.randn(8, 4), torch.randint(0, 4, (8,))
    half = Objective(CLS, TrainConfig(distill=0.25), teacher)(out, x, y)
    task = F.cross_entropy(out, y)
    distilled = Objective(CLS, TrainConfig(distill=1.0), teacher)(out, x, y)
    assert torch.allclose(half, 0.75 * task + 0.25 * distilled, atol=1e-6)
    assert torch.allclose(Objective(CLS, TrainConfig())(out, x, y), task)


def test_objective_errors(tmp_path: Path) -> None:
    digits = load_dataset("digits")
    with pytest.raises(ToolchainError, match="needs a teacher"):
        Objective.build(CLS, TrainConfig(distill=1.0), digits, torch.device("cpu"))
    _unlabelled(tmp_path / "u", 2)
    unlabelled = load_dataset("unlabelled-folder", str(tmp_path / "u"), image_size=8)
    with pytest.raises(ToolchainError, match="no labels: train on a teacher's outputs with --distill 1"):
        Objective.build(CLS, TrainConfig(), unlabelled, torch.device("cpu"))
    with pytest.raises(ToolchainError, match="distill must be in"):
        TrainConfig(distill=1.5)


def test_frozen_batch_norm_keeps_its_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    before = model[1].running_mean.clone()
    model.train()
    assert freeze_batch_norm(model) == 1
    model(torch.randn(4, 1, 8, 8) + 3)
    assert torch.equal(model[1].running_mean, before) and model[0].training
    model.train()
    model(torch.randn(4, 1, 8, 8) + 3)
    assert not torch.equal(model[1].running_mean, before)


def test_qat_by_distillation_moves_the_student_to_the_teacher(tmp_path: Path) -> None:
    """W2A8 LeNet-5 trained on its float teacher's outputs alone gets closer to the teacher (KL on the test split)."""
    train(TrainConfig(out_dir=str(tmp_path / "float"), epochs=3, subset=512), progress=False)
    float_ckpt = str(tmp_path / "float" / "last.pt")

    def kl_to_teacher(run: str) -> float:
        from toolchain.restore import restore

        student, teacher = restore(tmp_path / run / "last.pt").model, restore(float_ckpt).model
        x = torch.cat([x for x, _ in restore(float_ckpt).bundle.test.batches(256)])
        with torch.no_grad():
            return float(Objective(CLS, TrainConfig(distill=1.0), teacher)(student(x), x, torch.full((len(x),), -1)))

    common = {"float_checkpoint": float_ckpt, "wbits": 2, "reg": "none", "subset": 512, "lr": 0.02}
    for run, epochs, extra in (("ptq", 0, {}), ("kd", 3, {"distill": 1.0, "temperature": 2.0, "freeze_bn": True})):
        config = QATConfig(out_dir=str(tmp_path / run), epochs=epochs, **common, **extra)
        train(config, recipe=QATRecipe(config), progress=False)
    assert kl_to_teacher("kd") < 0.8 * kl_to_teacher("ptq")


@pytest.mark.parametrize("freeze", [True, False])
def test_training_with_frozen_batch_norm_keeps_the_statistics(tmp_path: Path, freeze: bool) -> None:
    config = TrainConfig(model="resnet20_tiny", epochs=1, subset=64, freeze_bn=freeze, out_dir=str(tmp_path))
    train(config, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    assert means and all(torch.count_nonzero(m) == 0 for m in means) is freeze  # initial statistics: mean 0


def test_compress_teaches_every_phase_with_the_float_model() -> None:
    c = CompressConfig(float_checkpoint="float.pth", distill=1.0, out_dir="runs/x")
    assert c.phase("prune").teacher == "float.pth" and c.phase("qat").teacher == "float.pth"
    assert c.phase("qat").float_checkpoint.endswith("pruned.pt")  # the student starts pruned; the teacher is not
    assert CompressConfig(float_checkpoint="f.pth", distill=1.0, teacher="t.pth").phase("qat").teacher == "t.pth"
    assert CompressConfig(float_checkpoint="f.pth").phase("qat").teacher is None
    # a warm-up shared by the phases does not trip over a phase that trains nothing
    assert CompressConfig(float_checkpoint="f.pth", warmup_epochs=0.5, prune_epochs=0).phase("prune").epochs == 0


def _unlabelled(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"day{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"day{i % 2}" / f"{i}.jpg")
    return root


@pytest.mark.heavy
def test_compress_an_unlabelled_folder_by_distillation(tmp_path: Path) -> None:
    """The user's case: pretrained weights and a folder of unlabelled images, one command, a verified export."""
    from models import create_model

    data = _unlabelled(tmp_path / "photos", 24)
    torch.manual_seed(0)
    net = create_model("mobilenet_v2_tiny", in_chans=3, num_classes=10)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 32, 32))
    torch.save(net.state_dict(), tmp_path / "float.pth")
    out = tmp_path / "run"
    done = run_cli("compress", "--model", "mobilenet_v2_tiny", "--model-args", "num_classes=10", "--weights",
                   str(tmp_path / "float.pth"), "--data", "unlabelled-folder", "--data-dir", str(data),
                   "--data-args", "image_size=32", "--distill", "1", "--freeze-bn", "--batch-size", "8",
                   "--calib-batches", "1", "--prune-epochs", "1", "--epochs", "1", "--ratio", "0.3", "--protect",
                   "first,last", "--no-progress", "--json", "--out-dir", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results["prune"]["weight_sparsity"] > 0.1
    agreement = results["export"]["float_agreement"]
    assert agreement["n"] == 24 and 0 <= agreement["top1_agreement"] <= 1 and np.isfinite(agreement["logit_sqnr_db"])
    assert results["export"]["onnxruntime"]["n"] == 0  # nothing to score without labels, and no made-up number
    # then verify on a labelled folder (a class list of the model's 10 classes; val/ holds two of them), against
    # the float model given as plain weights: accuracy of both on the same images, and their agreement
    labelled = tmp_path / "labelled"
    (labelled / "val").mkdir(parents=True)
    (labelled / "classes.txt").write_text("".join(f"c{i} class {i}\n" for i in range(10)))
    for i, image in enumerate(sorted(data.rglob("*.jpg"))[:6]):
        (labelled / "val" / f"c{3 + i % 2}").mkdir(exist_ok=True)
        image.rename(labelled / "val" / f"c{3 + i % 2}" / image.name)
    checked = run_cli("verify", str(out / "export" / "model.compressed.onnx"), "--data", str(labelled), "--float",
                      str(tmp_path / "float.pth"), "--json")  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    assert report["metrics"]["onnxruntime"]["n"] == report["metrics"]["float"]["n"] == 6
    assert report["float_agreement"]["n"] == 6 and "top5" in report["metrics"]["float"]
    without = run_cli("compress", "--model", "mobilenet_v2_tiny", "--weights", str(tmp_path / "float.pth"), "--data",
                      "unlabelled-folder", "--data-dir", str(data), "--out-dir", str(tmp_path / "bad"))  # fmt: skip
    assert without.returncode == 2 and "--distill 1" in without.stderr

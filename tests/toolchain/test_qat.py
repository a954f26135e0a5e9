"""Quant-aware training end to end on tiny settings: CLI, plots, PTQ, resume, baselines, distributed."""

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import (
    assert_resume_after_kill_matches,
    help_text,
    toolchain_cmd,
    torchrun_two_processes_in_step,
)
from toolchain.quant.qat import QATConfig, QATRecipe
from toolchain.training import load_checkpoint, train


def _qat(float_ckpt: Path, out: Path, **kw) -> dict:
    config = QATConfig(float_checkpoint=str(float_ckpt), out_dir=str(out), **{"epochs": 1, "subset": 256, **kw})
    return train(config, recipe=QATRecipe(config), progress=False)


def test_qat_cli_writes_metrics_and_plots(cli, float_ckpt: Path, tmp_path: Path) -> None:
    done = cli(
        "qat",
        "--float-checkpoint",
        str(float_ckpt),
        "--wbits",
        "2",
        "--abits",
        "4",
        "--lam",
        "0.1",
        "--epochs",
        "2",
        "--subset",
        "512",
        "--no-progress",
        "--json",
        "--out-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["top1"] > 50 and 0 < result["near_level_share"] <= 1
    steps = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    per_step = [r for r in steps if "msqe" in r]
    assert len(per_step) == 2 * 16  # log_every=1: every step logs α, e^α, R_n and the task loss
    assert {"alpha", "coef", "msqe", "loss"} <= set(per_step[0])
    # the default coefficient starts a hundredth of its balance (4.6 e-folds) and rises
    assert per_step[0]["coef"] * per_step[0]["msqe"] == pytest.approx(0.1 * math.exp(-4.6), rel=0.05)
    assert per_step[-1]["alpha"] > per_step[0]["alpha"]
    for png in ("convergence.png", "weights.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evald = cli("eval", str(tmp_path / "last.pt"), "--json")
    assert evald.returncode == 0, evald.stderr[-2000:]
    assert json.loads(evald.stdout.strip().splitlines()[-1])["top1"] == pytest.approx(result["top1"])


def test_qat_help_documents_every_option() -> None:
    import dataclasses

    text = help_text("qat")
    for field in dataclasses.fields(QATConfig):
        assert "--" + field.name.replace("_", "-") in text


def test_post_training_quantization_is_epochs_zero(float_ckpt: Path, tmp_path: Path) -> None:
    result = _qat(float_ckpt, tmp_path, epochs=0, wbits=8, abits=8)
    assert result["steps"] == 0 and result["top1"] > 90  # W8A8 PTQ keeps LeNet's accuracy on digits
    assert load_checkpoint(tmp_path / "last.pt")["recipe"] == "qat"


def test_alpha_rises_as_msqe_falls(float_ckpt: Path, tmp_path: Path) -> None:
    """The paper's convergence picture on a small run: R_n falls, the learned coefficient rises."""
    _qat(float_ckpt, tmp_path, wbits=2, abits=8, lam=1.0, epochs=3, subset=None)
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"msqe"' in x]
    first, last = recs[0], recs[-1]
    assert last["msqe"] < first["msqe"] and last["alpha"] > first["alpha"]


def test_baselines_share_the_code_path(float_ckpt: Path, tmp_path: Path) -> None:
    results = {reg: _qat(float_ckpt, tmp_path / reg, reg=reg, wbits=3) for reg in ("none", "fixed", "msqe")}
    alphas = {
        reg: [
            json.loads(x)["alpha"]
            for x in (tmp_path / reg / "metrics.jsonl").read_text().splitlines()
            if '"alpha"' in x and '"msqe"' in x
        ]
        for reg in results
    }
    assert len(set(alphas["fixed"])) == 1 and len(set(alphas["none"])) == 1  # α frozen
    assert len(set(alphas["msqe"])) > 1  # α learned


def test_qat_requires_a_float_checkpoint(tmp_path: Path) -> None:
    from runtime import ToolchainError

    config = QATConfig(out_dir=str(tmp_path), epochs=1)
    with pytest.raises(ToolchainError, match="--float-checkpoint"):
        train(config, recipe=QATRecipe(config), progress=False)


@pytest.mark.heavy
def test_qat_resume_after_kill_matches_uninterrupted_run(float_ckpt: Path, tmp_path: Path) -> None:
    """Also with distillation: the teacher is rebuilt from its weights on resume, not checkpointed."""
    args = ["qat", "--wbits", "3", "--epochs", "2", "--subset", "512", "--save-every", "3", "--no-progress",
            "--distill", "0.5", "--temperature", "2"]  # fmt: skip
    a, b = assert_resume_after_kill_matches(toolchain_cmd(*args, "--float-checkpoint", str(float_ckpt)), tmp_path)
    assert torch.equal(a["recipe_state"]["regularizer"]["alpha"], b["recipe_state"]["regularizer"]["alpha"])


@pytest.mark.distributed
def test_qat_under_torchrun_keeps_alpha_and_steps_identical(float_ckpt: Path, tmp_path: Path) -> None:
    """Each process distils from its own copy of the teacher; the students stay in step."""
    args = ["qat", "--wbits", "2", "--lam", "1", "--epochs", "2", "--subset", "256", "--batch-size", "16",
            "--distill", "1"]  # fmt: skip
    evals = torchrun_two_processes_in_step(tmp_path, *args, "--float-checkpoint", str(float_ckpt))
    assert len(evals) == 2


def test_alpha_under_adamw_is_not_rescaled_by_lambda(float_ckpt: Path, tmp_path: Path) -> None:
    """Adam normalises gradient scale: a rate of alpha_lr/λ with a tiny λ moved α by thousands per step (inf loss)."""
    result = _qat(float_ckpt, tmp_path, wbits=8, optimizer="adamw", lr=1e-4, weight_decay=0.0, lam=3e-6, epochs=1,
                  alpha_update="optimizer", alpha_start=0.0)  # fmt: skip
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"alpha"' in x]
    alphas = [r["alpha"] for r in recs]
    assert result["top1"] > 50 and max(alphas) - min(alphas) < 1.0  # α moves by ≤ alpha_lr per step

"""Float training: it learns, checkpoints atomically, resumes exactly after a kill, and runs under torchrun."""

import json
from pathlib import Path

import pytest

from tests.conftest import assert_resume_after_kill_matches, toolchain_cmd, torchrun_two_processes_in_step
from toolchain.config import TrainConfig
from toolchain.modeling import build_model
from toolchain.training import CheckpointError, evaluate, load_bundle, load_checkpoint, train
from toolchain.training.optim import param_groups, warmup_cosine


def test_lenet_learns_digits(tmp_path: Path) -> None:
    result = train(TrainConfig(out_dir=str(tmp_path), epochs=8), progress=False)
    assert result["top1"] > 90.0
    assert (tmp_path / "config.toml").is_file() and TrainConfig.load(tmp_path / "config.toml").epochs == 8
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r.get("phase") == "eval"] == list(range(1, 9))
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert {"model", "optimizer", "scheduler", "rng", "config", "epoch", "step"} <= set(ckpt)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizers_reduce_loss(tmp_path: Path, optimizer: str) -> None:
    config = TrainConfig(out_dir=str(tmp_path), epochs=4, optimizer=optimizer, lr=0.1 if optimizer == "sgd" else 3e-3)
    bundle = load_bundle(config)
    before = evaluate(build_model("lenet5", bundle), bundle.test, "classification")
    assert train(config, progress=False)["loss"] < before["loss"] * 0.5


def test_schedule_warms_up_then_decays_to_zero() -> None:
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)


def test_no_weight_decay_on_biases_and_norms() -> None:
    from models import create_model

    decay, no_decay = param_groups(create_model("mobilenet_v2_tiny"), 1e-4)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)


@pytest.mark.heavy
def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path) -> None:
    """SIGKILL a run once it has checkpointed mid-way; resuming must end bit-identical to an uninterrupted run."""
    assert_resume_after_kill_matches(
        toolchain_cmd(*["train", "--epochs", "3", "--batch-size", "8", "--save-every", "5", "--no-progress"]), tmp_path
    )
    evals = [
        [json.loads(x)["top1"] for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines() if "top1" in x]
        for d in ("ref", "cut")
    ]
    assert evals[0] == evals[1]


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    from runtime import ToolchainError

    train(TrainConfig(out_dir=str(tmp_path), epochs=1, subset=64), progress=False)
    with pytest.raises(ToolchainError, match="different config"):
        train(TrainConfig(out_dir=str(tmp_path), epochs=1, subset=64, lr=0.01), resume=True, progress=False)


@pytest.mark.distributed
def test_torchrun_two_processes_stay_in_step(tmp_path: Path) -> None:
    evals = torchrun_two_processes_in_step(
        tmp_path, *["train", "--epochs", "2", "--batch-size", "16", "--subset", "512"]
    )
    assert len(evals) == 2
    # 512 samples over 2 processes of batch 16: 16 steps per epoch, not the single-process 32.
    assert evals[-1]["step"] == 32

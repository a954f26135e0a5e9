"""The quant-aware defaults cannot collapse: under a stiff MSQE pull (λ = 10, ternary weights) the default step rule
and coefficient schedule keep plain QAT's accuracy, where the earlier defaults (α at balance in the optimizer, steps
learned from the task loss) fail on the same run; a run that picks the collapsing combination is told so; ``qat``
rebuilds the network its float checkpoint records."""

from __future__ import annotations

import json
from pathlib import Path

from toolchain.config import TrainConfig
from toolchain.quant.qat import QATConfig, QATRecipe, collapse_risk
from toolchain.training import train

EARLIER = {"alpha_update": "optimizer", "alpha_start": 0.0, "step_rule": "task"}


def _top1(float_ckpt: Path, out: Path, **kw) -> float:
    config = QATConfig(float_checkpoint=str(float_ckpt), out_dir=str(out), wbits=2, abits=8, epochs=3, **kw)
    return train(config, recipe=QATRecipe(config), progress=False)["top1"]


def test_msqe_defaults_keep_plain_accuracy_under_a_stiff_pull(float_ckpt: Path, tmp_path: Path) -> None:
    plain = _top1(float_ckpt, tmp_path / "none", reg="none")
    default = _top1(float_ckpt, tmp_path / "msqe", reg="msqe", lam=10.0)  # everything else at its default
    earlier = _top1(float_ckpt, tmp_path / "earlier", reg="msqe", lam=10.0, **EARLIER)
    assert earlier < plain - 10, (earlier, plain)  # the pull is stiff enough to collapse the earlier defaults
    assert default > plain - 3, (default, plain)


def test_the_defaults_resolve_per_regularizer() -> None:
    assert (QATConfig(reg="msqe").steps_by, QATConfig(reg="msqe").alpha_below) == ("refit", 4.6)
    assert (QATConfig(reg="fixed").steps_by, QATConfig(reg="fixed").alpha_below) == ("refit", 0.0)
    assert QATConfig(reg="none").steps_by == "task"  # plain QAT's best measured rule
    assert QATConfig(reg="none", step_rule="refit").steps_by == "refit"  # the fair comparison names one rule
    assert collapse_risk(QATConfig()) is None and collapse_risk(QATConfig(reg="none", step_rule="task")) is None
    risk = collapse_risk(QATConfig(reg="fixed", step_rule="task"))
    assert risk is not None and "8.2 %" in risk and "\n" not in risk


def test_a_collapsing_choice_is_announced_at_start(cli, float_ckpt: Path, tmp_path: Path) -> None:
    args = ["qat", "--float-checkpoint", str(float_ckpt), "--epochs", "0", "--no-progress", "--json"]
    risky = cli(*args, "--step-rule", "task", "--out-dir", str(tmp_path / "risky"))
    assert risky.returncode == 0, risky.stderr[-2000:]
    assert [line for line in risky.stderr.splitlines() if line.startswith("warning:")] == [
        collapse_risk(QATConfig(step_rule="task"))
    ]
    quiet = cli(*args, "--out-dir", str(tmp_path / "quiet"))
    assert quiet.returncode == 0 and "warning:" not in quiet.stderr


def test_qat_builds_the_model_its_checkpoint_records(cli, tmp_path: Path) -> None:
    """A float checkpoint of mobilenet_v2_tiny: without --model, qat rebuilds it, not the default lenet5."""
    float_dir = tmp_path / "tiny"
    train(TrainConfig(model="mobilenet_v2_tiny", out_dir=str(float_dir), epochs=1, subset=256), progress=False)
    done = cli("qat", "--float-checkpoint", str(float_dir / "last.pt"), "--epochs", "0", "--no-progress", "--json",
               "--out-dir", str(tmp_path / "qat"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model='mobilenet_v2_tiny'" in done.stderr
    saved = json.loads(json.dumps(QATConfig.load(tmp_path / "qat" / "config.toml").to_dict()))
    assert saved["model"] == "mobilenet_v2_tiny"
    named = cli("qat", "--float-checkpoint", str(float_dir / "last.pt"), "--model", "lenet5", "--epochs", "0",
                "--no-progress", "--out-dir", str(tmp_path / "named"))  # fmt: skip
    assert named.returncode != 0 and "do not fit the model" in named.stderr  # the user's choice wins, clearly

"""The learnable coefficient's schedule: α can start below balance and rise at a constant, clipped rate outside the
main optimizer, stops once nearly all weights sit on their levels, and the steps can follow the MSQE (``msqe``)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from models.quant.prepare import weight_step
from toolchain.config import ConfigError
from toolchain.quant import QuantConfig, prepare_qat
from toolchain.quant.qat import QATConfig, QATRecipe
from toolchain.quant.regularizer import quant_weight_layers
from toolchain.quant.steps import refit_steps
from toolchain.training import train
from toolchain.training.penalty import LearnedPenalty


class _Constant(LearnedPenalty):
    """A penalty whose measure R is a fixed number, so α's update can be checked by hand."""

    def __init__(self, r: float, lam: float) -> None:
        super().__init__(lam, "learned")
        self.r = r
        self.count = 1

    def measure(self) -> torch.Tensor:
        return torch.tensor(self.r)


@pytest.mark.parametrize("below, expected_move", [(5.0, 0.1 * (1 - math.exp(-5))), (-5.0, -0.1), (0.0, 0.0)])
def test_relax_alpha_moves_towards_balance_at_most_its_rate(below: float, expected_move: float) -> None:
    penalty = _Constant(r=1e-3, lam=2.0)
    penalty.reset_alpha(below=below)
    start = penalty.alpha.item()
    assert start == pytest.approx(math.log(2.0 / 1e-3) - below)
    penalty()  # the forward pass records R for the update
    penalty.relax_alpha(0.1)
    assert penalty.alpha.item() - start == pytest.approx(expected_move, abs=1e-6)


def test_cap_binds_are_counted() -> None:
    penalty = _Constant(r=1e-3, lam=2.0)
    penalty.max_alpha = 1.0
    with torch.no_grad():
        penalty.alpha.fill_(5.0)  # above the cap, as an optimizer step may leave it
    penalty.clamp_alpha()
    penalty.clamp_alpha()
    assert penalty.alpha.item() == 1.0 and int(penalty.capped_steps) == 1


def test_msqe_step_rule_moves_each_step_part_way_to_the_fit() -> None:
    torch.manual_seed(0)
    model = prepare_qat(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), QuantConfig(wbits=3))
    layers = [m for _, m in quant_weight_layers(model)]
    with torch.no_grad():
        for m in layers:
            m.weight.mul_(1.3)
    before = [weight_step(m).clone() for m in layers]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    refit_steps(layers)
    fitted = [weight_step(m).clone() for m in layers]
    model.load_state_dict(state)
    refit_steps(layers, rate=0.25)
    for b, f, m in zip(before, fitted, layers):
        assert not torch.allclose(b, f)
        torch.testing.assert_close(weight_step(m), b + 0.25 * (f - b))


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha_update", "adam"),
        ("step_lr", 0.0),
        ("step_lr", 2.0),
        ("alpha_start", -1.0),
        ("alpha_rise", 0.0),
        ("step_rule", "lsq"),
    ],
)
def test_bad_schedule_settings_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        QATConfig(**{field: value})


def test_alpha_rises_from_below_balance_and_stops_on_the_levels(tmp_path: Path, lenet_checkpoints) -> None:
    config = QATConfig(float_checkpoint=str(lenet_checkpoints["float"]), out_dir=str(tmp_path), subset=512,
                       epochs=2, wbits=2, lam=10.0, lr=0.05, alpha_update="rise", alpha_start=3.0, alpha_rise=0.5,
                       alpha_stop=0.6, step_rule="msqe", step_lr=0.5)  # fmt: skip
    train(config, recipe=QATRecipe(config), progress=False)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "alpha" in r and "phase" not in r]
    last = [r for r in records if r.get("phase") == "eval"][-1]
    rate = 3.0 / (0.5 * len(steps))
    alphas = [r["alpha"] for r in steps]
    # Starts 3 e-folds under the balance log(λ/R): the logged α is after the first update.
    assert alphas[0] == pytest.approx(math.log(10.0 / steps[0]["msqe"]) - 3.0, abs=rate + 0.2)
    assert all(abs(b - a) <= rate + 1e-5 for a, b in itertools.pairwise(alphas))  # clipped, constant rate
    assert alphas[-1] - alphas[0] > 1.0  # it rose
    stopped = last["alpha_stopped_step"]
    assert stopped is not None and last["near_level_share"] >= 0.6
    assert len(set(alphas[stopped:])) == 1  # frozen from the stop on
    assert last["alpha_capped_steps"] == 0
    assert last["step_ratio_min"] > 0.8  # the msqe rule keeps the steps with their weights

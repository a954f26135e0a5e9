"""Step rules of quant-aware training: under a stiff MSQE pull, steps learned from the task loss drift down every
epoch; steps re-fitted by the closed-form MSQE minimiser (``refit``), or moved towards it by a gradient step on the
MSQE (``msqe``), stay where the weights put them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from toolchain.config import TrainConfig
from toolchain.quant import QuantConfig, prepare_qat
from toolchain.quant.qat import QATConfig, QATRecipe
from toolchain.quant.regularizer import MSQERegularizer, quant_weight_layers
from toolchain.quant.steps import refit_steps
from toolchain.training import train


def test_one_refit_never_increases_the_msqe() -> None:
    torch.manual_seed(0)
    model = prepare_qat(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), QuantConfig(wbits=3))
    layers = [m for _, m in quant_weight_layers(model)]

    msqe = MSQERegularizer(model, lam=1.0).msqe  # the production measure R_n
    with torch.no_grad():
        for m in layers:
            m.weight.mul_(1.3)  # the weights moved away from their initial, MSQE-optimal steps
    before = float(msqe().detach())
    refit_steps(layers)
    assert float(msqe().detach()) <= before * (1 + 1e-6)


@pytest.mark.heavy
def test_steps_do_not_drift_under_a_stiff_pull_with_the_refit_rule(tmp_path: Path) -> None:
    train(TrainConfig(out_dir=str(tmp_path / "float"), epochs=30), progress=False)
    minima = {}
    for rule in ("task", "refit", "msqe"):
        config = QATConfig(float_checkpoint=str(tmp_path / "float" / "last.pt"), out_dir=str(tmp_path / rule),
                           wbits=2, reg="msqe", lam=10.0, epochs=3, step_rule=rule,
                           alpha_update="optimizer", alpha_start=0.0)  # α at full strength from step 0  # fmt: skip
        train(config, recipe=QATRecipe(config), progress=False)
        lines = (tmp_path / rule / "metrics.jsonl").read_text().splitlines()
        evals = [json.loads(x) for x in lines if '"phase": "eval"' in x]
        minima[rule] = [e["step_ratio_min"] for e in evals]
        assert all(set(layer) == {"step_ratio", "norm_ratio"} for layer in evals[-1]["layers"].values())
    assert minima["task"][-1] < 0.95 and minima["task"] == sorted(minima["task"], reverse=True)  # the drift
    assert all(abs(r - 1) < 0.02 for r in minima["refit"])  # no drift
    assert all(abs(r - 1) < 0.05 for r in minima["msqe"])  # follows the weights, no collapse

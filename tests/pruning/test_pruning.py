"""Pruning: thresholds, protected layers, the partial L2 term and its gradient, hard pruning and masks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from runtime import ToolchainError
from toolchain.pruning import Masks, PartialL2Regularizer, hard_prune, prunable_layers, thresholds


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.Conv2d(8, 8, 3, groups=8),  # depthwise
        nn.Conv2d(8, 16, 1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_layer_and_global_thresholds_prune_the_requested_share() -> None:
    small, large = torch.randn(1000) * 0.01, torch.randn(3000)
    per_layer = thresholds([small, large], 0.5, "layer")
    assert [int((w.abs() <= t).sum()) for w, t in zip((small, large), per_layer)] == [500, 1500]
    theta = thresholds([small, large], 0.5, "global")
    assert theta[0] is theta[1]
    pruned = [int((w.abs() <= theta[0]).sum()) for w in (small, large)]
    assert sum(pruned) == 2000 and pruned[0] == 1000  # globally, the small-weight layer goes first
    assert int((large.abs() <= thresholds([large], 0.0, "layer")[0]).sum()) == 0
    with pytest.raises(ToolchainError):
        thresholds([large], 1.0, "layer")


def test_protect_rules_and_name_patterns() -> None:
    net = _net()
    assert [n for n, _ in prunable_layers(net)] == ["0", "1", "2", "4"]
    assert [n for n, _ in prunable_layers(net, ("first", "last", "depthwise"))] == ["2"]
    assert [n for n, _ in prunable_layers(net, ("[01]",))] == ["2", "4"]
    with pytest.raises(ToolchainError, match="neither a rule"):
        prunable_layers(net, ("classifier.*",))
    with pytest.raises(ToolchainError, match="leaves no layer"):
        prunable_layers(net, ("*",))


def test_partial_l2_gradient_reaches_only_the_weights_under_the_threshold() -> None:
    """∂P_r/∂w = 2w/N for |w| ≤ θ_r and 0 above; the coefficient starts at balance, e^β₀ = λ_p / P_r(W₀)."""
    layers = [nn.Linear(20, 30), nn.Linear(30, 10)]
    reg = PartialL2Regularizer(layers, ratio=0.6, scope="layer", lam=0.5, method="partial-l2")
    n = sum(m.weight.numel() for m in layers)
    r = reg.measure()
    assert math.isclose(math.exp(reg.alpha.item()), 0.5 / r.item(), rel_tol=1e-5)
    r.backward()
    for layer, theta in zip(layers, reg.thresholds()):
        w = layer.weight.detach()
        below = w.abs() <= theta
        torch.testing.assert_close(layer.weight.grad[below], 2 * w[below] / n)
        assert torch.all(layer.weight.grad[~below] == 0)
        assert abs(below.float().mean().item() - 0.6) < 0.01


def test_the_penalty_is_learned_for_partial_l2_and_absent_for_magnitude() -> None:
    layers = [nn.Linear(40, 40)]
    learned = PartialL2Regularizer(layers, 0.5, "layer", 1.0, "partial-l2")
    term, r = learned()
    assert learned.alpha.requires_grad
    torch.testing.assert_close(term, torch.exp(learned.alpha) * r - learned.alpha)
    plain = PartialL2Regularizer(layers, 0.5, "layer", 1.0, "magnitude")
    term, r = plain()
    assert float(term) == 0.0 and float(r) > 0 and not plain.alpha.requires_grad


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_masks_keep_pruned_weights_at_zero_through_training(optimizer: str) -> None:
    net = _net()
    layers = [m for _, m in prunable_layers(net)]
    hard_prune(layers, 0.5, "layer")
    zeros = [m.weight.detach() == 0 for m in layers]
    assert all(abs(z.float().mean().item() - 0.5) < 0.05 for z in zeros)
    masks = Masks.from_zeros(layers)
    assert len(masks) == len(layers) and masks.pruned == sum(int(z.sum()) for z in zeros)

    def train(steps: int, keep: bool) -> None:
        opt = (
            torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
            if optimizer == "sgd"
            else torch.optim.AdamW(net.parameters(), lr=0.01)
        )
        for _ in range(steps):
            loss = net(torch.randn(4, 3, 5, 5)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if keep:
                masks.apply()

    train(5, keep=True)
    assert all(torch.all(m.weight[z] == 0) for m, z in zip(layers, zeros))
    train(1, keep=False)  # without the masks the optimizer moves pruned weights at once
    assert any(torch.any(m.weight[z] != 0) for m, z in zip(layers, zeros))

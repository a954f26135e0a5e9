"""The learnable-coefficient penalty's stability cap: SGD stays stable at the cap and diverges past the limit."""

from __future__ import annotations

import math

import torch

from toolchain.training.penalty import LearnedPenalty, stability_cap


class _Quadratic(LearnedPenalty):
    """R = (1/N) Σ (w − t)², the form of both the MSQE and the partial-L2 terms."""

    def __init__(self, n: int) -> None:
        super().__init__(lam=1.0, kind="fixed")
        self.w = torch.nn.Parameter(torch.randn(n))
        self.target = torch.randn(n).round()
        self.count = n

    def measure(self) -> torch.Tensor:
        return ((self.w - self.target) ** 2).mean()


def _distance_after(alpha: float, lr: float, steps: int = 200) -> float:
    torch.manual_seed(0)
    q = _Quadratic(1000)
    q.alpha.data.fill_(alpha)
    start = float(q.measure().detach())
    opt = torch.optim.SGD([q.w], lr=lr, momentum=0.9, nesterov=True)
    for _ in range(steps):
        opt.zero_grad()
        q()[0].backward()
        opt.step()
    return float(q.measure().detach()) / start


def test_sgd_is_stable_at_the_cap_and_diverges_past_the_limit() -> None:
    lr = 0.01
    cap = stability_cap(1000, "sgd", lr, 0.9)
    assert _distance_after(cap, lr) < 1e-6  # converges onto the targets
    assert _distance_after(cap + math.log(1.9), lr) < 1e-6  # 0.95× the stability limit (2× the cap): still converges
    assert not _distance_after(cap + math.log(2.2), lr) < 1e3  # 1.1× the limit: explodes (to inf or nan)
    assert stability_cap(1000, "adamw", lr, 0.9) == math.inf


def test_clamp_alpha_and_reset_respect_the_cap() -> None:
    q = _Quadratic(100)
    q.max_alpha = 2.0
    q.reset_alpha()  # balance would be log(1 / R) ≈ log(1/1.1)... well under the cap
    assert q.alpha.item() < 2.0
    q.alpha.data.fill_(5.0)
    q.clamp_alpha()
    assert q.alpha.item() == 2.0
    q.target = q.w.detach().clone() + 1e-6  # R ≈ 1e-12: balance far above the cap
    q.reset_alpha()
    assert q.alpha.item() == 2.0

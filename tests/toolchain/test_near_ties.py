"""verify's allowance for near ties: images whose top-1 float noise alone decides (toolchain.agreement.near_ties)."""

from __future__ import annotations

import torch
from torch import nn

from models.quant.prepare import ActQuant
from toolchain.agreement import near_ties


def _grid() -> nn.Module:
    quant = ActQuant(8, signed=True)
    quant.set_step(1.0)  # outputs on the integers
    return nn.Sequential(quant).eval()


def test_an_output_on_a_rounding_boundary_is_a_near_tie_and_a_clear_winner_is_not() -> None:
    model = _grid()
    x = torch.tensor([
        [2.5, 2.6],  # 2.5 rounds to 2 or 3 by a 1e-6 jitter: (2, 3) -> class 1, (3, 3) -> class 0
        [1.0, 3.0],  # far from every boundary
        [3.2, 2.9],  # 3 against 3: an exact tie on the grid, but no jitter moves either value off it
    ])  # fmt: skip
    assert near_ties(model, x).tolist() == [True, False, False]
    assert near_ties(model, x, eps=0.0).tolist() == [False, False, False]  # no jitter, no flip

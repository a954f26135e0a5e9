"""Ops without a quantization rule (PReLU, GroupNorm, ``torch.erf``, ``x.exp()``) are float islands, not refusals.

Each runs in float between a DequantizeLinear and a QuantizeLinear, named by its layer, while the convolutions and
linear layers around it stay integer and the export agrees with its PyTorch model within ±1 output step. What torch
cannot export to ONNX fails at calibration, before training, naming the layer; a call that computes no tensor fails
at prepare.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.quant.islands import float_islands
from runtime import ToolchainError
from runtime.kernels import classify_kernels, optimized_graph
from tests.exporters.helpers import exported_and_agreeing
from toolchain.quant import QuantConfig, calibrate, prepare_qat


class Unruled(nn.Module):
    """A convolutional net whose every activation and normalization is one the quantizer has no rule for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.act, self.norm = nn.Conv2d(1, 8, 3, padding=1), nn.PReLU(8), nn.GroupNorm(2, 8)
        self.conv2, self.fc = nn.Conv2d(8, 8, 3), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.act(self.conv1(x)))
        y = torch.erf(self.conv2(y)).exp()
        return self.fc(y.mean((2, 3)))


def _calibrated(model: nn.Module) -> torch.fx.GraphModule:
    torch.manual_seed(0)
    gm = prepare_qat(model.eval(), QuantConfig(wbits=4))
    calibrate(gm, [torch.randn(16, 1, 8, 8) for _ in range(2)])
    return gm.eval()


def _kernels(gm: torch.fx.GraphModule) -> dict:
    """The kernels onnxruntime runs for the export of ``gm``, checked to agree with its PyTorch model ±1 step."""
    return classify_kernels(optimized_graph(exported_and_agreeing(gm).model.SerializeToString()))


def test_ops_without_a_rule_run_in_float_between_integer_layers_and_agree() -> None:
    gm = _calibrated(Unruled())
    assert float_islands(gm) == {"act": "PReLU", "norm": "GroupNorm", "erf": "erf", "exp": ".exp()"}
    kernels = _kernels(gm)
    assert kernels["float"] == {}  # both convolutions and the linear layer on integers
    assert kernels["integer"].get("QLinearConv") == 2 and kernels["integer"].get("QGemm") == 1
    islands = kernels["float_islands"]
    assert islands.get("act/PRelu") == "PRelu" and islands.get("erf/Erf") == "Erf" and islands.get("exp/Exp") == "Exp"
    assert any(name.startswith("norm/") for name in islands)  # GroupNorm as torch writes it, under its layer's name


def test_a_mask_from_a_comparison_passes_unquantized_into_where() -> None:
    """``torch.where(y > 0, y, 0.1 * y)``: the comparison's boolean mask gets no quantizer; onnxruntime runs the
    Where on integers."""

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.out = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x) + 0.25  # a tensor plus a number exports too
            return self.out(torch.where(y > 0, y, y * 0.1))

    gm = _calibrated(Masked())
    assert float_islands(gm) == {"gt": "gt", "where": "where"}
    kernels = _kernels(gm)
    assert kernels["integer"] == {"QLinearConv": 2, "QLinearWhere": 1}
    assert kernels["float_islands"].get("gt/Greater") == "Greater"


def test_an_island_onnx_cannot_express_fails_at_calibration_naming_the_layer() -> None:
    class Digamma(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.digamma(self.conv(x).abs() + 1)

    with pytest.raises(ToolchainError, match=r"float island 'digamma' \(digamma\) cannot be exported to ONNX"):
        _calibrated(Digamma())


def test_a_call_that_computes_no_tensor_is_refused_at_prepare() -> None:
    class Rank(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * x.dim()

    with pytest.raises(ToolchainError, match=r"\.dim\(\).*cannot run as a float island"):
        prepare_qat(Rank().eval(), QuantConfig())

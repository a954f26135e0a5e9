"""The blocks of today's mobile and vision networks: Hardswish and squeeze-excite (MobileNetV3), SiLU and a sigmoid
gate (EfficientNet), attention scores (q·kᵀ, softmax, ·v) and LayerNorm + GELU (transformers).

Each goes through prepare → calibrate → export → onnxruntime and agrees with the PyTorch model of the export within
±1 output step on ≥ 99.9 % of outputs. Every convolution and linear layer runs on integers; the other ops run on
integers where onnxruntime has a kernel (the asserted ones below) and are reported as float islands where it has
none.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from exporters import build_graph
from runtime.kernels import classify_kernels, describe_kernels, optimized_graph
from tests.exporters.helpers import exported_and_agreeing
from toolchain.quant import ActQuant, QuantConfig, calibrate, prepare_qat


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, act: nn.Module, gate: nn.Module) -> None:
        super().__init__()
        self.pool, self.reduce, self.act = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 2, 1), act
        self.expand, self.gate = nn.Conv2d(c // 2, c, 1), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block (Hardswish, SE with ReLU and Hardsigmoid) or EfficientNet's MBConv (SiLU, sigmoid)."""

    def __init__(self, act: type[nn.Module], se_act: type[nn.Module], gate: type[nn.Module], c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), act())
        self.expand = nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.BatchNorm2d(2 * c), act())
        self.depthwise = nn.Sequential(
            nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c, bias=False), nn.BatchNorm2d(2 * c), act()
        )
        self.se = SqueezeExcite(2 * c, se_act(), gate())
        self.project = nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 16), act(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return self.head(y + self.project(self.se(self.depthwise(self.expand(y)))))


class AttentionScores(nn.Module):
    """Single-head attention over the 64 positions of an 8×8 map: softmax(tᵀt / √c) applied to t."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.out = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2)  # N, C, T
        attention = torch.softmax(t.transpose(1, 2) @ t * 0.35, dim=-1)  # N, T, T
        return self.out((t @ attention).reshape(-1, 8, 8, 8))


class NormGelu(nn.Module):
    """LayerNorm over the positions, then GELU (erf or tanh form)."""

    def __init__(self, approximate: str) -> None:
        super().__init__()
        self.embed, self.norm = nn.Conv2d(1, 8, 3, padding=1), nn.LayerNorm(64)
        self.act, self.out = nn.GELU(approximate=approximate), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.norm(self.embed(x).flatten(2))).reshape(-1, 8, 8, 8))


BLOCKS = {
    "mobilenet_v3": (lambda: InvertedResidual(nn.Hardswish, nn.ReLU, nn.Hardsigmoid), {"QLinearMul": 1}),
    "efficientnet": (lambda: InvertedResidual(nn.SiLU, nn.SiLU, nn.Sigmoid), {"QLinearMul": 6, "QLinearSigmoid": 6}),
    "attention": (AttentionScores, {"QLinearMatMul": 2, "QLinearSoftmax": 1}),
    "layernorm_gelu": (lambda: NormGelu("none"), {}),
    "layernorm_gelu_tanh": (lambda: NormGelu("tanh"), {}),
}


def _prepared(factory: Callable[[], nn.Module]) -> torch.fx.GraphModule:
    torch.manual_seed(0)
    gm = prepare_qat(factory().eval(), QuantConfig(wbits=4))
    calibrate(gm, [torch.randn(16, 1, 8, 8) for _ in range(2)])
    return gm.eval()


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_exports_runs_on_integers_where_onnxruntime_can_and_agrees(name: str) -> None:
    built = exported_and_agreeing(_prepared(BLOCKS[name][0]))
    kernels = classify_kernels(optimized_graph(built.model.SerializeToString()))
    assert kernels["float"] == {}, kernels["float"]  # every convolution, linear layer and matrix product on integers
    weighted = sum(kernels["integer"].get(k, 0) for k in ("QLinearConv", "QGemm"))
    assert weighted == len(built.weights)
    for op, count in BLOCKS[name][1].items():
        assert kernels["integer"].get(op, 0) >= count, (op, kernels["integer"])
    assert "float islands" in describe_kernels(kernels)


def test_float_islands_are_named_by_layer() -> None:
    """LayerNorm and the GELU's erf have no integer kernel: they are listed by the PyTorch module's name."""
    gm = _prepared(BLOCKS["layernorm_gelu"][0])
    built = build_graph(gm, torch.randn(2, 1, 8, 8))
    islands = classify_kernels(optimized_graph(built.model.SerializeToString()))["float_islands"]
    assert islands.get("norm") == "LayerNormalization"
    assert islands.get("act.erf") == "Erf"
    assert not any(op.startswith("QLinear") or op in ("QuantizeLinear", "DequantizeLinear") for op in islands.values())


def test_gates_are_unsigned_and_a_negative_factor_is_signed() -> None:
    class Gates(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x))
            return torch.sigmoid(y) + y * -0.5 + y * 2.0

    gm = prepare_qat(Gates().eval(), QuantConfig())
    signed = {str(n.args[0]): gm.get_submodule(str(n.target)).signed for n in gm.graph.nodes
              if n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), ActQuant)}  # fmt: skip
    assert signed["sigmoid"] is False  # a gate in (0, 1)
    assert signed["mul"] is True  # relu output times −0.5
    assert signed["mul_1"] is False  # relu output times 2


class Elementwise(nn.Module):
    """Tanh, LeakyReLU, Hardtanh, clamp, subtraction and division by a number, between convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)
        self.leaky, self.hardtanh, self.out = nn.LeakyReLU(0.1), nn.Hardtanh(-0.5, 0.5), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), self.b(x)
        y = torch.tanh(a) - self.leaky(b) / 4 + self.hardtanh(b) - torch.clamp(a, min=0.0, max=1.5)
        return self.out(1.0 - y)


def test_elementwise_ops_export_and_agree() -> None:
    built = exported_and_agreeing(_prepared(Elementwise))
    ops = {n.op_type for n in built.model.graph.node}
    assert {"Tanh", "LeakyRelu", "Clip", "Sub", "Div"} <= ops

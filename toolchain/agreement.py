"""Agreement between a quant-aware PyTorch model and its exported graph, in units of the output step.

Both compute on the same integer grids, so their outputs should differ by at most one output quantization step
(float summation order can flip a rounding tie). ``compare`` reports the largest difference in steps and the
share of elements within ±1 step; the export issue's bar is ≥ 99.9 % within ±1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from models.quant.prepare import ActQuant
from runtime import ToolchainError

__all__ = ["WITHIN_ONE", "Agreement", "compare", "near_ties", "noise_floor", "output_step"]

WITHIN_ONE = 0.999  # the bar: share of outputs within ±1 step of the PyTorch model of the export


@dataclass(frozen=True)
class Agreement:
    max_steps: float
    within_one: float  # share of elements with |a − b| ≤ 1 step
    elements: int

    def ok(self, share: float = WITHIN_ONE) -> bool:
        return self.within_one >= share

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_step(model: fx.GraphModule) -> float:
    """Step of the quantizer on the (single) output of a model returned by ``prepare_qat``.

    The output may be a data-movement op (e.g. ESPCN's pixel shuffle) of a quantized tensor: walk back to it.
    """
    src = next(n for n in model.graph.nodes if n.op == "output").args[0]
    while isinstance(src, fx.Node) and src.op in ("call_module", "call_function", "call_method"):
        if src.op == "call_module" and isinstance(model.get_submodule(str(src.target)), ActQuant):
            return float(model.get_submodule(str(src.target)).step())  # type: ignore[operator]
        src = src.args[0] if src.args else None
    raise ToolchainError("the model's output is not quantized; was it built by prepare_qat?")


def compare(reference: np.ndarray, candidate: np.ndarray, step: float) -> Agreement:
    """Differences of ``candidate`` from ``reference`` in output steps."""
    if reference.shape != candidate.shape:
        raise ToolchainError(f"output shapes differ: {reference.shape} vs {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64)) / step
    within = float(np.mean(diff <= 1.0 + 1e-3)) if diff.size else 1.0
    return Agreement(float(diff.max(initial=0.0)), within, int(diff.size))


@torch.no_grad()
def noise_floor(
    reference: torch.nn.Module, x: torch.Tensor, step: float, eps: float = 1e-6, seed: int = 1
) -> Agreement:
    """``reference`` (a PyTorch model of the export) against itself with every activation quantizer's input scaled by
    ``1 + U(-eps, eps)``: how far float-level differences alone move this network's outputs. Deep networks with
    large per-layer gains (ImageNet MobileNetV2: depthwise layers up to 24 output steps per input step) turn a single
    flipped rounding tie into many changed outputs, so no float implementation, onnxruntime included, can agree
    with another better than this."""
    clean = reference(x).numpy()
    return compare(clean, _jittered(reference, x, eps, seed).numpy(), step)


def _jittered(model: torch.nn.Module, x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """``model(x)`` with every activation quantizer's input scaled by ``1 + U(-eps, eps)`` (one draw, ``seed``)."""
    noise = torch.Generator().manual_seed(seed)

    def jitter(_module: Any, args: tuple[Any, ...]) -> tuple[torch.Tensor]:
        return (args[0] * (1 + (torch.rand(args[0].shape, generator=noise) * 2 - 1) * eps),)

    hooks = [m.register_forward_pre_hook(jitter) for m in model.modules() if isinstance(m, ActQuant)]
    try:
        return model(x)
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def near_ties(model: torch.nn.Module, x: torch.Tensor, eps: float = 1e-6, draws: int = 8) -> torch.Tensor:
    """Per image of ``x``: whether ``model``'s top-1 class changes under a 1e-6 jitter of its activation quantizers'
    inputs in any of ``draws`` draws. Such an image is a near tie that float noise alone decides, so another float
    implementation of the same integer network (onnxruntime) may rank it either way."""
    clean = model(x).argmax(dim=1)
    flipped = torch.zeros(len(x), dtype=torch.bool)
    for seed in range(1, draws + 1):
        flipped |= _jittered(model, x, eps, seed).argmax(dim=1) != clean
    return flipped

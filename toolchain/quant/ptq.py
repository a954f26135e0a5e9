"""Post-training reconstruction after calibration, on Brevitas's algorithms: the ``--ptq`` stages.

Calibration sets every step; the weights are then still rounded to the nearest level (RTN). A pretrained network
at 4 bits loses most of its accuracy that way. The literature closes the gap with post-training reconstruction on
a few hundred unlabelled images, and Brevitas, a core dependency, ships the algorithms; this module runs them on a
prepared model, in order, and leaves it in the form the rest of the toolchain expects. Stages, by name:

* ``bias-correction`` – Brevitas's ``bias_correction_mode``: each layer's output mean error against its float
  computation (same quantized input) is added to its bias. A convolution without a bias whose batch norm follows
  takes the correction into that batch norm's running mean instead (the same function: BN(x + b) with μ − b), so
  the model keeps its parameters; elsewhere a layer without a bias is left as it was.
* ``gptq`` – Brevitas's GPTQ (optimal-brain-compression order, ``act_order``): weights are quantized column by
  column, and each column's error is spread over the columns not yet quantized, using the layer's input Hessian
  from the calibration images. Pruned weights stay exactly 0 (:func:`_masked_gptq`).
* ``gpfq`` / ``qronos`` – Brevitas's GPFQ and Qronos (error-correcting path following), where installed.
* ``learned-round`` – AdaRound on Brevitas's learned-round quantizer, layer by layer (:mod:`.rounding`).
* ``calibrate`` – re-fit the activation steps to the reconstructed weights.

Every stage keeps the steps (the weight quantizers' thresholds are not touched), so after a stage that moves
weights they are snapped onto ``δ · level`` (GPFQ and Qronos leave float weights off the grid), pruned weights are
re-zeroed, and the original-weight buffers Brevitas adds are dropped: the result is exactly what the exporter
freezes and ships (batch norm folded, integer bias). With the weights on their levels the MSQE regularizer's
measure is 0 and its balance coefficient infinite: after ``gptq``/``gpfq``/``qronos``, train with ``--reg none``
(a regularizer starts at its stability cap; :func:`toolchain.quant.qat.collapse_risk` says so).
Stages run under ``torch.no_grad`` in eval mode, on one process (GPTQ and GPFQ do not synchronise ranks): under
torchrun every rank runs them on the same batches.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from models.quant.freeze import following_bn
from models.quant.prepare import calibrate, weight_bits, weight_step
from models.quant.quantizers import quantize_levels
from runtime import ToolchainError

from ..pruning.masks import Masks
from .regularizer import quant_weight_layers

__all__ = ["MOVES_WEIGHTS", "PTQ_STAGES", "CalibrationBatches", "parse_stages", "reconstruct"]

Stage = Callable[[nn.Module, "CalibrationBatches"], None]
PTQ_STAGES: dict[str, Stage] = {}
MOVES_WEIGHTS: set[str] = set()  # stages that change the weights (the others change biases or steps)


def register_stage(name: str, moves_weights: bool = False) -> Callable[[Stage], Stage]:
    def deco(fn: Stage) -> Stage:
        PTQ_STAGES[name] = fn
        if moves_weights:
            MOVES_WEIGHTS.add(name)
        return fn

    return deco


class CalibrationBatches:
    """The calibration images as input batches, iterable any number of times (reconstruction passes over them once
    per layer): read once from ``source`` (an iterable of ``(x, y)`` or of ``x``), at most ``count`` batches, kept
    in memory on ``device``."""

    def __init__(self, source: Iterable[Any], count: int, device: torch.device | str = "cpu") -> None:
        self._batches = [
            (item[0] if isinstance(item, tuple | list) else item).to(device) for item in itertools.islice(source, count)
        ]
        if not self._batches:
            raise ToolchainError("no calibration batches: the training split is empty")

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._batches)

    @property
    def images(self) -> int:
        return sum(len(x) for x in self._batches)


def parse_stages(spec: str) -> list[str]:
    """``"gptq,bias-correction"`` → the stage names, checked against the registry (``""``: none, RTN)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in PTQ_STAGES]
    if unknown:
        raise ToolchainError(f"unknown --ptq stage(s) {unknown}; choose from {', '.join(PTQ_STAGES)}")
    return names


@torch.no_grad()
def reconstruct(
    model: nn.Module, batches: CalibrationBatches, stages: list[str], log: Callable[[str], None] = lambda s: None
) -> dict[str, float]:
    """Run ``stages`` in order on the prepared, calibrated ``model``; returns each stage's wall time in seconds."""
    if not stages:
        return {}
    masks = Masks.from_zeros([m for _, m in quant_weight_layers(model)])
    was_training = model.training
    model.eval()
    times = {}
    try:
        for name in stages:
            start = time.perf_counter()
            PTQ_STAGES[name](model, batches)
            times[name] = time.perf_counter() - start
            log(f"ptq {name}: {times[name]:.1f} s on {batches.images} images")
    finally:
        if MOVES_WEIGHTS & set(stages):  # weights onto their levels: then R_n = 0 for the MSQE regularizer
            _on_grid(model)
        masks.apply()
        model.train(was_training)
    return times


def _on_grid(model: nn.Module) -> None:
    """Weights onto ``δ · level`` with the layer's own step; Brevitas's ``weight_orig`` buffers dropped."""
    layer: Any
    for _, layer in quant_weight_layers(model):
        step = weight_step(layer).detach()
        layer.weight.copy_(step * quantize_levels(layer.weight, step, weight_bits(layer)))
        layer._buffers.pop("weight_orig", None)


@register_stage("calibrate")
def _recalibrate(model: nn.Module, batches: CalibrationBatches) -> None:
    calibrate(model, batches)


@register_stage("bias-correction")
def _bias_correction(model: nn.Module, batches: CalibrationBatches) -> None:
    from brevitas.graph.calibrate import bias_correction_mode

    had_bias = {name for name, m in quant_weight_layers(model) if m.bias is not None}
    with bias_correction_mode(model):
        for x in batches:
            model(x)
    layer: Any
    for name, layer in quant_weight_layers(model):
        if name in had_bias or layer.bias is None:
            continue
        correction = layer.bias.detach()
        layer.register_parameter("bias", None)  # Brevitas added it: move it where the model has one, or drop it
        bn = following_bn(model, name) if isinstance(model, torch.fx.GraphModule) else None
        mean: Any = bn[1].running_mean if bn is not None else None
        if mean is not None:
            mean.sub_(correction)


@functools.cache
def _masked_gptq() -> type:
    """Brevitas's GPTQ with pruned weights held at level 0: the quantized column is multiplied by the layer's
    non-zero mask, so the error that GPTQ spreads accounts for the zeros (a class built on first use, since Brevitas
    is imported late)."""
    from brevitas.graph.gptq import GPTQ
    from brevitas.graph.utils import is_conv_transposed

    class MaskedGPTQ(GPTQ):  # type: ignore[misc, valid-type]
        def __init__(self, layer: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(layer, *args, **kwargs)
            w = layer.weight.detach()
            w = w.transpose(1, 0) if is_conv_transposed(layer) else w
            flat = w.flatten(1)
            self.keep = (flat != 0).view(self.groups, -1, flat.shape[-1])  # groups × out/groups × in

        def get_quant_weights(self, i: int, i1: int, permutation_list: Any, with_quant_history: bool = False):
            q = super().get_quant_weights(i, i1, permutation_list, with_quant_history)
            column = [p[i1 + i] for p in permutation_list]
            mask = torch.stack([self.keep[g, :, column[g]] for g in range(self.groups)])
            return q * mask.to(q.dtype).view(q.shape)

    return MaskedGPTQ


def _device(model: nn.Module) -> str:
    return str(next(model.parameters()).device)


def _layerwise(mode: Any, model: nn.Module, batches: CalibrationBatches) -> None:
    """Drive one of Brevitas's layer-by-layer modes: a pass over the batches per layer, then its update."""
    with mode as algo:
        for _ in range(algo.num_layers):
            for x in batches:
                algo.model(x)
            algo.update()


@register_stage("gptq", moves_weights=True)
def _gptq(model: nn.Module, batches: CalibrationBatches) -> None:
    from brevitas.graph.gptq import gptq_mode

    mode = gptq_mode(model, act_order=True, gptq_class=_masked_gptq(), device=_device(model))
    _layerwise(mode, model, batches)


@register_stage("learned-round", moves_weights=True)
def _learned_round(model: nn.Module, batches: CalibrationBatches) -> None:
    from .rounding import learned_rounding

    learned_rounding(model, quant_weight_layers(model), batches)


@register_stage("gpfq", moves_weights=True)
def _gpfq(model: nn.Module, batches: CalibrationBatches) -> None:
    from brevitas.graph.gpfq import gpfq_mode

    _layerwise(gpfq_mode(model, act_order=True, device=_device(model)), model, batches)


@register_stage("qronos", moves_weights=True)
def _qronos(model: nn.Module, batches: CalibrationBatches) -> None:
    from brevitas.graph.gpfq import gpfq_mode
    from brevitas.graph.qronos import Qronos

    impl = functools.partial(Qronos, alpha=1e-6)
    _layerwise(gpfq_mode(model, act_order=True, algorithm_impl=impl, device=_device(model)), model, batches)

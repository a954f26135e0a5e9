"""Learned rounding (AdaRound), layer by layer, on Brevitas's learned-round quantizer: the ``learned-round`` stage.

Round-to-nearest picks each weight's level on its own. AdaRound instead learns, per weight, whether to round down
or up so that the *layer's output* matches its float computation on the calibration images. Brevitas ships the
pieces (the ``LearnedRoundSte`` quantizer with a hard-sigmoid rounding variable, its initialisation, and the
annealed regulariser that drives every variable to 0 or 1, in ``brevitas_examples.common.learned_round``); this
module drives them the way a 2-core CPU affords:

1. every weight quantizer gets a learned-round variable (initialised so that it rounds to the nearest level);
2. for each layer in graph order: its input is captured from the quantized model (earlier layers already rounded,
   so their error is what this layer learns to absorb) and its target output from the same model with every
   quantizer off; both passes stop at the layer. ``ITERATIONS`` Adam steps on batches of ``BATCH`` rows then fit
   the rounding variables (Brevitas's example defaults to 1,000 per layer, which issue 28's trial run extrapolated
   to 5–6 hours for MobileNetV2 on 2 cores);
3. the hard rounding is baked in: the weights become ``δ · level`` and each layer gets its ordinary
   round-to-nearest quantizer back with its step unchanged, so the model's parameters and checkpoints are exactly
   those of any other stage.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.quant.prepare import weight_threshold

ITERATIONS = 200  # Adam steps per layer
BATCH = 32  # rows (images) per step
RATE = 1e-2  # Adam's rate on the rounding variables
REG_WEIGHT = 0.01  # the regulariser's weight (Brevitas's default)


class _Stop(Exception):
    """Raised by a hook once the layer of interest has run: the rest of the forward pass is not needed."""


def _at_layer(model: nn.Module, layer: nn.Module, batches: Any, quantized: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's input and output over every calibration batch, with the model quantized or with every quantizer
    off (the float computation); each forward pass stops once the layer has run."""
    from brevitas.graph.calibrate import quantization_status_manager

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.append((args[0].detach(), out.detach()))
        raise _Stop

    handle = layer.register_forward_hook(hook)
    off = dict(disable_act_quant=True, disable_weight_quant=True, disable_bias_quant=True, is_training=False)
    try:
        with torch.no_grad():
            for x in batches:
                try:
                    if quantized:
                        model(x)
                    else:
                        with quantization_status_manager(model, **off):
                            model(x)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return torch.cat([i for i, _ in seen]), torch.cat([o for _, o in seen])


def _fit(layer: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> None:
    """Fit one layer's rounding variables: output error plus the annealed rounding regulariser."""
    from brevitas.core.function_wrapper.learned_round import LearnedRoundSte
    from brevitas_examples.common.learned_round.learned_round_method import RoundRegularisationLoss

    (rounding,) = [m for m in layer.modules() if isinstance(m, LearnedRoundSte)]
    rounding.train()
    optimizer = torch.optim.Adam([rounding.value], lr=RATE)
    regulariser = RoundRegularisationLoss(layer, weight=REG_WEIGHT, max_count=ITERATIONS, b_range=(20, 2), warmup=0.2)
    draw = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for _ in range(ITERATIONS):
            rows = torch.randint(len(inputs), (min(BATCH, len(inputs)),), generator=draw)
            out = layer(inputs[rows])
            error = F.mse_loss(out, target[rows], reduction="none").flatten(1).sum(1).mean()
            loss = error + regulariser(out, target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    rounding.eval()


def learned_rounding(model: nn.Module, layers: list[tuple[str, Any]], batches: Any) -> None:
    """AdaRound on ``layers`` (``(name, quant layer)`` in graph order) of the calibrated ``model``; the weights end
    on their levels under the layers' own round-to-nearest quantizers (steps unchanged)."""
    from brevitas.inject.enum import LearnedRoundImplType
    from brevitas_examples.common.learned_round.learned_round_method import insert_learned_round_quantizers

    injectors = {name: layer.weight_quant.quant_injector for name, layer in layers}
    insert_learned_round_quantizers(model, LearnedRoundImplType.HARD_SIGMOID)
    model.eval()
    for _, layer in layers:
        inputs, _ = _at_layer(model, layer, batches, quantized=True)
        _, target = _at_layer(model, layer, batches, quantized=False)
        _fit(layer, inputs, target)
    with torch.no_grad():
        for name, layer in layers:
            threshold = weight_threshold(layer).detach().clone()
            on_grid = layer.quant_weight().value.detach().clone()
            layer.weight_quant.quant_injector = injectors[name]
            layer.weight_quant.init_tensor_quant()  # round to nearest again, with a fresh threshold parameter
            weight_threshold(layer).copy_(threshold)
            layer.weight.copy_(on_grid)

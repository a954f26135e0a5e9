"""Trained weight levels for the coder benchmarks: every weighted layer of a model, magnitude-pruned per layer to a
sparsity (all layers: this measures coders, not accuracy) and quantized with per-channel MSQE-optimal steps, the
levels the exporter writes (batch-norm folding changes only per-channel steps)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models import create_model
from models.quant.quantizers import msqe_optimal_step, quantize_levels
from toolchain.modeling import load_weights
from toolchain.pretrained import imagenet_mobilenet_v2_path
from toolchain.pruning import hard_prune
from toolchain.pruning.selection import weighted_layers

MODELS: dict[str, tuple[str, dict, Callable[[], str]]] = {
    "fmnist_mbv2_w05": (
        "mobilenet_v2_small",
        {"width_mult": 0.5, "num_classes": 10, "in_chans": 1},
        lambda: "runs/float/mbv2_w05_fmnist/last.pt",
    ),
    "fmnist_shv2_x05": (
        "shufflenet_v2_x0_5_small",
        {"num_classes": 10, "in_chans": 1},
        lambda: "runs/float/shv2_x05_fmnist/last.pt",
    ),
    "imagenet_mbv2": ("mobilenet_v2", {}, lambda: str(imagenet_mobilenet_v2_path())),
}


def tensor_levels(name: str, bits: int, sparsity: float) -> list[np.ndarray]:
    """Per-tensor int8 levels of every weighted layer of ``name``, pruned to ``sparsity`` and quantized."""
    model_name, args, weights = MODELS[name]
    model = load_weights(create_model(model_name, **args), weights())
    layers = [m for _, m in weighted_layers(model)]
    if sparsity:
        hard_prune(layers, sparsity, "layer")
    out = []
    with torch.no_grad():
        for m in layers:
            w = m.weight.detach()
            step = msqe_optimal_step(w, bits, per_channel=True)
            out.append(quantize_levels(w, step, bits).to(torch.int8).numpy().reshape(-1))
    return out

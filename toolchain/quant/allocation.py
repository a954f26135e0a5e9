"""Bits and pruning chosen per layer under a size budget: measure each choice, solve a knapsack, apply it.

``compress --target-ratio R`` (or ``--size-kib N``) names the size of what rebuilds the model's parameters, the
sidecar file plus the int32 biases (:mod:`runtime.accounting`). The allocation meets it in three steps:

1. **Measure.** For each weighted layer and each option (a bit-width, and a share of the layer's weights pruned by
   magnitude first), that layer alone is pruned and rounded to its levels, with the step ``prepare_qat`` would
   give it (the MSQE-optimal one), in the float model; every other layer stays float. Its *sensitivity* is the
   mean squared change of the network's output on held-out training images, over the output's mean square (the
   relative noise power the choice adds). Quantization noise from different layers adds nearly independently, so a
   sum over layers estimates the whole network's. Its *size* is exact: the rounded levels are coded with the
   sidecar's own codec choice (:func:`runtime.codecs.choose_codec`), so the allocation counts coded bytes, which
   entropy coding makes far from nominal bits (a 4-bit layer of mostly small weights codes in about 3 bits).
2. **Solve.** One option per layer, least total sensitivity, total coded bytes within the budget: a 0/1 integer
   program solved by scipy's ``milp`` (HiGHS).
3. **Apply.** The chosen ratios prune the float model by magnitude (QAT keeps those zeros) and the chosen bits
   become ``layer_wbits``; calibration, reconstruction (``--ptq``) and export then run as for any other model.

The budget covers the sidecar's header too (steps, records, the exporting configuration), measured once: it does
not depend on the bits chosen. What the allocation
cannot know is how reconstruction or training moves the levels; the export's real size is reported beside the
budget (BENCHMARKS.md: within 2 % on ImageNet MobileNetV2).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from models.quant.freeze import bn_folded, out_channels
from models.quant.quantizers import BITS_RANGE, msqe_optimal_step, quantize_levels
from runtime import ToolchainError
from runtime.codecs import choose_codec
from runtime.fileio import native_stdout_to
from runtime.sidecar import CHUNK_LEVELS, SidecarTensor, encode_sidecar

from ..progress import bar_disable
from ..pruning.selection import thresholds, weighted_layers

__all__ = ["Allocation", "LayerCosts", "Option", "allocate", "measure", "parse_options", "prune_to", "solve"]


@dataclasses.dataclass(frozen=True)
class Option:
    """One choice for a layer: its weight bits and the share of its weights pruned by magnitude before rounding."""

    bits: int
    ratio: float = 0.0

    @property
    def label(self) -> str:
        return f"W{self.bits}" + (f", {100 * self.ratio:g} % pruned" if self.ratio else "")


def parse_options(bits: str, ratios: str) -> list[Option]:
    """Every (bits, ratio) pair of two comma-separated lists, e.g. ``"2,3,4,8"`` and ``"0,0.5"``."""
    try:
        b = sorted({int(x) for x in bits.split(",") if x.strip()})
        r = sorted({float(x) for x in ratios.split(",") if x.strip()})
    except ValueError:
        raise ToolchainError(
            f"allocation options must be comma-separated numbers, got {bits!r} and {ratios!r}"
        ) from None
    if not b or any(x not in BITS_RANGE for x in b):
        raise ToolchainError(f"allocation bits must be 2…8, got {bits!r}")
    if not r or any(not 0 <= x < 1 for x in r):
        raise ToolchainError(f"allocation pruning ratios must be in [0, 1), got {ratios!r}")
    return [Option(x, y) for x in b for y in r]


@dataclasses.dataclass
class LayerCosts:
    """One layer's measured options: sensitivity (relative output noise power) and exact coded bytes, per option."""

    name: str
    params: int
    sensitivity: list[float]
    coded_bytes: list[int]


@torch.no_grad()
def prune_to(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """``weight`` with its smallest-magnitude ``ratio`` share set to 0 (the zeros it had count towards it)."""
    if ratio <= 0:
        return weight
    (theta,) = thresholds([weight], ratio, "layer")
    return torch.where(weight.abs() <= theta, torch.zeros_like(weight), weight)


@torch.no_grad()
def rounded(weight: torch.Tensor, option: Option, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight on its levels, the levels, the steps): pruned, then rounded with the step ``prepare_qat`` fits."""
    pruned = prune_to(weight, option.ratio)
    step = msqe_optimal_step(pruned, option.bits, per_channel)
    levels = quantize_levels(pruned, step, option.bits)
    return levels * step, levels, step


def _coded_bytes(levels: torch.Tensor, bits: int, codecs: tuple[str, ...] | None) -> int:
    _, pieces = choose_codec(levels.to(torch.int8).numpy(), bits, codecs, chunk_levels=CHUNK_LEVELS)
    return sum(map(len, pieces))


@torch.no_grad()
def measure(
    model: nn.Module,
    batches: Sequence[torch.Tensor],
    options: Sequence[Option],
    *,
    per_channel: bool = True,
    codecs: tuple[str, ...] | None = None,
    progress: bool = True,
) -> list[LayerCosts]:
    """Sensitivity and coded bytes of every option for every weighted layer of ``model`` (see the module docstring).

    ``model`` is restored as it was; ``batches`` are input tensors (held-out training images)."""
    from tqdm import tqdm

    model.eval()
    reference = [model(x) for x in batches]
    power = sum(float(r.double().pow(2).sum()) for r in reference) / sum(r.numel() for r in reference)
    if not power > 0:
        raise ToolchainError("the model's outputs on the sensitivity images are all 0: nothing to measure against")
    layers: list[tuple[str, Any]] = weighted_layers(model)
    costs = []
    bar = tqdm(total=len(layers) * len(options), desc="sensitivity", unit="option", disable=bar_disable(progress))
    for name, layer in layers:
        original = layer.weight.detach().clone()
        sens, sizes = [], []
        by_channel = per_channel and not isinstance(layer, nn.ConvTranspose2d)  # as prepare_qat steps it
        for option in options:
            quantized, levels, _ = rounded(original, option, by_channel)
            layer.weight.copy_(quantized)
            noise = sum(float((model(x) - r).double().pow(2).sum()) for x, r in zip(batches, reference))
            sens.append(noise / (power * sum(r.numel() for r in reference)))
            sizes.append(_coded_bytes(levels, option.bits, codecs))
            bar.update()
        layer.weight.copy_(original)
        costs.append(LayerCosts(name, original.numel(), sens, sizes))
    bar.close()
    return costs


def solve(layers: Sequence[LayerCosts], budget: float) -> list[int] | None:
    """The option index per layer with the least total sensitivity whose coded bytes sum to at most ``budget``
    (scipy's ``milp``: one binary per layer and option, one option per layer); None when nothing fits."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    counts = [len(layer.sensitivity) for layer in layers]
    n = sum(counts)
    if n == 0:
        return []
    cost = np.concatenate([np.asarray(layer.sensitivity, dtype=np.float64) for layer in layers])
    size = np.concatenate([np.asarray(layer.coded_bytes, dtype=np.float64) for layer in layers])
    one_each = np.zeros((len(layers), n))
    start = 0
    for i, count in enumerate(counts):
        one_each[i, start : start + count] = 1
        start += count
    constraints = [LinearConstraint(one_each, 1, 1), LinearConstraint(size[None, :], -np.inf, budget)]
    # ties (equal sensitivity) go to the smaller option: a tiny size term keeps the solve deterministic. HiGHS prints
    # diagnostics ("HighsMipSolverData::transformNewIntegerFeasibleSolution ...") to stdout from C++: sent to stderr
    with native_stdout_to(2):
        result = milp(cost + size * 1e-15, integrality=np.ones(n), bounds=Bounds(0, 1), constraints=constraints)
    if result.x is None:
        return None
    picks = np.round(result.x).astype(int)
    offsets = np.cumsum([0, *counts[:-1]])
    return [int(np.argmax(picks[o : o + c])) for o, c in zip(offsets, counts)]


@dataclasses.dataclass
class Allocation:
    """The solved allocation: each layer's option, with the measured table and the size it was solved for."""

    options: list[Option]
    layers: list[LayerCosts]
    chosen: list[int]
    size_budget: int  # bytes of sidecar + int32 biases the user asked for
    bias_bytes: int
    header_bytes: int  # the sidecar's preamble and header (records and configuration)
    seconds: dict[str, float]

    @property
    def coded_bytes(self) -> int:
        return sum(layer.coded_bytes[i] for layer, i in zip(self.layers, self.chosen))

    @property
    def estimated_bytes(self) -> int:
        """Sidecar + biases of the rounded (pre-reconstruction) levels: what the allocation was solved to fit."""
        return self.coded_bytes + self.header_bytes + self.bias_bytes

    @property
    def sensitivity(self) -> float:
        return sum(layer.sensitivity[i] for layer, i in zip(self.layers, self.chosen))

    def choice(self, name: str) -> Option:
        return next(self.options[i] for layer, i in zip(self.layers, self.chosen) if layer.name == name)

    @property
    def layer_wbits(self) -> dict[str, int]:
        return {layer.name: self.options[i].bits for layer, i in zip(self.layers, self.chosen)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_budget": self.size_budget,
            "estimated_bytes": self.estimated_bytes,
            "coded_bytes": self.coded_bytes,
            "header_bytes": self.header_bytes,
            "bias_bytes": self.bias_bytes,
            "sensitivity": self.sensitivity,
            "seconds": self.seconds,
            "options": [dataclasses.asdict(o) for o in self.options],
            "layer_wbits": self.layer_wbits,
            "layers": [
                {
                    "name": layer.name,
                    "params": layer.params,
                    "bits": self.options[i].bits,
                    "ratio": self.options[i].ratio,
                    "coded_bytes": layer.coded_bytes[i],
                    "sensitivity": layer.sensitivity[i],
                    "table": {"sensitivity": layer.sensitivity, "coded_bytes": layer.coded_bytes},
                }
                for layer, i in zip(self.layers, self.chosen)
            ],
        }


def header_bytes(model: nn.Module, per_channel: bool, config: dict[str, Any]) -> int:
    """The sidecar's bytes other than coded levels: its preamble and header, whose records (shape, base64 steps,
    chunk table) and exporting ``config`` do not depend on the bits chosen. Measured by encoding placeholder levels
    with the raw codec and subtracting their bytes; 16 bytes a chunk cover the longer codec names and lengths.

    A record carries as many steps as the exporter writes: one per output channel for per-channel layers and for
    layers whose batch norm folds in (its scale differs per channel even when training keeps one step per layer),
    one for the others (``exporters.ops`` writes equal steps once)."""
    tensors, level_bytes, chunks = [], 0, 0
    folded = bn_folded(model)
    named: list[tuple[str, Any]] = weighted_layers(model)
    for name, layer in named:
        levels = np.zeros(tuple(layer.weight.shape), np.int8)
        transposed = isinstance(layer, nn.ConvTranspose2d)
        if (per_channel and not transposed) or name in folded:
            axis: int | None = 1 if transposed else 0
            steps = np.ones(out_channels(layer), np.float32)
        else:
            axis, steps = None, np.ones(1, np.float32)
        tensors.append(SidecarTensor(name, levels, 8, steps, axis))
        level_bytes += levels.size
        chunks += math.ceil(max(levels.size, 1) / CHUNK_LEVELS)
    return len(encode_sidecar(tensors, config, codecs=("raw",))) - level_bytes + 16 * chunks


def bias_count(model: nn.Module) -> int:
    """int32 biases of the deployable model: one per output channel of every weighted layer (batch norm folds in)."""
    return sum(out_channels(layer) for _, layer in weighted_layers(model))


def allocate(
    model: nn.Module,
    batches: Sequence[torch.Tensor],
    options: Sequence[Option],
    size_budget: int,
    *,
    config: dict[str, Any],
    per_channel: bool = True,
    codecs: tuple[str, ...] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    costs: list[LayerCosts] | None = None,
    headroom: float = 0.0,
) -> Allocation:
    """Measure every option of every layer of the float ``model`` and choose the least sensitive allocation whose
    sidecar plus int32 biases fit ``size_budget`` bytes (``config``: the exporting configuration the sidecar will
    carry, whose size counts; ``costs``: a table measured before, for the same layers and options, instead of
    measuring; ``headroom``: the share of the budget left free for reconstruction or training moving the levels).
    Raises a :class:`ToolchainError` naming the smallest reachable size when none fits."""
    started = time.perf_counter()
    layers = costs or measure(model, batches, options, per_channel=per_channel, codecs=codecs, progress=progress)
    measured = time.perf_counter()
    bias_bytes = 4 * bias_count(model)
    header = header_bytes(model, per_channel, config)
    chosen = solve(layers, size_budget * (1 - headroom) - bias_bytes - header)
    if chosen is None:
        smallest = sum(min(layer.coded_bytes) for layer in layers) + header + bias_bytes
        raise ToolchainError(
            f"no allocation fits {size_budget / 1024:.1f} KiB: the smallest the options (bits "
            f"{','.join(sorted({str(o.bits) for o in options}))}, pruning "
            f"{','.join(sorted({f'{o.ratio:g}' for o in options}))}) reach is {smallest / 1024:.1f} KiB; allow "
            "lower bits (--alloc-bits), pruning (--alloc-ratios) or a larger size"
        )
    seconds = {"measure": measured - started, "solve": time.perf_counter() - measured}
    allocation = Allocation(list(options), layers, chosen, size_budget, bias_bytes, header, seconds)
    log(
        f"allocation: {len(layers)} layers × {len(options)} options "
        f"{'reused' if costs else 'measured'} in {seconds['measure']:.0f} s; "
        f"{allocation.estimated_bytes / 1024:.1f} KiB of {size_budget / 1024:.1f} KiB (rounded levels), "
        f"estimated output noise {10 * math.log10(max(allocation.sensitivity, 1e-30)):.1f} dB"
    )
    return allocation


def apply_pruning(model: nn.Module, allocation: Allocation) -> int:
    """Prune each layer of ``model`` to its chosen ratio, in place; returns the number of weights set to 0."""
    zeroed = 0
    named: list[tuple[str, Any]] = weighted_layers(model)
    with torch.no_grad():
        for name, layer in named:
            ratio = allocation.choice(name).ratio
            if ratio:
                before = int((layer.weight == 0).sum())
                layer.weight.copy_(prune_to(layer.weight, ratio))
                zeroed += int((layer.weight == 0).sum()) - before
    return zeroed


def uniform_points(layers: Iterable[LayerCosts], options: Sequence[Option]) -> list[tuple[Option, int, float]]:
    """(option, coded bytes, sensitivity) of every layer at the same option: the uniform choices, for comparison."""
    layers = list(layers)
    return [
        (o, sum(layer.coded_bytes[i] for layer in layers), sum(layer.sensitivity[i] for layer in layers))
        for i, o in enumerate(options)
    ]

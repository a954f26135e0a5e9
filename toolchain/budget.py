"""``compress``'s allocate phase: bits and pruning per layer for a size the user names (``--target-ratio`` or
``--size-kib``).

It runs between the prune phase and quant-aware training when a size is given. It loads the pruned float model
(the float one when nothing was pruned), measures each layer's options on held-out training images, solves for
the least sensitive allocation that fits (:mod:`toolchain.quant.allocation`) and writes:

* ``allocate/allocated.pt`` – the float model with each layer pruned to its chosen ratio, QAT's starting point;
* ``allocate/costs.json`` – the measured table (reusable at another size with ``--alloc-costs``);
* ``allocate/allocation.png`` – each layer's options (sensitivity against coded bytes) and the whole network's
  estimated noise against size, allocated and uniform;
* ``result.json`` – the chosen bits (``layer_wbits``, handed to the QAT phase), ratios, bytes and sensitivities.

Held-out images: the training images after the calibration batches (the first ``calib_batches`` batches), so the
measurement never sees ``val/`` and does not reuse the images that set the steps; a training split too small for
both reuses the calibration images, and says so.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from runtime import ToolchainError, atomic_write_text

from .quant.allocation import (
    Allocation,
    LayerCosts,
    Option,
    allocate,
    apply_pruning,
    bias_count,
    parse_options,
    solve,
    uniform_points,
)
from .training.checkpoint import save_checkpoint

__all__ = ["allocation_note", "run_allocation", "size_budget"]

MEASURE_BATCH = 16  # images per forward pass while measuring (larger batches ran slower per image here)


def size_budget(config: Any, model: torch.nn.Module) -> int:
    """Bytes of sidecar + int32 biases that ``--size-kib`` or ``--target-ratio`` allows for ``model``."""
    if config.size_kib:
        return int(config.size_kib * 1024)
    params = sum(int(m.weight.numel()) for m in _weighted(model)) + bias_count(model)
    return int(4 * params / config.target_ratio)


def _weighted(model: torch.nn.Module) -> list[Any]:
    from .pruning.selection import weighted_layers

    return [m for _, m in weighted_layers(model)]


def held_out_batches(config: Any, bundle: Any, log: Callable[[str], None]) -> list[torch.Tensor]:
    """``alloc_images`` un-augmented training images after the calibration batches, in batches of 16."""
    stream = (x for x, *_ in bundle.train.batches(config.batch_size, seed=config.seed, train=False))
    after = list(itertools.islice(stream, config.calib_batches, None))
    if not after:
        log("allocation: the training split holds no images beyond the calibration batches; measuring on those")
        after = list(
            itertools.islice(
                (x for x, *_ in bundle.train.batches(config.batch_size, seed=config.seed, train=False)),
                config.calib_batches,
            )
        )
    images = torch.cat(after)[: config.alloc_images]
    return list(images.split(MEASURE_BATCH))


def _load_costs(path: str, options: list[Option], names: list[str]) -> list[LayerCosts]:
    """A ``costs.json`` from an earlier run of the same model and options."""
    try:
        saved = json.loads(Path(path).read_text())
        layers = [LayerCosts(**layer) for layer in saved["layers"]]
        saved_options = [Option(**o) for o in saved["options"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ToolchainError(f"--alloc-costs {path}: not a readable costs.json ({e})") from None
    if saved_options != options or [layer.name for layer in layers] != names:
        raise ToolchainError(
            f"--alloc-costs {path} was measured for other layers or options "
            f"({', '.join(o.label for o in saved_options)}); measure again without --alloc-costs"
        )
    return layers


def run_allocation(
    config: Any,
    start: str,
    folder: Path,
    class_names: list[str],
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The allocate phase on the float checkpoint ``start``; returns its result (``layer_wbits`` among it)."""
    from .modeling import build_model, load_weights
    from .pruning.selection import weighted_layers
    from .training import load_bundle

    bundle = load_bundle(config)
    model = load_weights(build_model(config.model, bundle, config.model_args), start).eval()
    options = parse_options(config.alloc_bits, config.alloc_ratios)
    budget = size_budget(config, model)
    codecs = tuple(c.strip() for c in config.codecs.split(",") if c.strip()) or None
    # the sidecar's header carries the exporting configuration (without its weight bit settings,
    # runtime.sidecar.header_config): its size counts against the budget
    names = [n for n, _ in weighted_layers(model)]
    exporting = {
        "checkpoint_config": config.to_dict(),
        "class_names": list(class_names),
        "allocation": {  # as allocation_note writes it, with numbers of typical length
            "size_budget": budget,
            "layers": {f"{n}.weight": {"sensitivity": 1.2345678901234567e-05, "ratio": 0.25} for n in names},
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    costs = _load_costs(config.alloc_costs, options, names) if config.alloc_costs else None
    batches = [] if costs else held_out_batches(config, bundle, log)
    allocation = allocate(
        model, batches, options, budget, config=exporting, per_channel=config.per_channel, codecs=codecs,
        progress=progress, log=log, costs=costs, headroom=config.alloc_headroom,
    )  # fmt: skip
    table = {"options": [o.__dict__ for o in options], "layers": [layer.__dict__ for layer in allocation.layers]}
    atomic_write_text(folder / "costs.json", json.dumps(table))
    zeroed = apply_pruning(model, allocation)
    path = save_checkpoint(
        folder / "allocated.pt",
        model=model.state_dict(),
        config=config.to_dict(),
        recipe="prune",
        task=bundle.task,
        model_name=config.model,
        class_names=bundle.class_names,
    )
    plot = plot_allocation(allocation, folder / "allocation.png")
    return {**allocation.to_dict(), "checkpoint": str(path), "pruned_weights": zeroed, "plots": [str(plot)]}


def allocation_note(result: dict[str, Any]) -> dict[str, Any]:
    """What the export records of an allocation (``inspect`` shows it): the budget, and each layer's weight
    tensor's measured sensitivity and pruning share."""
    layers = {f"{layer['name']}.weight": {"sensitivity": layer["sensitivity"], "ratio": layer["ratio"]}
              for layer in result["layers"]}  # fmt: skip
    return {"size_budget": result["size_budget"], "layers": layers}


def frontier(layers: list[LayerCosts], low: float, high: float, points: int = 16) -> list[tuple[float, float]]:
    """(bytes, estimated noise) of the allocation solved at ``points`` coded-byte budgets from ``low`` to ``high``."""
    curve: list[tuple[float, float]] = []
    for budget in torch.linspace(low, high, points).tolist():
        chosen = solve(layers, budget)
        if chosen is not None:
            curve.append((
                float(sum(layer.coded_bytes[i] for layer, i in zip(layers, chosen))),
                float(sum(layer.sensitivity[i] for layer, i in zip(layers, chosen))),
            ))  # fmt: skip
    return curve


def plot_allocation(allocation: Allocation, path: Path) -> Path:
    """Left: every layer's options, sensitivity against coded bytes, the chosen ones circled. Right: the whole
    network's estimated noise against its coded bytes, allocated (solved at many sizes) and uniform, with this
    run's budget."""
    from .reports.plots import _figure, _save

    plt, fig, (left, right) = _figure(1, 2, (12, 4.5))
    floor = 1e-9
    for layer, i in zip(allocation.layers, allocation.chosen):
        left.plot(layer.coded_bytes, [max(s, floor) for s in layer.sensitivity], "-", color="0.7", lw=0.6)
        left.plot(layer.coded_bytes[i], max(layer.sensitivity[i], floor), "o", mfc="none", color="tab:red", ms=5)
    left.set(xscale="log", yscale="log", xlabel="coded bytes of the layer", ylabel="sensitivity (relative noise)",
             title="each layer's options (grey), chosen (red)")  # fmt: skip
    uniform = uniform_points(allocation.layers, allocation.options)
    sizes = [b for _, b, _ in uniform]
    curve = frontier(allocation.layers, min(sizes), max(sizes))
    kib = 1 / 1024
    right.plot([b * kib for b, _ in curve], [10 * math.log10(max(s, floor)) for _, s in curve], "-o", ms=3,
               label="allocated")  # fmt: skip
    for option, size, sens in uniform:
        right.plot(size * kib, 10 * math.log10(max(sens, floor)), "s", color="tab:orange")
        right.annotate(option.label, (size * kib, 10 * math.log10(max(sens, floor))), fontsize=7)
    right.axvline(allocation.coded_bytes * kib, color="tab:red", lw=0.8, label="this run")
    right.set(xlabel="coded levels, KiB", ylabel="estimated output noise, dB",
              title="whole network: allocated vs uniform (squares)")  # fmt: skip
    right.legend()
    right.grid(alpha=0.3)
    return _save(plt, fig, path)

"""Float training of a registry model on a data set.

Options come from a TOML/JSON file (--config) and/or the command line (command line wins). Outputs in --out-dir:
config.toml (the exact configuration), metrics.jsonl (step and epoch records), last.pt (resumable checkpoint).
Run under `torchrun --nproc_per_node=N -m toolchain train ...` for DistributedDataParallel.

Example:
  toolchain train --model mobilenet_v2_small --data fashion-mnist --epochs 15 --out-dir runs/mbv2
"""

from __future__ import annotations

from typing import Any

from .training_cmd import TrainingCommand, metrics_text


def _config_class() -> type:
    from ..config import TrainConfig

    return TrainConfig


def _recipe(config: Any) -> Any:
    from ..training.recipe import Recipe

    return Recipe(config)


def _summary(config: Any, result: dict[str, Any]) -> str:
    return f"{config.model} on {config.data}: {metrics_text(result)} ({result['wall_s']:.1f} s) -> {result['out_dir']}"


command = TrainingCommand(
    "train a float model (resumable, distributed under torchrun)", __doc__, _config_class, _recipe, _summary
)

"""Quant-aware training from a float checkpoint with the learnable MSQE regularizer (or its baselines).

n-bit weights (--wbits; 2 = ternary) and m-bit activations (--abits) through Brevitas layers; the first and last
weighted layers keep --first-wbits/--last-wbits. --reg msqe adds e^α·R_n − λ·α with a learnable α, --reg fixed
freezes α at its balance value, --reg none is plain QAT. --epochs 0 is post-training quantization (calibration
only). Outputs in --out-dir: config.toml, metrics.jsonl (α, e^α, R_n, task loss per step; top-1 and the share of
weights within δ/10 of a level per epoch), last.pt, convergence.png, weights.png.

Example:
  toolchain qat --model mobilenet_v2_small --model-args width_mult=0.5 --data fashion-mnist \\
      --float-checkpoint runs/float/mbv2/last.pt --wbits 2 --abits 8 --reg msqe --lam 10 --epochs 3
"""

from __future__ import annotations

from typing import Any

from .training_cmd import TrainingCommand, metrics_text


def _config_class() -> type:
    from ..quant.qat import QATConfig

    return QATConfig


def _recipe(config: Any) -> Any:
    from ..quant.qat import QATRecipe

    return QATRecipe(config)


def _summary(config: Any, result: dict[str, Any]) -> str:
    return (
        f"{config.model} W{config.wbits}A{config.abits} reg={config.reg}: {metrics_text(result)}, "
        f"{100 * result['near_level_share']:.1f}% of weights within δ/10 of a level "
        f"({result['wall_s']:.1f} s) -> {result['out_dir']}"
    )


command = TrainingCommand(
    "quant-aware training with the learnable MSQE regularizer (or post-training quantization)",
    __doc__,
    _config_class,
    _recipe,
    _summary,
)

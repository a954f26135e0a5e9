"""Compress recipes: the settings a kind of starting point needs, applied to every option the user leaves unset.

``toolchain compress --recipe pretrained --model mobilenet_v2 --float-checkpoint W --data DIR --wbits 4`` is the
short command for a pretrained network and a folder of images. Each recipe is a function of the options the user
did set; it returns the settings it chooses, each with the reason that is printed at start. Anything named on the
command line or in ``--config`` wins, and ``config.toml`` records the result, so a run is reproducible from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RECIPES", "apply_recipe"]

Choice = tuple[Any, str]  # (value, why)
Recipe = Callable[[Any, set[str]], dict[str, Choice]]  # (config, the options the user set) -> choices
RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str) -> Callable[[Recipe], Recipe]:
    def deco(fn: Recipe) -> Recipe:
        RECIPES[name] = fn
        return fn

    return deco


@register_recipe("pretrained")
def _pretrained(config: Any, given: set[str]) -> dict[str, Choice]:
    """A network trained elsewhere and a few hundred images, labelled or not (BENCHMARKS.md, ImageNet MobileNetV2)."""
    low = config.wbits < 8 or config.allocates  # an allocation to a size gives some layers fewer than 8 bits
    pruning = "ratio" in given and config.ratio > 0
    choices: dict[str, Choice] = {
        "ratio": (0.0, "no pruning unless asked for: a pretrained network has nothing to lose"),
        "prune_epochs": (
            0,
            "one-shot magnitude pruning of the pretrained weights, no pruning phase training (a partial-L2 pull at "
            "fine-tuning rates took ImageNet MobileNetV2 to 9 % in one epoch)"
            if pruning
            else "nothing to prune, so no pruning phase training",
        ),
        "batch_size": (32, "calibration and reconstruction batches of 32 images"),
        "calib_batches": (2, "64 calibration images"),
        "ptq": (
            "gptq,bias-correction" if low else "bias-correction",
            "chosen on held-out training images: GPTQ then bias correction below 8 bits, bias correction at 8",
        ),
        "depthwise_wbits": (8 if low else 0, "depthwise layers (<2 % of MobileNetV2's weights) at 8 bits below 8"),
        "epochs": (0, "post-training only; add --epochs N to finish with distillation"),
        "distill": (1.0, "any finishing epochs learn from the float model's outputs, never the labels"),
        "freeze_bn": (True, "batch-norm statistics stay the pretrained ones (measured: 74.0 against 69.2 %)"),
        "lr": (3e-4, "the finishing rate of the distillation rows"),
        "warmup_epochs": (0.0, "no warm-up"),
        "weight_decay": (0.0, "no weight decay on pretrained weights"),
        "reg": ("none", "no MSQE pull: it did not buy accuracy in any measured setting"),
    }
    if pruning:
        choices["prune_lr"] = (3e-4, "the finishing rate, should a pruning phase train (0.01 took ImageNet "
                               "MobileNetV2 to 0 % in 16 steps)")  # fmt: skip
        choices["scope"] = ("global", "one threshold over all prunable layers (30 % of the float network's weights "
                            "pruned: 77 % top-1 on held-out images, one threshold per layer 62 %)")  # fmt: skip
    return choices


def apply_recipe(config: Any, given: set[str], log: Callable[[str], None]) -> Any:
    """``config`` with its recipe's choices for every field not in ``given`` (the options the user set)."""
    if not config.recipe:
        return config
    chosen = {k: v for k, v in RECIPES[config.recipe](config, given).items() if k not in given}
    for name, (value, why) in chosen.items():
        log(f"recipe {config.recipe}: {name.replace('_', '-')} = {value!r} ({why})")
    return config.replace(**{k: v for k, (v, _) in chosen.items()})

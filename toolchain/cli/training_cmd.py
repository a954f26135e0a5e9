"""One implementation behind every training subcommand (``train``, ``qat``): options from the phase's config class,
``--resume``/``--no-progress``/``--json``, and a one-line summary of the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..config import Config, add_config_arguments, config_from_args, given_fields
from .options import model_from_checkpoint

__all__ = ["TrainingCommand"]


class TrainingCommand:
    """A subcommand that runs one training phase (``recipe``) configured by ``config_class``.

    ``config_class`` and ``recipe`` are factories so that ``toolchain --help`` imports neither torch nor Brevitas.
    """

    def __init__(
        self,
        help_line: str,
        description: str | None,
        config_class: Callable[[], type[Config]],
        recipe: Callable[[Any], Any],
        summary: Callable[[Any, dict[str, Any]], str],
    ) -> None:
        self.HELP, self.__doc__ = help_line, description
        self.config_class, self.recipe, self.summary = config_class, recipe, summary

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_config_arguments(p, self.config_class())
        p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt if it exists")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        p.add_argument("--json", action="store_true", help="print the final result as JSON")

    def run(self, args: argparse.Namespace) -> int:
        from ..training import train

        config = config_from_args(self.config_class(), args)
        if hasattr(config, "float_checkpoint"):  # a phase that starts from trained weights
            given = given_fields(self.config_class(), args)
            config = model_from_checkpoint(config, given, lambda line: print(line, file=sys.stderr))
        result = train(config, resume=args.resume, progress=args.progress, recipe=self.recipe(config))  # type: ignore[arg-type]
        if result["rank"] != 0:
            return 0
        print(json.dumps(result) if args.json else self.summary(config, result))
        return 0


def metrics_text(result: dict[str, Any]) -> str:
    return ", ".join(f"{k}={result[k]:.2f}" for k in ("top1", "top5", "psnr") if k in result)

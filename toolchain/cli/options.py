"""Options that several subcommands share, defined once so that a flag means the same everywhere."""

from __future__ import annotations

import argparse

__all__ = ["add_trusted_model"]

TRUSTED_MODEL = (
    "your own model factory (package.module:function) that the checkpoint names: checkpoints are files people "
    "share and never import code on their own, so a factory runs only when you name it here"
)


def add_trusted_model(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--model``: the user's own factory, named on the command line, that a checkpoint may be rebuilt with."""
    p.add_argument("--model", help=prefix + TRUSTED_MODEL)

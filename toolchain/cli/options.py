"""Options that several subcommands share, defined once so that a flag means the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_device", "add_out_dir", "add_trusted_model"]

DEVICES = ("auto", "cpu", "cuda")

TRUSTED_MODEL = (
    "your own model factory (package.module:function) that the checkpoint names: checkpoints are files people "
    "share and never import code on their own, so a factory runs only when you name it here"
)


def add_device(p: argparse.ArgumentParser, what: str) -> None:
    """``--device auto|cpu|cuda`` as in the training commands' configs: auto picks CUDA when it is available."""
    p.add_argument(
        "--device", default="auto", choices=DEVICES, help=f"{what} device: auto (CUDA when available), cpu or cuda"
    )


def add_out_dir(p: argparse.ArgumentParser, help: str, default: Path | None = None) -> None:
    """``--out-dir``, the output folder, as in every other command (``--out`` is kept as its older spelling)."""
    p.add_argument("--out-dir", "--out", dest="out_dir", type=Path, default=default, help=help)


def add_trusted_model(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--model``: the user's own factory, named on the command line, that a checkpoint may be rebuilt with."""
    p.add_argument("--model", help=prefix + TRUSTED_MODEL)

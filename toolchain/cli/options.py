"""Options that several subcommands share, defined once so that a flag means the same everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "add_containers",
    "add_device",
    "add_out_dir",
    "add_public_key",
    "add_trusted_model",
    "model_from_checkpoint",
]

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


def add_containers(p: argparse.ArgumentParser) -> None:
    """``--containers auto|int8|uint8``: the 8-bit weights' containers a graph + sidecar pair is loaded with."""
    p.add_argument(
        "--containers",
        default="auto",
        choices=("auto", "int8", "uint8"),
        help="8-bit weight containers of a graph + sidecar pair: auto (int8 where this host's onnxruntime sums "
        "u8×s8 exactly, found by a probe; uint8 where it saturates, as on AVX2-only CPUs), int8 or uint8. A "
        "standalone .onnx runs as written (default: auto)",
    )


def add_public_key(p: argparse.ArgumentParser) -> None:
    """``--public-key``: run only a model whose signature (``export --sign``) verifies with this key."""
    p.add_argument(
        "--public-key",
        type=Path,
        metavar="PUB",
        help="refuse the model unless the signature beside it (model.sig / model.compressed.sig, from export --sign) "
        "verifies with this elliptic-curve public key (PEM) and covers the graph and its sidecar unchanged "
        "(docs/signing.md; needs the sign extra)",
    )


def add_out_dir(p: argparse.ArgumentParser, help: str, default: Path | None = None) -> None:
    """``--out-dir``, the output folder, as in every other command (``--out`` is kept as its older spelling)."""
    p.add_argument("--out-dir", "--out", dest="out_dir", type=Path, default=default, help=help)


def add_trusted_model(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--model``: the user's own factory, named on the command line, that a checkpoint may be rebuilt with."""
    p.add_argument("--model", help=prefix + TRUSTED_MODEL)


def model_from_checkpoint(config: Any, given: set[str], log: Callable[[str], None]) -> Any:
    """``config`` with the model (and, without ``--data``, the data set) that its float checkpoint records, where the
    command line and its ``--config`` file name none: ``qat --float-checkpoint runs/tiny/last.pt`` rebuilds the
    network that was trained, as ``export`` does. A plain state dict records nothing and changes nothing. ``given``:
    the fields the user set (:func:`toolchain.config.given_fields`)."""
    from ..restore import DATA_FIELDS, MODEL_FIELDS, recorded_model

    if config.float_checkpoint is None or "model" in given:
        return config
    recorded = recorded_model(config.float_checkpoint)
    if not recorded:
        return config
    adopt = [*MODEL_FIELDS, *(() if given & set(DATA_FIELDS) else DATA_FIELDS)]
    changes = {k: recorded[k] for k in adopt if k in recorded and recorded[k] != getattr(config, k)}
    if changes:
        shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
        log(f"from {config.float_checkpoint}: {shown} (name --model / --data to choose others)")
    return config.replace(**changes)

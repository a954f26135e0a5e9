"""The ``toolchain`` console script: one parser, subcommands registered by name.

Each subcommand module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
A :class:`runtime.ToolchainError` (bad input, missing file, invalid option), an ``OSError`` (an unwritable output
folder, a full disk) or a ``MemoryError`` (a model too large for this machine) is printed as ``error: …`` and exits
with status 2; no traceback, no partial output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from runtime import ToolchainError
from runtime.sidecar import DEFAULT_MAX_LEVELS, MAX_LEVELS_ENV

from . import compress_cmd, demo, eval_cmd, export_cmd, info, inspect_cmd, qat_cmd, run_cmd, train_cmd, verify_cmd

__all__ = ["COMMANDS", "build_parser", "main"]

# Each value has HELP, add_arguments(parser), run(args) and a docstring (modules, or namespaces for small ones).
COMMANDS: dict[str, Any] = {
    "demo": demo,
    "train": train_cmd.command,
    "qat": qat_cmd.command,
    "compress": compress_cmd,
    "eval": eval_cmd,
    "export": export_cmd,
    "verify": verify_cmd,
    "run": run_cmd,
    "inspect": inspect_cmd,
    "models": info.models_command,
    "data": info.data_command,
}

DESCRIPTION = """\
Train sparse low-precision networks with learnable regularization (Choi, El-Khamy & Lee, 2020), compress them,
export QDQ ONNX graphs and run them in onnxruntime.

Start with `toolchain demo` (the main job on the embedded digits data)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolchain", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(
            name, help=module.HELP, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ToolchainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable --out, a full disk, a folder that vanished: the user's environment
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except MemoryError:  # numpy's, or onnxruntime's std::bad_alloc: a model (or batch) too large for this machine
        print(
            f"error: out of memory running `{args.command}`: the model or its data do not fit in this machine's memory "
            f"(a sidecar may declare at most {MAX_LEVELS_ENV} weight levels, {DEFAULT_MAX_LEVELS:,} unless set; a "
            "smaller --batch-size helps where the command has one)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

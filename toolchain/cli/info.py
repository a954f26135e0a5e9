"""Listing commands: registered models and data sets."""

from __future__ import annotations

import argparse
from types import SimpleNamespace


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'shufflenet*' (default: all)")
    p.add_argument("--tag", help="only models with this tag (e.g. tiny)")


def _models_run(args: argparse.Namespace) -> int:
    from models import get_model_spec, list_models

    names = list_models(args.pattern, tag=args.tag)
    print(f"{'model':<28} {'task':<17} {'input':>9}  tags")
    for n in names:
        s = get_model_spec(n)
        print(f"{n:<28} {s.task:<17} {s.in_chans:>2}×{s.input_size:<3}×{s.input_size:<3} {','.join(sorted(s.tags))}")
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    pass


def _data_run(args: argparse.Namespace) -> int:
    from ..data import list_datasets

    for name, desc in list_datasets().items():
        print(f"{name:<16} {desc}")
    return 0


models_command = SimpleNamespace(
    HELP="list registered models",
    add_arguments=_models_args,
    run=_models_run,
    __doc__="List the model registry (name, task, default input, tags).",
)
data_command = SimpleNamespace(
    HELP="list registered data sets", add_arguments=_data_args, run=_data_run, __doc__="List the data-set registry."
)

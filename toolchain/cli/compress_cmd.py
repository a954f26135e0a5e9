"""Compress a model end to end: float → partial-L2 pruning → hard prune → learnable-MSQE QAT → compressed export.

One configuration drives every phase (options below, or --config FILE). Each phase writes into its own folder
under --out-dir and is resumable: run the same command again after an interruption and finished phases are
skipped, an interrupted one continues from its last checkpoint. The run ends with a table of accuracy, sparsity,
bits, sizes and compression ratios, and writes summary.json.

--model takes a registry name (`toolchain models`) or your own factory, package.module:function (it receives
num_classes / in_chans / input_size when its signature names them). --data takes a registry name (`toolchain data`)
or the path of an ImageNet-layout folder (DIR/{train,val}/<class>/<image>).

Examples:
  toolchain compress --recipe pretrained --model mobilenet_v2 --float-checkpoint mobilenet_v2-b0353104.pth \\
      --data /path/to/images --wbits 4                     # the short command for a pretrained network
  toolchain compress --train-float --float-epochs 30 --ratio 0.7 --wbits 4 --epochs 10 --lr 0.05
  toolchain compress --model mobilenet_v2 --float-checkpoint mobilenet_v2-b0353104.pth --data /path/to/imagenet \\
      --ratio 0.5 --prune-epochs 1 --wbits 4 --epochs 1
  PYTHONPATH=. toolchain compress --model mynets:small_cnn --data fashion-mnist --ratio 0.7
  toolchain compress --model mobilenet_v2_small --model-args width_mult=0.5 --data fashion-mnist \\
      --float-checkpoint runs/float/mbv2/last.pt --ratio 0.5 --prune-epochs 1 --wbits 4 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "prune, quantize (learnable MSQE) and entropy-code a model; export and verify it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..compress import CompressConfig
    from ..config import add_config_arguments

    add_config_arguments(p, CompressConfig)
    p.add_argument("--weights", help=argparse.SUPPRESS)  # the older spelling of --float-checkpoint
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the phases' results as JSON")


def run(args: argparse.Namespace) -> int:
    from ..compress import CompressConfig, compress
    from ..config import config_from_args, given_fields
    from ..recipes import apply_recipe
    from .options import model_from_checkpoint

    config = config_from_args(CompressConfig, args)
    assert isinstance(config, CompressConfig)
    if args.weights:
        config = config.replace(float_checkpoint=args.weights)
    # with --json, stdout holds only the JSON: phase lines go to stderr
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    given = given_fields(CompressConfig, args)
    config = model_from_checkpoint(config, given, log)
    config = apply_recipe(config, given, log)
    results = compress(config, progress=args.progress, log=log)
    if not results:  # a torchrun worker: the main process reports
        return 0
    if args.json:
        print(json.dumps(results, default=str))
    else:
        print_results(config, results)
    return report_failures(results)


def report_failures(results: dict[str, Any]) -> int:
    """Print each of the run's failures on stderr; the exit status (1 if there were any)."""
    for failure in results["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if results["failures"] else 0


def print_results(config: Any, results: dict[str, Any]) -> None:
    """The summary table, the exported files and the report's path (failures: see ``run``)."""
    from ..compress import summary_table

    print()
    print(summary_table(config, results))
    export = results["export"]
    for path, size in export["files"].items():
        print(f"{path:<56} {size / 1024:9.1f} KiB")
    fa = export.get("float_agreement")
    if fa:
        print(f"onnxruntime vs float: top-1 agreement {100 * fa['top1_agreement']:.1f} % of {int(fa['n'])} images, "
              f"logit SQNR {fa['logit_sqnr_db']:.1f} dB")  # fmt: skip
    print(f"report: {results['report']}")

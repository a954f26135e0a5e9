"""The main job on the embedded default (scikit-learn's digits, no set-up needed): `toolchain compress` end to end.

  1. float training of LeNet-5;
  2. pruning with the partial L2 regularizer (learnable coefficient), then a hard prune;
  3. quant-aware training at W4A8 with the learnable MSQE regularizer, pruned weights kept at 0: λ = 10, the
     coefficient rising from a hundredth of its balance (``--alpha-update rise --alpha-start 4.6``) until the
     weights sit on their levels, each layer's steps re-fitted to the weights by the MSQE (``--step-rule refit``);
     report.md shows what it did (BENCHMARKS.md: "The settling experiment" for why these settings);
  4. export (standalone QDQ graph + graph and entropy-coded sidecar), onnxruntime accuracy against the quant-aware
     model, compression accounting, onnxruntime latency against the float model;

then a table and report.md (plots, per-layer compression, the exact command and configuration) in --out-dir.
Every phase is resumable: run the same command again after an interruption. Other models and data sets:
`toolchain compress --help`.
"""

from __future__ import annotations

import argparse

HELP = "the main job on the embedded digits data: float -> prune -> QAT -> compressed export -> verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="runs/demo", help="output folder (default: runs/demo)")
    # The same names and meanings as `toolchain compress`: --epochs is the quant-aware phase (--qat-epochs, its
    # older spelling here, still works).
    p.add_argument("--float-epochs", type=int, default=30, help="float training epochs (default: 30)")
    p.add_argument("--prune-epochs", type=int, default=3, help="pruning-phase epochs (default: 3)")
    p.add_argument("--epochs", "--qat-epochs", type=int, default=3, help="quant-aware training epochs (default: 3)")
    p.add_argument("--ratio", type=float, default=0.5, help="share of the prunable weights set to 0 (default: 0.5)")
    p.add_argument("--wbits", type=int, default=4, help="weight bits of the inner layers (default: 4)")
    p.add_argument("--abits", type=int, default=8, help="activation bits (default: 8)")
    p.add_argument("--lam", type=float, default=10.0, help="λ of the MSQE regularizer (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from ..compress import CompressConfig, compress
    from .compress_cmd import print_results, report_failures

    config = CompressConfig(
        out_dir=args.out_dir,
        float_epochs=args.float_epochs,
        prune_epochs=args.prune_epochs,
        epochs=args.epochs,
        ratio=args.ratio,
        wbits=args.wbits,
        abits=args.abits,
        seed=args.seed,
        reg="msqe",  # with the shared defaults: α rising from a hundredth of balance, steps re-fitted by the MSQE
        lam=args.lam,
    )
    results = compress(config, progress=args.progress)
    if not results:  # empty on a torchrun worker: the main process reports
        return 0
    print_results(config, results)
    return report_failures(results)

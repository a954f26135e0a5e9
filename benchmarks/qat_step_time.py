"""Training step time with the MSQE regularizer vs plain QAT, side by side in one process.

Both recipes are built from the same float checkpoint; their steps are interleaved A/B/A/B on the same batches
(after warm-up), and the median and 20th percentile of each are reported with their ratio. Plain QAT here computes
no regularizer at all on unlogged steps, as in real runs.

  python benchmarks/qat_step_time.py --float runs/float/mbv2_w05_fmnist/last.pt --model mobilenet_v2_small \
      --model-args width_mult=0.5 --data fashion-mnist --wbits 2 --steps 30
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore")


def main() -> int:
    from toolchain.config import _parse_key_values
    from toolchain.quant.qat import QATConfig, QATRecipe
    from toolchain.training import load_bundle
    from toolchain.training.distributed import DistEnv
    from toolchain.training.optim import build_optimizer
    from toolchain.training.tasks import TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--float", dest="float_ckpt", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--model-args", nargs="*", default=[])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--wbits", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()

    env = DistEnv(0, 1, 0, torch.device("cpu"))
    runs = {}
    for reg in ("none", "msqe"):
        config = QATConfig(
            model=args.model,
            model_args=_parse_key_values(args.model_args),
            data=args.data,
            float_checkpoint=args.float_ckpt,
            wbits=args.wbits,
            reg=reg,
            lam=10.0,
            epochs=1,
            batch_size=args.batch_size,
            log_every=10**9,
            calib_batches=2,
        )
        bundle = load_bundle(config)
        recipe = QATRecipe(config)
        model = recipe.build(bundle, env).train()
        opt = build_optimizer(config.optimizer, recipe.param_groups(model), config.lr, config.momentum)
        runs[reg] = (recipe, model, opt)
    batches = list(bundle.train.batches(args.batch_size, train=True))[: args.steps + args.warmup]
    loss_fn = TASKS["classification"].loss
    times: dict[str, list[float]] = {reg: [] for reg in runs}
    for i, (x, y) in enumerate(batches):
        for reg, (recipe, model, opt) in runs.items():
            t0 = time.perf_counter()
            loss = loss_fn(model(x), y, 0.0)
            extra, _ = recipe.penalty(False)
            if extra is not None:
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= args.warmup:
                times[reg].append(time.perf_counter() - t0)
    summary = {reg: {"median_s": statistics.median(t), "p20_s": sorted(t)[len(t) // 5]} for reg, t in times.items()}
    summary["ratio_median"] = summary["msqe"]["median_s"] / summary["none"]["median_s"]
    summary["ratio_p20"] = summary["msqe"]["p20_s"] / summary["none"]["p20_s"]
    summary["env"] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "steps": len(times["none"]),
        "batch_size": args.batch_size,
        "model": args.model,
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Float training and evaluation: one loop for every task, single process or DistributedDataParallel.

``train(config)`` builds model and data from the registries, then runs epochs of seeded batches. After every
``save_every`` steps and at each epoch's end it atomically checkpoints ``last.pt``; ``train(config, resume=True)``
continues from it and ends bit-for-bit where an uninterrupted run with the same seed ends (data order and
augmentation are functions of (seed, epoch, step); the RNG states are restored). Under torchrun each process takes
a strided shard of the same permutation; gradients are averaged by DDP, and at each epoch's end the processes'
parameter digests are compared and logged (``ranks_in_step``).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from runtime import ToolchainError

from ..config import TrainConfig
from ..data import BatchSource, DataBundle, load_dataset
from ..progress import bar_disable
from .checkpoint import load_checkpoint, restore_rng, save_checkpoint
from .distill import Objective, freeze_batch_norm
from .distributed import DistEnv, gather_digests, init_distributed, shutdown_distributed
from .optim import build_optimizer, warmup_cosine
from .recipe import Recipe
from .tasks import TASKS

__all__ = ["MetricsLog", "evaluate", "load_bundle", "train"]


class MetricsLog:
    """Append-only JSONL metrics (main process only). On resume, records past the resumed step are dropped."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None = None) -> None:
        self.path, self.enabled = path, enabled
        self.records: list[dict[str, Any]] = []
        if enabled and resume_step is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if json.loads(ln).get("step", 0) <= resume_step]
            path.write_text("".join(ln + "\n" for ln in kept))
            self.records = [json.loads(ln) for ln in kept]
        elif enabled:
            path.write_text("")

    def write(self, **record: Any) -> None:
        if self.enabled:
            self.records.append(record)
            with self.path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")


def load_bundle(config: TrainConfig) -> DataBundle:
    kw = dict(config.data_args)
    if config.data in ("image-folder", "unlabelled-folder") or Path(config.data).is_dir():
        kw.setdefault("num_workers", config.num_workers)
    return load_dataset(config.data, config.data_dir, config.subset, **kw)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    source: BatchSource,
    task: str,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    progress: bool = False,
    outputs: list[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Task metrics of ``model`` on every sample of ``source`` (e.g. top-1/top-5 %, or PSNR dB), plus ``n``.

    ``outputs``, when given, receives each batch's outputs (CPU, float32), for comparing two models sample by sample.
    """
    spec = TASKS[task]
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    batches = source.batches(batch_size)
    for x, y in tqdm(batches, total=source.steps(batch_size), desc="eval", leave=False, disable=bar_disable(progress)):
        out = model(x.to(device)).float().cpu()
        if outputs is not None:
            outputs.append(out)
        for k, v in spec.batch_metrics(out, y, getattr(source, "scale", 0)).items():
            sums[k] = sums.get(k, 0.0) + v
        n += spec.count(y)
    model.train(was_training)
    if n == 0:  # unlabelled data: nothing to score
        return {"n": 0}
    return {**{k: v / n for k, v in sums.items()}, "n": n}


def train(
    config: TrainConfig, *, resume: bool = False, progress: bool = True, recipe: Recipe | None = None
) -> dict[str, Any]:
    """Run (or resume) a training phase; returns the final evaluation and run facts. Writes into ``config.out_dir``.

    ``recipe`` defaults to float training; quant-aware training passes a :class:`toolchain.quant.qat.QATRecipe`.
    A config with ``epochs == 0`` only builds (e.g. calibrates), evaluates and checkpoints the model.
    """
    joined = torch.distributed.is_initialized()  # a caller (e.g. compress) that owns the group keeps it
    env = init_distributed(config.device)
    try:
        return _train(config, env, resume, progress, recipe or Recipe(config))
    finally:
        if not joined:
            shutdown_distributed()


def _train(config: TrainConfig, env: DistEnv, resume: bool, progress: bool, recipe: Recipe) -> dict[str, Any]:
    out = Path(config.out_dir)
    ckpt_path = out / "last.pt"
    ckpt = None
    if resume:
        ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
        if ckpt is not None and not config.same_as(ckpt["config"]):
            diff = config.differences(ckpt["config"])
            raise ToolchainError(f"--resume: {ckpt_path} was made with a different config: {diff}")
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.toml")

    torch.manual_seed(config.seed)
    bundle = load_bundle(config)
    task = TASKS[bundle.task]
    model = recipe.build(bundle, env)
    objective = Objective.build(task, config, bundle, env.device)
    if ckpt is not None:  # before the optimizer exists: some Brevitas modules replace parameters when loading
        model.load_state_dict(ckpt["model"])
        recipe.load_state_dict(ckpt.get("recipe_state", {}))
    optimizer = build_optimizer(config.optimizer, recipe.param_groups(model), config.lr, config.momentum)
    steps_per_epoch = bundle.train.steps(config.batch_size, world=env.world)
    total = max(1, steps_per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, int(config.warmup_epochs * steps_per_epoch))
    )

    start_epoch, skip, step = 0, 0, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, skip, step = ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]
        restore_rng(ckpt["rng"])
    log = MetricsLog(out / "metrics.jsonl", env.is_main, step if ckpt is not None else None)
    net: nn.Module = DistributedDataParallel(model) if env.distributed else model
    autocast = torch.autocast("cuda", torch.bfloat16) if config.amp and env.device.type == "cuda" else nullcontext()

    def checkpoint(ep: int, ep_step: int) -> None:
        if env.is_main:
            save_checkpoint(
                ckpt_path,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                epoch=ep,
                epoch_step=ep_step,
                step=step,
                config=config.to_dict(),
                recipe=recipe.name,
                recipe_state=recipe.state_dict(),
                task=bundle.task,
                model_name=config.model,
                class_names=bundle.class_names,
            )

    start = time.time()
    result = evaluate(model, bundle.test, bundle.task, env.device) if config.epochs == 0 else {}
    if config.epochs == 0:
        log.write(step=0, epoch=0, phase="eval", **result, **recipe.eval_extras())
        checkpoint(0, 0)
    for epoch in range(start_epoch, config.epochs):
        net.train()
        if config.freeze_bn:
            freeze_batch_norm(model)
        bar = tqdm(
            bundle.train.batches(
                config.batch_size,
                epoch=epoch,
                seed=config.seed,
                train=config.augment,
                rank=env.rank,
                world=env.world,
                skip=skip,
            ),
            total=steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=bar_disable(progress and env.is_main),
            dynamic_ncols=True,
        )
        for ep_step, (x, y) in enumerate(bar, start=skip):
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            logged = (step + 1) % config.log_every == 0
            with autocast:
                task_loss = objective(net(x).float(), x, y)
            extra, fields = recipe.penalty(logged)
            loss = task_loss if extra is None else task_loss + extra
            if not torch.isfinite(loss):
                raise ToolchainError(f"loss became {loss.item()} at step {step}; lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            recipe.after_step()
            scheduler.step()
            step += 1
            if logged:
                log.write(step=step, epoch=epoch, loss=task_loss.item(), lr=scheduler.get_last_lr()[0], **fields)
                bar.set_postfix(loss=f"{task_loss.item():.4f}")
            if config.save_every and step % config.save_every == 0 and ep_step + 1 < steps_per_epoch:
                checkpoint(epoch, ep_step + 1)
        skip = 0
        result = evaluate(model, bundle.test, bundle.task, env.device)
        digests = gather_digests(model, env, recipe.state_dict())
        record = {
            **recipe.eval_extras(),
            "step": step,
            "epoch": epoch + 1,
            "phase": "eval",
            **result,
            "elapsed_s": time.time() - start,
            "ranks_in_step": len(set(digests)) == 1,
            "param_digests": digests,
        }
        log.write(**record)
        if env.is_main and progress:
            tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items()))
        checkpoint(epoch + 1, 0)
    extras = recipe.finish(out, model, log.records) if env.is_main else {}
    return {
        **result,
        **extras,
        "out_dir": str(out),
        "steps": step,
        "model": config.model,
        "data": config.data,
        "world": env.world,
        "rank": env.rank,
        "wall_s": time.time() - start,
    }

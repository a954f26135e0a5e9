"""``compress``: float model → pruning → hard prune → learnable-MSQE QAT → freeze → compressed export, one config.

Phases, each in its own folder under ``out_dir`` and each resumable:

* ``float``  – train the float model (``train_float``, or no ``float_checkpoint`` given: ``float/last.pt``), or
  evaluate the given float checkpoint;
* ``prune``  – partial-L2 (or magnitude) training, then the hard prune: ``prune/pruned.pt``;
* ``qat``    – n-bit/m-bit quant-aware training with the MSQE regularizer, pruned weights kept at 0: ``qat/last.pt``;
* ``export`` – freeze; standalone graph and graph + sidecar of entropy-coded levels (``export/``); onnxruntime
  accuracy against the QAT model; compression accounting; onnxruntime latency against the float ONNX.

A finished phase leaves ``result.json`` (its config and result); running again skips it when the config is the
same, continues an interrupted phase from its ``last.pt``, and refuses a folder made with another config. The
summary (:func:`summary_table`) lists accuracy, sparsity, bits, sizes, compression ratios and latency per phase,
and ``report.md`` (:mod:`toolchain.reports.report`) puts it next to the artefacts with plots.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from runtime import ToolchainError, atomic_write_text

from .config import Config, TrainConfig, opt
from .exporting import UINT8_WEIGHTS_HELP
from .pruning.recipe import PruneConfig, PruneRecipe
from .quant.allocation import parse_options
from .quant.qat import QATConfig, QATRecipe
from .recipes import RECIPES
from .training.distributed import init_distributed, shutdown_distributed
from .training.tasks import headline

__all__ = ["CompressConfig", "compress", "summary_table"]


@dataclasses.dataclass(frozen=True)
class CompressConfig(PruneConfig, QATConfig):
    """Every phase's settings: shared training options, then per-phase epochs and rates, pruning and quantization.

    ``epochs``/``lr`` are the quant-aware phase's; ``float_*`` and ``prune_*`` set the other phases'.
    """

    recipe: str = opt(
        "",
        "settings for a kind of starting point, applied to every option you leave unset and printed at start: "
        "pretrained (a network trained elsewhere and a folder of images: no pruning, 64 calibration images, "
        "GPTQ + bias correction below 8 bits, 8-bit depthwise layers, frozen batch norm, post-training only unless "
        "--epochs, then distillation); see toolchain/recipes.py",
    )
    train_float: bool = opt(False, "train the float model first (the default when no --float-checkpoint is given)")
    float_epochs: int = opt(30, "float-training epochs (with --train-float)")
    float_lr: float = opt(0.1, "float-training peak learning rate (with --train-float)")
    prune_epochs: int = opt(3, "pruning-phase epochs (0: magnitude-prune the float model as it is)")
    prune_lr: float = opt(0.01, "pruning-phase peak learning rate")
    epochs: int = opt(3, "quant-aware training epochs")
    lr: float = opt(0.01, "quant-aware training peak learning rate")
    codecs: str = opt("", "comma-separated weight codecs the sidecar may use (default: all)")
    max_float_drop: float = opt(
        10.0,
        "fail (non-zero exit) when the export's headline metric (top-1 points, PSNR dB) lands more than this below "
        "the float model's",
    )
    uint8_weights: bool = opt(False, UINT8_WEIGHTS_HELP)
    target_ratio: float = opt(
        0.0,
        "compress to this total ratio (32-bit weights and biases over sidecar + int32 biases, as reported): each "
        "layer's bits (and pruning, with --alloc-ratios) chosen from its measured sensitivity to fit; replaces "
        "--wbits and the first/last/depthwise bits (0: off)",
    )
    size_kib: float = opt(0.0, "like --target-ratio, but the size itself: KiB of sidecar + int32 biases (0: off)")
    alloc_bits: str = opt("2,3,4,5,6,8", "with a size: the weight bits each layer may get")
    alloc_ratios: str = opt(
        "0", "with a size: the magnitude-pruning shares each layer may get before rounding, e.g. 0,0.25,0.5"
    )
    alloc_images: int = opt(
        32, "with a size: held-out training images (after the calibration batches) the sensitivities are measured on"
    )
    alloc_headroom: float = opt(
        0.005,
        "with a size: the share of it the allocation leaves free, because reconstruction and training move the "
        "levels it was solved on (measured on ImageNet MobileNetV2 after GPTQ: the export from 0.05 percent under "
        "to 0.3 percent over the solved size)",
    )
    alloc_costs: str = opt(
        "", "with a size: reuse the costs.json of an earlier run of the same model and options instead of measuring"
    )
    out_dir: str = opt("runs/compress", "output folder: float/, prune/, qat/, export/, summary.json")
    log_every: int = opt(10, "write a step record every N steps")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.float_epochs >= 1, f"float_epochs must be ≥ 1, got {self.float_epochs}")
        self._check(self.prune_epochs >= 0, f"prune_epochs must be ≥ 0, got {self.prune_epochs}")
        self._check(self.max_float_drop >= 0, f"max_float_drop must be ≥ 0, got {self.max_float_drop}")
        self._check(self.recipe in ("", *RECIPES), f"recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        self._check(not (self.target_ratio and self.size_kib), "give --target-ratio or --size-kib, not both")
        self._check(
            self.target_ratio == 0 or self.target_ratio >= 1, f"target_ratio must be ≥ 1, got {self.target_ratio}"
        )
        self._check(self.size_kib >= 0, f"size_kib must be ≥ 0, got {self.size_kib}")
        self._check(self.alloc_images >= 1, f"alloc_images must be ≥ 1, got {self.alloc_images}")
        self._check(0 <= self.alloc_headroom < 0.5, f"alloc_headroom must be in [0, 0.5), got {self.alloc_headroom}")
        if self.allocates:
            try:
                parse_options(self.alloc_bits, self.alloc_ratios)
            except ToolchainError as e:
                self._check(False, str(e))

    @property
    def allocates(self) -> bool:
        """Bits (and pruning) are allocated per layer to a size: --target-ratio or --size-kib."""
        return bool(self.target_ratio or self.size_kib)

    @property
    def trains_float(self) -> bool:
        """The float model is trained here with --train-float, or when no --float-checkpoint is given."""
        return self.train_float or self.float_checkpoint is None

    def phase(self, name: str) -> Any:
        """The configuration of one training phase, projected from this one."""
        out = Path(self.out_dir)
        start = str(out / "float" / "last.pt") if self.trains_float else self.float_checkpoint
        teacher = self.teacher or start if self.distill else None  # the float model, before pruning, teaches both
        if name == "float":
            return _project(
                self,
                TrainConfig,
                epochs=self.float_epochs,
                lr=self.float_lr,
                out_dir=str(out / "float"),
                distill=0.0,  # the float model is the teacher
                teacher=None,
            )
        if name == "prune":
            return _project(
                self,
                PruneConfig,
                epochs=self.prune_epochs if self.ratio > 0 else 0,  # nothing to prune: no training either
                lr=self.prune_lr,
                float_checkpoint=start,
                teacher=teacher,
                out_dir=str(out / "prune"),
            )
        if name == "qat":
            return _project(
                self,
                QATConfig,
                float_checkpoint=str(out / "prune" / "pruned.pt"),
                teacher=teacher,
                out_dir=str(out / "qat"),
            )
        raise ValueError(f"no training phase {name!r}")


def _project(config: Config, cls: type[Config], **changes: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls.from_dict({k: v for k, v in config.to_dict().items() if k in names} | changes)


def _phase_dict(key: Any) -> Any:
    """A phase's configuration (a Config, or a dict holding some) as JSON-able data."""
    if isinstance(key, Config):
        return key.to_dict()
    if isinstance(key, dict):
        return {k: _phase_dict(v) for k, v in key.items()}
    return key


def _same_phase(saved: Any, key: Any) -> bool:
    """Whether ``saved`` (from an earlier run, of any config version) describes the phase configuration ``key``."""
    if isinstance(key, Config):
        return isinstance(saved, dict) and key.same_as(saved)
    if isinstance(key, dict):
        same_keys = isinstance(saved, dict) and saved.keys() == key.keys()
        return same_keys and all(_same_phase(saved[k], v) for k, v in key.items())
    return saved == key


def _run_phase(
    folder: Path, config: Any, work: Callable[[], dict[str, Any]], log: Callable[[str], None], env: Any
) -> dict[str, Any]:
    """``work()`` unless ``folder/result.json`` already holds this config's result (then that result).

    Under torchrun every process runs the work (training phases) or waits for the main process (``work`` returns
    ``None`` on the others); the main process alone writes ``result.json``, then all meet at a barrier.
    """
    done = folder / "result.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if not _same_phase(saved.get("config"), config):
            raise ToolchainError(
                f"{folder} was made with a different configuration; use another --out-dir or remove the folder"
            )
        log(f"{folder.name}: done before, reusing {done}")
        return saved["result"]
    result = work()
    if env.is_main:
        atomic_write_text(done, json.dumps({"config": _phase_dict(config), "result": result}, indent=2, default=str))
    if env.distributed:
        torch.distributed.barrier()
    return result


def _float_model(config: CompressConfig, weights: str) -> tuple[Any, Any]:
    """The float model with ``weights`` loaded, and the data bundle."""
    from .modeling import build_model, load_weights
    from .training import load_bundle

    bundle = load_bundle(config)
    return load_weights(build_model(config.model, bundle, config.model_args), weights).eval(), bundle


def _float_metrics(config: CompressConfig, progress: bool) -> dict[str, Any]:
    """Evaluate the given float checkpoint (when the float model is not trained here)."""
    from .training import evaluate

    assert config.float_checkpoint is not None
    model, bundle = _float_model(config, config.float_checkpoint)
    params = sum(p.numel() for p in model.parameters())
    return {**evaluate(model, bundle.test, bundle.task, "cpu", progress=progress), "params": params}


def compress(config: CompressConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every phase (skipping finished ones); returns ``{phase: result}`` and writes ``summary.json``.

    Under ``torchrun`` the training phases run on every process (DistributedDataParallel); evaluation, export,
    verification and the report run on the main process, and only it returns the results (the others get ``{}``).
    """
    env = init_distributed(config.device)  # one process group for every phase under torchrun
    try:
        return _compress(config, env, progress, log)
    finally:
        shutdown_distributed()


def _compress(config: CompressConfig, env: Any, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    from runtime.accounting import account

    from .budget import allocation_note
    from .exporting import export_checkpoint, export_float, latency_against_float
    from .reports.report import write_report
    from .training import train
    from .verify import verify

    def main_only(work: Callable[[], dict[str, Any]]) -> Callable[[], Any]:
        return work if env.is_main else (lambda: None)

    if not env.is_main:
        log = lambda line: None  # noqa: E731 - one process reports
    out = Path(config.out_dir)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.toml")
    float_cfg, prune_cfg, qat_cfg = (config.phase(name) for name in ("float", "prune", "qat"))
    qat_ckpt, exported = out / "qat" / "last.pt", out / "export" / "model.compressed.onnx"

    def export() -> dict[str, Any]:
        codecs = tuple(c.strip() for c in config.codecs.split(",") if c.strip()) or None
        # the checkpoints are this run's own, built from the factory the user named
        notes = {"allocation": allocation_note(results["allocate"])} if "allocate" in results else None
        summary = export_checkpoint(
            qat_ckpt,
            out / "export",
            codecs=codecs,
            trusted_model=config.model,
            uint8_weights=config.uint8_weights,
            notes=notes,
        )
        report = verify(
            exported,
            qat=qat_ckpt,
            float_checkpoint=prune_cfg.float_checkpoint,
            progress=progress,
            trusted_model=config.model,
        )
        float_model, bundle = _float_model(config, prune_cfg.float_checkpoint)
        x = next(iter(bundle.test.batches(32)))[0]
        float_onnx = export_float(float_model, x[:1], out / "export" / "float.onnx")
        return {
            "latency": latency_against_float(float_onnx, out / "export" / "model.onnx", x),
            "files": summary["files"],
            "integer_kernels": summary["integer_kernels"],
            "float_kernels": summary["float_kernels"],
            "float_islands": summary["kernels"]["float_islands"],
            "onnxruntime": report.metrics["onnxruntime"],
            "float_agreement": report.float_agreement,
            "verify_failures": report.failures,
            "accounting": account(exported).to_dict(),
        }

    def allocate() -> dict[str, Any]:
        from .budget import run_allocation
        from .training import load_bundle

        names = list(load_bundle(config).class_names)
        return run_allocation(config, qat_cfg.float_checkpoint, out / "allocate", names, progress, log)

    # each phase's configuration is what decides whether an earlier run's result can be reused
    phases: dict[str, tuple[Callable[[], Any], Callable[[], dict[str, Any]]]] = {
        "float": (
            lambda: float_cfg,
            (lambda: train(float_cfg, resume=True, progress=progress))
            if config.trains_float
            else main_only(lambda: _float_metrics(config, progress)),
        ),
        "prune": (
            lambda: prune_cfg,
            lambda: train(prune_cfg, resume=True, progress=progress, recipe=PruneRecipe(prune_cfg)),
        ),
        **({"allocate": (lambda: _allocation_key(config, qat_cfg), main_only(allocate))} if config.allocates else {}),
        "qat": (lambda: qat_cfg, lambda: train(qat_cfg, resume=True, progress=progress, recipe=QATRecipe(qat_cfg))),
        "export": (
            lambda: {"qat": qat_cfg, "codecs": config.codecs, "uint8_weights": config.uint8_weights},
            main_only(export),
        ),
    }
    results: dict[str, Any] = {}
    for i, (name, (phase_config, work)) in enumerate(phases.items(), start=1):
        log(f"[{i}/{len(phases)}] {name}: {_describe(name, config)}")
        results[name] = _run_phase(out / name, phase_config(), work, log, env)
        if name == "allocate":  # QAT starts from the allocated model, with the chosen bits
            allocated = _broadcast(results[name], env)
            qat_cfg = qat_cfg.replace(float_checkpoint=allocated["checkpoint"], layer_wbits=allocated["layer_wbits"])
    if not env.is_main:
        return {}
    results["failures"] = _failures(config, results)
    atomic_write_text(out / "summary.json", json.dumps(results, indent=2, default=str))
    results["report"] = str(write_report(out, config, results, summary_table(config, results)))
    return results


def _allocation_key(config: CompressConfig, qat_cfg: Any) -> dict[str, Any]:
    """What the allocate phase depends on: the starting model, the size, the options and the images."""
    names = ("target_ratio", "size_kib", "alloc_bits", "alloc_ratios", "alloc_images", "alloc_costs", "alloc_headroom",
             "codecs", "per_channel", "calib_batches", "batch_size", "seed", "data", "model")  # fmt: skip
    return {"start": qat_cfg.float_checkpoint, **{n: getattr(config, n) for n in names}}


def _broadcast(result: Any, env: Any) -> Any:
    """The main process's phase result on every process (under torchrun only the main one allocates)."""
    if not env.distributed:
        return result
    holder = [result]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


def _failures(config: CompressConfig, results: dict[str, Any]) -> list[str]:
    """What makes ``compress`` exit non-zero: verify's failures, and an export far below its float model."""
    failures = list(results["export"]["verify_failures"])
    base, got = headline(results["float"]), headline(results["export"]["onnxruntime"])
    if base and got and base[1] - got[1] > config.max_float_drop:
        failures.append(
            f"the export's {got[0]} is {got[1]:.2f}, {base[1] - got[1]:.2f} below the float model's {base[1]:.2f} "
            f"(allowed: --max-float-drop {config.max_float_drop:g})"
        )
    return failures


def _describe(name: str, c: CompressConfig) -> str:
    prune = (
        f"{c.method}, r={c.ratio:g} ({c.scope}), protect {c.protect or 'nothing'}, {c.prune_epochs} epochs"
        if c.ratio > 0
        else "nothing to prune (--ratio 0): the float weights pass through untrained"
    )
    bits = "allocated bits, " if c.allocates else f"W{c.wbits}"
    descriptions = {
        "float": f"{'training' if c.trains_float else 'evaluating'} {c.model} on {c.data}",
        "prune": prune,
        "allocate": f"bits{' and pruning' if c.alloc_ratios.strip() not in ('0', '') else ''} per layer for "
        + (f"a total ratio of {c.target_ratio:g}×" if c.target_ratio else f"{c.size_kib:g} KiB")
        + f" (options: bits {c.alloc_bits}, pruning {c.alloc_ratios}; {c.alloc_images} held-out training images)",
        "qat": f"{bits}A{c.abits}, reg={c.reg}{_regularizer(c)}, steps by {c.steps_by}, {c.epochs} epochs, "
        "pruned weights kept at 0",
        "export": "standalone graph + compressed sidecar, onnxruntime accuracy, compression accounting",
    }
    return descriptions[name]


def _regularizer(c: CompressConfig) -> str:
    if c.reg == "none":
        return ""
    start = f"{c.alpha_below:g} e-folds below balance" if c.alpha_below else "at balance"
    moved = f", α by {c.alpha_update}" if c.reg == "msqe" else ""
    return f" (λ={c.lam:g}, α from {start}{moved})"


def _metric(result: dict[str, Any]) -> str:
    found = headline(result)
    return "–" if found is None else f"{found[1]:.2f}"


def summary_table(config: CompressConfig, results: dict[str, Any]) -> str:
    """A Markdown table: accuracy, sparsity, bits, size, compression ratio and latency after each phase."""
    export = results["export"]
    acc = export["accounting"]
    params = acc["weight_params"] + acc["bias_params"]
    prune = results["prune"]
    after_prune = prune["after_prune"] or prune  # None when nothing was pruned: the phase's own metrics
    key = "top-1 %" if "top1" in results["float"] else "PSNR dB"
    rebuilt = acc["sidecar_bytes"] + 4 * acc["bias_params"]
    b1 = export.get("latency", {}).get("batch1")
    sparsity = f"{100 * acc['sparsity']:.1f}"
    bits = "allocated" if "allocate" in results else str(config.wbits)
    rows = [
        ["float", _metric(results["float"]), "0.0", "32/32", f"{4 * params / 1024:.1f}", "1.0×", "1.0×"],
        ["hard prune", _metric(after_prune), f"{100 * prune['weight_sparsity']:.1f}", "32/32", "–", "–", "–"],
        ["QAT", _metric(results["qat"]), sparsity, f"{bits}/{config.abits}", "–", "–", "–"],
        [
            "onnxruntime",
            _metric(export["onnxruntime"]),
            sparsity,
            f"{acc['bits_per_weight']:.2f} coded/{config.abits}",
            f"{rebuilt / 1024:.1f}",
            f"{acc['total_ratio']:.1f}×",
            f"{acc['weights_ratio']:.1f}×",
        ],
    ]
    latency = ["–"] * 4
    if b1:
        latency[0] = f"{b1['float_median_ms']:.3f} ms"
        latency[3] = f"{b1['exported_median_ms']:.3f} ms ({b1['speedup']:.2f}×)"
    lines = [
        f"| phase | {key} | weight sparsity % | bits (w/a) | parameter KiB | total ratio | weights-only ratio | "
        "onnxruntime latency, batch 1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join([*row, lat]) + " |" for row, lat in zip(rows, latency)]
    return "\n".join(lines)

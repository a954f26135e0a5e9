"""``verify``: is an exported model fit to deploy? Accuracy in onnxruntime next to PyTorch, agreement, localisation.

What it measures, on the test split of the model's data set (or ``data``):

* the task metrics (top-1/top-5, or PSNR on Y) of the exported model run by ``runtime.load``, and of the
  quant-aware and float PyTorch models when their checkpoints are given (the float model may also be a plain state
  dict of the exported model's architecture, such as torchvision's ImageNet weights);
* for classifiers with a float model: top-1 agreement of the exported model with it, image by image, and the
  logit SQNR ``10·log10(Σ f² / Σ (f − q)²)``; neither needs labels;
* agreement in output quantization steps between onnxruntime and the PyTorch model of the export (batch norm
  folded, int32 bias: :func:`exporters.reference.folded_model`) and the quant-aware model: largest difference and
  share within ±1 step;
* when agreement misses its threshold, the first activation quantizer (in graph order) whose onnxruntime values
  diverge from PyTorch's beyond one step on more than the allowed share: where to look.

Thresholds are arguments; :class:`Report` says which were missed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

import runtime
from runtime import ToolchainError
from runtime.session import META_CONFIG

from .agreement import WITHIN_ONE, compare, output_step
from .config import TrainConfig
from .data import DataBundle
from .modeling import build_model, load_weights
from .restore import Restored, check_model_trusted, restore
from .training import evaluate, load_bundle
from .training.checkpoint import ForeignCheckpointError
from .training.recipe import RECIPES
from .training.tasks import TASKS

__all__ = ["Report", "Thresholds", "float_agreement", "localise", "verify"]


@dataclass(frozen=True)
class Thresholds:
    max_drop: float = 0.1  # metric points (top-1 %, or PSNR dB) the export may lose against the QAT model
    min_within_one: float = WITHIN_ONE  # share of outputs within ±1 step of the PyTorch model of the export


@dataclass
class Report:
    model: str
    data: str
    task: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # "onnxruntime" / "qat" / "float"
    agreement: dict[str, dict[str, Any]] = field(default_factory=dict)  # "export_reference" / "qat"
    float_agreement: dict[str, float] = field(default_factory=dict)  # top1_agreement, logit_sqnr_db, n
    divergence: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    containers: str = ""  # the weight containers runtime.load chose for this host, and why

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok})


class _Session(nn.Module):
    """Lets ``training.evaluate`` drive an onnxruntime model like a module."""

    def __init__(self, model: runtime.Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.model.run(x.float().numpy())[0])


def _recorded_config(model: runtime.Model, data: str | None, data_dir: str | None) -> TrainConfig:
    """The configuration recorded at export (``toolchain.config``), ``data``/``data_dir`` overriding its data set."""
    meta = json.loads(model.metadata.get(META_CONFIG, "{}"))
    saved = meta.get("checkpoint_config")
    if saved is None and data is None:
        raise ToolchainError("the model records no data set; pass --data (and --data-dir)")
    config_cls = RECIPES[meta.get("recipe", "float")].config_class
    config = config_cls.from_dict(saved) if saved else config_cls(data=str(data))
    if data is not None and data != config.data:  # another data set: of the recorded arguments, keep the input size
        size = {k: v for k, v in config.data_args.items() if k == "image_size"}
        config = config.replace(data=data, data_dir=data_dir, data_args=size)
    elif data_dir is not None:
        config = config.replace(data_dir=data_dir)
    return config.replace(subset=None)


def _float_model(
    path: str | Path, config: TrainConfig, bundle: DataBundle, trusted_model: str | None, source: str | Path
) -> nn.Module:
    """A float toolchain checkpoint, or plain weights of ``config.model`` (the exported model's architecture)."""
    try:
        return restore(path, trusted_model=trusted_model, data=config.data, data_dir=config.data_dir).model
    except ForeignCheckpointError:
        check_model_trusted(config.model, trusted_model, source)
        return load_weights(build_model(config.model, bundle, config.model_args), path).eval()


def float_agreement(float_logits: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement (share of samples whose argmax matches) and logit SQNR in dB of ``logits`` against the
    float model's, sample by sample."""
    f, q = float_logits.double(), logits.double()
    noise = float(((f - q) ** 2).sum())
    sqnr = 10 * np.log10(float((f**2).sum()) / noise) if noise > 0 else float("inf")
    return {
        "top1_agreement": float((f.argmax(1) == q.argmax(1)).double().mean()),
        "logit_sqnr_db": float(sqnr),
        "n": len(f),
    }


def verify(
    model_path: str | Path,
    *,
    qat: str | Path | None = None,
    float_checkpoint: str | Path | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    allow_fallback: bool = False,
    batch_size: int = 256,
    thresholds: Thresholds = Thresholds(),
    progress: bool = True,
    trusted_model: str | None = None,
    containers: str = "auto",
) -> Report:
    model = runtime.load(model_path, device, allow_fallback=allow_fallback, containers=containers)
    restored = restore(qat, trusted_model=trusted_model, data=data, data_dir=data_dir) if qat else None
    config = restored.config if restored else _recorded_config(model, data, data_dir)
    bundle = restored.bundle if restored else load_bundle(config)
    report = Report(str(model_path), bundle.name, bundle.task, providers=model.providers)
    report.containers = model.containers.summary()
    warning = model.containers.warning()
    if warning:  # a standalone int8 file on a CPU whose u8×s8 kernels saturate
        report.failures.append(warning)
    key = TASKS[bundle.task].headline
    logits: list[torch.Tensor] = []
    report.metrics["onnxruntime"] = evaluate(
        _Session(model), bundle.test, bundle.task, "cpu", batch_size, progress, outputs=logits
    )
    if restored is not None:
        report.metrics["qat"] = evaluate(restored.model, bundle.test, bundle.task, "cpu", batch_size, progress)
        drop = report.metrics["qat"].get(key, 0.0) - report.metrics["onnxruntime"].get(key, 0.0)  # 0: unlabelled
        if drop > thresholds.max_drop:
            report.failures.append(f"{key} drops {drop:.3f} against the QAT model (allowed {thresholds.max_drop})")
        _agreement(report, model, restored, bundle, thresholds)
    if float_checkpoint:
        float_model = _float_model(float_checkpoint, config, bundle, trusted_model, qat or model_path)
        float_logits: list[torch.Tensor] = []
        report.metrics["float"] = evaluate(
            float_model, bundle.test, bundle.task, "cpu", batch_size, progress, outputs=float_logits
        )
        if bundle.task == "classification":
            report.float_agreement = float_agreement(torch.cat(float_logits), torch.cat(logits))
    return report


def _agreement(report: Report, model: runtime.Model, restored: Restored, bundle: DataBundle, t: Thresholds) -> None:
    from exporters import build_graph
    from exporters.reference import folded_model

    gm = restored.model
    if not isinstance(gm, fx.GraphModule):
        raise ToolchainError("--qat must be a quant-aware checkpoint (written by `toolchain qat`)")
    batches = [b for b, _ in _first(bundle.test.batches(256), 4)]  # up to 1,024 samples (SR: 4 whole images)
    built = build_graph(gm, batches[0][:2])
    reference = folded_model(gm, built)
    outputs: dict[str, list[np.ndarray]] = {"onnxruntime": [], "folded": [], "qat": []}
    with torch.no_grad():
        for x in batches:
            outputs["onnxruntime"].append(model.run(x.numpy())[0].ravel())
            outputs["folded"].append(reference(x).numpy().ravel())
            outputs["qat"].append(gm(x).numpy().ravel())
    candidate, folded, qat = (np.concatenate(outputs[k]) for k in ("onnxruntime", "folded", "qat"))
    step = output_step(gm)
    report.agreement["export_reference"] = compare(folded, candidate, step).to_dict()
    report.agreement["qat"] = compare(qat, candidate, step).to_dict()
    x = batches[0]
    share = report.agreement["export_reference"]["within_one"]
    if share < t.min_within_one:
        report.failures.append(
            f"{100 * share:.2f}% of outputs within ±1 step of the PyTorch model of the export "
            f"(required {100 * t.min_within_one:.2f}%)"
        )
        report.divergence = localise(gm, built, model.path, x[:64], t.min_within_one)


def _first(iterator: Any, n: int) -> list[Any]:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == n:
            break
    return out


def localise(
    gm: fx.GraphModule, built: Any, model_path: str | Path, x: torch.Tensor, min_within_one: float
) -> list[dict[str, Any]]:
    """Per activation quantizer, in graph order: agreement of the exported model's values in onnxruntime with the
    PyTorch model of the export of ``gm``.

    The exported model (standalone or sidecar pair) is materialised with every quantizer's output exposed. The
    returned list ends at the first quantizer whose share within ±1 step is below ``min_within_one``.
    """
    import onnx
    import onnxruntime as ort

    from exporters.context import quantizer_output
    from exporters.reference import folded_model
    from models.quant.prepare import act_quantizers
    from runtime.session import materialize

    ref = folded_model(gm, built)
    quants = act_quantizers(ref)
    captured: dict[str, np.ndarray] = {}
    hooks = [
        q.register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out.detach().numpy()))
        for n, q in quants
    ]
    with torch.no_grad():
        ref(x)
    for h in hooks:
        h.remove()
    probe = materialize(model_path)
    names = [quantizer_output(n) for n, _ in quants]
    produced = {o for node in probe.graph.node for o in node.output}
    names = [n for n in names if n in produced]
    for n in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(names, session.run(names, {"input": x.numpy()})))
    rows = []
    for n, q in quants:
        onnx_name = quantizer_output(n)
        if onnx_name not in values:
            continue
        a = compare(captured[n], values[onnx_name], float(q.step()))
        rows.append({"quantizer": n, "max_steps": a.max_steps, "within_one": a.within_one})
        if a.within_one < min_within_one:
            break
    return rows

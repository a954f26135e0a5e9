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

from .agreement import WITHIN_ONE, compare, near_ties, noise_floor, output_step
from .config import TrainConfig
from .data import DataBundle
from .modeling import build_model, load_weights
from .restore import Restored, check_model_trusted, restore
from .training import evaluate, load_bundle
from .training.checkpoint import ForeignCheckpointError
from .training.recipe import RECIPES
from .training.tasks import TASKS

__all__ = ["Report", "Thresholds", "float_agreement", "layerwise", "verify"]


@dataclass(frozen=True)
class Thresholds:
    max_drop: float = 0.1  # metric points (top-1 %, or PSNR dB) the export may lose against the QAT model
    # share of each activation quantizer's values within ±1 step of the PyTorch model of the export computing it from
    # onnxruntime's own inputs (verify.layerwise)
    min_within_one: float = WITHIN_ONE


@dataclass
class Report:
    model: str
    data: str
    task: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # "onnxruntime" / "qat" / "float"
    agreement: dict[str, dict[str, Any]] = field(default_factory=dict)  # "export_reference" / "qat"
    float_agreement: dict[str, float] = field(default_factory=dict)  # top1_agreement, logit_sqnr_db, n
    layers: list[dict[str, Any]] = field(default_factory=list)  # verify.layerwise: each quantizer, teacher-forced
    noise_floor: dict[str, Any] = field(default_factory=dict)  # the PyTorch model against itself, 1e-6 jitter
    near_ties: int = 0  # images onnxruntime and the QAT model rank differently that float noise alone decides
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
    meta = model.config
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
    public_key: str | Path | None = None,
) -> Report:
    """``public_key``: refuse the model unless its signature verifies with it (``runtime.load``)."""
    model = runtime.load(
        model_path, device, allow_fallback=allow_fallback, containers=containers, public_key=public_key
    )
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
        qat_logits: list[torch.Tensor] = []
        report.metrics["qat"] = evaluate(
            restored.model, bundle.test, bundle.task, "cpu", batch_size, progress, outputs=qat_logits
        )
        drop = report.metrics["qat"].get(key, 0.0) - report.metrics["onnxruntime"].get(key, 0.0)  # 0: unlabelled
        # Float noise is not a fault: a flipped rounding tie can move a prediction (the layer check below is the
        # test of the arithmetic). So top-1 may lose one of its n images, or as many as are near ties: images ranked
        # differently by the two models that the QAT model itself ranks differently under a 1e-6 jitter.
        n = report.metrics["onnxruntime"]["n"]  # 0 on an unlabelled folder: no top-1, and no image to allow
        ties = _near_ties(restored.model, bundle, logits, qat_logits, batch_size) if key == "top1" and n else 0
        report.near_ties = ties
        one = 100.0 * max(1, ties) / n if key == "top1" and n else 0.0
        allowed = max(thresholds.max_drop, one * (1 + 1e-9))
        if drop > allowed:
            report.failures.append(
                f"{key} drops {drop:.3f} against the QAT model (allowed {thresholds.max_drop}, or one image, or the "
                f"{ties} near ties float noise decides: {one:.3f})"
            )
        ran = {"onnxruntime": logits, "qat": qat_logits}
        _agreement(report, model, restored, bundle, thresholds, ran, batch_size)
    if float_checkpoint:
        float_model = _float_model(float_checkpoint, config, bundle, trusted_model, qat or model_path)
        float_logits: list[torch.Tensor] = []
        report.metrics["float"] = evaluate(
            float_model, bundle.test, bundle.task, "cpu", batch_size, progress, outputs=float_logits
        )
        if bundle.task == "classification":
            report.float_agreement = float_agreement(torch.cat(float_logits), torch.cat(logits))
    return report


def _agreement(
    report: Report,
    model: runtime.Model,
    restored: Restored,
    bundle: DataBundle,
    t: Thresholds,
    ran: dict[str, list[torch.Tensor]],
    size: int,
) -> None:
    """Compare, in output steps, the exported model with the PyTorch model of the export (batch norm folded, integer
    bias) and with the QAT model, on the first test batches that ``ran`` already holds both models' outputs for."""
    from exporters import build_graph
    from exporters.reference import folded_model

    gm = restored.model
    if not isinstance(gm, fx.GraphModule):
        raise ToolchainError("--qat must be a quant-aware checkpoint (written by `toolchain qat`)")
    batches = _leading(bundle.test.batches(size), max(1, -(-1024 // size)))
    built = build_graph(gm, batches[0][:2])
    reference = folded_model(gm, built)
    with torch.no_grad():
        folded = np.concatenate([reference(x).numpy().ravel() for x in batches])
    candidate, qat = (
        np.concatenate([o[: len(x)].numpy().ravel() for o, x in zip(ran[k], batches)]) for k in ("onnxruntime", "qat")
    )
    step = output_step(gm)
    report.agreement["export_reference"] = compare(folded, candidate, step).to_dict()
    report.agreement["qat"] = compare(qat, candidate, step).to_dict()
    x = batches[0][: 64 if batches[0][0].numel() <= 4096 else 16]  # every activation of these is kept in memory
    report.noise_floor = noise_floor(reference, x, step).to_dict()
    report.layers = layerwise(gm, built, model, x)
    failing = [row for row in report.layers if row["within_one"] < t.min_within_one]
    if failing:
        first = failing[0]
        report.failures.append(
            f"layer by layer, {first['quantizer']} (the first of {len(failing)}) has {100 * first['within_one']:.2f}% "
            f"of its values within ±1 step of the PyTorch model of the export computing it from onnxruntime's own "
            f"inputs (required {100 * t.min_within_one:.2f}%): it computes something else"
        )


def _near_ties(
    model: torch.nn.Module, bundle: DataBundle, ort: list[torch.Tensor], qat: list[torch.Tensor], size: int
) -> int:
    """How many of the images that onnxruntime and the QAT model rank differently are near ties of the QAT model
    (:func:`toolchain.agreement.near_ties`): re-read, only those images are run again."""
    differ = (torch.cat(ort).argmax(dim=1) != torch.cat(qat).argmax(dim=1)).nonzero().flatten().tolist()
    if not differ:
        return 0
    wanted, images, seen = set(differ), [], 0
    for x, *_ in bundle.test.batches(size):
        images += [x[i - seen] for i in range(seen, seen + len(x)) if i in wanted]
        seen += len(x)
        if seen > max(differ):
            break
    return int(near_ties(model, torch.stack(images)).sum())


def _leading(source: Any, most: int) -> list[torch.Tensor]:
    """The inputs of the first test batches (at most ``most``), cut to 1,024 samples and to about 8 M input values:
    53 ImageNet images, every digit of a 1,024-image test set, 4 whole super-resolution images at batch 256."""
    batches: list[torch.Tensor] = []
    left: int | None = None  # samples still wanted, set by the first batch's sample size
    for x, _ in source:
        if left is None:
            left = min(1024, max(16, 8_000_000 // max(1, x[0].numel())))
        batches.append(x[:left])
        left -= len(batches[-1])
        if left <= 0 or len(batches) == most:
            break
    return batches


def layerwise(gm: fx.GraphModule, built: Any, model: runtime.Model, x: torch.Tensor) -> list[dict[str, Any]]:
    """Per activation quantizer, in graph order: how well the PyTorch model of the export of ``gm`` computes that
    quantizer's values **from onnxruntime's own values upstream** (teacher-forced: every quantizer of the reference
    hands onnxruntime's value on, so each row measures only what its own layer computes differently).

    Free-running, a deep network amplifies a flipped rounding tie layer after layer (ImageNet MobileNetV2 W8A8:
    58 % of outputs within ±1 step, and 59 % for PyTorch against itself under a 1e-6 jitter), which hides where an
    export is wrong; teacher-forced, every layer of that network is ≥ 99.99 % exact and at most 1 step off, and a
    layer that computes something else stands out at once. ``model`` is materialised with every quantizer's output
    exposed, in the weight containers it was loaded with."""
    import onnx
    import onnxruntime as ort

    from exporters.context import quantizer_output
    from exporters.reference import folded_model
    from models.quant.prepare import act_quantizers
    from runtime.session import materialize

    ref = folded_model(gm, built)
    quants = act_quantizers(ref)
    mode = model.containers.mode if model.containers.mode != "file" else "auto"
    probe = materialize(model.path, containers=mode)
    produced = {o for node in probe.graph.node for o in node.output}
    names = [quantizer_output(n) for n, _ in quants if quantizer_output(n) in produced]
    for n in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(names, session.run(names, {session.get_inputs()[0].name: x.numpy()})))
    own: dict[str, np.ndarray] = {}

    def forced(name: str) -> Any:
        def hook(_m: Any, _i: Any, out: torch.Tensor) -> torch.Tensor | None:
            own[name] = out.detach().numpy().copy()
            onnx_value = values.get(quantizer_output(name))  # copied: an in-place op downstream must not touch it
            return None if onnx_value is None else torch.from_numpy(onnx_value.copy()).reshape(out.shape)

        return hook

    hooks = [q.register_forward_hook(forced(n)) for n, q in quants]
    try:
        with torch.no_grad():
            ref(x)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for n, q in quants:
        if quantizer_output(n) in values and n in own:
            a = compare(own[n], values[quantizer_output(n)].reshape(own[n].shape), float(q.step()))
            rows.append({"quantizer": n, "max_steps": a.max_steps, "within_one": a.within_one, "elements": a.elements})
    return rows

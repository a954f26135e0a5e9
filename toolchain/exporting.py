"""Export a quant-aware checkpoint and check the export: the library behind ``toolchain export`` and ``compress``.

:func:`export_checkpoint` rebuilds the checkpoint's model, writes the standalone graph and the graph + sidecar
pair (:func:`exporters.export_model`), runs one test batch through onnxruntime and measures its agreement, in
output steps, with the PyTorch model of the export (batch norm folded, int32 bias) and with the quant-aware model,
and counts the integer kernels onnxruntime's optimizer fused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import ToolchainError

__all__ = ["UINT8_WEIGHTS_HELP", "export_checkpoint", "export_float", "latency_against_float"]

UINT8_WEIGHTS_HELP = (
    "store 8-bit weights as uint8 (zero-point 128) instead of int8 in the files. The int8 default is what "
    "quantize_static and TensorRT use and runs onnxruntime's faster u8×s8 kernels, exact on x86 CPUs with VNNI, "
    "ARM64 and GPUs; on AVX2-only x86 CPUs those kernels saturate on 8-bit weights and the standalone .onnx loses "
    "accuracy there (verify says so). The graph + sidecar pair needs no choice: runtime.load picks the container for "
    "its host. Use this only to ship a standalone .onnx to AVX2-only CPUs"
)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path | None = None,
    *,
    name: str = "model",
    sidecar: bool = True,
    data_dir: str | None = None,
    check_batch: int = 64,
    codecs: tuple[str, ...] | None = None,
    trusted_model: str | None = None,
    uint8_weights: bool = False,
    notes: dict[str, Any] | None = None,
    sign: str | Path | None = None,
) -> dict[str, Any]:
    """Export ``checkpoint`` (a ``qat`` checkpoint) into ``out`` (default: its folder/export); returns a summary:
    ``files`` (path → bytes), ``weights``, ``agreement``, ``agreement_with_qat``, ``integer_kernels``,
    ``float_kernels`` and the :class:`exporters.ExportResult` under ``result``. ``trusted_model``: the user's
    factory that the checkpoint may name (see :func:`toolchain.restore.restore`); ``uint8_weights``: see
    :func:`exporters.export_model`; ``notes``: more entries for the recorded configuration (``allocation``: each
    layer's measured sensitivity, shown by ``inspect``); ``sign``: an elliptic-curve private key (PEM) that signs each
    graph (``<stem>.sig``, ``<stem>.compressed.sig``; :mod:`runtime.signing`), checked before the checkpoint is read."""
    import onnxruntime as ort
    import torch
    import torch.fx as fx

    from exporters import export_model
    from exporters.reference import folded_model
    from runtime.kernels import classify_kernels, optimized_graph

    from .agreement import compare, output_step
    from .restore import restore

    checkpoint = Path(checkpoint)
    if sign is not None:  # an unusable key fails here, before minutes of work
        from runtime.signing import Signer

        Signer(sign)
    if check_batch < 1:
        raise ToolchainError(f"--check-batch must be at least 1, got {check_batch}")
    if not name or "/" in name or name.startswith("."):
        raise ToolchainError(f"--name must be a plain file name stem, got {name!r}")
    restored = restore(checkpoint, trusted_model=trusted_model, data_dir=data_dir)
    if restored.recipe != "qat":
        raise ToolchainError(
            f"{checkpoint} is a {restored.recipe} checkpoint; quantize it first with "
            f"`toolchain qat --float-checkpoint {checkpoint}` (--epochs 0 for post-training quantization)"
        )
    model = restored.model
    assert isinstance(model, fx.GraphModule)
    x = next(iter(restored.bundle.test.batches(check_batch)))[0]
    bundle = restored.bundle
    config = {
        "checkpoint_config": restored.config.to_dict(),
        "recipe": restored.recipe,
        "stem": name,
        "task": bundle.task,
        "class_names": list(bundle.class_names),
        "preprocess": bundle.preprocess,
        **(notes or {}),
    }
    target = Path(out) if out is not None else checkpoint.parent / "export"
    result = export_model(
        model, x, target, name, config, sidecar=sidecar, codecs=codecs, uint8_weights=uint8_weights, sign=sign
    )

    session = ort.InferenceSession(str(result.standalone), providers=["CPUExecutionProvider"])
    candidate = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        folded, qat = folded_model(model, result.built)(x).numpy(), model(x).numpy()
    step = output_step(model)
    kernels = classify_kernels(optimized_graph(result.standalone))
    return {
        "files": {str(p): p.stat().st_size for p in (result.standalone, result.graph, result.sidecar) if p}
        | {str(p): p.stat().st_size for p in result.signatures},
        "weights": sum(w.levels.size for w in result.weights),
        "tensors": len(result.weights),
        "agreement": compare(folded, candidate, step),
        "agreement_with_qat": compare(qat, candidate, step),
        "integer_kernels": kernels["integer"],
        "float_kernels": kernels["float"],
        "kernels": kernels,
        "result": result,
    }


def export_float(model: Any, example: Any, path: str | Path) -> Path:
    """The float model as plain ONNX (opset 17, dynamic batch), the baseline of latency comparisons; atomic."""
    import io

    import torch

    from runtime import atomic_write_bytes

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model.eval(),
            example,
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        )
    return atomic_write_bytes(path, buf.getvalue())


def latency_against_float(float_onnx: Path, exported: Path, x: Any, runs: int = 200) -> dict[str, Any]:
    """onnxruntime latency of the exported model against the float one at batch 1 and at ``len(x)``, sessions
    interleaved (:func:`runtime.latency.race`); ``speedup`` > 1 means the exported model is faster."""
    import numpy as np

    from runtime.latency import race, timing_session

    sessions = {"float": timing_session(float_onnx), "exported": timing_session(exported)}
    out: dict[str, Any] = {}
    for batch in sorted({1, len(x)}):
        timed = race(sessions, np.ascontiguousarray(x[:batch].numpy()), runs if batch == 1 else max(20, runs // 10))
        out[f"batch{batch}"] = {
            "float_median_ms": timed["float"]["median_ms"],
            "exported_median_ms": timed["exported"]["median_ms"],
            "speedup": timed["exported"]["speedup_vs_float_median"],
        }
    return out

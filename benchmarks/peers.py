"""The W8A8 post-training tools a user would pick instead of ours, run on the same float network and images.

Each peer takes the float PyTorch model, its float ONNX export and the calibration images (the same un-augmented
training images `toolchain compress` calibrates on) and returns what it made: the logits on the scored images and,
for the tools that write ONNX, the file (so its integer convolutions in onnxruntime can be counted). They run as a
newcomer would run them, with each tool's defaults unless named here:

  ort-static-minmax      onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, MinMax
  ort-static-percentile  the same with the Percentile calibrator (onnxruntime's default 99.999)
  nncf                   nncf.quantize on the ONNX model (NNCF's ONNX backend; the `bench` extra installs it)
  brevitas-ptq           Brevitas's own flow: preprocess_for_quantize, quantize, calibration_mode,
                         bias_correction_mode; scored in PyTorch (Brevitas writes no onnxruntime-integer graph here)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class Made:
    logits: torch.Tensor
    onnx: Path | None  # None: scored in PyTorch


Peer = Callable[[torch.nn.Module, Path, list[np.ndarray], list[torch.Tensor], Path], Made]
PEERS: dict[str, Peer] = {}


def peer(name: str) -> Callable[[Peer], Peer]:
    def deco(fn: Peer) -> Peer:
        PEERS[name] = fn
        return fn

    return deco


def _run_onnx(path: Path, xs: list[torch.Tensor]) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(np.concatenate([session.run(None, {name: x.numpy()})[0] for x in xs]))


def _ort_static(method: str) -> Peer:
    def run(model: torch.nn.Module, f32: Path, calib: list[np.ndarray], xs: list[torch.Tensor], tmp: Path) -> Made:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter([{"input": b[i : i + 1]} for b in calib for i in range(len(b))])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.items, None)

        out = tmp / f"static-{method.lower()}.onnx"
        quantize_static(str(f32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))  # fmt: skip
        return Made(_run_onnx(out, xs), out)

    return run


peer("ort-static-minmax")(_ort_static("MinMax"))
peer("ort-static-percentile")(_ort_static("Percentile"))


@peer("nncf")
def _nncf(model: torch.nn.Module, f32: Path, calib: list[np.ndarray], xs: list[torch.Tensor], tmp: Path) -> Made:
    import nncf
    import onnx

    images = [b[i : i + 1] for b in calib for i in range(len(b))]
    dataset = nncf.Dataset(images, lambda x: {"input": x})
    quantized = nncf.quantize(onnx.load(str(f32)), dataset, subset_size=len(images))
    out = tmp / "nncf.onnx"
    onnx.save(quantized, str(out))
    return Made(_run_onnx(out, xs), out)


@peer("brevitas-ptq")
def _brevitas(model: torch.nn.Module, f32: Path, calib: list[np.ndarray], xs: list[torch.Tensor], tmp: Path) -> Made:
    import copy

    from brevitas.graph.calibrate import bias_correction_mode, calibration_mode
    from brevitas.graph.quantize import preprocess_for_quantize, quantize

    q = quantize(preprocess_for_quantize(copy.deepcopy(model).eval())).eval()
    batches = [torch.from_numpy(b) for b in calib]
    with torch.no_grad():
        with calibration_mode(q):
            for x in batches:
                q(x)
        with bias_correction_mode(q):
            for x in batches:
                q(x)
        return Made(torch.cat([q(x) for x in xs]), None)


def integer_convolutions(path: Path | None) -> dict[str, Any]:
    """Convolutions onnxruntime runs on integers, and those it runs in float, in its optimized graph of ``path``."""
    if path is None:
        return {}
    from runtime.kernels import classify_kernels, optimized_graph

    kernels = classify_kernels(optimized_graph(path))
    floats = sum(kernels["float"].get(op, 0) for op in ("Conv", "FusedConv"))  # FusedConv: a float Conv + activation
    return {"integer_convs": kernels["integer"].get("QLinearConv", 0), "float_convs": floats}

"""Prepared, calibrated models for export tests (cached: preparing and calibrating is the slow part)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnxruntime as ort
import torch
import torch.fx as fx

from models import create_model, get_model_spec
from tests.conftest import warm
from toolchain.quant import QuantConfig, calibrate, prepare_qat

warnings.filterwarnings("ignore", module="brevitas")


def sample(name: str, n: int = 4, seed: int = 0) -> torch.Tensor:
    spec = get_model_spec(name)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, spec.in_chans, spec.input_size, spec.input_size, generator=g)


@functools.cache
def prepared(name: str, wbits: int = 4, abits: int = 8) -> fx.GraphModule:
    """``name`` from the registry, batch norm warmed, prepared at WwAa and calibrated on random batches."""
    torch.manual_seed(0)
    model = warm(create_model(name), sample(name, 8, seed=1))
    gm = prepare_qat(model, QuantConfig(wbits=wbits, abits=abits))
    calibrate(gm, [sample(name, 8, seed=s) for s in (2, 3)])
    return gm.eval()


def run_ort(path_or_bytes, x: np.ndarray, options: ort.SessionOptions | None = None) -> np.ndarray:
    source = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]

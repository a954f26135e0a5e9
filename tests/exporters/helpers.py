"""Prepared, calibrated models for export tests (cached: preparing and calibrating is the slow part)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.fx as fx

from exporters import build_graph
from exporters.graph import BuiltGraph
from exporters.reference import folded_model
from models import create_model, get_model_spec
from runtime.containers import u8s8_exact
from tests.conftest import warm
from toolchain.agreement import compare, output_step
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


def exported_and_agreeing(
    gm: fx.GraphModule, shape: tuple[int, ...] = (64, 1, 8, 8), uint8_weights: bool | None = None
) -> BuiltGraph:
    """The graph of ``gm`` on a random batch of ``shape``, checked by ONNX and agreeing with its PyTorch reference
    (``exporters.reference.folded_model``) within ±1 output step. 8-bit weights are int8, as exported by default,
    on hosts whose onnxruntime sums u8×s8 exactly, and uint8 where it saturates (``uint8_weights`` None: as the
    runtime would choose, by its probe), so that the check holds on either kind of CPU."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    if uint8_weights is None:
        uint8_weights = not u8s8_exact()
    built = build_graph(gm, x, uint8_weights=uint8_weights)
    onnx.checker.check_model(built.model, full_check=True)
    with torch.no_grad():
        reference = folded_model(gm, built)(x).numpy()
    agreement = compare(reference, run_ort(built.model.SerializeToString(), x.numpy()), output_step(gm))
    assert agreement.ok(), agreement
    return built

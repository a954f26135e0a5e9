"""Choosing the post-training stages (`--ptq`) for a pretrained ImageNet MobileNetV2 on held-out *training* images.

The sample folder's `train/` holds 500 images of the classes with index i % 4 in {0, 1}. Here those with i % 4 == 0
(250) calibrate and reconstruct, exactly as `toolchain compress` would on the first 64 of them (batch 32,
`--calib-batches 2`), and those with i % 4 == 1 (the other 250) score; `val/` is never read. Scored in PyTorch (the
quant-aware model, which the export reproduces layer by layer): top-1 against the labels, top-1 agreement with the
float model and logit SQNR. The chosen stages are then run once on `val/` by `benchmarks/imagenet_distill.py`.

  PYTHONPATH=. .venv/bin/python benchmarks/imagenet_ptq_select.py --configs w8:,w8:gptq,bias-correction \\
      --results benchmarks/results/imagenet_ptq_select.jsonl

A config is `BITS[+KNOB=VALUE…]:STAGES` with BITS one of w8 (W8A8), w4 (W4A8, every inner layer 4-bit), w4dw8 (W4A8
with 8-bit depthwise layers); first and last layers stay 8-bit. Configs are separated by `;`. The knobs are the
W8A8 ablation (issue 28), each a departure from what `compress` does:

  io=float | out=float     the network input and output (or only the output) left unquantized
  stat=mse | pN | max      activation step: MSE-optimal (ours), the N-th percentile of |x| (e.g. p99.99), the maximum
  samples=N                values kept per activation quantizer per calibration batch (ours: 65,536)
  calib=N                  calibration batches of 32 images (ours: 2)
  wstep=mse | max          weight step per output channel: MSE-optimal (ours) or max|w| / L
  perchannel=0             one weight step per layer
  seed=N                   the global seed before calibration (reproducibility)
  acts=float | weights=float  every activation quantizer (or every weight quantizer) off: which side loses what
  skip=linear              GPFQ and Qronos leave linear layers (the classifier) at round-to-nearest: it sees one
                           sample an image, 64 against its 1,280 inputs, where a convolution sees one a position

Each row also scores the calibration images themselves (`calib_*`): far above the held-out score means the stages
fitted those images rather than the network.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import append_row, cpu_facts

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "imagenet-sample"
BITS = {
    "w8": {"wbits": 8},
    "w4": {"wbits": 4},
    "w4dw8": {"wbits": 4, "depthwise_wbits": 8},
}


def held_out_folder(data: Path, tmp: Path) -> Path:
    """``tmp/dev/{train,val}``: symbolic links to ``data/train`` split by class index (i % 4 == 0 / == 1)."""
    lines = (data / "classes.txt").read_text().splitlines()
    index = {line.split()[0]: i for i, line in enumerate(lines)}
    dev = tmp / "dev"
    for folder in sorted((data / "train").iterdir()):
        split = "train" if index[folder.name] % 4 == 0 else "val"
        (dev / split).mkdir(parents=True, exist_ok=True)
        os.symlink(folder.resolve(), dev / split / folder.name)
    (dev / "classes.txt").symlink_to((data / "classes.txt").resolve())
    return dev


def _act_quants_at_io(gm: torch.fx.GraphModule) -> tuple[list[str], list[str]]:
    """Names of the activation quantizers on the network input and on its outputs."""
    inputs = [str(n.target) for n in gm.graph.nodes if n.op == "call_module" and str(n.target).endswith("_aq")
              and any(isinstance(a, torch.fx.Node) and a.op == "placeholder" for a in n.args)]  # fmt: skip
    out = next(n for n in gm.graph.nodes if n.op == "output")
    outputs = [str(a.target) for a in out.all_input_nodes if a.op == "call_module" and str(a.target).endswith("_aq")]
    return inputs, outputs


def _statistic(name: str) -> Any:  # a drop-in for msqe_optimal_step_from_samples
    from models.quant.quantizers import max_level, msqe_optimal_step_from_samples

    if name == "mse":
        return msqe_optimal_step_from_samples

    def step(values: torch.Tensor, bits: int, signed: bool, bins: int = 4096) -> float:
        mags = values.float().abs().flatten()
        top = float(mags.max()) if name == "max" else float(torch.quantile(mags[:16_000_000], float(name[1:]) / 100))
        return max(top, 1e-8) / max_level(bits, signed)

    return step


def prepared(float_model: torch.nn.Module, bits: str, knobs: dict[str, str], calib_source: list) -> Any:
    """The quant-aware model after calibration, with the ablation's ``knobs`` applied."""
    import models.quant.prepare as prepare
    from models.quant.prepare import act_quantizers
    from toolchain.quant import CalibrationBatches, QuantConfig, calibrate, prepare_qat, quant_weight_layers

    qc = QuantConfig(abits=8, per_channel=knobs.get("perchannel", "1") == "1", **BITS[bits])
    gm = prepare_qat(copy.deepcopy(float_model), qc)
    if knobs.get("wstep") == "max":
        for _, layer in quant_weight_layers(gm):
            w = layer.weight.detach()
            amax = w.abs().reshape(w.shape[0], -1).amax(1) if qc.per_channel else w.abs().amax()
            threshold = layer.weight_quant.tensor_quant.scaling_impl.value
            threshold.data.copy_(amax.reshape(threshold.shape))
    saved = prepare.ACT_SAMPLES, prepare.msqe_optimal_step_from_samples
    prepare.ACT_SAMPLES = int(knobs.get("samples", prepare.ACT_SAMPLES))
    prepare.msqe_optimal_step_from_samples = _statistic(knobs.get("stat", "mse"))
    try:
        torch.manual_seed(int(knobs.get("seed", 0)))
        batches = CalibrationBatches(calib_source, int(knobs.get("calib", 2)))
        calibrate(gm, batches)
    finally:
        prepare.ACT_SAMPLES, prepare.msqe_optimal_step_from_samples = saved
    inputs, outputs = _act_quants_at_io(gm)
    plain = {"io": inputs + outputs, "out": outputs}
    for key in ("io", "out"):
        if knobs.get(key) == "float":
            for name in plain[key]:
                setattr(gm, name, torch.nn.Identity())  # the quantizers sit on the root module
    if knobs.get("acts") == "float":
        for name, _ in act_quantizers(gm):
            setattr(gm, name, torch.nn.Identity())
    if knobs.get("weights") == "float":
        for _, layer in quant_weight_layers(gm):
            layer.weight_quant.disable_quant = True
    return gm, batches


def _skipping(knobs: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
    """With ``skip=linear``: Brevitas's GPFQ and Qronos updates return at once for ``nn.Linear`` layers, which the
    reconstruction then snaps to their grid (round to nearest)."""
    if knobs.get("skip") != "linear":
        return contextlib.nullcontext()
    from unittest import mock

    from brevitas.graph.gpfq import GPFQ
    from brevitas.graph.qronos import Qronos

    stack = contextlib.ExitStack()
    for cls in (GPFQ, Qronos):
        update = cls.single_layer_update

        def skipping(self: Any, *args: Any, _update: Any = update, **kwargs: Any) -> Any:
            return None if isinstance(self.layer, torch.nn.Linear) else _update(self, *args, **kwargs)

        stack.enter_context(mock.patch.object(cls, "single_layer_update", skipping))
    return stack


def score(model: torch.nn.Module, reference: torch.Tensor, xs: list[torch.Tensor], ys: torch.Tensor) -> dict:
    from toolchain.verify import float_agreement

    with torch.no_grad():
        logits = torch.cat([model(x) for x in xs])
    return {"top1": 100 * float((logits.argmax(1) == ys).double().mean()), **float_agreement(reference, logits)}


def main() -> int:
    from toolchain.data import load_dataset
    from toolchain.modeling import load_weights
    from toolchain.pretrained import imagenet_mobilenet_v2_path
    from toolchain.quant import reconstruct
    from toolchain.quant.ptq import parse_stages

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", required=True, help="BITS:STAGES;BITS:STAGES;… (see above)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--results", type=Path, help="append one JSON line per config here")
    args = p.parse_args()
    from models import create_model

    float_model = load_weights(create_model("mobilenet_v2"), imagenet_mobilenet_v2_path()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_dataset(str(held_out_folder(args.data, Path(tmp))))
        calib_source = list(bundle.train.batches(32, seed=0, train=False))
        held = list(bundle.test.batches(50))
    xs, ys = [x for x, _ in held], torch.cat([y for _, y in held])
    with torch.no_grad():
        reference = torch.cat([float_model(x) for x in xs])
    print(f"float: {100 * float((reference.argmax(1) == ys).double().mean()):.1f} % on {len(ys)} held-out train "
          f"images", file=sys.stderr)  # fmt: skip
    for spec in [c for c in args.configs.split(";") if c]:
        head, _, stages = spec.partition(":")
        bits, *pairs = head.split("+")
        knobs = dict(pair.split("=", 1) for pair in pairs)
        start = time.time()
        gm, batches = prepared(float_model, bits, knobs, calib_source)
        with _skipping(knobs):
            seconds = reconstruct(gm, batches, parse_stages(stages), log=lambda s: print(s, file=sys.stderr))
        calib = [(x, y) for (x, y), _ in zip(calib_source, range(int(knobs.get("calib", 2))))]
        with torch.no_grad():
            calib_reference = torch.cat([float_model(x) for x, _ in calib])
        seen = score(gm.eval(), calib_reference, [x for x, _ in calib], torch.cat([y for _, y in calib]))
        row: dict[str, Any] = {"bits": bits, "knobs": knobs, "ptq": stages, **score(gm.eval(), reference, xs, ys),
                               **{f"calib_{k}": v for k, v in seen.items()},
                               "float_top1": 100 * float((reference.argmax(1) == ys).double().mean()),
                               "n": len(ys), "ptq_seconds": seconds, "wall_s": time.time() - start,
                               "cpu": cpu_facts()}  # fmt: skip
        append_row(row, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

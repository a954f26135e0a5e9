"""onnxruntime CPU latency of our QDQ export vs FP32, onnxruntime's quantize_static and Brevitas QCDQ, in one run.

For each model, four ONNX files of the same network are built:
  fp32       torch.onnx.export of the float model
  ours       `exporters.export_model` of the model prepared at W8A8 and calibrated (post-training) on crops of
             scikit-image's photos (the `photos` data set); weight bits set by --wbits
  ort_static onnxruntime.quantization.quantize_static on the fp32 file: QDQ, per-channel, U8 activations,
             S8 weights, calibrated on the same crops
  brevitas   brevitas.export.export_onnx_qcdq of the same prepared model

Sessions: 2 intra-op threads, intra-op spinning off, all graph optimizations. After warm-up the sessions are run
interleaved, run by run (A/B/C/D/A/B/...), and the 10th percentile and median of each are reported with ratios.
The number of convolutions onnxruntime fused into integer kernels, the float ones left, and the file sizes are
recorded too, and top-1 agreement with the float model on 64 other random crops of the photos.

  python benchmarks/export_latency.py --runs 100 --out benchmarks/results/export_latency.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.common import save_report
from runtime.latency import race, timing_session

warnings.filterwarnings("ignore")


def _session(path: Path) -> ort.InferenceSession:
    return timing_session(path, threads=2)


def _build(
    name: str, weights: str | None, wbits: int, folder: Path, calib: torch.Tensor, batches: list[int], brevitas: bool
) -> tuple[dict[str, Path], dict[str, int]]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from exporters import export_model
    from models import create_model
    from toolchain.quant import QuantConfig, calibrate, prepare_qat

    model = create_model(name).eval()
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    paths = {k: folder / f"{name}_{k}.onnx" for k in ("fp32", "ours", "ort_static", "brevitas")}
    torch.onnx.export(
        model,
        calib[:1],
        str(paths["fp32"]),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
    )
    gm = prepare_qat(model, QuantConfig(wbits=wbits, abits=8, first_wbits=8, last_wbits=8))
    calibrate(gm, [calib[i : i + 8] for i in range(0, len(calib), 8)])
    gm.eval()
    result = export_model(gm, calib[:2], folder, f"{name}_ours_w{wbits}")
    result.standalone.rename(paths["ours"])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i : i + 1].numpy()} for i in range(len(calib))])

        def get_next(self):  # type: ignore[override]
            return next(self.batches, None)

    quantize_static(
        str(paths["fp32"]),
        str(paths["ort_static"]),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    from brevitas.export import export_onnx_qcdq

    del paths["brevitas"]
    for batch in batches if brevitas else []:  # Brevitas's (dynamo) export fixes the batch size of its example
        paths[f"brevitas_b{batch}"] = folder / f"{name}_brevitas_b{batch}.onnx"
        x = torch.cat([calib] * (1 + batch // len(calib)))[:batch]
        export_onnx_qcdq(gm, x, export_path=str(paths[f"brevitas_b{batch}"]), opset_version=17)
    sizes = {f"{k}_bytes": p.stat().st_size for k, p in paths.items()}
    assert result.graph is not None and result.sidecar is not None
    sizes["ours_compressed_bytes"] = result.graph.stat().st_size + result.sidecar.stat().st_size
    return paths, sizes


def _top1(session: ort.InferenceSession, x: np.ndarray) -> int:
    return int(session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)[0])


def _race(sessions: dict[str, ort.InferenceSession], x: np.ndarray, runs: int, warmup: int = 10) -> dict:
    """:func:`runtime.latency.race` (the first session is fp32) plus each session's time over ``ort_static``'s."""
    out = race(sessions, x, runs, warmup)
    for k in out:
        out[k]["vs_ort_static_median"] = out[k]["median_ms"] / out["ort_static"]["median_ms"]
    return out


def main() -> int:
    from runtime.kernels import classify_kernels, optimized_graph
    from toolchain.data import load_dataset
    from toolchain.pretrained import imagenet_mobilenet_v2_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--wbits", type=int, default=8)
    p.add_argument("--models", nargs="+", default=["mobilenet_v2", "shufflenet_v2_x1_0"])
    p.add_argument("--out", type=Path)
    p.add_argument("--no-brevitas", action="store_true", help="skip Brevitas's export (it needs onnxscript)")
    args = p.parse_args()

    torch.manual_seed(0)
    photos = load_dataset("photos", crops_per_epoch=64)
    calib = torch.cat([x for x, _ in photos.train.batches(16, train=True)])
    test = torch.cat([x for x, _ in photos.train.batches(16, train=True, seed=1)])  # 64 other random crops
    weights = {"mobilenet_v2": str(imagenet_mobilenet_v2_path())}
    report: dict = {
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "threads": 2,
        "runs": args.runs,
        "wbits": args.wbits,
        "models": {},
    }
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            t0 = time.time()
            paths, sizes = _build(name, weights.get(name), args.wbits, Path(tmp), calib, args.batches,
                                  not args.no_brevitas)  # fmt: skip
            sessions = {k: _session(v) for k, v in paths.items()}
            entry: dict = {"weights": "ImageNet (torchvision)" if name in weights else "random", **sizes}
            entry["kernels"] = {k: classify_kernels(optimized_graph(v)) for k, v in paths.items()}
            ref = sessions["fp32"].run(None, {"input": test.numpy()})[0].argmax(1)
            entry["top1_agreement_with_fp32"] = {
                k: float(np.mean([_top1(s, test[i : i + 1].numpy()) == ref[i] for i in range(len(test))]))
                for k, s in sessions.items()
                if not k.startswith("brevitas") or k == "brevitas_b1"
            }
            for batch in args.batches:
                x = torch.cat([calib] * (1 + batch // len(calib)))[:batch].numpy()
                racing = {k: s for k, s in sessions.items() if not k.startswith("brevitas")}
                if f"brevitas_b{batch}" in sessions:
                    racing["brevitas"] = sessions[f"brevitas_b{batch}"]
                entry[f"batch{batch}"] = _race(racing, x, args.runs)
                print(name, batch, json.dumps(entry[f"batch{batch}"], indent=None), flush=True)
            entry["wall_s"] = time.time() - t0
            report["models"][name] = entry
    return save_report(report, args.out, start)


if __name__ == "__main__":
    sys.exit(main())

"""onnxruntime CPU latency of our QDQ export vs FP32, onnxruntime's quantize_static and Brevitas QCDQ, in one run.

For each model and each weight width of --wbits, these sessions of the same network are built:
  fp32       torch.onnx.export of the float model
  ort_static onnxruntime.quantization.quantize_static on the fp32 file: QDQ, per-channel, U8 activations,
             S8 weights, calibrated on the same crops
  ours       the standalone file of `exporters.export_model` (int8 weight containers, the default) of the model
             prepared at W{wbits}A8 and calibrated (post-training) on crops of scikit-image's photos (`photos`)
  ours_uint8 the same, exported with --uint8-weights (8-bit weights as uint8, zero-point 128)
  ours_pair  the graph + sidecar pair of the same export, opened by `runtime.load` (containers chosen for this host)
  brevitas   brevitas.export.export_onnx_qcdq of the same prepared model (unless --no-brevitas)

The report records the CPU (model name and ISA flags) and the runtime's saturation probe, since the fastest exact
kernels differ between AVX2-only and VNNI CPUs (runtime.containers).

Sessions: 2 intra-op threads, intra-op spinning off, all graph optimizations. After warm-up the sessions are run
interleaved, run by run (A/B/C/D/A/B/...), and the 10th percentile and median of each are reported with ratios.
The number of convolutions onnxruntime fused into integer kernels, the float ones left, and the file sizes are
recorded too, and top-1 agreement with the float model on 64 other random crops of the photos.

  python benchmarks/export_latency.py --runs 100 --out benchmarks/results/export_latency.json
  python benchmarks/export_latency.py --models mobilenet_v2 --wbits 8 4 --runs 60 --no-brevitas \\
      --out benchmarks/results/export_latency_containers.json
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

import runtime
from benchmarks.common import cpu_facts, save_report
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
    paths = {k: folder / f"{name}_{k}.onnx" for k in ("fp32", "ours", "ours_uint8", "ort_static", "brevitas")}
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
    uint8 = export_model(gm, calib[:2], folder, f"{name}_ours_uint8_w{wbits}", sidecar=False, uint8_weights=True)
    uint8.standalone.rename(paths["ours_uint8"])

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
    sizes["ours_pair_bytes"] = result.graph.stat().st_size + result.sidecar.stat().st_size
    paths["ours_pair"] = result.graph
    return paths, sizes


def _top1(session: ort.InferenceSession, x: np.ndarray) -> int:
    return int(session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)[0])


def _race(sessions: dict[str, ort.InferenceSession], x: np.ndarray, runs: int, warmup: int = 10) -> dict:
    """:func:`runtime.latency.race` (the first session is fp32) plus each session's time over ``ort_static``'s."""
    out = race(sessions, x, runs, warmup)
    for k in out:
        out[k]["vs_ort_static_median"] = out[k]["median_ms"] / out["ort_static"]["median_ms"]
        out[k]["vs_ort_static_p10"] = out[k]["p10_ms"] / out["ort_static"]["p10_ms"]
    return out


def _open(key: str, path: Path) -> tuple[ort.InferenceSession, str]:
    """A timing session; the pair through ``runtime.load`` (which picks its containers), with the same settings."""
    if key != "ours_pair":
        return _session(path), ""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = runtime.load(path, session_options=options)
    return model.session, model.containers.summary()


def main() -> int:
    from runtime.kernels import classify_kernels, optimized_graph
    from toolchain.data import load_dataset
    from toolchain.pretrained import imagenet_mobilenet_v2_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--wbits", type=int, nargs="+", default=[8])
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
        "cpu": cpu_facts(),
        "threads": 2,
        "runs": args.runs,
        "wbits": args.wbits,
        "models": {},
    }
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, wbits in ((n, w) for n in args.models for w in args.wbits):
            t0 = time.time()
            folder = Path(tmp) / f"{name}_w{wbits}"
            folder.mkdir()
            paths, sizes = _build(name, weights.get(name), wbits, folder, calib, args.batches, not args.no_brevitas)
            opened = {k: _open(k, v) for k, v in paths.items()}
            sessions = {k: s for k, (s, _) in opened.items()}
            entry: dict = {"weights": "ImageNet (torchvision)" if name in weights else "random", **sizes}
            entry["pair_containers"] = opened["ours_pair"][1]
            entry["kernels"] = {k: classify_kernels(optimized_graph(v)) for k, v in paths.items() if k != "ours_pair"}
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
            report["models"][f"{name}_w{wbits}"] = entry
    return save_report(report, args.out, start)


if __name__ == "__main__":
    sys.exit(main())

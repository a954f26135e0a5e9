"""Load time of the sidecar artefact (verify + decode + session) vs the standalone .onnx, side by side in one run.

For each model and weight bit-width the model is prepared, calibrated on crops of scikit-image's photos and
exported; then ``runtime.load`` opens the standalone file, the graph + sidecar pair with one decoding thread (the
default) and the pair with two, in turn (A/B/C/A/B/C, after one warm-up each), and the median and 10th percentile
of each are reported with their ratios and the file sizes.

  python benchmarks/load_time.py --repeats 15 --out benchmarks/results/load_time.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import onnxruntime as ort
import torch

from benchmarks.common import save_report

warnings.filterwarnings("ignore")


def _load_time(path: Path, decode_threads: int = 1) -> float:
    import runtime

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    start = time.perf_counter()
    runtime.load(path, session_options=options, decode_threads=decode_threads)
    return time.perf_counter() - start


def main() -> int:
    from exporters import export_model
    from models import create_model
    from toolchain.data import load_dataset
    from toolchain.pretrained import imagenet_mobilenet_v2_path
    from toolchain.quant import QuantConfig, calibrate, prepare_qat

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--models", nargs="+", default=["mobilenet_v2", "shufflenet_v2_x1_0"])
    p.add_argument("--wbits", type=int, nargs="+", default=[8, 4])
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    torch.manual_seed(0)
    calib = torch.cat([x for x, _ in load_dataset("photos", crops_per_epoch=32).train.batches(16, train=True)])
    weights = {"mobilenet_v2": str(imagenet_mobilenet_v2_path())}
    report: dict = {
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "repeats": args.repeats,
        "results": [],
    }
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = create_model(name).eval()
            if name in weights:
                model.load_state_dict(torch.load(weights[name], map_location="cpu", weights_only=True))
            for wbits in args.wbits:
                gm = prepare_qat(model, QuantConfig(wbits=wbits, abits=8))
                calibrate(gm, [calib[i : i + 8] for i in range(0, len(calib), 8)])
                result = export_model(gm.eval(), calib[:2], Path(tmp) / f"{name}_w{wbits}", "m")
                assert result.graph is not None and result.sidecar is not None
                files = {  # (path, decode threads)
                    "standalone": (result.standalone, 1),
                    "sidecar": (result.graph, 1),
                    "sidecar_2_threads": (result.graph, 2),
                }
                for path, threads in files.values():
                    _load_time(path, threads)  # warm-up: page cache, onnxruntime's one-time initialisation
                times: dict[str, list[float]] = {k: [] for k in files}
                for _ in range(args.repeats):
                    for k, (path, threads) in files.items():
                        times[k].append(_load_time(path, threads))
                row = {
                    "model": name,
                    "weights": "ImageNet (torchvision)" if name in weights else "random",
                    "wbits": wbits,
                    "standalone_bytes": result.standalone.stat().st_size,
                    "sidecar_pair_bytes": result.graph.stat().st_size + result.sidecar.stat().st_size,
                }
                for k, ts in times.items():
                    ts.sort()
                    row[f"{k}_median_ms"] = 1e3 * statistics.median(ts)
                    row[f"{k}_p10_ms"] = 1e3 * ts[len(ts) // 10]
                row["ratio_median"] = row["sidecar_median_ms"] / row["standalone_median_ms"]
                row["ratio_2_threads_median"] = row["sidecar_2_threads_median_ms"] / row["standalone_median_ms"]
                print(json.dumps(row), flush=True)
                report["results"].append(row)
    return save_report(report, args.out, start)


if __name__ == "__main__":
    sys.exit(main())

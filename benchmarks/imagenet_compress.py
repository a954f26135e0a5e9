"""ImageNet MobileNetV2 (torchvision's checkpoint) compressed without ImageNet data: post-training steps only.

For 8- and 4-bit inner weights (first and last layers 8-bit), and 0 / 50 % magnitude pruning of the inner
pointwise layers (first, last and depthwise layers protected): prune the float model, prepare at W{n}A8,
calibrate the activation steps on 64 random 224×224 crops of scikit-image's photos, export the graph + sidecar,
and account for its compression. Then run it in onnxruntime on 64 *other* crops and compare with the float model:
top-1 agreement and logit SQNR ``10·log10(Σ f² / Σ (f − q)²)`` (and the pruned float model's agreement, which
separates the cost of pruning from that of quantization). No training, so 4-bit and pruned rows show what
post-training compression costs, not what QAT recovers; and agreement on photo crops is not ImageNet accuracy.

  PYTHONPATH=. .venv/bin/python benchmarks/imagenet_compress.py --out benchmarks/results/imagenet_compress.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import save_report

warnings.filterwarnings("ignore")


def main() -> int:
    import runtime
    from exporters import export_model
    from models import create_model
    from runtime.accounting import account
    from toolchain.data import load_dataset
    from toolchain.modeling import load_weights
    from toolchain.pretrained import imagenet_mobilenet_v2_path
    from toolchain.pruning import hard_prune, prunable_layers
    from toolchain.quant import QuantConfig, calibrate, prepare_qat

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = time.time()
    torch.set_num_threads(2)
    photos = load_dataset("photos", crops_per_epoch=64)
    calib = torch.cat([x for x, _ in photos.train.batches(16, train=True)])
    test = torch.cat([x for x, _ in photos.train.batches(16, train=True, seed=1)])  # 64 other random crops
    rows = []
    for sparsity in (0.0, 0.5):
        for wbits in (8, 4):
            t0 = time.time()
            model = load_weights(create_model("mobilenet_v2"), imagenet_mobilenet_v2_path()).eval()
            with torch.no_grad():
                reference = model(test).numpy()
            pruned_agreement = 1.0
            if sparsity:
                hard_prune([m for _, m in prunable_layers(model, ("first", "last", "depthwise"))], sparsity, "layer")
                with torch.no_grad():
                    pruned_agreement = float(np.mean(model(test).numpy().argmax(1) == reference.argmax(1)))
            gm = prepare_qat(model, QuantConfig(wbits=wbits, abits=8, first_wbits=8, last_wbits=8))
            calibrate(gm, [calib[i : i + 8] for i in range(0, len(calib), 8)])
            gm.eval()
            with tempfile.TemporaryDirectory() as tmp:
                export_model(gm, calib[:2], tmp, "mbv2")
                acc = account(Path(tmp) / "mbv2.compressed.onnx")
                logits = runtime.load(Path(tmp) / "mbv2.compressed.onnx").run(test.numpy())[0]
            sqnr = 10 * np.log10(np.sum(reference**2) / np.sum((reference - logits) ** 2))
            row = {
                "wbits": wbits,
                "sparsity_target": sparsity,
                "weight_sparsity": acc.sparsity,
                "bits_per_weight": acc.bits_per_weight,
                "total_ratio": acc.total_ratio,
                "weights_ratio": acc.weights_ratio,
                "coded_vs_entropy": acc.coded_bytes / acc.entropy_bytes,
                "sidecar_bytes": acc.sidecar_bytes,
                "pruned_float_top1_agreement": pruned_agreement,
                "top1_agreement": float(np.mean(reference.argmax(1) == logits.argmax(1))),
                "logit_sqnr_db": float(sqnr),
                "wall_s": time.time() - t0,
            }
            rows.append(row)
            print(row, flush=True)
    report = {"command": "PYTHONPATH=. python benchmarks/imagenet_compress.py", "crops": len(test), "rows": rows}
    return save_report(report, args.out, start)


if __name__ == "__main__":
    raise SystemExit(main())

"""Choosing the pruning scope for the ImageNet MobileNetV2 pruned row on held-out *training* images.

The float MobileNetV2 (torchvision weights) is magnitude-pruned to a share of the prunable weights (first, last and
depthwise layers protected, as `toolchain compress` does), with one threshold per layer (`layer`) or one over all
prunable weights (`global`), and scored on the last 100 images of `train/`: top-1 and top-1 agreement with the
unpruned model. No training: this shows how much each scope destroys before any recovery. `val/` is never read.

  PYTHONPATH=. .venv/bin/python benchmarks/imagenet_prune_probe.py --ratios 0.3 0.5 0.7   # ~1 min
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def main() -> int:
    from models import create_model
    from toolchain.data import load_dataset
    from toolchain.data.image_folder import FolderSource
    from toolchain.modeling import load_weights
    from toolchain.pretrained import imagenet_mobilenet_v2_path
    from toolchain.pruning import hard_prune
    from toolchain.pruning.selection import prunable_layers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = load_dataset(str(args.data))
    model = load_weights(create_model("mobilenet_v2"), imagenet_mobilenet_v2_path()).eval()
    held = FolderSource(bundle.train.samples[400:], 224)
    x, y = (torch.cat(t) for t in zip(*held.batches(50)))
    with torch.no_grad():
        ref = model(x).argmax(1)
    print(f"float: top-1 {(ref == y).float().mean():.2f}", flush=True)
    for ratio in args.ratios:
        for scope in ("layer", "global"):
            pruned = copy.deepcopy(model)
            layers = [m for _, m in prunable_layers(pruned, ("first", "last", "depthwise"))]  # compress's default
            hard_prune(layers, ratio, scope)
            with torch.no_grad():
                out = pruned(x).argmax(1)
            top1, agree = (out == y).float().mean().item(), (out == ref).float().mean().item()
            print(f"r={ratio:g} {scope}: top-1 {top1:.2f}, agreement {agree:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Side-by-side crops for the README: HR, bicubic, float network, 8-bit network in onnxruntime (one test photo).

  PYTHONPATH=. .venv/bin/python benchmarks/sr_crops.py --run runs/sr_grid/espcn_x3 --variant W8A8_msqe \\
      --out docs/images/sr_crops_espcn_x3.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import runtime
    from toolchain.restore import restore
    from toolchain.training.tasks import psnr

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="folder with float/ and <variant>/export/")
    p.add_argument("--variant", default="W8A8_msqe")
    p.add_argument("--image", type=int, default=0, help="index of the test photo (0: chelsea)")
    p.add_argument("--box", type=int, nargs=4, default=[60, 180, 120, 120], help="crop: top left height width (HR)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    float_model = restore(args.run / "float" / "last.pt")
    scale = float_model.bundle.scale
    lr, hr = list(float_model.bundle.test.batches(1))[args.image]
    exported = runtime.load(args.run / args.variant / "export" / "model.compressed.onnx")
    with torch.no_grad():
        outputs = {
            "bicubic": F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False),
            "float": float_model.model(lr),
            f"{args.variant} (onnxruntime)": torch.from_numpy(exported.run(lr.numpy())[0]),
        }
    top, left, h, w = args.box
    fig, axes = plt.subplots(1, len(outputs) + 1, figsize=(3.2 * (len(outputs) + 1), 3.6))
    panels = [("HR", hr, None), *[(k, v, psnr(v, hr, scale).item()) for k, v in outputs.items()]]
    for ax, (title, img, db) in zip(axes, panels):
        crop = img[0, 0, top : top + h, left : left + w].clamp(0, 1).numpy()
        ax.imshow(np.asarray(crop), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title if db is None else f"{title}\n{db:.2f} dB (whole image)", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{float_model.config.model} ×{scale}, Y channel, test photo {args.image}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choosing the distillation learning rate for the ImageNet MobileNetV2 rows on held-out *training* images.

W4A8 (first/last layer 8-bit), post-training calibrated on 64 images, then 12 SGD steps (Nesterov, momentum 0.9,
batch 32, constant rate, frozen batch norm) on the teacher's outputs alone (KL), over the first 400 images of
`train/`; scored on the other 100 `train/` images: top-1 and top-1 agreement with the float teacher. `val/` is
never read, so the rows reported on it are not tuned on it.

  PYTHONPATH=. .venv/bin/python benchmarks/imagenet_lr_probe.py 0.0003          # one rate per run, ~2 min each
  PYTHONPATH=. .venv/bin/python benchmarks/imagenet_lr_probe.py 0.002 --steps 8  # prints the loss per step
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
import torch.nn.functional as F

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def main() -> int:
    from models import create_model
    from toolchain.data import load_dataset
    from toolchain.data.image_folder import FolderSource
    from toolchain.modeling import load_weights
    from toolchain.pretrained import imagenet_mobilenet_v2_path
    from toolchain.quant import QuantConfig, calibrate, prepare_qat
    from toolchain.training.distill import freeze_batch_norm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lr", type=float)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = load_dataset(str(args.data))
    teacher = load_weights(create_model("mobilenet_v2"), imagenet_mobilenet_v2_path()).eval()
    student = load_weights(create_model("mobilenet_v2"), imagenet_mobilenet_v2_path()).eval()
    q = prepare_qat(student, QuantConfig(wbits=4, abits=8, first_wbits=8, last_wbits=8))
    held = FolderSource(bundle.train.samples[400:], 224)
    bundle.train.samples = bundle.train.samples[:400]
    calibrate(q, [x for x, _ in itertools.islice(bundle.train.batches(32), 2)])
    xh, yh = (torch.cat(t) for t in zip(*held.batches(50)))

    def score() -> tuple[float, float]:
        q.eval()
        with torch.no_grad():
            out, ref = q(xh), teacher(xh)
        return (out.argmax(1) == yh).float().mean().item(), (out.argmax(1) == ref.argmax(1)).float().mean().item()

    print("post-training: top-1 {:.2f}, agreement {:.2f}".format(*score()), flush=True)
    optimizer = torch.optim.SGD(q.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
    for step, (x, _) in enumerate(itertools.islice(bundle.train.batches(32, train=True), args.steps)):
        q.train()
        freeze_batch_norm(q)
        with torch.no_grad():
            target = F.log_softmax(teacher(x), 1)
        loss = F.kl_div(F.log_softmax(q(x), 1), target, reduction="batchmean", log_target=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}: KL {loss.item():.3f}", flush=True)
    print(f"lr {args.lr:g}, {args.steps} steps: top-1 %.2f, agreement %.2f" % score(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

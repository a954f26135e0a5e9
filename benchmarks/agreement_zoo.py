"""Agreement of onnxruntime with PyTorch for every registry model, in output quantization steps.

Each model (random weights, batch norm statistics from three train-mode passes) is prepared at the given bit-widths,
calibrated on random batches, exported, and run on random inputs in onnxruntime (CPU) and in PyTorch, both as the
PyTorch model of the export (batch norm folded, int32 bias) and as the quant-aware model. Reported per model: the
largest difference and the share of outputs within ±1 step; the worst case over the zoo is printed last.

  python benchmarks/agreement_zoo.py --wbits 4 --abits 8 --out benchmarks/results/agreement_zoo.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")


def main() -> int:
    import onnxruntime as ort

    from exporters import build_graph
    from exporters.reference import folded_model
    from models import create_model, get_model_spec, list_models
    from toolchain.agreement import compare, output_step
    from toolchain.quant import QuantConfig, calibrate, prepare_qat

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wbits", type=int, default=4)
    p.add_argument("--abits", type=int, default=8)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    start = time.time()
    for name in list_models():
        spec = get_model_spec(name)
        n = 64 if spec.input_size <= 32 else 4

        def batch(k: int, seed: int, spec=spec) -> torch.Tensor:
            g = torch.Generator().manual_seed(seed)
            return torch.randn(k, spec.in_chans, spec.input_size, spec.input_size, generator=g)

        torch.manual_seed(0)
        model = create_model(name).train()
        with torch.no_grad():
            for s in range(3):
                model(batch(8, 100 + s))
        gm = prepare_qat(model.eval(), QuantConfig(wbits=args.wbits, abits=args.abits))
        calibrate(gm, [batch(8, s) for s in (2, 3)])
        gm.eval()
        x = batch(n, 7)
        built = build_graph(gm, x)
        session = ort.InferenceSession(built.model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            folded, qat = folded_model(gm, built)(x).numpy(), gm(x).numpy()
        step = output_step(gm)
        row = {
            "model": name,
            "elements": int(got.size),
            "export_reference": compare(folded, got, step).to_dict(),
            "qat": compare(qat, got, step).to_dict(),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    worst = {k: min(rows, key=lambda r, k=k: r[k]["within_one"]) for k in ("export_reference", "qat")}
    report = {
        "wbits": args.wbits,
        "abits": args.abits,
        "models": rows,
        "worst": {k: {"model": r["model"], **r[k]} for k, r in worst.items()},
        "wall_s": time.time() - start,
    }
    print(json.dumps(report["worst"]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

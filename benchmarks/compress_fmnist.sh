#!/usr/bin/env bash
# Compression vs accuracy on Fashion-MNIST (BENCHMARKS.md, "Compression vs accuracy"): `toolchain compress` from the
# float baselines (benchmarks/float_baselines.sh runs/float) at several pruning ratios, methods and bit-widths.
#   OMP_NUM_THREADS=2 bash benchmarks/compress_fmnist.sh [runs/compress_fmnist] [benchmarks/results/compress_fmnist.jsonl] [FILTER]
# Each run appends one JSON line; FILTER (a regex on the run name) limits which runs go.
set -euo pipefail
ROOT=${1:-runs/compress_fmnist}
OUT=${2:-benchmarks/results/compress_fmnist.jsonl}
FILTER=${3:-.}
PY=${PYTHON:-.venv/bin/python}
# --subset 12800 at batch 128: 100 steps per epoch (a full Fashion-MNIST QAT epoch: ~10 min on 2 idle cores);
# 3 pruning epochs (300 steps: partial L2 needs them to drive the pruned weights' energy to ~0), 1 QAT epoch.
common=(--data fashion-mnist --subset 12800 --batch-size 128 --lr 0.01 --prune-lr 0.01 --prune-epochs 3 --epochs 1
        --abits 8 --reg msqe --lam 10 --lam-p 3 --no-progress --json
        --alpha-update optimizer --alpha-start 0 --step-rule task)  # the QAT defaults these rows ran with
mbv2=(--model mobilenet_v2_small --model-args width_mult=0.5 --float-checkpoint runs/float/mbv2_w05_fmnist/last.pt)
shv2=(--model shufflenet_v2_x0_5_small --float-checkpoint runs/float/shv2_x05_fmnist/last.pt)
run() {  # name, options...
  local name=$1; shift
  [[ $name =~ $FILTER ]] || return 0
  local start; start=$(date +%s)
  "$PY" -m toolchain compress "${common[@]}" "$@" --out-dir "$ROOT/$name" > "$ROOT/$name.json"
  local wall=$(( $(date +%s) - start ))
  "$PY" - "$name" "$wall" "$ROOT/$name.json" "$@" >> "$OUT" <<'PY'
import json, sys
name, wall, path, *options = sys.argv[1:]
r = json.load(open(path))
acc = r["export"]["accounting"]
print(json.dumps({
    "run": name, "options": " ".join(options), "wall_s": int(wall),
    "float_top1": r["float"]["top1"], "pruned_top1": r["prune"]["after_prune"]["top1"], "qat_top1": r["qat"]["top1"],
    "ort_top1": r["export"]["onnxruntime"]["top1"], "weight_sparsity": acc["sparsity"],
    "pruned_energy": r["prune"]["pruned_energy"], "bits_per_weight": acc["bits_per_weight"],
    "total_ratio": acc["total_ratio"], "weights_ratio": acc["weights_ratio"],
    "coded_vs_entropy": acc["coded_bytes"] / acc["entropy_bytes"], "sidecar_bytes": acc["sidecar_bytes"],
}))
PY
  tail -1 "$OUT"
}
mkdir -p "$ROOT"
run mbv2_pl2_r70_w4 "${mbv2[@]}" --method partial-l2 --ratio 0.7 --wbits 4
run mbv2_mag_r70_w4 "${mbv2[@]}" --method magnitude --ratio 0.7 --wbits 4
run mbv2_pl2_r70_w3 "${mbv2[@]}" --method partial-l2 --ratio 0.7 --wbits 3
run shv2_pl2_r70_w4 "${shv2[@]}" --method partial-l2 --ratio 0.7 --wbits 4
run mbv2_pl2_r50_w4 "${mbv2[@]}" --method partial-l2 --ratio 0.5 --wbits 4
run mbv2_mag_r50_w4 "${mbv2[@]}" --method magnitude --ratio 0.5 --wbits 4
run shv2_mag_r70_w4 "${shv2[@]}" --method magnitude --ratio 0.7 --wbits 4
run mbv2_pl2_r70_w4p6 "${mbv2[@]}" --method partial-l2 --ratio 0.7 --wbits 4 --prune-epochs 6  # 600 pruning steps

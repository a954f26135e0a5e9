#!/usr/bin/env bash
# Export the Fashion-MNIST QAT checkpoints of the MSQE benchmark and verify them in onnxruntime against PyTorch.
#   OMP_NUM_THREADS=2 bash benchmarks/verify_fmnist.sh [runs/qat_grid] [benchmarks/results/verify_fmnist.jsonl]
set -euo pipefail
GRID=${1:-runs/qat_grid}
OUT=${2:-benchmarks/results/verify_fmnist.jsonl}
PY=${PYTHON:-.venv/bin/python}
: > "$OUT.tmp"
for run in mbv2/W4A8_msqe_s0 mbv2/W2A8_msqe_s0 shv2/W4A8_msqe_s0 shv2/W2A8_msqe_s0; do
  ckpt="$GRID/$run/last.pt"
  float=$([[ $run == mbv2/* ]] && echo runs/float/mbv2_w05_fmnist/last.pt || echo runs/float/shv2_x05_fmnist/last.pt)
  start=$(date +%s)
  "$PY" -m toolchain export "$ckpt" --out-dir "$GRID/$run/export" --json > /dev/null
  set +e  # verify exits 1 when a threshold is missed; the report is what we record
  report=$("$PY" -m toolchain verify "$GRID/$run/export/model.compressed.onnx" --qat "$ckpt" --float-checkpoint "$float" --json)
  set -e
  wall=$(( $(date +%s) - start ))
  echo "$report" | "$PY" -c "import json,sys; r=json.load(sys.stdin); r['run']='$run'; r['wall_s']=$wall; print(json.dumps(r))" \
    >> "$OUT.tmp"
done
mv "$OUT.tmp" "$OUT"

#!/usr/bin/env bash
# Float starting points for the low-precision work (BENCHMARKS.md, "Float baselines"), sized for a 2-core CPU.
# Usage: benchmarks/float_baselines.sh OUT_ROOT [FASHION_MNIST_DIR] [extra train options]
# Extra options are appended to every run (argparse: the last occurrence wins), e.g. `--device cuda --amp`.
set -euo pipefail
out=${1:?output root}
fm=${2:-/usr/share/datasets/fashion-mnist}
shift $(( $# >= 2 ? 2 : 1 ))
py=${PYTHON:-python3}
fashion=(--data fashion-mnist --data-dir "$fm" --epochs 12 --batch-size 128 --lr 0.1 --weight-decay 5e-4
         --warmup-epochs 1 --no-progress --json)
$py -m toolchain train --model lenet5 --data digits --epochs 30 --no-progress --json "$@" --out-dir "$out/lenet5_digits"
$py -m toolchain train --model mobilenet_v2_small --model-args width_mult=0.5 "${fashion[@]}" "$@" \
    --out-dir "$out/mbv2_w05_fmnist"
$py -m toolchain train --model shufflenet_v2_x0_5_small "${fashion[@]}" "$@" --out-dir "$out/shv2_x05_fmnist"

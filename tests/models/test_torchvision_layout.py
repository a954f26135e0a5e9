"""MobileNetV2, MobileNetV3, EfficientNet-B0 and ShuffleNetV2 match torchvision's state-dict layout, and the real
ImageNet checkpoint works."""

import numpy as np
import pytest
import torch
from PIL import Image

from models import create_model

# Parameter counts of torchvision's models (torchvision docs, "num_params").
TORCHVISION_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name: str) -> None:
    assert sum(p.numel() for p in create_model(name).parameters()) == TORCHVISION_PARAMS[name]


def test_shufflenet_v2_key_layout() -> None:
    state = create_model("shufflenet_v2_x1_0").state_dict()
    expected = {
        "conv1.0.weight": (24, 3, 3, 3),
        "stage2.0.branch1.0.weight": (24, 1, 3, 3),
        "stage2.0.branch1.2.weight": (58, 24, 1, 1),
        "stage2.1.branch2.0.weight": (58, 58, 1, 1),
        "stage3.7.branch2.5.weight": (116, 116, 1, 1),
        "conv5.0.weight": (1024, 464, 1, 1),
        "fc.weight": (1000, 1024),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "stage2.1.branch1.0.weight" not in state  # stride-1 units have an empty branch1


def test_mobilenet_v3_key_layout() -> None:
    """torchvision's names: ``features.<i>.block.<j>`` with squeeze-excite ``fc1``/``fc2``, a 4-layer classifier."""
    states = {arch: create_model(f"mobilenet_v3_{arch}").state_dict() for arch in ("small", "large")}
    expected = {
        ("small", "features.0.0.weight"): (16, 3, 3, 3),
        ("small", "features.1.block.1.fc1.weight"): (8, 16, 1, 1),
        ("small", "features.4.block.2.fc2.weight"): (96, 24, 1, 1),
        ("small", "features.12.0.weight"): (576, 96, 1, 1),
        ("small", "classifier.3.weight"): (1000, 1024),
        ("large", "features.1.block.0.0.weight"): (16, 1, 3, 3),
        ("large", "features.4.block.2.fc1.weight"): (24, 72, 1, 1),
        ("large", "features.16.0.weight"): (960, 160, 1, 1),
        ("large", "classifier.0.weight"): (1280, 960),
    }
    for (arch, key), shape in expected.items():
        assert tuple(states[arch][key].shape) == shape, key
    assert len(states["small"]) == 244


@pytest.fixture(scope="module")
def imagenet_weights():
    from runtime import ToolchainError
    from toolchain.pretrained import imagenet_mobilenet_v2_path

    try:
        return imagenet_mobilenet_v2_path()
    except ToolchainError as e:
        pytest.skip(f"ImageNet MobileNetV2 weights not installed ({e})")


def test_imagenet_mobilenet_v2_classifies_chelsea_as_a_cat(imagenet_weights) -> None:
    import skimage.data

    from toolchain.data.image_folder import eval_transform

    model = create_model("mobilenet_v2").eval()
    model.load_state_dict(torch.load(imagenet_weights, weights_only=True), strict=True)
    x = eval_transform(Image.fromarray(np.asarray(skimage.data.chelsea())))[None]
    with torch.no_grad():
        top1 = model(x).argmax(1).item()
    assert 281 <= top1 <= 285, f"chelsea classified as ImageNet class {top1}, not a cat (281-285)"


@pytest.mark.heavy
def test_imagenet_mobilenet_v2_post_training_quantization_keeps_the_cat(imagenet_weights, tmp_path) -> None:
    """The ImageNet checkpoint reaches W8A8 through the PTQ path, calibrated on crops of scikit-image's photos."""
    import skimage.data

    from toolchain.data.image_folder import eval_transform
    from toolchain.quant.qat import QATConfig, QATRecipe
    from toolchain.training import train

    config = QATConfig(
        model="mobilenet_v2",
        data="photos",
        float_checkpoint=str(imagenet_weights),
        epochs=0,
        wbits=8,
        abits=8,
        batch_size=8,
        calib_batches=2,
        out_dir=str(tmp_path),
    )
    recipe = QATRecipe(config)
    result = train(config, recipe=recipe, progress=False)
    assert result["n"] == 0  # unlabelled photos: nothing to score, calibration only
    model = recipe.regularizer._layers[0]  # any layer proves the model was prepared
    assert type(model).__name__ == "QuantConv2d"
    from toolchain.training import load_checkpoint
    from toolchain.training.distributed import DistEnv
    from toolchain.training.loop import load_bundle

    qat = QATRecipe(config, restoring=True).build(load_bundle(config), DistEnv(0, 1, 0, torch.device("cpu")))
    qat.load_state_dict(load_checkpoint(tmp_path / "last.pt")["model"])
    x = eval_transform(Image.fromarray(np.asarray(skimage.data.chelsea())))[None]
    with torch.no_grad():
        top1 = qat.eval()(x).argmax(1).item()
    assert 281 <= top1 <= 285, f"W8A8 MobileNetV2 classified chelsea as {top1}"

"""Model registry behaviour and every registered model's forward pass."""

import pytest
import torch

import models
from models import create_model, get_model_spec, list_models
from models.registry import UnknownModelError


def test_registry_lists_every_required_architecture() -> None:
    names = set(list_models())
    required = {
        "mobilenet_v1",
        "mobilenet_v2",
        "shufflenet_v1_g3",
        "shufflenet_v1_g8",
        "shufflenet_v2_x0_5",
        "shufflenet_v2_x1_0",
        "resnet20",
        "lenet5",
        "srcnn",
        "fsrcnn",
        "espcn",
        "vit_small",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "mobilenet_v3_small_small",
        "mobilenet_v3_large_small",
        "efficientnet_b0",
        "efficientnet_b0_small",
    }
    assert required <= names
    for family in (
        "mobilenet_v1",
        "mobilenet_v2",
        "shufflenet_v1",
        "shufflenet_v2",
        "resnet20",
        "lenet5",
        "srcnn",
        "fsrcnn",
        "espcn",
        "vit",
        "mobilenet_v3",
        "efficientnet",
    ):
        assert any(n.startswith(family) for n in list_models(tag="tiny")), f"no tiny variant of {family}"
    # Every ImageNet-resolution classifier has a small-input variant.
    assert {
        "mobilenet_v1_small",
        "mobilenet_v2_small",
        "shufflenet_v1_g3_small",
        "shufflenet_v1_g8_small",
        "shufflenet_v2_x0_5_small",
        "shufflenet_v2_x1_0_small",
    } <= names


def test_list_models_filters() -> None:
    assert list_models("shufflenet_v2*") == sorted(n for n in list_models() if n.startswith("shufflenet_v2"))
    assert all(get_model_spec(n).task == "super_resolution" for n in list_models(task="super_resolution"))
    assert len(list_models(task="super_resolution")) == 6


def test_unknown_model_names_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="mobilenet_v2"):
        create_model("mobilenet_v9")


def test_overrides_win_over_defaults() -> None:
    model = create_model("mobilenet_v2_small", num_classes=7, in_chans=3, width_mult=0.5)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize("name", list_models())
def test_forward_shape(name: str) -> None:
    spec = get_model_spec(name)
    model = create_model(name).eval()
    x = torch.randn(2, spec.in_chans, spec.input_size, spec.input_size)
    with torch.no_grad():
        y = model(x)
    if spec.task == "classification":
        assert y.shape == (2, spec.defaults.get("num_classes", 1000))
    else:
        s = spec.defaults["scale"]
        assert y.shape == (2, spec.in_chans, s * spec.input_size, s * spec.input_size)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["srcnn_tiny", "fsrcnn_tiny", "espcn_tiny"])
def test_super_resolution_scales(name: str, scale: int) -> None:
    model = create_model(name, scale=scale).eval()
    assert model(torch.randn(1, 1, 17, 13)).shape == (1, 1, 17 * scale, 13 * scale)


def test_lenet_on_digits_size() -> None:
    assert create_model("lenet5", input_size=8)(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="groups"):
        create_model("shufflenet_v1_g3", groups=5)
    with pytest.raises(ValueError, match="scale"):
        create_model("espcn", scale=5)
    with pytest.raises(ValueError, match="width"):
        create_model("shufflenet_v2_x1_0", width=0.7)


def test_parameter_free_ops_are_modules() -> None:
    """Residual sums, concatenations and shuffles must be modules so that quantization can find them."""
    kinds = {type(m).__name__ for m in create_model("shufflenet_v2_tiny").modules()}
    assert {"Concat", "ChannelShuffle"} <= kinds
    assert "Add" in {type(m).__name__ for m in create_model("mobilenet_v2_tiny").modules()}
    assert "Add" in {type(m).__name__ for m in create_model("resnet20_tiny").modules()}
    assert models.layers.ChannelShuffle(2)(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist() == [0, 2, 1, 3]


def test_mobilenet_v3_batch_norm_momentum_fits_how_each_variant_is_trained() -> None:
    """torchvision's 0.01 for the ImageNet-size models (fine-tuned from pretrained statistics); 0.1 for the 28×28
    variants trained from scratch, where 0.01 left stale statistics: 10 % top-1 in eval mode
    (models/mobilenet_v3.py)."""

    def momenta(name: str) -> set[float]:
        return {m.momentum for m in create_model(name).modules() if isinstance(m, torch.nn.BatchNorm2d)}

    for name in ("mobilenet_v3_small", "mobilenet_v3_large"):
        assert momenta(name) == {0.01}
    for name in ("mobilenet_v3_small_small", "mobilenet_v3_large_small", "mobilenet_v3_tiny"):
        assert momenta(name) == {0.1}

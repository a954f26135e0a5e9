"""Post-training reconstruction (``--ptq``): Brevitas's GPTQ and bias correction beat rounding to the nearest level on
a trained network, keep pruned zeros at 0, leave weights on their grid and the model's parameters as they were (so
checkpoints restore and export), and run on every kind of block."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from models.quant.prepare import weight_bits, weight_step
from models.quant.quantizers import quantize_levels
from tests.exporters.helpers import prepared, sample
from toolchain.config import TrainConfig
from toolchain.modeling import build_model, load_weights
from toolchain.quant import CalibrationBatches, QuantConfig, calibrate, prepare_qat, quant_weight_layers, reconstruct
from toolchain.quant.qat import QATConfig, QATRecipe
from toolchain.restore import restore
from toolchain.training import load_bundle, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, torch.nn.Module, object]:
    out = tmp_path_factory.mktemp("float")
    config = TrainConfig(out_dir=str(out), epochs=8)
    train(config, progress=False)
    bundle = load_bundle(config)
    model = load_weights(build_model("lenet5", bundle, {}), out / "last.pt").eval()
    return out / "last.pt", model, bundle


def _logit_mse(model: torch.nn.Module, reference: torch.nn.Module, bundle) -> float:
    with torch.no_grad():
        xs = [x for x, _ in bundle.test.batches(128)]
        return float(sum(((model.eval()(x) - reference(x)) ** 2).mean() for x in xs) / len(xs))


def _quantized(float_model: torch.nn.Module, bundle, stages: list[str], wbits: int = 3) -> torch.fx.GraphModule:
    gm = prepare_qat(copy.deepcopy(float_model), QuantConfig(wbits=wbits, first_wbits=4, last_wbits=4))
    batches = CalibrationBatches(bundle.train.batches(64, seed=0, train=False), 4)
    calibrate(gm, batches)
    reconstruct(gm, batches, stages)
    return gm.eval()


def _on_grid(gm: torch.nn.Module) -> bool:
    return all(
        torch.equal(m.weight, weight_step(m) * quantize_levels(m.weight, weight_step(m), weight_bits(m)))
        for _, m in quant_weight_layers(gm)
    )


def test_reconstruction_beats_rounding_to_nearest(trained) -> None:
    """The check that fails if reconstruction stops improving over round-to-nearest (3-bit LeNet-5 on digits)."""
    _, float_model, bundle = trained
    rtn = _logit_mse(_quantized(float_model, bundle, []), float_model, bundle)
    corrected = _logit_mse(_quantized(float_model, bundle, ["bias-correction"]), float_model, bundle)
    gptq = _quantized(float_model, bundle, ["gptq", "bias-correction"])
    assert corrected < rtn and _logit_mse(gptq, float_model, bundle) < 0.8 * rtn, (rtn, corrected)
    assert _on_grid(gptq) and not any("weight_orig" in k for k in gptq.state_dict())


def test_learned_rounding_beats_rounding_to_nearest_and_leaves_plain_quantizers(trained) -> None:
    _, float_model, bundle = trained
    rtn = _quantized(float_model, bundle, [])
    learned = _quantized(float_model, bundle, ["learned-round"])
    assert _logit_mse(learned, float_model, bundle) < 0.8 * _logit_mse(rtn, float_model, bundle)
    assert _on_grid(learned) and learned.state_dict().keys() == rtn.state_dict().keys()
    assert all(torch.equal(weight_step(a), weight_step(b))
               for (_, a), (_, b) in zip(quant_weight_layers(learned), quant_weight_layers(rtn)))  # fmt: skip


def test_pruned_zeros_stay_zero_and_the_parameters_are_unchanged(trained) -> None:
    _, float_model, bundle = trained
    pruned = copy.deepcopy(float_model)
    with torch.no_grad():
        for m in pruned.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                m.weight[m.weight.abs() < m.weight.abs().median()] = 0
    plain = prepare_qat(copy.deepcopy(pruned), QuantConfig(wbits=3, first_wbits=4, last_wbits=4))
    gm = _quantized(pruned, bundle, ["gptq", "gpfq", "bias-correction"])
    assert gm.state_dict().keys() == plain.state_dict().keys()
    for (_, q), (_, f) in zip(quant_weight_layers(gm), quant_weight_layers(plain)):
        assert torch.all(q.weight[f.weight == 0] == 0)


def test_bias_correction_moves_into_the_batch_norm_of_a_convolution_without_bias() -> None:
    gm = copy.deepcopy(prepared("mobilenet_v2_tiny", wbits=3))
    keys = gm.state_dict().keys()
    means = {n: b.clone() for n, b in gm.state_dict().items() if n.endswith("running_mean")}
    reconstruct(gm, CalibrationBatches([sample("mobilenet_v2_tiny", 8, seed=5)], 1), ["bias-correction"])
    assert gm.state_dict().keys() == keys  # no bias parameter added to the bias-free convolutions
    assert any(not torch.equal(means[n], b) for n, b in gm.state_dict().items() if n in means)


# vit_tiny and shufflenet_v1_tiny take seconds; the squeeze-excite networks 45-210 s (GPTQ's layer-by-layer passes
# over many small layers), so they run in the heavy lane.
@pytest.mark.parametrize(
    "name",
    [
        "vit_tiny",
        "shufflenet_v1_tiny",
        pytest.param("mobilenet_v3_tiny", marks=pytest.mark.heavy),
        pytest.param("efficientnet_tiny", marks=pytest.mark.heavy),
    ],
)
def test_every_kind_of_block_reconstructs(name: str) -> None:
    _reconstructs(name, ["gptq", "bias-correction"])


# Learned rounding's cost is per layer (Brevitas's quantizer overhead on each of its Adam steps): 20 steps a layer
# here; the many small layers of mobilenet_v2_tiny still take a minute, so that case runs in the heavy lane.
@pytest.mark.parametrize("name", ["vit_tiny", pytest.param("mobilenet_v2_tiny", marks=pytest.mark.heavy)])
def test_learned_rounding_runs_on_attention_and_depthwise_blocks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import toolchain.quant.rounding as rounding

    monkeypatch.setattr(rounding, "ITERATIONS", 20)
    _reconstructs(name, ["learned-round"])


def _reconstructs(name: str, stages: list[str]) -> None:
    gm = copy.deepcopy(prepared(name, wbits=4))
    keys = gm.state_dict().keys()
    x = sample(name, 8, seed=5)
    reconstruct(gm, CalibrationBatches([x], 1), stages)
    assert gm.state_dict().keys() == keys and _on_grid(gm)
    assert torch.isfinite(gm(x)).all()


def test_the_qat_recipe_runs_the_stages_and_the_checkpoint_restores(trained, tmp_path: Path) -> None:
    ckpt, float_model, bundle = trained
    config = QATConfig(float_checkpoint=str(ckpt), out_dir=str(tmp_path), wbits=3, epochs=0, ptq="gptq,bias-correction")
    recipe = QATRecipe(config)
    result = train(config, recipe=recipe, progress=False)
    assert set(result["ptq_seconds"]) == {"gptq", "bias-correction"}
    # only the float model's zeros are held at 0 in training, not the weights reconstruction rounded to level 0
    assert recipe.masks.pruned == 0
    restored = restore(tmp_path / "last.pt")
    assert _logit_mse(restored.model, float_model, bundle) == pytest.approx(
        _logit_mse(_quantized(float_model, bundle, []), float_model, bundle), rel=10
    )  # restored, not re-reconstructed: the checkpoint's weights come back
    assert _on_grid(restored.model)
    with pytest.raises(Exception, match="unknown --ptq stage"):
        QATConfig(ptq="gptq,adaround-typo")

"""Folding into the exported form: same weights, int32 bias within half a bias step, exact sub-pixel deconvolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exporters import build_graph
from exporters.deconv import subpixel_supported, subpixel_weights
from exporters.folding import container_multiplier, container_zero_point
from exporters.reference import folded_model
from runtime.containers import u8s8_exact
from tests.exporters.helpers import exported_and_agreeing, prepared, run_ort, sample
from toolchain.agreement import compare, output_step
from toolchain.quant import QuantConfig, calibrate, prepare_qat


@pytest.mark.parametrize("bits", range(2, 9))
def test_container_multiplier_keeps_levels_within_63(bits: int) -> None:
    m, top = container_multiplier(bits), 2 ** (bits - 1) - 1
    assert m * top <= 63 or m == 1  # u8 x s8 pair sums stay inside int16 (8-bit weights are what they are)
    assert (m + 1) * top > 63  # and it is the largest such multiplier


@pytest.mark.parametrize("bits", range(2, 9))
def test_containers_past_63_are_uint8(bits: int) -> None:
    top = container_multiplier(bits) * (2 ** (bits - 1) - 1)
    assert container_zero_point(bits, uint8=True) == (128 if top > 63 else 0)  # --uint8-weights
    assert container_zero_point(bits) == 0  # the default, as quantize_static and TensorRT


def test_8_bit_weights_at_full_range_run_exactly_in_onnxruntime_integer_kernels() -> None:
    """The worst case for onnxruntime's u8×s8 kernels on AVX2 CPUs without VNNI: every level at +127 and inputs near
    255, so each pair of products sums past int16. Stored as int8, this model's outputs were up to 42 steps off on
    this project's AVX2 machine (exporters.folding.container_zero_point); stored as uint8 they are exact. The
    depthwise convolution keeps int8 and is exact too."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
        nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    with torch.no_grad():
        for conv in (model[0], model[2], model[4]):
            conv.weight.fill_(0.05)
            conv.bias.zero_()
    gm = prepare_qat(model, QuantConfig(wbits=8, abits=8))
    calibrate(gm, [torch.rand(8, 8, 8, 8) + 0.5 for _ in range(2)])
    built = exported_and_agreeing(gm.eval(), (16, 8, 8, 8), uint8_weights=True)  # exact on every host
    assert [w.zero_point for w in built.weights] == [128, 0, 128]
    assert all(np.abs(w.levels).max() == 127 for w in built.weights)
    # The default: every container int8, as quantize_static and TensorRT; exact where the probe says u8×s8 is
    fast = build_graph(gm, torch.rand(2, 8, 8, 8))
    assert [w.zero_point for w in fast.weights] == [0, 0, 0]
    x = torch.rand(16, 8, 8, 8) + 0.5
    with torch.no_grad():
        reference = folded_model(gm, fast)(x).numpy()
    saturating = compare(reference, run_ort(fast.model.SerializeToString(), x.numpy()), output_step(gm))
    assert saturating.ok() == u8s8_exact()  # the probe tells this host's kernels apart on a real model
    assert all(
        np.array_equal(a.float_weight(), b.float_weight()) for a, b in zip(fast.layers.values(), built.layers.values())
    )


def test_integer_layers_keep_the_frozen_weights_and_round_the_bias_by_at_most_half_a_step() -> None:
    gm = prepared("resnet20_tiny", wbits=3)
    built = build_graph(gm, sample("resnet20_tiny", 2))
    for name, il in built.layers.items():
        fw = built.frozen.weights[name]
        np.testing.assert_allclose(il.float_weight(), fw.dequantized(), rtol=1e-6, atol=1e-9)
        assert np.all(np.abs(il.container.astype(int) - il.zero_point) <= max(63, 2 ** (fw.bits - 1) - 1))
        if fw.bias is not None:
            err = np.abs(il.float_bias().astype(np.float64) - fw.bias)
            assert np.all(err <= 0.5 * il.bias_scale * (1 + 1e-5))


@pytest.mark.parametrize(("stride", "kernel", "padding"), [(2, 9, 4), (3, 9, 4), (4, 9, 4), (2, 4, 1), (3, 3, 0)])
def test_subpixel_form_equals_the_transposed_convolution(stride: int, kernel: int, padding: int) -> None:
    output_padding = stride - (kernel - 2 * padding)
    assert subpixel_supported(kernel, stride, padding, output_padding)
    w = torch.randn(5, 3, kernel, kernel, dtype=torch.float64)
    x = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    expected = F.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding)
    g, pads = subpixel_weights(w.numpy(), stride, padding)
    padded = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    got = F.pixel_shuffle(F.conv2d(padded, torch.from_numpy(g)), stride)
    torch.testing.assert_close(got, expected)


def test_subpixel_form_refuses_outputs_that_need_cropping() -> None:
    assert not subpixel_supported(kernel=3, stride=2, padding=1, output_padding=0)  # 2L - 1 outputs

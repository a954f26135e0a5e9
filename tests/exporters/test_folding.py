"""Folding into the exported form: same weights, int32 bias within half a bias step, exact sub-pixel deconvolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exporters import build_graph
from exporters.deconv import subpixel_supported, subpixel_weights
from exporters.folding import container_multiplier
from tests.exporters.helpers import prepared, sample


@pytest.mark.parametrize("bits", range(2, 9))
def test_container_multiplier_keeps_levels_within_63(bits: int) -> None:
    m, top = container_multiplier(bits), 2 ** (bits - 1) - 1
    assert m * top <= 63 or m == 1  # u8 x s8 pair sums stay inside int16 (8-bit weights are what they are)
    assert (m + 1) * top > 63  # and it is the largest such multiplier


def test_integer_layers_keep_the_frozen_weights_and_round_the_bias_by_at_most_half_a_step() -> None:
    gm = prepared("resnet20_tiny", wbits=3)
    built = build_graph(gm, sample("resnet20_tiny", 2))
    for name, il in built.layers.items():
        fw = built.frozen.weights[name]
        np.testing.assert_allclose(il.float_weight(), fw.dequantized(), rtol=1e-6, atol=1e-9)
        assert np.all(np.abs(il.container.astype(int)) <= max(63, 2 ** (fw.bits - 1) - 1))
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

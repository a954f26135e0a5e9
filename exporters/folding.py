"""A weighted layer as the exported graph holds it: integer levels in an int8 or uint8 container, steps, int32 bias.

``freeze`` gives integer levels ``q`` and per-channel steps ``δ`` with batch norm folded. Export adds two integer
facts that change numbers, so they live here, shared by the graph builder and the PyTorch reference
(:mod:`exporters.reference`):

* the **container multiplier** ``m``: sub-8-bit levels are stored as ``m·q`` with scale ``δ/m`` (same weights);
* the **container zero-point**: levels are stored as int8 (zero-point 0), as onnxruntime's ``quantize_static`` and
  TensorRT do; with ``uint8`` (``--uint8-weights``) 8-bit levels of convolutions and linear layers are stored as uint8
  ``q + 128`` (zero-point 128) instead (:func:`container_zero_point`: the same weights, but no overflow in
  onnxruntime's AVX2 kernels; a sidecar pair gets the right one for its host at load, :mod:`runtime.containers`);
* the **int32 bias** ``round(b / (s_in · δ/m))`` at scale ``s_in · δ/m``, as onnxruntime's integer kernels add it
  to their accumulators. Its rounding is the one place where the exported model is not the quant-aware model:
  at most half a bias step per channel, which ``m`` makes small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.quant.freeze import FrozenWeight
from models.quant.quantizers import max_level
from runtime import ToolchainError
from runtime.levels import to_container

__all__ = ["IntegerLayer", "container_multiplier", "container_zero_point", "integer_layer"]


def container_multiplier(bits: int) -> int:
    """The factor ``m`` by which sub-8-bit levels are scaled in their int8 container (scale divided by ``m``).

    The weights are unchanged (``(m·q)·(δ/m) = q·δ``), but the int32 bias, whose scale onnxruntime fixes at
    ``s_in · s_w``, becomes ``m`` times finer. Without it, ternary weights have ``s_w`` so coarse that rounding the
    bias moves outputs by up to half an output step (measured: 16 % of a MobileNetV2 W2A8 layer's outputs off by
    one step or more). ``|m·q| ≤ 63`` keeps every u8×s8 pair sum inside int16, so AVX2 kernels cannot saturate.
    """
    return max(1, 63 // max_level(bits))


def container_zero_point(bits: int, uint8: bool = False) -> int:
    """0 (an int8 container), the default; 128 (a uint8 container, ``q + 128``) where ``uint8`` asks for it
    (``--uint8-weights``, never for depthwise convolutions) and the levels can pass ``|m·q| > 63`` (8 bits).

    onnxruntime's u8×s8 convolution and Gemm kernels on x86 CPUs without VNNI (AVX2 only) add pairs of u8·s8
    products in int16 (``vpmaddubsw``), which saturates once ``|x₁w₁ + x₂w₂| > 32767``: 8-bit levels reach ±127
    against activations up to 255. Measured on this project's AVX2 machine: a trained Fashion-MNIST MobileNetV3's
    first convolution put 23 % of its outputs 3–40 steps off, and the network lost 3 points of top-1. With uint8
    weights onnxruntime takes its u8×u8 kernels, which widen to 16 bits before multiplying: exact, and still
    ``QLinearConv``/``QGemm``. Depthwise convolutions (one input and one output channel per group) run on their
    own kernel, which widens first and does not saturate, and its u8×u8 variant is slower (that MobileNetV3 at
    W8A8: 1.87 ms with uint8 depthwise weights, 1.64 ms with int8 ones), so they keep int8. The u8×u8 kernels are
    slower elsewhere too (ImageNet MobileNetV2 at W8A8: 6.3 against 5.1 ms at batch 1), which is why int8 is the
    default, as in the rest of the ecosystem (VNNI CPUs, ARM64 and GPUs sum u8×s8 exactly), and the sidecar pair,
    which holds levels rather than containers, gets uint8 at load only on hosts whose kernels saturate.
    """
    return 128 if max_level(bits) * container_multiplier(bits) > 63 and uint8 else 0


@dataclass(frozen=True)
class IntegerLayer:
    levels: np.ndarray  # int8 levels q, in the layer's weight layout
    steps: np.ndarray  # float32 δ per output channel (channels whose levels are all 0: the layer's largest step)
    axis: int  # output-channel axis of the weight (1 for transposed convolutions)
    bits: int
    multiplier: int
    bias: np.ndarray | None  # int32
    bias_scale: np.ndarray | None  # float32 per output channel: s_in · δ / m
    zero_point: int = 0  # of the container: 0 (int8) or 128 (uint8), see container_zero_point

    @property
    def container(self) -> np.ndarray:
        return to_container(self.levels, self.multiplier, self.zero_point)

    @property
    def scale(self) -> np.ndarray:
        """Per-channel scale of the container, ``δ / m``."""
        return (self.steps / np.float32(self.multiplier)).astype(np.float32)

    def float_weight(self) -> np.ndarray:
        shape = [1] * self.levels.ndim
        shape[self.axis] = -1
        return (self.container.astype(np.float32) - self.zero_point) * self.scale.reshape(shape)

    def float_bias(self) -> np.ndarray | None:
        if self.bias is None or self.bias_scale is None:
            return None
        return (self.bias.astype(np.float32) * self.bias_scale).astype(np.float32)


def integer_layer(name: str, fw: FrozenWeight, axis: int, input_step: np.float32, uint8: bool = False) -> IntegerLayer:
    """The exported form of a frozen layer whose input lies on a grid of step ``input_step`` (``uint8``: a uint8
    container at 8 bits, see :func:`container_zero_point`)."""
    levels, steps = fw.levels.copy(), fw.step.astype(np.float32).copy()
    dead = ~(steps > 0) | ~np.isfinite(steps)  # e.g. a channel whose batch-norm scale γ is 0: weights are all 0
    np.moveaxis(levels, axis, 0)[dead] = 0
    # A channel whose levels are all 0 (dead, or pruned whole) computes only its bias, and its step is free: its
    # MSQE-optimal step may be tiny, which would put the bias far outside int32. Give it the layer's largest step.
    empty = dead | ~np.moveaxis(levels, axis, 0).reshape(levels.shape[axis], -1).any(axis=1)
    live = steps[~empty]
    steps[empty] = live.max() if live.size else 1.0
    m = container_multiplier(fw.bits)
    bias = bias_scale = None
    if fw.bias is not None:
        bias_scale = (np.float32(input_step) * (steps / np.float32(m))).astype(np.float32)
        q = np.round(fw.bias.astype(np.float64) / bias_scale.astype(np.float64))
        if np.abs(q).max(initial=0) >= 2**31 - 1:
            raise ToolchainError(f"layer {name}: bias does not fit int32 at scale s_in·s_w")
        bias = q.astype(np.int32)
    return IntegerLayer(levels, steps, axis, fw.bits, m, bias, bias_scale, container_zero_point(fw.bits, uint8))

"""A transposed convolution as a convolution followed by depth-to-space (the sub-pixel form).

onnxruntime has no integer kernel for ``ConvTranspose``, but it has one for ``Conv``. Along one axis, a transposed
convolution with stride ``s``, kernel ``K`` and padding ``p`` computes (``w`` indexed by kernel tap ``k``)::

    y[o] = Σ_{i,k : o = s·i + k − p} x[i] · w[k]

Split the output by phase, ``o = s·j + r`` with ``r ∈ [0, s)``. Only the taps ``k = k_r + s·t`` with
``k_r = (r + p) mod s`` contribute to phase ``r``, each reading ``x[j + c_r − t]`` with ``c_r = ⌊(r + p) / s⌋``::

    y[s·j + r] = Σ_t x[j + c_r − t] · w[k_r + s·t]

Each phase is an ordinary correlation over ``x``. Putting all phases on a common offset range
``d ∈ [d_min, d_max]`` gives one convolution with ``s`` output channels per original one (``s²`` in 2-D), kernel
``d_max − d_min + 1``, padding ``−d_min`` before and ``d_max`` after; ``DepthToSpace`` (CRD order) then interleaves
the phases. The integer levels are only rearranged (plus zeros where a phase has no tap), so a quantized transposed
convolution stays exactly on its grid. This form yields exactly ``s × L`` outputs, so it applies when
``K + output_padding − 2p = s`` (FSRCNN's deconvolution: ``K = 9``, ``p = 4``, ``output_padding = s − 1``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["subpixel_supported", "subpixel_weights"]


def subpixel_supported(kernel: int, stride: int, padding: int, output_padding: int) -> bool:
    """Whether the transposed convolution's output is exactly ``stride ×`` its input (and padding fits)."""
    if kernel + output_padding - 2 * padding != stride or not 0 <= padding < kernel:
        return False
    _, d_min, d_max = _phases(kernel, stride, padding)
    return d_min <= 0 <= d_max  # otherwise the output would need cropping


def _phases(kernel: int, stride: int, padding: int) -> tuple[list[list[tuple[int, int]]], int, int]:
    """Per phase r, the (offset d, tap k) pairs; and the common offset range [d_min, d_max]."""
    phases = []
    for r in range(stride):
        k_r, c_r = (r + padding) % stride, (r + padding) // stride
        phases.append([(c_r - t, k_r + stride * t) for t in range((kernel - k_r + stride - 1) // stride)])
    offsets = [d for taps in phases for d, _ in taps]
    return phases, min(offsets), max(offsets)


def subpixel_weights(weight: np.ndarray, stride: int, padding: int) -> tuple[np.ndarray, list[int]]:
    """Convolution weights ``(C_out·s², C_in, Kc, Kc)`` and ONNX pads for a ``(C_in, C_out, K, K)`` deconvolution.

    Output channel ``co·s² + rh·s + rw`` holds phase ``(rh, rw)`` of channel ``co`` (DepthToSpace CRD order).
    """
    c_in, c_out, kh, kw = weight.shape
    if kh != kw:
        raise ValueError("square kernels only")
    phases, d_min, d_max = _phases(kh, stride, padding)
    if d_min > 0 or d_max < 0:
        raise ValueError(f"padding {padding} needs cropping, which the sub-pixel form does not do")
    size = d_max - d_min + 1
    out = np.zeros((c_out, stride, stride, c_in, size, size), dtype=weight.dtype)
    w = np.transpose(weight, (1, 0, 2, 3))  # (C_out, C_in, K, K)
    for rh, taps_h in enumerate(phases):
        for rw, taps_w in enumerate(phases):
            for dh, k_h in taps_h:
                for dw, k_w in taps_w:
                    out[:, rh, rw, :, dh - d_min, dw - d_min] = w[:, :, k_h, k_w]
    pads = [-d_min, -d_min, d_max, d_max]
    return out.reshape(c_out * stride * stride, c_in, size, size), pads

"""Which container each 8-bit weight gets on this host: int8 where onnxruntime's u8×s8 kernels are exact, uint8 with
zero-point 128 where they saturate.

A weight's initializer is its **container** (:mod:`runtime.levels`): ``q·m`` as int8 (zero-point 0) or ``q·m + 128``
as uint8 (zero-point 128), the same numbers. onnxruntime runs an int8 container with its u8×s8 kernels and a uint8
one with its u8×u8 kernels. On x86 CPUs without VNNI (AVX2 only) the u8×s8 convolution and Gemm kernels add pairs of
u8·s8 products in int16 (``vpmaddubsw``) and saturate once ``|x₁w₁ + x₂w₂| > 32767``; with VNNI (``vpdpbusd``), on
ARM64 and on the GPU providers the products are summed in int32, exactly, and u8×s8 is the faster path (ImageNet
MobileNetV2 W8A8 on an AVX512-VNNI EPYC: 4.22 against 7.40 ms at batch 1; BENCHMARKS.md).

No table of CPU flags decides; a **probe** does (:func:`u8s8_exact`): one convolution and one Gemm whose u8·s8 pair
sums overflow int16 (activations 255, weights 127), in the same QDQ form the exporter writes, run once per process
and set of execution providers, against the exact integer result. A layer is safe in int8 on any host when its
largest ``|q·m|`` is at most 63 (``255·(63+63) < 32767``: every sub-8-bit layer, and 8-bit layers whose levels stay
small), and depthwise convolutions run on a kernel that widens before multiplying.

:func:`choose` picks a zero-point per weight (``auto``; ``int8`` and ``uint8`` force one) and :func:`apply` rewrites
the in-memory graph (the initializer's type and its ``DequantizeLinear``'s zero-point) and flips the decoded array's
top bit in place: ``q + 128`` as uint8 and ``q`` as int8 differ by exactly that bit.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ToolchainError

__all__ = ["CONTAINER_CHOICES", "Choice", "apply", "choose", "probe", "standalone", "u8s8_exact"]

CONTAINER_CHOICES = ("auto", "int8", "uint8")
SAFE_MAGNITUDE = 63  # |q·m| ≤ 63: no u8·s8 pair sum leaves int16, whatever the kernel


@dataclass(frozen=True)
class Probe:
    exact: bool
    seconds: float  # wall time of the probe (session creation and run)
    providers: tuple[str, ...]


@dataclass
class Choice:
    """The container chosen for each weight that can take either (``zero_points``: name → 0 or 128), and why."""

    mode: str  # auto, int8, uint8; "file" for a standalone graph, which runs as written
    zero_points: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    switched: list[str] = field(default_factory=list)  # weights whose container differs from the file's
    at_risk: list[str] = field(default_factory=list)  # int8 weights this host's kernels may saturate on (standalone)

    def summary(self) -> str:
        n8 = sum(1 for zp in self.zero_points.values() if zp == 0)
        n128 = len(self.zero_points) - n8
        moved = f"; {len(self.switched)} switched from the file's container" if self.switched else ""
        return f"weight containers: {n8} int8, {n128} uint8 ({self.reason}{moved})"

    def warning(self) -> str | None:
        """One line naming the saturation risk of a standalone file on this host and its remedy, or None."""
        if not self.at_risk:
            return None
        return (
            f"onnxruntime's u8×s8 kernels saturate on this CPU (no VNNI; probe) and {len(self.at_risk)} weight "
            f"tensors of this standalone file hold int8 values beyond ±{SAFE_MAGNITUDE} ({', '.join(self.at_risk[:3])}"
            f"{', …' if len(self.at_risk) > 3 else ''}): their outputs can be off by many steps here. Ship the graph + "
            "sidecar pair (model.compressed.onnx, which runtime.load gives uint8 containers on such hosts) or export "
            "with --uint8-weights"
        )


def probe(providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",)) -> Probe:
    """Run the saturation probe on ``providers`` (see the module docstring); cached per process."""
    return _probe(tuple(providers))


def u8s8_exact(providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",)) -> bool:
    """Whether onnxruntime's u8×s8 integer kernels sum exactly on this host and these providers."""
    return probe(providers).exact


@functools.cache
def _probe(providers: tuple[str, ...]) -> Probe:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    start = time.perf_counter()
    cin, cout, k = 32, 8, 3
    sign = np.where(np.arange(cout) % 2 == 0, 1, -1).astype(np.int8)  # both signs: sums of +64,770 and −64,770
    w = (127 * sign).reshape(cout, 1, 1, 1).repeat(cin, 1).repeat(k, 2).repeat(k, 3)
    fc = w.reshape(cout, cin * k * k)
    scale_out = float(255 * 127 * cin * k * k) / 127  # the exact sums land on ±127 output steps
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "s_in"),
        numpy_helper.from_array(np.array(0, np.uint8), "zp_x"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(fc, "fc"),
        numpy_helper.from_array(np.array(1.0, np.float32), "s_w"),
        numpy_helper.from_array(np.array(0, np.int8), "zp_w"),
        numpy_helper.from_array(np.array(scale_out, np.float32), "s_out"),
        numpy_helper.from_array(np.array(128, np.uint8), "zp_out"),
        numpy_helper.from_array(np.array([1, cin * k * k], np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "zp_x"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "zp_x"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "s_w", "zp_w"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["conv"], kernel_shape=[k, k]),
        helper.make_node("QuantizeLinear", ["conv", "s_out", "zp_out"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "s_out", "zp_out"], ["y_conv"]),
        helper.make_node("Reshape", ["xq", "flat"], ["xq_flat"]),
        helper.make_node("DequantizeLinear", ["xq_flat", "s_in", "zp_x"], ["xf"]),
        helper.make_node("DequantizeLinear", ["fc", "s_w", "zp_w"], ["fcd"]),
        helper.make_node("Gemm", ["xf", "fcd"], ["gemm"], transB=1),
        helper.make_node("QuantizeLinear", ["gemm", "s_out", "zp_out"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "s_out", "zp_out"], ["y_gemm"]),
    ]
    graph = helper.make_graph(
        nodes,
        "u8s8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, k, k])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y_conv", "y_gemm")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=list(providers))
    x = np.full((1, cin, k, k), 255.0, np.float32)  # u8 activations at 255: every pair sum is ±64,770
    y_conv, y_gemm = session.run(None, {"x": x})
    exact = (127.0 * sign * np.float32(scale_out)).astype(np.float32)
    ok = np.array_equal(y_conv.reshape(-1), exact) and np.array_equal(y_gemm.reshape(-1), exact)
    return Probe(bool(ok), time.perf_counter() - start, providers)


def choose(
    records: dict[str, Any],
    arrays: dict[str, np.ndarray],
    depthwise: set[str],
    providers: list[str],
    mode: str = "auto",
) -> Choice:
    """The container of every 8-bit weight record (name → record with ``bits``, ``zero_point``; ``arrays``: the
    decoded containers by name):

    * ``int8`` / ``uint8``: that container for each of them;
    * ``auto``: int8 where the host's u8×s8 kernels are exact (:func:`u8s8_exact` on ``providers``), else uint8,
      except where int8 is safe anyway (depthwise convolutions, and levels within ±:data:`SAFE_MAGNITUDE`).

    Weights below 8 bits keep their container (|q·m| ≤ 63 by construction) and are not listed."""
    if mode not in CONTAINER_CHOICES:
        raise ToolchainError(f"unknown weight container choice {mode!r}; choose from {', '.join(CONTAINER_CHOICES)}")
    eight = {name: r for name, r in records.items() if r.bits == 8}
    if mode != "auto":
        zp = 0 if mode == "int8" else 128
        choice = Choice(mode, dict.fromkeys(eight, zp), f"{mode} asked for")
    else:
        found = probe(providers)
        if found.exact:
            reason = f"u8×s8 exact on {providers[0]} (probe, {1000 * found.seconds:.0f} ms)"
            choice = Choice(mode, dict.fromkeys(eight, 0), reason)
        else:
            reason = (
                f"u8×s8 saturates on {providers[0]} (probe, {1000 * found.seconds:.0f} ms): uint8 where levels exceed "
                f"±{SAFE_MAGNITUDE}, except depthwise"
            )
            zps = {
                name: 0 if name in depthwise or _max_magnitude(arrays[name], r.zero_point) <= SAFE_MAGNITUDE else 128
                for name, r in eight.items()
            }
            choice = Choice(mode, zps, reason)
    choice.switched = [n for n, zp in choice.zero_points.items() if zp != eight[n].zero_point]
    return choice


def standalone(graph: Any, depthwise: set[str], providers: list[str]) -> Choice:
    """A standalone graph runs as written: its containers, and the int8 weights that this host's kernels may
    saturate on (``at_risk``: read by a ``DequantizeLinear``, not depthwise, values beyond ±63)."""
    import onnx
    from onnx import numpy_helper

    dequantized = {n.input[0] for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input}
    weights = {
        i.name: i
        for i in graph.graph.initializer
        if i.name in dequantized and i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(i.dims) > 1
    }
    zero_points = {name: 0 if i.data_type == onnx.TensorProto.INT8 else 128 for name, i in weights.items()}
    found = probe(providers)
    choice = Choice("file", zero_points, f"as written; u8×s8 {'exact' if found.exact else 'saturates'} on "
                    f"{providers[0]} (probe)")  # fmt: skip
    if not found.exact:
        choice.at_risk = [
            name
            for name, zp in zero_points.items()
            if zp == 0 and name not in depthwise
            and _max_magnitude(numpy_helper.to_array(weights[name]), 0) > SAFE_MAGNITUDE
        ]  # fmt: skip
    return choice


def _max_magnitude(container: np.ndarray, zero_point: int) -> int:
    if container.size == 0:
        return 0
    signed = container.view(np.int8) if zero_point == 0 else (container.view(np.uint8) ^ np.uint8(0x80)).view(np.int8)
    return max(abs(int(signed.min())), int(signed.max()))


def apply(graph: Any, arrays: dict[str, np.ndarray], choice: Choice) -> dict[str, np.ndarray]:
    """Rewrite ``graph`` (an ``onnx.ModelProto``, in memory) and the decoded containers for ``choice.switched``: the
    initializer's element type and its ``DequantizeLinear``'s zero-point follow, and each array's top bit flips in
    place (``q + 128`` as uint8 ⇔ ``q`` as int8). Returns the arrays, as views of their new type."""
    import onnx
    from onnx import numpy_helper

    if not choice.switched:
        return arrays
    switched = set(choice.switched)
    inits = {i.name: i for i in graph.graph.initializer}
    out = dict(arrays)
    for name in switched:
        zp = choice.zero_points[name]
        dtype = np.uint8 if zp else np.int8
        inits[name].data_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        array = arrays[name]
        array.view(np.uint8)[...] ^= np.uint8(0x80)
        out[name] = array.view(dtype)
    for node in graph.graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in switched and len(node.input) > 2:
            zp_name = node.input[2]
            old = numpy_helper.to_array(inits[zp_name])
            zp = choice.zero_points[node.input[0]]
            inits[zp_name].CopyFrom(
                numpy_helper.from_array(np.full(old.shape, zp, np.uint8 if zp else np.int8), zp_name)
            )
    return out

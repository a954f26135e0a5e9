"""``prepare_qat``: turn a float model into its quant-aware twin with one quantizer per activation tensor.

The model is traced with ``torch.fx`` and rewritten by a table of rules (no ``isinstance`` ladders):

* weighted layers (Conv2d, ConvTranspose2d, Linear) become Brevitas ``QuantConv2d``/``QuantConvTranspose2d``/
  ``QuantLinear`` with n-bit narrow-range weights whose learnable step starts at the MSQE-optimal value;
* every tensor that carries a *new* value into the rest of the network gets exactly one activation quantizer
  (:class:`ActQuant`): after each ReLU/ReLU6 (unsigned), and after each convolution/linear/batch-norm/addition/
  concatenation/pooling whose result is not consumed solely by a following batch norm or activation (signed unless
  all inputs are unsigned, e.g. pooling of ReLU outputs);
* the network input gets a signed quantizer and the outputs get quantizers (``io_abits``);
* reshaping ops (channel shuffle, pixel shuffle, max-pool, flatten, chunk, dropout) keep their input's grid;
* some ops are first rewritten into ops with rules (``DECOMPOSITIONS``): a SiLU becomes ``x * sigmoid(x)``, so its
  gate gets a quantizer and onnxruntime runs it on integers;
* an op with no rule (a PReLU, a GroupNorm, ``torch.erf``) is a *float island*: quantized input and output, float
  in between (:mod:`models.quant.islands`), so a network is never refused for one unknown op.

Batch norm stays a float module during training and is folded into the preceding convolution by ``freeze``; with
per-channel steps that folding changes only the steps, never the integer levels (see :mod:`models.quant.freeze`).
Activation steps start from calibration batches (:func:`calibrate`): the MSE-optimal step of the observed values.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.fx as fx
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantConvTranspose2d, QuantIdentity, QuantLinear
from torch import nn

from models.layers import Add, ChannelShuffle, Concat
from runtime import ToolchainError

from .islands import check_islands, wrap_call
from .quantizers import (
    LearnedIntAct,
    LearnedUintAct,
    LearnedWeight,
    act_divisor,
    max_level,
    msqe_optimal_step,
    msqe_optimal_step_from_samples,
)

__all__ = [
    "QUANT_WEIGHT_TYPES",
    "ActQuant",
    "BitSettings",
    "calibrate",
    "prepare_qat",
    "trace",
    "weight_bits",
    "weight_step",
]

QUANT_WEIGHT_TYPES = (QuantConv2d, QuantConvTranspose2d, QuantLinear)


class BitSettings(Protocol):
    """What ``prepare_qat`` reads of its settings; the toolchain's ``QuantConfig`` (with its command-line help and
    validation) is one. A protocol, so that this layer does not import the application's configuration."""

    @property
    def wbits(self) -> int: ...
    @property
    def abits(self) -> int: ...
    @property
    def first_wbits(self) -> int: ...
    @property
    def last_wbits(self) -> int: ...
    @property
    def io_abits(self) -> int: ...
    @property
    def io_sign(self) -> str: ...
    @property
    def depthwise_wbits(self) -> int: ...
    @property
    def per_channel(self) -> bool: ...
    @property
    def layer_wbits(self) -> dict[str, Any]: ...


# Values kept per quantizer per calibration batch. Forcing each batch's extremes into the draw was measured and
# rejected: it widens the histogram the MSE step is searched on (W8A8 MobileNetV2 logit SQNR 17.2 → 15.7 dB).
ACT_SAMPLES = 65_536


class ActQuant(nn.Module):
    """One activation quantizer: a Brevitas ``QuantIdentity`` with a learnable step, plus a calibration mode.

    While ``calibrating`` it passes values through unchanged and keeps a sample of them: a fixed-seed draw (its own
    generator, so the steps do not depend on the global random state).
    """

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.bits, self.signed = bits, signed
        quant = LearnedIntAct if signed else LearnedUintAct
        self.quant = QuantIdentity(act_quant=quant, bit_width=bits, scaling_init=1.0, return_quant_tensor=False)
        self.calibrating = False
        self.not_float = False  # set when it sees a mask or an index (a float island's comparison): it passes those
        self._samples: list[torch.Tensor] = []
        self._draw = torch.Generator()

    @property
    def _threshold(self) -> nn.Parameter:
        quant: Any = self.quant  # Brevitas builds these attributes by dependency injection
        return quant.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value

    def step(self) -> torch.Tensor:
        """Current step Δ (threshold / largest level)."""
        return self._threshold.detach().abs() / act_divisor(self.bits, self.signed)

    @torch.no_grad()
    def set_step(self, step: float | torch.Tensor) -> None:
        self._threshold.fill_(float(step) * act_divisor(self.bits, self.signed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():  # a boolean mask (y > 0) or integer indices: nothing to quantize
            self.not_float = True
            return x
        if self.calibrating:
            flat = x.detach().flatten().float()
            if flat.numel() > ACT_SAMPLES:
                flat = flat[torch.randint(flat.numel(), (ACT_SAMPLES,), generator=self._draw).to(flat.device)]
            self._samples.append(flat.cpu())
            return x
        return self.quant(x)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"


def weight_threshold(layer: Any) -> torch.Tensor:
    """The learned threshold ``T = δ·L`` of a quant weight layer (the parameter behind :func:`weight_step`)."""
    return layer.weight_quant.tensor_quant.scaling_impl.value


def weight_step(layer: Any) -> torch.Tensor:
    """The step δ of a quant weight layer (scalar, or per output channel shaped for broadcasting)."""
    return weight_threshold(layer).abs() / max_level(weight_bits(layer))


def weight_bits(layer: Any) -> int:
    return int(layer.weight_quant.bit_width())


# ----------------------------------------------------------------------------------------------------------------
# Rules: what each op does to quantization.
#   "weighted"   - swap for a Brevitas layer; output is a new signed value
#   "value"      - produces a new value (quantize after it unless a BN/activation follows)
#   "act"        - activation: quantize after it, unsigned
#   "keep"       - keeps its input's grid (pure data movement, or max)
# A rule may say its output is unsigned when all its inputs are ("pool"), or always (a sigmoid's gate).
# A "value" op that is not ReLU-like (Hardswish, a sigmoid gate, softmax) gets a quantizer on its input as well as
# its output, so that onnxruntime sees Q/DQ on both sides and runs it on integers where it has a kernel for it, in
# float between a DequantizeLinear and a QuantizeLinear where it has none.


@dataclass(frozen=True)
class Rule:
    kind: str
    unsigned_if_inputs: bool = False
    unsigned: bool = False


_SIGNED_MAP, _GATE = Rule("value"), Rule("value", unsigned=True)
_PRODUCT = Rule("value", unsigned_if_inputs=True)


MODULE_RULES: dict[type, Rule] = {
    nn.Conv2d: Rule("weighted"),
    nn.ConvTranspose2d: Rule("weighted"),
    nn.Linear: Rule("weighted"),
    nn.BatchNorm2d: Rule("value"),
    Add: Rule("value"),
    Concat: Rule("value", True),
    nn.AdaptiveAvgPool2d: Rule("value", True),
    nn.AvgPool2d: Rule("value", True),
    nn.Upsample: Rule("value"),
    nn.ReLU: Rule("act"),
    nn.ReLU6: Rule("act"),
    nn.Hardswish: _SIGNED_MAP,
    nn.GELU: _SIGNED_MAP,
    nn.Hardsigmoid: _GATE,
    nn.Sigmoid: _GATE,
    nn.Softmax: _GATE,
    nn.LayerNorm: _SIGNED_MAP,
    nn.Tanh: _SIGNED_MAP,
    nn.LeakyReLU: _SIGNED_MAP,
    nn.Hardtanh: _SIGNED_MAP,
    ChannelShuffle: Rule("keep"),
    nn.PixelShuffle: Rule("keep"),
    nn.MaxPool2d: Rule("keep"),
    nn.Dropout: Rule("keep"),
    nn.Identity: Rule("keep"),
    nn.Flatten: Rule("keep"),
}
FUNCTION_RULES: dict[Any, Rule] = {
    operator.add: Rule("value"),
    torch.add: Rule("value"),
    torch.cat: Rule("value", True),
    F.relu: Rule("act"),
    torch.relu: Rule("act"),
    F.relu6: Rule("act"),
    torch.flatten: Rule("keep"),
    operator.getitem: Rule("keep"),
    torch.chunk: Rule("keep"),
    F.pixel_shuffle: Rule("keep"),
    F.adaptive_avg_pool2d: Rule("value", True),
    F.hardswish: _SIGNED_MAP,
    F.gelu: _SIGNED_MAP,
    F.hardsigmoid: _GATE,
    torch.sigmoid: _GATE,
    F.sigmoid: _GATE,
    F.softmax: _GATE,
    torch.softmax: _GATE,
    operator.mul: _PRODUCT,
    torch.mul: _PRODUCT,
    operator.matmul: _SIGNED_MAP,
    torch.matmul: _SIGNED_MAP,
    torch.tanh: _SIGNED_MAP,
    F.leaky_relu: _SIGNED_MAP,
    F.hardtanh: _SIGNED_MAP,
    torch.clamp: _SIGNED_MAP,
    operator.sub: _SIGNED_MAP,
    torch.sub: _SIGNED_MAP,
    operator.truediv: _PRODUCT,
}
METHOD_RULES: dict[str, Rule] = {
    "view": Rule("keep"),
    "reshape": Rule("keep"),
    "flatten": Rule("keep"),
    "chunk": Rule("keep"),
    "transpose": Rule("keep"),
    "permute": Rule("keep"),
    "contiguous": Rule("keep"),
    "size": Rule("keep"),
    "mean": Rule("value", True),
    "relu": Rule("act"),
    "sigmoid": _GATE,
    "softmax": _GATE,
    "mul": _PRODUCT,
    "tanh": _SIGNED_MAP,
    "clamp": _SIGNED_MAP,
}


class _Tracer(fx.Tracer):
    """Treats every module with a rule as a leaf; traces through containers and user-defined blocks."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in MODULE_RULES or super().is_leaf_module(m, qualname)


# An op without a rule is a float island (see :mod:`models.quant.islands`): a new signed value, quantized on both
# sides, computed in float. Calls that return no tensor cannot be one.
ISLAND = Rule("value")
_NOT_TENSORS = {getattr, "dim", "numel", "item", "tolist", "type", "get_device", "stride"}


def _rule(gm: fx.GraphModule, node: fx.Node) -> Rule | None:
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        return MODULE_RULES.get(type(module), ISLAND)
    if node.op == "call_function":
        return FUNCTION_RULES.get(node.target)
    if node.op == "call_method":
        return METHOD_RULES.get(str(node.target))
    if node.op == "get_attr":  # a learned tensor used directly (a position embedding): quantized like any new value
        return Rule("value")
    return None


def _silu_as_gate(gm: fx.GraphModule, node: fx.Node) -> None:
    """``silu(x)`` → ``x * sigmoid(x)``: with a quantizer on the gate, onnxruntime runs both halves on integers
    (QLinearSigmoid, QLinearMul), where a whole SiLU between two quantizers stays in float."""
    x = node.args[0]
    with gm.graph.inserting_before(node):
        gate = gm.graph.call_function(torch.sigmoid, (x,))
        product = gm.graph.call_function(operator.mul, (x, gate))
    node.replace_all_uses_with(product)
    gm.graph.erase_node(node)


# Ops rewritten into ops with rules before the rules apply, by module type or function.
DECOMPOSITIONS: dict[Any, Callable[[fx.GraphModule, fx.Node], None]] = {nn.SiLU: _silu_as_gate, F.silu: _silu_as_gate}


def _decompose(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        target = type(gm.get_submodule(str(node.target))) if node.op == "call_module" else node.target
        if node.op in ("call_module", "call_function") and target in DECOMPOSITIONS:
            DECOMPOSITIONS[target](gm, node)
    gm.graph.lint()


def _wrap_islands(gm: fx.GraphModule) -> None:
    """Make every function or method without a rule a named :class:`FloatIsland` module; refuse calls that return
    no tensor (``x.shape``, ``x.dim()``), which no quantizer can follow."""
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method") or _rule(gm, node) is not None:
            continue
        target = node.target if node.op == "call_function" else str(node.target)
        shown = getattr(target, "__name__", str(target)) if node.op == "call_function" else f".{target}()"
        if target in _NOT_TENSORS or not node.all_input_nodes:
            raise ToolchainError(f"unsupported operation {shown} (node {node.name}): it does not compute a tensor "
                                 "from tensors, so it cannot run as a float island")  # fmt: skip
        wrap_call(gm, node)


def _swap_weighted(float_layer: Any, bits: int, per_channel: bool) -> nn.Module:
    """Brevitas twin of a Conv2d/ConvTranspose2d/Linear with the same weights and an MSQE-optimal step."""
    w = float_layer.weight.detach()
    transposed = isinstance(float_layer, nn.ConvTranspose2d)
    per_channel = per_channel and not transposed  # ConvTranspose weights keep output channels on axis 1
    step = msqe_optimal_step(w, bits, per_channel)
    quant: dict[str, Any] = dict(
        weight_quant=LearnedWeight,
        weight_bit_width=bits,
        weight_scaling_per_output_channel=per_channel,
        weight_scaling_init=step * max_level(bits),
        return_quant_tensor=False,
    )
    if isinstance(float_layer, nn.Linear):
        new: nn.Module = QuantLinear(
            float_layer.in_features, float_layer.out_features, bias=float_layer.bias is not None, **quant
        )
    else:
        cls = QuantConvTranspose2d if transposed else QuantConv2d
        extra = {"output_padding": float_layer.output_padding} if transposed else {}
        new = cls(
            float_layer.in_channels,
            float_layer.out_channels,
            float_layer.kernel_size,
            stride=float_layer.stride,
            padding=float_layer.padding,
            dilation=float_layer.dilation,
            groups=float_layer.groups,
            bias=float_layer.bias is not None,
            **extra,
            **quant,
        )
    new.load_state_dict(float_layer.state_dict(), strict=False)
    return new.to(w.device)


def _weight_bits_for(name: str, layer: nn.Module, order: int, count: int, config: BitSettings) -> int:
    """By precedence: ``layer_wbits[name]``, first/last layer bits, ``depthwise_wbits``, ``wbits``."""
    if name in config.layer_wbits:
        return int(config.layer_wbits[name])
    if order == 0:
        return config.first_wbits
    if order == count - 1:
        return config.last_wbits
    if config.depthwise_wbits and _is_depthwise(layer):
        return config.depthwise_wbits
    return config.wbits


def _is_depthwise(layer: nn.Module) -> bool:
    """A convolution with one filter group per input channel."""
    return isinstance(layer, nn.Conv2d) and layer.groups > 1 and layer.groups == layer.in_channels


def trace(model: nn.Module) -> fx.GraphModule:
    """``model`` traced as :func:`prepare_qat` traces it, every module with a rule a leaf (the graph's modules are
    ``model``'s own, not copies).

    Raises:
        ToolchainError: for a model ``torch.fx`` cannot trace, naming it.
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for untraceable code
        raise ToolchainError(f"cannot trace {type(model).__name__} with torch.fx: {e}") from None
    return fx.GraphModule(model, graph, type(model).__name__ + "QAT")


def prepare_qat(model: nn.Module, config: BitSettings) -> fx.GraphModule:
    """Quant-aware copy of ``model`` (which is left untouched); see the module docstring for the rules.

    Ops without a rule become float islands, listed by :func:`models.quant.islands.float_islands`.

    Raises:
        ToolchainError: for a call that computes no tensor, or a model ``torch.fx`` cannot trace, naming it.
    """
    unknown = set(config.layer_wbits) - {n for n, m in model.named_modules() if type(m) in MODULE_RULES}
    if unknown:
        raise ToolchainError(f"layer_wbits names layers that do not exist: {sorted(unknown)}")
    gm = trace(copy.deepcopy(model))
    _decompose(gm)
    _wrap_islands(gm)
    nodes = list(gm.graph.nodes)
    rules = {n: _rule(gm, n) for n in nodes}
    modules = [str(n.target) for n in nodes if n.op == "call_module"]
    gm.meta["float_islands"] = [m for m in modules if type(gm.get_submodule(m)) not in MODULE_RULES]

    weighted = [n for n in nodes if (r := rules[n]) is not None and r.kind == "weighted"]
    for i, node in enumerate(weighted):
        name = str(node.target)
        bits = _weight_bits_for(name, gm.get_submodule(name), i, len(weighted), config)
        _set_submodule(gm, name, _swap_weighted(gm.get_submodule(name), bits, config.per_channel))

    unsigned: dict[fx.Node, bool] = {}
    outputs = _output_values(nodes, rules)
    io_signed = config.io_sign != "unsigned"  # "auto" is resolved by the caller that knows the task
    for node in nodes:
        rule = rules[node]
        inputs = [a for a in _flat_args(node.args) if isinstance(a, fx.Node)]
        if node.op == "placeholder":
            unsigned[node] = unsigned[_insert_quant(gm, node, config.io_abits, signed=io_signed)] = not io_signed
            continue
        if rule is None:
            continue
        assert rule is not None
        if rule.kind == "act":
            unsigned[node] = True
        elif rule.kind == "keep":
            unsigned[node] = bool(inputs) and unsigned.get(inputs[0], False)
        else:
            unsigned[node] = rule.unsigned or (
                rule.unsigned_if_inputs
                and bool(inputs)
                and all(unsigned.get(a, False) for a in inputs)
                and not any(isinstance(a, int | float) and a < 0 for a in _flat_args(node.args))  # x * -1
            )
        if rule.kind == "keep" and node not in outputs:
            continue
        if rule.kind == "keep" and _already_quantized(node):
            continue
        users = list(node.users)
        followed = (
            len(users) == 1
            and (r := rules.get(users[0])) is not None
            and (
                r.kind == "act"
                or (users[0].op == "call_module" and isinstance(gm.get_submodule(str(users[0].target)), nn.BatchNorm2d))
            )
        )
        if rule.kind in ("weighted", "value") and followed and node not in outputs:
            continue
        bits = config.io_abits if node in outputs else config.abits
        if node in outputs and not io_signed:
            unsigned[node] = True
        unsigned[_insert_quant(gm, node, bits, signed=not unsigned[node])] = unsigned[node]
    gm.graph.lint()
    gm.recompile()
    return gm


def _output_values(nodes: list[fx.Node], rules: dict[fx.Node, Rule | None]) -> set[fx.Node]:
    """Nodes whose value is a network output, directly or through data-movement ("keep") ops such as a final
    pixel shuffle: their quantizers are the output quantizers."""
    found: set[fx.Node] = set()
    stack = [a for n in nodes if n.op == "output" for a in _flat_args(n.args) if isinstance(a, fx.Node)]
    while stack:
        node = stack.pop()
        if node in found:
            continue
        found.add(node)
        rule = rules.get(node)
        if rule is not None and rule.kind == "keep":
            stack += [a for a in _flat_args(node.args) if isinstance(a, fx.Node)]
    return found


def _already_quantized(node: fx.Node) -> bool:
    src = node.args[0] if node.args else None
    return isinstance(src, fx.Node) and src.op == "call_module" and str(src.target).endswith("_aq")


def _insert_quant(gm: fx.GraphModule, node: fx.Node, bits: int, signed: bool) -> fx.Node:
    name = f"{node.name}_aq"
    gm.add_submodule(name, ActQuant(bits, signed))
    with gm.graph.inserting_after(node):
        q = gm.graph.call_module(name, (node,))
    node.replace_all_uses_with(q, delete_user_cb=lambda user: user is not q)
    return q


def _flat_args(args: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        out.extend(_flat_args(a) if isinstance(a, list | tuple) else [a])
    return out


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def act_quantizers(model: nn.Module) -> list[tuple[str, ActQuant]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ActQuant)]


@torch.no_grad()
def calibrate(
    model: nn.Module, batches: Iterable[torch.Tensor], progress: Callable[[Iterable], Iterable] = iter
) -> dict[str, float]:
    """Set every activation step to the MSE-optimal step of the values seen on ``batches`` (weights quantized), and
    check that every float island exports to ONNX (:func:`models.quant.islands.check_islands`).

    Returns the chosen steps by quantizer name.
    """
    quants = act_quantizers(model)
    was_training = model.training
    model.eval()
    for _, q in quants:
        q.calibrating, q._samples = True, []
        q._draw.manual_seed(0)  # the same batches give the same steps, run after run
    first: torch.Tensor | None = None
    try:
        for x in progress(batches):
            first = x if first is None else first
            model(x)
    finally:
        for _, q in quants:
            q.calibrating = False
    steps = {}
    for name, q in quants:
        if not q._samples and q.not_float:
            continue
        if not q._samples:
            raise ToolchainError(f"quantizer {name} saw no data during calibration")
        values = torch.cat(q._samples)
        q._samples = []
        if not q.signed:
            values = values.clamp_min(0)
        step = msqe_optimal_step_from_samples(values, q.bits, q.signed)
        q.set_step(step)
        steps[name] = step
    model.train(was_training)
    if first is not None:
        check_islands(model, first)  # an island ONNX cannot express fails here, before any training
    return steps

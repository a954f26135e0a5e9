"""Float islands: ops that have no quantization rule run in float between a DequantizeLinear and a QuantizeLinear.

``prepare_qat`` does not refuse a network for an op it has no rule for (a PReLU, a GroupNorm, an ``erf``, a
``x.exp()``). It gives such an op the treatment of any new value, a quantized input and a quantized output, so its
neighbours keep their integer kernels. It also makes every island a named module: torch functions and tensor methods
are wrapped in :class:`FloatIsland`, which binds their constant arguments.

The ONNX form of an island comes from torch's own exporter, run on that module alone (:func:`island_onnx`). The
graph builder splices it in. :func:`check_islands` runs the exporter on the first calibration batch, so that a
module ONNX cannot express fails with its name before training, never after.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Callable
from typing import Any

import onnx
import torch
import torch.fx as fx
from torch import nn

from runtime import ToolchainError
from runtime.fileio import native_stdout_to

__all__ = ["FloatIsland", "check_islands", "float_islands", "island_onnx", "wrap_call"]

OPSET = 17  # the exporters' opset; an island's ONNX nodes are spliced into that graph


class _Slot:
    """Where the i-th tensor input goes in a bound argument list."""

    def __init__(self, index: int) -> None:
        self.index = index


class FloatIsland(nn.Module):
    """A torch function or tensor method (``method`` names it) with its constant arguments bound.

    ``forward(*tensors)`` puts the tensors back where the traced call had them. An output that is not a tensor is
    refused: no quantizer can follow it.
    """

    def __init__(self, target: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.target, self.args, self.kwargs = target, args, kwargs

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        def fill(a: Any) -> Any:
            return tensors[a.index] if isinstance(a, _Slot) else a

        args = fx.node.map_aggregate(self.args, fill)
        kwargs = fx.node.map_aggregate(self.kwargs, fill)
        if isinstance(self.target, str):
            out = getattr(args[0], self.target)(*args[1:], **kwargs)
        else:
            out = self.target(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise ToolchainError(f"{self.describe()} returns a {type(out).__name__}, not a tensor; it has no rule")
        return out

    def describe(self) -> str:
        return f".{self.target}()" if isinstance(self.target, str) else getattr(self.target, "__name__", "function")

    def extra_repr(self) -> str:
        return self.describe()


def wrap_call(gm: fx.GraphModule, node: fx.Node) -> fx.Node:
    """Replace the ``call_function``/``call_method`` ``node`` by a ``call_module`` of a :class:`FloatIsland` named
    after it; returns the new node."""
    tensors: list[fx.Node] = []

    def slot(n: fx.Node) -> _Slot:
        tensors.append(n)
        return _Slot(len(tensors) - 1)

    args, kwargs = fx.node.map_arg(node.args, slot), fx.node.map_arg(node.kwargs, slot)  # type: ignore[arg-type]
    island = FloatIsland(str(node.target) if node.op == "call_method" else node.target, args, kwargs)  # type: ignore[arg-type]
    name = node.name
    while hasattr(gm, name):
        name += "_"
    gm.add_submodule(name, island)
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, tuple(tensors))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)
    return new


def float_islands(gm: nn.Module) -> dict[str, str]:
    """The float islands ``prepare_qat`` left in ``gm``: module name → what it computes."""
    names: list[str] = getattr(gm, "meta", {}).get("float_islands", [])
    return {name: _kind(gm.get_submodule(name)) for name in names}


def _kind(module: nn.Module) -> str:
    return module.describe() if isinstance(module, FloatIsland) else type(module).__name__


def island_onnx(module: nn.Module, inputs: list[torch.Tensor], name: str) -> onnx.ModelProto:
    """The ONNX graph of ``module`` alone on ``inputs`` (batch dimension dynamic), from torch's exporter.

    Raises:
        ToolchainError: naming the layer, when torch cannot express it in ONNX.
    """
    names = [f"input{i}" for i in range(len(inputs))]
    buffer = io.BytesIO()
    try:
        # torch's exporter prints its IR graph to stdout from C++ when it fails (stdout may be a command's JSON), and
        # the error message says enough
        with warnings.catch_warnings(), open(os.devnull, "w") as null, native_stdout_to(null.fileno()):
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module.eval(),
                tuple(inputs),
                buffer,  # type: ignore[arg-type]  # a file object works, as documented
                dynamo=False,
                opset_version=OPSET,
                input_names=names,
                output_names=["output"],
                dynamic_axes={n: {0: "N"} for n in [*names, "output"]},
            )
    except Exception as e:  # torch raises many types for ops without an ONNX form
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ToolchainError(f"float island {name!r} ({_kind(module)}) cannot be exported to ONNX: {first}") from None
    return onnx.load_from_string(buffer.getvalue())


@torch.no_grad()
def check_islands(gm: nn.Module, x: torch.Tensor) -> None:
    """Export every float island of ``gm`` alone on the inputs it sees for ``x``; raise naming the first that fails.

    Runs one forward pass with hooks; quantizers must not be calibrating (they would record ``x``).
    """
    names = list(float_islands(gm))
    if not names:
        return
    seen: dict[str, list[torch.Tensor]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:  # returns None: the inputs stay as they are
            seen.setdefault(name, [a.detach()[:1].cpu() for a in args if torch.is_tensor(a)])

        return hook

    hooks = [gm.get_submodule(name).register_forward_pre_hook(record(name)) for name in names]
    was_training = gm.training
    try:
        gm.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
        gm.train(was_training)
    for name in names:
        island_onnx(copy.deepcopy(gm.get_submodule(name)).cpu(), seen[name], name)

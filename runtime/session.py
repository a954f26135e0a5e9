"""``runtime.load``: open an exported model (standalone ``.onnx`` or graph + sidecar) in onnxruntime, safely.

For a sidecar pair the steps are, in order, each refusing bad input with a :class:`ToolchainError` before anything
is allocated or handed to onnxruntime:

1. read the graph without external data; its ``metadata_props`` name the sidecar and its SHA-256;
2. the sidecar name must be a plain file name that resolves (symlinks included) inside the graph's folder;
3. the sidecar's SHA-256 must match (a sidecar from another graph, a truncated or flipped file stops here);
4. parse and bound-check the sidecar (:func:`runtime.sidecar.parse_sidecar`), then match every record against the
   graph's hollow initializers (name, shape, dtype) and its steps against the graph's ``DequantizeLinear`` scales
   (:mod:`runtime.scales`) before decoding;
5. decode each tensor (CRC first); choose each 8-bit weight's container for this host (:mod:`runtime.containers`:
   int8 where onnxruntime's u8×s8 kernels are exact, uint8 where they saturate, found by a probe) and hand the
   tensors to onnxruntime with ``SessionOptions.add_initializer`` (no copy). The session is created from the graph
   file itself, or, when a container was switched, from the graph as rewritten in memory, still hollow, with the
   graph's folder as the folder of its external data (:func:`_hollow_source`): the weights are held once, not also
   embedded in a serialized graph.

The returned :class:`Model` is session-like: ``run``, input/output metadata and the execution providers in use.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from .containers import Choice, apply, choose, standalone
from .errors import ToolchainError
from .scales import check_weight_scales
from .sidecar import MAX_LEVELS_ENV, SidecarError, SidecarIndex, max_levels_limit, parse_sidecar

__all__ = ["DEVICES", "Model", "TensorInfo", "graph_digest", "load", "materialize", "providers_for"]

META_FORMAT = "toolchain.format"
META_SIDECAR = "toolchain.sidecar"
META_SIDECAR_SHA256 = "toolchain.sidecar_sha256"
META_CONFIG = "toolchain.config"  # metadata keys: the one definition, which the exporter writes through
META_GRAPH_SHA256 = "toolchain.graph_sha256"  # the graph's own digest (see graph_digest)
MAX_SIDECAR_BYTES = 8 << 30
HASH_IN_ONE_PASS = 32 << 20  # sidecars up to this size are read once and hashed as read (see _read_verified)
MAX_NAME_BYTES = 255  # a file name's limit on common file systems

DEVICES = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]
    dtype: Any


def providers_for(device: str, allow_fallback: bool = False) -> list[str]:
    """Execution providers for ``device``: ``cpu``, ``cuda`` (needs onnxruntime-gpu unless CPU fallback is
    allowed) or ``auto`` (CUDA when this onnxruntime has it, else CPU)."""
    import onnxruntime as ort

    if device not in (*DEVICES, "auto"):
        raise ToolchainError(f"unknown device {device!r}; choose from auto, {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if DEVICES["cuda"][0] in available else "cpu"
    wanted = DEVICES[device]
    if wanted[0] not in available:
        if not allow_fallback:
            raise ToolchainError(
                f"{wanted[0]} is not available in this onnxruntime ({', '.join(available)}); install "
                "onnxruntime-gpu (EXTRA=gpu bash scripts/install.sh) or allow CPU fallback"
            )
        return ["CPUExecutionProvider"]
    return wanted


class Model:
    """An onnxruntime session over an exported model, with checked inputs."""

    def __init__(
        self,
        path: Path,
        session: Any,
        sidecar: SidecarIndex | None,
        initializers: dict[str, tuple[Any, Any]],
        containers: Choice | None = None,
        source: str | bytes | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.sidecar = path, sidecar
        self.config = config or {}  # the exporter's toolchain.config, checked at load (preprocess, task, classes)
        self.containers = containers or Choice("file")  # the weight containers in use on this host, and why
        self._source = source if source is not None else str(path)  # what onnxruntime loaded: file, or rewritten graph
        # name -> (decoded array, OrtValue): the arrays must outlive the session, and ``kernels`` reuses them
        self._session, self._initializers = session, initializers
        self.inputs = [TensorInfo(i.name, tuple(i.shape), _NUMPY_TYPES.get(i.type)) for i in session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(o.shape), _NUMPY_TYPES.get(o.type)) for o in session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        """Execution providers onnxruntime is using, in priority order."""
        return list(self._session.get_providers())

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (for timing and for callers that feed it directly)."""
        return self._session

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def weights(self) -> dict[str, np.ndarray]:
        """The weight initializers decoded from the sidecar, by name (containers: ``q · multiplier`` as int8, or
        ``q · multiplier + 128`` as uint8; read-only views); empty for a standalone model."""
        out = {}
        for name, (array, _) in self._initializers.items():
            view = array.view()
            view.flags.writeable = False
            out[name] = view
        return out

    def levels(self) -> dict[str, np.ndarray]:
        """The integer weight levels ``q`` (int8) of a sidecar pair, by name, whichever container this host got."""
        from .levels import from_container

        assert self.sidecar is not None, "levels() needs a graph + sidecar pair"
        records = {r.name: r for r in self.sidecar.records}
        return {
            name: from_container(array, records[name].multiplier, 128 if array.dtype == np.uint8 else 0)
            for name, (array, _) in self._initializers.items()
        }

    def kernels(self) -> dict[str, dict[str, int]]:
        """The fixed-point check: integer and float kernels in onnxruntime's optimized graph of this model."""
        import onnxruntime as ort

        from .kernels import classify_kernels, optimized_graph

        options = ort.SessionOptions()
        for name, (_, value) in self._initializers.items():  # the optimizer must see the decoded weights
            options.add_initializer(name, value)
        if isinstance(self._source, bytes):
            _hollow_source(options, self.path)
        return classify_kernels(optimized_graph(self._source, options))

    def run(self, inputs: np.ndarray | dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on one array (single-input models) or a name → array mapping; returns every output."""
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise ToolchainError(f"model has {len(self.inputs)} inputs; pass a dict by name")
            inputs = {self.inputs[0].name: inputs}
        known = {i.name: i for i in self.inputs}
        unknown = set(inputs) - set(known)
        if unknown or set(known) - set(inputs):
            raise ToolchainError(f"inputs {sorted(inputs)} do not match the model's {sorted(known)}")
        for name, value in inputs.items():
            _check_input(known[name], value)
        try:
            return list(self._session.run(None, inputs))
        except Exception as e:  # onnxruntime raises its own types for shape errors deep in the graph
            raise ToolchainError(f"onnxruntime failed to run the model: {_one_line(str(e))}") from None


def _one_line(text: str) -> str:
    """``text`` with its line breaks and other unprintable characters escaped (``\\n``, ``\\x1b``): onnxruntime's
    messages quote names from the file, which a damaged or hostile graph can fill with newlines and terminal escapes."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _check_input(info: TensorInfo, value: Any) -> None:
    if not isinstance(value, np.ndarray):
        raise ToolchainError(f"input {info.name!r} must be a numpy array, got {type(value).__name__}")
    if info.dtype is not None and value.dtype != info.dtype:
        raise ToolchainError(f"input {info.name!r} must be {np.dtype(info.dtype).name}, got {value.dtype}")
    if value.ndim != len(info.shape):
        raise ToolchainError(f"input {info.name!r} must have shape {info.shape}, got {value.shape}")
    for want, got in zip(info.shape, value.shape):
        if (isinstance(want, int) and want != got) or got == 0:
            raise ToolchainError(f"input {info.name!r} must have shape {info.shape}, got {value.shape}")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _out_of_memory_refused(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func`` (:func:`load`) with a ``MemoryError`` (numpy's, or onnxruntime's ``std::bad_alloc``) turned into one
    :class:`ToolchainError` line that names the model and the limit on decoded weight levels."""

    @functools.wraps(func)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except MemoryError:
            path = args[0] if args else kwargs.get("path")
            try:
                limit = f"{max_levels_limit(kwargs.get('max_levels')):,}"  # type: ignore[arg-type]
            except ToolchainError:
                limit = "unknown"
            raise ToolchainError(
                f"out of memory loading {path}: its weights, decoded, or onnxruntime's session do not fit in this "
                f"machine's memory (a sidecar may declare up to {limit} weight levels; {MAX_LEVELS_ENV}=N or "
                "runtime.load(..., max_levels=N) lowers or raises that limit)"
            ) from None

    return guarded


@_out_of_memory_refused
def load(
    path: str | os.PathLike[str],
    device: str = "cpu",
    *,
    allow_fallback: bool = False,
    session_options: Any = None,
    decode_threads: int = 1,
    containers: str = "auto",
    public_key: str | os.PathLike[str] | None = None,
    max_levels: int | None = None,
) -> Model:
    """Open ``path`` (standalone ``.onnx`` or a graph naming a sidecar) on ``device`` ("auto", "cpu" or "cuda").

    ``decode_threads`` threads share out the sidecar's chunks. One is the default: on the 2-core machine of
    BENCHMARKS.md ("Sidecar format 2") two threads decoded the zstd-coded chunks more slowly than one.
    ``containers`` picks the 8-bit weights' containers of a sidecar pair: ``auto`` (int8 where this host's u8×s8
    kernels are exact, uint8 where they saturate; :mod:`runtime.containers`), ``int8`` or ``uint8``. A standalone
    file runs as written. ``public_key`` (an elliptic-curve public key, PEM): refuse the model, before its content is
    checked or run, unless the signature beside it (``export --sign``) verifies with this key and covers the graph
    and its sidecar as they are (:mod:`runtime.signing`); without it, signatures are not looked at. ``max_levels``:
    the most weight levels a sidecar may declare in all (default: the environment variable ``TOOLCHAIN_MAX_LEVELS``,
    else 2^28, 256 MiB decoded; :func:`runtime.sidecar.max_levels_limit`), checked before anything is decoded. Running
    out of memory anywhere in the load is a :class:`ToolchainError` that names the model and this limit."""
    import onnx
    import onnxruntime as ort

    graph_path = Path(path)
    if not graph_path.is_file():
        raise ToolchainError(f"model file {graph_path} does not exist")
    try:
        graph = onnx.load(str(graph_path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ToolchainError(f"{graph_path} is not an ONNX model: {type(e).__name__}: {e}") from None
    providers = providers_for(device, allow_fallback)
    options = session_options or ort.SessionOptions()
    options.log_severity_level = min(options.log_severity_level, 3)
    meta = {p.key: p.value for p in graph.metadata_props}
    if not all(isinstance(v, str) for kv in meta.items() for v in kv):  # protobuf hands back bytes for bad UTF-8
        raise ToolchainError(f"{graph_path} has metadata that is not UTF-8 text (a sidecar name, say): refused")
    if public_key is not None:
        from .signing import verify

        named = meta.get(META_SIDECAR)
        if named is not None:
            _sidecar_path(graph_path, named)  # a plain name in the graph's folder, before the library hashes it
        verify(graph_path, named, public_key)
    hollow = {i.name: i for i in graph.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL}
    _check_graph_digest(graph_path, graph, meta, bool(hollow))
    stray = external_data_outside_weights(graph)
    if stray:
        raise ToolchainError(
            f"{graph_path} refers to external data outside its weight initializers ({', '.join(stray[:3])}); "
            "exported models never do, so it is refused"
        )
    sidecar: SidecarIndex | None = None
    choice: Choice | None = None
    initializers: dict[str, tuple[Any, Any]] = {}
    source: str | bytes = str(graph_path)
    if META_SIDECAR in meta:
        sidecar, arrays = _attach_sidecar(graph_path, graph, meta, hollow, decode_threads, max_levels)
        records = {r.name: r for r in sidecar.records}
        choice = choose(records, arrays, depthwise_weights(graph), providers, containers)
        arrays = apply(graph, arrays, choice)
        if choice.switched:  # the rewritten graph, in memory and still hollow (the file on disk is untouched)
            source = graph.SerializeToString()
            _hollow_source(options, graph_path)
        for name, array in arrays.items():
            value = ort.OrtValue.ortvalue_from_numpy(array)
            options.add_initializer(name, value)
            initializers[name] = (array, value)
    elif hollow:
        raise ToolchainError(
            f"{graph_path} has external initializers ({', '.join(sorted(hollow)[:3])}, ...) but names no sidecar"
        )
    else:
        choice = standalone(graph, depthwise_weights(graph), providers)
    config = _recorded_config(graph_path, graph, meta)
    try:
        session = ort.InferenceSession(source, options, providers=providers)
    except MemoryError:  # pybind11's std::bad_alloc: named with the limit by _out_of_memory_refused
        raise
    except Exception as e:
        raise ToolchainError(f"onnxruntime cannot load {graph_path}: {_one_line(str(e))}") from None
    return Model(graph_path, session, sidecar, initializers, choice, source, config)


def _recorded_config(graph_path: Path, graph: Any, meta: dict[str, str]) -> dict[str, Any]:
    """The exporter's ``toolchain.config`` (``{}`` when absent). It must be a JSON object whose ``preprocess``
    (where present) can prepare this model's input: every command that reads it (run, verify, inspect) then meets a
    sound value or none."""
    from .preprocess import check_spec

    if META_CONFIG not in meta:
        return {}
    try:
        config = json.loads(meta[META_CONFIG])
    except (ValueError, RecursionError):  # RecursionError: arrays or objects nested thousands deep
        config = None
    if not isinstance(config, dict):
        raise ToolchainError(f"{graph_path}: its {META_CONFIG} metadata is not a JSON object: refused")
    if "preprocess" in config:
        dims = graph.graph.input[0].type.tensor_type.shape.dim if graph.graph.input else []
        side = dims[-1].dim_value if len(dims) == 4 and dims[-1].dim_value == dims[-2].dim_value > 0 else None
        problem = check_spec(config["preprocess"], side)
        if problem:
            raise ToolchainError(f"{graph_path}: its recorded preprocessing is unusable ({problem}): refused")
    return config


def _hollow_source(options: Any, graph_path: Path) -> None:
    """Let onnxruntime resolve the hollow initializers of a graph given as bytes (rewritten for its containers)
    against the graph's folder, as it does for the graph file; ``add_initializer`` replaces them before any is read.
    Embedding the decoded weights instead held them three more times (the graph, its bytes, onnxruntime's copy)."""
    options.add_session_config_entry(
        "session.model_external_initializers_file_folder_path", str(graph_path.resolve().parent)
    )


def depthwise_weights(graph: Any) -> set[str]:
    """Names of the weights that a depthwise convolution reads through its ``DequantizeLinear`` (one input channel
    per group): onnxruntime's depthwise kernel widens before multiplying, so int8 is exact there on every host."""
    dequantized = {
        n.output[0]: n.input[0] for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input and n.output
    }  # a node without them is onnxruntime's to refuse
    shapes = {i.name: tuple(i.dims) for i in graph.graph.initializer}
    out = set()
    for node in graph.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in dequantized:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = dequantized[node.input[1]]
        if group > 1 and len(shapes.get(weight, ())) > 1 and shapes[weight][1] == 1:
            out.add(weight)
    return out


def _sidecar_path(graph_path: Path, name: str) -> Path:
    """The sidecar's path: a plain file name resolving inside the graph's folder (no absolute, .., or escape)."""
    plain = name and name == Path(name).name and name not in (".", "..") and not os.path.isabs(name)
    if not plain or "\\" in name or "\0" in name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ToolchainError(f"sidecar name {name[:80]!r} must be a plain file name in the model's folder")
    try:
        folder = graph_path.resolve().parent
        candidate = graph_path.parent / name
        resolved = candidate.resolve()
        if resolved.parent != folder:
            raise ToolchainError(f"sidecar {name!r} resolves to {resolved}, outside the model's folder {folder}")
        if not resolved.is_file():
            raise ToolchainError(f"sidecar {candidate} does not exist (it must sit next to {graph_path.name})")
    except (OSError, RuntimeError, ValueError) as e:  # symlink loops, names the file system or codec refuses
        raise ToolchainError(f"sidecar name {name[:80]!r} cannot be opened: {type(e).__name__}: {e}") from None
    return resolved


def _sha256(path: Path, limit: int) -> tuple[str, int]:
    """SHA-256 of at most ``limit`` bytes of ``path``, read in chunks (nothing held whole before it is checked)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise SidecarError(f"sidecar {path} is over the {limit}-byte limit")
            digest.update(chunk)
    return digest.hexdigest(), size


def _read_verified(path: Path, expected: str, graph_name: str) -> bytes:
    """The sidecar's bytes, whose SHA-256 must be ``expected``. A file of at most ``HASH_IN_ONE_PASS`` bytes is read
    once and the bytes read are hashed; a larger one is hashed as a stream first (never held whole unless it is the
    right file), then read and hashed again, as the file may change in between."""
    mismatch = SidecarError(
        f"sidecar {path.name} does not belong to {graph_name}: its SHA-256 differs from the graph's record "
        "(another export's sidecar, or a truncated or corrupted file)"
    )
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size <= HASH_IN_ONE_PASS:
            data = fh.read(HASH_IN_ONE_PASS + 1)
            if len(data) <= HASH_IN_ONE_PASS:
                if hashlib.sha256(data).hexdigest() != expected:
                    raise mismatch
                return data
    digest, size = _sha256(path, MAX_SIDECAR_BYTES)
    if digest != expected:
        raise mismatch
    data = path.read_bytes()
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        raise SidecarError(f"sidecar {path} changed while it was being read")
    return data


def external_data_outside_weights(graph: Any) -> list[str]:
    """Tensors stored as external data anywhere but the top-level initializers: node attributes (``Constant``),
    sparse initializers, and every subgraph. onnxruntime would open the files they name; the runtime never needs
    them, so any is refused (an attacker's graph can read a file such as /etc/passwd back as an output)."""
    import onnx

    found: list[str] = []

    def tensors_of(g: Any, top: bool) -> None:
        inits = [] if top else list(g.initializer)
        for sparse in g.sparse_initializer:
            inits += [sparse.values, sparse.indices]
        found.extend(t.name or "(unnamed)" for t in inits if t.data_location == onnx.TensorProto.EXTERNAL)
        for node in g.node:
            for attr in node.attribute:
                if not _holds_tensors_or_graphs(attr):  # most attributes are ints, floats and strings: skip fast
                    continue
                sparse = [attr.sparse_tensor, *attr.sparse_tensors]
                for t in [attr.t, *attr.tensors, *(x for st in sparse for x in (st.values, st.indices))]:
                    if t.data_location == onnx.TensorProto.EXTERNAL:
                        found.append(f"{node.op_type} {node.name or node.output[:1]} attribute {attr.name}")
                for sub in [attr.g, *attr.graphs]:
                    if sub.ByteSize():
                        tensors_of(sub, top=False)

    tensors_of(graph.graph, top=True)
    for function in graph.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.t.data_location == onnx.TensorProto.EXTERNAL:
                    found.append(f"function {function.name} attribute {attr.name}")
    return found


def _holds_tensors_or_graphs(attr: Any) -> bool:
    """Whether an AttributeProto has a tensor or graph field set, whatever its declared type says."""
    return bool(
        attr.HasField("t")
        or attr.HasField("g")
        or attr.HasField("sparse_tensor")
        or len(attr.tensors)
        or len(attr.graphs)
        or len(attr.sparse_tensors)
    )


def graph_digest(graph: Any) -> str:
    """SHA-256 of the graph's deterministic serialisation without its own ``toolchain.graph_sha256`` entry.

    The exporter records it in that entry; :func:`load` recomputes it for every toolchain graph, so a changed scale,
    zero-point, int32 bias or metadata value (``preprocess.size``, say) is refused instead of running silently
    wrong. The sidecar is covered by its SHA-256 in the graph, so the digest covers both halves of a pair.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(graph)
    kept = [p for p in copy.metadata_props if p.key != META_GRAPH_SHA256]
    del copy.metadata_props[:]
    copy.metadata_props.extend(kept)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def _check_graph_digest(graph_path: Path, graph: Any, meta: dict[str, str], hollow: bool) -> None:
    """Graphs the toolchain wrote (``toolchain.format``) must carry and match their digest; others load as they are.

    A graph that names a sidecar or has hollow (external) initializers can only be one of ours, so it must carry the
    format key too: without that rule, one damaged byte in the key's name would switch the digest check off.
    """
    if META_FORMAT not in meta:
        if META_SIDECAR in meta or hollow:
            raise ToolchainError(
                f"{graph_path} names a sidecar or has external weights but lacks the {META_FORMAT} and "
                f"{META_GRAPH_SHA256} metadata every toolchain export carries: damaged or edited; refused"
            )
        return
    recorded = meta.get(META_GRAPH_SHA256)
    if recorded is None:
        raise ToolchainError(
            f"{graph_path} carries no digest ({META_GRAPH_SHA256}): it was exported by an older toolchain or edited; "
            "export it again"
        )
    if graph_digest(graph) != recorded.lower():
        raise ToolchainError(
            f"{graph_path} was changed after export (its content no longer matches its {META_GRAPH_SHA256}): "
            "a scale, zero-point, bias or metadata value differs; refused"
        )


def _type_name(code: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return f"unknown element type {code}"


def _attach_sidecar(
    graph_path: Path,
    graph: Any,
    meta: dict[str, str],
    hollow: dict[str, Any],
    decode_threads: int,
    max_levels: int | None = None,
) -> tuple[SidecarIndex, dict[str, np.ndarray]]:
    """The sidecar's index and its decoded containers by name, after every check of steps 2–4 (module docstring)."""
    import onnx

    path = _sidecar_path(graph_path, meta[META_SIDECAR])
    data = _read_verified(path, meta.get(META_SIDECAR_SHA256, "").lower(), graph_path.name)
    index = parse_sidecar(data, max_levels)
    records = {r.name: r for r in index.records}
    if set(records) != set(hollow):
        missing, extra = sorted(set(hollow) - set(records)), sorted(set(records) - set(hollow))
        raise SidecarError(f"sidecar and graph disagree: graph-only {missing[:5]}, sidecar-only {extra[:5]}")
    for name, init in hollow.items():
        record = records[name]
        expected = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(record.dtype))
        if init.data_type != expected or tuple(init.dims) != record.shape:
            raise SidecarError(
                f"tensor {name!r}: sidecar declares {record.dtype} {list(record.shape)}, graph expects "
                f"{_type_name(init.data_type)} {list(init.dims)}"
            )
    check_weight_scales(graph, records)
    return index, {r.name: array for r, array in zip(index.records, index.decode_all(decode_threads))}


def materialize(path: str | os.PathLike[str], containers: str = "auto") -> Any:
    """The model at ``path`` as one standalone ``onnx.ModelProto`` (sidecar tensors embedded, in the containers
    ``containers`` picks, as :func:`load`), for diagnostics and conversion; the sidecar goes through every check of
    :func:`load`."""
    import onnx

    model = load(path, containers=containers)  # all checks, and a proof that the pair loads
    if model.sidecar is None:
        return onnx.load(str(model.path))
    source = model._source
    graph = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source, load_external_data=False)
    for init in graph.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            array = model._initializers[init.name][0]  # decoded and checked by load()
            init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    for p in list(graph.metadata_props):
        if p.key in (META_SIDECAR, META_SIDECAR_SHA256, META_GRAPH_SHA256):
            graph.metadata_props.remove(p)
    return graph

"""Crafted artefacts, built here, that once crashed, over-allocated or read files: each is now a clean refusal.

The cases of the trustworthy-artefacts issue: external data outside the weights, allocations the files do not
justify, the seven inputs that reached users as tracebacks, and files written with a mode the user cannot share.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import runtime
from exporters import export_model
from runtime import ToolchainError, atomic_write_bytes, atomic_write_many
from runtime.codecs import CODECS, CodecError
from runtime.sidecar import SidecarError, SidecarTensor, encode_sidecar, parse_sidecar
from tests.exporters.helpers import prepared, sample
from tests.runtime.helpers import GRAPH, STEM, edit_header, resign, sealed, set_meta, sidecar_of


def _graph(folder: Path) -> onnx.ModelProto:
    return onnx.load(str(folder / GRAPH), load_external_data=False)


def _graph_at(path: Path) -> onnx.GraphProto:
    return onnx.load(str(path), load_external_data=False).graph


def _save_graph(folder: Path, graph: onnx.ModelProto) -> None:
    (folder / GRAPH).write_bytes(sealed(graph))


# -- item 2: external data outside the weights -------------------------------------------------------------------


def _reads_a_file(target: str, *, nest: bool) -> onnx.ModelProto:
    """A graph whose Constant (top level, or inside an If branch) takes its bytes from ``target``."""
    value = TensorProto(name="leak", data_type=TensorProto.UINT8, dims=[16])
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value=target)
    value.external_data.add(key="length", value="16")
    const = helper.make_node("Constant", [], ["out"], value=value)
    if nest:
        branch = helper.make_graph(
            [const], "branch", [], [helper.make_tensor_value_info("out", TensorProto.UINT8, [16])]
        )
        node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch)
        inputs = [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    else:
        node, inputs = const, []
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("out", TensorProto.UINT8, [16])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("nest", [False, True])
def test_external_data_outside_the_weights_is_refused(tmp_path: Path, nest: bool) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret")
    path = tmp_path / "leak.onnx"
    onnx.save(_reads_a_file(str(secret), nest=nest), path)
    with pytest.raises(ToolchainError, match="external data outside its weight initializers"):
        runtime.load(path)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "dotdot"])
def test_the_installed_onnxruntime_refuses_the_file_read_on_its_own(tmp_path: Path, relative: bool) -> None:
    """Defence in depth, and the reason for the `onnxruntime>=1.24.1` floor: 1.23.2 and older read the secret back
    as an output from both forms (measured), 1.24.1 and newer refuse them without our check."""
    import onnxruntime as ort

    (tmp_path / "secret.txt").write_text("root:x:0:0:secret")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "inside.bin").write_bytes(bytes(range(16)))

    def session(target: str) -> list:
        graph = _reads_a_file(target, nest=False)
        graph.ir_version = 8  # loadable by every release in question, so a refusal is about the path
        onnx.save(graph, tmp_path / "model" / "leak.onnx")
        return ort.InferenceSession(str(tmp_path / "model" / "leak.onnx"), providers=["CPUExecutionProvider"]).run(
            None, {}
        )

    assert bytes(session("inside.bin")[0]) == bytes(range(16))  # the control: external data in the folder is read
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error types differ across releases
        session("../secret.txt" if relative else str(tmp_path / "secret.txt"))


def test_a_sidecar_pair_with_an_extra_external_constant_is_refused(copy: Path, tmp_path: Path) -> None:
    graph = _graph(copy)
    leak = _reads_a_file(str(tmp_path / "secret"), nest=False).graph.node[0]
    graph.graph.node.insert(0, leak)
    _save_graph(copy, graph)
    with pytest.raises(ToolchainError, match="external data outside"):
        runtime.load(copy / GRAPH)


# -- item 3: allocations the files do not justify -----------------------------------------------------------------


def test_an_empty_tensor_keeps_the_inflate_bound() -> None:
    """zlib reads max_length 0 as unlimited: a zero-element tensor must not inflate a bomb."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bomb.compress(bytes(64 << 20)) + bomb.flush()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CodecError):
        CODECS["packed"].decode(body, 0, 4)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 << 10  # KiB: far below the 64 MiB


def test_a_huge_tensor_from_a_few_bytes_is_refused_before_decoding() -> None:
    """One-level rANS tables code any size in a few bytes; the size a file may declare is bounded by its length."""
    ones = SidecarTensor("w", np.zeros((4, 4), np.int8), 4, np.ones(4, np.float32), 0)
    data = encode_sidecar([ones], {}, codecs=("ans",))

    def grow(header: dict) -> None:
        record = header["tensors"][0]
        record["shape"], record["decoded_bytes"], record["chunk_levels"] = [4, 1 << 26], 1 << 28, 1 << 28

    with pytest.raises(SidecarError, match="refused before decoding"):
        parse_sidecar(edit_header(data, grow))
    assert parse_sidecar(data).records[0].count == 16  # the honest file parses


def test_a_mismatched_sidecar_is_refused_without_reading_it_whole(copy: Path) -> None:
    with sidecar_of(copy).open("ab") as fh:  # a large sparse tail: hashing it streams, nothing is held whole
        fh.truncate(sidecar_of(copy).stat().st_size + (256 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ToolchainError, match="SHA-256"):
        runtime.load(copy / GRAPH)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 << 10  # KiB


# -- item 7: inputs that crashed ----------------------------------------------------------------------------------


def test_a_header_nested_thousands_deep_is_refused(copy: Path) -> None:
    data = sidecar_of(copy).read_bytes()
    raw = b'{"tensors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    crafted = struct.pack("<8sHHII", data[:8], 1, 0, len(raw), zlib.crc32(raw)) + raw
    with pytest.raises(SidecarError, match="not valid JSON"):
        parse_sidecar(crafted)


def test_an_ans_stream_ending_in_a_zero_word_is_refused() -> None:
    levels = np.array([0, 1, -1, 2, 0, 0, 1, -2] * 64, np.int8)
    body = CODECS["ans"].encode(levels, 4)
    with pytest.raises(CodecError, match="zero word"):
        CODECS["ans"].decode(body + bytes(4), levels.size, 4)


@pytest.mark.parametrize(
    "name", ["bad\0name.qsc", "x" * 300 + ".qsc", "loop.qsc"], ids=["nul", "300-characters", "symlink-loop"]
)
def test_odd_sidecar_names_are_refused(copy: Path, name: str) -> None:
    if name == "loop.qsc":
        os.symlink(copy / "loop.qsc", copy / "loop.qsc")
    set_meta(copy, "toolchain.sidecar", name)
    with pytest.raises(ToolchainError, match="sidecar name"):
        runtime.load(copy / GRAPH)


def test_a_sidecar_name_that_is_not_utf8_is_refused(copy: Path) -> None:
    raw = (copy / GRAPH).read_bytes()  # the name stands in the metadata and in each weight's location
    name = sidecar_of(copy).name.encode()
    (copy / GRAPH).write_bytes(raw.replace(name, name[:-4] + b"\xe9qsc"))
    with pytest.raises(ToolchainError, match="not UTF-8"):
        runtime.load(copy / GRAPH)


def test_an_unknown_element_type_is_refused_with_its_code(copy: Path) -> None:
    graph = _graph(copy)
    hollow = next(i for i in graph.graph.initializer if i.data_location == TensorProto.EXTERNAL)
    hollow.data_type = 99
    _save_graph(copy, graph)
    with pytest.raises(ToolchainError, match="unknown element type 99"):
        runtime.load(copy / GRAPH)


# -- item 6: artefacts follow the umask ----------------------------------------------------------------------------


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        one = atomic_write_bytes(tmp_path / "a.bin", b"x")
        many = atomic_write_many([(tmp_path / "b.bin", b"y"), (tmp_path / "c.bin", b"z")])
        os.umask(0o077)
        private = atomic_write_bytes(tmp_path / "d.bin", b"x")
    finally:
        os.umask(old)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in [one, *many])
    assert private.stat().st_mode & 0o777 == 0o600


def test_exported_artefacts_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        result = export_model(prepared("lenet5_tiny"), sample("lenet5_tiny", 2), tmp_path, STEM, config={})
    finally:
        os.umask(old)
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in (result.standalone, result.graph, result.sidecar))


# -- item 4: the graph half ---------------------------------------------------------------------------------------


def _double_a_scale(path: Path) -> None:
    graph = onnx.load(str(path), load_external_data=False)
    scale = next(i for i in graph.graph.initializer if i.name.endswith("scale") and i.data_type == TensorProto.FLOAT)
    value = onnx.numpy_helper.to_array(scale) * 2
    scale.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), scale.name))
    path.write_bytes(graph.SerializeToString())


@pytest.mark.parametrize("artefact", [GRAPH, f"{STEM}.onnx"])
def test_a_changed_scale_in_either_graph_is_refused(copy: Path, artefact: str) -> None:
    runtime.load(copy / artefact)  # intact: loads
    _double_a_scale(copy / artefact)
    with pytest.raises(ToolchainError, match="changed after export"):
        runtime.load(copy / artefact)


def test_changed_metadata_is_refused_and_an_unsealed_toolchain_graph_too(copy: Path) -> None:
    graph = _graph(copy)
    for p in graph.metadata_props:
        if p.key == "toolchain.config":
            p.value = json.dumps({"preprocess": {"kind": "imagenet", "size": 100000}})
    (copy / GRAPH).write_bytes(graph.SerializeToString())
    with pytest.raises(ToolchainError, match="changed after export"):
        runtime.load(copy / GRAPH)
    kept = [p for p in graph.metadata_props if p.key != "toolchain.graph_sha256"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    (copy / GRAPH).write_bytes(graph.SerializeToString())
    with pytest.raises(ToolchainError, match="carries no digest"):
        runtime.load(copy / GRAPH)


@pytest.mark.parametrize("damage", ["format key renamed", "all metadata removed"])
def test_a_damaged_format_key_cannot_switch_the_digest_off(copy: Path, damage: str) -> None:
    """Fuzz case 345 (issue 31): one flipped bit in the format key's name (``toolchaio.format``), then a changed
    scale, was accepted; a graph with hollow initializers or a sidecar name must carry the key and its digest."""
    graph = _graph(copy)
    if damage == "format key renamed":
        next(p for p in graph.metadata_props if p.key == "toolchain.format").key = "toolchaio.format"
    else:
        del graph.metadata_props[:]
    (copy / GRAPH).write_bytes(graph.SerializeToString())
    _double_a_scale(copy / GRAPH)
    with pytest.raises(ToolchainError, match="lacks the toolchain.format"):
        runtime.load(copy / GRAPH)


def test_onnx_files_from_elsewhere_need_no_digest(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "plain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    out = runtime.load(tmp_path / "plain.onnx").run(np.array([[-1, 0, 2, -3]], np.float32))[0]
    assert out.tolist() == [[0, 0, 2, 0]]


# -- item 4: graph and sidecar agree on every weight's scale ----------------------------------------------------


def _weight_scale(graph: onnx.ModelProto) -> TensorProto:
    """The scale initializer of the first hollow weight's DequantizeLinear."""
    hollow = {i.name for i in graph.graph.initializer if i.data_location == TensorProto.EXTERNAL}
    node = next(n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in hollow)
    return next(i for i in graph.graph.initializer if i.name == node.input[1])


@pytest.mark.parametrize("factor", [2.0, 1.0000001], ids=["doubled", "one-ulp-off"])
def test_a_resealed_graph_whose_weight_scale_differs_from_the_sidecar_is_refused(copy: Path, factor: float) -> None:
    """Whoever rewrites the whole graph can reseal its digest; the sidecar's steps still say what the scale is."""
    graph = _graph(copy)
    scale = _weight_scale(graph)
    value = onnx.numpy_helper.to_array(scale).astype(np.float32)
    changed = np.nextafter(value, np.inf) if factor < 1.001 else value * np.float32(factor)
    scale.CopyFrom(onnx.numpy_helper.from_array(changed.astype(np.float32), scale.name))
    _save_graph(copy, graph)
    with pytest.raises(SidecarError, match="scale differs from the sidecar"):
        runtime.load(copy / GRAPH)


def test_a_resealed_graph_whose_weight_zero_point_differs_from_the_sidecar_is_refused(copy: Path) -> None:
    """A shifted zero-point moves every weight by a step, as a changed scale scales them."""
    graph = _graph(copy)
    hollow = {i.name for i in graph.graph.initializer if i.data_location == TensorProto.EXTERNAL}
    node = next(n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in hollow)
    zero_point = next(i for i in graph.graph.initializer if i.name == node.input[2])
    value = onnx.numpy_helper.to_array(zero_point)
    zero_point.CopyFrom(onnx.numpy_helper.from_array(value + np.ones_like(value), zero_point.name))
    _save_graph(copy, graph)
    with pytest.raises(SidecarError, match="zero-point is not the sidecar's"):
        runtime.load(copy / GRAPH)


def test_a_resigned_sidecar_whose_steps_differ_from_the_graph_is_refused(copy: Path) -> None:
    def halve_steps(header: dict) -> None:
        import base64

        record = header["tensors"][0]
        steps = np.frombuffer(base64.b64decode(record["steps"]), "<f4") / 2
        record["steps"] = base64.b64encode(steps.astype("<f4").tobytes()).decode("ascii")

    resign(copy, edit_header(sidecar_of(copy).read_bytes(), halve_steps))
    with pytest.raises(SidecarError, match="scale differs from the sidecar"):
        runtime.load(copy / GRAPH)


def test_a_hollow_weight_read_by_another_node_is_refused(copy: Path) -> None:
    graph = _graph(copy)
    hollow = next(i.name for i in graph.graph.initializer if i.data_location == TensorProto.EXTERNAL)
    graph.graph.node.append(helper.make_node("Identity", [hollow], ["leak"], name="leak"))
    _save_graph(copy, graph)
    with pytest.raises(SidecarError, match="not dequantized"):
        runtime.load(copy / GRAPH)


def test_exported_pairs_pass_the_scale_check_at_2_and_8_bits(tmp_path: Path) -> None:
    """Per-channel and per-tensor weights, 2 and 8 bits (multipliers 63 and 1, int8 and uint8 containers): the check
    accepts what is exported."""
    for wbits in (2, 8):
        result = export_model(
            prepared("resnet20_tiny", wbits=wbits), sample("resnet20_tiny", 2), tmp_path / f"w{wbits}",
            uint8_weights=True,
        )  # fmt: skip
        assert result.graph is not None
        model = runtime.load(result.graph, containers="uint8")  # as written: no container switched at load
        assert not model.containers.switched
        dtypes = {a.dtype for a in model.weights().values()}  # first and last layers are 8-bit at either width
        assert dtypes == ({np.dtype(np.int8), np.dtype(np.uint8)} if wbits == 2 else {np.dtype(np.uint8)})
        hollow = {
            i.name: i.data_type for i in _graph_at(result.graph).initializer if i.data_location == TensorProto.EXTERNAL
        }
        assert model.sidecar is not None  # the spec's §1: the hollow initializer has the record's container type
        assert hollow == {
            r.name: TensorProto.UINT8 if r.dtype == "uint8" else TensorProto.INT8 for r in model.sidecar.records
        }


# -- issue 31 item 4: recorded configurations and images that printed tracebacks -----------------------------------

BAD_CONFIGS = {
    "not JSON": ("{not json", "is not a JSON object"),
    "size missing": ({"kind": "gray", "mean": 0.5, "std": 0.5}, "size must be an integer"),
    "size 0": ({"kind": "gray", "size": 0, "mean": 0.5, "std": 0.5}, "size must be an integer"),
    "size a string": ({"kind": "gray", "size": "16", "mean": 0.5, "std": 0.5}, "size must be an integer"),
    "size 40,000": ({"kind": "gray", "size": 40_000, "mean": 0.5, "std": 0.5}, "size must be an integer"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["run", "verify", "inspect"])
def test_a_bad_recorded_config_is_one_error_line(copy: Path, case: str, command: str, tmp_path: Path, capsys) -> None:
    from PIL import Image

    from toolchain.cli.main import main

    value, expected = BAD_CONFIGS[case]
    set_meta(copy, "toolchain.config", value if isinstance(value, str) else json.dumps({"preprocess": value}))
    image = tmp_path / "x.png"
    Image.new("L", (20, 20)).save(image)
    args = {"run": [str(image)], "verify": ["--data", "digits"], "inspect": []}[command]
    assert main([command, str(copy / GRAPH), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err


def test_a_decompression_bomb_is_one_error_line(copy: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from PIL import Image

    from toolchain.cli.main import main

    side = onnx.load(str(copy / GRAPH), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[-1]
    set_meta(copy, "toolchain.config", json.dumps({"preprocess": {"kind": "gray", "size": side.dim_value,
                                                                  "mean": 0.5, "std": 0.5}}))  # fmt: skip
    image = tmp_path / "bomb.png"
    Image.new("L", (64, 64)).save(image)
    assert main(["run", str(copy / GRAPH), str(image)]) == 0  # a sound file and config run
    capsys.readouterr()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # the same file is now past PIL's bomb limit
    assert main(["run", str(copy / GRAPH), str(image)]) == 2
    err = capsys.readouterr().err
    assert "decompression bomb" in err and err.count("\n") == 1, err

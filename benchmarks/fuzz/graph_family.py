"""The graph families: byte damage to the graph (``graph-bytes``, ``graph-bytes-resealed``) and one structured edit
of it (``graph-edits-resealed``), the sidecar left intact."""

from __future__ import annotations

import copy
import random
from typing import Any

from benchmarks.fuzz.bases import Base, Case, pair
from benchmarks.fuzz.halves import GRAPH, damage, parse_graph, seal
from benchmarks.fuzz.values import _deep, edit_array


def gen_graph_bytes(rng: random.Random, base: Base) -> Case:
    return Case("bytes", pair(base, damage(base.graph, rng), base.sidecar), base)


def gen_graph_bytes_resealed(rng: random.Random, base: Base) -> Case:
    for _ in range(20):
        damaged = damage(base.graph, rng)
        proto = parse_graph(damaged)
        if proto is not None:
            return Case("bytes, resealed", pair(base, seal(proto), base.sidecar), base, reforged=True)
    return Case("bytes, unparseable", pair(base, damaged, base.sidecar), base)


def _weight_readers(proto: Any, hollow: set[str]) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input and n.input[0] in hollow]


def _activation_qdq(proto: Any, hollow: set[str]) -> list[Any]:
    ops = ("QuantizeLinear", "DequantizeLinear")
    return [n for n in proto.graph.node if n.op_type in ops and n.input and n.input[0] not in hollow]


def _meta(proto: Any, key: str) -> Any | None:
    return next((e for e in proto.metadata_props if e.key == key), None)


def graph_edit(rng: random.Random, base: Base, proto: Any) -> tuple[str, bool, dict[str, str], bool]:
    """One structured edit of ``proto`` in place: (label, expect refusal, symlinks, reseal the digest)."""
    import onnx
    from onnx import TensorProto, helper

    from runtime.session import META_CONFIG, META_FORMAT, META_GRAPH_SHA256, META_SIDECAR, META_SIDECAR_SHA256

    inits = {i.name: i for i in proto.graph.initializer}
    hollow = {n for n, i in inits.items() if i.data_location == TensorProto.EXTERNAL}
    weight_dq = _weight_readers(proto, hollow)
    act_qdq = _activation_qdq(proto, hollow)
    kind = rng.choice(
        (
            "meta config",
            "meta drop",
            "meta add",
            "meta sidecar name",
            "meta sidecar sha",
            "meta format",
            "hollow dims",
            "hollow type",
            "hollow location",
            "hollow external",
            "hollow rename",
            "weight scale",
            "weight zero-point",
            "weight axis",
            "weight rewire",
            "activation scale",
            "activation zero-point",
            "bias",
            "node input",
            "node swap inputs",
            "node op",
            "node drop",
            "node duplicate",
            "node clear",
            "node attribute",
            "graph input",
            "opset",
            "external tensor",
        )
    )
    links: dict[str, str] = {}
    if kind == "meta config":
        entry = _meta(proto, META_CONFIG)
        value = rng.choice(
            (
                "{",
                "[]",
                "null",
                '"x"',
                '{"fuzz": true, "extra": [1, 2]}',
                '{"fuzz": false}',
                '{"preprocess": {"kind": "gray", "size": 40000}}',
                '{"preprocess": 1}',
                '{"preprocess": {"kind": "imagenet", "size": 28}}',
                '{"task": "x", "classes": 1e999}',
                "x" * 100_000,
                "deep",
            )
        )
        if value == "deep":
            depth = rng.choice((10, 1000, 10_000, 100_000, 1_000_000))
            value = '{"a": ' + _deep(depth) + "}"
            kind = f"meta config nested {depth}"
        if entry is None:
            proto.metadata_props.add(key=META_CONFIG, value=value)
        else:
            entry.value = value
        return kind, False, links, True
    if kind == "meta drop":
        key = rng.choice([e.key for e in proto.metadata_props])
        kept = [(e.key, e.value) for e in proto.metadata_props if e.key != key]
        del proto.metadata_props[:]
        for k, v in kept:
            proto.metadata_props.add(key=k, value=v)
        vital = key in (META_FORMAT, META_SIDECAR, META_SIDECAR_SHA256, META_GRAPH_SHA256)
        return f"meta drop {key}", vital, links, True
    if kind == "meta add":
        key = rng.choice(
            ("toolchain.extra", "", "k" * 300, META_SIDECAR, META_SIDECAR_SHA256, META_CONFIG, META_FORMAT)
        )
        value = rng.choice(("", "x", "model.compressed.onnx", "../etc/passwd", "0" * 64, "{}", "\u00e9" * 50))
        proto.metadata_props.add(key=key, value=value)
        duplicate = key.startswith("toolchain.") and key != "toolchain.extra"
        return f"meta add {'duplicate ' + key if duplicate else 'key'}", False, links, True
    if kind == "meta sidecar name":
        entry = _meta(proto, META_SIDECAR)
        name = base.sidecar_name
        variants = {
            "traversal": "../" + name,
            "absolute": str(base.folder / name),
            "nul": name + "\0",
            "empty": "",
            "dot": ".",
            "dotdot": "..",
            "upper": name.upper(),
            "long": "x" * 300,
            "backslash": "a\\" + name,
            "graph": GRAPH,
            "link inside": "link.qsc",
            "link outside": "outside.qsc",
            "missing": "missing.qsc",
        }
        which = rng.choice(sorted(variants))
        assert entry is not None
        entry.value = variants[which]
        if which == "link inside":
            links["link.qsc"] = name
        elif which == "link outside":
            links["outside.qsc"] = str(base.folder / name)
        return f"meta sidecar name {which}", which != "link inside", links, True
    if kind == "meta sidecar sha":
        entry = _meta(proto, META_SIDECAR_SHA256)
        assert entry is not None
        which = rng.choice(("random", "upper", "space", "empty", "short"))
        entry.value = {
            "random": rng.randbytes(32).hex(),
            "upper": entry.value.upper(),
            "space": entry.value + " ",
            "empty": "",
            "short": entry.value[:-1],
        }[which]
        return f"meta sidecar sha {which}", which != "upper", links, True
    if kind == "meta format":
        entry = _meta(proto, META_FORMAT)
        assert entry is not None
        entry.value = rng.choice(("qdq-standalone", "", "x", "qdq-sidecar2"))
        return kind, False, links, True
    if kind.startswith("hollow"):
        init = inits[rng.choice(sorted(hollow))]
        if kind == "hollow dims":
            dims = list(init.dims)
            which = rng.choice(("permute", "plus one", "drop", "append", "zero"))
            if which == "permute" and len(set(dims)) > 1:
                while list(init.dims) == dims:
                    rng.shuffle(dims)
            elif which == "plus one":
                dims[rng.randrange(len(dims))] += 1
            elif which == "drop" and len(dims) > 1:
                dims = dims[:-1]
            elif which == "zero":
                dims[0] = 0
            else:
                dims.append(1)
            del init.dims[:]
            init.dims.extend(dims)
            kind = f"hollow dims {which}"
        elif kind == "hollow type":
            types = (TensorProto.UINT8, TensorProto.INT8, TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT4, 0, 99)
            init.data_type = rng.choice([t for t in types if t != init.data_type])
        elif kind == "hollow location":
            init.data_location = TensorProto.DEFAULT
        elif kind == "hollow external":
            which = rng.choice(("location passwd", "location graph", "offset 0", "length 1", "drop", "checksum"))
            entries = {e.key: e for e in init.external_data}
            if which == "location passwd":
                entries["location"].value = "../../../../../../etc/passwd"
            elif which == "location graph":
                entries["location"].value = GRAPH
            elif which == "offset 0":
                entries["offset"].value = "0"
            elif which == "length 1":
                entries["length"].value = "1"
            elif which == "drop":
                del init.external_data[:]
            else:
                init.external_data.add(key="checksum", value="0" * 40)
            kind = f"hollow external {which}"
        else:
            init.name = init.name + "_"
        return kind, True, links, True
    if kind in ("weight scale", "weight zero-point"):
        node = rng.choice(weight_dq)
        position = 1 if kind == "weight scale" else 2
        if position >= len(node.input) or node.input[position] not in inits:
            return f"{kind} absent (no edit)", False, links, True
        if kind == "weight zero-point" and rng.random() < 0.2:
            del node.input[2:]
            return f"{kind} dropped", True, links, True
        return f"{kind} {edit_array(rng, inits[node.input[position]])}", True, links, True
    if kind == "weight axis":
        node = rng.choice(weight_dq)
        axes = [a for a in node.attribute if a.name == "axis"]
        new = rng.choice((-1, 0, 1, 2, 3, 4, -5))
        if axes:
            axes[0].i = new
        else:
            node.attribute.append(helper.make_attribute("axis", new))
        return kind, True, links, True
    if kind == "weight rewire":
        others = [
            n for n in proto.graph.node if n.input and not (n.op_type == "DequantizeLinear" and n.input[0] in hollow)
        ]
        node = rng.choice(others)
        node.input[rng.randrange(len(node.input))] = rng.choice(sorted(hollow))
        return kind, True, links, True
    if kind in ("activation scale", "activation zero-point"):
        position = 1 if kind == "activation scale" else 2
        candidates = [n for n in act_qdq if len(n.input) > position and n.input[position] in inits]
        if not candidates:
            return f"{kind} absent", False, links, True
        node = rng.choice(candidates)
        return f"{kind} {edit_array(rng, inits[node.input[position]])}", False, links, True
    if kind == "bias":
        biases = [i for i in proto.graph.initializer if i.data_type == TensorProto.INT32]
        if not biases:
            return "bias absent", False, links, True
        return f"bias {edit_array(rng, rng.choice(biases))}", False, links, True
    nodes = proto.graph.node
    names = sorted({o for n in nodes for o in n.output} | set(inits) | {i.name for i in proto.graph.input})
    if kind == "node input":
        node = rng.choice([n for n in nodes if n.input])
        new, at = rng.choice(names), rng.randrange(len(node.input))
        old = node.input[at]
        node.input[at] = new
        return kind, new in hollow or old in hollow, links, True
    if kind == "node swap inputs":
        node = rng.choice([n for n in nodes if len(n.input) > 1])
        i, j = rng.sample(range(len(node.input)), 2)
        weight_moved = (node.input[i] in hollow) != (node.input[j] in hollow)
        node.input[i], node.input[j] = node.input[j], node.input[i]
        return kind, weight_moved, links, True
    if kind == "node op":
        node = rng.choice(nodes)
        was_weight_dq = node in weight_dq
        node.op_type = rng.choice(
            (
                "Relu",
                "Sigmoid",
                "Add",
                "Mul",
                "Conv",
                "MatMul",
                "Identity",
                "Reshape",
                "Transpose",
                "QuantizeLinear",
                "DequantizeLinear",
                "ConvTranspose",
                "Gemm",
                "MaxPool",
                "Flatten",
                "Softmax",
                "Concat",
                "Expand",
                "Tile",
                "If",
                "NoSuchOp",
                "Cast",
                "Pad",
            )
        )
        return kind, was_weight_dq and node.op_type != "DequantizeLinear", links, True
    if kind == "node drop":
        at = rng.randrange(len(nodes))
        reads_weight = any(name in hollow for name in nodes[at].input)
        del nodes[at]
        return kind, reads_weight, links, True
    if kind == "node clear":  # a node left without inputs or outputs (a DequantizeLinear, mostly)
        dequantizers = [n for n in nodes if n.op_type == "DequantizeLinear"]
        node = rng.choice(dequantizers if dequantizers and rng.random() < 0.7 else list(nodes))
        reads_weight = any(name in hollow for name in node.input)
        which = rng.choice(("inputs", "outputs", "both"))
        if which != "outputs":
            del node.input[:]
        if which != "inputs":
            del node.output[:]
        return f"node clear {which}", reads_weight and which != "outputs", links, True
    if kind == "node duplicate":
        node = rng.choice(nodes)
        nodes.insert(rng.randrange(len(nodes) + 1), copy.deepcopy(node))
        return kind, False, links, True
    if kind == "node attribute":
        candidates = [(n, a) for n in nodes for a in n.attribute if a.type in (1, 2, 3, 7)]
        node, attr = rng.choice(candidates)
        if attr.type == onnx.AttributeProto.INT:
            attr.i = rng.choice((attr.i + 1, attr.i - 1, 0, -1, 2**31 - 1, -(2**63), 1 << 40))
        elif attr.type == onnx.AttributeProto.INTS and attr.ints:
            values = list(attr.ints)
            at = rng.randrange(len(values))
            values[at] = rng.choice((values[at] + 1, values[at] - 1, 0, -1, 1 << 20, 2**31 - 1))
            if rng.random() < 0.2:
                values = values[:-1] if rng.random() < 0.5 else [*values, 1]
            del attr.ints[:]
            attr.ints.extend(values)
        elif attr.type == onnx.AttributeProto.FLOAT:
            attr.f = rng.choice((attr.f * 2, float("nan"), float("inf"), 0.0, -attr.f))
        elif attr.type == onnx.AttributeProto.STRING:
            attr.s = rng.choice((b"", b"x", b"NOTSET", b"SAME_UPPER", bytes(attr.s) + b"x"))
        axis_of_weight = node in weight_dq and attr.name == "axis"
        return f"node attribute {attr.name}", axis_of_weight, links, True
    if kind == "graph input":
        graph_input = proto.graph.input[0]
        dims = graph_input.type.tensor_type.shape.dim
        which = rng.choice(("dim", "type", "name", "drop dim"))
        if which == "dim" and len(dims):
            dims[rng.randrange(len(dims))].dim_value = rng.choice((1, 3, 0, 1 << 20))
        elif which == "type":
            graph_input.type.tensor_type.elem_type = rng.choice((TensorProto.UINT8, TensorProto.DOUBLE, 0))
        elif which == "name":
            graph_input.name = graph_input.name + "_"
        elif len(dims):
            del dims[-1]
        return f"graph input {which}", False, links, True
    if kind == "opset":
        which = rng.choice(("opset", "ir"))
        if which == "opset":
            proto.opset_import[0].version = rng.choice((1, 9, 10, 13, 19, 21, 1000))
        else:
            proto.ir_version = rng.choice((1, 3, 7, 10, 11, 100))
        return f"opset {which}", False, links, True
    # external tensor: a Constant node, a sparse initializer or a non-weight initializer stored outside the graph
    which = rng.choice(("constant", "scale initializer", "subgraph"))
    external = helper.make_tensor("ext", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    external.ClearField("float_data")
    external.data_location = TensorProto.EXTERNAL
    external.external_data.add(key="location", value=rng.choice((base.sidecar_name, "/etc/passwd", "../x")))
    if which == "constant":
        nodes.insert(0, helper.make_node("Constant", [], ["ext_out"], value=external))
    elif which == "scale initializer":
        target = inits[rng.choice(sorted(set(inits) - hollow))]
        target.ClearField("raw_data")
        target.data_location = TensorProto.EXTERNAL
        target.external_data.add(key="location", value=external.external_data[0].value)
    else:
        body = helper.make_graph(
            [helper.make_node("Constant", [], ["c"], value=external)],
            "b",
            [],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])],
        )
        cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
        proto.graph.initializer.append(cond)
        nodes.append(helper.make_node("If", ["cond"], ["if_out"], then_branch=body, else_branch=body))
    return f"external tensor {which}", True, links, True


def gen_graph_edits(rng: random.Random, base: Base) -> Case:
    proto = base.proto_copy()
    label, expect, links, reseal = graph_edit(rng, base, proto)
    graph = seal(proto) if reseal else bytes(proto.SerializeToString(deterministic=True))
    return Case(label, pair(base, graph, base.sidecar), base, reforged=True, expect_refusal=expect, links=links)

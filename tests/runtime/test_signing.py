"""Signed exports (issue 31, "Authenticity"): ``export_model(sign=KEY)`` and ``runtime.load(public_key=PUB)``.

The digest that every graph carries catches damage, not an attacker who recomputes it; the signature does. Each
covered file, and each signature, is changed in one byte and refused; so are unsigned graphs, other keys, other
files' signatures and unusable keys, while a load without a key behaves as before. The stock ``model_signing`` CLI
accepts what the exporter signed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import runtime
from exporters import export_model
from runtime import ToolchainError
from runtime.signing import Signer, signature_path
from tests.exporters.helpers import prepared, sample
from tests.keys import key_pair
from tests.runtime.conftest import export_lenet5, private_copy
from tests.runtime.helpers import GRAPH, STEM, sealed, sidecar_of

STANDALONE = f"{STEM}.onnx"
SIGNATURES = {STANDALONE: f"{STEM}.sig", GRAPH: f"{STEM}.compressed.sig"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed(tmp_path_factory, keys) -> Path:
    """The conftest's ``exported`` pair, signed."""
    return export_lenet5(tmp_path_factory.mktemp("signed"), sign=keys[0])


@pytest.fixture
def signed_copy(signed: Path, tmp_path: Path) -> Path:
    return private_copy(signed, tmp_path)


def _x() -> np.ndarray:
    return sample("lenet5_tiny", 3, seed=5).numpy()


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _refused(path: Path, public_key: Path, message: str) -> str:
    with pytest.raises(ToolchainError, match=message) as caught:
        runtime.load(path, public_key=public_key)
    text = str(caught.value)
    assert "\n" not in text, text  # one line, as the CLI prints it
    return text


def test_a_signed_export_loads_with_its_key_and_without_one(signed: Path, keys) -> None:
    names = {p.name for p in signed.iterdir()}
    assert names == {STANDALONE, GRAPH, sidecar_of(signed).name, *SIGNATURES.values()}
    for graph in (STANDALONE, GRAPH):
        checked, plain = runtime.load(signed / graph, public_key=keys[1]), runtime.load(signed / graph)
        np.testing.assert_array_equal(checked.run(_x())[0], plain.run(_x())[0])


@pytest.mark.parametrize(
    ("target", "graph", "message"),
    [
        (STANDALONE, STANDALONE, r"^model\.onnx changed after it was signed"),
        (GRAPH, GRAPH, r"^model\.compressed\.onnx changed after it was signed"),
        ("SIDECAR", GRAPH, r"^model\.compressed\.[0-9a-f]{16}\.qsc changed after it was signed"),
        (SIGNATURES[STANDALONE], STANDALONE, r"signature model\.sig (does not verify|is damaged)"),
        (SIGNATURES[GRAPH], GRAPH, r"signature model\.compressed\.sig (does not verify|is damaged)"),
    ],
)
def test_one_changed_byte_in_any_covered_file_or_signature_is_refused(
    signed_copy: Path, keys, target: str, graph: str, message: str
) -> None:
    path = sidecar_of(signed_copy) if target == "SIDECAR" else signed_copy / target
    # graphs: the last byte, inside the last metadata value, so the file still parses and reaches the signature check
    _flip(path, -1 if path.suffix == ".onnx" else path.stat().st_size // 2)
    _refused(signed_copy / graph, keys[1], message)
    other = STANDALONE if graph == GRAPH else GRAPH  # the other graph has its own signature, untouched
    runtime.load(signed_copy / other, public_key=keys[1])


def _edit_bias(graph: onnx.ModelProto) -> None:
    bias = next(i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.INT32 and i.dims[:1] != [1])
    values = onnx.numpy_helper.to_array(bias).copy()
    values.flat[0] += 1000
    bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))


def _edit_activation_scale(graph: onnx.ModelProto) -> None:
    scales = {n.input[1] for n in graph.graph.node if n.op_type == "QuantizeLinear"}
    scale = next(i for i in graph.graph.initializer if i.name in scales)
    scale.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(scale) * 2, scale.name))


@pytest.mark.parametrize("edit", [_edit_bias, _edit_activation_scale])
@pytest.mark.parametrize("graph_name", [STANDALONE, GRAPH])
def test_an_edit_with_the_digest_recomputed_passes_the_digest_but_not_the_signature(
    signed_copy: Path, keys, graph_name: str, edit
) -> None:
    """The issue's attack: change an int32 bias or an activation scale, recompute the graph's digest."""
    path = signed_copy / graph_name
    graph = onnx.load(str(path), load_external_data=False)
    edit(graph)
    path.write_bytes(sealed(graph))
    runtime.load(path)  # without a key nothing can tell: the digest matches the edited graph
    _refused(path, keys[1], rf"^{graph_name} changed after it was signed")


def test_an_unsigned_export_is_refused_with_a_key_and_loads_without_one(exported: Path, keys) -> None:
    for graph in (STANDALONE, GRAPH):
        _refused(exported / graph, keys[1], rf"^{graph} is unsigned: no signature {SIGNATURES[graph]} beside it")
        runtime.load(exported / graph)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["P-256", "P-384"])
def test_another_public_key_is_refused(signed: Path, tmp_path: Path, curve) -> None:
    _, other = key_pair(tmp_path, "other", curve)
    for graph in (STANDALONE, GRAPH):
        _refused(signed / graph, other, rf"{SIGNATURES[graph]} was signed with another key than other\.pub\.pem")


def test_a_signature_of_other_files_is_refused(signed_copy: Path, keys, tmp_path: Path) -> None:
    """The standalone graph's signature copied over the pair's, and a signature from another export of the same
    key: each verifies, but lists other files."""
    shutil.copy(signed_copy / SIGNATURES[STANDALONE], signed_copy / SIGNATURES[GRAPH])
    _refused(signed_copy / GRAPH, keys[1], r"model\.compressed\.sig signs other files \(model\.onnx\)")
    other = tmp_path / "other"
    export_model(prepared("lenet5_tiny", wbits=2), sample("lenet5_tiny", 2), other, STEM, sign=keys[0])
    shutil.copy(other / SIGNATURES[STANDALONE], signed_copy / SIGNATURES[STANDALONE])
    _refused(signed_copy / STANDALONE, keys[1], r"^model\.onnx changed after it was signed")


def test_each_graph_verifies_on_its_own_whatever_else_the_folder_holds(signed_copy: Path, keys) -> None:
    """A deployment ships the pair alone, or the folder gains a report: neither affects a signature."""
    (signed_copy / STANDALONE).unlink()
    (signed_copy / SIGNATURES[STANDALONE]).unlink()
    (signed_copy / "result.json").write_text("{}")
    (signed_copy / "sub").mkdir()
    runtime.load(signed_copy / GRAPH, public_key=keys[1])


def test_a_re_export_never_leaves_a_stale_signature(tmp_path: Path, keys) -> None:
    folder, x = tmp_path / "e", sample("lenet5_tiny", 2)
    export_model(prepared("lenet5_tiny"), x, folder, STEM, sign=keys[0])
    w2 = prepared("lenet5_tiny", wbits=2)
    export_model(w2, x, folder, STEM, sidecar=False)  # rewrites the standalone graph only, unsigned
    assert not (folder / SIGNATURES[STANDALONE]).exists()
    _refused(folder / STANDALONE, keys[1], "is unsigned")
    runtime.load(folder / GRAPH, public_key=keys[1])  # the earlier pair is whole, and so is its signature
    export_model(w2, x, folder, STEM)
    assert not list(folder.glob("*.sig"))
    result = export_model(w2, x, folder, STEM, sign=keys[0])
    assert result.signatures == (folder / SIGNATURES[STANDALONE], folder / SIGNATURES[GRAPH])
    assert set(result.sizes()) == {p.name for p in folder.iterdir()}
    for graph in (STANDALONE, GRAPH):
        runtime.load(folder / graph, public_key=keys[1])


def _encrypted(folder: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / "encrypted.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


def _rsa(folder: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "rsa.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, keys: d / "missing.pem", "does not exist"),
        (lambda d, keys: keys[1], "cannot sign"),  # the public key
        (lambda d, keys: _rsa(d), "cannot sign"),
        (lambda d, keys: _encrypted(d), "is encrypted"),
    ],
    ids=["missing", "public", "rsa", "encrypted"],
)
def test_an_unusable_private_key_stops_the_export_before_it_writes(tmp_path: Path, keys, make, message) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / STANDALONE).write_bytes(b"earlier output")
    with pytest.raises(ToolchainError, match=message):
        export_model(prepared("lenet5_tiny"), sample("lenet5_tiny", 2), out, STEM, sign=make(tmp_path, keys))
    assert [p.name for p in out.iterdir()] == [STANDALONE]
    assert (out / STANDALONE).read_bytes() == b"earlier output"


def test_an_unusable_public_key_is_refused(signed: Path, keys, tmp_path: Path) -> None:
    _refused(signed / GRAPH, tmp_path / "missing.pub.pem", r"public key .*missing\.pub\.pem does not exist")
    with pytest.raises(ToolchainError, match=r"public key .*signing\.pem cannot be used"):
        runtime.load(signed / GRAPH, public_key=keys[0])  # the private key


def test_without_the_library_a_key_asks_for_it_and_no_key_loads(signed: Path, keys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "model_signing", None)  # `import model_signing` now raises ImportError
    for graph in (STANDALONE, GRAPH):
        runtime.load(signed / graph)
        with pytest.raises(ToolchainError, match=r"pip install 'sparse-lowbit-toolchain\[sign\]'"):
            runtime.load(signed / graph, public_key=keys[1])
    with pytest.raises(ToolchainError, match="model-signing"):
        Signer(keys[0])


STOCK_VERIFY = [sys.executable, "-m", "model_signing", "verify", "key"]


def test_the_stock_model_signing_cli_verifies_each_signature(signed: Path, keys) -> None:
    """What docs/signing.md tells a stranger to run, with nothing of ours installed but the library."""
    for graph in (STANDALONE, GRAPH):
        signature = signature_path(signed / graph)
        done = subprocess.run(
            [
                *STOCK_VERIFY,
                str(signed),
                "--signature",
                str(signature),
                "--public_key",
                str(keys[1]),
                "--ignore_unsigned_files",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "Verification succeeded" in done.stdout, done.stdout + done.stderr

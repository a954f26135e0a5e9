"""`toolchain export --sign KEY` and `verify` / `run` / `inspect --public-key PUB`: signed exports end to end, and
one-line refusals (exit status 2) before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sidecar_in
from tests.keys import key_pair


@pytest.fixture
def signed(cli, lenet_checkpoints, tmp_path: Path) -> tuple[Path, Path]:
    """The W4 LeNet exported with --sign: (export folder, public key)."""
    private, public = key_pair(tmp_path / "keys")
    out = tmp_path / "export"
    done = cli("export", str(lenet_checkpoints["w4"]), "--out", str(out), "--sign", str(private), "--json")
    assert done.returncode == 0, done.stderr
    files = {Path(p).name for p in json.loads(done.stdout)["files"]}
    assert files == {"model.onnx", "model.sig", "model.compressed.onnx", "model.compressed.sig", sidecar_in(out).name}
    assert files == {p.name for p in out.iterdir()}
    return out, public


def _refusal(done, message: str) -> None:
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and not done.stdout


def test_a_signed_export_passes_and_a_changed_sidecar_stops_every_command(cli, signed, tmp_path: Path) -> None:
    out, public = signed
    graph = str(out / "model.compressed.onnx")
    done = cli("inspect", graph, "--public-key", str(public), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["format"] == "qdq-sidecar", done.stderr
    sidecar = sidecar_in(out)
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0x01
    sidecar.write_bytes(bytes(data))
    for command in (["verify", graph], ["run", graph, str(tmp_path / "never-read.png")], ["inspect", graph]):
        _refusal(cli(*command, "--public-key", str(public)), f"{sidecar.name} changed after it was signed")


def test_a_key_refuses_an_unsigned_export_and_another_key(cli, lenet_checkpoints, signed, tmp_path: Path) -> None:
    out, _ = signed
    _, other = key_pair(tmp_path / "other", "other")
    _refusal(cli("verify", str(lenet_checkpoints["w4_onnx"]), "--public-key", str(other)), "is unsigned")
    _refusal(cli("inspect", str(out / "model.onnx"), "--public-key", str(other)), "signed with another key")


def test_export_with_an_unusable_key_leaves_the_earlier_output(cli, lenet_checkpoints, tmp_path: Path) -> None:
    _, public = key_pair(tmp_path / "keys")
    (tmp_path / "model.onnx").write_bytes(b"earlier output")
    done = cli("export", str(lenet_checkpoints["w4"]), "--out", str(tmp_path), "--sign", str(public))
    _refusal(done, "cannot sign")
    assert (tmp_path / "model.onnx").read_bytes() == b"earlier output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "model.onnx"]

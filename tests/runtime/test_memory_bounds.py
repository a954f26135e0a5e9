"""Issue 31, "Bounded memory": a small crafted pair cannot make ``load`` (or a command) allocate gigabytes.

Every limit refuses before anything is decoded: the levels of one chunk, of one version-1 record, per coded byte
(the header does not count), and in all (2^28 unless ``max_levels`` or ``TOOLCHAIN_MAX_LEVELS`` says otherwise); a
``MemoryError`` anywhere in a load, or in a command, is one line that names the limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime import ToolchainError
from runtime.codecs import CODECS
from runtime.sidecar import (
    DEFAULT_MAX_LEVELS,
    MAX_CHUNK_LEVELS,
    MAX_LEVELS_ENV,
    MAX_V1_LEVELS,
    SidecarError,
    SidecarTensor,
    encode_sidecar,
    parse_sidecar,
)
from tests.runtime.crafted import crafted_pair, crafted_sidecar

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_LEVELS_ENV, raising=False)


def test_a_chunk_over_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(SidecarError, match="levels per chunk: refused before decoding"):
        parse_sidecar(crafted_sidecar((1 << 12, 1 << 12), chunk_levels=2 * MAX_CHUNK_LEVELS))
    assert parse_sidecar(crafted_sidecar((1 << 12, 1 << 12), chunk_levels=MAX_CHUNK_LEVELS)).records[0].count == 1 << 24
    # a chunk_levels beyond the limit is harmless when the tensor is smaller: its one chunk holds the tensor
    assert parse_sidecar(crafted_sidecar((4, 4), chunk_levels=1 << 30)).records[0].chunk_levels == 1 << 30
    with pytest.raises(ValueError, match="chunk_levels"):  # the writer cannot write what a reader refuses
        encode_sidecar([SidecarTensor("w", np.zeros(4, np.int8), 2, np.ones(1), None)], {}, chunk_levels=1 << 21)


def test_a_version_1_record_over_its_limit_is_refused_and_one_at_the_limit_parses() -> None:
    with pytest.raises(SidecarError, match="format-1 chunk exceed the limit .* refused before decoding"):
        parse_sidecar(crafted_sidecar((2, MAX_V1_LEVELS), version=1))
    assert parse_sidecar(crafted_sidecar((1, MAX_V1_LEVELS), version=1)).records[0].count == MAX_V1_LEVELS


def test_padding_the_header_does_not_raise_the_budget() -> None:
    """2^28 levels in one-level chunks of a few bytes each: a 200 KB config once bought the budget for them."""
    data = crafted_sidecar((1 << 14, 1 << 14), chunk_levels=1 << 18, pad=400_000)
    with pytest.raises(SidecarError, match="codes them in only 7,168 bytes"):
        parse_sidecar(data)


def test_many_tiny_chunks_decode_in_linear_time() -> None:
    """Each chunk once rebuilt the list of all the record's chunk spans: 20,000 one-level chunks (a 440 kB sidecar)
    took 317 s to decode, now well under a second."""
    import time

    index = parse_sidecar(crafted_sidecar((200, 100), chunk_levels=1))
    start = time.perf_counter()
    (weight,) = index.decode_all(1)
    assert weight.shape == (200, 100) and not weight.any()
    assert time.perf_counter() - start < 15


@pytest.fixture(scope="module")
def over_the_default() -> bytes:
    """2^28 + 2^18 levels in dense chunks (~1 MB): within the per-byte budget, over the default limit."""
    return crafted_sidecar((DEFAULT_MAX_LEVELS // (1 << 14) + 16, 1 << 14), chunk_levels=1 << 18, dense=True)


def test_the_total_over_the_default_is_refused_and_the_overrides_raise_it(
    over_the_default: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = DEFAULT_MAX_LEVELS + (1 << 18)
    with pytest.raises(SidecarError, match=f"over the limit of {DEFAULT_MAX_LEVELS:,}.*{MAX_LEVELS_ENV}=N") as e:
        parse_sidecar(over_the_default)
    assert "\n" not in str(e.value)
    assert parse_sidecar(over_the_default, max_levels=levels).records[0].count == levels
    monkeypatch.setenv(MAX_LEVELS_ENV, f"{levels:_}")
    assert parse_sidecar(over_the_default).records[0].count == levels
    with pytest.raises(SidecarError, match="over the limit"):  # the keyword wins over the environment
        parse_sidecar(over_the_default, max_levels=levels - 1)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1e9"])
def test_a_bad_environment_limit_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_LEVELS_ENV, value)
    with pytest.raises(SidecarError, match=f"{MAX_LEVELS_ENV}=.* must be a positive number"):
        parse_sidecar(crafted_sidecar((4, 4)))


def test_load_takes_the_limit_from_its_keyword_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = crafted_pair(tmp_path, (64, 64), chunk_levels=1024)
    assert runtime.load(path).run(np.ones((1, 64), np.float32))[0].shape == (1, 64)
    with pytest.raises(ToolchainError, match="4,096 weight levels .* over the limit of 4,095"):
        runtime.load(path, max_levels=4095)
    monkeypatch.setenv(MAX_LEVELS_ENV, "4095")
    with pytest.raises(ToolchainError, match="over the limit of 4,095"):
        runtime.load(path)
    assert runtime.load(path, max_levels=4096).sidecar is not None


def _raise_memory_error(*_args: object, **_kwargs: object) -> np.ndarray:
    raise MemoryError


@pytest.mark.parametrize("where", ["decoder", "onnxruntime"])
def test_running_out_of_memory_in_a_load_is_one_line_naming_the_model_and_the_limit(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    path = crafted_pair(tmp_path, (64, 64), chunk_levels=1024)
    if where == "decoder":
        monkeypatch.setitem(CODECS, "ans", replace(CODECS["ans"], decode=_raise_memory_error))
    else:  # pybind11 turns onnxruntime's std::bad_alloc into MemoryError
        monkeypatch.setattr(ort, "InferenceSession", _raise_memory_error)
    with pytest.raises(ToolchainError) as e:
        runtime.load(path)
    message = str(e.value)
    assert message.startswith(f"out of memory loading {path}") and MAX_LEVELS_ENV in message and "\n" not in message


def test_the_cli_prints_one_line_for_a_refused_pair_and_for_a_memory_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runtime.accounting
    from toolchain.cli.main import main

    path = crafted_pair(tmp_path, (64, 64), chunk_levels=1024)
    monkeypatch.setenv(MAX_LEVELS_ENV, "1000")
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the sidecar declares 4,096") and f"{MAX_LEVELS_ENV}=N" in err
    assert err.count("\n") == 1, err
    monkeypatch.delenv(MAX_LEVELS_ENV)
    ans = CODECS["ans"]
    monkeypatch.setitem(CODECS, "ans", replace(ans, decode=_raise_memory_error))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory loading") and err.count("\n") == 1, err
    monkeypatch.setitem(CODECS, "ans", ans)  # a MemoryError outside the load (the accounting): main's own line
    monkeypatch.setattr(runtime.accounting, "account", _raise_memory_error)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory running `inspect`") and err.count("\n") == 1, err


def test_inspect_accounts_from_the_containers_as_from_the_levels(tmp_path: Path) -> None:
    """The accounting counts the containers' bytes a slice at a time (no whole-tensor int64 copy): the same
    sparsity and entropy as the levels give, for int8 and for uint8 containers."""
    from runtime.accounting import account, entropy_bits

    for uint8 in (False, True):
        path = crafted_pair(tmp_path / str(uint8), (300, 64), chunk_levels=4096, dense=True, uint8=uint8)
        for containers in ("int8", "uint8"):
            model = runtime.load(path, containers=containers)
            (t,) = account(model).tensors
            levels = model.levels()["w"]
            assert t.sparsity == np.count_nonzero(levels == 0) / levels.size
            assert t.entropy == pytest.approx(entropy_bits(levels), abs=1e-12)


_CHILD = """
import json, re, sys
import onnx, onnxruntime
import runtime
from runtime import ToolchainError

def peak_kib():  # VmHWM, this process's own peak: ru_maxrss also holds the parent's RSS at the fork
    return int(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))

base = peak_kib()
try:
    runtime.load(sys.argv[1])
    outcome = "loaded"
except ToolchainError as e:
    outcome = str(e)
print(json.dumps([outcome, base, peak_kib()]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_a_one_megabyte_pair_declaring_a_gigabyte_stays_small_in_a_fresh_process(tmp_path: Path) -> None:
    """Before the limits, this pair (one uint8 tensor of 2^30 levels, a config padded to 1 MB) peaked at 5.2 GiB in
    ``runtime.load``: its one-level chunks decode to anything, and the switched container embedded it twice more."""
    path = crafted_pair(tmp_path, (1 << 15, 1 << 15), chunk_levels=1 << 18, pad=1 << 20, uint8=True)
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) < 4 << 20
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, cwd=ROOT)
    outcome, base, peak = json.loads(result.stdout)
    assert "refused before decoding" in outcome
    assert peak - base < 32 << 10, (base, peak)  # KiB: nothing was decoded

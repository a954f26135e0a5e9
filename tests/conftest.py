"""Shared fixtures: fixed seeds, a subprocess runner for the CLI, in-process help texts, tiny generated data sets;
and the lanes: every ``distributed`` test is also ``heavy`` (left out of the default run, see pyproject.toml)."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def warm(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Give batch norm realistic running statistics (a random-init model in eval mode collapses to ~0)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def pytest_configure(config: pytest.Config) -> None:
    """The default lane runs two xdist workers with one torch thread each: two workers of two threads on two cores
    made it 2.3× slower. The heavy lane keeps torch's default, because three of its tests sit on a threshold that
    torch's summation order moves (MobileNetV3-Large and ShuffleNetV1 g3 agreement at 99.85/99.53 % against 99.9,
    and the step-drift test at 0.98 against 0.95, all with one thread; they pass with two)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and "not heavy" in (config.option.markexpr or ""):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("distributed"):
            item.add_marker(pytest.mark.heavy)


def sidecar_in(folder: Path, stem: str = "model") -> Path:
    """The one sidecar of the pair exported to ``folder`` (its name carries a digest of its content)."""
    found = sorted(folder.glob(f"{stem}.compressed.*.qsc"))
    assert len(found) == 1, f"{folder}: expected one sidecar, found {[p.name for p in found]}"
    return found[0]


def help_text(*command: str) -> str:
    """``toolchain COMMAND --help`` in this process (:func:`run_main`): the help text."""
    done = run_main(*command, "--help")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m toolchain ARGS`` and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "toolchain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd or ROOT,
    )


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """``toolchain ARGS`` through the console script's ``main`` in this process, saving the 3–5 s interpreter and
    torch start of :func:`run_cli`: exit status, stdout and stderr as a subprocess would give them."""
    from toolchain.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["toolchain", *args]  # the report records the command line
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse: --help, usage errors
                code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(["toolchain", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """The command line in this process (:func:`run_main`); tests of the entry point itself use :func:`run_cli`."""
    return run_main


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def assert_resume_after_kill_matches(cmd: list[str], out_root: Path) -> tuple[dict, dict]:
    """Run ``cmd --out-dir ref`` to the end; run it again into ``cut``, SIGKILL it as soon as it has written its
    first checkpoint, resume with ``--resume``; both runs must end bit-identical. Returns both final checkpoints."""
    import signal
    import time

    from toolchain.training import load_checkpoint

    ref, cut = out_root / "ref", out_root / "cut"
    subprocess.run([*cmd, "--out-dir", str(ref)], check=True, env=subprocess_env(), capture_output=True, timeout=600)
    proc = subprocess.Popen(
        [*cmd, "--out-dir", str(cut)], env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (cut / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    a = load_checkpoint(ref / "last.pt")
    killed_at = load_checkpoint(cut / "last.pt")["step"]
    assert 0 <= killed_at < a["step"]
    subprocess.run(
        [*cmd, "--out-dir", str(cut), "--resume"], check=True, env=subprocess_env(), capture_output=True, timeout=600
    )
    b = load_checkpoint(cut / "last.pt")
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    return a, b


def toolchain_cmd(*args: str) -> list[str]:
    """``python -m toolchain ARGS`` as an argument list."""
    return [sys.executable, "-m", "toolchain", *args]


def torchrun_two_processes_in_step(out: Path, *args: str) -> list[dict]:
    """Run ``torchrun --nproc_per_node=2 -m toolchain ARGS --out-dir OUT`` on CPU; assert that it succeeds and that at
    every epoch both processes report identical parameter digests. Returns the epoch records."""
    import json

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "toolchain",
        *args,
        "--device",
        "cpu",
        "--no-progress",
        "--out-dir",
        str(out),
    ]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "param_digests" in x]
    assert evals and all(len(e["param_digests"]) == 2 and e["ranks_in_step"] is True for e in evals)
    return evals


@pytest.fixture(scope="session")
def float_ckpt(tmp_path_factory) -> Path:
    """LeNet-5 trained 8 epochs on digits (the starting point of the quant-aware training tests)."""
    from toolchain.config import TrainConfig
    from toolchain.training import train

    out = tmp_path_factory.mktemp("float")
    train(TrainConfig(out_dir=str(out), epochs=8), progress=False)
    return out / "last.pt"


@pytest.fixture(scope="session")
def lenet_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """LeNet-5 on digits: float (2 epochs on a subset), W4A8 and W2A8 post-training quantized, each exported."""
    from toolchain.config import TrainConfig
    from toolchain.quant.qat import QATConfig, QATRecipe
    from toolchain.training import train

    root = tmp_path_factory.mktemp("lenet")
    train(TrainConfig(out_dir=str(root / "float"), epochs=2, subset=512), progress=False)
    paths = {"float": root / "float" / "last.pt"}
    for name, wbits in (("w4", 4), ("w2", 2)):
        config = QATConfig(float_checkpoint=str(paths["float"]), out_dir=str(root / name), epochs=0, wbits=wbits)
        train(config, recipe=QATRecipe(config), progress=False)
        paths[name] = root / name / "last.pt"
        done = run_main("export", str(paths[name]), "--out", str(root / name / "export"))
        assert done.returncode == 0, done.stderr
        paths[f"{name}_onnx"] = root / name / "export" / "model.compressed.onnx"
    return paths

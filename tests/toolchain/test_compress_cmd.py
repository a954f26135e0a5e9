"""`toolchain compress` on the embedded digits data: every phase, zeros kept to the sidecar, accounting, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import runtime
from exporters.folding import container_multiplier
from runtime.accounting import account, entropy_bits
from runtime.levels import from_container
from tests.conftest import help_text, sidecar_in

ARGS = [
    "compress",
    "--float-epochs", "3",
    "--prune-epochs", "1",
    "--epochs", "1",
    "--ratio", "0.6",
    "--lam-p", "3",
    "--wbits", "4",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def compressed(tmp_path_factory) -> tuple[Path, str]:
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("compress") / "run"
    done = run_cli(*ARGS, "--out-dir", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_compress_runs_every_phase_and_prints_the_summary(compressed) -> None:
    out, stdout = compressed
    for phase in ("float", "prune", "qat", "export"):
        assert (out / phase / "result.json").is_file()
    assert "| onnxruntime |" in stdout and "| hard prune |" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["export"]["float_kernels"] == {} and summary["export"]["verify_failures"] == []
    assert summary["prune"]["prunable_sparsity"] >= 0.6
    assert (out / "prune" / "pruning.png").stat().st_size > 10_000


def test_pruned_weights_reach_the_sidecar_as_zero_levels(compressed) -> None:
    """Pruned in the float model, kept at 0 through QAT by the masks, exported as level 0."""
    out, _ = compressed
    model = runtime.load(out / "export" / "model.compressed.onnx")
    weights = model.levels()
    protected = {"features.0.weight", "classifier.4.weight"}  # first and last layers: protected by default
    for name, levels in weights.items():
        zeros = float(np.mean(levels == 0))
        assert zeros >= 0.6 if name not in protected else zeros < 0.2, (name, zeros)


def test_accounting_adds_up(compressed) -> None:
    out, _ = compressed
    acc = account(out / "export" / "model.compressed.onnx")
    sidecar = sidecar_in(out / "export").stat().st_size
    assert acc.sidecar_bytes == sidecar
    assert acc.total_ratio == pytest.approx((acc.weight_params + acc.bias_params) * 4 / (sidecar + 4 * acc.bias_params))
    assert acc.weights_ratio == pytest.approx(acc.weight_params * 4 / (acc.coded_bytes + acc.step_bytes))
    assert acc.weight_params == 150 + 2400 + 7680 + 10080 + 840  # LeNet-5 on 8×8 digits
    assert acc.coded_bytes < acc.weight_params // 2  # 4-bit, 60 % zeros: well under 4 bits per weight
    model = runtime.load(out / "export" / "model.compressed.onnx")
    for t in acc.tensors:
        container = model.weights()[t.name]  # int8, or uint8 where this host's u8×s8 kernels saturate
        levels = from_container(container, container_multiplier(t.bits), 128 if container.dtype == np.uint8 else 0)
        assert np.array_equal(levels, model.levels()[t.name])
        assert t.entropy == pytest.approx(entropy_bits(levels))
        assert t.params == levels.size and t.coded_bytes > 0


def test_entropy_bits() -> None:
    assert entropy_bits(np.zeros(10, np.int8)) == 0.0
    assert entropy_bits(np.array([1, -1, 1, -1], np.int8)) == pytest.approx(1.0)
    assert entropy_bits(np.arange(-2, 2, dtype=np.int8)) == pytest.approx(2.0)


def test_a_second_run_reuses_finished_phases_and_a_changed_config_is_refused(cli, compressed) -> None:
    out, _ = compressed
    again = cli(*ARGS, "--out-dir", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before") == 4
    sidecar = sidecar_in(out / "export").read_bytes()
    changed = cli(*[a if a != "0.6" else "0.7" for a in ARGS], "--out-dir", str(out))
    assert changed.returncode == 2 and "different configuration" in changed.stderr
    assert sidecar_in(out / "export").read_bytes() == sidecar


def test_compress_help_lists_every_phase_option() -> None:
    text = help_text("compress")
    for flag in ("--float-checkpoint", "--train-float", "--method", "--ratio", "--protect", "--lam-p", "--wbits",
                 "--lam", "--prune-epochs", "--codecs"):  # fmt: skip
        assert flag in text


def test_the_report_links_readable_plots_and_holds_the_tables(compressed) -> None:
    import re

    from PIL import Image

    out, stdout = compressed
    report = (out / "report.md").read_text()
    assert f"report: {out / 'report.md'}" in stdout
    for heading in ("## Summary", "## Per-layer compression", "## Training curves", "## Configuration"):
        assert heading in report
    assert "| onnxruntime |" in report and "| features.3.weight |" in report and "toolchain compress" in report
    dynamics = report.split("## What the MSQE regularizer did")[1].split("##")[0]
    rows = [r.split("|") for r in dynamics.splitlines() if r.startswith("| start") or r.startswith("| 1 ")]
    assert [r[1].strip() for r in rows] == ["start", "1"]  # the calibrated start, then the one QAT epoch
    assert all(r[6].strip().endswith("%") for r in rows)  # the near-level share, measured
    assert "Does this buy accuracy?" in dynamics and "No benefit" in dynamics  # the measured answer beside it
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"layers.png", "prune/pruning.png", "qat/convergence.png", "qat/weights.png"} <= set(images)
    for rel in images:
        with Image.open(out / rel) as im:
            assert im.format == "PNG" and min(im.size) >= 300, rel


@pytest.mark.distributed
def test_compress_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    """Every training phase runs on both processes in step; the main process alone exports and reports."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "toolchain",
           *ARGS, "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| onnxruntime |") == 1  # one report, from the main process
    for phase in ("float", "prune", "qat"):
        evals = [
            json.loads(x) for x in (out / phase / "metrics.jsonl").read_text().splitlines() if "param_digests" in x
        ]
        assert evals and all(len(e["param_digests"]) == 2 and e["ranks_in_step"] for e in evals), phase
    summary = json.loads((out / "summary.json").read_text())
    assert summary["qat"]["world"] == 2 and summary["export"]["float_kernels"] == {}


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["vit_tiny", "mobilenet_v3_tiny", "efficientnet_tiny"])
def test_compress_prunes_and_regularizes_the_modern_networks(tmp_path: Path, model: str) -> None:
    """A transformer's Linear layers and MobileNetV3's/EfficientNet's depthwise convolutions are pruned by partial
    L2, trained under the learnable MSQE regularizer and carried by the sidecar like any other weight."""
    from tests.conftest import run_cli

    out = tmp_path / "run"
    done = run_cli(*ARGS, "--model", model, "--ratio", "0.5", "--protect", "first,last", "--json",
                   "--out-dir", str(out), timeout=900)  # fmt: skip
    results = json.loads(done.stdout)
    # These toy networks reach 50-60 % on digits in 3 float epochs, where a few images sit on a decision boundary
    # that float noise moves (one of 359 images is 0.28 point): an accuracy bar may fail, and compress then exits
    # 1. What must hold is that the export computes what the model does, layer by layer.
    assert done.returncode == 0 or all("drops" in f or "below the float" in f for f in results["failures"]), (
        done.stderr[-3000:]
    )
    assert results["export"]["float_kernels"] == {}
    assert results["qat"]["near_level_share"] > 0  # the regularizer's measure, reported for the trained model
    weights = runtime.load(out / "export" / "model.compressed.onnx").levels()
    inner = {n: float(np.mean(levels == 0)) for n, levels in list(weights.items())[1:-1]}
    assert min(inner.values()) >= 0.45, inner  # every unprotected layer pruned to about half
    depthwise = [n for n in inner if weights[n].ndim == 4 and weights[n].shape[1] == 1 and weights[n].shape[2] > 1]
    assert (model == "vit_tiny") == (not depthwise), depthwise  # the CNNs' depthwise layers are among the pruned


def test_nothing_to_prune_trains_nothing_and_an_export_far_below_float_fails(cli, compressed, tmp_path: Path) -> None:
    """A pretrained model at --ratio 0: the prune phase must not run its default epochs of labelled training (on a
    pretrained ImageNet network they took top-1 from 82 to 19 %); an export that lands far below its float model
    is a failure, not a summary line."""
    out, _ = compressed
    args = ["compress", "--float-checkpoint", str(out / "float" / "last.pt"), "--ratio", "0", "--prune-epochs", "3",
            "--epochs", "0", "--no-progress", "--json"]  # fmt: skip
    kept = cli(*args, "--wbits", "8", "--out-dir", str(tmp_path / "w8"))
    assert kept.returncode == 0, kept.stderr[-2000:]
    results = json.loads(kept.stdout)
    assert results["prune"]["steps"] == 0 and results["failures"] == []
    assert "nothing to prune" in kept.stderr
    assert results["prune"]["top1"] == pytest.approx(results["float"]["top1"])  # the float weights, untouched
    wrecked = cli(*args, "--wbits", "2", "--max-float-drop", "0", "--out-dir", str(tmp_path / "w2"))
    assert wrecked.returncode == 1
    assert "FAILED: the export's top1 is" in wrecked.stderr and "--max-float-drop 0" in wrecked.stderr


def test_the_pretrained_recipe_prunes_in_one_shot_when_asked_to() -> None:
    """--ratio on a pretrained network: magnitude pruning with one global threshold and no pruning-phase training (the
    phase's default rate, 0.01, left ImageNet MobileNetV2 at 0 % after 16 steps); without --ratio nothing is pruned."""
    from toolchain.compress import CompressConfig
    from toolchain.recipes import apply_recipe

    said: list[str] = []
    asked = apply_recipe(CompressConfig(recipe="pretrained", wbits=4, ratio=0.3), {"recipe", "wbits", "ratio"},
                         said.append)  # fmt: skip
    assert (asked.ratio, asked.scope, asked.prune_epochs, asked.prune_lr) == (0.3, "global", 0, 3e-4)
    assert any("one-shot magnitude pruning" in line for line in said)
    default = CompressConfig(recipe="pretrained", wbits=4)
    left = apply_recipe(default, {"recipe", "wbits"}, lambda _: None)
    assert (left.ratio, left.scope, left.prune_epochs) == (0.0, default.scope, 0)
    mine = apply_recipe(CompressConfig(recipe="pretrained", ratio=0.3, scope="layer", prune_epochs=2),
                        {"recipe", "ratio", "scope", "prune_epochs"}, lambda _: None)  # fmt: skip
    assert (mine.scope, mine.prune_epochs, mine.prune_lr) == ("layer", 2, 3e-4)  # the user's choices win


def test_the_pretrained_recipe_fills_what_the_user_left_unset(cli, compressed, tmp_path: Path) -> None:
    from toolchain.compress import CompressConfig

    out, _ = compressed
    done = cli("compress", "--recipe", "pretrained", "--float-checkpoint", str(out / "float" / "last.pt"), "--wbits",
               "4", "--calib-batches", "3", "--no-progress", "--json", "--out-dir", str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recipe pretrained: ptq = 'gptq,bias-correction'" in done.stderr
    assert "calib-batches" not in done.stderr  # named by the user: not the recipe's
    config = CompressConfig.load(tmp_path / "r" / "config.toml")
    assert (config.recipe, config.ptq, config.calib_batches, config.ratio, config.epochs, config.depthwise_wbits) == (
        "pretrained",
        "gptq,bias-correction",
        3,
        0.0,
        0,
        8,
    )
    results = json.loads(done.stdout)
    assert set(results["qat"]["ptq_seconds"]) == {"gptq", "bias-correction"} and results["prune"]["steps"] == 0
    assert results["failures"] == []

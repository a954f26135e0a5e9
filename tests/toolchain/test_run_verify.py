"""`toolchain verify` and `toolchain run` on exported models: reports, thresholds, localisation, images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_verify_reports_accuracy_and_agreement(cli, lenet_checkpoints) -> None:
    c = lenet_checkpoints
    done = cli("verify", str(c["w4_onnx"]), "--qat", str(c["w4"]), "--float", str(c["float"]), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["data"] == "digits" and report["providers"] == ["CPUExecutionProvider"]
    assert set(report["metrics"]) == {"onnxruntime", "qat", "float"}
    assert abs(report["metrics"]["onnxruntime"]["top1"] - report["metrics"]["qat"]["top1"]) <= 0.1
    assert report["metrics"]["onnxruntime"]["n"] == report["metrics"]["qat"]["n"] > 300
    assert report["agreement"]["export_reference"]["within_one"] >= 0.999
    assert report["layers"] and all(row["within_one"] >= 0.999 for row in report["layers"])
    assert 0 < report["noise_floor"]["within_one"] <= 1
    table = cli("verify", str(c["w4_onnx"])).stdout  # data set from the model's metadata, no checkpoints
    assert "onnxruntime" in table and table.strip().endswith("OK")


def test_verify_fails_and_localises_when_the_model_does_not_match(cli, lenet_checkpoints) -> None:
    """The W2 export checked against the W4 checkpoint: the layer-by-layer check must fail at the first layer whose
    weights differ (the 8-bit first layer and the input quantizer agree), naming it."""
    c = lenet_checkpoints
    done = cli("verify", str(c["w2_onnx"]), "--qat", str(c["w4"]), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    failing = [row for row in report["layers"] if row["within_one"] < 0.999]
    assert not report["ok"] and failing and failing[0]["quantizer"] in report["failures"][0]
    first = report["layers"].index(failing[0])
    assert first >= 2 and all(row["within_one"] >= 0.999 for row in report["layers"][:first])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing.onnx"], "does not exist"), (["W4", "--min-within-one", "2"], "--min-within-one")],
)
def test_verify_bad_input_is_a_clean_error(cli, lenet_checkpoints, args, message) -> None:
    args = [str(lenet_checkpoints["w4_onnx"]) if a == "W4" else a for a in args]
    done = cli("verify", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def _digit_images(folder: Path) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir()
    paths = []
    for i in range(3):
        path = folder / f"digit{i}_{digits.target[i]}.png"
        Image.fromarray(np.clip(digits.images[i] * 16, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_run_classifies_image_files_and_folders(cli, lenet_checkpoints, tmp_path: Path) -> None:
    paths = _digit_images(tmp_path / "imgs")
    done = cli("run", str(lenet_checkpoints["w4_onnx"]), str(tmp_path / "imgs"), "--top", "3", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(p) for p in paths]
    assert all(len(r["top"]) == 3 and abs(sum(t["p"] for t in r["top"])) <= 1.0 + 1e-6 for r in rows)
    assert {t["name"] for r in rows for t in r["top"]} <= {str(i) for i in range(10)}


def test_run_refuses_missing_and_unreadable_inputs(cli, lenet_checkpoints, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    for arg, message in ((tmp_path / "nope.png", "does not exist"), (tmp_path / "bad.png", "cannot read image")):
        done = cli("run", str(lenet_checkpoints["w4_onnx"]), str(arg))
        assert done.returncode == 2 and message in done.stderr


@pytest.mark.heavy
def test_run_upscales_with_a_super_resolution_export(cli, tmp_path: Path) -> None:
    from models.quant.prepare import act_quantizers
    from toolchain.config import TrainConfig
    from toolchain.quant.qat import QATConfig, QATRecipe
    from toolchain.restore import restore
    from toolchain.training import train

    common = {"model": "espcn_tiny", "data": "sr-photos", "data_args": {"scale": 2, "patch": 24}, "subset": 2}
    train(TrainConfig(out_dir=str(tmp_path / "f"), epochs=1, batch_size=8, **common), progress=False)
    qat = QATConfig(float_checkpoint=str(tmp_path / "f" / "last.pt"), out_dir=str(tmp_path / "q"), epochs=0, **common)
    train(qat, recipe=QATRecipe(qat), progress=False)
    quants = act_quantizers(restore(tmp_path / "q" / "last.pt").model)
    assert not quants[0][1].signed and not quants[-1][1].signed  # io_sign "auto": images in [0, 1] in and out
    assert cli("export", str(tmp_path / "q" / "last.pt"), "--out", str(tmp_path / "e")).returncode == 0
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    done = cli(
        "run", str(tmp_path / "e" / "model.compressed.onnx"), str(tmp_path / "in.png"), "--out", str(tmp_path / "o")
    )
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "o" / "in_x2.png") as out:
        assert out.size == (60, 40) and out.mode == "RGB"
    model = tmp_path / "e" / "model.compressed.onnx"
    done = cli("verify", str(model), "--qat", str(tmp_path / "q" / "last.pt"), "--json")
    report = json.loads(done.stdout)
    assert report["task"] == "super_resolution" and {"psnr", "ssim"} <= set(report["metrics"]["onnxruntime"])
    assert report["agreement"]["export_reference"]["within_one"] >= 0.999


def test_inspect_lists_sidecar_tensors_and_integer_kernels(cli, lenet_checkpoints) -> None:
    done = cli("inspect", str(lenet_checkpoints["w2_onnx"]), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    tensors = summary["compression"]["tensors"]
    assert summary["format"] == "qdq-sidecar" and len(tensors) == 5
    inner = [t for t in tensors if t["bits"] == 2]
    assert inner and all(t["bits_per_weight"] < 1.7 for t in inner)  # ternary levels: about log2(3) bits each
    assert all(t["vs_entropy"] < 1.1 for t in inner)
    assert summary["compression"]["total_ratio"] > 4  # 2-bit inner layers, 8-bit first and last
    table = cli("inspect", str(lenet_checkpoints["w2_onnx"])).stdout
    assert "compression: total" in table and "weights only" in table
    assert summary["kernels"]["float"] == {} and summary["kernels"]["integer"]["QLinearConv"] == 2


def test_verify_help_states_the_thresholds_it_applies() -> None:
    """The CLI leaves the defaults to ``Thresholds`` (one home); its help must quote the same numbers."""
    from tests.conftest import help_text
    from toolchain.verify import Thresholds

    text = " ".join(help_text("verify").split())
    t = Thresholds()
    assert f"(default: {t.max_drop:g})" in text and f"(default: {t.min_within_one:g})" in text

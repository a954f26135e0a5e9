"""The `toolchain` console script: help texts, the main job, eval, and clean errors with non-zero exits."""

import json
from pathlib import Path

import pytest

from tests.conftest import help_text, run_cli, sidecar_in
from toolchain.cli.main import COMMANDS, build_parser, main


def test_every_subcommand_explains_itself() -> None:
    top = run_cli("--help")  # the console entry point itself, in its own interpreter, once
    assert top.returncode == 0
    for name in COMMANDS:
        assert name in top.stdout
        assert "usage: toolchain " + name in help_text(name)


def test_parser_rejects_unknown_command() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["frobnicate"])


@pytest.mark.heavy
def test_demo_runs_the_main_job(cli, tmp_path: Path) -> None:
    done = cli("demo", "--out-dir", str(tmp_path), "--float-epochs", "8", "--prune-epochs", "1", "--epochs", "1",
               "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "top-1" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["float", "hard prune", "QAT", "onnxruntime"]
    assert all(float(r.split("|")[2]) > 80 for r in rows)  # top-1 of each phase
    assert float(rows[-1].split("|")[6].strip(" ×")) > 4  # total compression ratio
    assert "ms (" in rows[-1]  # latency against float
    for path in ("float/last.pt", "prune/pruned.pt", "qat/last.pt", "qat/convergence.png", "prune/pruning.png",
                 "report.md", "layers.png"):  # fmt: skip
        assert (tmp_path / path).is_file(), path
    assert sidecar_in(tmp_path / "export").is_file()


def test_train_then_eval_json(cli, tmp_path: Path) -> None:
    done = cli("train", "--epochs", "8", "--no-progress", "--json", "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    trained = json.loads(done.stdout.strip().splitlines()[-1])
    evald = cli("eval", str(tmp_path / "last.pt"), "--json")
    assert evald.returncode == 0, evald.stderr
    result = json.loads(evald.stdout.strip().splitlines()[-1])
    assert result["top1"] == pytest.approx(trained["top1"]) and result["top1"] > 90
    assert result["n"] == 359

    # The same weights as a plain state dict, loaded into a named model: the same accuracy.
    import torch

    from toolchain.training import load_checkpoint

    torch.save(load_checkpoint(tmp_path / "last.pt")["model"], tmp_path / "plain.pth")
    done = cli("eval", "--model", "lenet5", "--weights", str(tmp_path / "plain.pth"), "--data", "digits", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["top1"] == pytest.approx(result["top1"])
    wrong = cli("eval", "--model", "mobilenet_v2_tiny", "--weights", str(tmp_path / "plain.pth"), "--data", "digits")
    assert wrong.returncode == 2 and "do not fit the model" in wrong.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("eval", "missing.pt"), "does not exist"),
        (("train", "--data", "fashion-mnist", "--data-dir", "/nonexistent"), "apt-get install dataset-fashion-mnist"),
        (("train", "--model", "nosuchnet"), "unknown model"),
        (("train", "--model", "espcn_tiny"), "super_resolution model"),
        (("train", "--epochs", "0"), "epochs must be"),
        (("eval", "--model", "mobilenet_v2"), "--model and --weights"),
    ],
)
def test_bad_input_is_a_clear_error(cli, args, message, tmp_path: Path) -> None:
    done = cli(*args, "--out-dir", str(tmp_path)) if args[0] == "train" else cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_list_commands(capsys: pytest.CaptureFixture[str]) -> None:
    def listed(*args: str) -> str:
        assert main(list(args)) == 0
        return capsys.readouterr().out

    assert "mobilenet_v2_small" in listed("models")
    assert "shufflenet_v2_tiny" in listed("models", "shufflenet*", "--tag", "tiny")
    assert "fashion-mnist" in listed("data")


def test_readme_cli_reference_matches_the_parser() -> None:
    import re

    from tests.conftest import ROOT
    from toolchain.cli.main import COMMANDS

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cli-reference -->(.*?)<!-- /cli-reference -->", readme, re.S)
    assert block, "README lost its CLI reference"
    rows = dict(re.findall(r"^\| `toolchain (\S+)` \| (.*) \|$", block.group(1), re.M))
    assert rows == {name: command.HELP for name, command in COMMANDS.items()}

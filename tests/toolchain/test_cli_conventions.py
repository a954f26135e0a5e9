"""One meaning per flag name across the `toolchain` commands, older spellings kept, and logs without progress-bar
redraws."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.session import providers_for
from tests.conftest import help_text, run_cli
from toolchain.cli.main import COMMANDS, build_parser


def _options() -> dict[str, dict[str, object]]:
    """command -> {primary flag: argparse action}."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {
        name: {a.option_strings[0]: a for a in sp._actions if a.option_strings and a.dest != "help"}
        for name, sp in sub.choices.items()
    }


def test_a_shared_flag_has_one_destination_and_one_set_of_choices() -> None:
    seen: dict[str, tuple[str, object]] = {}
    for command, options in _options().items():
        for flag, action in options.items():
            choices = tuple(action.choices) if action.choices else None
            if flag in seen:
                assert seen[flag] == (action.dest, choices), f"{command} {flag}"
            seen[flag] = (action.dest, choices)
    assert seen["--device"][1] == ("auto", "cpu", "cuda")
    for old in ("--out", "--float", "--qat-epochs"):  # older spellings are aliases, never a flag of their own
        assert old not in seen


def test_every_command_that_writes_a_folder_calls_it_out_dir() -> None:
    options = _options()
    for command in ("demo", "train", "qat", "compress", "export", "run"):
        assert "--out-dir" in options[command], command
    assert set(COMMANDS) == set(options)


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["export", "ckpt.pt", "--out", "x"], "out_dir", Path("x")),
        (["run", "m.onnx", "a.png", "--out", "x"], "out_dir", Path("x")),
        (["verify", "m.onnx", "--float", "f.pt"], "float_checkpoint", Path("f.pt")),
        (["verify", "m.onnx", "--float-checkpoint", "f.pt"], "float_checkpoint", Path("f.pt")),
        (["demo", "--qat-epochs", "4"], "epochs", 4),
        (["demo", "--epochs", "2", "--float-epochs", "5"], "epochs", 2),
        (["demo", "--float-epochs", "5"], "float_epochs", 5),
    ],
)
def test_older_spellings_still_parse(argv: list[str], dest: str, value: object) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == value


def test_help_points_at_commands_that_exist() -> None:
    assert "data --list" not in help_text("train") and "`toolchain data`" in help_text("train")


def test_auto_device_runs_where_cuda_is_missing() -> None:
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert providers_for("auto")[0] == ("CUDAExecutionProvider" if has_cuda else "CPUExecutionProvider")


def test_progress_bars_stay_out_of_logs(tmp_path: Path) -> None:
    done = run_cli("train", "--epochs", "1", "--subset", "256", "--out-dir", str(tmp_path))  # stderr is a pipe
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "epoch 1/1" not in done.stderr

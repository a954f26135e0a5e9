"""Bad input on the command line ends in one line ``error: …`` and exit status 2, never a traceback: the inputs
the trustworthy-artefacts issue found crashing, each built here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from toolchain.cli.main import main
from toolchain.config import TrainConfig
from toolchain.training import save_checkpoint


def _files(tmp: Path, lenet: dict[str, Path]) -> dict[str, list[str]]:
    """Each case: the arguments that once crashed."""
    (tmp / "epochs.toml").write_text("epochs = 2.5\n")
    (tmp / "data.toml").write_text("data = 5\n")
    (tmp / "latin1.toml").write_bytes("model = 'lenet5'\n# caf\xe9\n".encode("latin-1"))
    (tmp / "garbage.pt").write_bytes(b"not a checkpoint")
    torch.save({"model": {}, "run": os.system}, tmp / "pickle.pt")
    config = TrainConfig().to_dict()
    save_checkpoint(tmp / "norecipe.pt", model={}, config=config, recipe="mystery")
    save_checkpoint(tmp / "noconfig.pt", model={}, recipe="float")
    state = torch.load(lenet["float"], weights_only=True)["model"]
    half = dict(list(state.items())[: len(state) // 2])
    save_checkpoint(tmp / "half.pt", model=half, config=config, recipe="float")
    del config["epochs"]
    save_checkpoint(tmp / "missingkey.pt", model=state, config={**config, "bogus": 1}, recipe="float")
    out = str(tmp / "out")
    return {
        "codec": ["export", str(lenet["w4"]), "--codecs", "zstd", "--out", out],
        "batch-size": ["eval", str(lenet["float"]), "--batch-size", "0"],
        "epochs-float": ["train", "--config", str(tmp / "epochs.toml"), "--out-dir", out],
        "data-int": ["train", "--config", str(tmp / "data.toml"), "--out-dir", out],
        "not-utf8": ["train", "--config", str(tmp / "latin1.toml"), "--out-dir", out],
        "garbage": ["eval", str(tmp / "garbage.pt")],
        "pickle": ["eval", str(tmp / "pickle.pt")],
        "pickle-weights": ["eval", "--model", "lenet5", "--weights", str(tmp / "pickle.pt")],
        "unknown-recipe": ["eval", str(tmp / "norecipe.pt")],
        "no-config": ["export", str(tmp / "noconfig.pt")],
        "half-state": ["eval", str(tmp / "half.pt")],
        "bad-config-keys": ["eval", str(tmp / "missingkey.pt")],
        "unwritable-out": ["export", str(lenet["w4"]), "--out", "/proc/no/such/place"],
    }


EXPECTED = {
    "codec": "unknown codec(s) ['zstd']",
    "batch-size": "--batch-size must be at least 1",
    "epochs-float": "epochs must be an int, got 2.5",
    "data-int": "data must be a str, got 5",
    "not-utf8": "cannot parse config file",
    "garbage": "is not a readable checkpoint",
    "pickle": "asks to run code (posix.system), which is never loaded",
    "pickle-weights": "is not a readable weights file",
    "unknown-recipe": "unknown recipe 'mystery'",
    "no-config": "lacks its configuration",
    "half-state": "does not fit its model",
    "bad-config-keys": "invalid configuration",
    "unwritable-out": "No such file or directory",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_input_is_one_line_and_exit_2(case: str, lenet_checkpoints, tmp_path: Path, capsys) -> None:
    args = _files(tmp_path, lenet_checkpoints)[case]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert EXPECTED[case] in err and err.count("\n") == 1, err
    assert "weights_only=False" not in err

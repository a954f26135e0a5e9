"""Frozen configs: validation messages, TOML/JSON round trip, CLI option generation."""

import argparse
import dataclasses
from pathlib import Path

import pytest

from toolchain.config import ConfigError, TrainConfig, add_config_arguments, config_from_args


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    config = TrainConfig(
        model="mobilenet_v2_small",
        model_args={"width_mult": 0.5},
        data_args={"scale": 3},
        subset=100,
        lr=0.01,
        augment=False,
        data_dir="/x/y z",
    )
    path = config.save(tmp_path / f"c{suffix}")
    assert TrainConfig.load(path) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be ≥ 1"),
        ({"lr": -1.0}, "lr must be a positive"),
        ({"optimizer": "adam"}, "optimizer='adam' is not one of"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"),
        ({"momentum": 1.5}, "momentum"),
    ],
)
def test_validation_messages(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('model = "lenet5"\nepoch = 3\n')
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        TrainConfig.load(path)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="bad.toml"):
        TrainConfig.load(path)


def test_cli_options_override_file(tmp_path: Path) -> None:
    file = TrainConfig(epochs=7, lr=0.2, model_args={"width_mult": 0.5}).save(tmp_path / "c.toml")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    args = parser.parse_args(["--config", str(file), "--epochs", "3", "--no-augment", "--model-args", "dropout=0.1"])
    config = config_from_args(TrainConfig, args)
    assert (config.epochs, config.lr, config.augment) == (3, 0.2, False)
    assert config.model_args == {"width_mult": 0.5, "dropout": 0.1}
    help_text = parser.format_help()
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in help_text

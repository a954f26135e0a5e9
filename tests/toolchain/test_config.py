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


def test_saved_configs_carry_a_version_and_old_ones_still_load(tmp_path: Path) -> None:
    from toolchain.config import CONFIG_VERSION
    from toolchain.quant.qat import QATConfig

    config = QATConfig(wbits=3, lam=0.5)
    saved = config.to_dict()
    assert saved["config_version"] == CONFIG_VERSION and QATConfig.from_dict(saved) == config
    # A checkpoint from before versions and before the fields alpha_start, step_lr and alpha_update: it ran with
    # the defaults of its time (α at balance, moved by the optimizer; task-learned steps), not today's.
    then = config.replace(alpha_start=0.0, alpha_update="optimizer", step_rule="task")
    old = {
        k: v for k, v in then.to_dict().items() if k not in ("config_version", "alpha_start", "step_lr", "alpha_update")
    }
    assert QATConfig.from_dict(old) == then and then.same_as(old) and not config.same_as(old)
    assert not then.replace(lam=0.25).same_as(old)
    assert then.replace(lam=0.25).differences(old) == {"lam": (0.5, 0.25)}


def test_quant_aware_configs_saved_before_version_3_keep_their_regularizer_defaults() -> None:
    from toolchain.quant.qat import QATConfig

    v2 = {"config_version": 2, "wbits": 2, "reg": "msqe", "lam": 10.0}  # a run that left the rest at its defaults
    old = QATConfig.from_dict(v2)
    assert (old.alpha_start, old.alpha_update, old.step_rule, old.steps_by) == (0.0, "optimizer", "task", "task")
    new = QATConfig(wbits=2, lam=10.0)
    assert (new.alpha_below, new.alpha_update, new.steps_by) == (4.6, "rise", "refit")
    assert TrainConfig.from_dict({"config_version": 2, "epochs": 4}).epochs == 4  # other configs: unchanged


def test_a_renamed_field_is_one_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    import toolchain.config as cfg

    def rename(data: dict) -> dict:
        data = dict(data)
        data["epochs"] = data.pop("n_epochs")
        return data

    monkeypatch.setattr(cfg, "CONFIG_VERSION", cfg.CONFIG_VERSION + 1)
    monkeypatch.setitem(cfg.MIGRATIONS, cfg.CONFIG_VERSION - 1, rename)
    old = {"config_version": cfg.CONFIG_VERSION - 1, "n_epochs": 7}
    assert TrainConfig.from_dict(old).epochs == 7


def test_a_config_from_a_newer_toolchain_is_a_clear_error() -> None:
    from toolchain.config import CONFIG_VERSION, ConfigError

    with pytest.raises(ConfigError, match="newer version"):
        TrainConfig.from_dict({"config_version": CONFIG_VERSION + 1})


def test_a_compression_phase_from_an_older_run_is_reused() -> None:
    from toolchain.compress import _phase_dict, _same_phase
    from toolchain.quant.qat import QATConfig

    key = {"qat": QATConfig(), "codecs": "huffman"}
    saved = _phase_dict(key)
    assert _same_phase(saved, key)
    del saved["qat"]["config_version"], saved["qat"]["step_lr"]  # as a run before versions wrote it
    assert _same_phase(saved, key)
    assert not _same_phase({**saved, "codecs": "rans"}, key) and not _same_phase(saved, {"qat": QATConfig(lam=2.0)})

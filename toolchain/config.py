"""Frozen, validated run configurations that round-trip through TOML and JSON and drive the CLI.

Every configuration is a frozen dataclass deriving from :class:`Config`. Each field carries its help text in
``field(metadata={"help": ...})``; the CLI builds its options from those fields (``add_config_arguments``), so
``--help`` documents every option and a new field needs no CLI code. Validation lives in ``__post_init__`` and
raises :class:`ConfigError` with a message that says how to fix the value. A run writes its configuration next to
its outputs (``config.toml``), and ``Config.load`` reads it back exactly.

**Versions.** Saved configurations (files, checkpoints, a compression run's phases) carry ``config_version``.
Reading one first upgrades it step by step through :data:`MIGRATIONS` (a renamed or re-meant field is one entry
there), then fills fields added since with their defaults; a file without a version is version 1, as written
before versions existed. Compare a saved configuration with :meth:`Config.same_as`, never as raw dicts, so that
old runs still resume and reuse their finished phases.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from runtime import ToolchainError, atomic_write_text

__all__ = [
    "CONFIG_VERSION",
    "MIGRATIONS",
    "Config",
    "ConfigError",
    "TrainConfig",
    "add_config_arguments",
    "config_from_args",
    "dumps_toml",
    "given_fields",
    "read_config_file",
]

CONFIG_VERSION = 3
VERSION_KEY = "config_version"


def _defaults_before_v3(data: dict[str, Any]) -> dict[str, Any]:
    """2 → 3 changed the quant-aware defaults (λ 1e-3 → 1, α at balance in the optimizer → rising by its own steps,
    task-learned steps → ``auto``): a quant-aware configuration saved without one of them ran with the old value.
    And 8-bit weights became int8 by default: ``int8_weights`` (False: uint8) became ``uint8_weights``."""
    data = dict(data)
    if "int8_weights" in data:
        data["uint8_weights"] = not data.pop("int8_weights")
    if "reg" not in data:  # not a quant-aware configuration
        return data
    old = {"lam": 1e-3, "alpha_start": 0.0, "alpha_update": "optimizer", "step_rule": "task"}
    return {**old, **data}


# version v → v + 1, applied to the saved dict before it is read. 1 → 2 only added the version: the fields then were
# the fields now (fields added since take their defaults).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda data: data,
    2: _defaults_before_v3,
}


class ConfigError(ToolchainError, ValueError):
    """An invalid configuration value or file."""


def opt(default: Any, help: str, **kw: Any) -> Any:
    """Dataclass field with a CLI help string (and optional ``choices``)."""
    factory = kw.pop("default_factory", None)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def _upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """The saved dict at :data:`CONFIG_VERSION`, without the version key."""
    data = dict(data)
    version = data.pop(VERSION_KEY, 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CONFIG_VERSION:
        raise ConfigError(
            f"config_version {version!r} is not one this toolchain reads (1 … {CONFIG_VERSION}); "
            "was it written by a newer version? Upgrade the toolchain"
        )
    for v in range(version, CONFIG_VERSION):
        data = MIGRATIONS[v](data)
    return data


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: dict/TOML/JSON round trip, overrides and checks shared by every run configuration."""

    def to_dict(self) -> dict[str, Any]:
        return {VERSION_KEY: CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        data = _upgrade(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            hints = [
                f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, names, 1)) else repr(k)
                for k in unknown
            ]
            raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(hints)}")
        types_ = typing.get_type_hints(cls)
        for key, value in data.items():
            _check_type(key, value, types_[key])
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def same_as(self, saved: Mapping[str, Any]) -> bool:
        """Whether a saved configuration (of any version) describes this one."""
        try:
            return type(self).from_dict(saved) == self
        except (ConfigError, TypeError):
            return False

    def differences(self, saved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{field: (saved value, this value)}`` for every field that differs."""
        old = type(self).from_dict(saved)
        return {
            f.name: (getattr(old, f.name), getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(old, f.name) != getattr(self, f.name)
        }

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a ``.toml`` or ``.json`` file; the error names the file and the offending key."""
        p = Path(path)
        data = read_config_file(p)
        try:
            return cls.from_dict(data)
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{p}: {e}") from None

    def save(self, path: str | Path) -> Path:
        """Atomically write the configuration as TOML (or JSON when ``path`` ends in ``.json``)."""
        p = Path(path)
        text = json.dumps(self.to_dict(), indent=2) if p.suffix == ".json" else dumps_toml(self.to_dict())
        return atomic_write_text(p, text)

    # Validation helpers for subclasses' __post_init__.
    def _check(self, ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"{type(self).__name__}: {message}")

    def _check_choice(self, name: str, choices: typing.Iterable[str]) -> None:
        value, options = getattr(self, name), sorted(choices)
        self._check(value in options, f"{name}={value!r} is not one of {options}")


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw mapping of a ``.toml`` or ``.json`` configuration file; the error names the file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse config file {path}: {e}") from None


def dumps_toml(data: Mapping[str, Any]) -> str:
    """Serialise a flat mapping (plus one level of tables) to TOML; ``None`` values are omitted."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"cannot write non-finite float {v} to TOML")
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # JSON string escapes are valid TOML basic strings
        if isinstance(v, list | tuple):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise ConfigError(f"cannot write {type(v).__name__} to TOML")

    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {scalar(v)}")
    for name, table in tables:
        lines += ["", f"[{name}]"] + [f"{k} = {scalar(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _check_type(key: str, value: Any, annotation: Any) -> None:
    """``value`` fits the field's annotation (``int``, ``float``, ``str``, ``bool``, ``dict``, or ``X | None``): a
    file's ``epochs = 2.5`` or ``data = 5`` is a clear error, not a crash deep inside a run."""
    if value is None and annotation is not _base_type(annotation):
        return
    tp = _base_type(annotation)
    tp = typing.get_origin(tp) or tp
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = not isinstance(tp, type) or isinstance(value, tp)
    if not ok:
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"{key} must be {'a' if name[0] not in 'aeiou' else 'an'} {name}, got {value!r}")


def _base_type(tp: Any) -> Any:
    """``int | None`` → ``int``; other annotations unchanged."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def add_config_arguments(parser: argparse.ArgumentParser, cls: type[Config], *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--option`` per configuration field (default ``None`` = keep the config/file value)."""
    parser.add_argument("--config", type=Path, help="TOML or JSON file with defaults for every option below")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = _base_type(hints[f.name])
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        helptext = f"{f.metadata.get('help', '')} (default: {default!r})"
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif typing.get_origin(tp) is dict:
            parser.add_argument(
                flag,
                dest=f.name,
                metavar="KEY=VALUE",
                action="append",
                default=None,
                help=helptext + "; repeat for several; values parsed as TOML",
            )
        else:
            parser.add_argument(
                flag, dest=f.name, type=tp, default=None, choices=f.metadata.get("choices"), help=helptext
            )


def _parse_key_values(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def config_from_args(cls: type[Config], args: argparse.Namespace, **fixed: Any) -> Config:
    """Config file (if ``--config``) → overridden by explicit CLI options → overridden by ``fixed``."""
    base = cls.load(args.config) if getattr(args, "config", None) else cls()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        changes[f.name] = {**getattr(base, f.name), **_parse_key_values(value)} if isinstance(value, list) else value
    return base.replace(**changes, **fixed)


def given_fields(cls: type[Config], args: argparse.Namespace) -> set[str]:
    """The fields that the command line or its ``--config`` file set (the rest hold their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {name for name in names if getattr(args, name, None) is not None}
    if getattr(args, "config", None):
        given |= names & set(read_config_file(Path(args.config)))
    return given


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Float training run: model, data, optimisation schedule, output folder."""

    model: str = opt("lenet5", "registry model name (see `toolchain models`)")
    model_args: dict[str, Any] = opt(
        None, "extra model constructor arguments, e.g. width_mult=0.5", default_factory=dict
    )
    data: str = opt("digits", "data set name (see `toolchain data`)")
    data_dir: str | None = opt(None, "folder holding the data set's files (default: the data set's standard place)")
    data_args: dict[str, Any] = opt(
        None, "extra data-set arguments, e.g. scale=3 for super-resolution", default_factory=dict
    )
    subset: int | None = opt(None, "use only the first N training samples (quick experiments, tests)")
    epochs: int = opt(30, "training epochs")
    batch_size: int = opt(32, "batch size per process")
    optimizer: str = opt("sgd", "optimizer", choices=("sgd", "adamw"))
    lr: float = opt(0.1, "peak learning rate")
    momentum: float = opt(0.9, "SGD momentum (nesterov) / AdamW beta1")
    weight_decay: float = opt(5e-4, "weight decay on weights (never on biases or batch-norm parameters)")
    warmup_epochs: float = opt(0.0, "linear warm-up length in epochs before the cosine decay")
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing")
    distill: float = opt(
        0.0,
        "weight w of distillation from a frozen float teacher: loss = (1−w)·task + w·T²·KL(teacher ‖ student); "
        "1 trains on the teacher's outputs alone and needs no labels",
    )
    temperature: float = opt(1.0, "distillation temperature T (softens both softmaxes)")
    teacher: str | None = opt(
        None, "teacher weights for --distill (state dict or checkpoint of --model); default: --float-checkpoint"
    )
    freeze_bn: bool = opt(
        False, "keep batch-norm running statistics fixed while training (fine-tuning on a few hundred images)"
    )
    augment: bool = opt(True, "training augmentation (random crop + flip for images)")
    seed: int = opt(0, "random seed: same seed, same data order, same result")
    device: str = opt("auto", "compute device", choices=("auto", "cpu", "cuda"))
    amp: bool = opt(False, "bfloat16 autocast on CUDA")
    num_workers: int = opt(0, "data-loading worker processes for folder data sets")
    save_every: int = opt(0, "also checkpoint every N steps (0: end of each epoch only)")
    log_every: int = opt(50, "write a step record to metrics.jsonl every N steps")
    out_dir: str = opt("runs/train", "output folder: config.toml, metrics.jsonl, last.pt")

    @classmethod
    def min_epochs(cls) -> int:
        """Float training needs at least one epoch; post-training quantization allows 0."""
        return 1

    def __post_init__(self) -> None:
        self._check_choice("optimizer", ("sgd", "adamw"))
        self._check_choice("device", ("auto", "cpu", "cuda"))
        min_epochs = self.min_epochs()
        self._check(self.epochs >= min_epochs, f"epochs must be ≥ {min_epochs}, got {self.epochs}")
        self._check(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        self._check(self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}")
        self._check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        self._check(self.weight_decay >= 0, f"weight_decay must be ≥ 0, got {self.weight_decay}")
        w = self.warmup_epochs
        # epochs = 0 trains nothing (post-training quantization; a compress phase that is skipped): no warm-up to fit
        self._check(w >= 0 and (w == 0 or w < self.epochs or self.epochs == 0), "warmup_epochs must be in [0, epochs)")
        self._check(0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)")
        self._check(0 <= self.distill <= 1, f"distill must be in [0, 1], got {self.distill}")
        t = self.temperature
        self._check(t > 0 and math.isfinite(t), f"temperature must be a positive number, got {t}")
        self._check(self.subset is None or self.subset >= 1, "subset must be a positive sample count")
        self._check(self.save_every >= 0 and self.log_every >= 1, "save_every must be ≥ 0 and log_every ≥ 1")
        self._check(self.num_workers >= 0, "num_workers must be ≥ 0")
        self._check(isinstance(self.model_args, dict), "model_args must be a table of constructor arguments")
        self._check(isinstance(self.data_args, dict), "data_args must be a table of data-set arguments")

"""The toolchain: configuration, data, training, quantization wiring and the ``toolchain`` command line.

Library first: every CLI subcommand is a thin wrapper over a function that takes objects
(:func:`toolchain.training.train`, :func:`toolchain.training.evaluate`, ...).
"""

from .config import Config, ConfigError, TrainConfig

__all__ = ["Config", "ConfigError", "TrainConfig"]

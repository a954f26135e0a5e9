"""Command-line interface (``toolchain``); see :mod:`toolchain.cli.main`."""

from .main import main

__all__ = ["main"]

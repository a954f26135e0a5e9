"""Fixtures of the runtime tests: one exported LeNet-5 (standalone + sidecar pair) per module, and private copies of
it that a test may damage. ``export_lenet5`` and ``private_copy`` build them, for fixtures of other exports (signed
ones: tests/runtime/test_signing.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from exporters import export_model
from tests.exporters.helpers import prepared, sample
from tests.runtime.helpers import STEM


def export_lenet5(folder: Path, **options: Any) -> Path:
    """LeNet-5 at ``prepared``'s W4A8, exported into ``folder`` as ``STEM`` with config ``{"k": 1}`` and
    ``export_model``'s ``options`` (``sign=``, ...)."""
    export_model(prepared("lenet5_tiny"), sample("lenet5_tiny", 2), folder, STEM, config={"k": 1}, **options)
    return folder


def private_copy(folder: Path, tmp_path: Path) -> Path:
    """A private copy of ``folder`` that a test may damage."""
    dest = tmp_path / "m"
    shutil.copytree(folder, dest)
    return dest


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_lenet5(tmp_path_factory.mktemp("exported"))


@pytest.fixture
def copy(exported: Path, tmp_path: Path) -> Path:
    """A private copy of the exported folder that a test may damage."""
    return private_copy(exported, tmp_path)

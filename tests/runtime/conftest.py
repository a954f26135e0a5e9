"""Fixtures of the runtime tests: one exported LeNet-5 (standalone + sidecar pair) per module, and private copies of
it that a test may damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporters import export_model
from tests.exporters.helpers import prepared, sample
from tests.runtime.helpers import STEM


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    export_model(prepared("lenet5_tiny"), sample("lenet5_tiny", 2), folder, STEM, config={"k": 1})
    return folder


@pytest.fixture
def copy(exported: Path, tmp_path: Path) -> Path:
    """A private copy of the exported folder that a test may damage."""
    dest = tmp_path / "m"
    shutil.copytree(exported, dest)
    return dest

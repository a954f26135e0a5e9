"""Crash-safe file writing shared by every package that produces artefacts.

``atomic_write`` writes to a temporary file in the destination's folder, flushes and fsyncs it, then renames it over
the destination (``os.replace`` is atomic on POSIX) and fsyncs the folder. A crash or an exception at any point
leaves either the old file or the new one, never a truncated mix, and never deletes an earlier output.

``atomic_write_many`` does the same for a set of files that belong together (a graph and its sidecar): every
temporary file is written and synced first, and only then are they renamed, in the given order.

``native_stdout_to`` points file descriptor 1 elsewhere for a while: native libraries print to it directly, past
``sys.stdout``, where a command's ``--json`` output must stand alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "native_stdout_to",
    "remove_stale_temporaries",
]

_TEMP_SUFFIX = ".tmp"


def _umask_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask): temporary files are created 0o600, and a
    renamed temporary would otherwise keep that, unreadable to a serving container or another user."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _staged(dest: Path) -> tuple[int, str]:
    """A temporary file beside ``dest`` with the permissions ``dest`` would get if written directly."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=_TEMP_SUFFIX, dir=dest.parent)
    os.fchmod(fd, _umask_mode())
    return fd, tmp


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary file, then atomically move it to ``path``.

    Args:
        path: destination; its parent folder is created if missing.
        write: callable that writes the whole content to the open binary file handle.

    Returns:
        The destination path.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _staged(dest)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return dest


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | os.PathLike[str], is_destination: Callable[[str], bool]) -> list[Path]:
    """Delete the temporaries that a killed writer left in ``folder`` for destinations ``is_destination`` accepts
    (a file name). A finished write leaves none, so any found belong to a crash; returns what was deleted."""
    removed = []
    for path in Path(folder).glob(f".*{_TEMP_SUFFIX}"):
        # mkstemp's names: "." + destination name + "." + 8 random characters + suffix
        dest = path.name[1 : -len(_TEMP_SUFFIX)].rpartition(".")[0]
        if dest and is_destination(dest) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_many(files: Sequence[tuple[str | os.PathLike[str], bytes]]) -> list[Path]:
    """Write every file to a synced temporary first, then rename them all in order.

    An error while writing (disk full, bad folder) leaves every destination untouched; only a failure of
    ``os.replace`` itself, between two renames, could leave the set half-replaced.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            dest = Path(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _staged(dest)
            staged.append((tmp, dest))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, dest in staged:
            os.replace(tmp, dest)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for folder in {dest.parent for _, dest in staged}:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return [dest for _, dest in staged]


@contextlib.contextmanager
def native_stdout_to(fd: int) -> Iterator[None]:
    """Meanwhile, what anything (C++ included) writes to file descriptor 1 goes to ``fd`` instead."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)

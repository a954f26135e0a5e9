"""The project's exception hierarchy (numpy-only so that every package can share it)."""

from __future__ import annotations

__all__ = ["ToolchainError"]


class ToolchainError(Exception):
    """A user-facing error: bad input, missing file, invalid configuration.

    The CLI prints its message (which says what is wrong and how to fix it) and exits non-zero, without a traceback.
    """

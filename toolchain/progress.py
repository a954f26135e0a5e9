"""Progress bars that follow tqdm's and pip's habit: drawn on a terminal, silent when output goes to a file or pipe.

A bar redraws itself with carriage returns; in a log file every redraw is kept, hundreds of lines' worth per epoch.
tqdm's ``disable=None`` turns a bar off when its stream is not a terminal.
"""

from __future__ import annotations

__all__ = ["bar_disable"]


def bar_disable(wanted: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller wants (``wanted``): off if unwanted, else off unless on a terminal."""
    return None if wanted else True

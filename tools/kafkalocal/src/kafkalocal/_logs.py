"""Reading the end of a log file for error messages."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

__all__ = ["TAIL_LINES", "tail"]

#: How many log lines an error message carries.
TAIL_LINES = 60
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``path`` without colour codes, or why there are none."""
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            kept = deque(stream, maxlen=lines)
    except FileNotFoundError:
        return f"(no log: {path} does not exist)"
    if not kept:
        return f"(no log: {path} is empty)"
    return _ANSI.sub("", "".join(kept)).rstrip("\n")

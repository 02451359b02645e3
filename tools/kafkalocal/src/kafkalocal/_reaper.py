"""Work-directory ownership, stale-directory removal, and the watchdog that runs it.

Standard library only and no package-relative imports: besides being imported
as ``kafkalocal._reaper`` it runs as a script, ``python _reaper.py WORKDIR``,
holding the read end of a pipe whose write end only the owning Python process
has. When the owner dies (even by SIGKILL) the pipe closes, and the watchdog
SIGKILLs the JVMs recorded in the work directory and removes it. On a clean
stop the owner removes the directory itself and then closes the pipe.

A work directory holds an ``owner`` file and one ``jvm.pid`` (at any depth) per JVM,
each ``"<pid> <start time>"`` so a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

__all__ = [
    "OWNER_FILE",
    "identity",
    "is_running",
    "owner_alive",
    "read_identity",
    "remove_empty_root",
    "remove_workdir",
]

OWNER_FILE = "owner"
_JVM_PID_FILE = "jvm.pid"
_GRACE_AFTER_DEATH_S = 10.0


def _start_time(pid: int) -> str | None:
    """Return an opaque start stamp of ``pid``, or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no procfs: fall back to "is there such a pid"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # zombie or dead: no longer runs
        return None
    return fields[19]  # starttime, field 22 of proc(5)


def is_running(pid: int) -> bool:
    """Return whether ``pid`` runs (a zombie does not)."""
    return _start_time(pid) is not None


def identity(pid: int) -> str:
    """Return ``"<pid> <start time>"`` for a running process."""
    return f"{pid} {_start_time(pid) or ''}".rstrip()


def read_identity(path: Path) -> tuple[int, str] | None:
    """Read a file written with :func:`identity`; None if missing or garbled."""
    try:
        parts = path.read_text().split()
        return int(parts[0]), parts[1] if len(parts) > 1 else ""
    except (OSError, ValueError, IndexError):
        return None


def _running(pid: int, stamp: str) -> bool:
    current = _start_time(pid)
    return current is not None and (not stamp or not current or current == stamp)


def owner_alive(workdir: Path) -> bool:
    """Return whether the process that created ``workdir`` still runs."""
    owner = read_identity(workdir / OWNER_FILE)
    return owner is not None and _running(*owner)


def remove_workdir(workdir: Path) -> None:
    """SIGKILL the JVMs recorded in ``workdir``, wait until they are gone, delete it."""
    pid_files = workdir.rglob(_JVM_PID_FILE)
    jvms = [rec for rec in map(read_identity, pid_files) if rec is not None]
    for pid, stamp in jvms:
        if _running(pid, stamp):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _GRACE_AFTER_DEATH_S
    while any(_running(pid, stamp) for pid, stamp in jvms) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(workdir, ignore_errors=True)
    remove_empty_root(workdir.parent)


def remove_empty_root(root: Path) -> None:
    """Remove the per-user root once no work directory is left in it (a race-free no-op else)."""
    with contextlib.suppress(OSError):
        root.rmdir()


def _watch(workdir: Path) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    if workdir.exists():
        remove_workdir(workdir)


if __name__ == "__main__":
    _watch(Path(sys.argv[1]))

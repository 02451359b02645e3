"""Private temporary directories for running clusters, removed even if we are killed.

All live under one per-user root, ``$TMPDIR/kafkalocal-<uid>/run-*``. Each has
an ``owner`` file; creating a new one first removes those whose owner died
(what SIGKILL or a power cut left behind), and a watchdog process (see
``_reaper``) removes this one as soon as its owner dies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _reaper

__all__ = ["WorkDir", "remove_stale_workdirs", "work_root"]

_ORPHAN_AGE_S = 300.0


def work_root() -> Path:
    """Return the per-user parent of all work directories."""
    return Path(tempfile.gettempdir()) / f"kafkalocal-{os.getuid()}"


def remove_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Remove work directories whose owner is dead, killing their JVMs; return them."""
    root = work_root() if root is None else root
    removed: list[Path] = []
    for workdir in sorted(root.glob("run-*")):
        if (workdir / _reaper.OWNER_FILE).exists():
            if _reaper.owner_alive(workdir):
                continue
        else:  # owner file not written yet, or the owner died right after mkdtemp
            try:
                if time.time() - workdir.stat().st_mtime < _ORPHAN_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        _reaper.remove_workdir(workdir)
        removed.append(workdir)
    return removed


class WorkDir:
    """A fresh private directory plus the watchdog that deletes it if we die.

    Not thread-safe. Whatever runs in it writes its pid to a ``jvm.pid`` file
    (see ``_reaper``). Stop those processes first, then call :meth:`close`: it
    deletes the directory and lets the watchdog exit.
    """

    def __init__(self, path: Path, watchdog: subprocess.Popen[bytes]) -> None:
        self.path = path
        self._watchdog = watchdog

    @classmethod
    def create(cls) -> WorkDir:
        """Remove stale directories, then make a new one and start its watchdog.

        Raises:
            OSError: the directory or the watchdog could not be created.
        """
        root = work_root()
        for attempt in range(3):
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            remove_stale_workdirs(root)
            try:
                path = Path(tempfile.mkdtemp(prefix="run-", dir=root))
                break
            except FileNotFoundError:  # another owner removed the empty root just now
                if attempt == 2:
                    raise
        (path / _reaper.OWNER_FILE).write_text(_reaper.identity(os.getpid()))
        try:
            watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", _reaper.__file__, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, watchdog)

    def close(self) -> None:
        """Delete the directory (and the root, once empty); release the watchdog. Idempotent."""
        shutil.rmtree(self.path, ignore_errors=True)
        _reaper.remove_empty_root(self.path.parent)
        if self._watchdog.stdin is not None and not self._watchdog.stdin.closed:
            self._watchdog.stdin.close()
        try:
            self._watchdog.wait(10)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait()

"""Child processes that never outlive us: PR_SET_PDEATHSIG, a long-lived forking thread, stop.

On Linux every child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in ``preexec_fn``,
so a JVM is killed by the kernel when the Python process dies, even by SIGKILL.
The kernel fires that signal when the *thread* that forked the child exits, so
long-running children are forked by one daemon thread that lives as long as the
process (a restart called from a worker thread must not die with that thread).
Elsewhere the reaper (see ``_workdir``) is the only safety net.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

__all__ = ["child_preexec", "kill_process", "spawn_daemon", "stop_processes"]

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Looked up once in the parent: no dlopen between fork and exec.
_PRCTL = _load_prctl()


def child_preexec() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that makes the child receive SIGKILL when we die.

    ``None`` where ``prctl`` is unavailable (not Linux).
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_Job = tuple[Callable[[], "subprocess.Popen[bytes]"], "Future[subprocess.Popen[bytes]]"]
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_forker_lock = threading.Lock()
_forker: threading.Thread | None = None


def _serve_forever() -> None:
    while True:
        job, future = _jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(job())
        except BaseException as exc:  # handed to the caller
            future.set_exception(exc)


def _submit(job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _forker
    with _forker_lock:
        if _forker is None or not _forker.is_alive():  # first call, or we are a fork child
            _forker = threading.Thread(target=_serve_forever, name="kafkalocal-forker", daemon=True)
            _forker.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _jobs.put((job, future))
    return future.result()


def spawn_daemon(args: Sequence[str], *, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running child with stdout and stderr appended to ``log``.

    The child gets its own session (a terminal's Ctrl-C reaches only us, and we
    stop it in order) and, on Linux, SIGKILL when this process dies. Thread-safe.

    Raises:
        OSError: the executable could not be started.
    """

    def job() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                list(args),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_preexec(),
            )

    if _PRCTL is None:
        return job()
    return _submit(job)


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every running process, wait up to ``timeout`` seconds in all, then SIGKILL.

    Returns once every process has exited and been reaped.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` (no SIGTERM first) and reap it. Idempotent."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()

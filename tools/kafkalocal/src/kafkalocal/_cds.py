"""A cached AppCDS archive of Kafka's classes: JVM start-up about a third faster.

The first node a process starts without an archive runs with
``-XX:ArchiveClassesAtExit`` (JDK 13+): when it exits after a clean shutdown the
JVM writes the classes it loaded to a temporary file, which is then renamed
into the jar cache. Later JVMs (nodes and the storage tool) map it with
``-XX:SharedArchiveFile``. The archive's name carries a fingerprint of the
``java`` binary; a JVM that still finds it unusable warns in its log and starts
without it, so a stale archive costs speed, never correctness.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

__all__ = ["ClassArchive"]

_KILLED = -9  # Popen.returncode of a SIGKILLed JVM: the archive may be half-written


def _fingerprint(java: str) -> str:
    real = os.path.realpath(java)
    try:
        stat = os.stat(real)
        key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        key = real
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError):
        return True
    return True


class ClassArchive:
    """The class archive of one Kafka jar directory for one ``java``. Thread-safe.

    Args:
        kafka_home: a directory returned by ``resolve_kafka``.
        java: the ``java`` executable the archive is for.
    """

    def __init__(self, kafka_home: Path, java: str) -> None:
        self.path = kafka_home / f"classes-{_fingerprint(java)}.jsa"
        self._lock = threading.Lock()
        self._dumper: object | None = None
        for leftover in kafka_home.glob(".classes-*.jsa.*-*"):  # of a killed process
            if not _pid_alive(leftover.suffix[1:].split("-")[0]):
                leftover.unlink(missing_ok=True)

    def options(self, owner: object) -> tuple[list[str], Path | None]:
        """Return JVM options for a node and, if it is to write the archive, the file.

        At most one ``owner`` (a node) at a time writes the archive; it keeps
        that role across its restarts until an archive is published.
        """
        if self.path.is_file():
            return [f"-XX:SharedArchiveFile={self.path}"], None
        with self._lock:
            if self._dumper is None:
                self._dumper = owner
            if self._dumper is not owner:
                return [], None
        dump = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        return [f"-XX:ArchiveClassesAtExit={dump}"], dump

    def read_options(self) -> list[str]:
        """Return JVM options for a short-lived tool: use the archive if there is one."""
        return [f"-XX:SharedArchiveFile={self.path}"] if self.path.is_file() else []

    def publish(self, dump: Path, returncode: int | None) -> None:
        """Move a dump written by a JVM that exited with ``returncode`` into place."""
        try:
            if returncode not in (None, _KILLED) and dump.is_file() and dump.stat().st_size:
                os.replace(dump, self.path)
        except OSError:
            pass
        finally:
            dump.unlink(missing_ok=True)

"""One Kafka JVM: a combined broker+controller living in its own directory.

Files in the node directory: ``server.properties``, the logging configuration,
``data/`` (log.dirs and the KRaft metadata log), ``format.log`` (storage tool
output), ``kafka.log`` (the broker's stdout and stderr, appended across
restarts) and ``jvm.pid`` (read by the watchdog and by stale cleanup).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import _reaper
from ._cds import ClassArchive
from ._config import (
    NodeAddress,
    NodeCustomizer,
    Settings,
    jvm_options,
    log_config,
    log_config_name,
    render_properties,
    server_properties,
)
from ._errors import KafkaStartError
from ._logs import TAIL_LINES, tail
from ._maven import classpath
from ._probe import metadata_brokers
from ._process import child_preexec, kill_process, spawn_daemon, stop_processes

__all__ = ["KafkaNode"]

_FORMAT_TIMEOUT_S = 120.0


class KafkaNode:
    """A single combined broker+controller process. Not thread-safe.

    Args:
        address: the node id and its ports.
        home: the node's own (new) directory.
        kafka_home: a directory returned by ``resolve_kafka``.
        version: the Kafka version in ``kafka_home``.
        java: the ``java`` executable.
        heap: the ``-Xmx`` value.
        archive: the class archive to use or write, if any.
        settings: ``"test"`` or ``"defaults"`` (see ``_config``).
        customizer: what to change on top of those settings, if anything.
    """

    def __init__(
        self,
        *,
        address: NodeAddress,
        home: Path,
        kafka_home: Path,
        version: str,
        java: str,
        heap: str,
        archive: ClassArchive | None = None,
        settings: Settings = "test",
        customizer: NodeCustomizer | None = None,
    ) -> None:
        self.address = address
        self.home = home
        self._version = version
        self._java = java
        self._heap = heap
        self._classpath = classpath(kafka_home)
        self._archive = archive
        self._settings: Settings = settings
        self._customizer = customizer
        self._dump: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def node_id(self) -> int:
        """Return the node id (also its index in the cluster)."""
        return self.address.node_id

    @property
    def log_path(self) -> Path:
        """Return the path of the broker log."""
        return self.home / "kafka.log"

    @property
    def running(self) -> bool:
        """Return whether the JVM runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """Return the JVM process of the latest start, if any."""
        return self._proc

    def _command(self, extra: list[str], main_class: str, *args: str) -> list[str]:
        options = jvm_options(self._version, self.home / log_config_name(self._version), self._heap)
        return [self._java, *options, *extra, "-cp", self._classpath, main_class, *args]

    def configure(self, addresses: Sequence[NodeAddress]) -> None:
        """Create the node directory and write its configuration files."""
        (self.home / "data").mkdir(parents=True)
        props = server_properties(
            self.node_id, addresses, self.home / "data", self._version, self._settings
        )
        if self._customizer is not None:
            self._customizer.customize(self.address, props, self.home)
        (self.home / "server.properties").write_text(render_properties(props), encoding="utf-8")
        (self.home / log_config_name(self._version)).write_text(
            log_config(self._version), encoding="utf-8"
        )

    def start_format(self, cluster_id: str) -> subprocess.Popen[bytes]:
        """Start formatting the storage with ``kafka.tools.StorageTool``; see :meth:`check_format`.

        Raises:
            KafkaStartError: java could not be executed.
        """
        command = self._command(
            self._archive.read_options() if self._archive else [],
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.home / "server.properties"),
            *(self._customizer.format_args() if self._customizer else []),
        )
        with (self.home / "format.log").open("wb") as out:
            try:
                return subprocess.Popen(
                    command,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=child_preexec(),
                )
            except OSError as exc:
                raise KafkaStartError(f"could not run {self._java}: {exc}") from exc

    def check_format(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for a storage format started by :meth:`start_format`.

        Raises:
            KafkaStartError: it failed or hung; the message ends with its output.
        """
        try:
            code = proc.wait(_FORMAT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_process(proc)
            code = None
        if code != 0:
            log = self.home / "format.log"
            raise KafkaStartError(
                f"formatting the storage of Kafka node {self.node_id} failed "
                f"(exit code {code}). Last lines of {log}:\n{tail(log)}"
            )

    def start(self) -> None:
        """Start the JVM; returns at once (see ``KafkaCluster`` for readiness).

        Raises:
            KafkaStartError: the node already runs, or java could not be executed.
        """
        if self.running:
            raise KafkaStartError(f"Kafka node {self.node_id} is already running")
        self._starts += 1
        if self._starts > 1:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(f"===== kafkalocal: start #{self._starts} of node {self.node_id}\n")
        extra: list[str] = []
        if self._archive is not None:
            extra, self._dump = self._archive.options(self)
        command = self._command(extra, "kafka.Kafka", str(self.home / "server.properties"))
        try:
            self._proc = spawn_daemon(command, cwd=self.home, log=self.log_path)
        except OSError as exc:
            raise KafkaStartError(f"could not run {self._java}: {exc}") from exc
        (self.home / "jvm.pid").write_text(_reaper.identity(self._proc.pid))

    def stop(self, timeout: float) -> None:
        """SIGTERM (controlled shutdown), wait up to ``timeout`` s, then SIGKILL. Idempotent."""
        if self._proc is not None:
            stop_processes([self._proc], timeout)
        self.exited()

    def kill(self) -> None:
        """SIGKILL the JVM and reap it. Idempotent."""
        if self._proc is not None:
            kill_process(self._proc)
        self.exited()

    def exited(self) -> None:
        """Finish up after the JVM was reaped: publish the class archive it wrote."""
        if self._archive is not None and self._dump is not None and self._proc is not None:
            self._archive.publish(self._dump, self._proc.returncode)
            self._dump = None

    def probe(self) -> set[int]:
        """Return the broker ids this node's metadata lists; empty if it does not answer."""
        security = self._customizer.admin_security if self._customizer else None
        try:
            return metadata_brokers(self.address.host, self.address.broker_port, security=security)
        except OSError:
            return set()

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the broker log."""
        return tail(self.log_path, lines)

    def lost_port_race(self) -> bool:
        """Return whether the JVM exited because one of its ports was taken."""
        if self.running:
            return False
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
        return "Address already in use" in text

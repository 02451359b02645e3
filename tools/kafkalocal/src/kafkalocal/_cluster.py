"""A local KRaft cluster of 1..n combined broker+controller JVMs, and ``broker_from_env``."""

from __future__ import annotations

import atexit
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from ._cds import ClassArchive
from ._config import (
    DEFAULT_HEAP,
    SETTINGS,
    NodeAddress,
    NodeCustomizer,
    Settings,
    bootstrap_servers,
    new_cluster_id,
    node_addresses,
)
from ._errors import KafkaStartError
from ._logs import TAIL_LINES
from ._maven import resolve_kafka
from ._node import KafkaNode
from ._ports import free_ports
from ._process import stop_processes
from ._versions import kafka_version
from ._wire import Endpoint, Security
from ._workdir import WorkDir

__all__ = ["BOOTSTRAP_ENV", "KafkaCluster", "broker_from_env"]

#: Environment variable naming an already running cluster.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_PORT_RACE_RETRIES = 3
_POLL_S = 0.1


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaStartError("java is not on PATH and JAVA_HOME is unset: install a JDK 17+")
    return java


class _PortRace(Exception):
    """A node lost one of its ports to another process; retry with new ports."""


class KafkaCluster:
    """Apache Kafka in KRaft mode on 127.0.0.1: ``nodes`` combined broker+controller JVMs.

    Node ``i`` has node id ``i``. With the default ``settings="test"`` and one node
    internal topics have replication factor 1; with three, replication factor 3 and
    ``min.insync.replicas`` 2 (also the default for new topics); topics are never
    created automatically. ``settings="defaults"`` runs Kafka's own sample settings
    instead (see the README). The JVMs die with this process (Linux), and
    their temporary directory is removed on :meth:`stop`, at exit, by a watchdog
    if this process is killed, or by the next start if all else failed.

    Not thread-safe: drive one cluster from one thread at a time (any thread).

    Example:
        >>> with KafkaCluster(nodes=3) as cluster:  # doctest: +SKIP
        ...     cluster.kill_node(1)
        ...     cluster.start_node(1)
        ...     print(cluster.bootstrap_servers)

    Args:
        nodes: how many nodes, at least 1.
        version: Kafka release; default ``$KAFKA_VERSION`` or the pinned one.
        settings: ``"test"`` (ours) or ``"defaults"`` (Kafka's sample server.properties).
        heap: ``-Xmx`` of each JVM.
        start_timeout: seconds to wait for nodes to become reachable.
        stop_timeout: seconds a node gets to shut down after SIGTERM before SIGKILL.
        customizer: adds listeners, security and format options to every node
            (``SecureKafka`` uses it); see ``NodeCustomizer``.

    Raises:
        ValueError: ``nodes`` < 1, unknown ``settings`` or a malformed version.
    """

    def __init__(
        self,
        nodes: int = 1,
        version: str | None = None,
        *,
        settings: Settings = "test",
        heap: str = DEFAULT_HEAP,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        customizer: NodeCustomizer | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a cluster needs at least one node, got nodes={nodes}")
        if settings not in SETTINGS:
            raise ValueError(f"settings must be one of {', '.join(SETTINGS)}, got {settings!r}")
        self.nodes = nodes
        self.settings: Settings = settings
        self.version = kafka_version(version)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        #: Seconds the latest :meth:`start` took (jar resolve included), once started.
        self.start_seconds: float | None = None
        self._heap = heap
        self._customizer = customizer
        self._workdir: WorkDir | None = None
        self._nodes: list[KafkaNode] = []
        self._addresses: list[NodeAddress] = []

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Resolve the jars, format the storage, start every node and wait until all are up.

        Raises:
            KafkaStartError: resolve, format or start failed, or a timeout; the
                message ends with the relevant log tail. Nothing is left running.
            RuntimeError: already started.
        """
        if self._workdir is not None:
            raise RuntimeError("this KafkaCluster is already started")
        began = time.monotonic()
        kafka_home = resolve_kafka(self.version)
        java = _find_java()
        archive = ClassArchive(kafka_home, java)
        self._workdir = WorkDir.create()
        atexit.register(self.stop)
        try:
            for attempt in range(1, _PORT_RACE_RETRIES + 1):
                try:
                    self._boot(kafka_home, java, archive, attempt)
                    break
                except _PortRace:
                    if attempt == _PORT_RACE_RETRIES:
                        raise KafkaStartError(
                            f"a port was taken by another process {attempt} times in a row\n"
                            + self._tails(self._nodes)
                        ) from None
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _boot(self, kafka_home: Path, java: str, archive: ClassArchive, attempt: int) -> None:
        assert self._workdir is not None
        for node in self._nodes:  # of a failed attempt
            node.kill()
        per_node = 2 + (self._customizer.extra_ports if self._customizer else 0)
        self._addresses = node_addresses(free_ports(per_node * self.nodes), per_node)
        self._nodes = [
            KafkaNode(
                address=address,
                home=self._workdir.path / f"try-{attempt}" / f"node-{address.node_id}",
                kafka_home=kafka_home,
                version=self.version,
                java=java,
                heap=self._heap,
                archive=archive,
                settings=self.settings,
                customizer=self._customizer,
            )
            for address in self._addresses
        ]
        cluster_id = new_cluster_id()
        for node in self._nodes:
            node.configure(self._addresses)
        formats = [node.start_format(cluster_id) for node in self._nodes]
        failures: list[KafkaStartError] = []
        for node, proc in zip(self._nodes, formats, strict=True):
            try:
                node.check_format(proc)
            except KafkaStartError as exc:  # wait for the others before raising
                failures.append(exc)
        if failures:
            raise failures[0]
        for node in self._nodes:
            node.start()
        self._wait_ready(self._nodes, what=f"{self.nodes}-node Kafka {self.version} to start")

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``stop_timeout``), delete all files.

        Idempotent; also registered with :mod:`atexit` while started.
        """
        atexit.unregister(self.stop)
        procs = [node.process for node in self._nodes if node.process is not None]
        stop_processes(procs, self.stop_timeout)
        for node in self._nodes:
            node.exited()
        self._nodes = []
        if self._workdir is not None:
            self._workdir.close()
            self._workdir = None

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """Return ``host:port,...`` of all brokers.

        Raises:
            RuntimeError: not started.
        """
        if self._workdir is None:
            raise RuntimeError("this KafkaCluster is not started")
        return bootstrap_servers(self._addresses)

    @property
    def admin_endpoint(self) -> Endpoint:
        """Return where and how to send admin requests (as a super user, if secured).

        Raises:
            RuntimeError: not started.
        """
        security = self._customizer.admin_security if self._customizer else Security()
        return Endpoint(self.bootstrap_servers, security)

    def broker_address(self, i: int) -> str:
        """Return ``host:port`` of node ``i``'s Kafka listener."""
        return self._node(i).address.broker

    def node_address(self, i: int) -> NodeAddress:
        """Return all ports of node ``i``."""
        return self._node(i).address

    # -- single nodes ----------------------------------------------------------

    def _node(self, i: int) -> KafkaNode:
        if self._workdir is None:
            raise RuntimeError("this KafkaCluster is not started")
        if not 0 <= i < len(self._nodes):
            raise IndexError(f"no node {i}: this cluster has nodes 0..{len(self._nodes) - 1}")
        return self._nodes[i]

    def is_running(self, i: int) -> bool:
        """Return whether node ``i``'s JVM runs."""
        return self._node(i).running

    def stop_node(self, i: int) -> None:
        """Gracefully stop node ``i`` (controlled shutdown; SIGKILL after ``stop_timeout``)."""
        self._node(i).stop(self.stop_timeout)

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i``: no controlled shutdown, as in a crash."""
        self._node(i).kill()

    def start_node(self, i: int) -> None:
        """Start the stopped node ``i`` on its old ports and data; wait until it rejoined.

        Returns when every running node's metadata lists every running broker.

        Raises:
            KafkaStartError: it exited or did not rejoin within ``start_timeout``.
        """
        node = self._node(i)
        node.start()
        self._wait_ready(
            [n for n in self._nodes if n.running or n is node], what=f"node {i} to rejoin"
        )

    def restart_node(self, i: int) -> None:
        """Gracefully stop node ``i``, start it again and wait until it rejoined."""
        self.stop_node(i)
        self.start_node(i)

    def log_tail(self, i: int = 0, lines: int = TAIL_LINES) -> str:
        """Return the last ``lines`` lines of node ``i``'s broker log."""
        return self._node(i).log_tail(lines)

    # -- readiness -------------------------------------------------------------

    def _tails(self, nodes: Sequence[KafkaNode]) -> str:
        lines = max(20, TAIL_LINES // max(1, len(nodes)))
        return "\n".join(
            f"--- last lines of {node.log_path}:\n{node.log_tail(lines)}" for node in nodes
        )

    def _wait_ready(self, nodes: Sequence[KafkaNode], what: str) -> None:
        expected = {node.node_id for node in nodes}
        deadline = time.monotonic() + self.start_timeout
        while True:
            for node in nodes:
                if not node.running:
                    if node.lost_port_race():
                        raise _PortRace
                    code = node.process.returncode if node.process else None
                    raise KafkaStartError(
                        f"Kafka node {node.node_id} exited (code {code}) while waiting for "
                        f"{what}.\n--- last lines of {node.log_path}:\n{node.log_tail()}"
                    )
            if all(expected <= node.probe() for node in nodes):
                return
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"timed out after {self.start_timeout:.0f} s waiting for {what} "
                    f"(brokers {sorted(expected)} in every node's metadata).\n" + self._tails(nodes)
                )
            time.sleep(_POLL_S)


@contextmanager
def broker_from_env(version: str | None = None) -> Iterator[str]:
    """Yield ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else start one node and yield its address.

    Example:
        >>> with broker_from_env() as bootstrap:  # doctest: +SKIP
        ...     print(bootstrap)

    Raises:
        KafkaStartError: a node had to be started and it failed.
    """
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    with KafkaCluster(nodes=1, version=version) as cluster:
        yield cluster.bootstrap_servers

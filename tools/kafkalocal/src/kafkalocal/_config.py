"""Broker configuration, logging configuration and JVM arguments. I/O-free.

Every node is a combined broker+controller on 127.0.0.1 with a static
``controller.quorum.voters`` list. Node ids are 0-based and equal the node's
index in :class:`~kafkalocal.KafkaCluster`. Two sets of settings:

``"test"`` (the default) favours tests: no topic auto-creation, no initial
rebalance delay, internal topics sized for the node count, small buffers and
thread pools, quick fencing of a dead broker.

``"defaults"`` is Kafka as users have it: only the settings of the sample
``config/server.properties`` that Kafka ships for a single KRaft node (see
:data:`SAMPLE_SETTINGS`), everything else at Kafka's built-in defaults.

A :class:`NodeCustomizer` may add listeners (with ports of their own),
security settings and storage-format options on top of either.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ._versions import uses_log4j1, version_tuple
from ._wire import Security

__all__ = [
    "DEFAULT_HEAP",
    "SAMPLE_SETTINGS",
    "SETTINGS",
    "NodeAddress",
    "NodeCustomizer",
    "Settings",
    "bootstrap_servers",
    "jvm_options",
    "log_config",
    "log_config_name",
    "new_cluster_id",
    "node_addresses",
    "render_properties",
    "server_properties",
]

#: Default maximum heap per node.
DEFAULT_HEAP = "512m"
#: Which settings a node gets: ours for tests, or Kafka's sample ones.
Settings = Literal["test", "defaults"]
SETTINGS: tuple[Settings, ...] = ("test", "defaults")

#: The settings of Kafka's sample KRaft ``config/server.properties`` (3.9 to 4.x) that are
#: not about this one node (its id, listeners, quorum and ``log.dirs`` are ours).
SAMPLE_SETTINGS = {
    "process.roles": "broker,controller",
    "inter.broker.listener.name": "PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    ),
    "num.network.threads": "3",
    "num.io.threads": "8",
    "socket.send.buffer.bytes": "102400",
    "socket.receive.buffer.bytes": "102400",
    "socket.request.max.bytes": "104857600",
    "num.partitions": "1",
    "num.recovery.threads.per.data.dir": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "log.retention.hours": "168",
    "log.segment.bytes": "1073741824",
    "log.retention.check.interval.ms": "300000",
}
_HOST = "127.0.0.1"
_RESERVED_IDS = (bytes(16), bytes(15) + b"\x01")  # Uuid.ZERO_UUID, Uuid.METADATA_TOPIC_ID
# Start-up friendly JVM flags, measured on 2 cores (median seconds until every
# node serves metadata, 1 node / 3 nodes): Kafka's G1 defaults 4.5 / 14.5,
# C1-only JIT 3.0 / 7.8, plus the serial collector 2.9 / 8.7 (fewer GC threads),
# plus the class archive of ``_cds`` 2.0 / 5.3. No hsperfdata files in /tmp.
_JVM_FLAGS = (
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class NodeAddress:
    """Where one node listens: its broker and controller (Raft) ports, and extra ones.

    The broker port is the inter-broker listener's (``PLAINTEXT`` unless a
    :class:`NodeCustomizer` changes it); ``extra_ports`` are for a customizer's
    additional listeners.
    """

    node_id: int
    broker_port: int
    controller_port: int
    extra_ports: tuple[int, ...] = ()

    @property
    def host(self) -> str:
        """Return the address every listener binds to."""
        return _HOST

    @property
    def broker(self) -> str:
        """Return ``host:port`` of the Kafka listener."""
        return f"{_HOST}:{self.broker_port}"

    @property
    def voter(self) -> str:
        """Return this node's entry of ``controller.quorum.voters``."""
        return f"{self.node_id}@{_HOST}:{self.controller_port}"


def node_addresses(ports: Sequence[int], per_node: int = 2) -> list[NodeAddress]:
    """Split ``ports`` into node addresses: broker, controller, then ``per_node - 2`` extra.

    Raises:
        ValueError: not a non-zero multiple of ``per_node`` distinct ports.
    """
    if per_node < 2:
        raise ValueError(f"a node needs at least two ports, got per_node={per_node}")
    if not ports or len(ports) % per_node or len(set(ports)) != len(ports):
        what = "two" if per_node == 2 else str(per_node)
        raise ValueError(f"need {what} distinct ports per node, got {list(ports)}")
    return [
        NodeAddress(
            node_id=i,
            broker_port=ports[per_node * i],
            controller_port=ports[per_node * i + 1],
            extra_ports=tuple(ports[per_node * i + 2 : per_node * (i + 1)]),
        )
        for i in range(len(ports) // per_node)
    ]


class NodeCustomizer(Protocol):
    """Changes every node of a cluster: more listeners, security, storage-format options.

    ``KafkaCluster(customizer=...)`` gives each node ``extra_ports`` more free ports
    (in ``NodeAddress.extra_ports``), lets :meth:`customize` edit its properties, adds
    :meth:`format_args` to the storage tool's ``format`` command, and probes and
    administers the cluster through the broker port with :attr:`admin_security`.
    """

    @property
    def extra_ports(self) -> int:
        """Return how many ports each node needs beyond its broker and controller ports."""
        ...

    @property
    def admin_security(self) -> Security:
        """Return how to connect to the broker port as a user allowed to do anything."""
        ...

    def customize(self, address: NodeAddress, props: dict[str, str], home: Path) -> None:
        """Edit the properties of the node at ``address`` (directory ``home``) in place.

        ``home.parent`` is shared by the nodes of one start: a place for common files.
        """
        ...

    def format_args(self) -> list[str]:
        """Return extra arguments of ``kafka-storage format`` (e.g. ``--add-scram``)."""
        ...


def bootstrap_servers(addresses: Sequence[NodeAddress]) -> str:
    """Return the comma-separated ``host:port`` list of all brokers."""
    return ",".join(address.broker for address in addresses)


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """Return a random cluster id as Kafka writes one: 22 chars of unpadded base64url.

    Like Kafka's ``Uuid.randomUuid`` it never starts with ``-`` (a CLI would
    read it as an option) and is never one of the reserved ids.
    """
    while True:
        raw = random_bytes(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if raw not in _RESERVED_IDS and not text.startswith("-"):
            return text


def server_properties(
    node_id: int,
    addresses: Sequence[NodeAddress],
    data_dir: Path,
    version: str,
    settings: Settings = "test",
) -> dict[str, str]:
    """Return the ``server.properties`` of node ``node_id`` in a cluster of ``addresses``.

    With ``settings="test"``, replication of internal and new topics is
    ``min(3, nodes)`` and ``min.insync.replicas`` one less (at least 1): 1/1 for
    one node, 3/2 for three. With ``settings="defaults"``, see :data:`SAMPLE_SETTINGS`.

    Raises:
        ValueError: ``node_id`` is not one of ``addresses``, or unknown ``settings``.
    """
    by_id = {address.node_id: address for address in addresses}
    if node_id not in by_id:
        raise ValueError(f"node {node_id} is not one of {sorted(by_id)}")
    if settings not in SETTINGS:
        raise ValueError(f"settings must be one of {', '.join(SETTINGS)}, got {settings!r}")
    me = by_id[node_id]
    node = {
        "node.id": str(node_id),
        "listeners": f"PLAINTEXT://{me.broker},CONTROLLER://{_HOST}:{me.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{me.broker}",
        "controller.quorum.voters": ",".join(address.voter for address in addresses),
        "log.dirs": str(data_dir),
    }
    if settings == "defaults":
        sample = dict(SAMPLE_SETTINGS)
        if version_tuple(version) < (3, 9, 0):  # the share coordinator came with 3.9's sample
            sample = {k: v for k, v in sample.items() if not k.startswith("share.")}
        return {**sample, **node}
    nodes = len(addresses)
    replicas = str(min(3, nodes))
    min_isr = str(max(1, min(3, nodes) - 1))
    partitions = str(nodes)
    props = {
        "process.roles": "broker,controller",
        "node.id": node["node.id"],
        "listeners": node["listeners"],
        "advertised.listeners": node["advertised.listeners"],
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": node["controller.quorum.voters"],
        "log.dirs": node["log.dirs"],
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": partitions,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": partitions,
        "unclean.leader.election.enable": "false",
        # A dead node is fenced (and leaves the ISR) after 6 s instead of 9 s.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "6000",
        # Small footprint: fewer threads, a 16 MiB instead of 128 MiB cleaner buffer.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        # Compaction tests see the cleaner act within seconds instead of its 15 s backoff.
        "log.cleaner.backoff.ms": "1000",
    }
    if version_tuple(version) >= (4, 0, 0):
        props["share.coordinator.state.topic.replication.factor"] = replicas
        props["share.coordinator.state.topic.min.isr"] = min_isr
        props["share.coordinator.state.topic.num.partitions"] = partitions
    return props


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render_properties(props: Mapping[str, str]) -> str:
    """Render a Java ``.properties`` file, one ``key=value`` a line."""
    lines = ["# generated by kafkalocal"]
    lines += [f"{_escape(key)}={_escape(value)}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

_LOG4J1 = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
"""


def log_config_name(version: str) -> str:
    """Return the file name of the logging configuration for ``version``."""
    return "log4j.properties" if uses_log4j1(version) else "log4j2.properties"


def log_config(version: str) -> str:
    """Return a logging configuration that writes INFO and up to stdout."""
    return _LOG4J1 if uses_log4j1(version) else _LOG4J2


def jvm_options(version: str, log_config_path: Path, heap: str = DEFAULT_HEAP) -> list[str]:
    """Return the JVM options (before ``-cp``) of a node or of the storage tool.

    ``heap`` is the ``-Xmx`` value, e.g. ``512m``.
    """
    if uses_log4j1(version):
        logging = f"-Dlog4j.configuration=file:{log_config_path}"
    else:
        logging = f"-Dlog4j2.configurationFile={log_config_path}"
    return [f"-Xmx{heap}", "-Xms64m", *_JVM_FLAGS, logging]

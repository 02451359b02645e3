"""Ask a broker which brokers and topics it knows, with a raw Kafka Metadata v4 request.

Blocking sockets, no client library, no event loop: a cheap readiness probe
that also works on SASL and TLS listeners (see :mod:`._wire`). Metadata v4 is
the oldest version that Kafka 4.x still serves (KIP-896) and every KRaft
release serves it. Only alive (unfenced) brokers are listed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ._wire import Endpoint, KafkaConnection, Reader, Security, Writer, connect_any

__all__ = ["Metadata", "fetch_metadata", "metadata_body", "metadata_brokers", "parse_metadata"]

_METADATA = 3
_VERSION = 4


@dataclass(frozen=True)
class Metadata:
    """What one broker answered: alive broker ids; per topic, its error code and partitions."""

    brokers: frozenset[int]
    topics: dict[str, int]
    partitions: dict[str, int]


def metadata_body(topics: Sequence[str] | None = (), *, auto_create: bool = False) -> bytes:
    """Return a Metadata v4 request body: ``topics`` (None: all, empty: none)."""
    body = Writer()
    if topics is None:
        body.int32(-1)
    else:
        body.int32(len(topics))
        for topic in topics:
            body.string(topic)
    return body.int8(1 if auto_create else 0).build()


def parse_metadata(reader: Reader) -> Metadata:
    """Parse a Metadata v4 response body.

    Raises:
        ConnectionError: the response is malformed.
    """
    try:
        reader.int32()  # throttle_time_ms
        brokers = set()
        for _ in range(max(0, reader.int32())):
            brokers.add(reader.int32())
            reader.string()  # host
            reader.int32()  # port
            reader.string()  # rack
        reader.string()  # cluster_id
        reader.int32()  # controller_id
        topics, partitions = {}, {}
        for _ in range(max(0, reader.int32())):
            code, name = reader.int16(), reader.string() or ""
            reader.int8()  # is_internal
            count = max(0, reader.int32())
            for _ in range(count):
                reader.take(">hii")  # error_code, partition_index, leader_id
                for _ in range(2):  # replica_nodes, isr_nodes
                    reader.take(f">{max(0, reader.int32())}i")
            topics[name], partitions[name] = code, count
    except struct.error as exc:
        raise ConnectionError(f"malformed Metadata response: {exc}") from exc
    return Metadata(frozenset(brokers), topics, partitions)


def _ask(conn: KafkaConnection, topics: Sequence[str] | None, auto_create: bool) -> Metadata:
    body = metadata_body(topics, auto_create=auto_create)
    return parse_metadata(conn.request(_METADATA, _VERSION, body, flexible=False))


def metadata_brokers(
    host: str, port: int, timeout: float = 2.0, security: Security | None = None
) -> set[int]:
    """Return the node ids of the alive brokers that the broker at ``host:port`` knows.

    Raises:
        OSError: not reachable, authentication failed, closed the connection, or timed out.
    """
    with KafkaConnection(host, port, security, timeout=timeout) as conn:
        return set(_ask(conn, (), False).brokers)


def fetch_metadata(
    endpoint: Endpoint, topics: Sequence[str] | None = None, *, auto_create: bool = False
) -> Metadata:
    """Ask the first broker of ``endpoint`` that answers about ``topics`` (None: all).

    Raises:
        OSError: no broker answered, or authentication failed.
    """
    with connect_any(endpoint) as conn:
        return _ask(conn, topics, auto_create)

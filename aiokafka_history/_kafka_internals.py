"""Every use of aiokafka's private attributes, fenced in one place.

aiokafka offers no public way to send a raw request over a client's connections (an
admin's, or a consumer's for the view's own fetches), to count open sockets, to see that a
producer's sender died or that a connection got a transport, or to stop a producer that
cannot flush. These few functions do it; ``tests/unit/test_architecture.py`` fails as soon
as an aiokafka release moves what they rely on (the ``aiokafka`` range in ``pyproject.toml`` is
capped below the next minor release for the same reason).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = [
    "admin_any_node",
    "admin_send",
    "connection_made",
    "consumer_client",
    "force_stop_producer",
    "known_partitions",
    "open_sockets",
    "producer_failure",
]


async def admin_send(admin: Any, node_id: int, request: Any) -> Any:
    """Send ``request`` to broker ``node_id`` over the admin client's connections."""
    return await admin._client.send(node_id, request)


def admin_any_node(admin: Any) -> int:
    """A broker the admin client knows (for requests any broker can answer)."""
    node: int | None = admin._client.get_random_node()
    if node is None:
        raise ConnectionError("the admin client knows no broker yet")
    return node


def connection_made(conn: Any) -> bool:
    """Whether an ``AIOKafkaConnection`` got a transport (its close then has an end to wait for)."""
    return conn._protocol is not None


def consumer_client(consumer: Any) -> Any:
    """A started consumer's own client (its connections, metadata and request sending)."""
    return consumer._client


def _kafka_client(obj: Any) -> Any:
    # AIOKafkaProducer.client is public; the admin client and consumers keep it private.
    return obj.client if hasattr(obj, "client") else obj._client


def open_sockets(*objects: Any) -> int:
    """How many broker connections the given producers, admins and consumers hold open."""
    return sum(
        1 for obj in objects for conn in _kafka_client(obj)._conns.values() if conn.connected()
    )


def producer_failure(producer: Any) -> BaseException | None:
    """The error that killed the producer's sender task, or None while it runs.

    A dead sender (e.g. after ``OutOfOrderSequenceNumber``) fails every later send: the
    producer must be replaced.
    """
    sender = getattr(producer, "_sender", None)
    task: asyncio.Task[Any] | None = getattr(sender, "sender_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


async def force_stop_producer(producer: Any, timeout: float) -> None:
    """Stop a producer without flushing: pending batches are abandoned.

    ``AIOKafkaProducer.stop()`` waits until every pending batch is delivered, which during an
    outage is never (an idempotent producer never expires a batch).
    """
    sender = getattr(producer, "_sender", None)
    task: asyncio.Task[Any] | None = getattr(sender, "sender_task", None)
    producer._closed = True
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.client.close(), timeout)


def known_partitions(producer: Any, topic: str) -> set[int] | None:
    """The partitions of ``topic`` in the producer's metadata, or None when not known yet."""
    found: set[int] | None = producer.client.cluster.partitions_for_topic(topic)
    return found or None

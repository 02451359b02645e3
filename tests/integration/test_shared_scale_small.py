r"""The shared layout at a small scale: 20,000 sessions, 100,000 messages, a few clients.

The CI-sized twin of ``python -m benchmarks.shared_scale``, which measures; this asserts
behaviour only (counts, content, order), never timing. The bulk is written with raw aiokafka
in the layout's documented record format (key ``session \x00 m <16 hex>``, partition
murmur2 of the session, value ``json.dumps(message_to_dict(m))``), so the test also holds
the library to that format.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    KafkaHistoryClient,
    SqliteView,
    TopicSettings,
)
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio

SESSIONS = 20_000
PER_SESSION = 5
PARTITIONS = 8
SETTINGS = TopicSettings(partition=PARTITIONS)
LIBRARY_SESSIONS = 20  # written through the client, 3 turns each, concurrently
TURNS = 3


class CountingView(SqliteView):
    """A SQLite view (file or memory) that counts the records it is asked to apply."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.applied_records = 0

    def apply(self, partition: int, records: Iterable[Any], next_offset: int) -> None:
        records = list(records)
        self.applied_records += len(records)
        super().apply(partition, records, next_offset)


def _session(k: int) -> str:
    # Every 1000th id is not ASCII: the partition is taken of its UTF-8 bytes.
    return f"chat ü {k}" if k % 1000 == 7 else f"user-{k:05d}"


def _message(session: str, i: int) -> BaseMessage:
    if i % 2 == 0:
        return HumanMessage(content=f"{session} asks #{i}")
    return AIMessage(content=f"{session} is answered #{i}")


def _expected(session: str, count: int) -> list[BaseMessage]:
    return [_message(session, i) for i in range(count)]


def _library_session(j: int) -> str:
    return f"library-{j}"


async def _bulk_load(bootstrap: str, topic: str) -> int:
    """Every session's messages, interleaved across sessions, in the documented format."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for i in range(PER_SESSION):
            for k in range(SESSIONS):
                session = _session(k).encode()
                partition = (murmur2(session) & 0x7FFFFFFF) % PARTITIONS
                pending.append(
                    await producer.send(
                        topic,
                        json.dumps(message_to_dict(_message(_session(k), i))).encode(),
                        key=session + b"\x00m" + b"%016x" % (k << 8 | i),
                        partition=partition,
                    )
                )
            await asyncio.gather(*pending)
            pending.clear()
    finally:
        await producer.stop()
    return SESSIONS * PER_SESSION


async def _check_sample(client: AsyncKafkaHistoryClient, seed: int) -> None:
    """A random sample reads back in full and as a last-N window, content and order."""
    rng = random.Random(seed)
    for k in rng.sample(range(SESSIONS), 200):
        session = _session(k)
        expected = _expected(session, PER_SESSION)
        assert await client.history(session, messages_mode="full").aget_messages() == expected
        assert await client.history(session).alast_messages(2) == expected[-2:]
    for j in rng.sample(range(LIBRARY_SESSIONS), 5):
        session = _library_session(j)
        expected = _expected(session, 2 * TURNS)
        assert await client.history(session).alast_messages(20) == expected


def _all_sessions() -> list[str]:
    return sorted(
        [_session(k) for k in range(SESSIONS)]
        + [_library_session(j) for j in range(LIBRARY_SESSIONS)]
    )


async def test_twenty_thousand_sessions_rebuild_list_read_and_resume(
    kafka_bootstrap: str, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    topic = kafka_topics("scale")
    path = tmp_path / "view.sqlite"
    options: dict[str, Any] = {"shared_topic": topic, "shared_topic_settings": SETTINGS}

    # The library creates the topic; the bulk goes in raw, in the documented format.
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as creator:
        assert await creator.list_sessions() == []
    bulk = await _bulk_load(kafka_bootstrap, topic)

    # A fresh in-memory view applies the whole topic; concurrent library writes mix in.
    memory = CountingView(":memory:")
    async with AsyncKafkaHistoryClient(kafka_bootstrap, view=memory, **options) as writer:

        async def converse(session: str) -> None:
            history = writer.history(session)
            for t in range(TURNS):
                await history.aadd_messages(
                    [_message(session, 2 * t), _message(session, 2 * t + 1)]
                )

        await asyncio.gather(*(converse(_library_session(j)) for j in range(LIBRARY_SESSIONS)))
        total = bulk + LIBRARY_SESSIONS * 2 * TURNS
        assert await writer.list_sessions() == _all_sessions()
        assert memory.applied_records == total
        await _check_sample(writer, seed=1)

    # A fresh file view rebuilds from the topic: every record once.
    cold = CountingView(path)
    async with AsyncKafkaHistoryClient(kafka_bootstrap, view=cold, **options) as client:
        assert len(await client.list_sessions()) == SESSIONS + LIBRARY_SESSIONS
        assert cold.applied_records == total
        await _check_sample(client, seed=2)

    # A restarted client resumes from the file: nothing applied again, only what is new.
    warm = CountingView(path)
    async with AsyncKafkaHistoryClient(kafka_bootstrap, view=warm, **options) as client:
        session = _session(SESSIONS - 1)
        history = client.history(session, messages_mode="full")
        assert await history.aget_messages() == _expected(session, PER_SESSION)
        assert await client.list_sessions() == _all_sessions()
        assert warm.applied_records == 0
        await history.aadd_messages([_message(session, PER_SESSION)])
        assert await history.alast_messages(1) == [_message(session, PER_SESSION)]
        assert warm.applied_records == 1
        await _check_sample(client, seed=3)

    # The blocking client resumes from the same file too.
    def blocking_restart() -> tuple[int, int, list[BaseMessage]]:
        again = CountingView(path)
        with KafkaHistoryClient(kafka_bootstrap, view=again, **options) as client:
            listed = len(client.list_sessions())
            read = client.history(session, messages_mode="full").messages
            return again.applied_records, listed, read

    applied, listed, read = await anyio.to_thread.run_sync(blocking_restart)
    assert applied == 0
    assert listed == SESSIONS + LIBRARY_SESSIONS
    assert read == _expected(session, PER_SESSION + 1)

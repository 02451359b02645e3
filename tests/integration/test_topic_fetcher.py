"""The follower's own Fetch loop against the real broker, off the happy path.

A shared topic's view is only as right as the rows its fetcher hands it: every record once,
in offset order, from the position asked (also inside a compressed batch that begins below
it), control batches skipped yet passed, a position out of range reset to the log start, a
large backlog returned in slices, and transactional writes (committed or aborted) that never
leave a reader waiting for an offset no record has.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import ConsumerStoppedError
from langchain_core.messages import HumanMessage

from aiokafka_history import AsyncKafkaHistoryClient, TopicSettings
from aiokafka_history._codec import encode_messages
from aiokafka_history._kafka_fetch import KeyedRow, TopicFetcher
from aiokafka_history._shared_keys import message_key, partition_for
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio


async def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _log_starts(parts: list[int]) -> Mapping[int, int]:
    return dict.fromkeys(parts, 0)


@pytest.fixture
async def client(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaClient]:
    kafka = AIOKafkaClient(bootstrap_servers=kafka_bootstrap)
    await kafka.bootstrap()
    try:
        yield kafka
    finally:
        await kafka.close()


async def _drain(
    fetcher: TopicFetcher, until: Mapping[int, int], *, calls: list[int] | None = None
) -> dict[int, list[KeyedRow]]:
    """Fetch until every partition's position is ``until``."""
    got: dict[int, list[KeyedRow]] = {p: [] for p in until}
    for _ in range(200):
        rows, positions = await fetcher.fetch(0.5)
        if calls is not None:
            calls.append(sum(len(r) for r in rows.values()))
        for p, records in rows.items():
            got[p].extend(records)
        if all(positions[p] == end for p, end in until.items()):
            return got
    raise AssertionError(f"positions {fetcher.positions} never reached {dict(until)}")


async def test_every_record_once_in_order_from_the_position_asked(
    kafka_bootstrap: str, kafka_topics: TopicFactory, client: AIOKafkaClient
) -> None:
    topic = kafka_topics("fetch")
    await _create(kafka_bootstrap, topic, 3)
    # gzip: each send_batch is one compressed batch, which a fetch returns whole.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type="gzip")
    await producer.start()
    try:
        for p in range(3):
            batch = producer.create_batch()
            for i in range(10):
                batch.append(key=f"k{i}".encode(), value=f"p{p}-{i}".encode(), timestamp=None)
            await (await producer.send_batch(batch, topic, partition=p))
        await producer.send_and_wait(topic, None, key=b"gone", partition=0)  # a tombstone
    finally:
        await producer.stop()
    client.add_topic(topic)
    await client.force_metadata_update()
    # Partition 1 from the middle of its compressed batch.
    fetcher = TopicFetcher(client, topic, {0: 0, 1: 5, 2: 0}, log_starts=_log_starts)
    try:
        got = await _drain(fetcher, {0: 11, 1: 10, 2: 10})
    finally:
        fetcher.close()
    assert [r[0] for r in got[0]] == list(range(11))
    assert [r[3] for r in got[0]][:10] == [f"p0-{i}".encode() for i in range(10)]
    assert got[0][10][2:] == (b"gone", None)
    assert [(r[0], r[2], r[3]) for r in got[1]] == [
        (i, f"k{i}".encode(), f"p1-{i}".encode()) for i in range(5, 10)
    ]
    assert len(got[2]) == 10
    assert all(r[1] > 0 for rows in got.values() for r in rows)  # timestamps kept
    with pytest.raises(ConsumerStoppedError):
        await fetcher.fetch(0.1)  # closed


async def test_a_position_past_the_end_is_reset_to_the_log_start(
    kafka_bootstrap: str,
    kafka_topics: TopicFactory,
    client: AIOKafkaClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As after a topic was deleted and made again: the follower starts over, and says so."""
    topic = kafka_topics("fetch")
    await _create(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(3):
            await producer.send_and_wait(topic, b"secret-payload", key=b"k", partition=0)
    finally:
        await producer.stop()
    client.add_topic(topic)
    await client.force_metadata_update()
    asked: list[list[int]] = []

    async def log_starts(parts: list[int]) -> Mapping[int, int]:
        asked.append(parts)
        return dict.fromkeys(parts, 0)

    fetcher = TopicFetcher(client, topic, {0: 1_000}, log_starts=log_starts)
    caplog.set_level(logging.WARNING, logger="aiokafka_history")
    try:
        got = await _drain(fetcher, {0: 3})
    finally:
        fetcher.close()
    assert asked == [[0]]
    assert [r[0] for r in got[0]] == [0, 1, 2]
    assert "offset 1000 is out of range" in caplog.text
    assert "secret-payload" not in caplog.text


async def test_a_backlog_comes_in_slices_of_at_most_max_records(
    kafka_bootstrap: str, kafka_topics: TopicFactory, client: AIOKafkaClient
) -> None:
    """A rebuild never parses a whole 4 MiB response in one go on the event loop."""
    topic = kafka_topics("fetch")
    await _create(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for b in range(30):  # batches of exactly 100 records
            batch = producer.create_batch()
            for i in range(100):
                batch.append(key=str(b * 100 + i).encode(), value=b"x" * 20, timestamp=None)
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    client.add_topic(topic)
    await client.force_metadata_update()
    fetcher = TopicFetcher(client, topic, {0: 0}, log_starts=_log_starts, max_records=500)
    calls: list[int] = []
    try:
        got = await _drain(fetcher, {0: 3_000}, calls=calls)
    finally:
        fetcher.close()
    assert [r[0] for r in got[0]] == list(range(3_000))
    assert max(calls) == 500  # whole batches of 100 until the budget is spent
    assert sum(calls) == 3_000


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "aborted"])
async def test_transactional_writes_never_stall_a_shared_read(
    kafka_bootstrap: str, kafka_topics: TopicFactory, commit: bool
) -> None:
    """A transaction's marker takes an offset no message has: reads must not wait for it.

    The view follows uncommitted data (as langchain_community's consumer does): a message
    written in a transaction shows even when the transaction aborted.
    """
    topic = kafka_topics("shared")
    settings = TopicSettings(partition=3)
    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, read_timeout=10, shared_topic=topic, shared_topic_settings=settings
    ) as ours:
        history = ours.history("s1", messages_mode="full")
        await history.aadd_user_message("before")
        raw = b"s1"
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"t-{uuid.uuid4().hex}"
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            (value,) = encode_messages(
                [HumanMessage(content="in a transaction")], key=raw, max_record_bytes=1 << 20
            )
            await producer.send_and_wait(
                topic, value, key=message_key(raw), partition=partition_for(raw, 3)
            )
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
        finally:
            await producer.stop()
        await history.aadd_user_message("after")
        got = [m.content for m in await history.aget_messages()]
        assert got == ["before", "in a transaction", "after"]


async def test_after_records_the_next_fetch_lingers_until_hurried(
    kafka_bootstrap: str, kafka_topics: TopicFactory, client: AIOKafkaClient
) -> None:
    """Writes arriving one by one are taken several at a time, unless a reader is waiting."""
    topic = kafka_topics("fetch")
    await _create(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    client.add_topic(topic)
    await client.force_metadata_update()
    fetcher = TopicFetcher(client, topic, {0: 0}, log_starts=_log_starts)
    try:
        await producer.send_and_wait(topic, b"one", partition=0)
        rows: dict[int, list[KeyedRow]] = {}
        while not rows:
            rows, _ = await fetcher.fetch(1.0, linger=60.0)
        assert [r[3] for r in rows[0]] == [b"one"]
        await producer.send_and_wait(topic, b"two", partition=0)
        await producer.send_and_wait(topic, b"three", partition=0)
        held, positions = await fetcher.fetch(0.3, linger=60.0)
        assert held == {} and positions == {0: 1}  # held back: nobody hurried
        fetcher.hurry()
        got: list[bytes | None] = []

        async def both() -> dict[int, int]:
            while len(got) < 2:
                rows, positions = await fetcher.fetch(1.0, linger=60.0)
                got.extend(r[3] for r in rows.get(0, []))
            return positions

        assert await asyncio.wait_for(both(), 5) == {0: 3}  # not after the 60 s linger
        assert got == [b"two", b"three"]
    finally:
        fetcher.close()
        await producer.stop()

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
from aiokafka.errors import ConsumerStoppedError, KafkaError
from langchain_core.messages import HumanMessage

from aiokafka_history import AsyncKafkaHistoryClient, TopicSettings
from aiokafka_history._codec import encode_messages
from aiokafka_history._kafka_fetch import KeyedRow, TopicFetcher
from aiokafka_history._shared_keys import message_key, partition_for
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio


async def _new_topic(
    bootstrap: str, topics: TopicFactory, client: AIOKafkaClient, partitions: int
) -> str:
    """A fresh topic, its leaders known to ``client``."""
    topic = topics("fetch")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    client.add_topic(topic)
    await client.force_metadata_update()
    return topic


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
    topic = await _new_topic(kafka_bootstrap, kafka_topics, client, 3)
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
    topic = await _new_topic(kafka_bootstrap, kafka_topics, client, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(3):
            await producer.send_and_wait(topic, b"secret-payload", key=b"k", partition=0)
    finally:
        await producer.stop()
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
    topic = await _new_topic(kafka_bootstrap, kafka_topics, client, 1)
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
    topic = await _new_topic(kafka_bootstrap, kafka_topics, client, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
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


@pytest.mark.parametrize("codec", ["lz4", "snappy", "zstd", "gzip"])
async def test_batches_compressed_by_other_producers_are_read(
    kafka_bootstrap: str, kafka_topics: TopicFactory, codec: str
) -> None:
    """A user's other producers may compress with any codec Kafka has; none stops a session."""
    topic = kafka_topics("shared")
    raw = b"s1"
    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, read_timeout=10, shared_topic=topic, shared_topic_settings=TopicSettings()
    ) as ours:
        history = ours.history("s1", messages_mode="full")
        await history.aadd_user_message("before")
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type=codec)
        await producer.start()
        try:
            (value,) = encode_messages(
                [HumanMessage(content=f"in {codec}")], key=raw, max_record_bytes=1 << 20
            )
            await producer.send_and_wait(topic, value, key=message_key(raw), partition=0)
        finally:
            await producer.stop()
        await history.aadd_user_message("after")
        assert [m.content for m in await history.aget_messages()] == [
            "before",
            f"in {codec}",
            "after",
        ]


class _OneResponse:
    """A client whose first Fetch gets ``payload`` for partition 0; later ones wait."""

    class cluster:  # the attribute aiokafka's client has
        @staticmethod
        def leader_for_partition(_: object) -> int:
            return 1

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.sent = 0

    async def send(self, node: int, request: object) -> object:
        self.sent += 1
        if self.sent == 1:
            response = type("Response", (), {})()
            response.topics = [("t", [(0, 0, 9, 9, -1, [], self.payload)])]
            return response
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    def force_metadata_update(self) -> None:
        pass


def _batch(base: int, count: int) -> bytes:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    for i in range(count):
        builder.append(i, 1000 + i, b"k", b"v%d" % (base + i), [])
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big", signed=True)  # the base offset is outside the CRC
    return bytes(data)


async def test_a_batch_that_cannot_be_read_stops_its_partition_there() -> None:
    """The records before it are returned, it is raised, and nothing after it is skipped."""
    bad = bytearray(_batch(3, 3))
    bad[-1] ^= 0xFF  # a byte under the CRC
    fetcher = TopicFetcher(
        _OneResponse(_batch(0, 3) + bytes(bad) + _batch(6, 3)),
        "t",
        {0: 0},
        log_starts=_log_starts,
    )
    try:
        rows, positions = await fetcher.fetch(1.0)
        assert [r[0] for r in rows[0]] == [0, 1, 2] and positions == {0: 3}
        with pytest.raises(KafkaError, match=r"t\[0\]@3 cannot be read") as raised:
            await fetcher.fetch(0.1)
        assert "v3" not in str(raised.value)
        rows, positions = await fetcher.fetch(0.1)
        assert rows == {} and positions == {0: 3}  # asked again from the bad batch
    finally:
        fetcher.close()


async def test_a_large_record_is_read_while_another_partition_keeps_getting_writes(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """A broker lifts the per-partition fetch limit only for the first partition with data:
    the follower rotates the order, so a busy partition before it never starves it."""
    topic = kafka_topics("shared")
    settings = TopicSettings(partition=2)

    def session_on(partition: int, prefix: str) -> str:
        return next(
            f"{prefix}{i}"
            for i in range(1000)
            if partition_for(f"{prefix}{i}".encode(), 2) == partition
        )

    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, read_timeout=5, shared_topic=topic, shared_topic_settings=settings
    ) as client:
        big = client.history(session_on(1, "big"), messages_mode="full")
        assert await big.aget_messages() == []  # the view follows
        stop = asyncio.Event()

        async def chatter() -> int:  # another client, as another process would be
            count = 0
            async with AsyncKafkaHistoryClient(
                kafka_bootstrap, shared_topic=topic, shared_topic_settings=settings
            ) as other:
                busy = other.history(session_on(0, "chat"))
                while not stop.is_set():
                    await busy.aadd_user_message("hi")
                    count += 1
            return count

        writers = [asyncio.ensure_future(chatter()) for _ in range(3)]
        try:
            await asyncio.sleep(2)
            await big.aadd_user_message("B" * 400_000)  # > the 256 KiB per partition
            assert [len(str(m.content)) for m in await big.aget_messages()] == [400_000]
        finally:
            stop.set()
            written = sum(await asyncio.gather(*writers))
        assert written > 50  # the other partition was busy all along


async def test_each_fetch_puts_another_partition_first() -> None:
    """The order a broker serves partitions in (only the first may exceed its byte limit)."""

    class Recording(_OneResponse):
        def __init__(self) -> None:
            super().__init__(b"")
            self.firsts: list[int] = []

        async def send(self, node: int, request: object) -> object:
            self.firsts.append(request.topics[0][1][0][0])  # type: ignore[attr-defined]
            response = type("Response", (), {})()
            response.topics = []
            return response

    client = Recording()
    fetcher = TopicFetcher(client, "t", {0: 0, 1: 0, 2: 0}, log_starts=_log_starts)
    try:
        for _ in range(6):
            await fetcher.fetch(0.1)
    finally:
        fetcher.close()
    assert len(client.firsts) >= 6 and set(client.firsts) == {0, 1, 2}


async def test_no_linger_while_the_log_holds_more_than_was_fetched() -> None:
    """A view that is behind (a response capped by its byte limits) fetches on at once."""

    class Behind(_OneResponse):
        async def send(self, node: int, request: object) -> object:
            self.sent += 1
            response = type("Response", (), {})()
            at = 3 * (self.sent - 1)
            response.topics = [("t", [(0, 0, 100, 100, -1, [], _batch(at, 3))])]
            return response

    client = Behind(b"")
    fetcher = TopicFetcher(client, "t", {0: 0}, log_starts=_log_starts)
    try:
        for _ in range(3):
            rows, _ = await fetcher.fetch(1.0, linger=60.0)
            assert rows
    finally:
        fetcher.close()
    assert client.sent >= 3

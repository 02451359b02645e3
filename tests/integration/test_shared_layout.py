"""The shared-topic layout: what only it has (the topic, the view, deletion, migration).

Behaviour common to both layouts is tested through the ``layout`` fixture in the other files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    ConfigurationError,
    HistoryClosedError,
    InvalidSessionIdError,
    KafkaHistoryClient,
    SqliteView,
    TopicSettings,
    copy_sessions,
)
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio

SMALL = TopicSettings(partition=3)


def _contents(messages: Iterable[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    async with _admin(bootstrap) as admin:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        (_code, _msg, _type, _name, entries) = response.resources[0]
        return {e[0]: e[1] for e in entries}


async def _raw_records(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for rows in batch.values():
                out.extend(rows)
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                return out
        raise AssertionError("the raw read of the shared topic did not catch up")
    finally:
        await consumer.stop()


# -- options and validation --------------------------------------------------------------------


def test_options_are_checked_before_any_io() -> None:
    with pytest.raises(ConfigurationError, match="not a legal Kafka topic name"):
        KafkaHistoryClient("127.0.0.1:1", shared_topic="no spaces")
    with pytest.raises(ConfigurationError, match="reserved"):
        KafkaHistoryClient("127.0.0.1:1", shared_topic="__consumer_offsets")
    with pytest.raises(ConfigurationError, match="topic_prefix"):
        KafkaHistoryClient("127.0.0.1:1", shared_topic="chats", topic_prefix="chat.")
    with pytest.raises(ConfigurationError, match="pass shared_topic"):
        KafkaHistoryClient("127.0.0.1:1", view=":memory:")
    with KafkaHistoryClient("127.0.0.1:1", shared_topic="chats") as client:
        with pytest.raises(ConfigurationError, match="shared topic"):
            client.history("s", ttl_ms=1000)
        with pytest.raises(InvalidSessionIdError, match="NUL"):
            client.history("a\x00b")
        with pytest.raises(InvalidSessionIdError, match="1024 bytes"):
            client.history("x" * 1025)
        # Any other string is a session id: no topic-name rule applies.
        assert client.history("user 42 / chat: ü").session_id == "user 42 / chat: ü"


# -- reads across processes and restarts -------------------------------------------------------


async def test_a_read_sees_every_write_acknowledged_before_it_in_another_client(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("shared")
    options: dict[str, Any] = {"shared_topic": topic, "shared_topic_settings": SMALL}
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap, **options) as writer,
        AsyncKafkaHistoryClient(kafka_bootstrap, **options) as reader,
    ):
        theirs = reader.history("s1", messages_mode="full")
        assert await theirs.aget_messages() == []  # the reader's view is running
        mine = writer.history("s1")
        for i in range(20):
            await mine.aadd_user_message(f"m{i}")
            # No sleep: the other view must have applied the write before answering.
            assert _contents(await theirs.aget_messages()) == [f"m{j}" for j in range(i + 1)]
            assert _contents(await theirs.alast_messages(1)) == [f"m{i}"]


def test_position_and_messages_survive_a_new_process(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("shared")
    script = (
        "import sys\n"
        "from aiokafka_history import KafkaHistoryClient\n"
        "with KafkaHistoryClient(sys.argv[2], shared_topic=sys.argv[1]) as c:\n"
        "    print(','.join(m.content for m in c.history('s1').messages))\n"
    )
    with KafkaHistoryClient(kafka_bootstrap, shared_topic=topic, shared_topic_settings=SMALL) as c:
        history = c.history("s1")
        history.add_messages([HumanMessage(content=f"m{i}") for i in range(5)])
        assert len(history.messages_from_last_consumed(max_message_count=2)) == 2

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", script, topic, kafka_bootstrap],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
        return done.stdout.strip()

    assert run() == "m2,m3,m4"
    assert run() == ""


class CountingView(SqliteView):
    """A file view that counts the records it is asked to apply."""

    applied_records = 0

    def apply(self, partition: int, records: Iterable[Any], next_offset: int) -> None:
        records = list(records)
        type(self).applied_records += len(records)
        super().apply(partition, records, next_offset)


async def test_a_file_view_resumes_instead_of_rebuilding(
    kafka_bootstrap: str, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    topic = kafka_topics("shared")
    path = tmp_path / "view.sqlite"
    options: dict[str, Any] = {"shared_topic": topic, "shared_topic_settings": SMALL}
    async with AsyncKafkaHistoryClient(kafka_bootstrap, view=path, **options) as client:
        for s in range(10):
            await client.history(f"s{s}").aadd_messages(
                [HumanMessage(content=f"{s}-{i}") for i in range(10)]
            )
        assert len(await client.list_sessions()) == 10
    CountingView.applied_records = 0
    async with AsyncKafkaHistoryClient(kafka_bootstrap, view=CountingView(path), **options) as c:
        history = c.history("s3", messages_mode="full")
        assert _contents(await history.aget_messages()) == [f"3-{i}" for i in range(10)]
        assert await c.list_sessions() == [f"s{s}" for s in range(10)]
        assert CountingView.applied_records == 0  # nothing of the 100 was applied again
        await c.history("s3").aadd_user_message("new")
        assert _contents(await history.alast_messages(1)) == ["new"]
        assert CountingView.applied_records == 1
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (101,)
    finally:
        db.close()


class SlowBindView(SqliteView):
    """A view whose binding waits until released, so a close can land while a client starts."""

    def __init__(self) -> None:
        super().__init__()
        self.binding = threading.Event()
        self.release = threading.Event()

    def bind(self, topic: str, partitions: int, stale_before: float) -> dict[int, int]:
        self.binding.set()
        self.release.wait(10)
        return super().bind(topic, partitions, stale_before)


async def test_a_close_while_the_view_starts_fails_the_read_cleanly_and_leaks_nothing(
    kafka_bootstrap: str, kafka_topics: TopicFactory, socket_fds: Callable[[], int]
) -> None:
    topic = kafka_topics("shared")
    before, tasks = socket_fds(), asyncio.all_tasks()
    view = SlowBindView()
    client = AsyncKafkaHistoryClient(
        kafka_bootstrap, shared_topic=topic, shared_topic_settings=SMALL, view=view
    )
    read = asyncio.ensure_future(client.history("s1").aget_messages())
    assert await asyncio.to_thread(view.binding.wait, 10)
    await client.aclose()
    view.release.set()
    with pytest.raises(HistoryClosedError):
        await read
    await client.aclose()  # idempotent, after a close that met a start
    await asyncio.sleep(0.2)
    assert socket_fds() == before
    assert asyncio.all_tasks() - tasks == set()


@pytest.mark.parametrize("where", ["a directory", "a missing directory"])
async def test_a_view_path_that_cannot_be_opened_raises_a_configuration_error(
    kafka_bootstrap: str, kafka_topics: TopicFactory, tmp_path: Path, where: str
) -> None:
    path = tmp_path if where == "a directory" else tmp_path / "missing" / "view.sqlite"
    options: dict[str, Any] = {"shared_topic": kafka_topics("shared"), "view": path}
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as client:
        with pytest.raises(ConfigurationError, match="view file"):
            await client.history("s1").aget_messages()


# -- strays, deletion, retention ---------------------------------------------------------------


async def test_clear_and_delete_remove_records_physically(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """On a small-segment compacted topic the cleaner removes what was cleared or deleted."""
    topic = kafka_topics("compacted")
    async with _admin(kafka_bootstrap) as admin:
        configs = {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "100",
            "max.compaction.lag.ms": "100",
        }
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    gone = [f"gone-{i}" for i in range(5)]
    async with AsyncKafkaHistoryClient(kafka_bootstrap, shared_topic=topic) as client:
        cleared = client.history("cleared", messages_mode="full")
        deleted = client.history("deleted")
        kept = client.history("kept", messages_mode="full")
        await cleared.aadd_messages([HumanMessage(content=c) for c in gone])
        await deleted.aadd_messages([AIMessage(content=c) for c in gone])
        assert len(await deleted.aget_messages()) == 5  # stores a position, deleted too
        await kept.aadd_user_message("kept-0")
        await cleared.aclear()
        assert await client.delete_session("deleted") is True
        assert await client.delete_session("deleted") is False
        assert await cleared.aget_messages() == []
        assert await client.session_exists("deleted") is False
        assert await client.list_sessions() == ["kept"]
        deadline = time.monotonic() + 90
        while True:
            # Writes roll segments, so the cleaner can act on the ones holding the removals.
            await kept.aadd_user_message("filler")
            await asyncio.sleep(1.0)
            records = await _raw_records(kafka_bootstrap, topic, 1)
            payloads = [r.value for r in records if r.value]
            keys = [r.key for r in records]
            leftover = [p for p in payloads if b"gone-" in p]
            positions = [k for k in keys if k.startswith(b"deleted\x00p")]
            if not leftover and not positions:
                break
            assert time.monotonic() < deadline, f"{len(leftover)} removed messages remain"
        assert any(b"kept-0" in p for p in payloads)
        assert _contents(await kept.aget_messages())[0] == "kept-0"
        await cleared.aadd_user_message("again")
        assert _contents(await cleared.aget_messages()) == ["again"]


async def test_records_retention_removed_leave_the_view(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("shared")
    options: dict[str, Any] = {
        "shared_topic": topic,
        "shared_topic_settings": TopicSettings(partition=1),
    }
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as client:
        history = client.history("s1", messages_mode="full")
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(4)])
        async with _admin(kafka_bootstrap) as admin:
            # What retention does to old segments: the log start moves past them.
            await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(2)})
        deadline = time.monotonic() + 30
        while _contents(await history.aget_messages()) != ["m2", "m3"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)


# -- migration ---------------------------------------------------------------------------------


async def test_migration_both_ways_is_idempotent(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    shared = kafka_topics("shared")
    sessions = [kafka_topics("per-session") for _ in range(3)]
    conversation = {
        s: [
            HumanMessage(content=f"{s}:{i}") if i % 2 == 0 else AIMessage(content=f"{s}:{i}")
            for i in range(7 + n)
        ]
        for n, s in enumerate(sessions)
    }
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap) as topics,
        AsyncKafkaHistoryClient(
            kafka_bootstrap, shared_topic=shared, shared_topic_settings=SMALL
        ) as into,
    ):
        for s, messages in conversation.items():
            await topics.history(s).aadd_messages(messages)
        assert await copy_sessions(topics, into, sessions) == {
            s: 7 + n for n, s in enumerate(sessions)
        }
        assert await copy_sessions(topics, into, sessions) == dict.fromkeys(sessions, 0)
        for s, messages in conversation.items():
            assert await into.history(s, messages_mode="full").aget_messages() == messages
        # A source that grew since: only the new messages are copied.
        await topics.history(sessions[0]).aadd_user_message("late")
        assert (await copy_sessions(topics, into, sessions[:1])) == {sessions[0]: 1}
        # And back: into fresh topics of another prefix.
        async with AsyncKafkaHistoryClient(kafka_bootstrap, topic_prefix="back.") as back:
            try:
                assert await copy_sessions(into, back, sessions[1:]) == {
                    s: len(conversation[s]) for s in sessions[1:]
                }
                for s in sessions[1:]:
                    assert (
                        await back.history(s, messages_mode="full").aget_messages()
                        == (conversation[s])
                    )
            finally:
                for s in sessions[1:]:
                    await back.delete_session(s)
        # A target holding something else is refused, and nothing is written to it.
        target = into.history(sessions[2], messages_mode="full")
        await target.aclear()
        await target.aadd_user_message("different")
        with pytest.raises(ConfigurationError, match="not the source's first ones"):
            await copy_sessions(topics, into, [sessions[2]])
        assert _contents(await target.aget_messages()) == ["different"]


async def test_langchain_community_topics_migrate(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """A topic written the way langchain_community writes (3 partitions, no key)."""
    source = kafka_topics("community")
    shared = kafka_topics("shared")
    async with _admin(kafka_bootstrap) as admin:
        await admin.create_topics([NewTopic(source, 3, 1)])
    messages = [
        HumanMessage(content=f"q{i}") if i % 2 == 0 else AIMessage(content=f"a{i}")
        for i in range(12)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # Across partitions only timestamps tell the write order (milliseconds): turns of a
        # conversation are further apart than that, so give each its own millisecond.
        began = int(time.time() * 1000)
        for i, m in enumerate(messages):
            await producer.send_and_wait(
                source,
                json.dumps(message_to_dict(m)).encode(),
                partition=i % 3,
                timestamp_ms=began + i,
            )
    finally:
        await producer.stop()
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap) as topics,
        AsyncKafkaHistoryClient(
            kafka_bootstrap, shared_topic=shared, shared_topic_settings=SMALL
        ) as into,
    ):
        assert await copy_sessions(topics, into, [source]) == {source: 12}
        assert await into.history(source, messages_mode="full").aget_messages() == messages
        assert isinstance(into.history(source), AsyncKafkaChatMessageHistory)


async def test_many_sessions_adding_at_once_on_one_partition_all_succeed(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """aiokafka gives up queueing early when many calls wait on one partition; we retry."""
    options: dict[str, Any] = {
        "shared_topic": kafka_topics("shared"),
        "shared_topic_settings": TopicSettings(partition=1),
    }
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as client:
        await client.history("first").aadd_user_message("start")

        async def chat(n: int) -> None:
            history = client.history(f"session-{n}")
            for turn in range(5):
                await history.aadd_user_message(f"{n}:{turn}")

        await asyncio.gather(*(chat(n) for n in range(200)))
        for n in (0, 77, 199):
            history = client.history(f"session-{n}", messages_mode="full")
            assert _contents(await history.aget_messages()) == [f"{n}:{t}" for t in range(5)]
        assert len(await client.list_sessions()) == 201


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def test_reads_with_nothing_new_write_nothing(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """A stored position moves only past the session's own messages.

    Committing past the position record a commit writes would move the end again: every idle
    read (a chain's, on every turn) would write a record.
    """
    topic = kafka_topics("shared")
    options: dict[str, Any] = {"shared_topic": topic, "shared_topic_settings": SMALL}
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as client:
        history = client.history("s1")
        await history.aadd_messages([HumanMessage(content="a"), AIMessage(content="b")])
        assert _contents(await history.aget_messages()) == ["a", "b"]
        await client.history("s2").aadd_user_message("another session's")
        before = await _end_offsets(kafka_bootstrap, topic, 3)
        for _ in range(5):
            assert await history.aget_messages() == []
            assert await history.alast_messages(1) != []
        assert await _end_offsets(kafka_bootstrap, topic, 3) == before
        await history.aadd_user_message("c")
        assert _contents(await history.aget_messages()) == ["c"]
        assert _contents(await client.history("s2").aget_messages()) == ["another session's"]
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **options) as again:  # positions kept
        assert await again.history("s1").aget_messages() == []
        assert await again.history("s2").aget_messages() == []
        await again.history("s1").aadd_user_message("d")
        assert _contents(await again.history("s1").aget_messages()) == ["d"]

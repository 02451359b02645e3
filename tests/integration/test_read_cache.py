"""Full reads keep what they read: a warm full read decodes only what is new, and is right
after every change to the log (another writer, clears here or in another process, retention,
a topic deleted and made again). Both layouts, on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.partitioner import DefaultPartitioner
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from aiokafka_history import AsyncKafkaHistoryClient, ConfigurationError
from aiokafka_history._codec import encode_message
from tests.layouts import OPEN_IN_LAYOUT, layout_args

pytestmark = pytest.mark.anyio


def _texts(messages: Sequence[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


def _turns(prefix: str, count: int) -> list[BaseMessage]:
    return [
        HumanMessage(content=f"{prefix}{i}") if i % 2 == 0 else AIMessage(content=f"{prefix}{i}")
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def test_a_warm_full_read_reuses_what_it_decoded_and_adds_what_is_new(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages(_turns("m", 40))
        first = await history.aget_messages()
        again = await history.aget_messages()
        assert _texts(again) == [f"m{i}" for i in range(40)]
        assert all(a is b for a, b in zip(first, again, strict=True))  # not decoded again
        await history.aadd_messages(_turns("n", 3))
        grown = await history.aget_messages()
        assert _texts(grown) == [f"m{i}" for i in range(40)] + ["n0", "n1", "n2"]
        assert all(a is b for a, b in zip(first, grown[:40], strict=True))
        grown.clear()  # the list handed out is the caller's own
        assert len(await history.aget_messages()) == 43
        # Another history object of the same client shares what was read.
        other = client.history(session_id, messages_mode="full")
        assert (await other.aget_messages())[0] is first[0]
        timed = await other.atimed_messages()
        assert [m for _, m in timed][:40] == first


async def test_a_warm_read_sees_another_writer_and_its_clear(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as mine,
        AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as theirs,
    ):
        reader = mine.history(session_id, messages_mode="full")
        writer = theirs.history(session_id, messages_mode="full")
        await reader.aadd_messages(_turns("m", 3))
        assert _texts(await reader.aget_messages()) == ["m0", "m1", "m2"]
        await writer.aadd_message(AIMessage(content="theirs"))
        assert _texts(await reader.aget_messages()) == ["m0", "m1", "m2", "theirs"]
        await writer.aclear()
        assert await reader.aget_messages() == []
        await writer.aadd_message(HumanMessage(content="after"))
        assert _texts(await reader.aget_messages()) == ["after"]
        await reader.aclear()  # its own clear too
        assert await reader.aget_messages() == []


async def test_a_warm_read_sees_a_clear_made_by_another_process(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages(_turns("m", 5))
        assert len(await history.aget_messages()) == 5
        script = OPEN_IN_LAYOUT + (
            "from langchain_core.messages import HumanMessage\n"
            "with open_history(*sys.argv[1:5]) as h:\n"
            "    h.clear()\n"
            "    h.add_messages([HumanMessage(content=t) for t in 'xyzwvu'])\n"
        )
        args = [session_id, kafka_bootstrap, *layout_args(layout)]
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-W", "error", "-c", script, *args],
            capture_output=True,
            timeout=90,
            check=True,
        )
        # Six new messages after the clear: as many records as before and more.
        assert _texts(await history.aget_messages()) == ["x", "y", "z", "w", "v", "u"]


async def test_a_warm_read_drops_what_retention_removed(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages(_turns("m", 6))
        assert len(await history.aget_messages()) == 6
        topic = layout.get("shared_topic") or history.topic
        partitions = layout["shared_topic_settings"].partition if layout else 1
        async with _admin(kafka_bootstrap) as admin:
            ends = await _ends(kafka_bootstrap, topic, partitions)
            # What retention does to old segments: the log start moves past them.
            await admin.delete_records(
                {TopicPartition(topic, p): RecordsToDelete(min(end, 2)) for p, end in ends.items()}
            )
        expected = ["m2", "m3", "m4", "m5"]
        for _ in range(60):  # the shared view drops them within seconds
            if _texts(await history.aget_messages()) == expected:
                break
            await asyncio.sleep(0.25)
        assert _texts(await history.aget_messages()) == expected
        await history.aadd_message(HumanMessage(content="m6"))
        assert _texts(await history.aget_messages()) == [*expected, "m6"]


async def _ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def test_a_topic_deleted_and_made_again_is_read_afresh(
    kafka_bootstrap: str, session_id: str
) -> None:
    """Topic per session: a new topic of the same name and as many records, other content."""
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages(_turns("old", 3))
        assert _texts(await history.aget_messages()) == ["old0", "old1", "old2"]
        topic = history.topic
        async with _admin(kafka_bootstrap) as admin:
            await admin.delete_topics([topic])
            for _ in range(100):
                if topic not in await admin.list_topics():
                    break
                await asyncio.sleep(0.1)
            await admin.create_topics([NewTopic(topic, 1, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for message in _turns("new", 3):  # same offsets, other records
                value = json.dumps(message_to_dict(message)).encode()
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        assert _texts(await history.aget_messages()) == ["new0", "new1", "new2"]


async def test_the_cache_is_bounded_and_can_be_switched_off(
    kafka_bootstrap: str, layout: dict[str, Any], make_session_id: Any
) -> None:
    first, second = make_session_id("a"), make_session_id("b")
    # The bound is in bytes of records: room for one session of three messages, not two.
    bound = sum(len(encode_message(m)) for m in [*_turns("a", 3), *_turns("b", 3)]) - 1
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout, read_cache_bytes=bound) as client:
        one = client.history(first, messages_mode="full")
        two = client.history(second, messages_mode="full")
        await one.aadd_messages(_turns("a", 3))
        await two.aadd_messages(_turns("b", 3))
        kept = await one.aget_messages()
        assert (await one.aget_messages())[0] is kept[0]
        await two.aget_messages()  # both do not fit: the least recently read goes
        again = await one.aget_messages()
        assert _texts(again) == ["a0", "a1", "a2"] and again[0] is not kept[0]
        await one.aadd_messages(_turns("c", 3))  # 6 messages alone: never kept
        big = await one.aget_messages()
        assert len(big) == 6 and (await one.aget_messages())[0] is not big[0]
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout, read_cache_bytes=0) as client:
        history = client.history(first, messages_mode="full")
        read = await history.aget_messages()
        assert _texts(read)[:3] == ["a0", "a1", "a2"]
        assert (await history.aget_messages())[0] is not read[0]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_cache_size_names_the_rule(kafka_bootstrap: str, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="read_cache_bytes must be an int >= 0"):
        AsyncKafkaHistoryClient(kafka_bootstrap, read_cache_bytes=bad)  # type: ignore[arg-type]


async def test_a_warm_read_of_several_partitions_keeps_each_partition_in_offset_order(
    kafka_bootstrap: str, session_id: str
) -> None:
    """Topic per session, 3 partitions: another writer's record with an older timestamp lands
    after ours in the same partition; a warm read must equal a whole read."""
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap) as cached,
        AsyncKafkaHistoryClient(kafka_bootstrap, read_cache_bytes=0) as plain,
    ):
        history = cached.history(session_id, partition=3, messages_mode="full")
        await history.aadd_messages(_turns("a", 2))
        assert _texts(await history.aget_messages()) == ["a0", "a1"]
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            late = json.dumps(message_to_dict(HumanMessage(content="late"))).encode()
            older = int(time.time() * 1000) - 60_000
            await producer.send_and_wait(
                history.topic, late, key=session_id.encode(), timestamp_ms=older
            )
        finally:
            await producer.stop()
        whole = plain.history(session_id, partition=3, messages_mode="full")
        assert _texts(await history.aget_messages()) == _texts(await whole.aget_messages())
        assert _texts(await history.aget_messages()) == ["a0", "a1", "late"]


async def test_a_topic_made_again_with_fewer_partitions_is_read_afresh(
    kafka_bootstrap: str, make_session_id: Any
) -> None:
    # A session whose key goes to a partition other than 0 of 3.
    session = next(s for s in (make_session_id(f"p{i}") for i in range(50)) if _home(s) != 0)
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap) as mine,
        AsyncKafkaHistoryClient(kafka_bootstrap) as theirs,
    ):
        history = mine.history(session, partition=3, messages_mode="full")
        await history.aadd_messages(_turns("old", 2))
        assert _texts(await history.aget_messages()) == ["old0", "old1"]
        assert await theirs.history(session, partition=3).adelete_topic()
        await theirs.history(session, partition=1).aadd_message(HumanMessage(content="new"))
        assert _texts(await history.aget_messages()) == ["new"]


def _home(session_id: str) -> int:
    """The partition of 3 that a session's key goes to (Kafka's default partitioner)."""
    every = [0, 1, 2]
    partition: int = DefaultPartitioner()(session_id.encode(), every, every)
    return partition

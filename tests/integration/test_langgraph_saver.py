"""The Kafka savers' own promises: large states, strays, setup, the blocking twin, the bridge."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    ConfigurationError,
    InvalidSessionIdError,
    KafkaHistoryClient,
    TopicSettings,
)
from aiokafka_history.langgraph import (
    AsyncKafkaSaver,
    KafkaSaver,
    amove_session_to_thread,
    move_session_to_thread,
)
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio

SMALL = TopicSettings(partition=3)
MiB = 1024 * 1024


def _config(thread: str, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = versions
    return checkpoint


async def _record_sizes(bootstrap: str, topic: str) -> list[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(SMALL.partition)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        sizes: list[int] = []
        while sum(ends.values()) > len(sizes):
            for rows in (await consumer.getmany(timeout_ms=500)).values():
                sizes.extend(len(r.value or b"") for r in rows)
        return sizes
    finally:
        await consumer.stop()


async def test_a_5_mib_state_is_chunked_and_read_back_whole(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("lg")
    big = os.urandom(5 * MiB)
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        stored = await saver.aput(
            _config("big"),
            _checkpoint({"blob": big, "small": "x"}, {"blob": 1, "small": 1}),
            {"source": "loop", "step": 0},
            {"blob": 1, "small": 1},
        )
        await saver.aput_writes(stored, [("blob", big)], "task-1")
    # Another client (another process's view) reads it back from Kafka.
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        found = await saver.aget_tuple(_config("big"))
    assert found is not None
    assert found.checkpoint["channel_values"] == {"blob": big, "small": "x"}
    assert found.pending_writes == [("task-1", "blob", big)]
    sizes = await _record_sizes(kafka_bootstrap, topic)
    assert len(sizes) > 10 and max(sizes) < MiB  # every record within the broker's limit


async def test_warm_reads_fold_only_what_is_new_and_stay_right_under_concurrency(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    # Reads keep one index per thread and fold only records appended since. Concurrent reads
    # while checkpoints are added see each put acknowledged before they began; a deletion
    # (tombstones, which the view applies as a rewrite) makes the next read start over.
    topic = kafka_topics("lg")
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        config = _config("t")
        stored: list[Any] = []
        for step in range(5):
            checkpoint = _checkpoint({"n": step}, {"n": step + 1})
            stored.append(await saver.aput(config, checkpoint, {"step": step}, {"n": step + 1}))
        first = await saver.aget_tuple(_config("t"))
        assert first is not None and first.metadata["step"] == 4

        async def put(step: int) -> int:
            checkpoint = _checkpoint({"n": step}, {"n": step + 1})
            stored.append(await saver.aput(stored[-1], checkpoint, {"step": step}, {"n": step + 1}))
            return step

        async def read(known: int) -> int:
            found = await saver.aget_tuple(_config("t"))
            assert found is not None
            assert found.checkpoint["channel_values"] == {"n": found.metadata["step"]}
            assert found.metadata["step"] >= known
            return int(found.metadata["step"])

        for step in range(5, 25):
            seen = await asyncio.gather(put(step), *(read(step - 1) for _ in range(4)))
            assert max(seen[1:]) <= step
        listed = [t.metadata["step"] async for t in saver.alist(_config("t"))]
        assert listed == list(range(24, -1, -1))

        await saver.adelete_for_runs([])  # nothing named: nothing goes
        await saver.aprune(["t"], strategy="keep_latest")
        after = [t.metadata["step"] async for t in saver.alist(_config("t"))]
        assert after == [24]
        newest = await saver.aget_tuple(_config("t"))
        assert newest is not None and newest.checkpoint["channel_values"] == {"n": 24}


async def test_a_listing_shows_the_thread_as_it_was_when_it_began(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    # Reads share one index per thread; a read made while the caller holds the first item of
    # `alist` folds a later write into it. The listing still shows what it began with.
    topic = kafka_topics("lg")
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        older = await saver.aput(_config("t"), _checkpoint({"n": 1}, {"n": 1}), {"step": 1}, {})
        await saver.aput(older, _checkpoint({"n": 2}, {"n": 2}), {"step": 2}, {})
        listing = saver.alist(_config("t"))
        first = await listing.__anext__()
        await saver.aput_writes(older, [("n", "late")], "task-x")
        assert (await saver.aget_tuple(older)).pending_writes == [("task-x", "n", "late")]  # type: ignore[union-attr]
        second = await listing.__anext__()
        assert [first.metadata["step"], second.metadata["step"]] == [2, 1]
        assert second.pending_writes == []
        assert [t.pending_writes async for t in saver.alist(older)] == [[("task-x", "n", "late")]]


async def test_a_copy_keeps_the_stored_bytes_of_units_this_version_does_not_fully_know(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    # A newer version may add header fields; a copy made by this one must not drop them.
    from aiokafka_history._shared_keys import message_key
    from aiokafka_history._thread_records import (
        CheckpointUnit,
        encode_unit,
        frame_unit,
    )

    topic = kafka_topics("lg")
    unit = CheckpointUnit("", "1", None, ("json", b"{}"), ("json", b"{}"), {}, ())
    data = encode_unit(unit)
    size = int.from_bytes(data[:4], "big")
    header = data[4 : 4 + size].replace(b'{"u":"cp"', b'{"u":"cp","from_the_future":1', 1)
    future = len(header).to_bytes(4, "big") + header + data[4 + size :]
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        await saver.setup()
        key_id = os.urandom(8)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic,
                frame_unit(future, [key_id], b"")[0],
                key=message_key(b"src", key_id),
                partition=(murmur2(b"src") & 0x7FFFFFFF) % SMALL.partition,
            )
        finally:
            await producer.stop()
        assert (await saver.aget_tuple(_config("src"))) is not None
        await saver.acopy_thread("src", "dst")
        assert (await saver.aget_tuple(_config("dst"))) is not None
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(20):  # the topic holds a few records: 10 s at most
            if len(seen) >= 2:
                break
            for rows in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(r.value for r in rows if r.value and b"from_the_future" in r.value)
    finally:
        await consumer.stop()
    assert len(seen) == 2  # the original and its copy, byte for byte the same unit
    assert seen[0][13:] == seen[1][13:]


async def test_records_of_another_format_in_the_topic_are_skipped(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("lg")
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic, topic_settings=SMALL)
        await saver.setup()
        stored = await saver.aput(_config("t"), _checkpoint({}, {}), {"step": 0}, {})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        partition = (murmur2(b"t") & 0x7FFFFFFF) % SMALL.partition  # the thread's partition
        try:  # a chat message and garbage under the thread's keys
            for value in (b'{"type": "human", "data": {"content": "hi"}}', b"KLG\x01W"):
                key = b"t\x00m" + os.urandom(8).hex().encode()
                await producer.send_and_wait(topic, value, key=key, partition=partition)
        finally:
            await producer.stop()
        found = await saver.aget_tuple(_config("t"))
        assert found is not None
        assert found.config == stored
        assert [t.config async for t in saver.alist(_config("t"))] == [stored]


async def test_setup_refuses_a_topic_that_is_not_compacted(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("lg")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=topic)
        with pytest.raises(ConfigurationError, match="compact"):
            await saver.setup()


def test_the_blocking_saver_round_trips_and_deletes(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("lg")
    with KafkaSaver.from_conn_string(kafka_bootstrap, topic=topic, topic_settings=SMALL) as saver:
        saver.setup()
        first = saver.put(_config("t"), _checkpoint({"a": 1}, {"a": "1"}), {"step": 0}, {"a": "1"})
        second = saver.put(first, _checkpoint({"a": 1}, {"a": "1"}), {"step": 1}, {})
        saver.put_writes(second, [("a", 2)], "task", "path")
        found = saver.get_tuple(_config("t"))
        assert found is not None and found.config == second
        assert found.parent_config == first
        assert found.checkpoint["channel_values"] == {"a": 1}
        assert found.pending_writes == [("task", "a", 2)]
        assert [t.config for t in saver.list(_config("t"))] == [second, first]
        saver.copy_thread("t", "u")
        saver.prune(["u"])
        assert [t.config["configurable"]["checkpoint_id"] for t in saver.list(_config("u"))] == [
            second["configurable"]["checkpoint_id"]
        ]
        saver.delete_thread("t")
        assert saver.get_tuple(_config("t")) is None
        assert saver.get_next_version(saver.get_next_version(None, None), None).startswith(
            "0" * 31 + "2"
        )


def test_bad_arguments_fail_early(kafka_bootstrap: str) -> None:
    with pytest.raises(ConfigurationError):
        AsyncKafkaSaver(object())  # type: ignore[arg-type]
    with KafkaHistoryClient(kafka_bootstrap) as client:
        with pytest.raises(ConfigurationError):
            KafkaSaver(client, topic="bad topic name!")
        saver = KafkaSaver(client, topic="never-used")
        with pytest.raises(ConfigurationError, match="thread_id"):
            saver.get_tuple({"configurable": {}})
        for thread_id, rule in [
            ("a\x00b", r"thread_id must not contain NUL \('\\x00'\)"),
            ("x" * 1025, "thread_id must be at most 1024 bytes"),
            ("\ud800", "thread_id must be encodable as UTF-8"),
        ]:
            with pytest.raises(InvalidSessionIdError, match=rule):
                saver.get_tuple({"configurable": {"thread_id": thread_id}})
        with pytest.raises(ConfigurationError, match="strategy"):
            saver.prune(["x"], strategy="keep_some")


async def test_a_session_moves_into_a_thread_and_again_adds_only_what_is_new(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, shared_topic=kafka_topics("chats"), shared_topic_settings=SMALL
    ) as client:
        history = client.history("s-1")
        await history.aadd_messages([HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")])
        saver = AsyncKafkaSaver(client, topic=kafka_topics("lg"), topic_settings=SMALL)
        await amove_session_to_thread(history, saver, "s-1")
        await history.aadd_messages([HumanMessage("more", id="h2")])
        await amove_session_to_thread(history, saver, "s-1", clear=True)
        found = await saver.aget_tuple(_config("s-1"))
        assert found is not None
        assert [m.content for m in found.checkpoint["channel_values"]["messages"]] == [
            "hi",
            "hello",
            "more",
        ]
        assert found.metadata["source"] == "update" and found.metadata["step"] == 0
        assert found.parent_config is not None
        assert await history.aget_messages() == []


def test_the_blocking_bridge_works_with_any_saver(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    with KafkaHistoryClient(
        kafka_bootstrap, shared_topic=kafka_topics("chats"), shared_topic_settings=SMALL
    ) as client:
        history = client.history("s-1")
        history.add_messages([HumanMessage("hi"), AIMessage("hello")])
        saver = InMemorySaver()
        move_session_to_thread(history, saver, "t-1")
    # The graph goes on from the moved messages.
    builder = StateGraph(MessagesState)
    builder.add_node("echo", lambda state: {"messages": [AIMessage(f"{len(state['messages'])}")]})
    builder.add_edge(START, "echo")
    graph = builder.compile(checkpointer=saver)
    out = graph.invoke({"messages": [HumanMessage("again")]}, _config("t-1"))
    assert [m.content for m in out["messages"]] == ["hi", "hello", "again", "3"]

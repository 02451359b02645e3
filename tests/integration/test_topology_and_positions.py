"""Reads never lose or duplicate; topology changed by others is noticed; ids stay in bounds."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from langchain_core.messages import BaseMessage, HumanMessage

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    ConsumerGroupConflictError,
    InvalidSessionIdError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)


def _contents(messages: list[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


def test_str_and_repr_never_touch_kafka(kafka_bootstrap: str, session_id: str) -> None:
    with KafkaChatMessageHistory(session_id, kafka_bootstrap) as history:
        history.add_user_message("one")
        history.add_ai_message("two")
        # LangChain's __str__ reads `messages`, which in this mode consumes: not here.
        assert session_id in f"{history}" and session_id in repr(history)
        assert "KafkaHistoryClient" in str(history.client)
        assert _contents(history.messages) == ["one", "two"]
        assert f"{history}" == repr(history)
        assert history.messages == []
    # On an unroutable address str() answers at once: no I/O at all.
    with KafkaChatMessageHistory("s", "192.0.2.1:9") as offline:
        assert "192.0.2.1" not in str(offline) and "s" in str(offline)


@pytest.mark.anyio
async def test_one_history_never_delivers_a_message_twice_by_any_route(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id)
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(40)])
        # Concurrent position-moving reads through every route: async, blocking twins from
        # worker threads, counted and uncounted. Together they hand out each message once.
        routes = [
            history.aget_messages(),
            history.amessages_from_last_consumed(max_message_count=5),
            asyncio.to_thread(lambda: history.messages),
            asyncio.to_thread(history.messages_from_last_consumed, 7),
            history.amessages_from_last_consumed(),
            asyncio.to_thread(history.get_messages),
        ]
        results = await asyncio.gather(*routes)
        delivered = [c for r in results for c in _contents(r)]
        assert sorted(delivered, key=lambda c: int(c[1:])) == [f"m{i}" for i in range(40)]
        assert await history.aget_messages() == []


@pytest.mark.anyio
async def test_a_joined_consumer_of_the_same_group_is_refused_clearly_and_nothing_is_lost(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id)
        await history.aadd_messages([HumanMessage(content="a"), HumanMessage(content="b")])
        # As langchain_community does: a consumer that joins the group named after the topic.
        joined = AIOKafkaConsumer(
            session_id,
            bootstrap_servers=kafka_bootstrap,
            group_id=history.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await joined.start()
        try:
            await joined.getmany(timeout_ms=5000)  # joined and assigned
            with pytest.raises(ConsumerGroupConflictError) as info:
                await history.aget_messages()
            text = str(info.value)
            assert "consumer_group" in text and "did not move" in text
            # A full read moves no position and works regardless.
            full = client.history(session_id, messages_mode="full")
            assert _contents(await full.aget_messages()) == ["a", "b"]
            # So does a history with a group of its own.
            own = client.history(session_id, consumer_group=f"{session_id}-app")
            assert _contents(await own.aget_messages()) == ["a", "b"]
        finally:
            await joined.stop()  # leaves the group
        # Nothing was lost: the refused read did not move the position.
        for _ in range(50):
            try:
                assert _contents(await history.aget_messages()) == ["a", "b"]
                break
            except ConsumerGroupConflictError:  # the coordinator is still removing it
                await asyncio.sleep(0.2)
        else:
            pytest.fail("the group never became usable after the consumer left")


@pytest.mark.anyio
async def test_partitions_added_later_are_read(kafka_bootstrap: str, session_id: str) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, metadata_max_age_ms=500) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_user_message("before")
        admin = await _admin(kafka_bootstrap)
        try:
            await admin.create_partitions({session_id: NewPartitions(total_count=4)})
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:  # another writer, straight onto a new partition
            value = b'{"type": "human", "data": {"content": "on p3", "type": "human"}}'
            await producer.send_and_wait(session_id, value, partition=3)
        finally:
            await producer.stop()
        await asyncio.sleep(0.6)  # metadata_max_age_ms: partitions are looked up again
        assert sorted(_contents(await history.aget_messages())) == ["before", "on p3"]
        await history.aadd_ai_message("after")
        assert sorted(_contents(await history.aget_messages())) == ["after", "before", "on p3"]


@pytest.mark.anyio
async def test_a_topic_deleted_and_recreated_by_others_is_noticed(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, write_timeout=10) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages([HumanMessage(content=f"old{i}") for i in range(3)])
        assert len(await history.aget_messages()) == 3
        admin = await _admin(kafka_bootstrap)
        try:
            await admin.delete_topics([session_id])
            for _ in range(100):
                if session_id not in await admin.list_topics():
                    break
                await asyncio.sleep(0.1)
            for _ in range(100):
                response = await admin.create_topics([NewTopic(session_id, 2, 1)])
                if response.topic_errors[0][1] == 0:
                    break
                await asyncio.sleep(0.1)  # deletion still in progress
        finally:
            await admin.close()
        # The old records are gone and the new topic has 2 partitions; our producer still
        # holds sequence numbers of the old one (a fatal state for it once it sends).
        assert await history.aget_messages() == []
        outcomes: list[str] = []
        for i in range(3):
            try:
                await history.aadd_user_message(f"new{i}")
                outcomes.append("ok")
            except Exception as exc:
                assert type(exc).__module__.startswith("aiokafka_history"), repr(exc)
                outcomes.append(type(exc).__name__)
        print(f"\nwrites after the topic was re-created by others: {outcomes}")
        assert outcomes[-1] == "ok"  # at worst the first write failed, clearly
        contents = _contents(await history.aget_messages())
        assert contents[-1] == "new2" and set(contents) <= {"new0", "new1", "new2"}
        assert len(contents) == outcomes.count("ok") or "SessionWriteError" in outcomes


@pytest.mark.anyio
@pytest.mark.parametrize("metadata", ["stale", "refreshed"])
@pytest.mark.parametrize("size", ["one batch", "several batches"])
async def test_a_write_after_another_client_deleted_the_session_starts_it_afresh(
    kafka_bootstrap: str, session_id: str, metadata: str, size: str
) -> None:
    # Writing to a session that has no topic creates it; that stays true when another client
    # deleted it after we wrote to it. Before, the write failed after write_timeout (aiokafka
    # retries a batch for a deleted topic until then) and said the outcome was unknown.
    write_timeout = 20.0
    async with (
        AsyncKafkaHistoryClient(kafka_bootstrap, write_timeout=write_timeout) as ours,
        AsyncKafkaHistoryClient(kafka_bootstrap) as other,
    ):
        history = ours.history(session_id, messages_mode="full")
        await history.aadd_user_message("before")
        assert await other.delete_session(session_id) is True
        for _ in range(100):  # the deletion has reached the broker's metadata
            if not await other.session_exists(session_id):
                break
            await asyncio.sleep(0.1)
        if metadata == "refreshed":
            # A write to another session refreshes our producer's metadata, which then no
            # longer knows the deleted topic (the write below waits for its partitions).
            await ours.history(f"{session_id}-other").aadd_user_message("x")
            await ours.delete_session(f"{session_id}-other")
        # Several batches: a later batch waits in aiokafka behind the first, undeliverable one.
        count = 1 if size == "one batch" else 100
        after = [HumanMessage(content=f"after {i} " + "x" * 2000) for i in range(count)]
        began = asyncio.get_running_loop().time()
        await history.aadd_messages(after)
        took = asyncio.get_running_loop().time() - began
        assert _contents(await history.aget_messages()) == _contents(after)
        assert await other.session_exists(session_id)
    assert took < write_timeout / 2, f"the write took {took:.1f} s"


def test_reserved_names_are_refused_before_any_kafka_call(kafka_bootstrap: str) -> None:
    with KafkaHistoryClient(kafka_bootstrap) as client:
        for hostile in ("__consumer_offsets", "__cluster_metadata", "_schemas"):
            with pytest.raises(InvalidSessionIdError, match="reserved"):
                client.history(hostile)
            with pytest.raises(InvalidSessionIdError, match="reserved"):
                client.delete_session(hostile)
            with pytest.raises(InvalidSessionIdError, match="reserved"):
                client.session_exists(hostile)
        assert not any(s.startswith("_") for s in client.list_sessions())
        # Kafka's own topic is untouched.
        assert "__consumer_offsets" in asyncio.run(_topics(kafka_bootstrap))


async def _topics(bootstrap: str) -> list[str]:
    admin = await _admin(bootstrap)
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


def test_reading_a_session_without_a_topic_creates_nothing(
    kafka_bootstrap: str, session_id: str
) -> None:
    with KafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id, messages_mode="full")
        assert history.messages == []
        assert history.last_messages(5) == []
        assert history.messages_from_last_consumed() == []
        history.clear()
        assert not client.session_exists(session_id)
        history.add_user_message("now")
        assert client.session_exists(session_id)


@pytest.mark.anyio
async def test_a_topic_deleted_by_others_reads_as_empty_and_writes_recreate_it(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id, messages_mode="full")
        positional = client.history(session_id)
        await history.aadd_user_message("before")
        assert _contents(await history.aget_messages()) == ["before"]
        admin = await _admin(kafka_bootstrap)
        try:
            await admin.delete_topics([session_id])
            for _ in range(100):
                if session_id not in await admin.list_topics():
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        # Every call notices, with the library's own behaviour: the session is empty now.
        assert await history.aget_messages() == []
        assert await positional.aget_messages() == []
        assert await history.alast_messages(3) == []
        await history.aclear()
        assert not await client.session_exists(session_id)
        await history.aadd_user_message("after")
        assert _contents(await history.aget_messages()) == ["after"]

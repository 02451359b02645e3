"""A stray record never stops a session: skipped, logged once by position, never by payload."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from aiokafka_history import AsyncKafkaHistoryClient, RecordDecodeError

SECRET = "payload-secret-7f3a"  # must never reach a log line or an exception

STRAYS: list[bytes | None] = [
    b"\xff\xfe" + SECRET.encode(),  # not UTF-8
    SECRET.encode(),  # not JSON
    json.dumps({"type": "human", "note": SECRET}).encode(),  # wrong shape
    json.dumps({"type": "nonsense", "data": {"content": SECRET}}).encode(),  # unknown type
    json.dumps([SECRET]).encode(),  # JSON, not an object
    None,  # a tombstone
]


def _valid(i: int) -> BaseMessage:
    return HumanMessage(content=f"m{i}") if i % 2 == 0 else AIMessage(content=f"m{i}")


async def _write_interleaved(bootstrap: str, topic: str) -> list[BaseMessage]:
    """Valid messages with a stray record after each of the first ones, as another writer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    valid: list[BaseMessage] = []
    try:
        for i, stray in enumerate(STRAYS):
            message = _valid(i)
            valid.append(message)
            value = json.dumps(message_to_dict(message)).encode()
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
            await producer.send_and_wait(topic, stray, key=b"k", partition=0)
        message = _valid(len(STRAYS))
        valid.append(message)
        value = json.dumps(message_to_dict(message)).encode()
        await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()
    return valid


def _contents(messages: list[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


@pytest.mark.anyio
async def test_every_read_returns_the_valid_messages_and_moves_past_strays(
    kafka_bootstrap: str, session_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiokafka_history")
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id)
        await history.aadd_user_message("first")  # creates the topic (1 partition)
        valid = await _write_interleaved(kafka_bootstrap, session_id)
        expected = ["first", *_contents(valid)]

        full = client.history(session_id, messages_mode="full")
        assert _contents(await full.aget_messages()) == expected
        assert _contents(await full.aget_messages()) == expected  # same again, moves nothing
        assert _contents(await history.alast_messages(3)) == expected[-3:]
        assert _contents(await history.alast_messages(100)) == expected
        # Counted reads skip strays too; the position stops after the last message handed out.
        assert _contents(await history.amessages_from_beginning(max_message_count=2)) == [
            "first",
            "m0",
        ]
        assert _contents(await history.amessages_from_last_consumed()) == expected[2:]
        # The position moved past every record, strays included: nothing is read twice.
        assert await history.amessages_from_last_consumed() == []
        await history.aadd_ai_message("after")
        assert _contents(await history.aget_messages()) == ["after"]

    # Logged once per stray (5 decodable-or-not records; the tombstone is silent), by
    # position, never by payload, however often they were read.
    ours = [r for r in caplog.records if r.name.startswith("aiokafka_history")]
    skipped = [r for r in ours if "skipped a record" in r.getMessage()]
    assert len(skipped) == len(STRAYS) - 1
    positions = {r.getMessage().split("record ")[-1].split(" ")[0] for r in skipped}
    assert len(positions) == len(skipped)
    assert all(f"{session_id}[0]@" in r.getMessage() for r in skipped)
    assert not any(SECRET in r.getMessage() for r in ours)
    assert all(r.exc_info is None for r in skipped)


@pytest.mark.anyio
async def test_the_strict_option_raises_with_coordinates_and_no_payload(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, on_bad_record="raise") as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_user_message("first")
        await _write_interleaved(kafka_bootstrap, session_id)
        with pytest.raises(RecordDecodeError) as info:
            await history.aget_messages()
        error = info.value
        assert (error.topic, error.partition, error.offset) == (session_id, 0, 2)
        assert f"{session_id}[0]@2" in str(error)
        rendered = "".join(traceback.format_exception(error))
        assert SECRET not in rendered
        assert error.__cause__ is None
        assert error.__context__ is None
        # The position did not move: a default read raises at the same record again.
        positional = client.history(session_id)
        with pytest.raises(RecordDecodeError, match=r"\[0\]@2"):
            await positional.aget_messages()


@pytest.mark.anyio
async def test_a_tail_never_loses_a_valid_message_around_strays(
    kafka_bootstrap: str, session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id)
        await history.aadd_user_message("first")
        async with history.atail("latest", idle_timeout=10) as tail:
            valid = await _write_interleaved(kafka_bootstrap, session_id)
            received: list[str] = []
            async for message in tail:
                received.append(str(message.content))
                if len(received) == len(valid):
                    break
        assert received == _contents(valid)
        async with history.atail("beginning", idle_timeout=2) as tail:
            assert [str(m.content) async for m in tail] == ["first", *_contents(valid)]


def test_the_blocking_client_skips_strays_the_same_way(
    kafka_bootstrap: str, session_id: str
) -> None:
    from aiokafka_history import KafkaChatMessageHistory

    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as history:
        history.add_user_message("first")
        valid = asyncio.run(_write_interleaved(kafka_bootstrap, session_id))
        assert _contents(history.messages) == ["first", *_contents(valid)]


@pytest.mark.anyio
async def test_counted_reads_keep_write_order_across_partitions_with_strays(
    kafka_bootstrap: str, session_id: str
) -> None:
    """Unkeyed 2-partition topic (langchain_community's style): strays count toward the
    per-partition read cap, but a counted read never hands out or consumes past the point
    up to which every partition was read."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(session_id, 2, 1)])
    finally:
        await admin.close()
    base = 1_700_000_000_000

    def value(text: str) -> bytes:
        return json.dumps(message_to_dict(HumanMessage(content=text))).encode()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:  # write order by timestamp: a1 (p0), two strays (p1), b3 (p1), a2 (p0)
        await producer.send_and_wait(session_id, value("a1"), partition=0, timestamp_ms=base)
        await producer.send_and_wait(session_id, b"{}", partition=1, timestamp_ms=base + 1)
        await producer.send_and_wait(session_id, b"\xff", partition=1, timestamp_ms=base + 2)
        await producer.send_and_wait(session_id, value("b3"), partition=1, timestamp_ms=base + 3)
        await producer.send_and_wait(session_id, value("a2"), partition=0, timestamp_ms=base + 4)
    finally:
        await producer.stop()
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
        history = client.history(session_id)
        full = client.history(session_id, messages_mode="full")
        assert _contents(await full.aget_messages()) == ["a1", "b3", "a2"]
        first = _contents(await history.amessages_from_beginning(max_message_count=2))
        rest = _contents(await history.amessages_from_last_consumed())
        assert len(first) <= 2
        assert first + rest == ["a1", "b3", "a2"]  # nothing lost, duplicated or reordered
        assert await history.amessages_from_last_consumed() == []

"""A stray record never stops a session: skipped, logged once by position, never by payload."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import traceback
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from aiokafka_history import AsyncKafkaHistoryClient, KafkaHistoryClient, RecordDecodeError

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


# -- the shared layout: strays in the shared topic ------------------------------------------
#
# There a session's records are keyed ``session \x00 kind ...`` and share the partition Kafka's
# default partitioner picks for the session id. Another writer may put two kinds of stray
# records into the session's partition: records keyed as one of the session's messages whose
# value is not a message (STRAYS), and records whose key is not one of the layout's at all,
# or whose position is no offset. Both are skipped and logged by position, never by payload,
# and never stop the session (nor the view that serves every other session).

SHARED = pytest.mark.parametrize("layout", ["shared-topic"], indirect=True)


@dataclass
class SharedStrays:
    """What :func:`_write_interleaved_shared` wrote into partition ``partition``."""

    partition: int
    valid: list[BaseMessage]
    bad_values: list[int]  # offsets of message-keyed records that are not messages
    miskeyed: list[int]  # offsets of records without a key of the layout


def _partition_of(session_id: str, partitions: int) -> int:
    """The session's partition, as Kafka's default partitioner picks it for the id."""
    every = list(range(partitions))
    partition: int = DefaultPartitioner()(session_id.encode(), every, every)
    return partition


def _message_key(session_id: str) -> bytes:
    return session_id.encode() + b"\x00m" + secrets.token_hex(8).encode()


def _miskeyed(session_id: str, group: str, value: bytes) -> list[tuple[bytes | None, bytes]]:
    """Records in the session's partition that no session owns, or no valid position."""
    session = session_id.encode()
    # (No record without a key: a compacted topic refuses those.)
    return [
        (b"k", value),  # not a key of the layout (langchain_community's style)
        (session + b"\x00x" + b"0" * 16, value),  # an unknown kind
        (session + b"\x00m" + b"0" * 15, value),  # a message key of the wrong length
        (b"\xff\xfe\x00m" + b"0" * 16, value),  # a session that is not UTF-8
        (session + b"\x00p" + group.encode(), SECRET.encode()),  # a position that is no number
        (session + b"\x00p" + group.encode(), b"9" * 30),  # a position beyond any offset
        (session + b"\x00p" + group.encode(), b"9" * 5000),  # beyond what int() parses
    ]


async def _write_interleaved_shared(
    bootstrap: str, topic: str, partitions: int, session_id: str, group: str
) -> SharedStrays:
    """Valid messages with a stray record after each, then a miskeyed one, as another writer."""
    p = _partition_of(session_id, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    written = SharedStrays(p, [], [], [])

    async def send(key: bytes | None, value: bytes | None) -> int:
        metadata = await producer.send_and_wait(topic, value, key=key, partition=p)
        offset: int = metadata.offset
        return offset

    try:
        for i, stray in enumerate(STRAYS):
            message = _valid(i)
            written.valid.append(message)
            value = json.dumps(message_to_dict(message)).encode()
            await send(_message_key(session_id), value)
            offset = await send(_message_key(session_id), stray)
            if stray is not None:  # a tombstone is no stray: passed over silently
                written.bad_values.append(offset)
            if i < len(_miskeyed(session_id, group, value)):
                key, junk = _miskeyed(session_id, group, value)[i]
                written.miskeyed.append(await send(key, junk))
        for key, junk in _miskeyed(session_id, group, b"{}")[len(STRAYS) :]:
            written.miskeyed.append(await send(key, junk))
        message = _valid(len(STRAYS))
        written.valid.append(message)
        await send(_message_key(session_id), json.dumps(message_to_dict(message)).encode())
    finally:
        await producer.stop()
    return written


def _skipped_offsets(caplog: pytest.LogCaptureFixture, topic: str, partition: int) -> list[int]:
    """The offsets of the records logged as skipped, once per log line."""
    ours = [r for r in caplog.records if r.name.startswith("aiokafka_history")]
    skipped = [r for r in ours if "skipped a record" in r.getMessage()]
    assert not any(SECRET in r.getMessage() for r in ours)
    assert all(r.exc_info is None for r in skipped)
    where = re.compile(rf"record {re.escape(topic)}\[{partition}\]@(\d+) ")
    offsets = []
    for r in skipped:
        match = where.search(r.getMessage())
        assert match is not None, r.getMessage()
        offsets.append(int(match[1]))
    return offsets


@SHARED
@pytest.mark.anyio
async def test_shared_topic_every_read_returns_the_valid_messages_and_moves_past_strays(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    session_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiokafka_history")
    topic = layout["shared_topic"]
    partitions = layout["shared_topic_settings"].partition
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id)
        await history.aadd_user_message("first")  # creates the shared topic
        strays = await _write_interleaved_shared(
            kafka_bootstrap, topic, partitions, session_id, history.consumer_group
        )
        expected = ["first", *_contents(strays.valid)]

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
        # The view goes on serving the other sessions.
        other = client.history(f"{session_id}-other", messages_mode="full")
        await other.aadd_user_message("unharmed")
        assert _contents(await other.aget_messages()) == ["unharmed"]
        assert await client.list_sessions() == sorted([session_id, f"{session_id}-other"])

    # Logged once per stray (the tombstone is silent), by position, never by payload,
    # however often they were read.
    assert sorted(_skipped_offsets(caplog, topic, strays.partition)) == sorted(
        strays.bad_values + strays.miskeyed
    )


@SHARED
@pytest.mark.anyio
async def test_shared_topic_a_session_record_on_another_partition_is_a_stray(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    session_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Keyed as the session's but on a partition its records never go to: it must not take
    the place of the session's record at the same offset of its own partition."""
    caplog.set_level(logging.DEBUG, logger="aiokafka_history")
    topic = layout["shared_topic"]
    partitions = layout["shared_topic_settings"].partition
    home = _partition_of(session_id, partitions)
    elsewhere = (home + 1) % partitions
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(3)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            misrouted = json.dumps(message_to_dict(HumanMessage(content=SECRET))).encode()
            sent = [
                (
                    await producer.send_and_wait(
                        topic, misrouted, key=_message_key(session_id), partition=elsewhere
                    )
                ).offset
                for _ in range(3)
            ]
        finally:
            await producer.stop()
        await history.aadd_message(HumanMessage(content="m3"))
        assert _contents(await history.aget_messages()) == ["m0", "m1", "m2", "m3"]
        assert _contents(await history.alast_messages(10)) == ["m0", "m1", "m2", "m3"]
    assert sorted(_skipped_offsets(caplog, topic, elsewhere)) == sorted(sent)


@SHARED
@pytest.mark.anyio
async def test_shared_topic_strict_option_raises_with_coordinates_and_no_payload(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    partitions = layout["shared_topic_settings"].partition
    async with AsyncKafkaHistoryClient(kafka_bootstrap, on_bad_record="raise", **layout) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_user_message("first")
        strays = await _write_interleaved_shared(
            kafka_bootstrap, topic, partitions, session_id, history.consumer_group
        )
        first_bad = strays.bad_values[0]
        with pytest.raises(RecordDecodeError) as info:
            await history.aget_messages()
        error = info.value
        assert (error.topic, error.partition, error.offset) == (topic, strays.partition, first_bad)
        assert f"{topic}[{strays.partition}]@{first_bad}" in str(error)
        rendered = "".join(traceback.format_exception(error))
        assert SECRET not in rendered
        assert error.__cause__ is None
        assert error.__context__ is None
        # The position did not move: a default read raises at the same record again.
        positional = client.history(session_id)
        with pytest.raises(RecordDecodeError, match=rf"\[{strays.partition}\]@{first_bad}\b"):
            await positional.aget_messages()
        # Records that belong to no session fail no read, strict or not (the view skipped
        # them): the newest message, written after every stray, reads fine.
        assert _contents(await history.alast_messages(1)) == [_contents(strays.valid)[-1]]


@SHARED
@pytest.mark.anyio
async def test_shared_topic_tail_never_loses_a_valid_message_around_strays(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    partitions = layout["shared_topic_settings"].partition
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id)
        await history.aadd_user_message("first")
        async with history.atail("latest", idle_timeout=10) as tail:
            strays = await _write_interleaved_shared(
                kafka_bootstrap, topic, partitions, session_id, history.consumer_group
            )
            received: list[str] = []
            async for message in tail:
                received.append(str(message.content))
                if len(received) == len(strays.valid):
                    break
        assert received == _contents(strays.valid)
        async with history.atail("beginning", idle_timeout=2) as tail:
            assert [str(m.content) async for m in tail] == ["first", *_contents(strays.valid)]


@SHARED
def test_shared_topic_blocking_client_skips_strays_the_same_way(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    partitions = layout["shared_topic_settings"].partition
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        history.add_user_message("first")
        strays = asyncio.run(
            _write_interleaved_shared(
                kafka_bootstrap, topic, partitions, session_id, history.consumer_group
            )
        )
        assert _contents(history.messages) == ["first", *_contents(strays.valid)]
    # A client started after the strays were written builds its view past them as well.
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id, messages_mode="full")
        assert _contents(history.messages) == ["first", *_contents(strays.valid)]
        assert client.list_sessions() == [session_id]

"""Bounded reads, order, positions and modes on the real broker."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from langchain_core.messages import AIMessage, HumanMessage

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    InvalidSessionIdError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)
from tests.layouts import OPEN_IN_LAYOUT, layout_args

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
AOpenHistory = Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]


def _topic_options(layout: dict[str, Any], partitions: int) -> dict[str, Any]:
    """A multi-partition session: its own topic's setting, or the shared topic's (3)."""
    return {} if layout else {"partition": partitions}


def _contents(messages: list) -> list[str]:  # type: ignore[type-arg]
    return [m.content for m in messages]


def test_read_with_nothing_new_does_not_wait_out_max_time(
    open_history: OpenHistory, session_id: str
) -> None:
    with open_history(session_id) as history:
        history.add_user_message("only")
        assert _contents(history.messages) == ["only"]
        for read in (
            lambda: history.messages_from_last_consumed(max_message_count=100, max_time_sec=60),
            lambda: history.messages_from_latest(max_time_sec=60),
        ):
            started = time.monotonic()
            assert read() == []
            # A 60 s budget: returning well inside it shows the read stopped at the log's end.
            assert time.monotonic() - started < 30


def test_empty_new_topic_reads_empty(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id) as history:
        assert history.messages == []
        assert history.messages_from_beginning() == []
        assert history.last_messages(5) == []


def test_max_message_count_caps_and_moves_the_position_exactly(
    open_history: OpenHistory, session_id: str
) -> None:
    with open_history(session_id) as history:
        history.add_messages([HumanMessage(content=f"m{i}") for i in range(10)])
        assert _contents(history.messages_from_last_consumed(max_message_count=3)) == [
            "m0",
            "m1",
            "m2",
        ]
        assert _contents(history.messages_from_last_consumed(max_message_count=0)) == []
        assert _contents(history.messages_from_last_consumed(max_message_count=4)) == [
            "m3",
            "m4",
            "m5",
            "m6",
        ]
        assert _contents(history.messages) == ["m7", "m8", "m9"]


def test_keyed_writes_keep_order_on_a_multi_partition_topic(
    open_history: OpenHistory, layout: dict[str, Any], session_id: str
) -> None:
    with open_history(session_id, **_topic_options(layout, 6)) as history:
        for i in range(0, 60, 3):
            history.add_messages([HumanMessage(content=f"m{j}") for j in range(i, i + 3)])
        assert _contents(history.messages_from_beginning()) == [f"m{i}" for i in range(60)]
        assert _contents(history.last_messages(4)) == ["m56", "m57", "m58", "m59"]


def test_full_mode_returns_everything_and_moves_nothing(
    open_history: OpenHistory, session_id: str
) -> None:
    with (
        open_history(session_id, messages_mode="full") as full,
        open_history(session_id) as seed,
    ):
        full.add_user_message("a")
        full.add_ai_message("b")
        assert full.messages == [HumanMessage(content="a"), AIMessage(content="b")]
        assert full.messages == [HumanMessage(content="a"), AIMessage(content="b")]
        # The shared last consumed position was not moved by the full reads.
        assert _contents(seed.messages) == ["a", "b"]
        assert _contents(full.get_messages()) == ["a", "b"]


def test_position_survives_a_new_process(
    open_history: OpenHistory, layout: dict[str, Any], kafka_bootstrap: str, session_id: str
) -> None:
    with open_history(session_id) as history:
        history.add_messages([HumanMessage(content=f"m{i}") for i in range(5)])
        assert len(history.messages_from_last_consumed(max_message_count=2)) == 2
    script = OPEN_IN_LAYOUT + (
        "with open_history(*sys.argv[1:5]) as h:\n"
        "    print(','.join(m.content for m in h.messages))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            script,
            session_id,
            kafka_bootstrap,
            *layout_args(layout),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "m2,m3,m4"
    with open_history(session_id) as history:
        assert history.messages == []


def test_consumer_group_option_keeps_separate_positions(
    open_history: OpenHistory, session_id: str
) -> None:
    with (
        open_history(session_id, consumer_group="g-a") as a,
        open_history(session_id, consumer_group="g-b") as b,
    ):
        a.add_user_message("x")
        assert _contents(a.messages) == ["x"]
        assert a.messages == []
        assert _contents(b.messages) == ["x"]


def test_messages_from_latest_skips_history(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id) as history:
        history.add_messages([HumanMessage(content="old1"), HumanMessage(content="old2")])
        assert history.messages_from_latest() == []
        assert history.messages == []
        history.add_user_message("new")
        assert _contents(history.messages) == ["new"]


def test_clear_empties_at_once_and_the_session_keeps_working(
    open_history: OpenHistory, layout: dict[str, Any], session_id: str
) -> None:
    with open_history(session_id, **_topic_options(layout, 3)) as history:
        history.add_messages([HumanMessage(content=f"m{i}") for i in range(7)])
        assert len(history.messages) == 7
        history.clear()
        assert history.messages_from_beginning() == []
        assert history.messages == []
        history.add_user_message("after")
        assert _contents(history.messages) == ["after"]
        assert _contents(history.messages_from_beginning()) == ["after"]
        assert _contents(history.last_messages(10)) == ["after"]


@pytest.mark.anyio
async def test_last_messages_reads_only_a_window(
    aopen_history: AOpenHistory, session_id: str
) -> None:
    async with aopen_history(session_id) as history:
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(500)])
        assert _contents(await history.alast_messages(3)) == ["m497", "m498", "m499"]
        assert len(await history.alast_messages(1000)) == 500
        assert await history.alast_messages(0) == []


@pytest.mark.anyio
async def test_last_messages_steps_over_deleted_records(
    kafka_bootstrap: str, session_id: str
) -> None:
    """Topic per session only: DeleteRecords on the session's own topic."""
    async with AsyncKafkaChatMessageHistory(session_id, kafka_bootstrap) as history:
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(500)])
        assert _contents(await history.alast_messages(3)) == ["m497", "m498", "m499"]
        # Holes at the start of the log (deleted records) are stepped over.
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_records(
                {TopicPartition(history.topic, 0): RecordsToDelete(before_offset=498)}
            )
        finally:
            await admin.close()
        assert _contents(await history.alast_messages(5)) == ["m498", "m499"]


@pytest.mark.parametrize("bad", ["has space", "a/b", "", "x" * 250, ".."])
def test_invalid_session_ids_fail_at_construction(kafka_bootstrap: str, bad: str) -> None:
    with pytest.raises(InvalidSessionIdError, match="session id"):
        KafkaChatMessageHistory(bad, kafka_bootstrap)


def test_encoded_session_ids_round_trip(kafka_bootstrap: str, session_id: str) -> None:
    session = f"user@example.com/{session_id} #1 ☃"
    with KafkaChatMessageHistory(session, kafka_bootstrap, encode_session_ids=True) as history:
        try:
            history.add_user_message("hello")
            assert _contents(history.messages) == ["hello"]
            assert history.topic != session
        finally:
            history.delete_topic()


SHARED = pytest.mark.parametrize("layout", ["shared-topic"], indirect=True)


@SHARED
@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        pytest.param("", "non-empty str", id="empty"),
        pytest.param("a\x00b", "must not contain NUL", id="nul"),
        pytest.param("x" * 1025, "at most 1024 bytes", id="1025-bytes"),
        # 513 characters, 1026 bytes in UTF-8
        pytest.param("é" * 513, "at most 1024 bytes", id="1026-utf8-bytes"),
    ],
)
def test_invalid_shared_session_ids_fail_at_construction(
    kafka_bootstrap: str, layout: dict[str, Any], bad: str, rule: str
) -> None:
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        with pytest.raises(InvalidSessionIdError, match=rule):
            client.history(bad)
        assert not client.connected  # refused before any I/O


@SHARED
def test_any_session_id_round_trips_in_the_shared_topic(
    open_history: OpenHistory, layout: dict[str, Any], session_id: str
) -> None:
    """The shared layout's counterpart of encoded ids: any id is a key, no encoding needed."""
    sessions = [
        f"user@example.com/{session_id} #1 ☃",
        "..",
        "has space",
        "__consumer_offsets",
        "x" * 1024,
        "é" * 512,
    ]
    for n, session in enumerate(sessions):
        with open_history(session) as history:
            history.add_user_message(f"hello {n}")
            assert _contents(history.messages) == [f"hello {n}"]
            assert history.session_id == session
            assert history.topic == layout["shared_topic"]
    for n, session in enumerate(sessions):  # each its own session, in a fresh view
        with open_history(session, messages_mode="full") as history:
            assert _contents(history.messages) == [f"hello {n}"]

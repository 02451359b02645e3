"""Writes: fidelity, acknowledgement, failures and topic creation on the real broker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    InvalidMessageError,
    KafkaChatMessageHistory,
)

RICH = [
    SystemMessage(content="be brief", id="s-1"),
    HumanMessage(content=[{"type": "text", "text": "naïve 日本語 🚀 \u0000 end"}], name="bob"),
    AIMessage(
        content="",
        id="a-1",
        tool_calls=[{"name": "search", "args": {"q": "kafka", "n": 3}, "id": "call-1"}],
        additional_kwargs={"nested": {"list": [1, 2.5, None, True]}},
        response_metadata={"model_name": "fake", "usage": {"in": 3, "out": 5}},
    ),
    ToolMessage(content="42", tool_call_id="call-1", artifact={"rows": [1, 2]}),
]


def test_messages_round_trip_with_full_fidelity(kafka_bootstrap: str, session_id: str) -> None:
    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as history:
        history.add_messages(RICH)
        assert history.messages == RICH


async def _topic_facts(bootstrap: str, topic: str) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})]
        )
        configs = {row[0]: row[1] for row in response.resources[0][4]}
        return len(described["partitions"]), configs["retention.ms"]
    finally:
        await admin.close()


@pytest.mark.anyio
async def test_topic_is_created_on_first_use_with_the_given_settings(
    kafka_bootstrap: str, session_id: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        history = AsyncKafkaChatMessageHistory(
            session_id, kafka_bootstrap, ttl_ms=3_600_000, partition=4
        )
        assert session_id not in await admin.list_topics()  # the constructor did no I/O
        async with history:
            await history.aadd_user_message("x")
    finally:
        await admin.close()
    assert await _topic_facts(kafka_bootstrap, session_id) == (4, "3600000")


@pytest.mark.anyio
async def test_existing_topic_is_used_as_it_is(kafka_bootstrap: str, session_id: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(session_id, 2, 1, topic_configs={"retention.ms": "123456789"})]
        )
    finally:
        await admin.close()
    async with AsyncKafkaChatMessageHistory(
        session_id, kafka_bootstrap, ttl_ms=1000, partition=5
    ) as history:
        await history.aadd_user_message("x")
        assert [m.content for m in await history.aget_messages()] == ["x"]
    assert await _topic_facts(kafka_bootstrap, session_id) == (2, "123456789")


def test_two_processes_creating_one_topic_at_once_both_succeed(
    kafka_bootstrap: str, session_id: str
) -> None:
    script = (
        "import sys\n"
        "from aiokafka_history import KafkaChatMessageHistory\n"
        "with KafkaChatMessageHistory(sys.argv[1], sys.argv[2], partition=3) as h:\n"
        "    h.add_user_message(sys.argv[3])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", script, session_id, kafka_bootstrap, name]
        )
        for name in ("first", "second", "third")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as history:
        assert sorted(m.content for m in history.messages) == ["first", "second", "third"]


def test_a_refused_write_raises_and_says_what_was_stored(
    kafka_bootstrap: str, session_id: str
) -> None:
    too_big = HumanMessage(content="x" * (2 * 1024 * 1024))  # over max.request.size (1 MiB)
    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as history:
        # All or nothing: the batch is checked before any of it is sent.
        with pytest.raises(InvalidMessageError, match="message 1 of the batch") as info:
            history.add_messages([HumanMessage(content="ok"), too_big, AIMessage(content="no")])
        error = info.value
        assert isinstance(error, ValueError)
        assert "nothing was written" in str(error)
        assert "1048576-byte request limit" in str(error)
        assert "split its content over several messages" in str(error)
        assert "x" * 100 not in str(error)  # no payload in the message
        assert error.__cause__ is None
        assert history.messages == []
        history.add_messages([HumanMessage(content="ok"), AIMessage(content="yes")])
        assert [m.content for m in history.messages] == ["ok", "yes"]


def test_non_messages_are_rejected_before_anything_is_written(
    kafka_bootstrap: str, session_id: str
) -> None:
    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as history:
        with pytest.raises(TypeError, match="BaseMessage"):
            history.add_messages([HumanMessage(content="ok"), {"role": "user"}])  # type: ignore[list-item]
        assert history.messages == []

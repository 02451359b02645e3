"""Writes: fidelity, acknowledgement, failures and topic creation on the real broker."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    ConfigurationError,
    InvalidMessageError,
    KafkaChatMessageHistory,
    TopicSettings,
)

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
SHARED = pytest.mark.parametrize("layout", ["shared-topic"], indirect=True)

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


def test_messages_round_trip_with_full_fidelity(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id, messages_mode="full") as history:
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
    open_history: OpenHistory, layout: dict[str, Any], kafka_bootstrap: str, session_id: str
) -> None:
    # Three processes race to create the topic: the session's own (3 partitions), or the
    # shared topic (the layout's settings) that none of them has seen yet.
    script = (
        "import sys\n"
        "from aiokafka_history import KafkaChatMessageHistory, KafkaHistoryClient, TopicSettings\n"
        "session, bootstrap, name, shared = sys.argv[1:5]\n"
        "if not shared:\n"
        "    with KafkaChatMessageHistory(session, bootstrap, partition=3) as h:\n"
        "        h.add_user_message(name)\n"
        "else:\n"
        "    settings = TopicSettings(partition=int(sys.argv[5]))\n"
        "    with KafkaHistoryClient(\n"
        "        bootstrap, shared_topic=shared, shared_topic_settings=settings\n"
        "    ) as client:\n"
        "        client.history(session).add_user_message(name)\n"
    )
    shared = (
        [layout["shared_topic"], str(layout["shared_topic_settings"].partition)] if layout else [""]
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "error",
                "-c",
                script,
                session_id,
                kafka_bootstrap,
                name,
                *shared,
            ]
        )
        for name in ("first", "second", "third")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    with open_history(session_id, messages_mode="full") as history:
        assert sorted(m.content for m in history.messages) == ["first", "second", "third"]


def test_a_refused_write_raises_and_says_what_was_stored(
    open_history: OpenHistory, session_id: str
) -> None:
    too_big = HumanMessage(content="x" * (2 * 1024 * 1024))  # over max.request.size (1 MiB)
    with open_history(session_id, messages_mode="full") as history:
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
    open_history: OpenHistory, session_id: str
) -> None:
    with open_history(session_id, messages_mode="full") as history:
        with pytest.raises(TypeError, match="BaseMessage"):
            history.add_messages([HumanMessage(content="ok"), {"role": "user"}])  # type: ignore[list-item]
        assert history.messages == []


# -- the shared layout's counterparts of the topic-creation tests ----------------------------


async def _shared_topic_facts(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    """Partitions and the configs the shared layout sets of ``topic``."""
    names = ("retention.ms", "cleanup.policy", "max.compaction.lag.ms", "delete.retention.ms")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(names))]
        )
        configs = {row[0]: row[1] for row in response.resources[0][4] if row[0] in names}
        return len(described["partitions"]), configs
    finally:
        await admin.close()


@SHARED
@pytest.mark.anyio
async def test_shared_topic_is_created_on_first_use_with_its_settings(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    settings = TopicSettings(ttl_ms=3_600_000, partition=4)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        async with AsyncKafkaHistoryClient(
            kafka_bootstrap, shared_topic=topic, shared_topic_settings=settings
        ) as client:
            history = client.history(session_id)
            assert topic not in await admin.list_topics()  # no I/O before the first call
            await history.aadd_user_message("x")
            assert [m.content for m in await history.aget_messages()] == ["x"]
    finally:
        await admin.close()
    assert await _shared_topic_facts(kafka_bootstrap, topic) == (
        4,
        {
            "retention.ms": "3600000",
            "cleanup.policy": "compact,delete",
            "max.compaction.lag.ms": "3600000",
            "delete.retention.ms": "86400000",
        },
    )


@SHARED
@pytest.mark.anyio
async def test_an_existing_shared_topic_is_used_as_it_is(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    2,
                    1,
                    topic_configs={"retention.ms": "123456789", "cleanup.policy": "compact"},
                )
            ]
        )
    finally:
        await admin.close()
    settings = TopicSettings(ttl_ms=1000, partition=5)
    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, shared_topic=topic, shared_topic_settings=settings
    ) as client:
        history = client.history(session_id)
        await history.aadd_user_message("x")
        assert [m.content for m in await history.aget_messages()] == ["x"]
    partitions, configs = await _shared_topic_facts(kafka_bootstrap, topic)
    assert (partitions, configs["retention.ms"], configs["cleanup.policy"]) == (
        2,
        "123456789",
        "compact",
    )


@SHARED
@pytest.mark.anyio
async def test_an_existing_topic_that_is_not_compacted_is_refused_as_shared_topic(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    topic = layout["shared_topic"]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id)
        for call in (lambda: history.aadd_user_message("x"), history.aget_messages):
            with pytest.raises(ConfigurationError, match=r"cleanup\.policy='delete'") as info:
                await call()
            assert "needs 'compact'" in str(info.value)
    partitions, configs = await _shared_topic_facts(kafka_bootstrap, topic)
    assert (partitions, configs["cleanup.policy"]) == (1, "delete")  # left as it was

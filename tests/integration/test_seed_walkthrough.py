"""The langchain_community Kafka page, step by step, with every result it shows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from aiokafka_history import ConfigurationError, KafkaChatMessageHistory, KafkaHistoryClient

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]


def test_seed_page_walkthrough(open_history: OpenHistory, session_id: str) -> None:
    """In both layouts; in a topic per session ``open_history`` is the page's constructor,
    ``KafkaChatMessageHistory(chat_session_id, bootstrap_servers)``."""
    chat_session_id = session_id
    with open_history(chat_session_id) as history:
        history.add_user_message("hi!")
        history.add_ai_message("whats up?")
        assert history.messages == [HumanMessage(content="hi!"), AIMessage(content="whats up?")]

        # Calling messages again returns an empty list: the consumer is at the end.
        assert history.messages == []

        history.add_user_message("hi again!")
        history.add_ai_message("whats up again?")
        assert history.messages == [
            HumanMessage(content="hi again!"),
            AIMessage(content="whats up again?"),
        ]

        # The page shows these four shuffled; we return them in write order.
        assert history.messages_from_beginning() == [
            HumanMessage(content="hi!"),
            AIMessage(content="whats up?"),
            HumanMessage(content="hi again!"),
            AIMessage(content="whats up again?"),
        ]

        assert history.messages_from_latest() == []
        history.add_user_message("HI!")
        history.add_ai_message("WHATS UP?")
        assert history.messages == [HumanMessage(content="HI!"), AIMessage(content="WHATS UP?")]


def test_seed_optional_parameters(kafka_bootstrap: str, session_id: str) -> None:
    """Topic per session only: the page's per-topic settings (the shared layout refuses them)."""
    with KafkaChatMessageHistory(
        session_id, kafka_bootstrap, ttl_ms=3_600_000, replication_factor=1, partition=3
    ) as history:
        for i in range(6):
            history.add_user_message(f"m{i}")
        assert [m.content for m in history.messages_from_beginning(max_message_count=4)] == [
            "m0",
            "m1",
            "m2",
            "m3",
        ]
        # The position moved past the four returned, exactly.
        assert [m.content for m in history.messages_from_last_consumed(max_time_sec=5.0)] == [
            "m4",
            "m5",
        ]
        started = time.monotonic()
        assert history.messages_from_last_consumed(max_message_count=10, max_time_sec=30) == []
        # Nothing new: it returns at once instead of waiting out max_time_sec.
        assert time.monotonic() - started < 20


@pytest.mark.parametrize("layout", ["shared-topic"], indirect=True)
def test_seed_optional_parameters_belong_to_the_shared_topic(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    """The shared layout's counterpart: the topic settings are the client's, not a session's."""
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        for options in ({"ttl_ms": 3_600_000}, {"replication_factor": 2}, {"partition": 3}):
            with pytest.raises(ConfigurationError, match="shared_topic_settings"):
                client.history(session_id, **options)
        assert not client.connected  # refused before any I/O
        # The defaults, passed as the page passes them, are what the shared topic has anyway.
        history = client.history(session_id, ttl_ms=604_800_000, replication_factor=1, partition=1)
        history.add_user_message("m0")
        assert [m.content for m in history.messages_from_beginning(max_message_count=4)] == ["m0"]

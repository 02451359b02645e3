"""``timed_messages``: the whole history with the time Kafka stored each message."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory, KafkaChatMessageHistory

pytestmark = pytest.mark.anyio


def test_timed_messages_in_order_with_utc_times_moving_nothing(
    open_history: Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]],
    session_id: str,
) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    with open_history(session_id) as history:
        assert history.timed_messages() == []
        history.add_messages([HumanMessage(content="q"), AIMessage(content="a")])
        timed = history.timed_messages()
        after = datetime.now(timezone.utc) + timedelta(seconds=5)
        assert [m.content for _, m in timed] == ["q", "a"]
        assert all(t.tzinfo is timezone.utc and before <= t <= after for t, _ in timed)
        assert timed[0][0] <= timed[1][0]
        # Moves no position: the default mode still sees both as new.
        assert [m.content for m in history.messages] == ["q", "a"]


async def test_atimed_messages(aopen_history: Callable[..., Any], session_id: str) -> None:
    history: AsyncKafkaChatMessageHistory
    async with aopen_history(session_id) as history:
        await history.aadd_user_message("x")
        ((when, message),) = await history.atimed_messages()
        assert message.content == "x"
        assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60

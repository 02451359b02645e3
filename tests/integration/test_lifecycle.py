"""Closing, leaks, deletion and session listing on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    EventLoopError,
    HistoryClosedError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
AOpenHistory = Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]
SHARED = pytest.mark.parametrize("layout", ["shared-topic"], indirect=True)


def test_use_after_close_raises_and_close_is_idempotent(
    open_history: OpenHistory, aopen_history: AOpenHistory, session_id: str
) -> None:
    with open_history(session_id) as history:  # leaving closes it once more
        history.add_user_message("x")
        history.close()
        history.close()
        with pytest.raises(HistoryClosedError, match=session_id):
            history.add_user_message("y")
        with pytest.raises(HistoryClosedError):
            _ = history.messages

    # Own loop for the async half: the blocking half above is meant to run with no loop.
    async def scenario() -> None:
        async with aopen_history(session_id) as async_history:
            await async_history.aadd_user_message("x")
            await async_history.aclose()
            await async_history.aclose()
            with pytest.raises(HistoryClosedError):
                await async_history.aget_messages()

    asyncio.run(scenario())


def test_views_fail_once_the_shared_client_is_closed(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    client = KafkaHistoryClient(kafka_bootstrap, **layout)
    view = client.history(session_id)
    view.add_user_message("x")
    view.close()  # closing a view leaves the client open
    other = client.history(session_id)
    assert [m.content for m in other.messages] == ["x"]
    client.close()
    with pytest.raises(HistoryClosedError):
        other.add_user_message("late")
    with pytest.raises(HistoryClosedError):
        client.history(session_id)


def test_an_unclosed_history_warns(kafka_bootstrap: str, session_id: str) -> None:
    history = KafkaChatMessageHistory(session_id, kafka_bootstrap)
    history.add_user_message("x")
    client = history.client
    with pytest.warns(ResourceWarning, match="unclosed"):
        del history
        gc.collect()
    client.close()

    # Own loop for the async half: the blocking half above is meant to run with no loop.
    async def scenario() -> None:
        async_history = AsyncKafkaChatMessageHistory(session_id, kafka_bootstrap)
        await async_history.aadd_user_message("x")
        async_client = async_history.client
        with pytest.warns(ResourceWarning, match="unclosed"):
            del async_history
            gc.collect()
        await async_client.aclose()

    asyncio.run(scenario())


def test_async_client_refuses_a_second_loop_clearly(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    client = AsyncKafkaHistoryClient(kafka_bootstrap, **layout)
    history = client.history(session_id)
    home = asyncio.new_event_loop()
    thread = threading.Thread(target=home.run_forever, name="home-loop")
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(history.aadd_user_message("x"), home).result(30)
        with pytest.raises(EventLoopError, match="belongs to the event loop it was first used in"):
            asyncio.run(history.aadd_user_message("y"))
        # Blocking calls from this thread are served by the home loop...
        assert [m.content for m in history.messages] == ["x"]
        # ...and close() from here closes the connections on it.
        client.close()
        assert client.closed
    finally:
        home.call_soon_threadsafe(home.stop)
        thread.join()
        home.close()


def test_sessions_on_the_shared_client(kafka_bootstrap: str) -> None:
    prefix = f"it-sessions-{uuid.uuid4().hex[:8]}."
    names = ["alpha", "beta", "gamma"]
    with KafkaHistoryClient(kafka_bootstrap, topic_prefix=prefix) as client:
        try:
            assert client.list_sessions() == []
            for name in names:
                client.history(name).add_user_message("hi")
            assert client.list_sessions() == names
            assert client.session_exists("beta")
            assert not client.session_exists("delta")
            assert client.history("beta").topic == prefix + "beta"
            assert client.delete_session("beta")
            assert not client.delete_session("delta")
            assert not client.session_exists("beta")
            assert client.list_sessions() == ["alpha", "gamma"]
        finally:
            for name in client.list_sessions():
                client.delete_session(name)


@SHARED
def test_sessions_in_the_shared_topic(kafka_bootstrap: str, layout: dict[str, Any]) -> None:
    """The shared layout's counterpart of the prefix test: its sessions are the topic's."""
    names = ["alpha", "beta", "gamma"]
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        assert client.list_sessions() == []
        for name in names:
            client.history(name).add_user_message("hi")
        assert client.list_sessions() == names
        assert client.session_exists("beta")
        assert not client.session_exists("delta")
        assert client.history("beta").topic == layout["shared_topic"]
        assert client.delete_session("beta")
        assert not client.delete_session("delta")
        assert not client.session_exists("beta")
        assert client.list_sessions() == ["alpha", "gamma"]
    # Another client (another process, a view built afresh) sees the same sessions.
    with KafkaHistoryClient(kafka_bootstrap, **layout) as other:
        assert other.list_sessions() == ["alpha", "gamma"]
        assert not other.session_exists("beta")
        assert other.history("beta", messages_mode="full").messages == []
        assert [m.content for m in other.history("alpha").messages] == ["hi"]


@pytest.mark.anyio
async def test_delete_topic_removes_the_session_for_good(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        history = client.history(session_id)
        await history.aadd_user_message("x")
        assert await client.session_exists(session_id)
        assert await history.adelete_topic()
        assert not await client.session_exists(session_id)
        assert session_id not in await client.list_sessions()

"""Live tails on the real broker: delivery, order, start positions, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory, KafkaChatMessageHistory
from tests.layouts import OPEN_IN_LAYOUT, layout_args

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
AOpenHistory = Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]

# argv: session, bootstrap, count, then the layout: shared topic ("" for a topic per
# session) and its partitions.
WRITER = (
    OPEN_IN_LAYOUT
    + """
import time
from langchain_core.messages import HumanMessage

with open_history(sys.argv[1], sys.argv[2], *sys.argv[4:6]) as history:
    for i in range(int(sys.argv[3])):
        history.add_message(HumanMessage(content=f"live:{i}"))
        time.sleep(0.005)
"""
)


def test_a_tail_receives_every_message_another_process_writes(
    aopen_history: AOpenHistory, layout: dict[str, Any], kafka_bootstrap: str, session_id: str
) -> None:
    # Kept on its own asyncio.run: the writer is a child process (asyncio subprocess API).
    async def scenario() -> list[str]:
        async with (
            aopen_history(session_id) as history,
            history.atail("latest", idle_timeout=30) as tail,
        ):
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-W",
                "error",
                "-c",
                WRITER,
                session_id,
                kafka_bootstrap,
                "100",
                *layout_args(layout),
            )
            received = []
            async for message in tail:
                received.append(str(message.content))
                if len(received) == 100:
                    break
            assert await writer.wait() == 0
            return received

    assert asyncio.run(scenario()) == [f"live:{i}" for i in range(100)]


def test_tail_start_positions_and_commit(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id) as history:
        history.add_messages([HumanMessage(content=f"old:{i}") for i in range(3)])
        with history.tail("beginning", idle_timeout=0.5) as tail:
            assert [m.content for m in tail] == ["old:0", "old:1", "old:2"]
        with history.tail("last_consumed", commit=True, idle_timeout=0.5) as tail:
            assert next(tail).content == "old:0"
            assert next(tail).content == "old:1"
        # The committing tail moved the position past what it handed out.
        assert [m.content for m in history.messages] == ["old:2"]
        with history.tail("latest", idle_timeout=0.5) as tail:
            assert list(tail) == []


@pytest.mark.anyio
async def test_cancelling_a_waiting_tail_loses_nothing(
    aopen_history: AOpenHistory, session_id: str
) -> None:
    async with (
        aopen_history(session_id) as history,
        history.atail("latest") as tail,
    ):
        waiting = asyncio.ensure_future(tail.__anext__())
        await asyncio.sleep(0.3)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await history.aadd_messages([HumanMessage(content=f"m{i}") for i in range(5)])
        received = [str((await tail.__anext__()).content) for _ in range(5)]
    assert received == [f"m{i}" for i in range(5)]


def test_sync_class_tail_awaited_from_another_loop(
    open_history: OpenHistory, session_id: str
) -> None:
    with open_history(session_id) as history:

        async def scenario() -> list[str]:
            async with history.atail("latest", idle_timeout=1) as tail:
                await history.aadd_user_message("a")
                history.add_user_message("b")
                return [str(m.content) async for m in tail]

        assert asyncio.run(scenario()) == ["a", "b"]

"""Threads, event loops and concurrent readers/writers on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    EventLoopError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
AOpenHistory = Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]


def _by_writer(messages: list[BaseMessage]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in messages:
        writer, number = str(m.content).split(":")
        out.setdefault(writer, []).append(int(number))
    return out


def test_sixteen_threads_share_one_sync_history(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id, messages_mode="full") as history:

        def work(worker: int) -> int:
            for i in range(25):
                history.add_user_message(f"w{worker}:{i}")
                if i % 5 == 0:
                    seen = _by_writer(history.messages).get(f"w{worker}", [])
                    assert seen == list(range(len(seen)))  # own writes, in order, no gaps
            return worker

        with ThreadPoolExecutor(16) as pool:
            assert sorted(pool.map(work, range(16))) == list(range(16))
        stored = _by_writer(history.messages)
    assert stored == {f"w{w}": list(range(25)) for w in range(16)}


def test_sixteen_threads_with_their_own_sessions_on_one_client(
    kafka_bootstrap: str, layout: dict[str, Any], make_session_id: Callable[[str], str]
) -> None:
    sessions = [make_session_id(f"t{i}") for i in range(16)]
    barrier = threading.Barrier(16)
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:

        def work(session: str) -> list[str]:
            history = client.history(session)
            barrier.wait()
            history.add_messages([HumanMessage(content=f"{session}:{i}") for i in range(10)])
            return [str(m.content) for m in history.messages]

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(work, sessions))
    assert results == [[f"{s}:{i}" for i in range(10)] for s in sessions]


def test_sync_class_works_inside_a_running_loop(open_history: OpenHistory, session_id: str) -> None:
    async def notebook_cell() -> list[BaseMessage]:
        # A blocking call from a thread whose loop is running (a notebook, a sync helper).
        with open_history(session_id) as history:
            history.add_user_message("from a running loop")
            # ...and its awaitable twins from the same loop, without blocking it.
            await history.aadd_ai_message("awaited")
            return await history.aget_messages()

    assert [m.content for m in asyncio.run(notebook_cell())] == ["from a running loop", "awaited"]


def test_sync_class_awaited_from_several_loops(open_history: OpenHistory, session_id: str) -> None:
    with open_history(session_id, messages_mode="full") as history:
        for i in range(3):  # each asyncio.run is a new loop; the history's own loop stays
            asyncio.run(history.aadd_user_message(f"run{i}"))
        assert [m.content for m in asyncio.run(history.aget_messages())] == [
            "run0",
            "run1",
            "run2",
        ]


def test_async_class_blocking_methods_in_every_context(
    kafka_bootstrap: str, layout: dict[str, Any], aopen_history: AOpenHistory, session_id: str
) -> None:
    # 1. Plain blocking code, no loop anywhere: no hidden loop is started; the error names
    #    the async method and the blocking class to use instead. Nothing was written.
    client = AsyncKafkaHistoryClient(kafka_bootstrap, **layout) if layout else None
    history = (
        client.history(session_id, messages_mode="full")
        if client is not None
        else AsyncKafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full")
    )
    with pytest.raises(EventLoopError, match=r"KafkaChatMessageHistory.*aadd_user_message\(\)"):
        history.add_user_message("plain")
    with pytest.raises(EventLoopError, match="KafkaChatMessageHistory"):
        _ = history.messages
    history.close()
    if client is not None:
        assert not client.connected
        client.close()

    async def in_loop() -> list[str]:
        async with aopen_history(session_id, messages_mode="full") as h:
            await h.aadd_user_message("native")
            # 2. A worker thread while the home loop runs: runs on the home loop.
            await asyncio.to_thread(h.add_user_message, "from a worker thread")
            assert [m.content for m in await asyncio.to_thread(lambda: h.messages)] == [
                "native",
                "from a worker thread",
            ]
            # 3. Blocking call on the home loop's own thread: a clear error, never a deadlock
            #    and never a hidden loop; nothing was written.
            with pytest.raises(
                EventLoopError, match=r"await AsyncKafkaChatMessageHistory\.aadd_user_message\(\)"
            ) as info:
                h.add_user_message("blocking inside the loop")
            assert "KafkaChatMessageHistory" in str(info.value)
            assert "deadlock" in str(info.value)
            return [str(m.content) for m in await h.aget_messages()]

    assert asyncio.run(in_loop()) == ["native", "from a worker thread"]


@pytest.mark.anyio
async def test_concurrent_readers_and_writers_of_one_session(
    kafka_bootstrap: str, layout: dict[str, Any], session_id: str
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap, max_readers=3, **layout) as client:
        writers = [client.history(session_id) for _ in range(4)]
        readers = [client.history(session_id, messages_mode="full") for _ in range(3)]

        async def write(n: int) -> None:
            for i in range(30):
                await writers[n].aadd_user_message(f"w{n}:{i}")

        async def read(r: int) -> int:
            reads = 0
            while not writing.done():
                seen = _by_writer(await readers[r].aget_messages())
                for numbers in seen.values():  # every read is a consistent prefix
                    assert numbers == list(range(len(numbers)))
                reads += 1
            return reads

        writing = asyncio.gather(*(write(n) for n in range(4)))
        counts = await asyncio.gather(*(read(r) for r in range(3)))
        await writing
        assert all(c > 0 for c in counts)
        stored = _by_writer(await readers[0].aget_messages())
    assert stored == {f"w{n}": list(range(30)) for n in range(4)}


def test_two_readers_never_steal_each_others_partitions(
    open_history: OpenHistory, layout: dict[str, Any], session_id: str
) -> None:
    """Group-subscribed readers would split the partitions; ours each see all of them.

    In the shared layout the topic has 3 partitions already and every reader is a client of
    its own, with a view of its own.
    """
    with open_history(session_id, **({} if layout else {"partition": 3})) as writer:
        writer.add_messages([HumanMessage(content=f"w:{i}") for i in range(30)])

    def read_all(_: int) -> list[int]:
        with open_history(session_id) as reader:
            return _by_writer(reader.messages_from_beginning())["w"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read_all, range(8)))
    assert results == [list(range(30))] * 8

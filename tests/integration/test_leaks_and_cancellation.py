"""Nothing leaks: dropped seed-style histories, cancellations at every await, closes under load."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    HistoryClosedError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
    KafkaHistoryError,
)
from kafkalocal import TopicFactory


def _settle(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        gc.collect()
        time.sleep(0.05)


def test_dropped_seed_style_histories_release_threads_and_sockets(
    kafka_bootstrap: str, session_id: str, socket_fds: Callable[[], int]
) -> None:
    """``lambda sid: KafkaChatMessageHistory(sid, servers)``, as RunnableWithMessageHistory
    users write it: 200 objects used and dropped without close() leave nothing behind."""
    # A dropped history says so (a recorded warning keeps its source alive: check it once).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        dropped = KafkaChatMessageHistory(session_id, kafka_bootstrap)
        _ = dropped.last_messages(1)
        del dropped
        gc.collect()
        said = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        warnings.simplefilter("ignore", ResourceWarning)
        caught.clear()  # the records held the objects: let them go now
        gc.collect()
    assert any(m.startswith("unclosed <KafkaChatMessageHistory") for m in said), said
    threads_before = threading.active_count()
    sockets_before = socket_fds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for i in range(200):
            history = KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full")
            if i % 20 == 0:
                history.add_user_message(f"m{i}")
            else:
                _ = history.last_messages(1)
            del history
        gc.collect()
    _settle(lambda: threading.active_count() <= threads_before)
    _settle(lambda: socket_fds() <= sockets_before)
    print(
        f"\n200 dropped histories: threads {threads_before} -> {threading.active_count()}, "
        f"sockets {sockets_before} -> {socket_fds()}"
    )
    assert threading.active_count() <= threads_before
    assert socket_fds() <= sockets_before
    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as check:
        assert [m.content for m in check.messages] == [f"m{i}" for i in range(0, 200, 20)]


@pytest.mark.parametrize("operation", ["add", "read", "last", "clear"])
def test_cancelling_at_every_await_leaks_nothing(
    kafka_bootstrap: str, session_id: str, operation: str, socket_fds: Callable[[], int]
) -> None:
    """Cancel a first call (connect included) after 0..~100 ms, at every await it reaches."""

    async def once(delay: float) -> tuple[list[str], int]:
        async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:
            history = client.history(session_id, messages_mode="full")
            call = {
                "add": lambda: history.aadd_user_message("x"),
                "read": history.aget_messages,
                "last": lambda: history.alast_messages(3),
                "clear": history.aclear,
            }[operation]
            task = asyncio.ensure_future(call())
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # The client still works after a cancellation at any point.
            await history.aadd_user_message("after")
            assert "after" in [m.content for m in await history.aget_messages()]
        await asyncio.sleep(0.05)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return [repr(t)[:300] for t in others], client.sockets()

    sockets_before = socket_fds()
    for delay in (0, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128):
        # A fresh loop per delay: all_tasks() then sees only what this cancellation left.
        tasks_left, library_sockets = asyncio.run(once(delay))
        assert not tasks_left, f"tasks left after cancelling at {delay}s: {tasks_left}"
        assert library_sockets == 0
    _settle(lambda: socket_fds() <= sockets_before)
    assert socket_fds() <= sockets_before


def test_closing_while_other_threads_work_gives_them_library_errors_only(
    kafka_bootstrap: str, session_id: str
) -> None:
    client = KafkaHistoryClient(kafka_bootstrap)
    history = client.history(session_id, messages_mode="full")
    history.add_user_message("warm")
    outcomes: list[str] = []
    stop = threading.Event()

    def work(n: int) -> None:
        while not stop.is_set():
            try:
                history.add_user_message(f"t{n}")
                _ = history.messages
                outcomes.append("ok")
            except HistoryClosedError:
                outcomes.append("closed")
                return
            except KafkaHistoryError as exc:
                outcomes.append(type(exc).__name__)
                return

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(work, n) for n in range(8)]
        time.sleep(0.5)
        client.close()
        stop.set()
        for future in futures:
            future.result(timeout=60)  # no raw aiokafka or asyncio exception escaped
    print(f"\nclose under load: {outcomes.count('ok')} calls done, then {set(outcomes)}")
    assert outcomes.count("ok") > 0
    assert set(outcomes) <= {"ok", "closed", "SessionWriteError", "SessionReadError"}
    with pytest.raises(HistoryClosedError):
        history.add_user_message("after close")


@pytest.mark.anyio
async def test_cancelling_the_blocking_historys_awaitable_tail_loses_nothing(
    kafka_bootstrap: str, session_id: str
) -> None:
    """``KafkaChatMessageHistory.atail()`` lives on the client's loop thread: a caller that
    stops waiting (a timeout) must not lose the message that call took there."""
    received: list[str] = []
    cancelled = 0
    client = KafkaHistoryClient(kafka_bootstrap)
    try:
        history = client.history(session_id)
        await history.aadd_user_message("-1")
        async with history.atail("beginning", idle_timeout=10) as tail:

            async def produce() -> None:
                for i in range(150):
                    await history.aadd_user_message(str(i))
                    await asyncio.sleep(0.002 * (i % 3))

            writer = asyncio.ensure_future(produce())
            while len(received) < 151:
                try:
                    message = await asyncio.wait_for(tail.__anext__(), 0.003 * (1 + cancelled % 7))
                    received.append(str(message.content))
                except asyncio.TimeoutError:
                    cancelled += 1
                    assert cancelled < 20_000
            await writer
    finally:
        await client.aclose()
    print(f"\nawaitable blocking tail: {len(received)} received, {cancelled} cancelled waits")
    assert cancelled > 0
    assert received == [str(i) for i in range(-1, 150)]


def test_a_dropped_shared_client_releases_its_view_thread_and_file(
    kafka_bootstrap: str, kafka_topics: TopicFactory, tmp_path: Path
) -> None:
    """An unclosed shared client (a crashed handler) lets go of its view once collected: the
    view's thread ends, and its file (locked while in use) opens in the next client."""
    topic = kafka_topics("shared")
    path = tmp_path / "view.sqlite"

    def view_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if "history-view" in t.name]

    async def use(label: str) -> list[str]:
        client = AsyncKafkaHistoryClient(kafka_bootstrap, shared_topic=topic, view=path)
        history = client.history("s1", messages_mode="full")
        await history.aadd_user_message(label)
        return [str(m.content) for m in await history.aget_messages()]  # never closed

    before = view_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        assert asyncio.run(use("first")) == ["first"]
        gc.collect()
        _settle(lambda: view_threads() == before)
        assert view_threads() == before
        assert asyncio.run(use("second")) == ["first", "second"]  # the file was let go
        gc.collect()
        _settle(lambda: view_threads() == before)
    assert view_threads() == before

"""7. Event-loop friendliness: loop lag while 8 tasks add and read through one client.

A probe task sleeps 5 ms and records how late it wakes up. Baseline: the same probe on the
same, idle, loop just before. The load: 8 sessions on one ``AsyncKafkaHistoryClient``, each
task looping ``aadd_user_message`` + ``aget_messages`` (last consumed: the one new message),
in both storage layouts; and, for the shared layout, a fresh client rebuilding its local view
of 100,000 records (the probe runs while ``list_sessions()`` waits for the whole topic).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.messages import HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory, AsyncKafkaHistoryClient, TopicSettings

from ._context import Context
from ._measure import expect
from ._report import Figure, Row

TITLE = "event-loop lag under load"

TASKS = 8
TICK = 0.005


async def probe(duration: float) -> list[float]:
    """How late each ``sleep(TICK)`` woke up, for ``duration`` seconds."""
    lags: list[float] = []
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append(max(0.0, time.perf_counter() - began - TICK))
    return lags


async def _work(history: AsyncKafkaChatMessageHistory, stop: asyncio.Event) -> int:
    rounds = 0
    while not stop.is_set():
        await history.aadd_user_message(f"turn {rounds}")
        got = await history.aget_messages()
        expect(len(got) == 1, f"{history.session_id}: read {len(got)} new messages, not 1")
        rounds += 1
    return rounds


def _options(ctx: Context, shared: bool) -> dict[str, Any]:
    if shared:
        return {
            "shared_topic": ctx.topic("loop-shared"),
            "shared_topic_settings": TopicSettings(partition=4),
        }
    return {"topic_prefix": ctx.topic("loop-")}


async def _lags(
    ctx: Context, duration: float, shared: bool
) -> tuple[list[float], list[float], int]:
    idle = await probe(duration)
    async with AsyncKafkaHistoryClient(ctx.bootstrap, **_options(ctx, shared)) as client:
        histories = [client.history(f"w{i}") for i in range(TASKS)]
        # Topics, connections and readers exist before the measured window (one write
        # first: concurrent first calls on a fresh client race its start-up).
        await histories[0].aadd_user_message("warm-up")
        await asyncio.gather(*(h.aadd_user_message("warm-up") for h in histories[1:]))
        await asyncio.gather(*(h.aget_messages() for h in histories))
        stop = asyncio.Event()
        workers = [asyncio.create_task(_work(h, stop)) for h in histories]
        try:
            loaded = await probe(duration)
        finally:
            stop.set()
            rounds = await asyncio.wait_for(asyncio.gather(*workers), 60)
    return idle, loaded, sum(rounds)


async def _rebuild_lags(ctx: Context, records: int) -> tuple[list[float], list[float], float]:
    options = {
        "shared_topic": ctx.topic("rebuild-shared"),
        "shared_topic_settings": TopicSettings(partition=4),
    }
    sessions = 100
    async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as writer:
        per = records // sessions
        for s in range(sessions):
            history = writer.history(f"s{s}")
            await history.aadd_messages(
                [HumanMessage(content=f"s{s} message {i}") for i in range(per)]
            )
    idle = await probe(1.0)
    async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as reader:
        began = time.perf_counter()
        listing = asyncio.create_task(reader.list_sessions())
        lags: list[float] = []
        while not listing.done():
            lags.extend(await probe(0.1))
        took = time.perf_counter() - began
        found = listing.result()
        expect(len(found) == sessions, f"the rebuilt view lists {len(found)} sessions")
    return idle, lags, records / took


def run(ctx: Context) -> list[Row]:
    duration = 1.5 if ctx.quick else 3.0
    keys = ("p99", "max")
    rows = []
    for shared in (False, True):
        idle, loaded, rounds = asyncio.run(_lags(ctx, duration, shared))
        where = "shared topic" if shared else "topic per session"
        rows.append(
            Row(
                "7",
                f"loop lag, {TASKS} tasks add+read, {where} ({rounds / duration:,.0f} rounds/s)",
                Figure.latency(loaded, keys=keys),
                "same probe, idle loop",
                Figure.latency(idle, keys=keys),
                on="p99",
                words=("less lag", "more lag"),
            )
        )
    count = ctx.n(100_000, 20_000)
    idle, lags, rate = asyncio.run(_rebuild_lags(ctx, count))
    rows.append(
        Row(
            "7",
            f"loop lag, view rebuild of {count:,} records ({rate:,.0f} records/s)",
            Figure.latency(lags, keys=keys),
            "same probe, idle loop",
            Figure.latency(idle, keys=keys),
            on="p99",
            words=("less lag", "more lag"),
        )
    )
    return rows

"""7. Event-loop friendliness: loop lag while 8 tasks add and read through one client.

A probe task sleeps 5 ms and records how late it wakes up. Baseline: the same probe on the
same, idle, loop just before. The load: 8 sessions on one ``AsyncKafkaHistoryClient``, each
task looping ``aadd_user_message`` + ``aget_messages`` (last consumed: the one new message).
"""

from __future__ import annotations

import asyncio
import time

from aiokafka_history import AsyncKafkaChatMessageHistory, AsyncKafkaHistoryClient

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


async def _lags(ctx: Context, duration: float) -> tuple[list[float], list[float], int]:
    idle = await probe(duration)
    async with AsyncKafkaHistoryClient(ctx.bootstrap, topic_prefix=ctx.topic("loop-")) as client:
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


def run(ctx: Context) -> list[Row]:
    duration = 1.5 if ctx.quick else 3.0
    idle, loaded, rounds = asyncio.run(_lags(ctx, duration))
    keys = ("p99", "max")
    return [
        Row(
            "7",
            f"loop lag, {TASKS} tasks add+read ({rounds / duration:,.0f} rounds/s)",
            Figure.latency(loaded, keys=keys),
            "same probe, idle loop",
            Figure.latency(idle, keys=keys),
            on="p99",
            words=("less lag", "more lag"),
        )
    ]

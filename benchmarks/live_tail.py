"""5. Live tail: delay from a write in another process to delivery by ``atail("latest")``.

A writer subprocess (``benchmarks.tail_writer``) writes messages that carry their send time
(``time.time()``, one clock for both processes); the delay is the receive time minus it, so it
includes the writer's acknowledged write. Target: p99 <= 100 ms. Baseline: a raw aiokafka
consumer (manual assignment, ``group_id=None``, default fetch settings) tailing the same topic
in this process at the same time, so the ratio is our overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from aiokafka_history import AsyncKafkaHistoryClient, MessageTail

from ._context import Context
from ._measure import BenchmarkError, expect
from ._report import Figure, Row, Target

TITLE = "live tail delivery delay"

INTERVAL = 0.01  # seconds between writes
TARGET = Target("p99", 100.0, "ms")
_ROOT = Path(__file__).resolve().parent.parent
_GRACE = 10.0  # seconds the tails get, after the writer exits, to deliver the rest


def _sent_at(content: str) -> tuple[int, float] | None:
    payload: dict[str, Any] = json.loads(content)
    if "i" not in payload:
        return None  # the warm-up message
    return int(payload["i"]), float(payload["sent"])


async def _collect_ours(tail: MessageTail, n: int) -> list[float]:
    delays: dict[int, float] = {}
    async for message in tail:
        received = time.time()
        sent = _sent_at(str(message.content))
        if sent is not None:
            delays[sent[0]] = received - sent[1]
        if len(delays) == n:
            break
    return [delays[i] for i in sorted(delays)]


async def _collect_raw(consumer: Any, tp: TopicPartition, n: int, budget: float) -> list[float]:
    delays: dict[int, float] = {}
    deadline = time.monotonic() + budget
    while len(delays) < n and time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        received = time.time()
        for record in batch.get(tp, []):
            sent = _sent_at(json.loads(record.value)["data"]["content"])
            if sent is not None:
                delays[sent[0]] = received - sent[1]
    return [delays[i] for i in sorted(delays)]


async def _start_writer(ctx: Context, session: str, n: int) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *(f"-W{option}" for option in sys.warnoptions),
        "-m",
        "benchmarks.tail_writer",
        ctx.bootstrap,
        session,
        str(n),
        str(INTERVAL),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=_ROOT,
        env=env,
    )


async def _delays(ctx: Context, n: int) -> tuple[list[float], list[float]]:
    session = ctx.topic("tail")
    budget = 60 + n * INTERVAL * 3
    async with AsyncKafkaHistoryClient(ctx.bootstrap) as client:
        history = client.history(session)
        # Creates the topic and fixes the start at its (empty) end.
        async with history.atail("latest", idle_timeout=budget) as tail:
            raw = AIOKafkaConsumer(
                bootstrap_servers=ctx.bootstrap, group_id=None, enable_auto_commit=False
            )
            await raw.start()
            try:
                tp = TopicPartition(history.topic, 0)
                raw.assign([tp])
                await raw.seek_to_end(tp)
                await raw.position(tp)  # resolve the lazy seek before anything is written
                collect = asyncio.gather(_collect_ours(tail, n), _collect_raw(raw, tp, n, budget))
                try:
                    writer = await _start_writer(ctx, session, n)
                    try:
                        _out, err = await asyncio.wait_for(writer.communicate(), budget)
                    finally:
                        if writer.returncode is None:  # timed out or cancelled
                            writer.kill()
                            await writer.wait()
                    if writer.returncode != 0:
                        message = err.decode(errors="replace")[-2000:]
                        raise BenchmarkError(f"tail writer exited {writer.returncode}:\n{message}")
                    try:
                        ours, raw_delays = await asyncio.wait_for(collect, _GRACE)
                    except asyncio.TimeoutError as exc:
                        raise BenchmarkError(
                            f"the tails had not delivered all {n} messages {_GRACE} s after "
                            "the writer finished"
                        ) from exc
                finally:
                    collect.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await collect  # retrieved: a failure was raised above already
            finally:
                await raw.stop()
    expect(len(ours) == n, f"atail delivered {len(ours)} of {n} messages")
    expect(len(raw_delays) == n, f"raw consumer delivered {len(raw_delays)} of {n} messages")
    return ours, raw_delays


def run(ctx: Context) -> list[Row]:
    n = ctx.n(300, 100)
    ours, raw = asyncio.run(_delays(ctx, n))
    keys = ("p50", "p99", "max")
    return [
        Row(
            "5",
            f"atail('latest') write->delivery, {INTERVAL * 1000:.0f} ms apart",
            Figure.latency(ours, keys=keys),
            "raw aiokafka consumer, same topic, same time",
            Figure.latency(raw, keys=keys),
            on="p99",
            target=TARGET,
        )
    ]

"""11. What the blocking classes add over the async ones, per call and per result size.

``KafkaChatMessageHistory`` (blocking: a hop onto its client's loop thread and back) against
``AsyncKafkaChatMessageHistory`` awaited on the caller's loop, on the same broker, in rounds
that alternate the two so drift in the machine's load hits both: add one message, an idle
read (nothing new, ``last_consumed``), and full reads (``messages_mode="full"``) of 10 and
of 10,000 messages, the last showing whether the difference grows with the result. The
topic-per-session layout uses the two classes on their own (private clients); the shared
layout uses them through ``KafkaHistoryClient`` / ``AsyncKafkaHistoryClient``.

Target: sync p50 <= async p50 + 0.2 ms on every row (the issue's goal per call, and "no
extra cost proportional to the size of the result").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.messages import HumanMessage

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)

from ._context import Context
from ._measure import ameasure, expect, measure
from ._report import Figure, Row, Target
from .from_beginning import conversation

TITLE = "sync overhead: blocking vs async classes"
GROUP = "11"

LIMIT_MS = 0.2
SLOW_CALL = 0.05  # seconds: slower calls get 2 samples per round after the first round
MESSAGE = HumanMessage(content="What is the weather like in Amsterdam this weekend?")
LARGE = 10_000


class _Pair:
    """One session's blocking and async histories of one kind of call (same layout)."""

    def __init__(self, sync: KafkaChatMessageHistory, async_: AsyncKafkaChatMessageHistory):
        self.sync, self.async_ = sync, async_


@contextlib.contextmanager
def _clients(
    ctx: Context, loop: asyncio.AbstractEventLoop, shared: bool
) -> Iterator[Callable[[str, str], _Pair]]:
    """A factory of (blocking, async) history pairs in one layout; closes what it made."""
    made: list[Any] = []
    if shared:
        sync_client = KafkaHistoryClient(ctx.bootstrap, shared_topic=ctx.topic("sync-shared"))
        async_client = AsyncKafkaHistoryClient(ctx.bootstrap, shared_topic=ctx.topic("sync-shared"))

        def make(session: str, mode: str) -> _Pair:
            return _Pair(
                sync_client.history(f"s-{session}", messages_mode=mode),
                async_client.history(f"a-{session}", messages_mode=mode),
            )

        try:
            yield make
        finally:
            sync_client.close()
            loop.run_until_complete(async_client.aclose())
        return

    def make_own(session: str, mode: str) -> _Pair:
        pair = _Pair(
            KafkaChatMessageHistory(
                ctx.topic(f"sync-s-{session}"), ctx.bootstrap, messages_mode=mode
            ),
            AsyncKafkaChatMessageHistory(
                ctx.topic(f"sync-a-{session}"), ctx.bootstrap, messages_mode=mode
            ),
        )
        made.append(pair)
        return pair

    try:
        yield make_own
    finally:
        for pair in made:
            pair.sync.close()
            loop.run_until_complete(pair.async_.aclose())


def _layout(ctx: Context, shared: bool) -> dict[str, tuple[list[float], list[float]]]:
    loop = asyncio.new_event_loop()
    try:
        with _clients(ctx, loop, shared) as make:
            adds = make("add", "last_consumed")
            idle = make("idle", "last_consumed")
            small = make("small", "full")
            large = make("large", "full")
            setup = conversation(LARGE)
            idle.sync.add_message(MESSAGE)
            small.sync.add_messages(setup[:10])
            large.sync.add_messages(setup[:LARGE])
            loop.run_until_complete(idle.async_.aadd_message(MESSAGE))
            loop.run_until_complete(small.async_.aadd_messages(setup[:10]))
            for start in range(0, LARGE, 2_000):
                loop.run_until_complete(large.async_.aadd_messages(setup[start : start + 2_000]))
            expect(len(idle.sync.messages) == 1, "the blocking idle session's first read")
            expect(
                len(loop.run_until_complete(idle.async_.aget_messages())) == 1,
                "the async idle session's first read",
            )

            def check(count: int) -> Callable[[list[Any]], None]:
                def checked(got: list[Any]) -> None:
                    expect(len(got) == count, f"read {len(got)} messages, expected {count}")

                return checked

            def read(p: _Pair) -> Any:
                return p.sync.messages

            def aread(p: _Pair) -> Any:
                return p.async_.aget_messages()

            calls: dict[str, tuple[_Pair, Any, Any, int]] = {
                "add": (
                    adds,
                    lambda p: p.sync.add_message(MESSAGE),
                    lambda p: p.async_.aadd_message(MESSAGE),
                    0,
                ),
                "idle": (idle, read, aread, 0),
                "full10": (small, read, aread, 10),
                f"full{LARGE}": (large, read, aread, LARGE),
            }
            samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in calls}
            rounds = ctx.n(10, 4)
            for _ in range(rounds):
                for key, (pair, sync_call, async_call, count) in calls.items():
                    per = ctx.n(30, 10) if count < LARGE else ctx.n(3, 2)
                    warm = 3 if count < LARGE else 1
                    taken = samples[key][1]
                    if taken and sorted(taken)[len(taken) // 2] > SLOW_CALL:
                        per, warm = 2, 0  # keep the run bounded when a call is slow

                    def sync_once(
                        pair: _Pair = pair, call: Any = sync_call, n: int = count
                    ) -> None:
                        got = call(pair)
                        if n:
                            check(n)(got)

                    async def async_once(
                        pair: _Pair = pair, call: Any = async_call, n: int = count
                    ) -> None:
                        got = await call(pair)
                        if n:
                            check(n)(got)

                    samples[key][0].extend(measure(sync_once, per, warmup=warm))
                    samples[key][1].extend(
                        loop.run_until_complete(ameasure(async_once, per, warmup=warm))
                    )
            return samples
    finally:
        loop.close()


_NAMES = {
    "add": "add_message",
    "idle": "read, nothing new",
    "full10": "full read of 10",
    f"full{LARGE}": f"full read of {LARGE:,}",
}


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for shared in (False, True):
        where = "shared topic" if shared else "topic per session"
        for key, (sync, async_) in _layout(ctx, shared).items():
            sync_fig, async_fig = Figure.latency(sync), Figure.latency(async_)
            diff = sync_fig.stats["p50"] - async_fig.stats["p50"]
            rows.append(
                Row(
                    GROUP,
                    f"{_NAMES[key]}: blocking vs async ({where}; {diff:+.2f} ms)",
                    sync_fig,
                    "the async class, same call",
                    async_fig,
                    target=Target(
                        "p50",
                        async_fig.stats["p50"] + LIMIT_MS,
                        "ms",
                        source=f"async + {LIMIT_MS} ms",
                    ),
                    extra={"difference_p50_ms": diff},
                )
            )
    return rows

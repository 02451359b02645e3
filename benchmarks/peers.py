"""8. Against the stores users would pick instead: langchain-postgres and Redis, same run.

The issue's table as rows: the same scenarios, through each store's LangChain history
(``_stores``), against a throw-away local PostgreSQL 15 (fsync on) and a local redis-server
(its defaults), both started here and removed afterwards (``_peers_setup``), and against our
two storage layouts on the run's broker:

1. add one message (p50 of single adds to one session);
2. read all of a 10-message session;
3. read all of a 1,000-message session;
4. one chat turn (read all + add the question and the answer), 100 in a row on one new
   session (the history grows to 200 messages);
5. 200 new sessions x 10 turns, all sessions at once (messages written per second; the
   per-turn p50/p99 are in the JSON);
6. the same sessions, 10 more turns each, at once;
7. the newest 20 of a 20,000-message session (ours: ``alast_messages(20)``; Postgres: its
   own SQL, ``ORDER BY id DESC LIMIT 20``; Redis: its own ``LRANGE``).

Every turn checks it read what the session held (2 messages per earlier turn), every read
its count, and the newest-20 reads their content. Target: ours in the shared layout at or
ahead of Postgres on every row; ahead of Redis where it can be (printed for Redis too).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.messages import HumanMessage

from ._context import Context
from ._measure import ameasure, expect
from ._peers_setup import PeerUnavailable, local_postgres, local_redis
from ._report import Figure, Row, Target
from ._stores import Ours, Postgres, Redis, Store, burst_turns, pair
from .from_beginning import conversation

TITLE = "peers: langchain-postgres and Redis vs ours (both layouts)"
GROUP = "8"

MESSAGE = HumanMessage(content="What is the weather like in Amsterdam this weekend?")
SHARED, PER_TOPIC, POSTGRES, REDIS = (
    "ours, shared topic",
    "ours, topic per session",
    "Postgres",
    "Redis",
)
# (key, label, higher is better)
SCENARIOS: tuple[tuple[str, str, bool], ...] = (
    ("add", "add one message", False),
    ("read10", "read all of a 10-message session", False),
    ("read1000", "read all of 1,000", False),
    ("turn", "one chat turn (read all + add 2), 100 in a row", False),
    ("burst_new", "{sessions} new sessions x 10 turns at once", True),
    ("burst_more", "the same sessions, 10 more turns", True),
    ("newest", "newest 20 of 20,000", False),
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Plan:
    """Sizes of this run (``--quick`` shrinks the sample counts and the burst)."""

    def __init__(self, ctx: Context) -> None:
        self.adds = ctx.n(200, 30)
        self.reads10 = ctx.n(200, 30)
        self.reads1000 = ctx.n(30, 8)
        self.turns = 100
        self.sessions = ctx.n(200, 50)
        self.burst_turns = 10
        self.newest = ctx.n(200, 30)


async def measure_store(store: Store, plan: _Plan) -> dict[str, Any]:
    """Every scenario on one store; ``{scenario: Figure}`` plus the burst details."""
    out: dict[str, Any] = {}
    add_to, ten, thousand, chat, deep = (str(uuid.uuid4()) for _ in range(5))
    burst = [str(uuid.uuid4()) for _ in range(plan.sessions)]
    seeded = {ten: conversation(10), thousand: conversation(1_000), deep: conversation(20_000)}
    async with store:
        for session, messages in seeded.items():
            await store.seed(session, messages)
        if isinstance(store, Postgres):
            await store.analyze()
        if isinstance(store, Redis):
            store.prepare([add_to, chat, *burst])
        expect(await store.read(ten) == seeded[ten], f"{store.name}: the 10 seeded messages")
        expect(await store.read(thousand) == seeded[thousand], f"{store.name}: the 1,000 seeded")
        expected = seeded[deep][-20:]
        expect(await store.newest(deep, 20) == expected, f"{store.name}: newest 20 of 20,000")

        out["add"] = Figure.latency(
            await ameasure(lambda: store.add(add_to, [MESSAGE]), plan.adds, warmup=10)
        )

        async def read(session: str, count: int) -> None:
            got = await store.read(session)
            expect(len(got) == count, f"{store.name}: read {len(got)} of {count}")

        out["read10"] = Figure.latency(
            await ameasure(lambda: read(ten, 10), plan.reads10, warmup=5)
        )
        out["read1000"] = Figure.latency(
            await ameasure(lambda: read(thousand, 1_000), plan.reads1000, warmup=2)
        )

        turns: list[float] = []
        for turn in range(plan.turns):
            began = time.perf_counter()
            seen = await store.turn(chat, pair(chat, turn))
            turns.append(time.perf_counter() - began)
            expect(seen == 2 * turn, f"{store.name}: turn {turn} read {seen} messages")
        out["turn"] = Figure.latency(turns)

        async def newest() -> None:
            got = await store.newest(deep, 20)
            expect(len(got) == 20 and got[-1] == expected[-1], f"{store.name}: newest 20")

        out["newest"] = Figure.latency(await ameasure(newest, plan.newest, warmup=5))

        if isinstance(store, Redis):
            store.concurrent = True  # at once: LangChain's async methods (a thread pool)
        out["burst_new"], out["burst_new_detail"] = await burst_turns(store, burst, 0, 10)
        out["burst_more"], out["burst_more_detail"] = await burst_turns(store, burst, 10, 10)
        final = await store.read(burst[-1])
        expect(len(final) == 40, f"{store.name}: a burst session holds {len(final)} of 40")
    return out


@contextlib.contextmanager
def _peer(start: Callable[[], contextlib.AbstractContextManager[str]]) -> Iterator[str | None]:
    """The peer's address, or None (with the reason printed) when it cannot be started."""
    try:
        manager = start()
        address = manager.__enter__()
    except PeerUnavailable as exc:
        _say(f"    peer unavailable: {exc}")
        yield None
        return
    try:
        yield address
    finally:
        manager.__exit__(None, None, None)


def _label(key: str, plan: _Plan) -> str:
    label = dict((k, text) for k, text, _ in SCENARIOS)[key]
    return label.format(sessions=plan.sessions)


def _rows(results: dict[str, dict[str, Any]], plan: _Plan) -> list[Row]:
    rows: list[Row] = []
    for key, _, higher in SCENARIOS:
        for ours in (SHARED, PER_TOPIC):
            if ours not in results:
                continue
            for peer in (POSTGRES, REDIS):
                if peer not in results:
                    continue
                ours_fig, peer_fig = results[ours][key], results[peer][key]
                stat = "value" if higher else "p50"
                target = None
                if ours == SHARED:
                    target = Target(
                        stat,
                        peer_fig.stats[stat],
                        peer_fig.unit,
                        at_least=higher,
                        source=peer,
                    )
                extra: dict[str, Any] = {"scenario": key, "ours_store": ours, "peer": peer}
                for who, name in (("ours", ours), ("peer", peer)):
                    detail = results[name].get(f"{key}_detail")
                    if detail:
                        elapsed, p50, p99 = detail
                        extra[f"{who}_seconds"] = elapsed
                        extra[f"{who}_turn_ms"] = {"p50": p50, "p99": p99}
                rows.append(
                    Row(
                        GROUP,
                        f"{_label(key, plan)} ({ours.removeprefix('ours, ')})",
                        ours_fig,
                        f"{peer} (async: thread pool)" if peer == REDIS and higher else peer,
                        peer_fig,
                        on=stat,
                        higher=higher,
                        words=("more", "less") if higher else ("faster", "slower"),
                        target=target,
                        extra=extra,
                    )
                )
    return rows


def run(ctx: Context) -> list[Row]:
    plan = _Plan(ctx)
    results: dict[str, dict[str, Any]] = {}
    stores: list[tuple[str, Callable[[], Store]]] = [
        (
            SHARED,
            lambda: Ours(ctx.bootstrap, shared_topic=ctx.topic("peers-shared"), topic_prefix=""),
        ),
        (
            PER_TOPIC,
            lambda: Ours(ctx.bootstrap, shared_topic=None, topic_prefix=ctx.topic("peers.")),
        ),
    ]
    with _peer(local_postgres) as conninfo, _peer(local_redis) as url:
        if conninfo is not None:
            stores.append((POSTGRES, lambda: Postgres(conninfo)))
        if url is not None:
            stores.append((REDIS, lambda: Redis(url)))
        for name, make in stores:
            _say(f"    {name} ...")
            began = time.monotonic()
            results[name] = asyncio.run(measure_store(make(), plan))
            _say(f"    {name}: {time.monotonic() - began:.1f} s")
    expect(
        POSTGRES in results or REDIS in results,
        "neither peer could be started (see the notes above)",
    )
    return _rows(results, plan)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The issue's table (markdown) from this group's rows (as in the JSON file)."""
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for row in rows:
        extra = row.get("extra", {})
        key = extra.get("scenario")
        if row.get("group") != GROUP or key is None:
            continue
        labels.setdefault(key, row["name"].rsplit(" (", 1)[0])
        figures.setdefault(key, {})[extra["ours_store"]] = row["ours"]
        figures[key][extra["peer"]] = row["baseline"]
    if not figures:
        return ""
    stores = (SHARED, PER_TOPIC, POSTGRES, REDIS)

    def cell(figure: dict[str, Any] | None) -> str:
        if figure is None:
            return "-"
        if figure["unit"] == "msg/s":
            return f"{figure['value']:,.0f} msg/s"
        return f"{figure['p50']:.2f} ms"

    lines = [
        "| scenario (p50; msg/s at once) | " + " | ".join(stores) + " |",
        "|---|" + "---|" * len(stores),
    ]
    for key, _, _ in SCENARIOS:
        if key in figures:
            cells = [cell(figures[key].get(s)) for s in stores]
            lines.append(f"| {labels[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

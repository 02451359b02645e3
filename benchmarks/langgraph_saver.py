"""LangGraph checkpointers: ``AsyncKafkaSaver`` against InMemory, SQLite and Postgres savers.

``python -m benchmarks.langgraph_saver [--quick] [--json PATH]`` (a local broker in
``$KAFKA_BOOTSTRAP_SERVERS``: ``python -m kafkalocal exec -- ...``). Every saver is measured
in the same run, on checkpoints of about 10 KB, 100 KB and 2 MB:

1. ``aput``: a new checkpoint whose ``messages`` channel changed (10 messages, the whole
   size), chained after the previous one on one thread;
2. ``aget_tuple``: the newest checkpoint of that thread (read back whole, values decoded);
3. ``alist``: the newest 10 checkpoints of that thread (``limit=10``), consumed whole;
4. a 100-step graph run: a ``MessagesState`` graph whose fake chat model answers with
   size/100 bytes each step, so the state grows to the size; LangGraph checkpoints every step
   (its default durability, ``"async"``), the whole message list each time.

Ours is ``AsyncKafkaSaver`` on the run's broker (a topic of this run, 12 partitions, an
in-memory view). The peers: ``InMemorySaver`` (no I/O: the floor), ``AsyncSqliteSaver``
(``langgraph-checkpoint-sqlite``, a file in a temporary directory, aiosqlite) and
``AsyncPostgresSaver`` (``langgraph-checkpoint-postgres``, one connection) on a throw-away
PostgreSQL 15 with fsync on (``_peers_setup.local_postgres``). A peer that cannot be started
is said so and its rows are left out. Every read checks what it got.

``TITLE`` and :func:`run` follow the other groups' shape, for ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from aiokafka_history import AsyncKafkaHistoryClient
from aiokafka_history.langgraph import AsyncKafkaSaver

from ._context import Context, bootstrap_from_env, count_topics, delete_run_topics
from ._measure import expect
from ._peers_setup import PeerUnavailable, local_postgres
from ._report import Failure, Figure, Row, render, write_json

TITLE = "LangGraph savers: AsyncKafkaSaver vs InMemory, SQLite and Postgres savers"
GROUP = "LG"

KAFKA, MEMORY, SQLITE, POSTGRES = (
    "AsyncKafkaSaver",
    "InMemorySaver",
    "AsyncSqliteSaver",
    "AsyncPostgresSaver",
)
SIZES: tuple[tuple[str, int], ...] = (
    ("10 KB", 10_000),
    ("100 KB", 100_000),
    ("2 MB", 2_000_000),
)
STEPS = 100
MESSAGES_PER_CHECKPOINT = 10
LIST_LIMIT = 10
WARMUP_PUTS = 3  # untimed: the first puts of a thread (and of a saver) pay for connections


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Plan:
    """Sample counts per size (``--quick`` shrinks them)."""

    puts: int
    gets: int
    lists: int
    graph_runs: int

    @classmethod
    def of(cls, ctx: Context, size: int) -> _Plan:
        if size >= 1_000_000:
            return cls(ctx.n(20, 5), ctx.n(20, 5), ctx.n(10, 3), ctx.n(3, 1))
        if size >= 100_000:
            return cls(ctx.n(100, 15), ctx.n(100, 15), ctx.n(50, 10), ctx.n(3, 1))
        return cls(ctx.n(200, 30), ctx.n(200, 30), ctx.n(100, 15), ctx.n(5, 2))


def _text(size: int, seed: int) -> str:
    """``size`` bytes of text that does not compress to nothing."""
    return os.urandom(size // 2 + 1).hex()[:size] if size else f"{seed}"


def _messages(size: int) -> list[BaseMessage]:
    part = size // MESSAGES_PER_CHECKPOINT
    return [
        (HumanMessage if i % 2 == 0 else AIMessage)(_text(part, i), id=f"m-{i}")
        for i in range(MESSAGES_PER_CHECKPOINT)
    ]


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


# -- the savers ------------------------------------------------------------------------------


SaverFactory = Callable[[], contextlib.AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]


@contextlib.asynccontextmanager
async def _kafka(ctx: Context) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with AsyncKafkaHistoryClient(ctx.bootstrap) as client:
        saver = AsyncKafkaSaver(client, topic=ctx.topic("langgraph-checkpoints"))
        await saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def _memory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    yield InMemorySaver()


@contextlib.asynccontextmanager
async def _sqlite(directory: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(directory / "checkpoints.db")) as saver:
        await saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def _postgres(conninfo: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
        await saver.setup()
        yield saver


@contextlib.contextmanager
def _peers(ctx: Context, notes: list[str]) -> Iterator[dict[str, SaverFactory]]:
    """Every saver that can run here, by name; ours first."""
    with contextlib.ExitStack() as stack:
        savers: dict[str, SaverFactory] = {KAFKA: lambda: _kafka(ctx), MEMORY: _memory}
        try:
            import aiosqlite  # noqa: F401
            import langgraph.checkpoint.sqlite.aio
        except ImportError as exc:
            notes.append(f"{SQLITE} left out: {exc} (pip install --group bench)")
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lg-")))
            savers[SQLITE] = lambda: _sqlite(directory)
        try:
            import langgraph.checkpoint.postgres.aio  # noqa: F401

            conninfo = stack.enter_context(local_postgres())
        except (ImportError, PeerUnavailable) as exc:
            notes.append(f"{POSTGRES} left out: {exc}")
        else:
            savers[POSTGRES] = lambda: _postgres(conninfo)
        for note in notes:
            _say(f"    {note}")
        yield savers


# -- the measurements ------------------------------------------------------------------------


async def _puts_gets_lists(
    saver: BaseCheckpointSaver[Any], name: str, label: str, size: int, plan: _Plan
) -> dict[str, Figure]:
    """``aput`` / ``aget_tuple`` / ``alist`` latencies on one thread of ``size`` checkpoints."""
    thread = f"bench-{label.replace(' ', '')}-{time.monotonic_ns()}"
    messages = _messages(size)
    config = _thread(thread)
    version: Any = None
    puts: list[float] = []
    for step in range(WARMUP_PUTS + max(plan.puts, LIST_LIMIT)):
        checkpoint = empty_checkpoint()
        version = saver.get_next_version(version, None)
        checkpoint["channel_values"] = {"messages": messages}
        checkpoint["channel_versions"] = {"messages": version}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        began = time.perf_counter()
        config = await saver.aput(config, checkpoint, metadata, {"messages": version})
        puts.append(time.perf_counter() - began)
    newest = config["configurable"]["checkpoint_id"]

    gets: list[float] = []
    for _ in range(plan.gets):
        began = time.perf_counter()
        found = await saver.aget_tuple(_thread(thread))
        gets.append(time.perf_counter() - began)
        expect(found is not None, f"{name}: no checkpoint in thread {thread}")
        assert found is not None
        expect(found.config["configurable"]["checkpoint_id"] == newest, f"{name}: not the newest")
        expect(found.checkpoint["channel_values"]["messages"] == messages, f"{name}: values")

    lists: list[float] = []
    for _ in range(plan.lists):
        began = time.perf_counter()
        listed = [t async for t in saver.alist(_thread(thread), limit=LIST_LIMIT)]
        lists.append(time.perf_counter() - began)
        expect(len(listed) == LIST_LIMIT, f"{name}: listed {len(listed)} of {LIST_LIMIT}")
        expect(listed[0].config["configurable"]["checkpoint_id"] == newest, f"{name}: order")
        values = listed[-1].checkpoint["channel_values"]["messages"]
        expect(len(values) == MESSAGES_PER_CHECKPOINT, f"{name}: values of a listed checkpoint")
    return {
        "aput": Figure.latency(puts[WARMUP_PUTS:]),
        "aget_tuple": Figure.latency(gets),
        "alist": Figure.latency(lists),
    }


def _graph(reply_bytes: int, saver: BaseCheckpointSaver[Any]) -> Any:
    """A ``MessagesState`` graph: a fake chat model, called until it answered ``STEPS`` times."""
    model = FakeListChatModel(responses=[_text(reply_bytes, 0)])

    async def answer(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return END if len(state["messages"]) > STEPS else "model"

    builder = StateGraph(MessagesState)
    builder.add_node("model", answer)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route)
    return builder.compile(checkpointer=saver)


async def _graph_runs(
    saver: BaseCheckpointSaver[Any], name: str, label: str, size: int, plan: _Plan
) -> Figure:
    """Seconds of whole ``STEPS``-step runs, each on a new thread."""
    graph = _graph(size // STEPS, saver)
    runs: list[float] = []
    for run in range(plan.graph_runs):
        config: Any = {
            "configurable": {"thread_id": f"graph-{label.replace(' ', '')}-{run}-{time.time_ns()}"},
            "recursion_limit": STEPS + 10,
        }
        began = time.perf_counter()
        out = await graph.ainvoke({"messages": [HumanMessage("go")]}, config)
        runs.append(time.perf_counter() - began)
        expect(len(out["messages"]) == STEPS + 1, f"{name}: {len(out['messages'])} messages")
        state = await graph.aget_state(config)
        expect(len(state.values["messages"]) == STEPS + 1, f"{name}: stored state")
    return Figure.latency(runs, note=f"one whole {STEPS}-step graph run (ms)")


async def _measure_saver(factory: SaverFactory, name: str, ctx: Context) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    async with factory() as saver:
        warm = await _graph(1, saver).ainvoke(  # untimed: the first run compiles and connects
            {"messages": [HumanMessage("go")]},
            {"configurable": {"thread_id": f"warm-up-{time.time_ns()}"}, "recursion_limit": 200},
        )
        expect(len(warm["messages"]) == STEPS + 1, f"{name}: the warm-up run")
        for label, size in SIZES:
            plan = _Plan.of(ctx, size)
            _say(f"    {name}, {label}: aput / aget_tuple / alist ...")
            for key, figure in (await _puts_gets_lists(saver, name, label, size, plan)).items():
                figures[f"{key}|{label}"] = figure
            _say(f"    {name}, {label}: {STEPS}-step graph run ...")
            figures[f"graph|{label}"] = await _graph_runs(saver, name, label, size, plan)
    return figures


SCENARIOS = (
    ("aput", "aput, {size} checkpoint"),
    ("aget_tuple", "aget_tuple (newest), {size}"),
    ("alist", f"alist (newest {LIST_LIMIT}), {{size}}"),
    ("graph", f"{STEPS}-step graph run, state grows to {{size}}"),
)


def run(ctx: Context) -> list[Row]:
    """Every saver, every size; rows of ours against each peer."""
    notes: list[str] = []
    measured: dict[str, dict[str, Figure]] = {}
    with _peers(ctx, notes) as savers:
        for name, factory in savers.items():
            measured[name] = asyncio.run(_measure_saver(factory, name, ctx))
    ours = measured.pop(KAFKA)
    rows: list[Row] = []
    for key, template in SCENARIOS:
        for label, _ in SIZES:
            for peer, figures in measured.items():
                rows.append(
                    Row(
                        group=GROUP,
                        name=template.format(size=label),
                        ours=ours[f"{key}|{label}"],
                        baseline_name=peer,
                        baseline=figures[f"{key}|{label}"],
                        extra={"scenario": key, "size": label, "notes": notes} if notes else {},
                    )
                )
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as one markdown table: p50 (p99) ms per saver, scenario by size."""
    peers = list(dict.fromkeys(r.baseline_name for r in rows))
    by_name: dict[str, dict[str, Figure]] = {}
    for row in rows:
        by_name.setdefault(row.name, {KAFKA: row.ours})[row.baseline_name] = row.baseline

    def cell(figure: Figure | None) -> str:
        if figure is None:
            return "-"
        return f"{figure.stats['p50']:.2f} ({figure.stats['p99']:.2f})"

    header = ["", KAFKA, *peers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, figures in by_name.items():
        lines.append(
            "| " + " | ".join([name, *(cell(figures.get(s)) for s in [KAFKA, *peers])]) + " |"
        )
    return "\n".join(lines)


# -- standalone ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.langgraph_saver",
        description="AsyncKafkaSaver against InMemorySaver, AsyncSqliteSaver and "
        "AsyncPostgresSaver, in the same run. Needs $KAFKA_BOOTSTRAP_SERVERS of a local broker "
        "(python -m kafkalocal exec).",
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    ctx = Context(bootstrap_from_env(), quick=args.quick)
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    topics = count_topics(ctx)
    _say(f"{TITLE} ({'quick' if ctx.quick else 'full'} run) against {ctx.bootstrap}")
    rows: list[Row] = []
    failures: list[Failure] = []
    try:
        rows = run(ctx)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        failures.append(Failure(GROUP, f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            _say(f"    cleanup: {delete_run_topics(ctx)}")
        except Exception as exc:
            _say(f"cleanup FAILED, delete topics starting with {ctx.prefix!r} by hand: {exc!r}")
    wall = time.monotonic() - began
    print(render(rows, failures))
    if rows:
        print()
        print("p50 (p99) ms per saver:")
        print(table(rows))
    print()
    print(
        "ours vs baseline = baseline / ours on p50 (lower is better); p99 is the nearest-rank "
        f"percentile. {topics} topics in the cluster before the run. Wall time {wall:.1f} s."
    )
    if args.json is not None:
        meta = {
            "started": started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 1),
            "quick": ctx.quick,
            "bootstrap": ctx.bootstrap,
            "cluster_topics_before": topics,
            "groups": ["langgraph-saver"],
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        write_json(args.json, meta, rows, failures)
        _say(f"wrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

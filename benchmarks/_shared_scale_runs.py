"""What the shared-scale benchmark measures, each run in a fresh child process.

A fresh process per measurement keeps the figures apart: its RSS is the library's (plus
Python's), not what the bulk loader or an earlier step left behind, and a warm restart is
a real restart. Every function takes a :class:`Plan` and returns plain JSON-able data;
:func:`run_in_child` runs one with a deadline and kills the child (by its pid) past it.

Every timed read is checked against the expected content and order (outside the timing).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from langchain_core.messages import BaseMessage

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    SessionWriteError,
    SqliteView,
    TopicSettings,
)

from ._measure import BenchmarkError, expect
from ._report import percentile
from ._shared_dataset import (
    MESSAGES_PER_SESSION,
    conversation,
    encode,
    message,
    message_key,
    partition_of,
    session_id,
)

__all__ = [
    "TURNS",
    "CountingView",
    "Plan",
    "run_in_child",
    "sample_reps",
]

#: Turns (a user message and an answer, one add each) of every session written by the
#: produce-rate figure: 30 messages, so ``last_messages(20)`` returns a full window.
TURNS = 15
_WINDOW = 20
_ATTEMPTS = 5  # tries of an add that failed with nothing written


class CountingView(SqliteView):
    """A SQLite view (file or memory) that counts the records it is asked to apply.

    Only the public ``SqliteView`` / ``LocalView`` protocol is used: ``apply`` is called on
    the view's own thread, the counter is read from the event loop (an int, no lock needed).
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.applied_records = 0

    def apply(self, partition: int, records: Iterable[Any], next_offset: int) -> None:
        records = list(records)
        self.applied_records += len(records)
        super().apply(partition, records, next_offset)


@dataclass(frozen=True)
class Plan:
    """Everything a child needs (picklable)."""

    bootstrap: str
    topic: str
    partitions: int
    replication: int
    view: str  # a file path or ":memory:"
    step: int
    bulk_sessions: int  # bulk sessions 0 .. bulk_sessions - 1 exist
    reps: tuple[int, ...]  # one bulk session per partition (index = partition)
    long_labels: tuple[str, ...]  # sessions of TURNS turns written by earlier steps
    samples: int  # timed reads per figure
    adds: int  # timed adds (ours and raw each)
    sessions_per_step: int  # sessions written by the produce figure (half ours, half raw)
    concurrency: int
    deadline: float  # seconds the child may take for its slow part (rebuild, catch-up)
    phase_seconds: float = 300.0  # a timed loop stops early past this (n says how far)
    seed: int = 0
    expected_sessions: int = 0  # list_sessions() must return this many
    checkpoints: tuple[int, ...] = ()  # topic-per-session only
    prefix: str = ""  # topic-per-session only


# -- process plumbing ---------------------------------------------------------------------


def _child_main(name: str, plan: Plan, conn: Any) -> None:
    try:
        result: Any = {"ok": asyncio.run(_RUNS[name](plan))}
    except BaseException as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    conn.send(result)
    conn.close()


def run_in_child(name: str, plan: Plan, timeout: float) -> dict[str, Any]:
    """Run measurement ``name`` in a fresh (spawned) process; its result or ``{"error"}``."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(name, plan, sender), name=f"scale-{name}")
    child.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            try:
                result: dict[str, Any] = receiver.recv()
            except EOFError:
                result = {"error": f"the {name} child died (exit code {child.exitcode})"}
        else:
            result = {"error": f"the {name} child did not finish within {timeout:.0f} s"}
        child.join(30)
        return result
    finally:
        if child.is_alive():
            child.kill()  # our own child, by its handle
            child.join(10)
        receiver.close()


# -- small measures -----------------------------------------------------------------------


def _status_mb(field_name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """This process's resident set size now (MiB)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's largest resident set size so far (MiB)."""
    return _status_mb("VmHWM")


def latency(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds, and n."""
    ms = [s * 1000 for s in samples]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "n": len(ms),
    }


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await call()
    return time.perf_counter() - began, result


def _settings(plan: Plan) -> TopicSettings:
    return TopicSettings(
        ttl_ms=7 * 86_400_000, replication_factor=plan.replication, partition=plan.partitions
    )


def _client(plan: Plan, view: CountingView | None, *, slow: float = 30.0) -> Any:
    """The shared-layout client of ``plan``; ``slow``: its read and admin timeouts."""
    return AsyncKafkaHistoryClient(
        plan.bootstrap,
        shared_topic=plan.topic,
        shared_topic_settings=_settings(plan),
        view=view,
        read_timeout=slow,
        admin_timeout=slow,
        client_id=f"shared-scale-{plan.step}",
    )


def _same(got: Sequence[BaseMessage], wanted: Sequence[BaseMessage], what: str) -> None:
    if list(got) != list(wanted):
        shown = [f"{m.type}:{str(m.content)[:40]}" for m in got[:3]]
        raise BenchmarkError(
            f"{what}: read {len(got)} messages {shown}..., expected {len(wanted)} in order"
        )


def _long_expected(label: str) -> list[BaseMessage]:
    return conversation(label, 2 * TURNS)


async def _catch_up(client: Any, plan: Plan) -> None:
    """Read one bulk session on every partition: returns once the view applied them all."""
    labels = [f"bulk:{k}" for k in plan.reps]
    got = await asyncio.gather(
        *(
            client.history(session_id(label), messages_mode="full").aget_messages()
            for label in labels
        )
    )
    for label, messages in zip(labels, got, strict=True):
        _same(messages, conversation(label, MESSAGES_PER_SESSION), f"catch-up read of {label}")


# -- the cold client: rebuild, produce, add, reads ---------------------------------------


async def _add(history: Any, messages: list[BaseMessage], failures: list[str]) -> None:
    """``aadd_messages``, retried while it fails with nothing written (counted in ``failures``).

    A ``SessionWriteError`` that wrote nothing (``acknowledged == 0``, not indeterminate) is
    safe to retry, as an application would; any other failure ends the figure.
    """
    for _ in range(_ATTEMPTS):
        try:
            await history.aadd_messages(messages)
            return
        except SessionWriteError as exc:
            if exc.indeterminate or exc.acknowledged:
                raise
            failures.append(str(exc))
    raise BenchmarkError(f"an add failed {_ATTEMPTS} times: {failures[-1]}")


async def _produce_ours(
    client: Any, labels: Sequence[str], concurrency: int, failures: list[str]
) -> float:
    """Seconds for ``concurrency`` tasks to add every turn of ``labels`` through the client."""

    async def worker(mine: Sequence[str]) -> None:
        for label in mine:
            history = client.history(session_id(label))
            for t in range(TURNS):
                turn = [message(label, 2 * t), message(label, 2 * t + 1)]
                await _add(history, turn, failures)

    began = time.perf_counter()
    await asyncio.gather(*(worker(labels[w::concurrency]) for w in range(concurrency)))
    return time.perf_counter() - began


async def _produce_raw(producer: Any, plan: Plan, labels: Sequence[str], concurrency: int) -> float:
    """The same turns written with raw aiokafka: two sends, then wait for both (a turn)."""

    async def worker(mine: Sequence[str]) -> None:
        for label in mine:
            sid = session_id(label)
            raw, p = sid.encode(), partition_of(sid, plan.partitions)
            for t in range(TURNS):
                sent = [
                    await producer.send(
                        plan.topic, encode(label, i), key=message_key(raw, i), partition=p
                    )
                    for i in (2 * t, 2 * t + 1)
                ]
                await asyncio.gather(*sent)

    began = time.perf_counter()
    await asyncio.gather(*(worker(labels[w::concurrency]) for w in range(concurrency)))
    return time.perf_counter() - began


def _raw_producer(plan: Plan) -> Any:
    # The library's producer settings (acks=all, idempotent, no linger, 64 KiB batches).
    return AIOKafkaProducer(
        bootstrap_servers=plan.bootstrap,
        client_id=f"shared-scale-raw-{plan.step}",
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_batch_size=64 * 1024,
    )


async def _adds(client: Any, producer: Any, plan: Plan) -> dict[str, Any]:
    """Single-message adds, ours and raw ``send_and_wait`` interleaved, on one session each."""
    ours_label, raw_label = f"lat-ours:{plan.step}", f"lat-raw:{plan.step}"
    history = client.history(session_id(ours_label))
    raw_sid = session_id(raw_label)
    raw, p = raw_sid.encode(), partition_of(raw_sid, plan.partitions)
    warmup = 10
    ours: list[float] = []
    theirs: list[float] = []
    phase = time.perf_counter()
    written = 0
    for i in range(warmup + plan.adds):
        if time.perf_counter() - phase > plan.phase_seconds:
            break
        written += 1
        took, _ = await _timed(lambda i=i: history.aadd_messages([message(ours_label, i)]))
        if i >= warmup:
            ours.append(took)
        took, _ = await _timed(
            lambda i=i: producer.send_and_wait(
                plan.topic, encode(raw_label, i), key=message_key(raw, i), partition=p
            )
        )
        if i >= warmup:
            theirs.append(took)
    got = await client.history(session_id(ours_label)).alast_messages(3)
    _same(got, conversation(ours_label, 3, written - 3), "last adds")
    got = await client.history(raw_sid).alast_messages(3)
    _same(got, conversation(raw_label, 3, written - 3), "last raw adds")
    ours_fig, raw_fig = latency(ours), latency(theirs)
    return {
        "ours": ours_fig,
        "raw": raw_fig,
        "ratio_p50": ours_fig["p50"] / raw_fig["p50"],
        "messages_each": written,
    }


async def _reads(client: Any, plan: Plan, long_labels: Sequence[str]) -> dict[str, Any]:
    """last_messages(20) of random 30-message sessions; full reads of random bulk sessions."""
    rng = random.Random(plan.seed)
    phase = time.perf_counter()
    last: list[float] = []
    for label in rng.choices(long_labels, k=plan.samples):
        if time.perf_counter() - phase > plan.phase_seconds:
            break
        history = client.history(session_id(label))
        took, got = await _timed(lambda h=history: h.alast_messages(_WINDOW))
        last.append(took)
        _same(got, _long_expected(label)[-_WINDOW:], f"last_messages({_WINDOW}) of {label}")
    phase = time.perf_counter()
    full: list[float] = []
    for k in rng.sample(range(plan.bulk_sessions), min(plan.samples, plan.bulk_sessions)):
        if time.perf_counter() - phase > plan.phase_seconds:
            break
        label = f"bulk:{k}"
        history = client.history(session_id(label), messages_mode="full")
        took, got = await _timed(history.aget_messages)
        full.append(took)
        _same(got, conversation(label, MESSAGES_PER_SESSION), f"full read of {label}")
    return {"last20": latency(last), "full10": latency(full)}


async def cold(plan: Plan) -> dict[str, Any]:
    """A fresh client on an empty view: rebuild, list, produce, add and read figures."""
    out: dict[str, Any] = {}
    view = CountingView(plan.view)
    began = time.perf_counter()
    async with _client(plan, view, slow=plan.deadline) as client:
        try:
            await asyncio.wait_for(_catch_up(client, plan), plan.deadline)
        except (asyncio.TimeoutError, TimeoutError):
            seconds = time.perf_counter() - began
            out["rebuild"] = {
                "finished": False,
                "seconds": seconds,
                "records": view.applied_records,
                "records_per_s": view.applied_records / seconds,
            }
            out["rss_mb_rebuilt"] = rss_mb()
            out["peak_rss_mb"] = peak_rss_mb()
            return out
        seconds = time.perf_counter() - began
        out["rebuild"] = {
            "finished": True,
            "seconds": seconds,
            "records": view.applied_records,
            "records_per_s": view.applied_records / seconds,
        }
        gc.collect()
        out["rss_mb_rebuilt"] = rss_mb()

        took, listed = await _timed(client.list_sessions)
        assert isinstance(listed, list)
        count = len(listed)
        wanted = {session_id(f"bulk:{k}") for k in plan.reps}
        present = wanted.issubset(listed)
        del listed
        gc.collect()
        out["list_sessions"] = {"seconds": took, "sessions": count}
        expect(
            count == plan.expected_sessions,
            f"list_sessions() returned {count} sessions, expected {plan.expected_sessions}",
        )
        expect(present, "list_sessions() misses sessions that were read")

        # Produce: half the new sessions through the library, half raw, in two rounds each.
        half = plan.sessions_per_step // 2
        ours_labels = [f"long:{plan.step}:{j}" for j in range(half)]
        raw_labels = [f"raw:{plan.step}:{j}" for j in range(half)]
        producer = _raw_producer(plan)
        await producer.start()
        try:
            # One write each first: connections and producer ids, not what is measured.
            warm = f"warm:{plan.step}"
            warm_sid = session_id(warm)
            await producer.send_and_wait(
                plan.topic,
                encode(warm, 0),
                key=message_key(warm_sid.encode(), 0),
                partition=partition_of(warm_sid, plan.partitions),
            )
            await client.history(warm_sid).aadd_messages([message(warm, 1)])
            ours_s = raw_s = 0.0
            failures: list[str] = []
            for r in range(2):
                ours_s += await _produce_ours(client, ours_labels[r::2], plan.concurrency, failures)
                raw_s += await _produce_raw(producer, plan, raw_labels[r::2], plan.concurrency)
            written = half * 2 * TURNS
            out["produce"] = {
                "messages_each": written,
                "concurrency": plan.concurrency,
                "ours_msgs_per_s": written / ours_s,
                "raw_msgs_per_s": written / raw_s,
                "ours_adds": half * TURNS,
                "ours_failed_adds_retried": len(failures),
                "ours_failure_example": failures[0] if failures else None,
            }
            out["add"] = await _adds(client, producer, plan)
        finally:
            await producer.stop()
        pool = [*plan.long_labels, *ours_labels, *raw_labels]
        out["reads"] = await _reads(client, plan, pool)
        out["rss_mb_after"] = rss_mb()
        # Leave the view caught up with everything written here: the warm restart then has
        # exactly nothing to apply again.
        await _catch_up(client, plan)
        for label in (*ours_labels[:1], *raw_labels[:1]):
            got = await client.history(session_id(label), messages_mode="full").aget_messages()
            _same(got, _long_expected(label), f"full read of {label}")
        out["written"] = {
            "labels": [*ours_labels, *raw_labels],
            "sessions": 2 * half + 3,  # + the two add-latency sessions and the warm-up one
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# -- the warm restart ---------------------------------------------------------------------


async def warm(plan: Plan) -> dict[str, Any]:
    """A second process on the same view file: time to first read; records applied again."""
    view = CountingView(plan.view)
    first = f"bulk:{plan.reps[-1]}"
    began = time.perf_counter()
    async with _client(plan, view, slow=plan.deadline) as client:
        got = await client.history(session_id(first), messages_mode="full").aget_messages()
        first_read = time.perf_counter() - began
        _same(got, conversation(first, MESSAGES_PER_SESSION), f"first read of {first}")
        await _catch_up(client, plan)
        every = time.perf_counter() - began
        reapplied = view.applied_records
        rng = random.Random(plan.seed + 1)
        for k in rng.sample(range(plan.bulk_sessions), min(100, plan.bulk_sessions)):
            label = f"bulk:{k}"
            got = await client.history(session_id(label), messages_mode="full").aget_messages()
            _same(got, conversation(label, MESSAGES_PER_SESSION), f"warm read of {label}")
        for label in rng.sample(plan.long_labels, min(20, len(plan.long_labels))):
            got = await client.history(session_id(label)).alast_messages(_WINDOW)
            _same(got, _long_expected(label)[-_WINDOW:], f"warm last_messages of {label}")
        out = {
            "first_read_seconds": first_read,
            "all_partitions_seconds": every,
            "records_applied_again": reapplied,
            "rss_mb": rss_mb(),
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# -- the memory view, for contrast --------------------------------------------------------


async def memory(plan: Plan) -> dict[str, Any]:
    """A cold rebuild into ``view=":memory:"``: its rate and RSS."""
    view = CountingView(":memory:")
    began = time.perf_counter()
    async with _client(plan, view, slow=plan.deadline) as client:
        try:
            await asyncio.wait_for(_catch_up(client, plan), plan.deadline)
            finished = True
        except (asyncio.TimeoutError, TimeoutError):
            finished = False
        seconds = time.perf_counter() - began
        gc.collect()
        out = {
            "finished": finished,
            "seconds": seconds,
            "records": view.applied_records,
            "records_per_s": view.applied_records / seconds,
            "rss_mb": rss_mb(),
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# -- a topic per session, on one broker ---------------------------------------------------


async def _make_session(client: Any, label: str) -> None:
    """A session of the topic-per-session layout: its topic is created by the first add."""
    history = client.history(session_id(label))
    if label.startswith("tps-long:"):
        for t in range(TURNS):
            await history.aadd_messages([message(label, 2 * t), message(label, 2 * t + 1)])
    else:
        await history.aadd_messages(conversation(label, MESSAGES_PER_SESSION))


async def _make_sessions(
    client: Any, labels: Sequence[str], concurrency: int
) -> tuple[int, str | None]:
    """Make ``labels`` with ``concurrency`` tasks; how many were made, and the first failure."""
    todo = list(reversed(labels))
    made = 0
    failure: str | None = None

    async def worker() -> None:
        nonlocal made, failure
        while failure is None and todo:
            label = todo.pop()
            try:
                await _make_session(client, label)
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
                return
            made += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return made, failure


async def per_topic(plan: Plan) -> dict[str, Any]:
    """Sessions as topics (the default layout), up to each checkpoint or the first failure."""
    rng = random.Random(plan.seed)
    long_labels = [f"tps-long:{j}" for j in range(20)]
    labels = long_labels + [f"tps:{k}" for k in range(max(plan.checkpoints) - len(long_labels))]
    created = 0
    failure: str | None = None
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    async with AsyncKafkaHistoryClient(
        plan.bootstrap,
        topic_prefix=plan.prefix,
        read_timeout=60,
        admin_timeout=60,
        client_id="shared-scale-topics",
    ) as client:
        for checkpoint in plan.checkpoints:
            step_began = time.perf_counter()
            made, failure = await _make_sessions(
                client, labels[created:checkpoint], plan.concurrency
            )
            create_s = time.perf_counter() - step_began
            created += made
            row: dict[str, Any] = {
                "sessions": created,
                "messages": created * MESSAGES_PER_SESSION
                + min(created, len(long_labels)) * (2 * TURNS - MESSAGES_PER_SESSION),
                "create_sessions_per_s": made / create_s if create_s else 0.0,
            }
            if created > len(long_labels):
                try:
                    row.update(await _per_topic_figures(client, plan, rng, labels[:created]))
                except Exception as exc:  # the broker gave up: that is the finding
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    failure = failure or row["error"]
            row["rss_mb"] = rss_mb()
            rows.append(row)
            if failure is not None or time.perf_counter() - began > plan.deadline:
                break
    if failure is not None:
        stopped = "failure"
    elif created >= max(plan.checkpoints):
        stopped = "bound"
    else:
        stopped = "deadline"
    return {
        "checkpoints": rows,
        "reached": created,
        "failure": failure,
        "bound": max(plan.checkpoints),
        "stopped": stopped,
        "peak_rss_mb": peak_rss_mb(),
    }


async def _per_topic_figures(
    client: Any, plan: Plan, rng: random.Random, made: Sequence[str]
) -> dict[str, Any]:
    long_made = [x for x in made if x.startswith("tps-long:")]
    short_made = [x for x in made if not x.startswith("tps-long:")]
    n = plan.samples
    add_label = long_made[0]
    history = client.history(session_id(add_label))
    adds: list[float] = []
    for i in range(n):
        took, _ = await _timed(lambda i=i: history.aadd_messages([message("tps-add", i)]))
        adds.append(took)
    last: list[float] = []
    for label in rng.choices(long_made[1:], k=n):
        took, got = await _timed(lambda x=label: client.history(session_id(x)).alast_messages(20))
        last.append(took)
        _same(got, _long_expected(label)[-_WINDOW:], f"last_messages of {label}")
    full: list[float] = []
    for label in rng.choices(short_made, k=n):
        history = client.history(session_id(label), messages_mode="full")
        took, got = await _timed(history.aget_messages)
        full.append(took)
        _same(got, conversation(label, MESSAGES_PER_SESSION), f"full read of {label}")
    return {"add": latency(adds), "last20": latency(last), "full10": latency(full)}


_RUNS: dict[str, Callable[[Plan], Awaitable[dict[str, Any]]]] = {
    "cold": cold,
    "warm": warm,
    "memory": memory,
    "per_topic": per_topic,
}


def sample_reps(partitions: int, limit: int) -> tuple[int, ...]:
    """One bulk session index per partition (the first found), from sessions below ``limit``."""
    reps: dict[int, int] = {}
    for k in range(limit):
        reps.setdefault(partition_of(session_id(f"bulk:{k}"), partitions), k)
        if len(reps) == partitions:
            return tuple(reps[p] for p in range(partitions))
    raise BenchmarkError(f"{limit} bulk sessions do not cover all {partitions} partitions")

"""Shared-topic scale: 1,000,000 sessions / 10,000,000 messages in one topic, and a topic each.

``python -m benchmarks.shared_scale [--quick] [--steps N,N,...] [--json PATH] [--plot PATH]``

Not a group of ``python -m benchmarks``: it needs a 3-node cluster, runs for tens of minutes
and reports per step rather than as ratios. By default it starts its own clusters with
kafkalocal (3 nodes for the shared layout, then 1 node for the topic-per-session layout),
one after the other so they do not share the CPU.

Shared layout (one keyed, compacted topic, replication 3, ``--partitions`` partitions), at
each step of total messages (100,000 / 1,000,000 / 10,000,000 by default):

1. Bulk sessions of 10 messages are written with raw aiokafka in the layout's documented
   record format (``_shared_dataset``): loading 10M messages one library call at a time
   would take hours, and the write path is measured separately (3). Nothing of the
   library's private modules is imported; reads through the library verify the format.
2. Cold rebuild (child process, empty file view): from creating the client until a read of
   one session on every partition has returned, i.e. the view applied the whole topic;
   records/s counted by the view itself. Then ``list_sessions()`` (timed; its count must be
   every session written).
3. Produce rate: ``concurrency`` tasks write 15-turn sessions through the client
   (``aadd_messages`` of a turn), against raw aiokafka writing the same turns with the
   library's producer settings; single-message add latency, ours against ``send_and_wait``.
4. Reads: ``last_messages(20)`` of random 30-message sessions (of this and earlier steps)
   and full reads (``messages_mode="full"``) of random 10-message bulk sessions, each
   checked for content and order.
5. Warm restart (another child process, the same view file): time to the first read, and
   how many records the restarted view applied again (0 when it resumed).
6. A cold rebuild into ``view=":memory:"`` (up to ``--memory-view-up-to`` messages), for
   its rate and RSS.

RSS is the child's (``/proc/self/status``), after the step named; the view's size on disk
is the SQLite file with its WAL after the cold child closed it.

Topic-per-session layout, on one broker: sessions (a topic each, created by the first add)
up to each ``--topics`` checkpoint, 8 at a time, stopping at the first failure; at each
checkpoint the same read and add figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from aiokafka_history import AsyncKafkaHistoryClient, TopicSettings

from ._context import Context, count_topics, delete_run_topics
from ._shared_dataset import MESSAGES_PER_SESSION, bulk_load, check_encoding
from ._shared_scale_runs import TURNS, Plan, run_in_child, sample_reps

FULL_STEPS = (100_000, 1_000_000, 10_000_000)
QUICK_STEPS = (20_000, 100_000)
FULL_TOPICS = (500, 1_000, 2_000, 5_000)
QUICK_TOPICS = (100, 300)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
_MB = 1024 * 1024
# Bytes a record needs on disk, for the free-space check: ~280 per replica, ~450 in the view.
_BYTES_PER_RECORD = 3 * 280 + 450

# Targets of the issue; see README "Shared-topic scale" for how each is judged.
REBUILD_RATE = 100_000  # records/s
LAST_P50, LAST_P99, FULL_P50 = 2.0, 10.0, 3.0  # ms
ADD_RATIO = 1.5  # ours p50 / raw aiokafka p50
FLAT = 1.5  # largest step's p50 within this factor of the smallest's
RSS_GROWTH = 1.25  # file view: RSS at the largest step within this factor of the smallest's


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _counts(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v.replace("_", "")) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: comma-separated integers") from None
    if not values or any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"{what}: increasing positive integers")
    return values


def _bootstrap(text: str) -> str:
    for server in text.split(","):
        host, _, port = server.strip().rpartition(":")
        if host not in _LOOPBACK or not port.isdigit():
            raise argparse.ArgumentTypeError(f"{text!r}: only a local cluster (127.0.0.1:PORT)")
    return text


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shared_scale",
        description="The shared-topic layout at 100k / 1M / 10M messages against a topic per "
        "session; starts its own local clusters (kafkalocal) unless given bootstraps.",
    )
    parser.add_argument("--quick", action="store_true", help="20k / 100k messages, 300 topics")
    parser.add_argument(
        "--steps",
        type=lambda t: _counts(t, "--steps"),
        help="total messages at each step (default 100000,1000000,10000000)",
    )
    parser.add_argument(
        "--topics",
        type=lambda t: _counts(t, "--topics"),
        help="topic-per-session checkpoints (default 500,1000,2000,5000; the last is the bound)",
    )
    parser.add_argument("--partitions", type=int, default=64, help="of the shared topic (<= 64)")
    parser.add_argument(
        "--memory-view-up-to",
        type=int,
        metavar="N",
        help="also rebuild into view=':memory:' at steps of at most N messages "
        "(default 1000000; quick: all)",
    )
    parser.add_argument(
        "--rebuild-floor",
        type=int,
        default=10_000,
        metavar="RECORDS_PER_S",
        help="a rebuild slower than this is stopped (its deadline is 60 s + records / this); "
        "later steps are skipped",
    )
    parser.add_argument("--samples", type=int, help="timed reads per figure (default 1000)")
    parser.add_argument("--no-per-topic", action="store_true", help="skip the topic-per-session")
    parser.add_argument(
        "--bootstrap", type=_bootstrap, help="a running local 3-node cluster instead of our own"
    )
    parser.add_argument(
        "--single-bootstrap", type=_bootstrap, help="a running local 1-node broker instead"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--plot", type=Path, metavar="PATH", help="draw the figures here (needs matplotlib)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.partitions <= 64:
        parser.error("--partitions must be between 1 and 64")
    args.steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    args.topics = args.topics or (QUICK_TOPICS if args.quick else FULL_TOPICS)
    if args.memory_view_up_to is None:
        args.memory_view_up_to = max(args.steps) if args.quick else 1_000_000
    args.samples = args.samples or (200 if args.quick else 1_000)
    if min(args.steps) < 10 * args.partitions * 20:
        parser.error(f"the smallest step must be at least {200 * args.partitions:,} messages")
    if min(args.topics) <= 21:
        parser.error("--topics checkpoints must be above 21 (20 sessions are long ones)")
    return args


# -- clusters -----------------------------------------------------------------------------


@contextlib.contextmanager
def _cluster(given: str | None, nodes: int) -> Iterator[tuple[str, bool]]:
    """``(bootstrap, ours)``: the given cluster, or one started (and stopped) here."""
    if given is not None:
        yield given, False
        return
    from kafkalocal import KafkaCluster

    _say(f"  starting a {nodes}-node local Kafka (kafkalocal) ...")
    with KafkaCluster(nodes=nodes) as cluster:
        yield cluster.bootstrap_servers, True
    _say(f"  stopped the {nodes}-node Kafka (its files are removed)")


async def _create_shared(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the shared topic through the library (it validates an existing one)."""
    settings = TopicSettings(ttl_ms=7 * 86_400_000, replication_factor=3, partition=partitions)
    async with AsyncKafkaHistoryClient(
        bootstrap, shared_topic=topic, shared_topic_settings=settings
    ) as client:
        await client.list_sessions()


async def _records_in(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def _room(workdir: Path, records: int) -> str | None:
    """Why the next ``records`` would not fit on disk or in memory; None when they do."""
    need = records * _BYTES_PER_RECORD * 1.5
    free = shutil.disk_usage(workdir).free
    if free < need:
        return f"{free / 2**30:.1f} GiB free on disk, {need / 2**30:.1f} GiB needed"
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        available = next(int(x.split()[1]) for x in meminfo if x.startswith("MemAvailable"))
    if available * 1024 < 3 * 2**30:
        return f"{available / 2**20:.1f} GiB memory available, 3 GiB needed"
    return None


def _view_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(f"{path}{suffix}")
    )


def _remove_view(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


# -- the shared layout --------------------------------------------------------------------


def _shared_steps(args: argparse.Namespace, bootstrap: str, prefix: str, workdir: Path) -> dict:
    topic = f"{prefix}shared"
    partitions = args.partitions
    asyncio.run(_create_shared(bootstrap, topic, partitions))
    reps = sample_reps(partitions, min(args.steps) // MESSAGES_PER_SESSION)
    view = workdir / "view.sqlite"
    bulk_done = 0
    extra_sessions = 0
    long_labels: list[str] = []
    steps: list[dict[str, Any]] = []
    stopped: str | None = None
    quick = args.quick
    for index, target in enumerate(args.steps):
        bulk = target // MESSAGES_PER_SESSION
        step: dict[str, Any] = {"messages_target": target, "bulk_sessions": bulk}
        steps.append(step)
        why = _room(workdir, (bulk - bulk_done) * MESSAGES_PER_SESSION)
        if why is not None:
            stopped = step["skipped"] = f"not enough room for {target:,} messages: {why}"
            _say(f"  step {target:,}: SKIPPED, {why}")
            break
        _say(f"  step {target:,} messages: bulk load of sessions {bulk_done:,}..{bulk:,}")
        loaded = asyncio.run(
            bulk_load(bootstrap, topic, partitions, bulk_done, bulk, say=_say, progress=30)
        )
        bulk_done = bulk
        step["bulk_load"] = {
            "records": loaded.records,
            "seconds": loaded.seconds,
            "records_per_s": loaded.records / loaded.seconds,
            "payload_bytes": loaded.bytes,
        }
        records = asyncio.run(_records_in(bootstrap, topic, partitions))
        step["records_before"] = records
        deadline = 60 + records / args.rebuild_floor
        plan = Plan(
            bootstrap=bootstrap,
            topic=topic,
            partitions=partitions,
            replication=3,
            view=str(view),
            step=index,
            bulk_sessions=bulk,
            reps=reps,
            long_labels=tuple(long_labels),
            samples=args.samples,
            adds=50 if quick else 300,
            sessions_per_step=64 if quick else 256,
            concurrency=64,
            deadline=deadline,
            seed=index,
            expected_sessions=bulk + extra_sessions,
        )
        _remove_view(view)
        _say(f"    cold rebuild of {records:,} records (deadline {deadline:.0f} s) and figures")
        cold = run_in_child("cold", plan, deadline + 1_800)
        step["cold"] = cold
        if "error" in cold:
            stopped = f"the cold client failed at {target:,} messages: {cold['error']}"
            _say(f"    FAILED: {cold['error']}\n{cold.get('traceback', '')}")
            break
        result = cold["ok"]
        step["cold"] = result
        step["view_bytes"] = _view_bytes(view)
        if not result["rebuild"]["finished"]:
            stopped = (
                f"the cold rebuild at {target:,} messages did not finish within "
                f"{deadline:.0f} s ({result['rebuild']['records']:,} records applied)"
            )
            _say(f"    {stopped}")
            break
        extra_sessions += result["written"]["sessions"]
        long_labels.extend(result["written"]["labels"])
        step["records_after"] = asyncio.run(_records_in(bootstrap, topic, partitions))
        step["sessions_after"] = bulk + extra_sessions
        warm_plan = dataclasses.replace(plan, long_labels=tuple(long_labels))
        _say("    warm restart on the same view file")
        warm = run_in_child("warm", warm_plan, deadline + 600)
        step["warm"] = warm.get("ok", warm)
        step["view_bytes_after_warm"] = _view_bytes(view)
        if target <= args.memory_view_up_to:
            _say("    cold rebuild into view=':memory:'")
            memory = run_in_child("memory", plan, deadline + 600)
            step["memory_view"] = memory.get("ok", memory)
        _say(f"    step done: {_brief(step)}")
    _remove_view(view)
    return {
        "topic": topic,
        "partitions": partitions,
        "replication_factor": 3,
        "steps": steps,
        "stopped": stopped,
    }


def _brief(step: dict[str, Any]) -> str:
    cold = step.get("cold", {})
    parts = [f"rebuild {cold.get('rebuild', {}).get('records_per_s', 0):,.0f} rec/s"]
    reads = cold.get("reads")
    if reads:
        last, full = reads["last20"]["p50"], reads["full10"]["p50"]
        parts.append(f"last20 p50 {last:.2f} ms, full10 p50 {full:.2f} ms")
    return "; ".join(parts)


# -- topic per session --------------------------------------------------------------------


def _per_topic(args: argparse.Namespace, bootstrap: str, prefix: str) -> dict:
    plan = Plan(
        bootstrap=bootstrap,
        topic="",
        partitions=1,
        replication=1,
        view=":memory:",
        step=0,
        bulk_sessions=0,
        reps=(),
        long_labels=(),
        samples=20 if args.quick else 50,
        adds=0,
        sessions_per_step=0,
        concurrency=8,
        deadline=300 if args.quick else 1_500,
        checkpoints=tuple(args.topics),
        prefix=f"{prefix}tps.",
    )
    _say(f"  topic per session, up to {max(args.topics):,} sessions (topics), 8 at a time")
    result = run_in_child("per_topic", plan, plan.deadline + 900)
    return result.get("ok", result)


# -- report -------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _pair(data: Any, *path: str) -> str:
    figure = _get(data, *path)
    if not figure:
        return "-"
    return f"{_n(figure['p50'])} / {_n(figure['p99'])} (n={figure['n']:,})"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: the rule, the figures it was judged on, met or not."""
    steps = [s for s in report["shared"]["steps"] if _get(s, "cold", "reads")]
    out: list[dict[str, Any]] = []

    def add(rule: str, values: dict[str, Any], met: bool | None) -> None:
        out.append({"rule": rule, "values": values, "met": met})

    def per_step(path: tuple[str, ...], key: str, limit: float, rule: str, *, low: bool) -> None:
        values = {f"{s['messages_target']:,}": _get(s, *path, key) for s in steps}
        present = [v for v in values.values() if v is not None]
        met = bool(present) and all((v <= limit) if low else (v >= limit) for v in present)
        add(rule, values, met if present else None)

    all_steps = report["shared"]["steps"]
    add(
        f"{max(report['meta']['steps']):,} messages in the shared layout on "
        f"{report['shared']['partitions']} partitions",
        {"reached": max((s["messages_target"] for s in steps), default=0)},
        bool(steps) and steps[-1]["messages_target"] == max(report["meta"]["steps"]),
    )
    rebuild = {
        f"{s['messages_target']:,}": _get(s, "cold", "rebuild", "records_per_s")
        for s in all_steps
        if _get(s, "cold", "rebuild")
    }
    add(
        f"cold view rebuild >= {REBUILD_RATE:,} records/s",
        rebuild,
        bool(rebuild) and all(v >= REBUILD_RATE for v in rebuild.values()),
    )
    per_step(
        ("cold", "reads", "last20"),
        "p50",
        LAST_P50,
        f"last_messages(20) p50 <= {LAST_P50} ms",
        low=True,
    )
    per_step(
        ("cold", "reads", "last20"),
        "p99",
        LAST_P99,
        f"last_messages(20) p99 <= {LAST_P99} ms",
        low=True,
    )
    if len(steps) >= 2:
        first = _get(steps[0], "cold", "reads", "last20", "p50")
        last = _get(steps[-1], "cold", "reads", "last20", "p50")
        add(
            f"last_messages(20) flat: p50 at the largest step <= {FLAT}x the smallest's",
            {"smallest": first, "largest": last, "factor": last / first},
            last <= FLAT * first,
        )
    per_step(
        ("cold", "reads", "full10"),
        "p50",
        FULL_P50,
        f"full read of 10 messages p50 <= {FULL_P50} ms",
        low=True,
    )
    per_step(
        ("cold", "add"),
        "ratio_p50",
        ADD_RATIO,
        f"add p50 within {ADD_RATIO}x of raw aiokafka",
        low=True,
    )
    warm = {f"{s['messages_target']:,}": _get(s, "warm", "records_applied_again") for s in steps}
    add(
        "warm restart resumes: records applied again == 0", warm, all(v == 0 for v in warm.values())
    )
    for label, path in (
        ("cold client after rebuild", ("cold", "rss_mb_rebuilt")),
        ("warm client", ("warm", "rss_mb")),
    ):
        if len(steps) >= 2:
            first, last = _get(steps[0], *path), _get(steps[-1], *path)
            if first and last:
                add(
                    f"file view: RSS ({label}) at the largest step <= {RSS_GROWTH}x the smallest's",
                    {"smallest_mb": first, "largest_mb": last, "factor": last / first},
                    last <= RSS_GROWTH * first,
                )
    failed = {
        f"{s['messages_target']:,}": _get(s, "cold", "produce", "ours_failed_adds_retried")
        for s in steps
    }
    add(
        "(not an issue target) every concurrent library add succeeded the first time",
        failed,
        all(v == 0 for v in failed.values()) if failed else None,
    )
    tps = report.get("per_topic")
    if tps and "checkpoints" in tps:
        add(
            "topic per session on one broker: run to its failure or the bound",
            {"reached": tps["reached"], "bound": tps["bound"], "stopped": tps["stopped"]},
            None,
        )
    return out


def render(report: dict[str, Any]) -> str:
    """The tables: the shared layout per step, the topic-per-session layout, the targets."""
    shared = report["shared"]
    steps = shared["steps"]
    heads = [f"{s['messages_target']:,} msgs" for s in steps]
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cells: list[str]) -> None:
        rows.append((name, cells))

    def each(fn: Any) -> list[str]:
        out = []
        for s in steps:
            try:
                out.append(fn(s))
            except (KeyError, TypeError):
                out.append("-")
        return out

    row(
        "records in the topic (after the step)",
        each(lambda s: f"{s.get('records_after', s['records_before']):,}"),
    )
    row(
        "sessions (list_sessions at the rebuild)",
        each(lambda s: f"{s['cold']['list_sessions']['sessions']:,}"),
    )
    row("bulk load, raw aiokafka (records/s)", each(lambda s: _n(s["bulk_load"]["records_per_s"])))
    row(
        "cold rebuild, file view (s)",
        each(
            lambda s: (
                _n(s["cold"]["rebuild"]["seconds"])
                + ("" if s["cold"]["rebuild"]["finished"] else " UNFINISHED")
            )
        ),
    )
    row(
        "cold rebuild, file view (records/s)",
        each(lambda s: _n(s["cold"]["rebuild"]["records_per_s"])),
    )
    row("list_sessions() (s)", each(lambda s: _n(s["cold"]["list_sessions"]["seconds"])))
    row(
        "produce via the library (msgs/s, 64 tasks)",
        each(lambda s: _n(s["cold"]["produce"]["ours_msgs_per_s"])),
    )
    row(
        "library adds failed, nothing written (retried)",
        each(
            lambda s: (
                f"{s['cold']['produce']['ours_failed_adds_retried']:,} of "
                f"{s['cold']['produce']['ours_adds']:,}"
            )
        ),
    )
    row(
        "produce, raw aiokafka (msgs/s, same load)",
        each(lambda s: _n(s["cold"]["produce"]["raw_msgs_per_s"])),
    )
    row("add p50 / p99 (ms)", each(lambda s: _pair(s, "cold", "add", "ours")))
    row("raw aiokafka send_and_wait p50 / p99 (ms)", each(lambda s: _pair(s, "cold", "add", "raw")))
    row("add vs raw aiokafka (p50 ratio)", each(lambda s: f"{s['cold']['add']['ratio_p50']:.2f}x"))
    row("last_messages(20) p50 / p99 (ms)", each(lambda s: _pair(s, "cold", "reads", "last20")))
    row(
        "full read, 10 messages, p50 / p99 (ms)",
        each(lambda s: _pair(s, "cold", "reads", "full10")),
    )
    row("warm restart: first read (s)", each(lambda s: _n(s["warm"]["first_read_seconds"], 3)))
    row(
        "warm restart: all partitions (s)",
        each(lambda s: _n(s["warm"]["all_partitions_seconds"], 3)),
    )
    row(
        "warm restart: records applied again",
        each(lambda s: f"{s['warm']['records_applied_again']:,}"),
    )
    row("RSS, cold client after rebuild (MB)", each(lambda s: _mb(s["cold"]["rss_mb_rebuilt"])))
    row("RSS, cold client after the figures (MB)", each(lambda s: _mb(s["cold"]["rss_mb_after"])))
    row("peak RSS, cold client (MB)", each(lambda s: _mb(s["cold"]["peak_rss_mb"])))
    row("RSS, warm client (MB)", each(lambda s: _mb(s["warm"]["rss_mb"])))
    row("view file on disk (MB)", each(lambda s: _mb(s["view_bytes"] / _MB)))
    row("memory view: rebuild (records/s)", each(lambda s: _n(s["memory_view"]["records_per_s"])))
    row("memory view: RSS after rebuild (MB)", each(lambda s: _mb(s["memory_view"]["rss_mb"])))

    lines = [
        f"Shared layout: topic {shared['topic']!r}, {shared['partitions']} partitions, "
        f"replication {shared['replication_factor']}, 3 local brokers; file view unless noted",
        *_table(["figure", *heads], [[name, *cells] for name, cells in rows]),
    ]
    if shared.get("stopped"):
        lines.append(f"STOPPED: {shared['stopped']}")
    tps = report.get("per_topic")
    if tps:
        lines.append("")
        lines.append("Topic per session (the default layout): 1 local broker, a topic per session")
        if "checkpoints" not in tps:
            lines.append(f"FAILED: {tps.get('error')}")
        else:
            points = tps["checkpoints"]
            table = [
                ["sessions = topics", *[f"{p['sessions']:,}" for p in points]],
                ["messages", *[f"{p['messages']:,}" for p in points]],
                [
                    "sessions created per s (topic + 10 msgs)",
                    *[_n(p["create_sessions_per_s"]) for p in points],
                ],
                ["add p50 / p99 (ms)", *[_pair(p, "add") for p in points]],
                ["last_messages(20) p50 / p99 (ms)", *[_pair(p, "last20") for p in points]],
                ["full read, 10 messages, p50 / p99 (ms)", *[_pair(p, "full10") for p in points]],
                ["RSS of the client process (MB)", *[_mb(p["rss_mb"]) for p in points]],
            ]
            lines.extend(_table(["figure", *[""] * len(points)], table))
            how = {
                "bound": f"reached the bound of {tps['bound']:,} topics without a failure",
                "failure": f"FAILED after {tps['reached']:,} topics: {tps['failure']}",
                "deadline": f"stopped by the deadline after {tps['reached']:,} topics",
            }[tps["stopped"]]
            lines.append(f"topic per session: {how}")
    lines.append("")
    lines.append("Targets")
    for t in report["targets"]:
        state = {True: "met", False: "NOT met", None: "info"}[t["met"]]
        values = ", ".join(
            f"{k}: {_n(v) if isinstance(v, float) else v}" for k, v in t["values"].items()
        )
        lines.append(f"  [{state}] {t['rule']}  ({values})")
    return "\n".join(lines)


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in body)]


def plot(report: dict[str, Any], path: Path) -> str:
    """Draw the figures to ``path``; what was done (matplotlib is optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"no plot: matplotlib is not installed (pip install matplotlib) for {path}"
    steps = [s for s in report["shared"]["steps"] if _get(s, "cold", "reads")]
    if not steps:
        return f"no plot: no step of the shared layout completed ({path} not written)"
    x = [s["records_after"] for s in steps]
    tps = [p for p in _get(report, "per_topic", "checkpoints") or [] if "last20" in p]
    tx = [p["messages"] for p in tps]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    for label, key, stat, style in (
        ("shared: last_messages(20) p50", "last20", "p50", "o-"),
        ("shared: last_messages(20) p99", "last20", "p99", "o--"),
        ("shared: full read (10) p50", "full10", "p50", "s-"),
    ):
        ax.plot(x, [s["cold"]["reads"][key][stat] for s in steps], style, label=label)
    for label, key, style in (
        ("topic/session: last_messages(20) p50", "last20", "^-"),
        ("topic/session: full read (10) p50", "full10", "v-"),
    ):
        ax.plot(tx, [p[key]["p50"] for p in tps], style, label=label)
    ax.axhline(LAST_P50, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(LAST_P99, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="messages stored", ylabel="ms", title="Read latency")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    ax.plot(x, [s["cold"]["rss_mb_rebuilt"] for s in steps], "o-", label="file view, cold client")
    ax.plot(x, [_get(s, "warm", "rss_mb") for s in steps], "s-", label="file view, warm client")
    mem = [s for s in steps if _get(s, "memory_view", "rss_mb")]
    ax.plot(
        [s["records_after"] for s in mem],
        [s["memory_view"]["rss_mb"] for s in mem],
        "^-",
        label="memory view",
    )
    ax.plot(tx, [p["rss_mb"] for p in tps], "v-", label="topic per session")
    ax.set(xscale="log", xlabel="messages stored", ylabel="MB", title="Client process RSS")
    ax.legend(fontsize=7)
    ax = axes[1][0]
    built = [s for s in report["shared"]["steps"] if _get(s, "cold", "rebuild")]
    where = list(range(len(built)))
    ax.bar(
        [i - 0.2 for i in where],
        [s["cold"]["rebuild"]["records_per_s"] for s in built],
        width=0.4,
        label="file view",
    )
    ax.bar(
        [i + 0.2 for i in where],
        [_get(s, "memory_view", "records_per_s") or 0 for s in built],
        width=0.4,
        label="memory view",
    )
    ax.set_xticks(where, [f"{s['messages_target']:,}" for s in built])
    ax.axhline(REBUILD_RATE, color="red", linewidth=0.8, linestyle=":", label="target")
    ax.set(xlabel="messages (step)", ylabel="records/s", title="Cold view rebuild")
    ax.legend(fontsize=7)
    ax = axes[1][1]
    ax.plot(x, [s["view_bytes"] / _MB for s in steps], "o-", color="C0", label="view file (MB)")
    ax.set(xscale="log", yscale="log", xlabel="messages stored", ylabel="MB")
    ax.set_title("View on disk; warm restart")
    ax2 = ax.twinx()
    ax2.plot(
        x,
        [s["warm"]["first_read_seconds"] for s in steps],
        "s--",
        color="C3",
        label="warm restart, first read (s)",
    )
    ax2.set(ylabel="s", ylim=(0, None))
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="lower right", fontsize=7)
    fig.suptitle("aiokafka-history: one shared topic (3 brokers, RF 3) vs a topic per session")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


# -- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run both layouts, print the tables; exit status 1 if a step failed."""
    args = _parse(argv)
    check_encoding()
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="shared-scale-"))
    report: dict[str, Any] = {}
    try:
        with _cluster(args.bootstrap, 3) as (bootstrap, ours):
            before = count_topics(Context(bootstrap))
            _say(f"shared layout on {bootstrap} ({before} topics), prefix {prefix!r}")
            try:
                report["shared"] = _shared_steps(args, bootstrap, prefix, workdir)
            finally:
                if not ours:
                    _say(f"    cleanup: {delete_run_topics(Context(bootstrap, prefix=prefix))}")
        report["shared"]["cluster_topics_before"] = before
        if not args.no_per_topic:
            with _cluster(args.single_bootstrap, 1) as (single, ours):
                try:
                    report["per_topic"] = _per_topic(args, single, prefix)
                finally:
                    if not ours:
                        _say(f"    cleanup: {delete_run_topics(Context(single, prefix=prefix))}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["meta"] = {
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - began, 1),
        "quick": args.quick,
        "steps": list(args.steps),
        "topic_checkpoints": list(args.topics),
        "samples": args.samples,
        "turns_per_long_session": TURNS,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    report["targets"] = targets(report)
    print(render(report))
    print(f"\nWall time {report['meta']['wall_seconds']:.0f} s.")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        _say(f"wrote {args.json}")
    if args.plot is not None:
        _say(plot(report, args.plot))
    failed = report["shared"].get("stopped") is not None or (
        "per_topic" in report and "checkpoints" not in report["per_topic"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

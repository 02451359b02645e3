"""9. Throughput: 1,000 sessions x 10 chat turns at once through one client, one process.

Every session makes 10 turns one after the other (read the whole history with
``aget_messages()``, ``messages_mode="full"``; add the question and the answer), all 1,000
sessions at once on one ``AsyncKafkaHistoryClient``, each turn checking it read 2 messages
per earlier turn. Then the same sessions make 10 more turns (their history exists). Each
workload runs in a fresh child process (spawned), so its peak RSS (``VmHWM``) is its own.

Baseline: langchain-postgres' ``PostgresChatMessageHistory`` doing the same (a pool of
``_stores.POOL_SIZE`` async connections, local PostgreSQL 15, fsync on) in its own child;
Redis (langchain_community, LangChain's async methods in the loop's thread pool) too when
it can be started. The topic-per-session layout runs with a deadline (each new session
creates a topic); if it does not finish, the row says how far it got.

Target: ours (shared layout) >= 5,000 messages/s on the first 10 turns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import sys
import time
import uuid
from typing import Any

from ._context import Context
from ._peers_setup import PeerUnavailable, local_postgres, local_redis
from ._report import Figure, Row, Target
from ._stores import Ours, Postgres, Redis, Store, burst_turns

TITLE = "throughput: 1,000 sessions x 10 turns at once, one client"
GROUP = "9"

TARGET_RATE = 5_000.0  # messages/s
TURNS = 10


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _store(kind: str, address: str, prefix: str) -> Store:
    if kind == "shared":
        return Ours(address, shared_topic=f"{prefix}throughput-shared", topic_prefix="")
    if kind == "topic":
        return Ours(address, shared_topic=None, topic_prefix=f"{prefix}tp.")
    if kind == "postgres":
        return Postgres(address)
    return Redis(address, concurrent=True)


async def _workload(kind: str, address: str, prefix: str, sessions: int, deadline: float) -> dict:
    store = _store(kind, address, prefix)
    ids = [str(uuid.uuid4()) for _ in range(sessions)]
    out: dict[str, Any] = {"rss_mb_before": _peak_rss_mb()}
    async with store:
        if isinstance(store, Redis):
            store.prepare(ids)
        for phase, first in (("new", 0), ("more", TURNS)):
            began = time.perf_counter()
            try:
                figure, detail = await asyncio.wait_for(
                    burst_turns(store, ids, first, TURNS), deadline
                )
            except asyncio.TimeoutError:
                out[phase] = {"error": f"did not finish within {deadline:.0f} s"}
                break
            except Exception as exc:  # returned, not raised: the exception may not pickle
                out[phase] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                break
            out[phase] = {
                "msg_per_s": figure.stats["value"],
                "seconds": detail[0],
                "turn_p50_ms": detail[1],
                "turn_p99_ms": detail[2],
                "turns": figure.n,
                "wall": time.perf_counter() - began,
            }
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def child(kind: str, address: str, prefix: str, sessions: int, deadline: float) -> dict:
    """Run one workload in this (child) process; its figures."""
    return asyncio.run(_workload(kind, address, prefix, sessions, deadline))


def _in_child(kind: str, address: str, prefix: str, sessions: int, deadline: float) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(child, kind, address, prefix, sessions, deadline)
        try:
            return future.result(timeout=2 * deadline + 120)
        except Exception as exc:
            return {"new": {"error": f"{type(exc).__name__}: {exc}"}}


def _figures(result: dict, phase: str) -> tuple[Figure, Figure] | str:
    got = result.get(phase, {"error": "not run"})
    if "error" in got:
        return str(got["error"])
    rate = Figure.single(got["msg_per_s"], "msg/s", n=got["turns"])
    turn = Figure("ms", {"p50": got["turn_p50_ms"], "p99": got["turn_p99_ms"]}, got["turns"])
    return rate, turn


def run(ctx: Context) -> list[Row]:
    sessions = ctx.n(1_000, 200)
    deadline = ctx.n(300, 120)
    results: dict[str, dict] = {}
    for kind in ("shared", "topic"):
        _say(f"    ours ({kind}): {sessions:,} sessions x {TURNS} turns x 2 phases ...")
        results[kind] = _in_child(kind, ctx.bootstrap, ctx.prefix, sessions, deadline)
    for kind, start in (("postgres", local_postgres), ("redis", local_redis)):
        try:
            with start() as address:
                _say(f"    {kind}: the same ...")
                results[kind] = _in_child(kind, address, ctx.prefix, sessions, deadline)
        except PeerUnavailable as exc:
            _say(f"    {kind} unavailable: {exc}")
    names = {"postgres": "Postgres", "redis": "Redis (async: thread pool)"}
    rows: list[Row] = []
    for kind, where in (("shared", "shared topic"), ("topic", "topic per session")):
        for phase, what in (("new", "new sessions"), ("more", "10 more turns")):
            ours = _figures(results[kind], phase)
            label = f"{sessions:,} x {TURNS} turns at once, {what} ({where})"
            for peer, peer_name in names.items():
                base = _figures(results.get(peer, {}), phase)
                if isinstance(base, str):
                    continue
                extra = {
                    "ours": results[kind],
                    "baseline": results[peer],
                    "sessions": sessions,
                }
                if isinstance(ours, str):
                    _say(f"    {label}: {ours}")
                    extra["ours_error"] = ours
                    ours_rate = Figure.single(0, "msg/s", note=f"ours ({where}): {ours}")
                    ours_turn = Figure("ms", {"p50": float("nan"), "p99": float("nan")}, 0)
                else:
                    ours_rate, ours_turn = ours
                target = None
                if kind == "shared" and phase == "new":
                    target = Target("value", TARGET_RATE, "msg/s", at_least=True)
                rows.append(
                    Row(
                        GROUP,
                        f"{label}: messages/s",
                        ours_rate,
                        peer_name,
                        base[0],
                        on="value",
                        higher=True,
                        words=("more", "less"),
                        target=target,
                        extra=extra,
                    )
                )
                if not isinstance(ours, str):
                    rows.append(Row(GROUP, f"{label}: turn latency", ours_turn, peer_name, base[1]))
            rss = results[kind].get("peak_rss_mb")
            if rss and phase == "more":
                for peer, peer_name in names.items():
                    if "peak_rss_mb" in results.get(peer, {}):
                        rows.append(
                            Row(
                                GROUP,
                                f"peak RSS of the process ({where})",
                                Figure.single(rss, "MB"),
                                f"{peer_name}, its own process",
                                Figure.single(results[peer]["peak_rss_mb"], "MB"),
                                on="value",
                                words=("smaller", "larger"),
                            )
                        )
    return rows

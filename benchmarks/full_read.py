"""10. A full read of a 10,000-message session: warm, cold, and the floor; both layouts.

- **warm**: ``aget_messages()`` (``messages_mode="full"``) again on the same history object
  of the same client, after a first full read: what a chain pays every turn;
- **cold**: a new client (and for the shared layout, so a new local view) and a new history
  object, timed from creating the client to the returned list, closing untimed;
- **the floor**: a warm raw aiokafka consumer (manual assignment, ``group_id=None``) seeking
  to the beginning of the same topic and fetching every record up to the end offsets (asked
  of a second, idle consumer; ``fetch_max_wait_ms=5``: see :func:`raw_full_read`), then
  ``json.loads`` +
  ``messages_from_dict`` of the same values (the shared topic: the session's message records,
  found by key); bare (fetch only) in the JSON.
- **idle**: ``aget_messages()`` with nothing new (``last_consumed`` mode) on the same client,
  the cost the issue wants a warm full read to approach.

Targets: warm p50 <= 2x the idle read's p50 ("about what an idle read costs"); cold p50 at
or below the decoded floor's p50 ("decoding at the floor or below it").
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from langchain_core.messages import BaseMessage, messages_from_dict

from aiokafka_history import AsyncKafkaHistoryClient

from ._context import Context
from ._measure import ameasure, expect
from ._report import Figure, Row, Target
from .from_beginning import conversation

TITLE = "full read of 10,000 messages: warm vs cold vs the floor"
GROUP = "10"

COUNT = 10_000
BATCH = 2_000
IDLE_FACTOR = 2.0


def layouts(ctx: Context, label: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, client options)`` of both storage layouts, with this run's topic names."""
    return [
        ("topic per session", {"topic_prefix": ctx.topic(f"{label}.")}),
        ("shared topic", {"shared_topic": ctx.topic(f"{label}-shared")}),
    ]


FLOOR_FETCH_WAIT_MS = 5


def floor_consumer(ctx: Context) -> AIOKafkaConsumer:
    """A raw reader tuned for answering at once (see :func:`raw_full_read`)."""
    return AIOKafkaConsumer(
        bootstrap_servers=ctx.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=FLOOR_FETCH_WAIT_MS,
    )


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions ``topic`` has (an admin DescribeTopics request)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="benchmarks-admin")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    count = len(described[0]["partitions"])
    expect(count > 0, f"{topic} has no partitions: {described}")
    return count


async def raw_full_read(
    consumer: AIOKafkaConsumer,
    topic: str,
    partitions: int,
    *,
    decode: bool,
    session: bytes | None = None,
    prober: AIOKafkaConsumer | None = None,
) -> int:
    """Fetch every record of ``topic`` from the beginning (and decode them); how many.

    ``consumer`` should have a short ``fetch_max_wait_ms`` (:data:`FLOOR_FETCH_WAIT_MS`):
    an assigned aiokafka consumer always has a fetch in flight, and a seek waits for it, up
    to the default 500 ms when it long-polls at the end of the log. The offsets come from
    ``prober`` (default: ``consumer``), before assigning, so no request queues behind that
    fetch on the same broker connection. With ``session`` (the shared layout), only that
    session's message records count (their keys are ``session \\x00 m ...``).
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    asker = prober or consumer
    starts = await asker.beginning_offsets(tps)
    ends = await asker.end_offsets(tps)
    pending = {tp for tp in tps if ends[tp] > starts[tp]}
    if consumer.assignment() != set(tps):
        consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, starts[tp])
    got = 0
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=1000)
        for tp, records in batch.items():
            if records and records[-1].offset + 1 >= ends[tp]:
                pending.discard(tp)
            if session is not None:
                records = [r for r in records if r.key and r.key.startswith(session + b"\x00m")]
            if decode:
                messages_from_dict([json.loads(r.value) for r in records])
            got += len(records)
    return got


async def _floor(ctx: Context, topic: str, session: bytes | None, n: int) -> dict[str, Figure]:
    partitions = await partition_count(ctx.bootstrap, topic)
    consumer = floor_consumer(ctx)
    prober = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None)
    await consumer.start()
    await prober.start()
    try:
        out: dict[str, Figure] = {}
        for decode in (False, True):

            async def read(decode: bool = decode) -> None:
                got = await raw_full_read(
                    consumer, topic, partitions, decode=decode, session=session, prober=prober
                )
                expect(got == COUNT, f"raw consumer read {got} of {COUNT} messages of {topic}")

            out["decoded" if decode else "bare"] = Figure.latency(await ameasure(read, n, warmup=1))
        return out
    finally:
        await prober.stop()
        await consumer.stop()


async def _layout(ctx: Context, options: dict[str, Any], n_warm: int, n_cold: int) -> dict:
    session = "full-read"
    messages = conversation(COUNT)
    out: dict[str, Any] = {}
    async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as client:
        writer = client.history(session)
        for start in range(0, COUNT, BATCH):
            await writer.aadd_messages(messages[start : start + BATCH])
        full = client.history(session, messages_mode="full")
        first = await full.aget_messages()
        expect(first == messages, f"the first full read returned {len(first)} other messages")

        async def warm() -> None:
            got = await full.aget_messages()
            expect(len(got) == COUNT, f"a warm full read returned {len(got)} of {COUNT}")

        out["warm"] = Figure.latency(await ameasure(warm, n_warm, warmup=1))
        idle = client.history(session)
        await idle.amessages_from_latest()

        async def nothing() -> None:
            got: list[BaseMessage] = await idle.aget_messages()
            expect(got == [], f"an idle read returned {len(got)} messages")

        out["idle"] = Figure.latency(await ameasure(nothing, ctx.n(100, 30), warmup=5))
        topic = full.topic
    cold: list[float] = []
    for _ in range(n_cold):
        began = time.perf_counter()
        async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as fresh:
            got = await fresh.history(session, messages_mode="full").aget_messages()
            cold.append(time.perf_counter() - began)
        expect(len(got) == COUNT, f"a cold full read returned {len(got)} of {COUNT}")
    out["cold"] = Figure.latency(cold)
    shared = "shared_topic" in options
    out.update(
        await _floor(ctx, topic, session.encode() if shared else None, ctx.n(10, 3)),
    )
    return out


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for where, options in layouts(ctx, "full-read"):
        got = asyncio.run(_layout(ctx, options, ctx.n(20, 5), ctx.n(5, 2)))
        floor, idle = got["decoded"], got["idle"]
        extra = {"bare_fetch_floor": got["bare"].as_json()}
        floor_name = "raw aiokafka fetch + json/messages_from_dict"
        rows += [
            Row(
                GROUP,
                f"full read 10,000, warm ({where})",
                got["warm"],
                "aget_messages(), nothing new (idle read)",
                idle,
                target=Target(
                    "p50", IDLE_FACTOR * idle.stats["p50"], "ms", source=f"{IDLE_FACTOR:g}x idle"
                ),
            ),
            Row(GROUP, f"full read 10,000, warm ({where})", got["warm"], floor_name, floor),
            Row(
                GROUP,
                f"full read 10,000, cold: new client ({where})",
                got["cold"],
                floor_name,
                floor,
                target=Target("p50", floor.stats["p50"], "ms", source="the floor"),
                extra=extra,
            ),
        ]
    return rows

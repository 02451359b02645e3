"""12. Cold start: the first call on a new history object, where its topic exists or not.

Per layout, each sample on objects made for it:

- **new client, topic exists**: create a client and a history of an existing 10-message
  session, time the first full read (``aget_messages()``, ``messages_mode="full"``): the
  connection set-up (and, for the shared layout, the local view's catch-up on a small topic)
  included. Baseline: a raw aiokafka consumer made, started, assigned and read to the end of
  the same topic (every partition; decoding the records) in the same situation.
- **warm client, new object, topic exists**: ``client.history(existing)`` on a client that
  already served other sessions, first full read. Baseline: the same object's second read.
- **warm client, session's topic does not exist** (topic per session only): the first
  ``aadd_message`` of a new session, which creates its topic. Baseline: raw aiokafka's admin
  ``create_topics`` + ``send_and_wait`` on a started producer. The first read of a session
  that was never written is in the JSON (``read_absent``).
- **new client, shared topic does not exist** (shared only): a client on a new shared topic,
  first ``aadd_message`` (creates the topic, starts the view). Same baseline.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from langchain_core.messages import HumanMessage, message_to_dict

from aiokafka_history import AsyncKafkaHistoryClient

from ._context import Context
from ._measure import expect
from ._report import Figure, Row
from .from_beginning import conversation
from .full_read import floor_consumer, partition_count, raw_full_read

TITLE = "cold start: first calls"
GROUP = "12"

MESSAGE = HumanMessage(content="What is the weather like in Amsterdam this weekend?")
SEEDED = 10


async def _raw_cold_read(ctx: Context, topic: str, partitions: int) -> float:
    began = time.perf_counter()
    consumer = floor_consumer(ctx)
    await consumer.start()
    try:
        got = await raw_full_read(consumer, topic, partitions, decode=True)
        took = time.perf_counter() - began
    finally:
        await consumer.stop()
    expect(got >= SEEDED, f"the raw consumer read {got} records of {topic}")
    return took


async def _raw_create_and_send(
    ctx: Context, admin: AIOKafkaAdminClient, producer: AIOKafkaProducer, topic: str
) -> float:
    began = time.perf_counter()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    value = json.dumps(message_to_dict(MESSAGE)).encode()
    deadline = time.monotonic() + 30
    while True:  # the new partition's leader may need a moment, as for any client
        try:
            await producer.send_and_wait(topic, value, key=topic.encode())
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
    return time.perf_counter() - began


async def _layout(ctx: Context, shared: bool, n_cold: int, n_warm: int) -> dict[str, Any]:
    label = "cold-shared" if shared else "cold."
    options: dict[str, Any] = (
        {"shared_topic": ctx.topic(label)} if shared else {"topic_prefix": ctx.topic(label)}
    )
    existing = [f"s{i}" for i in range(n_warm + 1)]
    seed = conversation(SEEDED)
    out: dict[str, list[float]] = {k: [] for k in ("new_client", "raw_read", "new_object")}
    out.update({"second_read": [], "first_add": [], "raw_create": [], "read_absent": []})
    async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as client:
        for session in existing:
            await client.history(session).aadd_messages(seed)
        topic = client.history(existing[0]).topic
        # warm client, new objects of existing sessions
        await client.history(existing[-1], messages_mode="full").aget_messages()
        for session in existing[:-1]:
            history = client.history(session, messages_mode="full")
            began = time.perf_counter()
            got = await history.aget_messages()
            out["new_object"].append(time.perf_counter() - began)
            expect(len(got) == SEEDED, f"first read of {session}: {len(got)} messages")
            began = time.perf_counter()
            await history.aget_messages()
            out["second_read"].append(time.perf_counter() - began)
        if not shared:
            for _ in range(n_cold):
                history = client.history(f"new-{uuid.uuid4().hex[:8]}")
                began = time.perf_counter()
                got = await history.aget_messages()
                out["read_absent"].append(time.perf_counter() - began)
                expect(got == [], "a never-written session reads empty")
                began = time.perf_counter()
                await history.aadd_message(MESSAGE)
                out["first_add"].append(time.perf_counter() - began)
    partitions = await partition_count(ctx.bootstrap, topic)
    for _ in range(n_cold):
        began = time.perf_counter()
        async with AsyncKafkaHistoryClient(ctx.bootstrap, **options) as fresh:
            got = await fresh.history(existing[0], messages_mode="full").aget_messages()
            out["new_client"].append(time.perf_counter() - began)
        expect(len(got) == SEEDED, f"a new client's first read: {len(got)} messages")
        out["raw_read"].append(await _raw_cold_read(ctx, topic, partitions))
    if shared:
        for i in range(n_cold):
            began = time.perf_counter()
            async with AsyncKafkaHistoryClient(
                ctx.bootstrap, shared_topic=ctx.topic(f"cold-new-shared-{i}")
            ) as fresh:
                await fresh.history("first").aadd_message(MESSAGE)
                out["first_add"].append(time.perf_counter() - began)
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, acks="all", enable_idempotence=True
    )
    await admin.start()
    await producer.start()
    try:
        for i in range(n_cold):
            topic = ctx.topic(f"cold-raw-{'s' if shared else 't'}{i}")
            out["raw_create"].append(await _raw_create_and_send(ctx, admin, producer, topic))
    finally:
        await producer.stop()
        await admin.close()
    return out


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for shared in (False, True):
        where = "shared topic" if shared else "topic per session"
        got = asyncio.run(_layout(ctx, shared, ctx.n(8, 3), ctx.n(30, 10)))
        lat = Figure.latency
        rows += [
            Row(
                GROUP,
                f"first read, new client, topic exists ({where})",
                lat(got["new_client"]),
                "raw aiokafka: new consumer, read + decode",
                lat(got["raw_read"]),
            ),
            Row(
                GROUP,
                f"first read, new object on a warm client ({where})",
                lat(got["new_object"]),
                "the same object's second read",
                lat(got["second_read"]),
            ),
            Row(
                GROUP,
                (
                    "first add, new client, shared topic does not exist"
                    if shared
                    else "first add, session's topic does not exist (warm client)"
                ),
                lat(got["first_add"]),
                "raw aiokafka: create_topics + send_and_wait",
                lat(got["raw_create"]),
                extra={"read_absent": lat(got["read_absent"]).as_json()}
                if got["read_absent"]
                else {},
            ),
        ]
    return rows

"""2. ``add_message`` latency on a warm object (returns once Kafka acknowledged the write).

Baselines: langchain_community's ``add_message`` (confluent-kafka ``produce`` + ``flush``), and
the floor: aiokafka's own ``send_and_wait`` with the same producer settings as ours
(``acks="all"``, idempotent, ``linger_ms=0``) and the same JSON value and key.
"""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaProducer
from langchain_core.messages import HumanMessage, message_to_dict

from aiokafka_history import AsyncKafkaChatMessageHistory, KafkaChatMessageHistory

from ._community import CommunityKafkaHistory
from ._context import Context
from ._measure import ameasure, measure
from ._report import Figure, Row

TITLE = "add_message"

MESSAGE = HumanMessage(content="What is the weather like in Amsterdam this weekend?")
WARMUP = 10


async def _async_samples(ctx: Context, n: int) -> tuple[list[float], list[float]]:
    session = ctx.topic("add-async")
    async with AsyncKafkaChatMessageHistory(session, ctx.bootstrap) as history:
        ours = await ameasure(lambda: history.aadd_message(MESSAGE), n, warmup=WARMUP)
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:

        async def send() -> None:
            value = json.dumps(message_to_dict(MESSAGE)).encode("utf-8")
            await producer.send_and_wait(session, value, key=session.encode("utf-8"))

        raw = await ameasure(send, n, warmup=WARMUP)
    finally:
        await producer.stop()
    return ours, raw


def run(ctx: Context) -> list[Row]:
    n = ctx.n(300, 50)
    with KafkaChatMessageHistory(ctx.topic("add-sync"), ctx.bootstrap) as history:
        sync = Figure.latency(measure(lambda: history.add_message(MESSAGE), n, warmup=WARMUP))
    ours, raw = asyncio.run(_async_samples(ctx, n))
    async_, floor = Figure.latency(ours), Figure.latency(raw)
    community = CommunityKafkaHistory(ctx.topic("add-community"), ctx.bootstrap)
    try:
        base = Figure.latency(measure(lambda: community.add_message(MESSAGE), n, warmup=WARMUP))
    finally:
        community.close()
    name = "langchain_community .add_message"
    raw_name = "raw aiokafka send_and_wait (floor)"
    return [
        Row("2", "add_message (sync)", sync, name, base),
        Row("2", "aadd_message (async)", async_, name, base),
        Row("2", "add_message (sync)", sync, raw_name, floor),
        Row("2", "aadd_message (async)", async_, raw_name, floor),
    ]

"""3. ``messages_from_beginning()`` of a 1,000-message session, on a warm object.

Baselines: langchain_community's ``messages_from_beginning(max_message_count=1000,
max_time_sec=30)`` on its own 1,000-message topic (3 partitions, its default: it joins a
consumer group on every call), and a warm raw aiokafka consumer (manual assignment,
``group_id=None``) seeking to the beginning and fetching the same 1,000 records: the floor,
once as bare records and once decoded the way every reader must (``json.loads`` +
``messages_from_dict``), which separates our overhead from LangChain's decoding cost.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_from_dict

from aiokafka_history import KafkaChatMessageHistory

from ._community import CommunityKafkaHistory
from ._context import Context
from ._measure import ameasure, expect, measure
from ._report import Figure, Row

TITLE = "messages_from_beginning, 1,000 messages"

COUNT = 1_000


def conversation(count: int) -> list[BaseMessage]:
    """``count`` alternating human / AI messages of a typical chat-turn size."""
    return [
        HumanMessage(content=f"question {i}: how do I configure retention on a topic?")
        if i % 2 == 0
        else AIMessage(content=f"answer {i}: set retention.ms on the topic, e.g. 7 days.")
        for i in range(count)
    ]


async def _raw_samples(ctx: Context, topic: str, n: int, *, decode: bool) -> list[float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ctx.bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])

        async def read_all() -> None:
            await consumer.seek_to_beginning(tp)
            got = 0
            deadline = time.monotonic() + 30
            while got < COUNT and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records = batch.get(tp, [])
                if decode:
                    messages_from_dict([json.loads(r.value) for r in records])
                got += len(records)
            expect(got == COUNT, f"raw consumer read {got} of {COUNT} records")

        return await ameasure(read_all, n, warmup=2)
    finally:
        await consumer.stop()


def run(ctx: Context) -> list[Row]:
    messages = conversation(COUNT)
    session = ctx.topic("beginning")
    with KafkaChatMessageHistory(session, ctx.bootstrap) as history:
        history.add_messages(messages)

        def read() -> None:
            got = history.messages_from_beginning()
            expect(got == messages, f"read {len(got)} messages, not the {COUNT} written")

        ours = Figure.latency(measure(read, ctx.n(20, 5), warmup=2))
    floor = Figure.latency(asyncio.run(_raw_samples(ctx, session, ctx.n(20, 5), decode=False)))
    decoded = Figure.latency(asyncio.run(_raw_samples(ctx, session, ctx.n(20, 5), decode=True)))

    community = CommunityKafkaHistory(ctx.topic("beginning-community"), ctx.bootstrap)
    try:
        community.add_messages(messages)

        def community_read() -> None:
            got = community.messages_from_beginning(max_message_count=COUNT, max_time_sec=30)
            expect(len(got) == COUNT, f"langchain_community read {len(got)} of {COUNT}")

        base = Figure.latency(measure(community_read, ctx.n(3, 2)))
    finally:
        community.close()
    return [
        Row(
            "3",
            "messages_from_beginning(), 1,000 msgs",
            ours,
            "langchain_community (max_message_count=1000)",
            base,
        ),
        Row(
            "3",
            "messages_from_beginning(), 1,000 msgs",
            ours,
            "raw aiokafka consumer, 1,000 records (floor)",
            floor,
        ),
        Row(
            "3",
            "messages_from_beginning(), 1,000 msgs",
            ours,
            "raw aiokafka + json/messages_from_dict",
            decoded,
        ),
    ]

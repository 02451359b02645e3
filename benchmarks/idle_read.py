"""1. ``messages`` when nothing is new, on a warm object.

Ours returns as soon as it sees it is caught up (a few round trips); langchain_community's
``messages`` joins a consumer group and polls until ``max_time_sec=5`` has passed. Both
sessions hold the same four messages, already consumed: the last consumed position is at the
end. langchain_community's group is moved to the end by our ``messages_from_latest`` (both
libraries keep the position in the consumer group named after the topic), which spares a
5-second warm-up read.
"""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory, KafkaChatMessageHistory

from ._community import CommunityKafkaHistory
from ._context import Context
from ._measure import ameasure, expect, measure
from ._report import Figure, Row

TITLE = "messages, nothing new"

SEED: list[BaseMessage] = [
    HumanMessage(content="hi!"),
    AIMessage(content="whats up?"),
    HumanMessage(content="hi again!"),
    AIMessage(content="whats up again?"),
]


def _nothing(messages: list[BaseMessage]) -> None:
    expect(messages == [], f"expected no new messages, got {len(messages)}")


async def _async_samples(ctx: Context, n: int) -> list[float]:
    async with AsyncKafkaChatMessageHistory(ctx.topic("idle-async"), ctx.bootstrap) as history:
        await history.aadd_messages(SEED)
        expect(await history.aget_messages() == SEED, "the first read must return the seed")

        async def read() -> None:
            _nothing(await history.aget_messages())

        return await ameasure(read, n, warmup=10)


def _community_samples(ctx: Context, n: int) -> list[float]:
    session = ctx.topic("idle-community")
    community = CommunityKafkaHistory(session, ctx.bootstrap)  # 3 partitions, its default
    community.add_messages(SEED)
    with KafkaChatMessageHistory(session, ctx.bootstrap) as positioner:
        positioner.messages_from_latest()  # the group "session" now points at the end
    try:
        return measure(lambda: _nothing(community.messages), n)
    finally:
        community.close()


def run(ctx: Context) -> list[Row]:
    n = ctx.n(200, 50)
    with KafkaChatMessageHistory(ctx.topic("idle-sync"), ctx.bootstrap) as history:
        history.add_messages(SEED)
        expect(history.messages == SEED, "the first read must return the seed")
        sync = measure(lambda: _nothing(history.messages), n, warmup=10)
    async_ = asyncio.run(_async_samples(ctx, n))
    community = Figure.latency(_community_samples(ctx, ctx.n(3, 2)))
    name = "langchain_community .messages"
    return [
        Row("1", "messages, nothing new (sync)", Figure.latency(sync), name, community),
        Row("1", "aget_messages(), nothing new (async)", Figure.latency(async_), name, community),
    ]

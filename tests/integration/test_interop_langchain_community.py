"""Both libraries read each other's topics (langchain_community writes with confluent-kafka)."""

from __future__ import annotations

import time

from langchain_community.chat_message_histories import (
    KafkaChatMessageHistory as CommunityHistory,
)
from langchain_core.messages import AIMessage, HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory, KafkaChatMessageHistory

WALKTHROUGH = [
    HumanMessage(content="hi!"),
    AIMessage(content="whats up?"),
    HumanMessage(content="hi again!"),
    AIMessage(content="whats up again?"),
]


def test_we_read_community_topics_in_write_order(kafka_bootstrap: str, session_id: str) -> None:
    community = CommunityHistory(session_id, kafka_bootstrap)  # 3 partitions, no keys
    for message in WALKTHROUGH * 3:
        community.add_messages([message])
        # Across unkeyed partitions the only order Kafka keeps is the record timestamp, in
        # milliseconds: writes in the same millisecond cannot be told apart by anyone.
        time.sleep(0.002)
    community.close()

    with KafkaChatMessageHistory(session_id, kafka_bootstrap, messages_mode="full") as ours:
        stored = ours.messages
    assert stored == WALKTHROUGH * 3


def test_community_topic_spreads_over_partitions(kafka_bootstrap: str, session_id: str) -> None:
    """Guards the test above: the merge must really have had several partitions to merge."""
    community = CommunityHistory(session_id, kafka_bootstrap)
    for message in WALKTHROUGH * 5:
        community.add_messages([message])
        time.sleep(0.002)
    community.close()

    import asyncio

    # Own loop after the blocking part: the community client (confluent-kafka) blocks.
    async def partitions_used() -> set[int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            (info,) = await admin.describe_topics([session_id])
        finally:
            await admin.close()
        parts = [TopicPartition(session_id, p["partition"]) for p in info["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            begin = await consumer.beginning_offsets(parts)
            end = await consumer.end_offsets(parts)
        finally:
            await consumer.stop()
        assert len(parts) == 3
        assert sum(end[p] - begin[p] for p in parts) == 20
        async with AsyncKafkaChatMessageHistory(
            session_id, kafka_bootstrap, messages_mode="full"
        ) as ours:
            assert await ours.aget_messages() == WALKTHROUGH * 5
        return {p.partition for p in parts if end[p] > begin[p]}

    assert len(asyncio.run(partitions_used())) >= 2


def test_community_reads_what_we_write(kafka_bootstrap: str, session_id: str) -> None:
    with KafkaChatMessageHistory(session_id, kafka_bootstrap) as ours:
        ours.add_messages(WALKTHROUGH)
    community = CommunityHistory(session_id, kafka_bootstrap)
    try:
        read = community.messages_from_beginning(max_message_count=4, max_time_sec=30)
    finally:
        community.close()
    assert read == WALKTHROUGH


def test_positions_are_shared_with_community_consumers(
    kafka_bootstrap: str, session_id: str
) -> None:
    """Same consumer group name as langchain_community: a migration keeps the position."""
    community = CommunityHistory(session_id, kafka_bootstrap, partition=1)
    community.add_messages(WALKTHROUGH[:2])
    assert (
        community.messages_from_beginning(max_message_count=2, max_time_sec=30) == (WALKTHROUGH[:2])
    )
    community.add_messages(WALKTHROUGH[2:])
    community.close()
    with KafkaChatMessageHistory(session_id, kafka_bootstrap) as ours:
        assert ours.messages == WALKTHROUGH[2:]

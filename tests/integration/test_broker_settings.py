"""Topics get the settings asked for, on brokers as users have them (auto-creation on)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from aiokafka_history import AsyncKafkaHistoryClient
from kafkalocal import KafkaCluster, TopicFactory

pytestmark = pytest.mark.anyio


async def _describe(bootstrap: str, topic: str) -> tuple[int, int, dict[str, str]]:
    """Partitions, replication factor and the topic-level configs of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (info,) = await admin.describe_topics([topic])
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            for entry in resource[4]:
                name, value = entry[0], entry[1]
                configs[name] = value
    parts: list[Any] = info["partitions"]
    return len(parts), len(parts[0]["replicas"]), configs


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_on_a_broker_with_kafka_defaults_the_requested_settings_are_applied(
    kafka_defaults_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """Auto-creation is on there: a lookup that let the broker create the topic would give
    it the broker's defaults (1 partition, 7 days) instead of what the history asked for."""
    topics = kafka_topics.on(kafka_defaults_bootstrap)
    asked, untouched = topics("asked"), topics("read-only")
    async with AsyncKafkaHistoryClient(kafka_defaults_bootstrap) as client:
        reader = client.history(untouched, messages_mode="full")
        assert await reader.aget_messages() == []
        assert await reader.alast_messages(5) == []
        assert not await client.session_exists(untouched)

        history = client.history(asked, ttl_ms=3_600_000, partition=3, messages_mode="full")
        await history.aadd_user_message("hi")
        assert [m.content for m in await history.aget_messages()] == ["hi"]

    partitions, replicas, configs = await _describe(kafka_defaults_bootstrap, asked)
    assert (partitions, replicas) == (3, 1)
    assert configs["retention.ms"] == "3600000"
    assert configs["segment.ms"] == "3600000"  # so retention can act within the TTL
    assert configs["cleanup.policy"] == "delete"
    assert untouched not in await _topics(kafka_defaults_bootstrap)  # reads created nothing


async def test_replicated_topics_are_created_durable(
    kafka_cluster: KafkaCluster, kafka_topics: TopicFactory
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = kafka_topics.on(bootstrap)("durable")
    async with AsyncKafkaHistoryClient(bootstrap) as client:
        await client.history(topic, replication_factor=3).aadd_user_message("kept")
    partitions, replicas, configs = await _describe(bootstrap, topic)
    assert (partitions, replicas) == (1, 3)
    assert configs["min.insync.replicas"] == "2"
    assert configs["unclean.leader.election.enable"] == "false"

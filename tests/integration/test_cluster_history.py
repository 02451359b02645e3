"""The library on the 3-node cluster: no acknowledged message is lost when the leader dies."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from langchain_core.messages import HumanMessage

from aiokafka_history import AsyncKafkaChatMessageHistory
from kafkalocal import KafkaCluster


async def _leader(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return int(described["partitions"][0]["leader"])


def test_history_survives_the_leaders_crash(kafka_cluster: KafkaCluster, session_id: str) -> None:
    bootstrap = kafka_cluster.bootstrap_servers

    # Own loop: kill_node/restart_node block for seconds, so they run in worker threads.
    async def scenario() -> tuple[list[str], list[str]]:
        async with AsyncKafkaChatMessageHistory(
            session_id, bootstrap, replication_factor=3, messages_mode="full"
        ) as history:
            await history.aadd_messages([HumanMessage(content=f"before:{i}") for i in range(20)])
            leader = await _leader(bootstrap, session_id)
            await asyncio.to_thread(kafka_cluster.kill_node, leader)
            try:
                # acks=all with min.insync.replicas=2: the two survivors acknowledge.
                for i in range(20):
                    await history.aadd_user_message(f"during:{i}")
                during = [str(m.content) for m in await history.aget_messages()]
            finally:
                await asyncio.to_thread(kafka_cluster.restart_node, leader)
            await history.aadd_messages([HumanMessage(content=f"after:{i}") for i in range(20)])
            after = [str(m.content) for m in await history.aget_messages()]
            return during, after

    during, after = asyncio.run(scenario())
    expected = [f"before:{i}" for i in range(20)] + [f"during:{i}" for i in range(20)]
    assert during == expected
    assert after == expected + [f"after:{i}" for i in range(20)]

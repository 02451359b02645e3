"""The 3-node KRaft cluster survives a crash and a restart of single nodes without data loss."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kafkalocal import KafkaCluster

pytestmark = pytest.mark.anyio

BATCH = 30


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partition_state(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    """Return (leader, sorted ISR) of partition 0, asking a fresh client; (-1, []) if unknown."""
    async with admin_client(bootstrap) as admin:
        (described,) = await admin.describe_topics([topic])
    partitions = [p for p in described["partitions"] if p["partition"] == 0]
    if described["error_code"] or not partitions:  # metadata not propagated yet
        return -1, []
    return partitions[0]["leader"], sorted(partitions[0]["isr"])


async def wait_for_isr(bootstrap: str, topic: str, isr: list[int]) -> int:
    """Wait (60 s at most) until partition 0's ISR is ``isr``; return its leader."""
    state: tuple[int, list[int]] | None = None
    try:
        with anyio.fail_after(60):
            while True:
                state = await partition_state(bootstrap, topic)
                if state[1] == isr and state[0] in isr:
                    return state[0]
                await anyio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"(leader, ISR) still {state}; want ISR {isr}")


async def produce(producer: AIOKafkaProducer, topic: str, label: str) -> list[bytes]:
    values = [f"{label}-{i}".encode() for i in range(BATCH)]
    for value in values:
        await producer.send_and_wait(topic, value)
    return values


async def test_no_loss_when_nodes_crash_and_restart(
    kafka_cluster: KafkaCluster, session_id: str
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = session_id
    async with admin_client(bootstrap) as admin:
        response = await admin.create_topics([NewTopic(topic, 1, 3)])
    assert [(t[0], t[1]) for t in response.topic_errors] == [(topic, 0)]
    leader = await wait_for_isr(bootstrap, topic, [0, 1, 2])

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent: list[bytes] = []
    try:
        sent += await produce(producer, topic, "all-up")

        # Crash the partition leader: the two others must take over with acks=all.
        crashed = leader
        await anyio.to_thread.run_sync(kafka_cluster.kill_node, crashed)
        assert not kafka_cluster.is_running(crashed)
        sent += await produce(producer, topic, "crashed")
        leader, isr = await partition_state(bootstrap, topic)
        assert crashed not in isr
        assert len(isr) == 2

        await anyio.to_thread.run_sync(kafka_cluster.start_node, crashed)
        leader = await wait_for_isr(bootstrap, topic, [0, 1, 2])
        sent += await produce(producer, topic, "recovered")

        # Gracefully stop another node (the leader if it moved) and bring it back.
        stopped = leader if leader != crashed else (crashed + 1) % 3
        await anyio.to_thread.run_sync(kafka_cluster.stop_node, stopped)
        sent += await produce(producer, topic, "stopped")
        await anyio.to_thread.run_sync(kafka_cluster.start_node, stopped)
        await wait_for_isr(bootstrap, topic, [0, 1, 2])
        sent += await produce(producer, topic, "restarted")
    finally:
        await producer.stop()
        for i in range(kafka_cluster.nodes):  # leave a whole cluster to the next test
            if not kafka_cluster.is_running(i):
                await anyio.to_thread.run_sync(kafka_cluster.start_node, i)

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        assert await consumer.end_offsets([tp]) == {tp: len(sent)}
        received: list[bytes] = []
        while len(received) < len(sent):
            batch = await consumer.getmany(tp, timeout_ms=10_000)
            assert batch, f"no more records after {len(received)} of {len(sent)}"
            received += [record.value for record in batch[tp]]
    finally:
        await consumer.stop()
    assert received == sent


async def test_restart_node_waits_until_it_serves_again(kafka_cluster: KafkaCluster) -> None:
    await anyio.to_thread.run_sync(kafka_cluster.restart_node, 2)
    assert kafka_cluster.is_running(2)
    async with admin_client(kafka_cluster.broker_address(2)) as admin:
        cluster = await admin.describe_cluster()
    assert sorted(broker["node_id"] for broker in cluster["brokers"]) == [0, 1, 2]

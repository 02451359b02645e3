"""The single-node broker of ``kafka_bootstrap`` works end to end through aiokafka."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from kafkalocal import KafkaCluster

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


async def create_topic(bootstrap: str, topic: str, replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(topic, 1, replication)])
    finally:
        await admin.close()
    assert [(t[0], t[1]) for t in response.topic_errors] == [(topic, 0)]


async def test_produce_and_consume_round_trip(kafka_bootstrap: str, session_id: str) -> None:
    await create_topic(kafka_bootstrap, session_id)
    tp = TopicPartition(session_id, 0)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        offsets = [
            (
                await producer.send_and_wait(
                    session_id, f"value-{i}".encode(), key=b"k", headers=[("n", str(i).encode())]
                )
            ).offset
            for i in range(20)
        ]
    finally:
        await producer.stop()
    assert offsets == list(range(20))

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        assert await consumer.end_offsets([tp]) == {tp: 20}
        records = []
        while len(records) < 20:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            assert batch, f"no records after {len(records)}"
            records += batch[tp]
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [f"value-{i}".encode() for i in range(20)]
    assert [r.offset for r in records] == list(range(20))
    assert {r.key for r in records} == {b"k"}
    assert [dict(r.headers)["n"] for r in records] == [str(i).encode() for i in range(20)]


async def test_group_commit_and_delete_records(kafka_bootstrap: str, session_id: str) -> None:
    await create_topic(kafka_bootstrap, session_id)
    tp = TopicPartition(session_id, 0)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(session_id, str(i).encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=session_id, enable_auto_commit=False
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    await admin.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 3})
        assert await consumer.committed(tp) == 3
        low_watermarks = await admin.delete_records({tp: RecordsToDelete(before_offset=2)})
        assert low_watermarks == {tp: 2}
        assert await consumer.beginning_offsets([tp]) == {tp: 2}
        assert await consumer.end_offsets([tp]) == {tp: 5}
    finally:
        await admin.close()
        await consumer.stop()


async def test_topics_are_not_auto_created(kafka_bootstrap: str, session_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=2000)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await admin.start()
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            await producer.send_and_wait(session_id, b"nobody home")
        assert session_id not in await admin.list_topics()
    finally:
        await admin.close()
        await producer.stop()


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored;
    # Ctrl-C in a terminal arrives at a process whose SIGINT is at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_run_prints_bootstrap_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with subprocess.Popen(
        [sys.executable, "-m", "kafkalocal", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"), line
            host, port = line.strip().split("=", 1)[1].split(":")
            socket.create_connection((host, int(port)), timeout=5).close()
            proc.send_signal(stop_signal)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "started 1 node(s) in" in stderr
    assert "stopped in" in stderr
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_cli_exec_starts_a_broker_for_the_command() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    probe = (
        "import os, socket, sys; host, port = os.environ['KAFKA_BOOTSTRAP_SERVERS'].split(':');"
        "socket.create_connection((host, int(port)), timeout=5).close(); sys.exit(5)"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kafkalocal", "exec", "--", sys.executable, "-c", probe],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 5, result.stderr
    assert "started Kafka" in result.stderr


def test_cluster_object_reports_start_time_and_logs() -> None:
    with KafkaCluster(nodes=1) as cluster:
        assert cluster.start_seconds is not None
        assert 0 < cluster.start_seconds < 60
        assert "Kafka Server started" in cluster.log_tail(0, lines=10_000)

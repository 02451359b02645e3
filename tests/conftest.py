"""Shared fixtures: a real Kafka broker, a 3-node KRaft cluster, a fresh topic per test.

``kafka_bootstrap``  session; ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else one local node
                     started by kafkalocal. A start failure is an ERROR carrying the
                     broker log tail, never a skip.
``kafka_cluster``    session; our own 3-node cluster (also when the variable is set,
                     since tests kill and restart its nodes). Started on first use.
``session_id``       function; a fresh legal topic name, deleted after the test from
                     the broker(s) the test used.
``anyio_backend``    session; "asyncio", for ``@pytest.mark.anyio`` tests.

Tests under ``tests/integration`` are marked ``integration``; tests that use
``kafka_cluster`` are marked ``cluster``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError, for_code

from kafkalocal import KafkaCluster, broker_from_env

_INTEGRATION = Path(__file__).parent / "integration"
_NOT_IN_TOPIC_NAME = re.compile(r"[^a-zA-Z0-9-]+")
_BROKER_FIXTURES = ("kafka_bootstrap", "kafka_cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark integration tests by location and cluster tests by fixture."""
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        if "kafka_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with broker_from_env() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    with KafkaCluster(nodes=3) as cluster:
        yield cluster


def topic_for_test(test_name: str) -> str:
    """Return ``test-<test name, sanitised>-<8 hex>``: a unique, legal Kafka topic name."""
    slug = _NOT_IN_TOPIC_NAME.sub("-", test_name.removeprefix("test_")).strip("-")
    return f"test-{slug[:80] or 'topic'}-{uuid.uuid4().hex[:8]}"


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        response = await admin.delete_topics([topic])
    finally:
        await admin.close()
    for name, code in response.topic_error_codes:
        if code not in (0, UnknownTopicOrPartitionError.errno):
            raise for_code(code)(f"could not delete test topic {name!r}")


@pytest.fixture
def session_id(request: pytest.FixtureRequest) -> Iterator[str]:
    topic = topic_for_test(request.node.name)
    brokers = [
        request.getfixturevalue(name) for name in _BROKER_FIXTURES if name in request.fixturenames
    ]
    yield topic
    for broker in brokers:
        bootstrap = broker.bootstrap_servers if isinstance(broker, KafkaCluster) else broker
        asyncio.run(_delete_topic(bootstrap, topic))

"""The package's shape: no module uses another's private names, aiokafka's are fenced in one."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import AIOKafkaConnection

import aiokafka_history
from aiokafka_history import _kafka_internals

PACKAGE = Path(aiokafka_history.__file__).parent
INTERNALS = "_kafka_internals.py"
OWN_OBJECTS = {"self", "cls"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in OWN_OBJECTS:
                continue
            found.append(f"{path.name}:{node.lineno} uses .{node.attr} of {ast.unparse(owner)}")
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(PACKAGE.glob("*.py")) if p.name != INTERNALS],
    ids=lambda p: p.name,
)
def test_no_module_touches_private_names_of_other_objects(path: Path) -> None:
    assert _violations(path) == []


def test_only_the_internals_module_reaches_into_aiokafka() -> None:
    # The one module that may, and does: the fence is real.
    assert _violations(PACKAGE / INTERNALS)


@pytest.mark.anyio
async def test_the_aiokafka_internals_we_rely_on_are_still_there() -> None:
    """Fails as soon as an aiokafka release moves what ``_kafka_internals`` uses."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1")
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    try:
        assert callable(admin._client.send)
        assert callable(admin._client.get_random_node)
        assert isinstance(producer.client._conns, dict)
        assert isinstance(admin._client._conns, dict)
        assert isinstance(consumer._client._conns, dict)
        client = _kafka_internals.consumer_client(consumer)
        assert callable(client.send) and callable(client.add_topic)
        assert callable(client.cluster.leader_for_partition)
        assert hasattr(producer._sender, "sender_task")
        assert producer._closed is False
        assert "timeout" in inspect.signature(_kafka_internals.force_stop_producer).parameters
        # Unstarted objects: nothing is open, nothing failed.
        assert _kafka_internals.open_sockets(producer, admin, consumer) == 0
        assert _kafka_internals.producer_failure(producer) is None
        assert _kafka_internals.known_partitions(producer, "t") is None  # no metadata yet
        assert _kafka_internals.connection_made(AIOKafkaConnection("127.0.0.1", 1)) is False
        await _kafka_internals.force_stop_producer(producer, 1.0)
        assert producer._closed is True
    finally:
        await producer.stop()
        await admin.close()
        await consumer.stop()

"""The library's test conventions; brokers and topics come from kafkalocal's pytest plugin.

The plugin (``tools/kafkalocal``, installed by every nox session) provides the session
brokers ``kafka_bootstrap``, ``kafka_cluster``, ``kafka_defaults_bootstrap`` and
``kafka_secure``, each started on first use, and ``kafka_topics``, a factory of fresh
topic names that are deleted after the test. Here:

``session_id``       function; one fresh session id (= topic name), deleted after the test
                     from the broker(s) the test used.
``make_session_id``  function; ``make_session_id(label)`` makes as many as needed, same cleanup.
``anyio_backend``    session; "asyncio", for ``@pytest.mark.anyio`` tests.
``socket_fds``       function; a callable counting the process's open sockets.
``kafka_bootstrap``  session, parametrised: the plugin's broker, then one with Kafka's defaults.

Tests under ``tests/integration`` are marked ``integration``; tests that use
``kafka_cluster`` are marked ``cluster``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kafkalocal import TopicFactory

_INTEGRATION = Path(__file__).parent / "integration"


# These test kafkalocal's own test broker (e.g. that it does not auto-create topics), not the
# library: the Kafka-defaults round does not apply to them.
_BROKER_SELF_TESTS = ("test_kafka_broker.py", "test_kafka_cluster.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark integration tests by location and cluster tests by fixture."""
    not_applicable = [
        item
        for item in items
        if item.path.name in _BROKER_SELF_TESTS and "[kafka-defaults" in item.nodeid
    ]
    if not_applicable:
        config.hook.pytest_deselected(items=not_applicable)
        items[:] = [item for item in items if item not in not_applicable]
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        if "kafka_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=["test-settings", "kafka-defaults"])
def kafka_bootstrap(request: pytest.FixtureRequest, kafka_bootstrap: str) -> str:
    """Every test that takes ``kafka_bootstrap`` runs against two brokers.

    ``test-settings``: kafkalocal's test broker (auto-creation off, no rebalance delay), or
    ``$KAFKA_BOOTSTRAP_SERVERS``. ``kafka-defaults``: a broker with Kafka's own default
    settings, as users have it (topic auto-creation on, 3 s initial rebalance delay).
    """
    if request.param == "kafka-defaults":
        defaults: str = request.getfixturevalue("kafka_defaults_bootstrap")
        return defaults
    return kafka_bootstrap


def _count_socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@pytest.fixture
def socket_fds() -> Callable[[], int]:
    """Count this process's open sockets (Linux ``/proc``), for leak checks."""
    return _count_socket_fds


@pytest.fixture
def session_id(kafka_topics: TopicFactory) -> str:
    return kafka_topics()


@pytest.fixture
def make_session_id(kafka_topics: TopicFactory) -> Callable[[str], str]:
    return kafka_topics

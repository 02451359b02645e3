"""The library's test conventions; brokers and topics come from kafkalocal's pytest plugin.

The plugin (``tools/kafkalocal``, installed by every nox session) provides the session
brokers ``kafka_bootstrap``, ``kafka_cluster``, ``kafka_defaults_bootstrap`` and
``kafka_secure``, each started on first use, and ``kafka_topics``, a factory of fresh
topic names that are deleted after the test. Here:

``session_id``       function; one fresh session id (= topic name), deleted after the test
                     from the broker(s) the test used.
``make_session_id``  function; ``make_session_id(label)`` makes as many as needed, same cleanup.
``anyio_backend``    session; "asyncio", for ``@pytest.mark.anyio`` tests.

Tests under ``tests/integration`` are marked ``integration``; tests that use
``kafka_cluster`` are marked ``cluster``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kafkalocal import TopicFactory

_INTEGRATION = Path(__file__).parent / "integration"


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


@pytest.fixture
def session_id(kafka_topics: TopicFactory) -> str:
    return kafka_topics()


@pytest.fixture
def make_session_id(kafka_topics: TopicFactory) -> Callable[[str], str]:
    return kafka_topics

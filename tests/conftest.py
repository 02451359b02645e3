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
``open_history``     function; ``with open_history(session_id, **options) as history`` in the
                     test's layout (a blocking ``KafkaChatMessageHistory``).
``aopen_history``    function; the same with ``async with`` and an ``AsyncKafkaChatMessageHistory``.
``kafka_bootstrap``  session, parametrised: the plugin's broker, then one with Kafka's defaults.
``layout``           function, parametrised: client options of each storage layout, ``{}``
                     (a topic per session) or a fresh ``shared_topic`` (deleted afterwards).

Tests under ``tests/integration`` are marked ``integration``; tests that use
``kafka_cluster`` are marked ``cluster``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
    KafkaOptions,
    TopicSettings,
)
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


LAYOUTS = ("topic-per-session", "shared-topic")


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest, kafka_topics: TopicFactory) -> dict[str, Any]:
    """Client options of a storage layout; a history behaviour test takes it to run in both.

    Pass them to ``AsyncKafkaHistoryClient`` / ``KafkaHistoryClient`` (``**layout``). The
    shared topic is made fresh for the test (3 partitions) and deleted afterwards.
    """
    if request.param == "topic-per-session":
        return {}
    return {
        "shared_topic": kafka_topics("shared"),
        "shared_topic_settings": TopicSettings(partition=3),
    }


# Options of the client rather than of a history, split off when a history is opened through
# a client (the shared layout exists only on a client).
_CLIENT_OPTIONS = frozenset(
    set(KafkaOptions.__annotations__)
    | {"max_readers", "read_timeout", "write_timeout", "admin_timeout", "close_timeout"}
    | {"on_bad_record", "topic_prefix", "encode_session_ids", "read_cache_bytes"}
)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    client = {k: v for k, v in options.items() if k in _CLIENT_OPTIONS}
    return client, {k: v for k, v in options.items() if k not in _CLIENT_OPTIONS}


@pytest.fixture
def open_history(
    kafka_bootstrap: str, layout: dict[str, Any]
) -> Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]:
    """Open a blocking history of a session in the test's storage layout."""

    @contextlib.contextmanager
    def open_(session_id: str, **options: Any) -> Iterator[KafkaChatMessageHistory]:
        if not layout:
            with KafkaChatMessageHistory(session_id, kafka_bootstrap, **options) as history:
                yield history
            return
        client_options, history_options = _split(options)
        with (
            KafkaHistoryClient(kafka_bootstrap, **layout, **client_options) as client,
            client.history(session_id, **history_options) as history,
        ):
            yield history

    return open_


@pytest.fixture
def aopen_history(
    kafka_bootstrap: str, layout: dict[str, Any]
) -> Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]:
    """Open an async history of a session in the test's storage layout."""

    @contextlib.asynccontextmanager
    async def open_(session_id: str, **options: Any) -> AsyncIterator[AsyncKafkaChatMessageHistory]:
        if not layout:
            async with AsyncKafkaChatMessageHistory(
                session_id, kafka_bootstrap, **options
            ) as history:
                yield history
            return
        client_options, history_options = _split(options)
        async with (
            AsyncKafkaHistoryClient(kafka_bootstrap, **layout, **client_options) as client,
            client.history(session_id, **history_options) as history,
        ):
            yield history

    return open_


@pytest.fixture
def session_id(kafka_topics: TopicFactory) -> str:
    return kafka_topics()


@pytest.fixture
def make_session_id(kafka_topics: TopicFactory) -> Callable[[str], str]:
    return kafka_topics

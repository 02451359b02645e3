"""pytest fixtures for real Apache Kafka brokers and throw-away topics.

Loaded through the ``pytest11`` entry point as soon as kafkalocal is installed
(``pytest -p no:kafkalocal`` turns it off). Every broker fixture is
session-scoped and starts on first use, so a run starts only the brokers its
tests ask for. A broker that cannot start makes the tests that need it ERROR
with the broker's log tail; nothing is ever skipped.

=============================  ==========  ==================================================
fixture                        scope       what
=============================  ==========  ==================================================
``kafka_bootstrap``            session     ``"host:port"``: ``$KAFKA_BOOTSTRAP_SERVERS`` if
                                           set (nothing started), else one local node with
                                           test settings
``kafka_cluster``              session     a 3-node :class:`~kafkalocal.KafkaCluster`
                                           (nodes can be killed and restarted)
``kafka_defaults_bootstrap``   session     ``"host:port"`` of one node with Kafka's own
                                           sample settings (``settings="defaults"``)
``kafka_secure``               session     a :class:`~kafkalocal.SecureKafka`: SASL/SCRAM,
                                           TLS, ACLs, a super user
``kafka_topics``               function    a :class:`~kafkalocal.TopicFactory`: fresh topic
                                           names, deleted after the test
=============================  ==========  ==================================================

``kafka_topics()`` names are deleted on every broker fixture the test uses
(``kafka_bootstrap`` when it uses none but that broker runs);
``kafka_topics.on(broker)`` names only on ``broker``. More brokers of your own:
:func:`kafka_cluster_fixture`.

Standard library and pytest only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from ._cluster import BOOTSTRAP_ENV, KafkaCluster, broker_from_env
from ._config import Settings
from ._secure import SecureKafka
from ._topics import Target, TopicFactory

__all__ = [
    "BROKER_FIXTURES",
    "kafka_bootstrap",
    "kafka_cluster",
    "kafka_cluster_fixture",
    "kafka_defaults_bootstrap",
    "kafka_secure",
    "kafka_topics",
]

#: The fixtures whose brokers ``kafka_topics()`` deletes its topics on, when a test uses them.
BROKER_FIXTURES = ("kafka_bootstrap", "kafka_cluster", "kafka_defaults_bootstrap", "kafka_secure")

_bootstrap_key = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP_SERVERS`` if set, else a local 1-node broker (test settings).

    Test settings: no automatic topic creation, no initial rebalance delay, internal
    topics with replication factor 1.
    """
    with broker_from_env() as bootstrap:
        request.config.stash[_bootstrap_key] = bootstrap
        yield bootstrap
        del request.config.stash[_bootstrap_key]


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A local 3-node KRaft cluster (test settings, replication 3, min ISR 2), always our own.

    Tests may kill, stop and restart its nodes; leave them all running at the end.
    """
    with KafkaCluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_defaults_bootstrap() -> Iterator[str]:
    """``"host:port"`` of a local 1-node broker with Kafka's default settings as users have them.

    Only the settings of Kafka's sample KRaft ``server.properties`` (see
    ``kafkalocal.SAMPLE_SETTINGS``): topics are created automatically, with one
    partition; consumer groups wait ``group.initial.rebalance.delay.ms`` (3 s) for
    their first rebalance; ``__consumer_offsets`` has 50 partitions.
    """
    with KafkaCluster(nodes=1, settings="defaults") as cluster:
        yield cluster.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_secure() -> Iterator[SecureKafka]:
    """A local 1-node broker secured as production has it (see :class:`~kafkalocal.SecureKafka`).

    SASL_SSL and SASL_PLAINTEXT listeners (SCRAM-SHA-512/256), a SASL_SSL listener
    whose certificate names another host, StandardAuthorizer without
    allow-everyone, super user ``admin``; ``add_user`` and ``allow`` manage
    users and prefixed ACLs.
    """
    with SecureKafka() as kafka:
        yield kafka


@pytest.fixture
def kafka_topics(request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Fresh, unique, legal topic names for this test; every one is deleted afterwards.

    Example::

        def test_orders(kafka_bootstrap, kafka_topics):
            topic = kafka_topics("orders")  # test-orders-orders-1a2b3c4d
            ...

        def test_acl(kafka_secure, kafka_topics):
            topic = kafka_topics.on(kafka_secure)(prefix="tenant-a.")

    A deletion that fails makes the test ERROR at teardown.
    """
    used = [
        request.getfixturevalue(name) for name in BROKER_FIXTURES if name in request.fixturenames
    ]

    def default_targets() -> Sequence[Target]:
        if used:
            return used
        running = request.config.stash.get(_bootstrap_key, "")
        external = os.environ.get(BOOTSTRAP_ENV, "").strip()
        return [running or external] if running or external else []

    factory = TopicFactory(request.node.name, default_targets)
    yield factory
    factory.cleanup()


def kafka_cluster_fixture(
    nodes: int = 1,
    *,
    settings: Settings = "test",
    version: str | None = None,
    scope: Any = "session",
    **options: Any,
) -> Callable[..., Any]:
    """Return a fixture that starts its own :class:`~kafkalocal.KafkaCluster` on first use.

    Like ``pytest-postgresql``'s ``factories``: assign the result to a module-level
    name in a ``conftest.py``, and that name is the fixture.

    Example::

        from kafkalocal.pytest_plugin import kafka_cluster_fixture

        kafka_39 = kafka_cluster_fixture(version="3.9.1")
        kafka_plain_defaults = kafka_cluster_fixture(nodes=3, settings="defaults")

    Args:
        nodes: how many nodes.
        settings: ``"test"`` or ``"defaults"``.
        version: Kafka release; default ``$KAFKA_VERSION`` or the pinned one.
        scope: the fixture's pytest scope.
        **options: more keyword arguments of ``KafkaCluster`` (``heap``, timeouts).
    """

    @pytest.fixture(scope=scope)
    def cluster() -> Iterator[KafkaCluster]:
        with KafkaCluster(nodes, version, settings=settings, **options) as started:
            yield started

    return cluster

"""kafkalocal: real Apache Kafka (KRaft) for development and tests, without Docker.

Standard library only. Needs Java 17+ and Maven; the broker jars come from Maven
Central once and are cached per user (``$KAFKALOCAL_CACHE_DIR``, default
``~/.cache/kafkalocal/<version>``). Its pytest plugin (``kafkalocal.pytest_plugin``,
loaded through the ``pytest11`` entry point) provides broker and topic fixtures.

Example:
    >>> from kafkalocal import KafkaCluster
    >>> with KafkaCluster(nodes=1) as cluster:  # doctest: +SKIP
    ...     print(cluster.bootstrap_servers)
    127.0.0.1:23456

``KafkaCluster(nodes=3)`` can kill and restart single nodes,
``KafkaCluster(settings="defaults")`` runs Kafka's own sample settings, and
``SecureKafka()`` has SASL/SCRAM, TLS and ACLs.

Command line: ``python -m kafkalocal resolve | run [--nodes 1|3] | exec -- CMD``.
"""

from __future__ import annotations

from ._admin import AclBinding
from ._cluster import BOOTSTRAP_ENV, KafkaCluster, broker_from_env
from ._config import SAMPLE_SETTINGS
from ._errors import KafkaAdminError, KafkaStartError
from ._maven import CACHE_ENV, cache_root, resolve_kafka
from ._secure import LISTENERS, WRONG_HOSTNAME, SecureKafka
from ._topics import TopicFactory, delete_topics
from ._versions import DEFAULT_KAFKA_VERSION, VERSION_ENV, kafka_version
from ._wire import Endpoint, Security

__all__ = [
    "BOOTSTRAP_ENV",
    "CACHE_ENV",
    "DEFAULT_KAFKA_VERSION",
    "LISTENERS",
    "SAMPLE_SETTINGS",
    "VERSION_ENV",
    "WRONG_HOSTNAME",
    "AclBinding",
    "Endpoint",
    "KafkaAdminError",
    "KafkaCluster",
    "KafkaStartError",
    "SecureKafka",
    "Security",
    "TopicFactory",
    "broker_from_env",
    "cache_root",
    "delete_topics",
    "kafka_version",
    "resolve_kafka",
]

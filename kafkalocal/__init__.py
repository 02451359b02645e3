"""kafkalocal: real Apache Kafka (KRaft) for development and tests, without Docker.

Dev tooling of aiokafka-history, not shipped in its wheel. Needs Java 17+ and
Maven; the broker jars come from Maven Central once and are cached outside the
repository (``$KAFKALOCAL_CACHE_DIR``, default ``~/.cache/aiokafka-history/kafka``).

Example:
    >>> from kafkalocal import KafkaCluster
    >>> with KafkaCluster(nodes=1) as cluster:  # doctest: +SKIP
    ...     print(cluster.bootstrap_servers)
    127.0.0.1:23456

Command line: ``python -m kafkalocal resolve | run [--nodes 1|3] | exec -- CMD``.
"""

from __future__ import annotations

from ._cluster import BOOTSTRAP_ENV, KafkaCluster, broker_from_env
from ._errors import KafkaStartError
from ._maven import CACHE_ENV, cache_root, resolve_kafka
from ._versions import DEFAULT_KAFKA_VERSION, VERSION_ENV, kafka_version

__all__ = [
    "BOOTSTRAP_ENV",
    "CACHE_ENV",
    "DEFAULT_KAFKA_VERSION",
    "VERSION_ENV",
    "KafkaCluster",
    "KafkaStartError",
    "broker_from_env",
    "cache_root",
    "kafka_version",
    "resolve_kafka",
]

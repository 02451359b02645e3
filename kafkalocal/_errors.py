"""The one exception kafkalocal raises.

Exception tree::

    RuntimeError
    └── KafkaStartError   jars, storage format, JVM start or readiness failed
"""

from __future__ import annotations

__all__ = ["KafkaStartError"]


class KafkaStartError(RuntimeError):
    """Kafka could not be resolved, formatted, started or reached in time.

    The message says what failed and ends with the tail of the relevant log
    (Maven's output, the storage tool's output or the broker's log), so a test
    ERROR or the CLI's output is enough to diagnose it.
    """

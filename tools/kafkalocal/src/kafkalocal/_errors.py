"""The exceptions kafkalocal raises.

Exception tree::

    RuntimeError
    ├── KafkaStartError   jars, certificates, storage format, JVM start or readiness failed
    └── KafkaAdminError   an admin request (topics, ACLs, SCRAM users) failed or was refused
"""

from __future__ import annotations

__all__ = ["KafkaAdminError", "KafkaStartError"]


class KafkaStartError(RuntimeError):
    """Kafka could not be resolved, formatted, started or reached in time.

    The message says what failed and ends with the tail of the relevant log
    (Maven's output, the storage tool's output or the broker's log), so a test
    ERROR or the CLI's output is enough to diagnose it.
    """


class KafkaAdminError(RuntimeError):
    """An admin request to a running broker failed or was refused.

    The message names the request, the item (topic, user, ACL) and Kafka's error
    code and message; it never contains a password.
    """

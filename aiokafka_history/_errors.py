"""The exceptions of aiokafka-history.

Every exception the package raises on purpose derives from :class:`KafkaHistoryError`::

    KafkaHistoryError
    ├── ConfigurationError (also ValueError)      bad constructor arguments
    │   └── InvalidSessionIdError                 a session id that cannot name a topic
    ├── HistoryClosedError (also RuntimeError)    use after close()
    ├── EventLoopError (also RuntimeError)        an object used from the wrong event loop
    ├── InvalidMessageError (also ValueError)     a message that cannot be stored
    ├── RecordDecodeError                         a record that is not a chat message
    ├── BrokerUnavailableError                    the cluster could not be reached
    │   └── AuthenticationError                   SASL or TLS refused the connection
    └── KafkaOperationError                       Kafka refused or failed an operation
        ├── SessionWriteError                     a write that was not fully acknowledged
        ├── SessionReadError                      a read that failed or timed out
        │   └── ConsumerGroupConflictError        the position's group has joined members
        ├── TopicAdminError                       creating, clearing or deleting a topic failed
        └── NotAuthorizedError                    an ACL denied the operation

Errors from aiokafka are translated at the boundary: the original exception is chained as
``__cause__`` and the message names the session and topic, never a payload or a secret.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConsumerGroupConflictError",
    "EventLoopError",
    "HistoryClosedError",
    "InvalidMessageError",
    "InvalidSessionIdError",
    "KafkaHistoryError",
    "KafkaOperationError",
    "NotAuthorizedError",
    "RecordDecodeError",
    "SessionReadError",
    "SessionWriteError",
    "TopicAdminError",
]


class KafkaHistoryError(Exception):
    """Base class of every error raised by aiokafka-history."""


class ConfigurationError(KafkaHistoryError, ValueError):
    """An argument breaks a rule; the message states the rule and the fix."""


class InvalidSessionIdError(ConfigurationError):
    """A session id that cannot be used as (part of) a Kafka topic name."""


class InvalidMessageError(KafkaHistoryError, ValueError):
    """A message cannot be stored (not JSON-encodable, or over the record size limit).

    Raised before anything of the call is sent: a write is all or nothing.
    """


class HistoryClosedError(KafkaHistoryError, RuntimeError):
    """The history or client was used after it was closed."""


class EventLoopError(KafkaHistoryError, RuntimeError):
    """An object was used from an event loop it cannot serve (e.g. one already closed)."""


class RecordDecodeError(KafkaHistoryError):
    """A record in the session's topic is not a serialized LangChain message."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class BrokerUnavailableError(KafkaHistoryError):
    """Connecting to the cluster failed (unreachable, timed out); nothing was done."""


class AuthenticationError(BrokerUnavailableError):
    """The cluster refused the connection: wrong SASL credentials or mechanism, or TLS.

    The message says which (``authentication failed`` or ``TLS handshake failed``) and never
    contains the password.
    """


class KafkaOperationError(KafkaHistoryError):
    """Kafka failed or refused an operation on a session's topic."""

    def __init__(self, message: str, *, session_id: str, topic: str) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.topic = topic


class SessionWriteError(KafkaOperationError):
    """Not every message of a write was acknowledged.

    ``acknowledged`` counts the leading messages of the call that Kafka did acknowledge
    (they are stored and will be read back). ``indeterminate`` tells what happened to the
    others: False, they were not written; True, the outcome is unknown (the call timed out or
    the connection broke after sending), so they may or may not appear in the session later.
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str,
        topic: str,
        acknowledged: int,
        indeterminate: bool = False,
    ) -> None:
        super().__init__(message, session_id=session_id, topic=topic)
        self.acknowledged = acknowledged
        self.indeterminate = indeterminate


class SessionReadError(KafkaOperationError):
    """A read failed, or could not catch up with the log within ``read_timeout``.

    A failed read never moves the last consumed position: the next read returns the same
    messages.
    """


class ConsumerGroupConflictError(SessionReadError):
    """The group holding the last consumed position has joined members.

    Another consumer (e.g. langchain_community's, which joins the group named after the
    topic) owns the group, so Kafka refuses position updates from outside it. Nothing was
    lost: the position did not move. Pass another ``consumer_group``, or stop that consumer.
    """


class TopicAdminError(KafkaOperationError):
    """Creating, describing, clearing or deleting a session's topic failed."""


class NotAuthorizedError(KafkaOperationError):
    """An ACL denied the operation on the session's topic or group ("not authorized")."""

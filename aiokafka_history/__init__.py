"""asyncio-native LangChain chat message histories stored in Apache Kafka.

``AsyncKafkaChatMessageHistory`` is the core; ``KafkaChatMessageHistory`` is the blocking
drop-in for langchain_community's class of the same name. ``AsyncKafkaHistoryClient`` /
``KafkaHistoryClient`` share one set of connections across many sessions.
"""

from __future__ import annotations

from ._client import AsyncKafkaHistoryClient
from ._config import DEFAULT_TTL_MS, KafkaOptions, KafkaSettings, TopicSettings
from ._errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigurationError,
    ConsumerGroupConflictError,
    EventLoopError,
    HistoryClosedError,
    InvalidMessageError,
    InvalidSessionIdError,
    KafkaHistoryError,
    KafkaOperationError,
    NotAuthorizedError,
    RecordDecodeError,
    SessionReadError,
    SessionWriteError,
    TopicAdminError,
)
from ._history import AsyncKafkaChatMessageHistory, MessagesMode, StartPosition
from ._migrate import copy_sessions
from ._naming import TopicNaming
from ._sqlite_view import LocalView, SqliteView
from ._sync import KafkaChatMessageHistory, KafkaHistoryClient
from ._tail import BlockingMessageTail, MessageTail, ProxyMessageTail

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TTL_MS",
    "AsyncKafkaChatMessageHistory",
    "AsyncKafkaHistoryClient",
    "AuthenticationError",
    "BlockingMessageTail",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConsumerGroupConflictError",
    "EventLoopError",
    "HistoryClosedError",
    "InvalidMessageError",
    "InvalidSessionIdError",
    "KafkaChatMessageHistory",
    "KafkaHistoryClient",
    "KafkaHistoryError",
    "KafkaOperationError",
    "KafkaOptions",
    "KafkaSettings",
    "LocalView",
    "MessageTail",
    "MessagesMode",
    "NotAuthorizedError",
    "ProxyMessageTail",
    "RecordDecodeError",
    "SessionReadError",
    "SessionWriteError",
    "SqliteView",
    "StartPosition",
    "TopicAdminError",
    "TopicNaming",
    "TopicSettings",
    "__version__",
    "copy_sessions",
]

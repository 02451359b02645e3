"""Connection settings passed through to aiokafka, with secrets kept out of ``repr``.

Pure data and validation, no I/O.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_TTL_MS",
    "KafkaOptions",
    "KafkaSettings",
    "TopicSettings",
    "check_kafka_options",
    "topic_settings",
]

DEFAULT_TTL_MS = 7 * 24 * 60 * 60 * 1000  # 7 days, as langchain_community
_HOUR_MS = 3_600_000
_DAY_MS = 24 * 60 * 60 * 1000

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


class KafkaOptions(TypedDict, total=False):
    """aiokafka connection options every constructor accepts as keyword arguments.

    They are passed to aiokafka's producer, consumer and admin client as they are; see
    :class:`KafkaSettings` for the defaults.
    """

    client_id: str
    security_protocol: SecurityProtocol
    ssl_context: ssl.SSLContext | None
    sasl_mechanism: SaslMechanism
    sasl_plain_username: str | None
    sasl_plain_password: str | None
    sasl_kerberos_service_name: str
    sasl_kerberos_domain_name: str | None
    sasl_oauth_token_provider: Any
    request_timeout_ms: int
    metadata_max_age_ms: int
    connections_max_idle_ms: int
    retry_backoff_ms: int


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the cluster; handed to every aiokafka object the client creates.

    ``sasl_plain_password`` and ``sasl_oauth_token_provider`` never appear in ``repr``.

    Raises:
        ConfigurationError: an empty bootstrap address, an unknown security protocol or SASL
            mechanism, or a non-positive timeout.
    """

    bootstrap_servers: str | list[str]
    client_id: str = "aiokafka-history"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    sasl_kerberos_service_name: str = "kafka"
    sasl_kerberos_domain_name: str | None = None
    sasl_oauth_token_provider: Any = field(default=None, repr=False)
    request_timeout_ms: int = 30_000
    metadata_max_age_ms: int = 300_000
    connections_max_idle_ms: int = 540_000
    retry_backoff_ms: int = 100

    def __post_init__(self) -> None:
        servers = (
            [self.bootstrap_servers]
            if isinstance(self.bootstrap_servers, str)
            else list(self.bootstrap_servers)
        )
        if not any(part.strip() for entry in servers for part in entry.split(",")):
            raise ConfigurationError(
                "bootstrap_servers is empty: pass 'host:port' or a comma-separated list of them"
            )
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise ConfigurationError(
                f"security_protocol must be one of {', '.join(_SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_mechanism not in _SASL_MECHANISMS:
            raise ConfigurationError(
                f"sasl_mechanism must be one of {', '.join(_SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.security_protocol in ("SSL", "SASL_SSL") and self.ssl_context is None:
            raise ConfigurationError(
                f"security_protocol={self.security_protocol} needs ssl_context: pass an "
                "ssl.SSLContext, e.g. ssl.create_default_context(cafile=...)"
            )
        for name in (
            "request_timeout_ms",
            "metadata_max_age_ms",
            "connections_max_idle_ms",
            "retry_backoff_ms",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be a positive number of milliseconds")

    def client_kwargs(self) -> Mapping[str, Any]:
        """The keyword arguments shared by aiokafka's producer, consumer and admin client."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "ssl_context": self.ssl_context,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "sasl_kerberos_service_name": self.sasl_kerberos_service_name,
            "sasl_kerberos_domain_name": self.sasl_kerberos_domain_name,
            "sasl_oauth_token_provider": self.sasl_oauth_token_provider,
            "request_timeout_ms": self.request_timeout_ms,
            "metadata_max_age_ms": self.metadata_max_age_ms,
            "connections_max_idle_ms": self.connections_max_idle_ms,
            "retry_backoff_ms": self.retry_backoff_ms,
        }


def check_kafka_options(options: Mapping[str, Any], *, of: Callable[..., object]) -> None:
    """Refuse a name in ``**kafka_options`` that is no :class:`KafkaOptions` key.

    ``of`` is what the options were passed to (a class's ``__init__``, a factory): its own
    keyword names are suggested too. A misspelt option must neither pass silently nor
    surface as a ``TypeError`` about an internal class. Only names are shown, never values
    (one may be a password).

    Raises:
        ConfigurationError: names the unknown option and the closest known name.
    """
    known = KafkaOptions.__optional_keys__
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, [*sorted(known), *_keywords(of)], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(
                f"unknown option {name!r}{hint}: keyword arguments are the constructor's "
                f"parameters and these aiokafka connection settings: {', '.join(sorted(known))}"
            )


def _keywords(of: Callable[..., object]) -> list[str]:
    """The names ``of`` takes by keyword (not ``self``/``cls``, not ``*args``/``**kwargs``)."""
    return [
        p.name
        for p in inspect.signature(of).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "cls")
    ]


@dataclass(frozen=True)
class TopicSettings:
    """How a session's topic is created on first use (an existing topic is left as it is).

    Raises:
        ConfigurationError: a value Kafka would refuse.
    """

    ttl_ms: int = DEFAULT_TTL_MS
    replication_factor: int = 1
    partition: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.ttl_ms, bool) or not isinstance(self.ttl_ms, int):
            raise ConfigurationError("ttl_ms must be an int (milliseconds, or -1 for no expiry)")
        if self.ttl_ms != -1 and self.ttl_ms <= 0:
            raise ConfigurationError(
                f"ttl_ms must be a positive number of milliseconds or -1 for no expiry, "
                f"got {self.ttl_ms}"
            )
        if isinstance(self.partition, bool) or not isinstance(self.partition, int):
            raise ConfigurationError("partition must be an int >= 1")
        if self.partition < 1:
            raise ConfigurationError(f"partition must be >= 1, got {self.partition}")
        if isinstance(self.replication_factor, bool) or not isinstance(
            self.replication_factor, int
        ):
            raise ConfigurationError("replication_factor must be an int >= 1")
        if self.replication_factor < 1:
            raise ConfigurationError(
                f"replication_factor must be >= 1, got {self.replication_factor}"
            )

    def topic_configs(self) -> dict[str, str]:
        """The topic-level configs set at creation.

        ``segment.ms`` is at most ``ttl_ms`` (and a day), so retention can act on closed
        segments: a message is gone at most ``ttl_ms + min(ttl_ms, 1 day)`` plus the broker's
        ``log.retention.check.interval.ms`` (5 minutes by default) after it was written. With
        two or more replicas a write needs ``min(2, replication_factor)`` in-sync replicas and
        an out-of-sync replica never becomes leader (no acknowledged write is lost).
        """
        configs = {"retention.ms": str(self.ttl_ms), "cleanup.policy": "delete"}
        if self.ttl_ms != -1:
            configs["segment.ms"] = str(min(self.ttl_ms, _DAY_MS))
        if self.replication_factor >= 2:
            configs["min.insync.replicas"] = str(min(2, self.replication_factor))
            configs["unclean.leader.election.enable"] = "false"
        return configs

    def shared_topic_configs(self) -> dict[str, str]:
        """The configs of a shared topic: compacted and, unless ``ttl_ms == -1``, retained.

        A cleared or deleted session's records are tombstoned; the log cleaner removes them
        once their segment is closed (``segment.ms``, 1 hour at most) and at most
        ``max.compaction.lag.ms`` (1 hour) later, plus the cleaner's backoff. The tombstones
        (keys only: the session id, no content) stay ``delete.retention.ms`` (1 day) so that a
        view that was offline catches them; a view offline longer is rebuilt.
        """
        configs = self.topic_configs()
        configs["cleanup.policy"] = "compact" if self.ttl_ms == -1 else "compact,delete"
        configs["segment.ms"] = str(min(int(configs.get("segment.ms", _HOUR_MS)), _HOUR_MS))
        configs["max.compaction.lag.ms"] = str(_HOUR_MS)
        configs["delete.retention.ms"] = str(_DAY_MS)
        return configs


@functools.lru_cache(maxsize=64, typed=True)
def topic_settings(ttl_ms: int, replication_factor: int, partition: int) -> TopicSettings:
    """Validated topic settings, one shared object per distinct set of values."""
    return TopicSettings(ttl_ms, replication_factor, partition)

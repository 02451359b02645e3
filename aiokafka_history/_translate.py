"""The one place where aiokafka's errors become this package's. No I/O.

:func:`translating` wraps an operation on a session (or on the cluster) and re-raises what
aiokafka, the network or a deadline raised as an exception of :mod:`._errors`, chaining the
original as ``__cause__``. aiokafka's errors carry no payloads or secrets, only error names
and broker messages, so the chain is safe to log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from aiokafka import errors as kafka_errors

from ._errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConsumerGroupConflictError,
    HistoryClosedError,
    KafkaHistoryError,
    KafkaOperationError,
    NotAuthorizedError,
    SessionReadError,
    TopicAdminError,
)

__all__ = [
    "Subject",
    "connect_error",
    "describe",
    "is_access_error",
    "is_not_authorized",
    "translating",
]

Action = Literal["read", "admin", "connect"]

_NOT_AUTHORIZED = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.DelegationTokenAuthorizationFailed,
)
_AUTHENTICATION = (
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
)
_GROUP_OWNED = (
    kafka_errors.UnknownMemberIdError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.RebalanceInProgressError,
)
_UNREACHABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.KafkaTimeoutError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Subject:
    """What an operation is about: a session and its topic ("" for the whole cluster)."""

    session_id: str
    topic: str

    def __str__(self) -> str:
        if not self.topic:
            return "the cluster"
        return f"session {self.session_id!r} (topic {self.topic!r})"


def describe(exc: BaseException) -> str:
    """``Name: message`` of an aiokafka error, or the name alone for anything else."""
    if isinstance(exc, kafka_errors.KafkaError):
        text = str(exc)
        name = type(exc).__name__
        return name if not text or text == name else f"{name}: {text}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return type(exc).__name__


def is_not_authorized(exc: BaseException) -> bool:
    """Whether ``exc`` is Kafka refusing an operation by ACL."""
    return isinstance(exc, _NOT_AUTHORIZED)


def is_access_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an ACL refusal, a failed authentication or a TLS failure."""
    return isinstance(exc, _NOT_AUTHORIZED + _AUTHENTICATION + (ssl.SSLError,))


def _operation_error(
    action: Action, subject: Subject, what: str, exc: BaseException
) -> KafkaHistoryError:
    if isinstance(exc, _NOT_AUTHORIZED):
        return NotAuthorizedError(
            f"{what} {subject} failed: not authorized ({type(exc).__name__}); the principal "
            "needs an ACL on the topic (and on the consumer group for positions)",
            session_id=subject.session_id,
            topic=subject.topic,
        )
    if isinstance(exc, (*_AUTHENTICATION, ssl.SSLError)):
        kind = "TLS handshake failed" if isinstance(exc, ssl.SSLError) else "authentication failed"
        return AuthenticationError(f"{kind}: {describe(exc)}")
    if action == "connect":
        return BrokerUnavailableError(f"{what}: {describe(exc)}")
    if isinstance(exc, _GROUP_OWNED):
        return ConsumerGroupConflictError(
            f"{what} {subject}: its consumer group has joined members ({type(exc).__name__}), "
            "so Kafka refuses to move the last consumed position from outside the group. "
            "Nothing was lost: the position did not move. Pass another consumer_group, or "
            "stop the consumer that joined the group",
            session_id=subject.session_id,
            topic=subject.topic,
        )
    cls: type[KafkaOperationError] = SessionReadError if action == "read" else TopicAdminError
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return cls(
            f"{what} {subject} did not finish in time",
            session_id=subject.session_id,
            topic=subject.topic,
        )
    return cls(
        f"{what} {subject} failed: {describe(exc)}",
        session_id=subject.session_id,
        topic=subject.topic,
    )


@contextlib.contextmanager
def translating(action: Action, subject: Subject, what: str) -> Iterator[None]:
    """Re-raise aiokafka's errors, network errors and timeouts as this package's.

    ``what`` is the verb phrase of the operation ("reading", "clearing", ...). Errors of
    this package pass through unchanged; so do cancellation and programming errors.

    Example::

        with translating("read", Subject("s1", "chat.s1"), "reading"):
            await transport.read(...)
    """
    try:
        yield
    except KafkaHistoryError:
        raise
    except (kafka_errors.ConsumerStoppedError, kafka_errors.ProducerClosed) as exc:
        # The client was closed (by another task or thread) while this call was in flight.
        raise HistoryClosedError(f"{what} {subject}: the client was closed meanwhile") from exc
    except (kafka_errors.KafkaError, TimeoutError, asyncio.TimeoutError, ssl.SSLError) as exc:
        raise _operation_error(action, subject, what, exc) from exc
    except _UNREACHABLE as exc:  # pragma: no cover - OSErrors aiokafka did not wrap
        raise _operation_error(action, subject, what, exc) from exc


def connect_error(
    cause: BaseException | None, address: object, security_protocol: str
) -> KafkaHistoryError:
    """The error for a failed connection, from what a probe connection met (``cause``)."""
    where = f"could not connect to Kafka at {address!r}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or "certificate verify failed"
        return AuthenticationError(
            f"{where}: TLS handshake failed: the broker's certificate was refused ({reason}); "
            "check ssl_context (its CA file) and that the address matches the certificate"
        )
    if isinstance(cause, _AUTHENTICATION):
        return AuthenticationError(
            f"{where}: authentication failed ({describe(cause)}); check sasl_mechanism, "
            "sasl_plain_username and the password"
        )
    if isinstance(cause, ssl.SSLError | kafka_errors.KafkaConnectionError | ConnectionError) and (
        not isinstance(cause, ConnectionRefusedError)
    ):
        return BrokerUnavailableError(
            f"{where}: the broker closed the connection during the handshake "
            f"({describe(cause)}); check that security_protocol ({security_protocol}) and "
            "sasl_mechanism match the listener at that address"
        )
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else "unreachable"
    return BrokerUnavailableError(f"{where}: {detail}")

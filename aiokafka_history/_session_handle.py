"""What a history is before it reads or writes: one session's log, its client, its lifecycle.

:class:`SessionHandle` owns (or shares) the engine, exposes the session's identity from its
log, and implements ``close`` / ``aclose``, the leak warning and the hop of the blocking
twins onto the client's loop. The LangChain history builds its methods on top of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._config import KafkaOptions, TopicSettings, check_kafka_options
from ._engine import Engine
from ._errors import ConfigurationError, HistoryClosedError
from ._home_loop import call_on_loop
from ._lifecycle import Closeable
from ._session_log import SessionLog

__all__ = ["SessionHandle", "own_or_shared"]

T = TypeVar("T")


def own_or_shared(
    client: Engine | None,
    bootstrap_servers: str | list[str] | None,
    topic_prefix: str,
    encode_session_ids: bool,
    kafka_options: KafkaOptions,
    of: Callable[..., object],
) -> tuple[Engine, bool]:
    """The shared ``client``, or a private one made from the options: (engine, owned).

    Raises:
        ConfigurationError: neither was given, or both, or an unknown option (suggesting the
            closest keyword name of ``of``, what the caller's user called).
    """
    check_kafka_options(kafka_options, of=of)
    if client is None:
        if bootstrap_servers is None:
            raise ConfigurationError("pass bootstrap_servers, or client= to share one")
        engine = Engine(
            bootstrap_servers,
            topic_prefix=topic_prefix,
            encode_session_ids=encode_session_ids,
            **kafka_options,
        )
        return engine, True
    if bootstrap_servers is not None or kafka_options or topic_prefix or encode_session_ids:
        raise ConfigurationError(
            "connection and naming options belong to the shared client: pass either "
            "client= or bootstrap_servers and options, not both"
        )
    return client, False


class SessionHandle(Closeable):
    """One session's log on a client that it owns (closing it on close) or shares."""

    _log: SessionLog
    _client: Engine
    _owns_client: bool
    _closed: bool = True  # quiet __del__ until attached

    def _attach(
        self,
        client: Engine,
        owns: bool,
        session_id: str,
        settings: TopicSettings,
        consumer_group: str | None,
    ) -> None:
        """Open the session's log on ``client``; an owned client is closed if that fails."""
        try:
            self._log = client.session_log(session_id, settings, consumer_group)
        except BaseException:
            if owns:
                client.close()
            raise
        self._client = client
        self._owns_client = owns
        self._closed = False

    # Read from the session log rather than copied: an idle history stays small.
    @property
    def session_id(self) -> str:
        """The session."""
        return self._log.session_id

    @property
    def topic(self) -> str:
        """The topic holding the session."""
        return self._log.topic

    @property
    def consumer_group(self) -> str:
        """The group whose committed offsets are the last consumed position."""
        return self._log.consumer_group

    @property
    def topic_settings(self) -> TopicSettings:
        """How the session's topic is created on first use."""
        return self._log.settings

    @property
    def client(self) -> Engine:
        """The client whose connections this history uses (a private one if none was given)."""
        return self._client

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` or :meth:`close` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Release the history (and its private client); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    def close(self) -> None:
        """Blocking twin of :meth:`aclose`; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._closed or not self._owns_client:
            return
        if self._client.connected:
            _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)

    def _hop(self, method: str, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        self._check_open()
        name = f"{type(self).__name__}.{method}"
        return call_on_loop(self._client.home_loop, fn, *args, method=name)

    def _check_open(self) -> None:
        if self._closed or self._client.closed:
            raise HistoryClosedError(
                f"history of session {self.session_id!r} is closed; create a new one"
            )

"""The engine: settings, naming, the storage layout and the connections of one event loop.

The public client (``_client.py``) and every history stand on it; it knows session logs,
not histories. It belongs to the event loop it is first used in (its home loop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import Callable

from aiokafka.errors import KafkaConnectionError, KafkaError
from typing_extensions import Unpack

from ._config import KafkaOptions, KafkaSettings, TopicSettings, check_kafka_options
from ._errors import ConfigurationError, EventLoopError, HistoryClosedError
from ._lifecycle import Closeable
from ._naming import TopicNaming, check_topic_name
from ._read_cache import DEFAULT_READ_CACHE_BYTES, check_cache_size
from ._session_log import BadRecords, OnBadRecord, SessionLayout, SessionLog
from ._shared_log import SharedLayout
from ._sqlite_view import LocalView, open_view
from ._topic_log import LogTimeouts, TopicLayout
from ._translate import connect_error
from ._transport import Transport

__all__ = ["DEFAULT_SHARED_PARTITIONS", "Engine"]

#: Partitions of a shared topic created without ``shared_topic_settings``.
DEFAULT_SHARED_PARTITIONS = 12

logger = logging.getLogger("aiokafka_history")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Engine(Closeable):
    """One set of Kafka connections, shared by any number of session logs.

    See :class:`~aiokafka_history.AsyncKafkaHistoryClient` (the public client built on it)
    for the arguments. Not thread-safe: use it from its home loop; the blocking methods of
    the histories hop onto that loop from other threads.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic_prefix: str = "",
        encode_session_ids: bool = False,
        max_readers: int = 4,
        read_timeout: float = 30.0,
        write_timeout: float = 30.0,
        admin_timeout: float = 30.0,
        close_timeout: float = 10.0,
        on_bad_record: OnBadRecord = "skip",
        shared_topic: str | None = None,
        shared_topic_settings: TopicSettings | None = None,
        view: str | os.PathLike[str] | LocalView | None = None,
        read_cache_bytes: int = DEFAULT_READ_CACHE_BYTES,
        **kafka_options: Unpack[KafkaOptions],
    ) -> None:
        self._closed = True  # until fully constructed, so __del__ stays quiet on errors
        read_cache = check_cache_size(read_cache_bytes)
        if isinstance(max_readers, bool) or not isinstance(max_readers, int) or max_readers < 1:
            raise ConfigurationError(f"max_readers must be an int >= 1, got {max_readers!r}")
        check_kafka_options(kafka_options, of=type(self).__init__)
        self.settings = KafkaSettings(bootstrap_servers, **kafka_options)
        self.naming = TopicNaming(topic_prefix, encode_session_ids)
        self.timeouts = LogTimeouts(
            read=read_timeout,
            write=write_timeout,
            admin=admin_timeout,
            close=close_timeout,
            metadata_max_age=self.settings.metadata_max_age_ms / 1000,
        )
        self._bad_records = BadRecords(on_bad_record)
        self._layout: SessionLayout
        if shared_topic is None:
            if shared_topic_settings is not None or view is not None:
                raise ConfigurationError(
                    "shared_topic_settings and view are options of the shared layout: "
                    "pass shared_topic too"
                )
            self._layout = TopicLayout(
                self._connect,
                self.naming,
                self.timeouts,
                self._bad_records,
                read_cache=read_cache,
            )
        else:
            if topic_prefix or encode_session_ids:
                raise ConfigurationError(
                    "topic_prefix and encode_session_ids name per-session topics; with "
                    "shared_topic every session lives in that one topic"
                )
            check_topic_name(shared_topic, "shared_topic")
            if shared_topic_settings is None:
                shared_topic_settings = TopicSettings(partition=DEFAULT_SHARED_PARTITIONS)
            elif not isinstance(shared_topic_settings, TopicSettings):
                raise ConfigurationError("shared_topic_settings must be a TopicSettings")
            self._layout = SharedLayout(
                self._connect,
                shared_topic,
                shared_topic_settings,
                open_view(view),
                self.timeouts,
                self._bad_records,
                read_cache=read_cache,
            )
        self._max_readers = max_readers
        self._extra_layouts: dict[str, SharedLayout] = {}
        self._transport: Transport | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} bootstrap_servers={self.settings.bootstrap_servers!r}"
            f" topic_prefix={self.naming.prefix!r}>"
        )

    @property
    def read_timeout(self) -> float:
        """Seconds a read may take before :class:`SessionReadError`."""
        return self.timeouts.read

    @property
    def on_bad_record(self) -> OnBadRecord:
        """What reads do with a record that is not a chat message: ``skip`` or ``raise``."""
        return self._bad_records.policy

    @property
    def home_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this engine belongs to, once it was used."""
        return self._home

    @property
    def connected(self) -> bool:
        """Whether connections are (or are being) opened."""
        return not self._closed and self._transport is not None

    def sockets(self) -> int:
        """How many broker connections are open (diagnostics)."""
        return 0 if self._transport is None else self._transport.sockets()

    def session_log(
        self, session_id: str, settings: TopicSettings, consumer_group: str | None
    ) -> SessionLog:
        """The storage of ``session_id`` (validates the id; no I/O)."""
        self._check_open()
        return self._layout.log(session_id, settings=settings, consumer_group=consumer_group)

    def shared_layout(
        self,
        topic: str,
        settings: TopicSettings | None = None,
        view: str | os.PathLike[str] | LocalView | None = None,
    ) -> SharedLayout:
        """The shared layout of ``topic`` on this engine's connections (no I/O).

        For stores of another kind than chat messages (the LangGraph saver) that keep their
        records in a shared topic of their own. Made once per topic, with its own follower
        and view, and closed with the engine; the engine's own shared topic returns its
        layout (``settings`` and ``view`` must then be left out).

        Raises:
            ConfigurationError: a bad topic name, or options for a layout that exists.
            HistoryClosedError: the engine is closed.
        """
        self._check_open()
        check_topic_name(topic, "topic")
        existing = self._extra_layouts.get(topic)
        own = self._layout
        if existing is None and isinstance(own, SharedLayout) and own.topic == topic:
            existing = own
        if existing is not None:
            if settings is not None or view is not None:
                raise ConfigurationError(
                    f"the shared topic {topic!r} is already in use on this client: leave out "
                    "its settings and view (they were given when it was first used)"
                )
            return existing
        if settings is None:
            settings = TopicSettings(partition=DEFAULT_SHARED_PARTITIONS)
        elif not isinstance(settings, TopicSettings):
            raise ConfigurationError("topic settings must be a TopicSettings")
        layout = SharedLayout(
            self._connect, topic, settings, open_view(view), self.timeouts, self._bad_records
        )
        self._extra_layouts[topic] = layout
        return layout

    def _close_layouts_now(self) -> None:
        self._layout.close_now()
        for layout in self._extra_layouts.values():
            layout.close_now()

    # -- sessions ---------------------------------------------------------------------------

    async def list_sessions(self) -> list[str]:
        """The sessions this client can see (those under its prefix), sorted.

        Raises:
            TopicAdminError: the cluster could not be asked within ``admin_timeout``.
        """
        self._check_open()
        return await self._layout.sessions()

    async def session_exists(self, session_id: str) -> bool:
        """Whether ``session_id`` has stored state (without creating any)."""
        self._check_open()
        return await self._layout.exists(session_id)

    async def delete_session(self, session_id: str) -> bool:
        """Delete ``session_id``'s topic for good; False when it did not exist.

        Kafka deletes topics asynchronously: the name may be unusable for a moment.
        """
        self._check_open()
        return await self._layout.delete(session_id)

    # -- connections ------------------------------------------------------------------------

    async def _connect(self) -> Transport:
        """The connected transport of the home loop, created on first use."""
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._home is None:
            self._home = loop
        elif self._home is not loop:
            state = "has been closed" if self._home.is_closed() else "is another one"
            raise EventLoopError(
                f"{type(self).__name__} belongs to the event loop it was first used in, "
                f"which {state}; create one client per event loop (e.g. with "
                "`async with` inside it), or use the blocking KafkaHistoryClient"
            )
        transport = self._transport
        if transport is None:
            settings = self.settings
            transport = self._transport = Transport(
                settings.client_kwargs(),
                max_readers=self._max_readers,
                backoff=settings.retry_backoff_ms / 1000,
                close_timeout=self.timeouts.close,
            )
        try:
            await transport.start()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError) and self._transport is transport:
                # Not connected: forget it, so the next call tries afresh.
                self._transport = None
                await transport.close()
            if isinstance(exc, KafkaError | OSError | asyncio.TimeoutError):
                raise await self._connect_error(transport, exc) from exc
            raise
        return transport

    async def _connect_error(self, transport: Transport, exc: BaseException) -> Exception:
        settings = self.settings
        cause: BaseException | None = exc
        if isinstance(exc, KafkaConnectionError):  # aiokafka logged the reason; ask again
            cause = await transport.diagnose(settings.request_timeout_ms / 1000) or exc
        return connect_error(cause, settings.bootstrap_servers, settings.security_protocol)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` or :meth:`close` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Close every connection within ``close_timeout``; idempotent.

        Later use raises :class:`HistoryClosedError`.
        """
        self._closed = True
        transport, self._transport = self._transport, None
        if transport is None:
            if self._closing is not None:
                await asyncio.shield(self._closing)
            self._close_layouts_now()
            return
        running = _running_loop()
        if transport.loop is running:
            await self._close_on_home(transport)
        elif transport.loop.is_running():
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._close_on_home(transport), transport.loop)
            )
        else:
            self._close_layouts_now()

    async def _close_on_home(self, transport: Transport) -> None:
        try:
            await self._layout.aclose()
            for layout in list(self._extra_layouts.values()):
                await layout.aclose()
        finally:
            await transport.close()

    def close(self) -> None:
        """Blocking twin of :meth:`aclose`; idempotent.

        Called on the home loop's own thread it cannot wait: it starts the close there and
        returns (prefer ``await aclose()``). From another thread it waits for the home loop
        to close the connections.
        """
        if self._closed and self._transport is None:
            return
        transport = self._transport
        if transport is None or transport.loop.is_closed():
            self._closed = True
            self._transport = None
            self._close_layouts_now()
            return
        if transport.loop is _running_loop():
            self._closed = True
            self._transport = None
            self._closing = transport.loop.create_task(self._close_on_home(transport))
            return
        if transport.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.aclose(), transport.loop)
            future.result(3 * self.timeouts.close + 5)
            return
        self._closed = True
        self._transport = None
        self._close_layouts_now()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_closed", True):
            return
        if self._transport is not None:
            _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryClosedError(f"{type(self).__name__} is closed")

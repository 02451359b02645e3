"""The shared asyncio client: owns the Kafka connections, hands out per-session histories."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aiokafka.errors import KafkaError
from typing_extensions import Unpack

from ._config import DEFAULT_TTL_MS, KafkaOptions, KafkaSettings, TopicSettings
from ._errors import (
    BrokerUnavailableError,
    ConfigurationError,
    EventLoopError,
    HistoryClosedError,
    TopicAdminError,
)
from ._lifecycle import Closeable
from ._naming import TopicNaming
from ._portal import LoopThread
from ._transport import TopicMissingError, Transport

if TYPE_CHECKING:
    from ._history import AsyncKafkaChatMessageHistory, MessagesMode

__all__ = ["AsyncKafkaHistoryClient"]

T = TypeVar("T")

_TOPIC_APPEAR_TIMEOUT = 30.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncKafkaHistoryClient(Closeable):
    """One set of Kafka connections shared by any number of session histories.

    A history made by :meth:`history` is a cheap view (no connections of its own), so an
    application with 10,000 sessions still holds one producer, one admin client and at most
    ``max_readers`` reader consumers per event loop. Nothing connects before the first call.

    The client belongs to the event loop it is first used in. Its blocking methods (and the
    blocking methods of its histories) also work from plain threads and from inside a running
    loop: they run on that loop when it runs in another thread, and otherwise on a private
    loop thread the client starts on demand.

    Not thread-safe for its async methods (use them from its loop); the blocking methods may be
    called from any thread.

    Example::

        async with AsyncKafkaHistoryClient("localhost:9092") as client:
            history = client.history("session-1", messages_mode="full")
            await history.aadd_user_message("hi!")
            print(await history.aget_messages())

    Args:
        bootstrap_servers: ``"host:port"``, comma-separated, or a list of them.
        topic_prefix: put before every session's topic name (also what :meth:`list_sessions`
            looks for).
        encode_session_ids: accept any session id and encode it into a legal topic name.
        max_readers: how many reads may run at once per event loop (each uses one consumer).
        read_timeout: seconds a read without ``max_time_sec`` may take to catch up with the log
            before :class:`SessionReadError` is raised.
        **kafka_options: aiokafka connection settings (security, SASL, timeouts, client id).

    Raises:
        ConfigurationError: an option breaks a rule (the message says which).
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic_prefix: str = "",
        encode_session_ids: bool = False,
        max_readers: int = 4,
        read_timeout: float = 60.0,
        **kafka_options: Unpack[KafkaOptions],
    ) -> None:
        self._closed = True  # until fully constructed, so __del__ stays quiet on errors
        if max_readers < 1:
            raise ConfigurationError(f"max_readers must be >= 1, got {max_readers}")
        if read_timeout <= 0:
            raise ConfigurationError(f"read_timeout must be > 0 seconds, got {read_timeout}")
        self.settings = KafkaSettings(bootstrap_servers, **kafka_options)
        self.naming = TopicNaming(topic_prefix, encode_session_ids)
        self.read_timeout = read_timeout
        self._max_readers = max_readers
        self._home: Transport | None = None
        self._bridge: LoopThread | None = None
        self._bridge_lock = threading.Lock()
        self._bridge_transport: Transport | None = None
        self._partitions: dict[str, list[int]] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} bootstrap_servers={self.settings.bootstrap_servers!r}"
            f" topic_prefix={self.naming.prefix!r}>"
        )

    # -- histories --------------------------------------------------------------------------

    def history(
        self,
        session_id: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        replication_factor: int = 1,
        partition: int = 1,
        messages_mode: MessagesMode = "last_consumed",
        consumer_group: str | None = None,
    ) -> AsyncKafkaChatMessageHistory:
        """A history of ``session_id`` that uses this client's connections.

        Closing the history does not close the client. See
        :class:`AsyncKafkaChatMessageHistory` for the arguments.

        Raises:
            InvalidSessionIdError: ``session_id`` cannot name a topic.
            HistoryClosedError: the client is closed.
        """
        from ._history import AsyncKafkaChatMessageHistory

        self._check_open()
        return AsyncKafkaChatMessageHistory._view(
            self,
            session_id,
            _topic_settings(ttl_ms, replication_factor, partition),
            messages_mode=messages_mode,
            consumer_group=consumer_group,
        )

    # -- sessions ---------------------------------------------------------------------------

    async def list_sessions(self) -> list[str]:
        """The sessions whose topics this client can see (those under its prefix), sorted.

        Raises:
            TopicAdminError: the cluster could not be asked.
        """
        transport = await self._transport()
        try:
            topics = await transport.list_topics()
        except KafkaError as exc:
            raise TopicAdminError(
                f"listing topics failed: {type(exc).__name__}", session_id="", topic=""
            ) from exc
        found = (self.naming.session_for(t) for t in topics)
        return sorted(s for s in found if s is not None)

    async def session_exists(self, session_id: str) -> bool:
        """Whether ``session_id`` has a topic (without creating one)."""
        topic = self.naming.topic_for(session_id)
        transport = await self._transport()
        try:
            await transport.partitions(topic)
        except TopicMissingError:
            return False
        except KafkaError as exc:
            raise TopicAdminError(
                f"describing topic {topic!r} failed: {type(exc).__name__}",
                session_id=session_id,
                topic=topic,
            ) from exc
        return True

    async def delete_session(self, session_id: str) -> bool:
        """Delete ``session_id``'s topic for good; False when it did not exist.

        Kafka deletes topics asynchronously: the name may be unusable for a moment.
        """
        topic = self.naming.topic_for(session_id)
        transport = await self._transport()
        self._partitions.pop(topic, None)
        try:
            return await transport.delete_topic(topic)
        except KafkaError as exc:
            raise TopicAdminError(
                f"deleting topic {topic!r} failed: {type(exc).__name__}",
                session_id=session_id,
                topic=topic,
            ) from exc

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` or :meth:`close` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Close every connection; idempotent. Later use raises :class:`HistoryClosedError`."""
        if self._closed:
            return
        self._closed = True
        home, self._home = self._home, None
        if home is not None:
            running = _running_loop()
            if home.loop is running:
                await home.close()
            elif home.loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(home.close(), home.loop))
        with self._bridge_lock:
            has_bridge = self._bridge is not None
        if has_bridge:
            await asyncio.to_thread(self._stop_bridge)

    def close(self) -> None:
        """Blocking twin of :meth:`aclose`; idempotent.

        Called inside the client's own running loop it cannot wait, so it schedules the close
        on that loop and returns; prefer ``await aclose()`` there.
        """
        if self._closed:
            return
        home = self._home
        if home is not None and home.loop is _running_loop():
            self._closed = True
            self._home = None
            task = home.loop.create_task(home.close())
            _background.add(task)
            task.add_done_callback(_background.discard)
            self._stop_bridge()
            return
        if home is not None and home.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), home.loop).result()
            return
        self._closed = True
        self._home = None
        self._stop_bridge()

    @property
    def _holds_connections(self) -> bool:
        return not self._closed and (self._home is not None or self._bridge_transport is not None)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_closed", True):
            return
        if self._holds_connections:
            _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)

    def _stop_bridge(self) -> None:
        with self._bridge_lock:  # _closed is set: no bridge can be started after this
            bridge, self._bridge = self._bridge, None
        transport, self._bridge_transport = self._bridge_transport, None
        if bridge is None:
            return
        if transport is not None:
            with contextlib.suppress(EventLoopError):
                bridge.call(transport.close)
        bridge.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryClosedError(f"{type(self).__name__} is closed")

    # -- plumbing used by the histories -----------------------------------------------------

    async def _transport(self) -> Transport:
        """The transport of the running loop, created and connected on first use."""
        self._check_open()
        loop = asyncio.get_running_loop()
        bridge = self._bridge
        if bridge is not None and bridge.loop is loop:
            if self._bridge_transport is None:
                self._bridge_transport = Transport(self.settings, max_readers=self._max_readers)
            transport = self._bridge_transport
        else:
            if self._home is None:
                self._home = Transport(self.settings, max_readers=self._max_readers)
            elif self._home.loop is not loop:
                state = "has been closed" if self._home.loop.is_closed() else "is another one"
                raise EventLoopError(
                    f"{type(self).__name__} belongs to the event loop it was first used in, "
                    f"which {state}; create one client per event loop (e.g. with "
                    "`async with` inside it), or use the blocking KafkaHistoryClient"
                )
            transport = self._home
        try:
            await self._connect(transport)
        except BaseException:
            # Not connected: forget it, so the next call tries afresh.
            if transport is self._home:
                self._home = None
            elif transport is self._bridge_transport:
                self._bridge_transport = None
            await transport.close()
            raise
        return transport

    async def _connect(self, transport: Transport) -> None:
        try:
            await transport.start()
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"could not connect to Kafka at {self.settings.bootstrap_servers!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _blocking(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run the coroutine function from blocking code, on a loop that can serve it.

        The home loop serves the call when it runs in another thread and picks the call up
        within half a second. A home loop that does not is overloaded or, worse, its thread
        is blocked waiting for this very thread (LangChain runs history callbacks in worker
        threads): the call then goes to the client's private loop thread instead, so it can
        never deadlock.
        """
        self._check_open()
        home = self._home
        running = _running_loop()
        if home is not None and home.loop.is_running() and home.loop is not running:
            served, result = _try_on_loop(home.loop, fn, args, _HOME_PICKUP_TIMEOUT)
            if served:
                return cast(T, result)
        with self._bridge_lock:
            self._check_open()
            if self._bridge is None:
                self._bridge = LoopThread("aiokafka-history-bridge")
            bridge = self._bridge
        return bridge.call(fn, *args)

    async def _topic_partitions(
        self, transport: Transport, session_id: str, topic: str, spec: TopicSettings
    ) -> list[int]:
        """The topic's partitions, creating the topic on first use."""
        cached = self._partitions.get(topic)
        if cached is not None:
            return cached
        try:
            try:
                parts = await transport.partitions(topic)
            except TopicMissingError:
                await transport.create_topic(
                    topic,
                    partitions=spec.partition,
                    replication_factor=spec.replication_factor,
                    configs=spec.topic_configs(),
                )
                parts = await self._wait_for_topic(transport, topic)
        except (KafkaError, TopicMissingError) as exc:
            raise TopicAdminError(
                f"creating or describing topic {topic!r} of session {session_id!r} failed: "
                f"{type(exc).__name__}: {exc}",
                session_id=session_id,
                topic=topic,
            ) from exc
        self._partitions[topic] = parts
        return parts

    def _forget_topic(self, topic: str) -> None:
        self._partitions.pop(topic, None)

    async def _wait_for_topic(self, transport: Transport, topic: str) -> list[int]:
        deadline = time.monotonic() + _TOPIC_APPEAR_TIMEOUT
        while True:
            try:
                return await transport.partitions(topic)
            except TopicMissingError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


_background: set[asyncio.Task[None]] = set()


@functools.lru_cache(maxsize=64, typed=True)
def _topic_settings(ttl_ms: int, replication_factor: int, partition: int) -> TopicSettings:
    """Validated topic settings, shared by the histories that use the same values."""
    return TopicSettings(ttl_ms, replication_factor, partition)


_HOME_PICKUP_TIMEOUT = 0.5


def _try_on_loop(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., Coroutine[Any, Any, T]],
    args: tuple[Any, ...],
    pickup_timeout: float,
) -> tuple[bool, T | None]:
    """Run ``fn(*args)`` on ``loop`` if the loop starts it within ``pickup_timeout``.

    Returns ``(False, None)`` when the loop did not start it in time; the call is then
    abandoned before it did anything, so the caller may run it elsewhere.
    """
    lock = threading.Lock()
    claimed = threading.Event()
    abandoned = False

    async def claim() -> T | None:
        with lock:
            if abandoned:
                return None
            claimed.set()
        return await fn(*args)

    future = asyncio.run_coroutine_threadsafe(claim(), loop)
    if not claimed.wait(pickup_timeout):
        with lock:
            if not claimed.is_set():
                abandoned = True
        if abandoned:
            future.cancel()
            return False, None
    return True, future.result()

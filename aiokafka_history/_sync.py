"""Blocking facades: the async core run on an event loop in a background thread.

Each method is one line that hands the core's coroutine to the loop thread (anyio's blocking
portal). The ``a``-prefixed methods await the same core from any other event loop without
blocking it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from typing_extensions import Unpack

from ._client import AsyncKafkaHistoryClient
from ._config import DEFAULT_TTL_MS, KafkaOptions, TopicSettings, check_kafka_options
from ._errors import ConfigurationError, EventLoopError, HistoryClosedError
from ._history import MessagesMode
from ._lifecycle import Closeable
from ._portal import LoopThread
from ._read_cache import DEFAULT_READ_CACHE_BYTES
from ._session_log import OnBadRecord, StartPosition
from ._sqlite_view import LocalView
from ._tail import BlockingMessageTail, ProxyMessageTail

__all__ = ["KafkaChatMessageHistory", "KafkaHistoryClient"]

T = TypeVar("T")
logger = logging.getLogger("aiokafka_history")


class KafkaHistoryClient(Closeable):
    """Blocking twin of :class:`AsyncKafkaHistoryClient`: shared connections for many sessions.

    Its connections live on an event loop in a background thread named
    ``aiokafka-history-N``, started on first use and stopped by :meth:`close` — or, if the
    client is dropped without closing, when it is garbage collected (with a
    ``ResourceWarning``). Thread-safe: any number of threads may use it and its histories at
    once, and so may coroutines on other event loops through the ``a``-prefixed methods.

    Example::

        with KafkaHistoryClient("localhost:9092") as client:
            history = client.history("session-1")
            history.add_user_message("hi!")
            print(history.messages)

    Arguments and errors are those of :class:`AsyncKafkaHistoryClient`.
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
        self._closed = True
        self._core = AsyncKafkaHistoryClient(
            bootstrap_servers,
            topic_prefix=topic_prefix,
            encode_session_ids=encode_session_ids,
            max_readers=max_readers,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            admin_timeout=admin_timeout,
            close_timeout=close_timeout,
            on_bad_record=on_bad_record,
            shared_topic=shared_topic,
            shared_topic_settings=shared_topic_settings,
            view=view,
            read_cache_bytes=read_cache_bytes,
            **kafka_options,
        )
        self._thread = LoopThread("aiokafka-history")
        self._release = weakref.finalize(self, _release, self._thread, self._core)
        self._closed = False

    def __repr__(self) -> str:
        return repr(self._core).replace(type(self._core).__name__, type(self).__name__, 1)

    @property
    def core(self) -> AsyncKafkaHistoryClient:
        """The async client running on this client's loop thread."""
        return self._core

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def connected(self) -> bool:
        """Whether its loop thread (and so, possibly, connections) is running."""
        return not self._closed and self._thread.started

    def history(
        self,
        session_id: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        replication_factor: int = 1,
        partition: int = 1,
        messages_mode: MessagesMode = "last_consumed",
        consumer_group: str | None = None,
    ) -> KafkaChatMessageHistory:
        """A blocking history of ``session_id`` on this client's connections."""
        return KafkaChatMessageHistory(
            session_id,
            ttl_ms=ttl_ms,
            replication_factor=replication_factor,
            partition=partition,
            client=self,
            messages_mode=messages_mode,
            consumer_group=consumer_group,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryClosedError(f"{type(self).__name__} is closed")

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run the coroutine function ``fn(*args)`` on the loop thread and return its result.

        Raises:
            HistoryClosedError: the client is closed.
            EventLoopError: called from the loop thread itself.
        """
        self._check_open()
        try:
            return self._thread.call(fn, *args)
        except (concurrent.futures.CancelledError, EventLoopError):
            if self._closed:  # closed by another thread while this call was on its way
                raise HistoryClosedError(f"{type(self).__name__} was closed") from None
            raise

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
        """Start ``fn(*args)`` on the loop thread and return its future at once.

        For callers that must not lose a result when they stop waiting (cancel-safe tails).
        """
        self._check_open()
        return self._thread.submit(fn, *args)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`call`, awaited from another event loop without blocking it."""
        self._check_open()
        try:
            return await self._thread.run(fn, *args)
        except (concurrent.futures.CancelledError, EventLoopError):
            if self._closed:
                raise HistoryClosedError(f"{type(self).__name__} was closed") from None
            raise

    def list_sessions(self) -> list[str]:
        """Blocking twin of :meth:`AsyncKafkaHistoryClient.list_sessions`."""
        return self.call(self._core.list_sessions)

    def session_exists(self, session_id: str) -> bool:
        """Blocking twin of :meth:`AsyncKafkaHistoryClient.session_exists`."""
        return self.call(self._core.session_exists, session_id)

    def delete_session(self, session_id: str) -> bool:
        """Blocking twin of :meth:`AsyncKafkaHistoryClient.delete_session`."""
        return self.call(self._core.delete_session, session_id)

    async def alist_sessions(self) -> list[str]:
        """:meth:`list_sessions` awaited from another event loop."""
        return await self.acall(self._core.list_sessions)

    async def asession_exists(self, session_id: str) -> bool:
        """:meth:`session_exists` awaited from another event loop."""
        return await self.acall(self._core.session_exists, session_id)

    async def adelete_session(self, session_id: str) -> bool:
        """:meth:`delete_session` awaited from another event loop."""
        return await self.acall(self._core.delete_session, session_id)

    def close(self) -> None:
        """Close the connections and stop the loop thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()

    async def aclose(self) -> None:
        """:meth:`close` awaited from another event loop."""
        if self._closed:
            return
        self._closed = True
        self._release.detach()
        if self._thread.started:
            await self._thread.run(self._core.aclose)
        else:
            self._core.close()
        await asyncio.to_thread(self._thread.stop)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_closed", True) or not self._thread.started:
            return
        _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)


def _release(thread: LoopThread, core: AsyncKafkaHistoryClient) -> None:
    """Close ``core`` on ``thread`` and stop it: at close(), or when the owner is collected.

    Never references the owner, so a dropped client can be collected. Collected on its own
    loop thread (a reference cycle freed there), it hands the work to a short-lived thread.
    """
    if thread.in_thread():
        threading.Thread(target=_release, args=(thread, core), daemon=True).start()
        return
    if thread.started:
        try:
            thread.call(core.aclose)
        except Exception as exc:
            logger.warning("closing the Kafka connections failed: %s", type(exc).__name__)
    else:
        core.close()
    thread.stop()


class KafkaChatMessageHistory(Closeable, BaseChatMessageHistory):
    """Drop-in, blocking replacement for langchain_community's ``KafkaChatMessageHistory``.

    Same constructor (``session_id, bootstrap_servers, ttl_ms, replication_factor,
    partition``) and methods, without its defects: reads return as soon as they caught up,
    messages come back in write order, the constructor does no I/O, failed writes raise, and
    security settings pass through. ``partition`` defaults to 1 (langchain_community: 3).
    ``max_message_count`` defaults to None, no cap (langchain_community: 5).

    Runs :class:`AsyncKafkaChatMessageHistory` on its client's loop thread. Thread-safe; works
    from threads that run an event loop too, and its ``a``-prefixed methods await without
    blocking the caller's loop. See :class:`AsyncKafkaChatMessageHistory` for the arguments,
    semantics and errors.

    Example::

        history = KafkaChatMessageHistory("chat-message-history-kafka", "localhost:9092")
        history.add_user_message("hi!")
        history.add_ai_message("whats up?")
        history.messages  # [HumanMessage('hi!'), AIMessage('whats up?')]
        history.close()
    """

    def __init__(
        self,
        session_id: str,
        bootstrap_servers: str | list[str] | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        replication_factor: int = 1,
        partition: int = 1,
        *,
        client: KafkaHistoryClient | None = None,
        messages_mode: MessagesMode = "last_consumed",
        consumer_group: str | None = None,
        topic_prefix: str = "",
        encode_session_ids: bool = False,
        **kafka_options: Unpack[KafkaOptions],
    ) -> None:
        self._closed = True
        self._owns_client = client is None
        check_kafka_options(kafka_options, of=type(self).__init__)
        if client is None:
            if bootstrap_servers is None:
                raise ConfigurationError("pass bootstrap_servers, or client= to share one")
            client = KafkaHistoryClient(
                bootstrap_servers,
                topic_prefix=topic_prefix,
                encode_session_ids=encode_session_ids,
                **kafka_options,
            )
        elif bootstrap_servers is not None or kafka_options or topic_prefix or encode_session_ids:
            raise ConfigurationError(
                "connection and naming options belong to the shared client: pass either "
                "client= or bootstrap_servers and options, not both"
            )
        try:
            self._core = client.core.history(
                session_id,
                ttl_ms=ttl_ms,
                replication_factor=replication_factor,
                partition=partition,
                messages_mode=messages_mode,
                consumer_group=consumer_group,
            )
        except BaseException:
            if self._owns_client:
                client.close()
            raise
        self._client = client
        self.session_id = session_id
        self.topic = self._core.topic
        self.consumer_group = self._core.consumer_group
        self.messages_mode = messages_mode
        self._closed = False

    def __repr__(self) -> str:
        return repr(self._core).replace(type(self._core).__name__, type(self).__name__, 1)

    @property
    def client(self) -> KafkaHistoryClient:
        """The client whose connections this history uses."""
        return self._client

    @property
    def topic_settings(self) -> TopicSettings:
        """How the session's topic is created on first use (the shared topic's, if shared)."""
        return self._core.topic_settings

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed or self._client.closed:
            raise HistoryClosedError(
                f"history of session {self.session_id!r} is closed; create a new one"
            )

    def __str__(self) -> str:
        """The repr: LangChain's ``__str__`` would read (and consume) the session."""
        return repr(self)

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._check_open()
        return self._client.call(fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._check_open()
        return await self._client.acall(fn, *args)

    # -- blocking ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The messages of ``messages_mode``: new since the last read (default), or all."""
        return self._call(self._core.aget_messages)

    def get_messages(self) -> list[BaseMessage]:
        """Same as :attr:`messages`, as a method."""
        return self._call(self._core.aget_messages)

    def messages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """See :meth:`AsyncKafkaChatMessageHistory.amessages_from_beginning`."""
        return self._call(self._core.amessages_from_beginning, max_message_count, max_time_sec)

    def messages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """See :meth:`AsyncKafkaChatMessageHistory.amessages_from_latest`."""
        return self._call(self._core.amessages_from_latest, max_message_count, max_time_sec)

    def messages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """See :meth:`AsyncKafkaChatMessageHistory.amessages_from_last_consumed`."""
        return self._call(self._core.amessages_from_last_consumed, max_message_count, max_time_sec)

    def last_messages(self, count: int) -> list[BaseMessage]:
        """See :meth:`AsyncKafkaChatMessageHistory.alast_messages`."""
        return self._call(self._core.alast_messages, count)

    def timed_messages(self) -> list[tuple[datetime, BaseMessage]]:
        """See :meth:`AsyncKafkaChatMessageHistory.atimed_messages`."""
        return self._call(self._core.atimed_messages)

    def tail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> BlockingMessageTail:
        """See :meth:`AsyncKafkaChatMessageHistory.tail`."""
        tail = self._core.atail(start, commit=commit, idle_timeout=idle_timeout)
        return BlockingMessageTail(tail, self._call)

    def atail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> ProxyMessageTail:
        """:meth:`tail` as an async iterator, awaited without blocking the caller's loop."""
        tail = self._core.atail(start, commit=commit, idle_timeout=idle_timeout)
        return ProxyMessageTail(tail, self._client.submit)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """See :meth:`AsyncKafkaChatMessageHistory.aadd_messages`."""
        self._call(self._core.aadd_messages, messages)

    def add_message(self, message: BaseMessage) -> None:
        """See :meth:`AsyncKafkaChatMessageHistory.aadd_message`."""
        self._call(self._core.aadd_message, message)

    def add_user_message(self, message: HumanMessage | str) -> None:
        """See :meth:`AsyncKafkaChatMessageHistory.aadd_user_message`."""
        self._call(self._core.aadd_user_message, message)

    def add_ai_message(self, message: AIMessage | str) -> None:
        """See :meth:`AsyncKafkaChatMessageHistory.aadd_ai_message`."""
        self._call(self._core.aadd_ai_message, message)

    def clear(self) -> None:
        """See :meth:`AsyncKafkaChatMessageHistory.aclear`."""
        self._call(self._core.aclear)

    def delete_topic(self) -> bool:
        """See :meth:`AsyncKafkaChatMessageHistory.adelete_topic`."""
        return self._call(self._core.adelete_topic)

    def close(self) -> None:
        """Release the history (and its private client); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._core.close()
        if self._owns_client:
            self._client.close()

    # -- awaitable from another loop --------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        """:attr:`messages`, awaited without blocking the caller's event loop."""
        return await self._run(self._core.aget_messages)

    async def amessages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """:meth:`messages_from_beginning`, awaited."""
        return await self._run(self._core.amessages_from_beginning, max_message_count, max_time_sec)

    async def amessages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """:meth:`messages_from_latest`, awaited."""
        return await self._run(self._core.amessages_from_latest, max_message_count, max_time_sec)

    async def amessages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """:meth:`messages_from_last_consumed`, awaited."""
        return await self._run(
            self._core.amessages_from_last_consumed, max_message_count, max_time_sec
        )

    async def alast_messages(self, count: int) -> list[BaseMessage]:
        """:meth:`last_messages`, awaited."""
        return await self._run(self._core.alast_messages, count)

    async def atimed_messages(self) -> list[tuple[datetime, BaseMessage]]:
        """:meth:`timed_messages`, awaited."""
        return await self._run(self._core.atimed_messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """:meth:`add_messages`, awaited."""
        await self._run(self._core.aadd_messages, messages)

    async def aadd_message(self, message: BaseMessage) -> None:
        """:meth:`add_message`, awaited."""
        await self._run(self._core.aadd_message, message)

    async def aadd_user_message(self, message: HumanMessage | str) -> None:
        """:meth:`add_user_message`, awaited."""
        await self._run(self._core.aadd_user_message, message)

    async def aadd_ai_message(self, message: AIMessage | str) -> None:
        """:meth:`add_ai_message`, awaited."""
        await self._run(self._core.aadd_ai_message, message)

    async def aclear(self) -> None:
        """:meth:`clear`, awaited."""
        await self._run(self._core.aclear)

    async def adelete_topic(self) -> bool:
        """:meth:`delete_topic`, awaited."""
        return await self._run(self._core.adelete_topic)

    async def aclose(self) -> None:
        """:meth:`close`, awaited."""
        if self._closed:
            return
        self._closed = True
        self._core.close()
        if self._owns_client:
            await self._client.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # The private client releases its thread and connections when it is collected.
        if getattr(self, "_closed", True) or not self._owns_client or not self._client.connected:
            return
        _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)

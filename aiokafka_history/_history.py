"""The asyncio-native chat message history of one session."""

from __future__ import annotations

import asyncio
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Literal

from aiokafka.errors import KafkaError
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from typing_extensions import Self, Unpack

from ._client import AsyncKafkaHistoryClient
from ._codec import decode_message, encode_messages, encode_session_key
from ._config import DEFAULT_TTL_MS, KafkaOptions, TopicSettings
from ._errors import (
    ConfigurationError,
    HistoryClosedError,
    SessionReadError,
    SessionWriteError,
    TopicAdminError,
)
from ._lifecycle import Closeable
from ._ordering import merge_in_write_order, take_first
from ._tail import BlockingMessageTail, MessageTail
from ._transport import Record, Transport

__all__ = ["AsyncKafkaChatMessageHistory", "MessagesMode", "StartPosition"]

MessagesMode = Literal["last_consumed", "full"]
"""What ``messages`` / ``aget_messages()`` return: new messages since the last read, or all."""

StartPosition = Literal["beginning", "latest", "last_consumed"]

_MODES = ("last_consumed", "full")


def _check_limits(max_message_count: int | None, max_time_sec: float | None) -> None:
    if max_message_count is not None and (
        isinstance(max_message_count, bool)
        or not isinstance(max_message_count, int)
        or max_message_count < 0
    ):
        raise ConfigurationError(
            f"max_message_count must be None (no cap) or an int >= 0, got {max_message_count!r}"
        )
    if max_time_sec is not None and not max_time_sec > 0:
        raise ConfigurationError(
            f"max_time_sec must be None (no limit) or > 0 seconds, got {max_time_sec!r}"
        )


class AsyncKafkaChatMessageHistory(Closeable, BaseChatMessageHistory):
    """A LangChain chat message history stored in a Kafka topic, asyncio-native.

    The topic is named after the session (see ``topic_prefix`` / ``encode_session_ids``) and
    created on first use with ``partition`` partitions, ``replication_factor`` replicas and
    ``retention.ms = ttl_ms``; an existing topic is used as it is. Nothing touches the network
    before the first call. Records are keyed by the session id, written by an idempotent
    producer with ``acks=all``, and hold ``json.dumps(message_to_dict(m))`` exactly as
    langchain_community writes them, so both libraries read each other's topics.

    Reads return as soon as they have caught up with the end of the log as it was when the
    call began (or hold ``max_message_count`` messages, or ``max_time_sec`` passed), in write
    order, even on a multi-partition topic written without keys. The "last consumed" position
    is kept in Kafka as the committed offsets of a consumer group named after the topic (as
    langchain_community does), without joining that group: no rebalance, no waiting.

    ``messages_mode`` chooses what :attr:`messages` and :meth:`aget_messages` return:
    ``"last_consumed"`` (default, as langchain_community: only what is new since the last
    read, moving the position) or ``"full"`` (the whole history every time, moving nothing:
    what ``RunnableWithMessageHistory`` needs).

    The async methods are native; the blocking ones (``messages``, ``add_messages``,
    ``clear``, ...) also work, from plain threads and from inside a running event loop. Not
    thread-safe for the async methods: use them from one event loop.

    Example::

        async with AsyncKafkaChatMessageHistory("chat-1", "localhost:9092") as history:
            await history.aadd_user_message("hi!")
            await history.aadd_ai_message("whats up?")
            print(await history.aget_messages())

    Args:
        session_id: the session; its topic name unless ``topic_prefix`` / ``encode_session_ids``.
        bootstrap_servers: where the cluster is; leave out when ``client`` is given.
        ttl_ms: ``retention.ms`` of a topic this creates (default 7 days; -1 keeps forever).
        replication_factor: replicas of a topic this creates.
        partition: partitions of a topic this creates (default 1).
        client: share this client's connections instead of opening private ones; closing the
            history then leaves the client open.
        messages_mode: ``"last_consumed"`` or ``"full"``, see above.
        consumer_group: the group whose committed offsets hold the last consumed position
            (default: the topic name, as langchain_community).
        topic_prefix, encode_session_ids, **kafka_options: for the private client, see
            :class:`AsyncKafkaHistoryClient`.

    Raises:
        InvalidSessionIdError: the session id cannot name a topic (the rule is in the message).
        ConfigurationError: another argument breaks a rule.
    """

    def __init__(
        self,
        session_id: str,
        bootstrap_servers: str | list[str] | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        replication_factor: int = 1,
        partition: int = 1,
        *,
        client: AsyncKafkaHistoryClient | None = None,
        messages_mode: MessagesMode = "last_consumed",
        consumer_group: str | None = None,
        topic_prefix: str = "",
        encode_session_ids: bool = False,
        **kafka_options: Unpack[KafkaOptions],
    ) -> None:
        self._closed = True  # quiet __del__ if the constructor raises
        spec = TopicSettings(ttl_ms, replication_factor, partition)
        if client is None:
            if bootstrap_servers is None:
                raise ConfigurationError("pass bootstrap_servers, or client= to share one")
            client = AsyncKafkaHistoryClient(
                bootstrap_servers,
                topic_prefix=topic_prefix,
                encode_session_ids=encode_session_ids,
                **kafka_options,
            )
            owns = True
        else:
            if bootstrap_servers is not None or kafka_options or topic_prefix:
                raise ConfigurationError(
                    "connection options belong to the shared client: pass either client= or "
                    "bootstrap_servers and options, not both"
                )
            owns = False
        self._setup(client, owns, session_id, spec, messages_mode, consumer_group)

    @classmethod
    def _view(
        cls,
        client: AsyncKafkaHistoryClient,
        session_id: str,
        spec: TopicSettings,
        *,
        messages_mode: MessagesMode,
        consumer_group: str | None,
    ) -> Self:
        self = cls.__new__(cls)
        self._closed = True
        self._setup(client, False, session_id, spec, messages_mode, consumer_group)
        return self

    def _setup(
        self,
        client: AsyncKafkaHistoryClient,
        owns_client: bool,
        session_id: str,
        spec: TopicSettings,
        messages_mode: MessagesMode,
        consumer_group: str | None,
    ) -> None:
        if messages_mode not in _MODES:
            raise ConfigurationError(
                f"messages_mode must be one of {', '.join(_MODES)}, got {messages_mode!r}"
            )
        if consumer_group is not None and not consumer_group:
            raise ConfigurationError("consumer_group must be a non-empty string or None")
        self.session_id = session_id
        self.topic = client.naming.topic_for(session_id)
        self.consumer_group = consumer_group or self.topic
        self.messages_mode: MessagesMode = messages_mode
        self.topic_settings = spec
        self._client = client
        self._owns_client = owns_client
        self._key = encode_session_key(session_id)
        # Created on the first position-moving read: idle histories stay small.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] | None = (
            None
        )
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__}{state} session_id={self.session_id!r} "
            f"topic={self.topic!r} messages_mode={self.messages_mode!r}>"
        )

    @property
    def client(self) -> AsyncKafkaHistoryClient:
        """The client whose connections this history uses."""
        return self._client

    # -- reading ----------------------------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        """The messages of :attr:`messages_mode`: new since the last read, or the full history.

        Raises:
            SessionReadError: Kafka failed, or the log could not be read within the client's
                ``read_timeout``.
            RecordDecodeError: a record is not a serialized message.
        """
        if self.messages_mode == "full":
            return await self._read("beginning", None, None, commit=False)
        return await self.amessages_from_last_consumed()

    async def amessages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Read from the oldest stored message, and move the last consumed position.

        Args:
            max_message_count: return at most this many (None: no cap).
            max_time_sec: return what was read when this many seconds have passed (None: read
                until caught up, raising after the client's ``read_timeout``).
        """
        return await self._read("beginning", max_message_count, max_time_sec, commit=True)

    async def amessages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Move the last consumed position to the end of the history.

        Returns at once with an empty list (the limits are accepted for parity): the next
        :meth:`amessages_from_last_consumed` returns what is added from now on.
        """
        return await self._read("latest", max_message_count, max_time_sec, commit=True)

    async def amessages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Read what came after the last consumed position, and move the position past it.

        The position lives in Kafka, so a new process continues where the last one stopped.
        """
        return await self._read("last_consumed", max_message_count, max_time_sec, commit=True)

    async def _read(
        self,
        start: StartPosition,
        max_message_count: int | None,
        max_time_sec: float | None,
        *,
        commit: bool,
    ) -> list[BaseMessage]:
        _check_limits(max_message_count, max_time_sec)
        transport = await self._transport()
        if not commit:
            return await self._read_with(transport, start, max_message_count, max_time_sec, False)
        async with self._lock():
            return await self._read_with(transport, start, max_message_count, max_time_sec, True)

    async def _read_with(
        self,
        transport: Transport,
        start: StartPosition,
        max_message_count: int | None,
        max_time_sec: float | None,
        commit: bool,
    ) -> list[BaseMessage]:
        limit = max_time_sec if max_time_sec is not None else self._client.read_timeout
        deadline = time.monotonic() + limit
        parts = await self._partitions(transport)
        already: dict[int, int | None] = {}
        try:
            if start == "latest":
                ends = await transport.end_offsets(self.topic, parts)
                starts = dict(ends)
            elif start == "beginning":
                starts, ends = await transport.offsets_bounds(self.topic, parts)
            else:
                committed, ends = await asyncio.gather(
                    transport.committed(self.consumer_group, self.topic, parts),
                    transport.end_offsets(self.topic, parts),
                )
                # No position yet: from the beginning (offset 0 resets to the log start).
                starts = {p: min(committed[p] or 0, ends[p]) for p in parts}
                already = committed
            result = await transport.read(
                self.topic,
                starts,
                ends,
                max_per_partition=max_message_count,
                deadline=deadline,
            )
            if not result.caught_up and max_time_sec is None:
                raise self._timeout_error()
            records, positions = take_first(
                merge_in_write_order(result.records), max_message_count, starts
            )
            messages = [
                decode_message(r.value, topic=self.topic, partition=r.partition, offset=r.offset)
                for r in records
                if r.value is not None
            ]
            changed = {p: o for p, o in positions.items() if already.get(p) != o}
            if commit and changed:
                await transport.commit(self.consumer_group, self.topic, changed)
        except KafkaError as exc:
            raise self._read_error(exc) from exc
        return messages

    async def alast_messages(self, count: int) -> list[BaseMessage]:
        """The newest ``count`` messages, oldest first, without reading the whole log.

        Reads backwards from the end in growing windows (offsets may have gaps, so a window
        is widened until it holds ``count`` records or reaches the start). Moves no position:
        this is what keeps a long conversation's prompt small.

        Raises:
            ConfigurationError: ``count`` is not an int >= 0.
            SessionReadError: Kafka failed, or the read took longer than ``read_timeout``.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError(f"count must be an int >= 0, got {count!r}")
        if count == 0:
            return []
        transport = await self._transport()
        deadline = time.monotonic() + self._client.read_timeout
        parts = await self._partitions(transport)
        try:
            begins, ends = await transport.offsets_bounds(self.topic, parts)
            found: dict[int, list[Record]] = {}
            todo = {p: count for p in parts if ends[p] > begins[p]}
            while todo:
                starts = {p: max(begins[p], ends[p] - span) for p, span in todo.items()}
                result = await transport.read(
                    self.topic,
                    starts,
                    {p: ends[p] for p in todo},
                    max_per_partition=None,
                    deadline=deadline,
                )
                if not result.caught_up:
                    raise self._timeout_error()
                for p in list(todo):
                    found[p] = result.records[p]
                    if len(found[p]) >= count or starts[p] == begins[p]:
                        del todo[p]
                    else:
                        todo[p] *= 4
            newest = {p: records[-count:] for p, records in found.items()}
            records = merge_in_write_order(newest)[-count:]
            return [
                decode_message(r.value, topic=self.topic, partition=r.partition, offset=r.offset)
                for r in records
                if r.value is not None
            ]
        except KafkaError as exc:
            raise self._read_error(exc) from exc

    def atail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> MessageTail:
        """Follow the session live: an async iterator of messages as they are written.

        Example::

            async with history.atail("latest") as tail:
                async for message in tail:
                    print(message.content)

        Args:
            start: ``"latest"`` (what is written from now on), ``"beginning"`` (everything,
                then live) or ``"last_consumed"``.
            commit: move the last consumed position past each message handed out.
            idle_timeout: end the iteration after this many seconds without a message.
        """
        self._check_open()
        return MessageTail(self, start, commit=commit, idle_timeout=idle_timeout)

    # -- writing ----------------------------------------------------------------------------

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in order; returns once Kafka acknowledged every one.

        Raises:
            TypeError: an item is not a ``BaseMessage`` (nothing is written).
            SessionWriteError: not every message was acknowledged; ``acknowledged`` says how
                many leading messages were stored.
            TopicAdminError: the topic could not be created.
        """
        values = encode_messages(messages)
        if not values:
            return
        transport = await self._transport()
        await self._partitions(transport)
        acknowledged, error = await transport.produce(self.topic, self._key, values)
        if error is not None:
            raise SessionWriteError(
                f"only {acknowledged} of {len(values)} messages to session "
                f"{self.session_id!r} (topic {self.topic!r}) were acknowledged: "
                f"{type(error).__name__}: {error}",
                session_id=self.session_id,
                topic=self.topic,
                acknowledged=acknowledged,
            ) from error

    async def aadd_message(self, message: BaseMessage) -> None:
        """Append one message (see :meth:`aadd_messages`)."""
        await self.aadd_messages([message])

    async def aadd_user_message(self, message: HumanMessage | str) -> None:
        """Append a human message (a ``str`` becomes ``HumanMessage(content=...)``)."""
        await self.aadd_messages(
            [message if isinstance(message, HumanMessage) else HumanMessage(content=message)]
        )

    async def aadd_ai_message(self, message: AIMessage | str) -> None:
        """Append an AI message (a ``str`` becomes ``AIMessage(content=...)``)."""
        await self.aadd_messages(
            [message if isinstance(message, AIMessage) else AIMessage(content=message)]
        )

    # -- clearing ---------------------------------------------------------------------------

    async def aclear(self) -> None:
        """Empty the session at once; the topic and its settings stay.

        Uses Kafka's DeleteRecords up to the current end of every partition, so adding and
        reading work immediately afterwards.

        Raises:
            TopicAdminError: Kafka refused (e.g. a compacted topic).
        """
        transport = await self._transport()
        parts = await self._partitions(transport)
        try:
            ends = await transport.end_offsets(self.topic, parts)
            await transport.truncate(self.topic, ends)
        except KafkaError as exc:
            raise TopicAdminError(
                f"clearing session {self.session_id!r} (topic {self.topic!r}) failed: "
                f"{type(exc).__name__}: {exc}",
                session_id=self.session_id,
                topic=self.topic,
            ) from exc

    async def adelete_topic(self) -> bool:
        """Delete the session's topic for good; False when there was none.

        Kafka deletes topics asynchronously; using the session again creates a new topic
        once the deletion is done.
        """
        self._check_open()
        return await self._client.delete_session(self.session_id)

    # -- lifecycle --------------------------------------------------------------------------

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

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_closed", True) or not self._owns_client:
            return
        if self._client._holds_connections:
            _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)

    # -- blocking twins ---------------------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Blocking twin of :meth:`aget_messages`."""
        return self._client._blocking(self.aget_messages)

    def get_messages(self) -> list[BaseMessage]:
        """Blocking twin of :meth:`aget_messages`, as a method."""
        return self._client._blocking(self.aget_messages)

    def messages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_beginning`."""
        return self._client._blocking(
            self.amessages_from_beginning, max_message_count, max_time_sec
        )

    def messages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_latest`."""
        return self._client._blocking(self.amessages_from_latest, max_message_count, max_time_sec)

    def messages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_last_consumed`."""
        return self._client._blocking(
            self.amessages_from_last_consumed, max_message_count, max_time_sec
        )

    def last_messages(self, count: int) -> list[BaseMessage]:
        """Blocking twin of :meth:`alast_messages`."""
        return self._client._blocking(self.alast_messages, count)

    def tail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> BlockingMessageTail:
        """Blocking twin of :meth:`atail`: an iterator (and ``with`` block) of live messages."""
        return BlockingMessageTail(
            self.atail(start, commit=commit, idle_timeout=idle_timeout), self._client._blocking
        )

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Blocking twin of :meth:`aadd_messages`."""
        self._client._blocking(self.aadd_messages, messages)

    def add_message(self, message: BaseMessage) -> None:
        """Blocking twin of :meth:`aadd_message`."""
        self._client._blocking(self.aadd_messages, [message])

    def add_user_message(self, message: HumanMessage | str) -> None:
        """Blocking twin of :meth:`aadd_user_message`."""
        self._client._blocking(self.aadd_user_message, message)

    def add_ai_message(self, message: AIMessage | str) -> None:
        """Blocking twin of :meth:`aadd_ai_message`."""
        self._client._blocking(self.aadd_ai_message, message)

    def clear(self) -> None:
        """Blocking twin of :meth:`aclear`."""
        self._client._blocking(self.aclear)

    def delete_topic(self) -> bool:
        """Blocking twin of :meth:`adelete_topic`."""
        return self._client._blocking(self.adelete_topic)

    def close(self) -> None:
        """Blocking twin of :meth:`aclose`; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryClosedError(
                f"history of session {self.session_id!r} is closed; create a new one"
            )

    async def _transport(self) -> Transport:
        self._check_open()
        return await self._client._transport()

    async def _partitions(self, transport: Transport) -> list[int]:
        return await self._client._topic_partitions(
            transport, self.session_id, self.topic, self.topic_settings
        )

    def _timeout_error(self) -> SessionReadError:
        return SessionReadError(
            f"reading session {self.session_id!r} (topic {self.topic!r}) did not catch up "
            f"within read_timeout={self._client.read_timeout}s",
            session_id=self.session_id,
            topic=self.topic,
        )

    def _read_error(self, exc: BaseException) -> SessionReadError:
        return SessionReadError(
            f"reading session {self.session_id!r} (topic {self.topic!r}) failed: "
            f"{type(exc).__name__}: {exc}",
            session_id=self.session_id,
            topic=self.topic,
        )

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._locks is None:
            self._locks = weakref.WeakKeyDictionary()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

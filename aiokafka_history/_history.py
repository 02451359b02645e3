"""The asyncio-native LangChain chat message history of one session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from typing_extensions import Unpack

from ._blocking_twins import BlockingTwins
from ._config import DEFAULT_TTL_MS, KafkaOptions, topic_settings
from ._engine import Engine
from ._errors import ConfigurationError
from ._session_handle import SessionHandle, own_or_shared
from ._session_log import StartPosition
from ._tail import MessageTail

__all__ = ["AsyncKafkaChatMessageHistory", "MessagesMode", "StartPosition"]

MessagesMode = Literal["last_consumed", "full"]
"""What ``messages`` / ``aget_messages()`` return: new messages since the last read, or all."""

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
    if max_time_sec is not None and (
        isinstance(max_time_sec, bool)
        or not isinstance(max_time_sec, int | float)
        or not max_time_sec > 0
    ):
        raise ConfigurationError(
            f"max_time_sec must be None (no limit) or > 0 seconds, got {max_time_sec!r}"
        )


class AsyncKafkaChatMessageHistory(  # type: ignore[override]
    SessionHandle, BlockingTwins, BaseChatMessageHistory
):
    """A LangChain chat message history stored in a Kafka topic, asyncio-native.

    The session's topic is created on the first write or tail (never by a broker's topic
    auto-creation; an existing topic is used as it is). Records are keyed by the session id,
    written with ``acks=all`` by an idempotent producer, and hold
    ``json.dumps(message_to_dict(m))`` exactly as langchain_community writes them. Reads
    return in write order once caught up with the log's end as of the call's start; a record
    that is not a message is skipped and logged once. The "last consumed" position is the
    committed offset of a consumer group named after the topic, kept in Kafka. Every call ends
    within the client's timeout for its kind; nothing touches the network before the first.
    ``docs/semantics.md`` has the details.

    ``messages_mode`` chooses what :attr:`messages` / :meth:`aget_messages` return:
    ``"last_consumed"`` (default, as langchain_community: what is new since the last read,
    moving the position) or ``"full"`` (the whole history, moving nothing: what
    ``RunnableWithMessageHistory`` needs).

    Async methods run on the client's event loop. The blocking ones LangChain requires
    (``messages``, ``add_messages``, ``clear``, ...) are for other threads while that loop
    runs; on the loop's own thread, or before any async use, they raise
    :class:`EventLoopError`: blocking code uses :class:`KafkaChatMessageHistory`.

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
        topic_prefix: for the private client, see :class:`AsyncKafkaHistoryClient`.
        encode_session_ids: for the private client, see :class:`AsyncKafkaHistoryClient`.
        **kafka_options: for the private client, see :class:`AsyncKafkaHistoryClient`.

    Raises:
        InvalidSessionIdError: the session id cannot name a topic (the rule is in the message).
        ConfigurationError: another argument breaks a rule, or ``client`` was given together
            with connection options.
    """

    def __init__(
        self,
        session_id: str,
        bootstrap_servers: str | list[str] | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        replication_factor: int = 1,
        partition: int = 1,
        *,
        client: Engine | None = None,
        messages_mode: MessagesMode = "last_consumed",
        consumer_group: str | None = None,
        topic_prefix: str = "",
        encode_session_ids: bool = False,
        **kafka_options: Unpack[KafkaOptions],
    ) -> None:
        if messages_mode not in _MODES:
            raise ConfigurationError(
                f"messages_mode must be one of {', '.join(_MODES)}, got {messages_mode!r}"
            )
        settings = topic_settings(ttl_ms, replication_factor, partition)
        engine, owns = own_or_shared(
            client,
            bootstrap_servers,
            topic_prefix,
            encode_session_ids,
            kafka_options,
            of=type(self).__init__,
        )
        self.messages_mode: MessagesMode = messages_mode
        self._attach(engine, owns, session_id, settings, consumer_group)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__}{state} session_id={self.session_id!r} "
            f"topic={self.topic!r} messages_mode={self.messages_mode!r}>"
        )

    def __str__(self) -> str:
        """The repr: LangChain's ``__str__`` would read (and consume) the session."""
        return repr(self)

    # -- reading ----------------------------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        """The messages of :attr:`messages_mode`: new since the last read, or the full history.

        Raises:
            SessionReadError: Kafka failed, or the log could not be read within the client's
                ``read_timeout``; the position did not move.
            ConsumerGroupConflictError: the position's group has joined members.
            RecordDecodeError: a record is not a chat message (``on_bad_record="raise"``).
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
        self._check_open()
        return await self._log.read(
            start, limit=max_message_count, max_time=max_time_sec, commit=commit
        )

    async def alast_messages(self, count: int) -> list[BaseMessage]:
        """The newest ``count`` messages, oldest first, without reading the whole log.

        Moves no position: this is what keeps a long conversation's prompt small.

        Raises:
            ConfigurationError: ``count`` is not an int >= 0.
            SessionReadError: Kafka failed, or the read took longer than ``read_timeout``.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError(f"count must be an int >= 0, got {count!r}")
        self._check_open()
        if count == 0:
            return []
        return await self._log.last(count)

    async def atimed_messages(self) -> list[tuple[datetime, BaseMessage]]:
        """The whole history, each message with the time Kafka stored it (UTC); moves nothing.

        Raises:
            SessionReadError: Kafka failed, or the read took longer than ``read_timeout``.
        """
        self._check_open()
        return [
            (datetime.fromtimestamp(ms / 1000, tz=timezone.utc), message)
            for ms, message in await self._log.entries()
        ]

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
        return MessageTail(self._log, start, commit=commit, idle_timeout=idle_timeout)

    # -- writing ----------------------------------------------------------------------------

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in order; returns once Kafka acknowledged every one.

        Every message is encoded and size-checked before anything is sent, and the call's
        messages go to Kafka as one record batch when they fit in 64 KiB,
        which Kafka appends all or nothing.

        Raises:
            TypeError: an item is not a ``BaseMessage`` (nothing is written).
            InvalidMessageError: an item cannot be encoded or is too large (nothing written).
            SessionWriteError: not every message was acknowledged within ``write_timeout``;
                ``acknowledged`` says how many leading messages were stored and
                ``indeterminate`` whether the others may still appear.
            NotAuthorizedError: an ACL refused the write.
            TopicAdminError: the topic could not be created.
        """
        self._check_open()
        await self._log.append(messages)

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
        reading work immediately afterwards. A session without a topic is already empty.

        Raises:
            TopicAdminError: Kafka refused (e.g. a compacted topic) or ``admin_timeout`` passed.
            NotAuthorizedError: an ACL refused it.
        """
        self._check_open()
        await self._log.truncate()

    async def adelete_topic(self) -> bool:
        """Delete the session's topic for good; False when there was none.

        Kafka deletes topics asynchronously; using the session again creates a new topic
        once the deletion is done.
        """
        self._check_open()
        return await self._log.delete()

"""The shared asyncio client: owns the Kafka connections, hands out per-session histories."""

from __future__ import annotations

from ._config import DEFAULT_TTL_MS
from ._engine import Engine
from ._history import AsyncKafkaChatMessageHistory, MessagesMode

__all__ = ["AsyncKafkaHistoryClient"]


class AsyncKafkaHistoryClient(Engine):
    """One set of Kafka connections shared by any number of session histories.

    A history made by :meth:`history` is a cheap view (no connections of its own), so an
    application with 10,000 sessions still holds one producer, one admin client and at most
    ``max_readers`` reader consumers. Nothing connects before the first call. This is the
    cheapest way to serve many sessions: make one client per process (per event loop) and a
    history per request.

    The client belongs to the event loop it is first used in. Not thread-safe for its async
    methods (use them from its loop); the blocking methods of its histories may be called
    from other threads while that loop runs. For blocking code use :class:`KafkaHistoryClient`.

    Every call ends within its timeout plus about a second, with an exception of this package
    (outage, ACL, timeout): reads within ``read_timeout``, writes within ``write_timeout``,
    topic administration within ``admin_timeout``, closing within ``close_timeout``.

    Example::

        async with AsyncKafkaHistoryClient("localhost:9092", topic_prefix="chat.") as client:
            history = client.history("session-1", messages_mode="full")
            await history.aadd_user_message("hi!")
            print(await history.aget_messages())

    Args:
        bootstrap_servers: ``"host:port"``, comma-separated, or a list of them.
        topic_prefix: put before every session's topic name (also what :meth:`list_sessions`
            looks for). With a prefix the client never touches a topic outside it.
        encode_session_ids: accept any session id and encode it into a legal topic name.
        max_readers: how many reads may run at once (each uses one consumer).
        read_timeout: seconds a read without ``max_time_sec`` may take to catch up with the log
            before :class:`SessionReadError` (default 30).
        write_timeout: seconds a write may wait for its acknowledgement before
            :class:`SessionWriteError` (default 30; the outcome is then indeterminate).
        admin_timeout: seconds creating, describing, clearing or deleting a topic may take
            (default 30).
        close_timeout: seconds closing may wait for connections to close (default 10).
        on_bad_record: ``"skip"`` (default: a record that is not a chat message is logged
            once by position and skipped) or ``"raise"`` (:class:`RecordDecodeError`).
        shared_topic: store every session in this one topic (keyed by session, compacted)
            instead of a topic per session: for services with many sessions. Created on first
            use with ``shared_topic_settings``, or validated when it exists.
        shared_topic_settings: partitions (default 12), replication and retention of the
            shared topic (:class:`TopicSettings`); per-history topic settings are refused.
        view: where the local view of the shared topic lives: ``":memory:"`` (default) or a
            SQLite file path, from which a restarted process resumes instead of rebuilding.
        read_cache_bytes: how much full reads (``messages_mode="full"``,
            :meth:`~AsyncKafkaChatMessageHistory.atimed_messages`) keep decoded over all
            sessions, in bytes of their records (default 64 MiB; decoded messages take two to
            four times that; least recently read sessions go first), so the next full read of
            a session fetches only what is new; 0 switches it off. Messages from the cache are
            shared between reads: treat them as read-only.
        **kafka_options: aiokafka connection settings (security, SASL, timeouts, client id).

    Raises:
        ConfigurationError: an option breaks a rule (the message says which).
    """

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
        self._check_open()
        return AsyncKafkaChatMessageHistory(
            session_id,
            ttl_ms=ttl_ms,
            replication_factor=replication_factor,
            partition=partition,
            client=self,
            messages_mode=messages_mode,
            consumer_group=consumer_group,
        )

"""The topic-per-session layout: each session is a topic named after it (the seed's design).

Implements :class:`~._session_log.SessionLog` over the aiokafka boundary. A session's topic
is created on its first write or tail with the requested settings (never by a broker's
auto-creation: topics are looked up with auto-creation off); reads of a session without a
topic return nothing and create nothing. The last consumed position is the committed offsets
of a consumer group named after the topic (langchain_community's), written without joining
the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import ConsumerStoppedError, KafkaError, UnknownTopicOrPartitionError
from langchain_core.messages import BaseMessage

from ._codec import encode_messages, encode_session_key
from ._config import TopicSettings
from ._deadline import within
from ._errors import ConfigurationError
from ._kafka_admin import TopicMissingError
from ._kafka_producer import MAX_REQUEST_SIZE
from ._log_writes import raise_for_outcome, write_error
from ._naming import TopicNaming
from ._read_cache import DEFAULT_READ_CACHE_BYTES, CachedRead, ReadCache
from ._records import Record, merge_in_write_order, take_first
from ._session_log import BadRecords, StartPosition
from ._translate import Subject, is_access_error, translating
from ._transport import Transport

__all__ = ["LogTimeouts", "TopicLayout", "TopicSessionLog", "TopicTail"]

logger = logging.getLogger("aiokafka_history")

#: Added to every call's own timeout: the time to notice the deadline and clean up.
MARGIN = 1.0
_TOPIC_APPEAR_TIMEOUT = 30.0
_FOREVER = 10 * 365 * 24 * 3600.0  # a timeout longer than this is not a bound


@dataclass(frozen=True, slots=True)
class LogTimeouts:
    """Seconds each kind of call may take (reads, writes, topic admin, closing)."""

    read: float
    write: float
    admin: float
    close: float
    metadata_max_age: float

    def __post_init__(self) -> None:
        for name in ("read", "write", "admin", "close", "metadata_max_age"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < _FOREVER
            ):
                raise ConfigurationError(
                    f"{name}_timeout must be a finite number of seconds > 0, got {value!r}"
                )


@dataclass(slots=True)
class _Known:
    partitions: list[int]
    at: float


class TopicLayout:
    """What the session logs of one client share: naming, timeouts, known topics.

    ``connect`` returns the connected transport of the running loop (the client's).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Transport]],
        naming: TopicNaming,
        timeouts: LogTimeouts,
        bad_records: BadRecords,
        *,
        read_cache: int = DEFAULT_READ_CACHE_BYTES,
    ) -> None:
        self.connect = connect
        self.naming = naming
        self.timeouts = timeouts
        self.bad_records = bad_records
        self.cache: ReadCache[CachedRead] = ReadCache(read_cache)  # full reads, by topic
        self._known: dict[str, _Known] = {}

    def log(
        self, session_id: str, *, settings: TopicSettings, consumer_group: str | None
    ) -> TopicSessionLog:
        """The log of ``session_id``; validates the id and the group, no I/O."""
        if consumer_group is not None and (
            not isinstance(consumer_group, str) or not consumer_group
        ):
            raise ConfigurationError("consumer_group must be a non-empty string or None")
        topic = self.naming.topic_for(session_id)
        return TopicSessionLog(self, session_id, topic, settings, consumer_group or topic)

    # -- topics -----------------------------------------------------------------------------

    def forget(self, topic: str) -> None:
        """Drop what is known of ``topic`` (deleted, re-created or repartitioned)."""
        self._known.pop(topic, None)

    async def partitions(
        self, transport: Transport, topic: str, settings: TopicSettings | None
    ) -> list[int] | None:
        """The topic's partitions; created with ``settings`` when missing (None: not created).

        Known partitions are reused for ``metadata_max_age`` seconds, so partitions added by
        someone else are seen within that time (or at once, by a write that lands on one).
        """
        known = self._known.get(topic)
        now = time.monotonic()
        if known is not None and now - known.at < self.timeouts.metadata_max_age:
            return known.partitions
        try:
            parts = await transport.admin.describe(topic)
        except TopicMissingError:
            if settings is None:
                self.forget(topic)
                return None
            await transport.admin.create_topic(
                topic,
                partitions=settings.partition,
                replication_factor=settings.replication_factor,
                configs=settings.topic_configs(),
            )
            parts = await self._wait_for(transport, topic)
        self._known[topic] = _Known(parts, now)
        return parts

    async def _wait_for(self, transport: Transport, topic: str) -> list[int]:
        deadline = time.monotonic() + _TOPIC_APPEAR_TIMEOUT
        while True:
            try:
                return await transport.admin.describe(topic)
            except TopicMissingError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _wait_gone(self, transport: Transport, topic: str) -> None:
        """Wait until a lookup misses ``topic`` (bounded by the caller's admin timeout).

        A broker answers a deletion before its metadata says so; ``session_exists`` right
        after ``delete_session`` must say False.
        """
        while True:
            try:
                await transport.admin.describe(topic)
            except TopicMissingError:
                return
            await asyncio.sleep(0.05)

    # -- sessions ---------------------------------------------------------------------------

    async def sessions(self) -> list[str]:
        """Every session whose topic this client can see (under its prefix), sorted."""
        subject = Subject("", "")
        with translating("admin", subject, "listing the sessions of"):
            topics = await within(self.timeouts.admin, self._list())
        found = (self.naming.session_for(t) for t in topics)
        return sorted(s for s in found if s is not None)

    async def _list(self) -> list[str]:
        transport = await self.connect()
        return await transport.admin.list_topics()

    async def exists(self, session_id: str) -> bool:
        """Whether ``session_id`` has a topic (creates nothing)."""

        async def exists(transport: Transport, topic: str) -> bool:
            return await self.partitions(transport, topic, None) is not None

        return await self._on_topic(session_id, "describing", exists)

    async def delete(self, session_id: str) -> bool:
        """Delete ``session_id``'s topic; False when it did not exist."""

        async def delete(transport: Transport, topic: str) -> bool:
            self.cache.drop(topic)
            if not await transport.admin.delete_topic(topic):
                return False
            await self._wait_gone(transport, topic)
            return True

        return await self._on_topic(session_id, "deleting", delete)

    async def aclose(self) -> None:
        """Nothing runs in the background of this layout."""

    def close_now(self) -> None:
        """Nothing to release."""

    async def _on_topic(
        self, session_id: str, verb: str, op: Callable[[Transport, str], Awaitable[bool]]
    ) -> bool:
        """Run ``op`` on the session's topic afresh (nothing known is trusted), bounded."""
        topic = self.naming.topic_for(session_id)

        async def run() -> bool:
            transport = await self.connect()
            self.forget(topic)
            return await op(transport, topic)

        with translating("admin", Subject(session_id, topic), verb):
            return await within(self.timeouts.admin, run())


def _within_horizon(
    merged: list[Record],
    per_partition: Mapping[int, list[Record]],
    ends: Mapping[int, int],
    limit: int,
) -> list[Record]:
    """The merged records up to where every partition was read.

    A partition whose read stopped at ``limit`` records (bad ones included) before its end
    may hold unread records that come earlier in write order than later records of other
    partitions: nothing past its last read record may be handed out or consumed.
    """
    stops = [
        records[-1]
        for p, records in per_partition.items()
        if records and len(records) >= limit and records[-1].offset + 1 < ends.get(p, 0)
    ]
    if not stops:
        return merged
    horizon = min(merged.index(record) for record in stops)
    return merged[: horizon + 1]


def _reuse_plan(
    entry: CachedRead, parts: list[int], starts: Mapping[int, int], ends: Mapping[int, int]
) -> tuple[CachedRead, dict[int, int]] | None:
    """What of ``entry`` can be kept, and where to read from; None when nothing can."""
    if not set(entry.ends) <= set(parts):
        return None  # partitions went away: a topic made again, not the one that was read
    read_from: dict[int, int] = {}
    for p in parts:
        if p not in entry.ends:  # a partition added since: all of it is new
            read_from[p] = starts[p]
            continue
        last = entry.last.get(p)
        if ends[p] < entry.ends[p]:
            return None  # the log went back: not the log that was read
        if last is None:
            if starts[p] < entry.ends[p]:
                return None  # records below what was the end: not the log that was read
            read_from[p] = starts[p]
        elif starts[p] > last.offset:
            return None  # cleared (or expired) past everything read
        else:
            if starts[p] > entry.starts.get(p, 0):
                entry = entry.below(p, starts[p])  # retention removed the oldest
            read_from[p] = last.offset  # read again: it must be found unchanged
    return entry, read_from


def _after_last(
    entry: CachedRead, records: Mapping[int, list[Record]]
) -> dict[int, list[Record]] | None:
    """The records after each partition's last read one; None when one is not found again."""
    fresh: dict[int, list[Record]] = {}
    for p, got in records.items():
        last = entry.last.get(p)
        if last is None:
            fresh[p] = got
            continue
        again = got[0] if got else None
        if (
            again is None
            or again.offset != last.offset
            or again.timestamp != last.timestamp
            or again.value != last.value
        ):
            return None
        fresh[p] = got[1:]
    return fresh


class TopicSessionLog:
    """One session stored in its own topic. See :class:`~._session_log.SessionLog`."""

    __slots__ = ("_layout", "_lock", "consumer_group", "session_id", "settings", "topic")

    def __init__(
        self,
        layout: TopicLayout,
        session_id: str,
        topic: str,
        settings: TopicSettings,
        consumer_group: str,
    ) -> None:
        self._layout = layout
        self.session_id = session_id
        self.topic = topic
        self.settings = settings
        self.consumer_group = consumer_group
        self._lock: asyncio.Lock | None = None  # made on the first position-moving read

    @property
    def _subject(self) -> Subject:
        return Subject(self.session_id, self.topic)

    async def _partitions(self, create: bool) -> tuple[Transport, list[int] | None]:
        transport = await self._layout.connect()
        settings = self.settings if create else None
        return transport, await self._layout.partitions(transport, self.topic, settings)

    async def _retrying_stale(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``op``; when the topic vanished under it, forget what was known and retry once."""
        try:
            return await op()
        except UnknownTopicOrPartitionError:
            self._layout.forget(self.topic)
            return await op()

    # -- reads ------------------------------------------------------------------------------

    async def read(
        self,
        start: StartPosition,
        *,
        limit: int | None,
        max_time: float | None,
        commit: bool,
    ) -> list[BaseMessage]:
        """See :meth:`~._session_log.SessionLog.read`."""
        timeout = max_time if max_time is not None else self._layout.timeouts.read
        deadline = time.monotonic() + timeout
        with translating("read", self._subject, "reading"):
            pairs = await within(
                timeout + MARGIN,
                self._retrying_stale(lambda: self._read(start, limit, deadline, max_time, commit)),
            )
        return [message for _, message in pairs]

    async def _read(
        self,
        start: StartPosition,
        limit: int | None,
        deadline: float,
        max_time: float | None,
        commit: bool,
    ) -> list[tuple[Record, BaseMessage]]:
        transport, parts = await self._partitions(create=False)
        if parts is None:
            return []
        if not commit:
            return await self._read_from(transport, parts, start, limit, deadline, max_time, False)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._read_from(transport, parts, start, limit, deadline, max_time, True)

    async def _read_from(
        self,
        transport: Transport,
        parts: list[int],
        start: StartPosition,
        limit: int | None,
        deadline: float,
        max_time: float | None,
        commit: bool,
    ) -> list[tuple[Record, BaseMessage]]:
        full = start == "beginning" and limit is None and max_time is None and not commit
        if full and self._layout.cache.enabled:
            return await self._full_read(transport, parts, deadline)
        admin = transport.admin
        already: dict[int, int | None] = {}
        if start == "latest":
            ends = await admin.end_offsets(self.topic, parts)
            starts = dict(ends)
        elif start == "beginning":
            starts, ends = await admin.offsets_bounds(self.topic, parts)
        else:
            committed, ends = await asyncio.gather(
                admin.committed(self.consumer_group, self.topic, parts),
                admin.end_offsets(self.topic, parts),
            )
            # No position yet: from offset 0, which a reader resets to the log start (as it
            # does a position below it, after a clear or an expiry).
            starts = {p: min(committed[p] or 0, ends[p]) for p in parts}
            already = committed
        result = await transport.readers.read(
            self.topic, starts, ends, max_per_partition=limit, deadline=deadline
        )
        if not result.caught_up and max_time is None:
            raise TimeoutError
        merged = merge_in_write_order(result.records)
        if limit is not None:
            merged = _within_horizon(merged, result.records, ends, limit)
        decoded = self._layout.bad_records.decode(self.topic, merged)
        taken = decoded if limit is None else decoded[:limit]
        consumed = merged
        if limit is not None and len(decoded) > limit:
            # Stop after the last message handed out; the rest is read next time.
            consumed = merged[: merged.index(taken[-1][0]) + 1]
        # Everything consumed (bad records included) moves the position past it.
        _, positions = take_first(consumed, None, starts)
        if commit:
            changed = {p: o for p, o in positions.items() if already.get(p) != o}
            await admin.commit(self.consumer_group, self.topic, changed)
        return taken

    async def _full_read(
        self, transport: Transport, parts: list[int], deadline: float
    ) -> list[tuple[Record, BaseMessage]]:
        """Everything, reading only what is new since the cached read of this topic.

        The cached read is reused when the log still holds what it saw: no partition's log
        start moved past its records or end moved back, and the last record it read on each
        partition is found again, same offset, timestamp and value (a topic deleted and made
        again does not hold it). Records below a moved log start (retention) are dropped.
        """
        layout = self._layout
        starts, ends = await transport.admin.offsets_bounds(self.topic, parts)
        entry = layout.cache.get(self.topic)
        plan = None if entry is None else _reuse_plan(entry, parts, starts, ends)
        if plan is not None:
            kept, read_from = plan
            result = await transport.readers.read(
                self.topic, read_from, ends, max_per_partition=None, deadline=deadline
            )
            if not result.caught_up:
                raise TimeoutError
            fresh = _after_last(kept, result.records)
            if fresh is not None:
                new = {p: layout.bad_records.decode(self.topic, rs) for p, rs in fresh.items()}
                last = {p: rs[-1] for p, rs in fresh.items() if rs}
                entry = kept.extended(new, ends, last, starts)
                layout.cache.put(self.topic, entry)
                return entry.pairs
        result = await transport.readers.read(
            self.topic, starts, ends, max_per_partition=None, deadline=deadline
        )
        if not result.caught_up:
            raise TimeoutError
        pairs = layout.bad_records.decode(self.topic, merge_in_write_order(result.records))
        last = {p: rs[-1] for p, rs in result.records.items() if rs}
        layout.cache.put(self.topic, CachedRead.of(pairs, ends, last, starts))
        return pairs

    async def entries(self) -> list[tuple[int, BaseMessage]]:
        """See :meth:`~._session_log.SessionLog.entries`."""
        timeout = self._layout.timeouts.read
        deadline = time.monotonic() + timeout
        with translating("read", self._subject, "reading"):
            pairs = await within(
                timeout + MARGIN,
                self._retrying_stale(lambda: self._read("beginning", None, deadline, None, False)),
            )
        return [(record.timestamp, message) for record, message in pairs]

    async def last(self, count: int) -> list[BaseMessage]:
        """See :meth:`~._session_log.SessionLog.last`."""
        timeout = self._layout.timeouts.read
        deadline = time.monotonic() + timeout
        with translating("read", self._subject, "reading"):
            return await within(
                timeout + MARGIN, self._retrying_stale(lambda: self._last(count, deadline))
            )

    async def _last(self, count: int, deadline: float) -> list[BaseMessage]:
        transport, parts = await self._partitions(create=False)
        if parts is None:
            return []
        begins, ends = await transport.admin.offsets_bounds(self.topic, parts)
        found: dict[int, list[tuple[Record, BaseMessage]]] = {}
        todo = {p: count for p in parts if ends[p] > begins[p]}
        while todo:
            starts = {p: max(begins[p], ends[p] - span) for p, span in todo.items()}
            result = await transport.readers.read(
                self.topic,
                starts,
                {p: ends[p] for p in todo},
                max_per_partition=None,
                deadline=deadline,
            )
            if not result.caught_up:
                raise TimeoutError
            for p in list(todo):
                # Offsets may have gaps, and bad records are not messages: widen the window
                # until it holds ``count`` messages or reaches the log start.
                found[p] = self._layout.bad_records.decode(self.topic, result.records[p])
                if len(found[p]) >= count or starts[p] == begins[p]:
                    del todo[p]
                else:
                    todo[p] *= 4
        newest = {p: [r for r, _ in pairs[-count:]] for p, pairs in found.items()}
        messages = {(r.partition, r.offset): m for pairs in found.values() for r, m in pairs}
        return [messages[(r.partition, r.offset)] for r in merge_in_write_order(newest)[-count:]]

    # -- writes -----------------------------------------------------------------------------

    async def append(self, messages: Sequence[BaseMessage]) -> None:
        """See :meth:`~._session_log.SessionLog.append`."""
        timeouts = self._layout.timeouts
        key = encode_session_key(self.session_id)
        values = encode_messages(messages, key=key, max_record_bytes=MAX_REQUEST_SIZE)
        if not values:
            return
        started = time.monotonic()
        with translating("admin", self._subject, "preparing to write to"):
            try:
                transport, parts = await within(timeouts.write, self._partitions(create=True))
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise write_error(self._subject, 0, len(values), exc, indeterminate=False) from exc
        remaining = max(0.001, timeouts.write - (time.monotonic() - started))
        try:
            outcome = await transport.producer.produce(
                self.topic, key, values, timeout=remaining, missing=self._make_again
            )
        except (TimeoutError, asyncio.TimeoutError, KafkaError) as exc:
            if is_access_error(exc):
                with translating("admin", self._subject, "writing to"):
                    raise
            # Refused before anything was sent (no connection, no metadata in time).
            raise write_error(self._subject, 0, len(values), exc, indeterminate=False) from exc
        if parts is not None and outcome.partitions != len(parts):
            self._layout.forget(self.topic)  # repartitioned: read the new partitions too
        error = outcome.error
        if isinstance(error, UnknownTopicOrPartitionError) or outcome.indeterminate:
            self._layout.forget(self.topic)
        raise_for_outcome(self._subject, len(values), outcome)

    async def _make_again(self) -> None:
        """Make the topic again if it is gone: another client deleted the session under a write.

        As a session's first write does; the pending write then lands instead of timing out.
        (Called when the write's producer no longer knows the topic, which is also the case,
        briefly, for a topic it has not written to lately.)
        """
        self._layout.forget(self.topic)
        transport, parts = await self._partitions(create=False)
        if parts is None:
            logger.info("session topic %r vanished under a write; creating it again", self.topic)
            await self._layout.partitions(transport, self.topic, self.settings)

    async def truncate(self) -> None:
        """See :meth:`~._session_log.SessionLog.truncate` (Kafka's DeleteRecords)."""
        with translating("admin", self._subject, "clearing"):
            await within(self._layout.timeouts.admin, self._retrying_stale(self._truncate))

    async def _truncate(self) -> None:
        transport, parts = await self._partitions(create=False)
        if parts is None:
            return
        self._layout.cache.drop(self.topic)
        ends = await transport.admin.end_offsets(self.topic, parts)
        await transport.admin.truncate(self.topic, ends)

    async def delete(self) -> bool:
        """See :meth:`~._session_log.SessionLog.delete`."""
        return await self._layout.delete(self.session_id)

    # -- tails ------------------------------------------------------------------------------

    async def tail(self, start: StartPosition) -> TopicTail:
        """See :meth:`~._session_log.SessionLog.tail`."""
        with translating("read", self._subject, "starting a tail of"):
            return await within(self._layout.timeouts.read, self._tail(start))

    async def _tail(self, start: StartPosition) -> TopicTail:
        transport, parts = await self._partitions(create=True)
        assert parts is not None
        admin = transport.admin
        if start == "last_consumed":
            committed, ends = await asyncio.gather(
                admin.committed(self.consumer_group, self.topic, parts),
                admin.end_offsets(self.topic, parts),
            )
            starts = {p: min(committed[p] or 0, ends[p]) for p in parts}
        elif start == "latest":
            starts = await admin.end_offsets(self.topic, parts)
        else:
            starts = {p: 0 for p in parts}  # below the log start: resets to it
        consumer = await transport.readers.open_consumer(self.topic, starts)
        return TopicTail(
            self._subject,
            self.consumer_group,
            transport,
            consumer,
            starts,
            self._layout.bad_records,
            self._layout.timeouts.read,
        )


class TopicTail:
    """A live read of one session's topic. See :class:`~._session_log.TailCursor`."""

    def __init__(
        self,
        subject: Subject,
        consumer_group: str,
        transport: Transport,
        consumer: Any,
        starts: Mapping[int, int],
        bad_records: BadRecords,
        commit_timeout: float,
    ) -> None:
        self._subject = subject
        self._group = consumer_group
        self._transport = transport
        self._consumer = consumer
        self._bad_records = bad_records
        self._commit_timeout = commit_timeout
        self._starts = dict(starts)
        self._closed = False

    @property
    def starts(self) -> Mapping[int, int]:
        """See :attr:`~._session_log.TailCursor.starts`."""
        return self._starts

    async def next_batch(self, timeout: float) -> list[tuple[Record, BaseMessage]] | None:
        """See :meth:`~._session_log.TailCursor.next_batch`."""
        if self._closed or self._transport.closed:
            return None
        with translating("read", self._subject, "tailing"):
            try:
                batch = await self._consumer.getmany(timeout_ms=max(1, int(timeout * 1000)))
            except ConsumerStoppedError:
                return None
        per_partition = {
            tp.partition: [Record(tp.partition, r.offset, r.timestamp, r.value) for r in rows]
            for tp, rows in batch.items()
        }
        return self._bad_records.decode(self._subject.topic, merge_in_write_order(per_partition))

    async def commit(self, positions: Mapping[int, int]) -> None:
        """See :meth:`~._session_log.TailCursor.commit`."""
        admin = self._transport.admin
        with translating("read", self._subject, "committing"):
            await within(
                self._commit_timeout, admin.commit(self._group, self._subject.topic, positions)
            )

    async def close(self) -> None:
        """See :meth:`~._session_log.TailCursor.close`."""
        if self._closed:
            return
        self._closed = True
        if not self._transport.closed:
            await self._transport.readers.close_consumer(self._consumer)

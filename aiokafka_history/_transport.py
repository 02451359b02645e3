"""The Kafka plumbing of one event loop: producer, admin, a pool of readers.

This is the typed boundary around aiokafka (which ships no types). It knows topics,
partitions, offsets and bytes, and nothing of sessions or LangChain, so other storage
layouts can stand on it. Every aiokafka object is created inside the loop that uses it; a
``Transport`` must only be used from that loop. Not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from aiokafka.protocol.offset import OffsetRequest

from ._config import KafkaSettings

__all__ = ["Record", "TopicMissingError", "Transport"]

T = TypeVar("T")
logger = logging.getLogger("aiokafka_history")

_RETRY_ATTEMPTS = 20
_LATEST = -1  # ListOffsets timestamps
_EARLIEST = -2


class TopicMissingError(Exception):
    """The topic does not exist (raised by :meth:`Transport.partitions`)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read: where it is, when it was written, its value."""

    partition: int
    offset: int
    timestamp: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a bounded read returned, per partition, and whether it caught up."""

    records: dict[int, list[Record]]
    caught_up: bool


async def _retry(op: Callable[[], Awaitable[T]], backoff: float) -> T:
    """Run ``op``, retrying aiokafka errors marked retriable (coordinator loading, ...)."""
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return await op()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or attempt == _RETRY_ATTEMPTS - 1:
                raise
            await asyncio.sleep(backoff * min(2**attempt, 10))
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_for(code: int, what: str) -> None:
    if code:
        raise for_code(code)(what)


class Transport:
    """Producer, admin client and reader consumers bound to the running event loop."""

    def __init__(self, settings: KafkaSettings, *, max_readers: int) -> None:
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        kwargs = dict(settings.client_kwargs())
        self._producer: Any = AIOKafkaProducer(
            **kwargs, acks="all", enable_idempotence=True, linger_ms=0
        )
        self._admin: Any = AIOKafkaAdminClient(**kwargs)
        self._reader_kwargs = kwargs
        self._idle_readers: list[Any] = []
        self._all_readers: list[Any] = []
        self._reader_slots = asyncio.Semaphore(max_readers)
        self._coordinators: dict[str, int] = {}
        self._backoff = settings.retry_backoff_ms / 1000
        self._leaders: dict[str, dict[int, int]] = {}
        self._starting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this transport belongs to."""
        return self._loop

    async def start(self) -> None:
        """Connect the producer and the admin client (readers connect on first use).

        Concurrent first callers all wait for the same connection attempt.
        """
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        await asyncio.gather(self._producer.start(), self._admin.start())

    async def close(self) -> None:
        """Close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        results = await asyncio.gather(
            self._producer.stop(),
            self._admin.close(),
            *(r.stop() for r in self._all_readers),
            return_exceptions=True,
        )
        self._all_readers.clear()
        self._idle_readers.clear()
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.warning("closing a Kafka connection failed: %r", result)

    def sockets(self) -> int:
        """How many broker connections are open (for diagnostics and tests)."""
        clients = [self._producer.client, self._admin._client]
        clients += [r._client for r in self._all_readers]
        return sum(1 for c in clients for conn in c._conns.values() if conn.connected())

    # -- topics -----------------------------------------------------------------------------

    async def create_topic(
        self, topic: str, *, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> bool:
        """Create ``topic``; False when it already exists (its settings are left alone)."""
        new = NewTopic(topic, partitions, replication_factor, topic_configs=dict(configs))

        async def create() -> bool:
            response = await self._admin.create_topics([new])
            for _name, code, *rest in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    return False
                message = rest[0] if rest else None
                _raise_for(code, message or f"create topic {topic!r}")
            return True

        return await _retry(create, self._backoff)

    async def partitions(self, topic: str) -> list[int]:
        """The partition ids of ``topic``, once each has a leader.

        Raises:
            TopicMissingError: the topic does not exist.
        """

        async def describe() -> list[int]:
            (info,) = await self._admin.describe_topics([topic])
            code = info["error_code"]
            if code == UnknownTopicOrPartitionError.errno:
                raise TopicMissingError(topic)
            _raise_for(code, f"describe topic {topic!r}")
            parts = info["partitions"]
            for part in parts:
                _raise_for(part["error_code"], f"partition {part['partition']} of {topic!r}")
            if not parts or any(p["leader"] < 0 for p in parts):
                raise for_code(5)(f"topic {topic!r} has no leader yet")  # LeaderNotAvailable
            self._leaders[topic] = {p["partition"]: p["leader"] for p in parts}
            return sorted(p["partition"] for p in parts)

        return await _retry(describe, self._backoff)

    async def delete_topic(self, topic: str) -> bool:
        """Delete ``topic``; False when it did not exist."""

        async def delete() -> bool:
            response = await self._admin.delete_topics([topic])
            for _name, code, *_ in response.topic_error_codes:
                if code == UnknownTopicOrPartitionError.errno:
                    return False
                _raise_for(code, f"delete topic {topic!r}")
            return True

        return await _retry(delete, self._backoff)

    async def list_topics(self) -> list[str]:
        """Every topic name the cluster reports."""
        topics: list[str] = await _retry(self._admin.list_topics, self._backoff)
        return topics

    async def truncate(self, topic: str, before: Mapping[int, int]) -> None:
        """Delete the records below ``before[partition]`` (Kafka's DeleteRecords)."""
        if not before:
            return
        request = {
            TopicPartition(topic, p): RecordsToDelete(before_offset=o) for p, o in before.items()
        }
        await _retry(lambda: self._admin.delete_records(request), self._backoff)

    # -- writes -----------------------------------------------------------------------------

    async def produce(
        self, topic: str, key: bytes | None, values: Iterable[bytes]
    ) -> tuple[int, BaseException | None]:
        """Send ``values`` in order and wait until each is acknowledged (acks=all).

        Returns the number of leading values acknowledged and the first error, if any.
        """
        futures: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        try:
            for value in values:
                futures.append(await self._producer.send(topic, value, key=key))
        except Exception as exc:  # a send refused before reaching the accumulator
            error = exc
        acknowledged = 0
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                error = error or result
                break
            acknowledged += 1
        return acknowledged, error

    # -- offsets ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[Any]:
        async with self._reader_slots:
            if self._idle_readers:
                reader = self._idle_readers.pop()
            else:
                reader = AIOKafkaConsumer(
                    **self._reader_kwargs,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=50,
                    max_partition_fetch_bytes=4 * 1024 * 1024,
                )
                self._all_readers.append(reader)
                await reader.start()
            try:
                yield reader
            finally:
                # Pause rather than unsubscribe: unsubscribing makes aiokafka fetch the
                # metadata of every topic in the cluster, on every read.
                reader.pause(*reader.assignment())
                if not self._closed:
                    self._idle_readers.append(reader)

    @staticmethod
    def tp(topic: str, partition: int) -> Any:
        """The TopicPartition of aiokafka for ``topic`` and ``partition``."""
        return TopicPartition(topic, partition)

    async def open_consumer(self) -> Any:
        """A started consumer of its own (for long-lived tails), closed with the transport."""
        consumer = AIOKafkaConsumer(
            **self._reader_kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._all_readers.append(consumer)
        try:
            await consumer.start()
        except BaseException:
            self._all_readers.remove(consumer)
            await consumer.stop()
            raise
        return consumer

    async def close_consumer(self, consumer: Any) -> None:
        """Stop a consumer from :meth:`open_consumer`."""
        if consumer in self._all_readers:
            self._all_readers.remove(consumer)
        await consumer.stop()

    async def end_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The offset the next record of each partition will get (the high watermark)."""
        return await self._list_offsets(topic, partitions, _LATEST)

    async def beginning_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The offset of the oldest record still stored in each partition."""
        return await self._list_offsets(topic, partitions, _EARLIEST)

    async def offsets_bounds(
        self, topic: str, partitions: Iterable[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Beginning and end offsets, looked up together."""
        parts = list(partitions)
        begin, end = await asyncio.gather(
            self._list_offsets(topic, parts, _EARLIEST), self._list_offsets(topic, parts, _LATEST)
        )
        return begin, end

    async def _list_offsets(
        self, topic: str, partitions: Iterable[int], timestamp: int
    ) -> dict[int, int]:
        """ListOffsets straight to each leader, over the admin client's connections.

        Looking offsets up through a consumer would make aiokafka refresh metadata for the
        topics it tracks; this costs one request per leader and nothing else.
        """
        parts = list(partitions)

        async def lookup() -> dict[int, int]:
            leaders = self._leaders.get(topic)
            if leaders is None or any(p not in leaders for p in parts):
                await self.partitions(topic)
                leaders = self._leaders[topic]
            by_leader: dict[int, list[tuple[int, int]]] = {}
            for p in parts:
                by_leader.setdefault(leaders[p], []).append((p, timestamp))
            try:
                responses = await asyncio.gather(
                    *(
                        self._admin._client.send(node, OffsetRequest(-1, 0, [(topic, rows)]))
                        for node, rows in by_leader.items()
                    )
                )
                found: dict[int, int] = {}
                for response in responses:
                    for _topic, rows in response.topics:
                        for partition, code, *info in rows:
                            _raise_for(code, f"list offsets of {topic!r}[{partition}]")
                            found[partition] = int(info[1] if len(info) > 1 else info[0][0])
                return found
            except KafkaError:
                self._leaders.pop(topic, None)  # stale leadership: describe again
                raise

        return await _retry(lookup, self._backoff)

    async def _coordinator(self, group: str) -> int:
        node = self._coordinators.get(group)
        if node is None:
            node = int(await _retry(lambda: self._admin.find_coordinator(group), self._backoff))
            self._coordinators[group] = node
        return node

    async def _to_coordinator(self, group: str, request: Any) -> Any:
        async def send() -> Any:
            node = await self._coordinator(group)
            try:
                return await self._admin._client.send(node, request)
            except KafkaError:
                self._coordinators.pop(group, None)
                raise

        return await _retry(send, self._backoff)

    async def committed(
        self, group: str, topic: str, partitions: Iterable[int]
    ) -> dict[int, int | None]:
        """The offsets ``group`` committed for ``topic`` (None where it has none)."""
        parts = list(partitions)

        async def fetch() -> dict[int, int | None]:
            response = await self._to_coordinator(
                group, OffsetFetchRequest(group, [(topic, parts)])
            )
            top_code = getattr(response, "error_code", 0)
            if top_code:
                self._coordinators.pop(group, None)
                _raise_for(top_code, f"fetch offsets of group {group!r}")
            found: dict[int, int | None] = dict.fromkeys(parts)
            for _topic, partition_rows in response.topics:
                for partition, offset, _meta, code in partition_rows:
                    _raise_for(code, f"fetch offset of group {group!r}")
                    found[partition] = offset if offset >= 0 else None
            return found

        return await _retry(fetch, self._backoff)

    async def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Store ``offsets`` as ``group``'s position, without joining the group."""
        if not offsets:
            return
        rows = [(p, o, "") for p, o in sorted(offsets.items())]
        request = OffsetCommitRequest(
            group,
            OffsetCommitRequest.DEFAULT_GENERATION_ID,
            "",
            OffsetCommitRequest.DEFAULT_RETENTION_TIME,
            [(topic, rows)],
        )

        async def commit() -> None:
            response = await self._to_coordinator(group, request)
            for _topic, partition_rows in response.topics:
                for _partition, code in partition_rows:
                    if code:
                        self._coordinators.pop(group, None)
                    _raise_for(code, f"commit offsets of group {group!r}")

        await _retry(commit, self._backoff)

    # -- reads ------------------------------------------------------------------------------

    async def read(
        self,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        *,
        max_per_partition: int | None,
        deadline: float | None,
    ) -> ReadResult:
        """Read each partition from ``starts[p]`` up to (not including) ``ends[p]``.

        Stops early for a partition once it has ``max_per_partition`` records, and for all of
        them at ``deadline`` (a ``time.monotonic()`` value). Returns at once when there is
        nothing to read; never waits for records written after ``ends`` was taken.
        """
        todo = {p: s for p, s in starts.items() if s < ends.get(p, 0)}
        out: dict[int, list[Record]] = {p: [] for p in starts}
        if not todo or max_per_partition == 0:
            return ReadResult(out, True)
        async with self._reader() as reader:
            tps = {p: TopicPartition(topic, p) for p in todo}
            reader.assign(list(tps.values()))
            for p, start in todo.items():
                reader.seek(tps[p], start)
            while todo:
                timeout = 1.0 if deadline is None else deadline - time.monotonic()
                if timeout <= 0:
                    return ReadResult(out, False)
                batch = await reader.getmany(
                    *(tps[p] for p in todo), timeout_ms=max(1, int(min(timeout, 1.0) * 1000))
                )
                for tp, records in batch.items():
                    got = out[tp.partition]
                    end = ends[tp.partition]
                    for r in records:
                        if r.offset < end:
                            got.append(Record(tp.partition, r.offset, r.timestamp, r.value))
                for p in list(todo):
                    full = max_per_partition is not None and len(out[p]) >= max_per_partition
                    if full or await reader.position(tps[p]) >= ends[p]:
                        del todo[p]
        if max_per_partition is not None:
            for p in out:
                del out[p][max_per_partition:]
        return ReadResult(out, True)

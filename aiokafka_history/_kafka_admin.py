"""Topic administration, offsets and group positions over aiokafka's admin client.

Part of the aiokafka boundary: it knows topics, partitions and offsets, nothing of sessions.
Must be used from the event loop that created it. Not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import (
    ConsumerStoppedError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from ._kafka_internals import admin_any_node, admin_send

__all__ = ["Admin", "EndOffsets", "TopicMissingError"]

T = TypeVar("T")

_RETRY_ATTEMPTS = 20
_LATEST = -1  # ListOffsets timestamps
_EARLIEST = -2


class TopicMissingError(UnknownTopicOrPartitionError):  # type: ignore[misc]
    """The topic does not exist (raised by :meth:`Admin.describe`).

    An ``UnknownTopicOrPartitionError``, so a topic that vanished under any call is handled
    (and translated) like Kafka saying so itself.
    """

    retriable = False


async def retry(
    op: Callable[[], Awaitable[T]], backoff: float, inflight: set[asyncio.Task[Any]]
) -> T:
    """Run ``op``, retrying aiokafka errors marked retriable (leader moved, ...).

    The caller bounds the whole call with its own deadline.
    """
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return await _uncancelled(op(), inflight)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or attempt == _RETRY_ATTEMPTS - 1:
                raise
            await asyncio.sleep(backoff * min(2**attempt, 10))
    raise AssertionError("unreachable")  # pragma: no cover


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # seen: no "exception was never retrieved" for an abandoned request


async def _uncancelled(coro: Awaitable[T], inflight: set[asyncio.Task[Any]]) -> T:
    """Await ``coro`` in a task of its own that a cancelled caller leaves to finish.

    aiokafka leaks a half-open connection when a request is cancelled while it connects; an
    abandoned request ends by itself within ``request_timeout_ms``. ``inflight`` holds it
    meanwhile, so that closing waits for it before closing the connections.
    """
    task = asyncio.ensure_future(coro)
    inflight.add(task)
    task.add_done_callback(inflight.discard)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _raise_for(code: int, what: str) -> None:
    if code:
        raise for_code(code)(what)


class Admin:
    """aiokafka's admin client plus the raw requests it lacks (offsets, positions)."""

    def __init__(self, client_kwargs: Mapping[str, Any], backoff: float) -> None:
        self.client: Any = AIOKafkaAdminClient(**client_kwargs)
        self._backoff = backoff
        self._leaders: dict[str, dict[int, int]] = {}
        self._coordinators: dict[str, int] = {}
        self._inflight: set[asyncio.Task[Any]] = set()

    async def _retry(self, op: Callable[[], Awaitable[T]]) -> T:
        return await retry(op, self._backoff, self._inflight)

    async def start(self) -> None:
        """Connect."""
        await self.client.start()

    async def close(self, timeout: float) -> None:
        """Close the connections, once requests that callers abandoned have ended."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)
        await self.client.close()

    # -- topics -----------------------------------------------------------------------------

    async def create_topic(
        self, topic: str, *, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> bool:
        """Create ``topic``; False when it already exists (its settings are left alone)."""
        new = NewTopic(topic, partitions, replication_factor, topic_configs=dict(configs))

        async def create() -> bool:
            response = await self.client.create_topics([new])
            for _name, code, *rest in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    return False
                message = rest[0] if rest else None
                _raise_for(code, message or f"create topic {topic!r}")
            return True

        return await self._retry(create)

    async def describe(self, topic: str) -> list[int]:
        """The partition ids of ``topic``, once each has a leader. Never creates the topic.

        aiokafka's own ``describe_topics`` lets a broker with ``auto.create.topics.enable``
        create the topic with the broker's defaults; this asks with auto-creation off.

        Raises:
            TopicMissingError: the topic does not exist.
        """

        async def describe() -> list[int]:
            node = admin_any_node(self.client)
            response = await admin_send(
                self.client, node, MetadataRequest([topic], allow_auto_topic_creation=False)
            )
            (info,) = response.to_object()["topics"]
            code = info["error_code"]
            if code == UnknownTopicOrPartitionError.errno:
                raise TopicMissingError(topic)
            _raise_for(code, f"describe topic {topic!r}")
            parts = info["partitions"]
            for part in parts:
                # A replica being offline is fine as long as the partition has a leader.
                if part["leader"] < 0:
                    _raise_for(part["error_code"] or 5, f"partition {part['partition']}")
            if not parts:
                raise for_code(5)(f"topic {topic!r} has no partitions yet")  # LeaderNotAvailable
            self._leaders[topic] = {p["partition"]: p["leader"] for p in parts}
            return sorted(p["partition"] for p in parts)

        return await self._retry(describe)

    async def delete_topic(self, topic: str) -> bool:
        """Delete ``topic``; False when it did not exist."""

        async def delete() -> bool:
            response = await self.client.delete_topics([topic])
            for _name, code, *_ in response.topic_error_codes:
                if code == UnknownTopicOrPartitionError.errno:
                    return False
                _raise_for(code, f"delete topic {topic!r}")
            return True

        self._leaders.pop(topic, None)
        return await self._retry(delete)

    async def topic_config(self, topic: str) -> dict[str, str]:
        """The topic's effective configs (name -> value; sensitive ones left out)."""

        async def describe() -> dict[str, str]:
            resource = ConfigResource(ConfigResourceType.TOPIC, topic)
            responses = await self.client.describe_configs([resource])
            out: dict[str, str] = {}
            for response in responses:
                for code, message, _type, _name, entries in response.resources:
                    _raise_for(code, message or f"describe configs of topic {topic!r}")
                    for entry in entries:
                        name, value = entry[0], entry[1]
                        if value is not None and not entry[4]:  # is_sensitive, in v0 and v1
                            out[name] = value
            return out

        return await self._retry(describe)

    async def list_topics(self) -> list[str]:
        """Every topic name the cluster shows this principal."""
        topics: list[str] = await self._retry(self.client.list_topics)
        return topics

    async def truncate(self, topic: str, before: Mapping[int, int]) -> None:
        """Delete the records below ``before[partition]`` (Kafka's DeleteRecords)."""
        if not before:
            return
        request = {
            TopicPartition(topic, p): RecordsToDelete(before_offset=o) for p, o in before.items()
        }
        await self._retry(lambda: self.client.delete_records(request))

    # -- offsets ----------------------------------------------------------------------------

    async def end_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The offset the next record of each partition will get (the high watermark)."""
        return await self._list_offsets(topic, list(partitions), _LATEST)

    def leader(self, topic: str, partition: int) -> int | None:
        """The partition's leader as last described (no I/O), or None when not known."""
        return self._leaders.get(topic, {}).get(partition)

    async def offsets_bounds(
        self, topic: str, partitions: Iterable[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Beginning and end offsets of each partition, looked up together."""
        parts = list(partitions)
        begin, end = await asyncio.gather(
            self._list_offsets(topic, parts, _EARLIEST), self._list_offsets(topic, parts, _LATEST)
        )
        return begin, end

    async def _list_offsets(self, topic: str, parts: list[int], timestamp: int) -> dict[int, int]:
        """ListOffsets straight to each leader: one request per leader and nothing else."""

        async def lookup() -> dict[int, int]:
            leaders = self._leaders.get(topic)
            if leaders is None or any(p not in leaders for p in parts):
                await self.describe(topic)
                leaders = self._leaders[topic]
                if any(p not in leaders for p in parts):  # made again with fewer partitions
                    raise UnknownTopicOrPartitionError(f"{topic!r} has fewer partitions now")
            by_leader: dict[int, list[tuple[int, int]]] = {}
            for p in parts:
                by_leader.setdefault(leaders[p], []).append((p, timestamp))
            try:
                responses = await asyncio.gather(
                    *(
                        admin_send(self.client, node, OffsetRequest(-1, 0, [(topic, rows)]))
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

        return await self._retry(lookup)

    # -- group positions --------------------------------------------------------------------

    async def _coordinator(self, group: str) -> int:
        node = self._coordinators.get(group)
        if node is None:
            node = int(await self._retry(lambda: self.client.find_coordinator(group)))
            self._coordinators[group] = node
        return node

    async def _to_coordinator(self, group: str, request: Any) -> Any:
        async def send() -> Any:
            node = await self._coordinator(group)
            try:
                return await admin_send(self.client, node, request)
            except KafkaError:
                self._coordinators.pop(group, None)
                raise

        return await self._retry(send)

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

        return await self._retry(fetch)

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

        await self._retry(commit)


class EndOffsets:
    """End offsets of one topic for many concurrent callers, in as few requests as can be.

    Per partition leader, one request at a time, for every partition of that leader asked
    meanwhile: a hundred reads at once cost a request or two per broker, not a hundred, and a
    slow broker holds up only the partitions it leads. A caller is only ever answered by a
    request sent after it asked, so an answer includes every write acknowledged before the
    call.
    """

    def __init__(self, admin: Admin, topic: str) -> None:
        self.admin = admin
        self._topic = topic
        self._lanes: dict[int | None, _OffsetLane] = {}

    async def get(self, partition: int) -> int:
        """The partition's end offset, looked up after this call began."""
        leader = self.admin.leader(self._topic, partition)
        lane = self._lanes.get(leader)
        if lane is None:
            lane = self._lanes[leader] = _OffsetLane(self.admin, self._topic)
        return await lane.get(partition)

    def close(self) -> None:
        """Stop looking up; callers still waiting are told the client closed."""
        for lane in self._lanes.values():
            lane.close()


class _OffsetLane:
    """The lookups of one leader's partitions: one request at a time."""

    def __init__(self, admin: Admin, topic: str) -> None:
        self._admin = admin
        self._topic = topic
        self._waiting: dict[int, list[asyncio.Future[int]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, partition: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(partition, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            live = {p: [f for f in fs if not f.done()] for p, fs in batch.items()}
            live = {p: fs for p, fs in live.items() if fs}
            if not live:
                continue
            try:
                ends = await self._admin.end_offsets(self._topic, list(live))
            except asyncio.CancelledError:
                _fail(live, ConsumerStoppedError())  # closed: callers are told so
                raise
            except Exception as exc:
                _fail(live, exc)
                continue
            for p, futures in live.items():
                for future in futures:
                    if not future.done():
                        future.set_result(ends[p])

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        _fail(self._waiting, ConsumerStoppedError())
        self._waiting = {}


def _fail(live: Mapping[int, list[asyncio.Future[int]]], exc: BaseException) -> None:
    for futures in live.values():
        for future in futures:
            if not future.done():
                future.set_exception(exc)

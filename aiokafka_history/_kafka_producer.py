"""Appends: one idempotent producer (acks=all) that is replaced when it cannot go on.

Part of the aiokafka boundary. Must be used from the event loop that created it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, ProducerClosed
from aiokafka.partitioner import DefaultPartitioner

from ._deadline import within
from ._kafka_internals import force_stop_producer, known_partitions, producer_failure

__all__ = ["MAX_BATCH_SIZE", "MAX_REQUEST_SIZE", "SPLIT_BATCH_SIZE", "ProduceOutcome", "Producer"]

#: aiokafka's default ``max_request_size``: the largest request, and so record, it sends.
MAX_REQUEST_SIZE = 1024 * 1024
#: The largest record batch: a call whose messages fit is appended all or nothing. Larger
#: batches would make reads of a few records fetch (and parse) more: Kafka returns whole
#: batches, so ``last_messages(20)`` after a 2,000-message import would parse all 2,000.
MAX_BATCH_SIZE = 64 * 1024
#: A call too large for one batch is split anyway, so it is split finer (aiokafka's default
#: batch size): a short read after a bulk import then parses at most this much extra.
SPLIT_BATCH_SIZE = 16 * 1024

_REQUEUE_PAUSE = 0.005  # seconds between tries to queue a batch aiokafka had no room for
#: While a call waits longer than this, it checks every as long that the producer's metadata
#: still knows its topic (see ``missing`` of :meth:`Producer.produce`).
_WATCH_EVERY = 0.2
#: Calls up to this size (with room for each record's overhead) may share a record batch.
_SHARED_BATCH_ROOM = MAX_BATCH_SIZE - 1024
_RECORD_ROOM = 64  # bytes a record may take in a batch beyond its key and value

logger = logging.getLogger("aiokafka_history")
T = TypeVar("T")
_partitioner = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class ProduceOutcome:
    """What became of a produce call.

    ``acknowledged`` leading values are stored. When ``error`` is set the others were not
    acknowledged: ``indeterminate`` says whether they may still land (timed out, or lost
    with the connection) or certainly did not (the broker refused them).
    """

    acknowledged: int
    error: BaseException | None
    indeterminate: bool
    partitions: int


class Producer:
    """An ``AIOKafkaProducer`` that is swapped for a fresh one after a fatal state or a timeout.

    An idempotent aiokafka producer never gives up on a batch, and after an
    ``OutOfOrderSequenceNumber`` or an unknown producer id its sender is dead for good.
    Either way the next :meth:`produce` runs on a new producer.
    """

    def __init__(self, client_kwargs: Mapping[str, Any], *, close_timeout: float) -> None:
        self._kwargs = dict(client_kwargs)
        self._close_timeout = close_timeout
        self._current: Any = self._new()
        self._started: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._closed = False

    def _new(self) -> Any:
        return AIOKafkaProducer(
            **self._kwargs,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            max_batch_size=MAX_BATCH_SIZE,
        )

    @property
    def aiokafka_producer(self) -> Any:
        """The producer in use (for diagnostics)."""
        return self._current

    async def start(self) -> None:
        """Connect the current producer; concurrent callers share one attempt."""
        if self._closed:
            raise ProducerClosed()
        if self._started is None or (self._started.done() and _failed(self._started)):
            self._started = asyncio.ensure_future(self._current.start())
        await asyncio.shield(self._started)

    def _replace(self, why: str) -> None:
        if self._closed:
            return
        old, self._current = self._current, self._new()
        self._started = None
        logger.warning("replacing the Kafka producer: %s", why)
        task = asyncio.ensure_future(force_stop_producer(old, self._close_timeout))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def close(self) -> None:
        """Stop the producer, abandoning what it could not deliver within the close timeout."""
        self._closed = True
        for lane in self._lanes.values():
            lane.close()
        producer = self._current
        starting = self._started
        if starting is not None and not starting.done():
            await asyncio.wait({starting}, timeout=self._close_timeout)  # never cut mid-connect
        try:
            await asyncio.wait_for(asyncio.shield(producer.stop()), self._close_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            await force_stop_producer(producer, self._close_timeout)
        except Exception as exc:
            logger.warning("closing the Kafka producer failed: %s", type(exc).__name__)
            await force_stop_producer(producer, self._close_timeout)
        if self._retired:
            await asyncio.wait(set(self._retired), timeout=self._close_timeout)

    async def produce(
        self,
        topic: str,
        key: bytes,
        values: Sequence[bytes | None],
        *,
        timeout: float,
        keys: Sequence[bytes] | None = None,
        partition: int | None = None,
        missing: Callable[[], Awaitable[object]] | None = None,
    ) -> ProduceOutcome:
        """Append ``values`` to the key's partition, in order, and wait for acks=all.

        ``keys`` (one per value) replace ``key`` on the records, and ``partition`` the
        partition chosen from ``key``; a None value is a tombstone.

        ``missing`` is started once (as a task) when the call has waited :data:`_WATCH_EVERY`
        seconds and the producer's metadata does not know ``topic`` (it was deleted under the
        call): the caller may make the topic again, so the batch lands instead of being
        retried until the timeout. The call keeps waiting meanwhile and cancels it when it
        ends; its errors are logged by type and otherwise ignored.

        Values that fit :data:`MAX_BATCH_SIZE` go out as one record batch, which Kafka appends
        all or nothing; larger calls go out in batches of about :data:`SPLIT_BATCH_SIZE`.
        Returns within ``timeout`` seconds; on a timeout the producer is replaced, so a later
        call does not queue behind an undeliverable batch.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        failure = producer_failure(self._current)
        if failure is not None:
            self._replace(f"its sender stopped ({type(failure).__name__})")
        started = self._started
        if started is None or not started.done() or _failed(started):
            await within(max(0.001, deadline - loop.time()), self.start())
        producer = self._current
        watch = None if missing is None else _Watch(producer, topic, missing)
        try:
            return await self._produce(
                producer, topic, key, values, deadline, keys, partition, watch
            )
        finally:
            if watch is not None:
                await watch.close()

    async def _produce(
        self,
        producer: Any,
        topic: str,
        key: bytes,
        values: Sequence[bytes | None],
        deadline: float,
        keys: Sequence[bytes] | None,
        partition: int | None,
        watch: _Watch | None,
    ) -> ProduceOutcome:
        loop = asyncio.get_running_loop()
        known = known_partitions(producer, topic)  # no await when known
        partitions = sorted(
            known if known else await _by(deadline, producer.partitions_for(topic), watch)
        )
        if partition is None:
            partition = _partitioner(key, partitions, partitions)
        record_keys = [key] * len(values) if keys is None else list(keys)
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        error: BaseException | None = None
        queued_all = False
        size = sum(len(v or b"") for v in values) + sum(len(k) for k in record_keys)
        if size + _RECORD_ROOM * len(values) <= _SHARED_BATCH_ROOM:
            # Small calls to one partition share record batches: aiokafka sends one batch per
            # partition at a time, so under load a call joins those queued meanwhile.
            call = _Call(list(zip(record_keys, values, strict=True)), size, deadline)
            lane = self._lanes.get((topic, partition))
            if lane is None:
                lane = self._lanes[(topic, partition)] = _Lane(self, topic, partition)
            try:
                placed = await lane.place(call, max(0.001, deadline - loop.time()))
                futures.append((len(values), placed))
                queued_all = True
            except (asyncio.TimeoutError, TimeoutError) as exc:
                error = exc
                if call.taken:  # in a batch that may still be sent
                    futures.append((len(values), _never_done(loop)))
            except Exception as exc:  # refused before reaching the broker
                error = exc
            return await self._waited(
                producer, futures, error, queued_all, deadline, partitions, watch
            )

        async def send(batch: Any) -> asyncio.Future[Any]:
            return await _send_batch(producer, batch, topic, partition, deadline)

        async def queue() -> None:
            # Several batches when the values exceed one request: a later one waits (in
            # aiokafka, up to request_timeout_ms) for room behind the earlier ones.
            size = sum(len(v or b"") for v in values) + sum(len(k) for k in record_keys)
            split = size > MAX_BATCH_SIZE
            batch = producer.create_batch()
            count = 0
            for key, value in zip(record_keys, values, strict=True):
                full = split and count and batch.size() >= SPLIT_BATCH_SIZE
                if full or batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append((count, await send(batch)))
                    batch = producer.create_batch()
                    count = 0
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError("a record does not fit an empty batch")
                count += 1
            if count:
                futures.append((count, await send(batch)))

        try:
            await _by(deadline, queue(), watch)
            queued_all = True
        except (asyncio.TimeoutError, TimeoutError) as exc:
            error = exc  # what was queued may still be delivered: indeterminate below
        except Exception as exc:  # refused before reaching the broker
            error = exc
        return await self._waited(producer, futures, error, queued_all, deadline, partitions, watch)

    async def _waited(
        self,
        producer: Any,
        futures: list[tuple[int, asyncio.Future[Any]]],
        error: BaseException | None,
        queued_all: bool,
        deadline: float,
        partitions: list[int],
        watch: _Watch | None,
    ) -> ProduceOutcome:
        await _watching([f for _, f in futures], deadline, watch)
        return self._outcome(producer, futures, error, queued_all, partitions)

    def _outcome(
        self,
        producer: Any,
        futures: list[tuple[int, asyncio.Future[Any]]],
        error: BaseException | None,
        queued_all: bool,
        partitions: list[int],
    ) -> ProduceOutcome:
        acknowledged = 0
        indeterminate = False
        for size, future in futures:
            if not future.done():
                indeterminate = True
                error = error or asyncio.TimeoutError()
                break
            if future.cancelled() or future.exception() is not None:
                error = error or (
                    future.exception() if not future.cancelled() else asyncio.CancelledError()
                )
                break
            acknowledged += size
        if not queued_all and isinstance(error, asyncio.TimeoutError | TimeoutError):
            indeterminate = indeterminate or bool(futures)
        if indeterminate or (not queued_all and futures):
            self._replace("a write timed out")
        elif producer_failure(producer) is not None:
            self._replace(f"its sender stopped ({type(producer_failure(producer)).__name__})")
        return ProduceOutcome(acknowledged, error, indeterminate, len(partitions))


class _Watch:
    """A call's check that its topic is still known, while the call waits.

    When the producer's metadata no longer knows the topic, ``missing`` starts once, as a
    task of its own (the call keeps waiting meanwhile); :meth:`close` ends it with the call.
    """

    __slots__ = ("_missing", "_task", "producer", "topic")

    def __init__(self, producer: Any, topic: str, missing: Callable[[], Awaitable[object]]):
        self.producer = producer
        self.topic = topic
        self._missing: Callable[[], Awaitable[object]] | None = missing
        self._task: asyncio.Task[object] | None = None

    @property
    def armed(self) -> bool:
        return self._missing is not None

    def check(self) -> None:
        if self._missing is not None and known_partitions(self.producer, self.topic) is None:
            missing, self._missing = self._missing, None
            self._task = asyncio.ensure_future(missing())
            self._task.add_done_callback(self._log_failure)

    def _log_failure(self, task: asyncio.Task[object]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.info(
                "a write's producer lost topic %r; making sure it exists failed: %s",
                self.topic,
                type(exc).__name__,
            )

    async def close(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])


async def _watching(
    waiting: Iterable[asyncio.Future[Any]], deadline: float, watch: _Watch | None
) -> None:
    """Wait for ``waiting`` until ``deadline``, checking the ``watch`` meanwhile.

    Without a watch (or once it fired) this is one ``asyncio.wait``; with it the wait wakes
    every :data:`_WATCH_EVERY` seconds for a dictionary lookup in the producer's metadata.
    """
    loop = asyncio.get_running_loop()
    pending = set(waiting)
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        if watch is None or not watch.armed:
            await asyncio.wait(pending, timeout=remaining)
            return
        _, pending = await asyncio.wait(pending, timeout=min(remaining, _WATCH_EVERY))
        if pending:
            watch.check()


async def _by(deadline: float, awaitable: Awaitable[T], watch: _Watch | None) -> T:
    """``awaitable``'s result by ``deadline`` (else ``TimeoutError``), checking the watch."""
    if watch is None:
        return await within(max(0.001, deadline - asyncio.get_running_loop().time()), awaitable)
    task = asyncio.ensure_future(awaitable)
    try:
        await _watching([task], deadline, watch)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
    if task.cancelled():
        raise asyncio.TimeoutError()
    return task.result()


@dataclass(slots=True)
class _Call:
    """One produce call waiting for a batch: its records (all in the same batch) and deadline."""

    records: list[tuple[bytes, bytes | None]]
    size: int
    deadline: float
    taken: bool = False  # put in a batch: it may be sent whatever the caller does
    placed: asyncio.Future[asyncio.Future[Any]] | None = None


class _Lane:
    """The calls waiting to be batched for one partition, and the task that batches them.

    A batch takes whole calls, in the order they came, while they fit: each call stays all
    or nothing (a record batch is appended whole) and keeps its place in the partition.
    """

    def __init__(self, owner: Producer, topic: str, partition: int) -> None:
        self._owner = owner
        self._topic = topic
        self._partition = partition
        self._queue: collections.deque[_Call] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    async def place(self, call: _Call, timeout: float) -> asyncio.Future[Any]:
        """Queue ``call``; the future of the batch it went out in (queued in aiokafka)."""
        loop = asyncio.get_running_loop()
        call.placed = loop.create_future()
        self._queue.append(call)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(call.placed), timeout)
        except BaseException:
            if not call.taken:
                with contextlib.suppress(ValueError):
                    self._queue.remove(call)  # never sent
            raise

    async def _run(self) -> None:
        while self._queue:
            producer = self._owner.aiokafka_producer
            batch = producer.create_batch()
            taken: list[_Call] = []
            room = _SHARED_BATCH_ROOM
            try:
                while self._queue:
                    call = self._queue[0]
                    need = call.size + _RECORD_ROOM * len(call.records)
                    if taken and need > room:
                        break
                    self._queue.popleft()
                    call.taken = True
                    taken.append(call)
                    room -= need
                    for key, value in call.records:
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise ValueError("a record does not fit its batch")
                deadline = max(c.deadline for c in taken)
                future = await _send_batch(producer, batch, self._topic, self._partition, deadline)
            except BaseException as exc:
                # Not queued in aiokafka: nothing of these calls was sent.
                for call in taken:
                    call.taken = False
                    if call.placed is not None and not call.placed.done():
                        call.placed.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for call in taken:
                if call.placed is not None and not call.placed.done():
                    call.placed.set_result(future)

    def close(self) -> None:
        """Stop batching; calls still waiting fail as not sent."""
        if self._task is not None:
            self._task.cancel()
        while self._queue:
            call = self._queue.popleft()
            if call.placed is not None and not call.placed.done():
                call.placed.set_exception(ProducerClosed())


async def _send_batch(
    producer: Any, batch: Any, topic: str, partition: int, deadline: float
) -> asyncio.Future[Any]:
    """Queue ``batch`` in aiokafka, retrying while it has no room, until ``deadline``.

    aiokafka 0.14's accumulator gives up waiting for room after less than its request
    timeout when many calls queue on one partition (it subtracts the whole elapsed time on
    every turn), raising before the batch was queued: nothing was sent, so try again.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            future: asyncio.Future[Any] = await producer.send_batch(
                batch, topic, partition=partition
            )
            return future
        except KafkaTimeoutError:
            if loop.time() + _REQUEUE_PAUSE >= deadline:
                raise
            await asyncio.sleep(_REQUEUE_PAUSE)


def _never_done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """A future that stays pending: a write whose outcome is not known."""
    return loop.create_future()


def _failed(task: asyncio.Task[None]) -> bool:
    return task.cancelled() or task.exception() is not None

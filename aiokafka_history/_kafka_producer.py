"""Appends: one idempotent producer (acks=all) that is replaced when it cannot go on.

Part of the aiokafka boundary. Must be used from the event loop that created it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, ProducerClosed
from aiokafka.partitioner import DefaultPartitioner

from ._deadline import within
from ._kafka_internals import force_stop_producer, producer_failure

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

logger = logging.getLogger("aiokafka_history")
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
    ) -> ProduceOutcome:
        """Append ``values`` to the key's partition, in order, and wait for acks=all.

        ``keys`` (one per value) replace ``key`` on the records, and ``partition`` the
        partition chosen from ``key``; a None value is a tombstone.

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
        partitions = sorted(
            await within(max(0.001, deadline - loop.time()), producer.partitions_for(topic))
        )
        if partition is None:
            partition = _partitioner(key, partitions, partitions)
        record_keys = [key] * len(values) if keys is None else list(keys)
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        error: BaseException | None = None
        queued_all = False

        async def send(batch: Any) -> asyncio.Future[Any]:
            # aiokafka 0.14's accumulator gives up waiting for room after less than its
            # request timeout when many calls queue on one partition (it subtracts the whole
            # elapsed time on every turn), raising before the batch was queued: nothing was
            # sent, so try again until the call's own deadline.
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
            await within(max(0.001, deadline - loop.time()), queue())
            queued_all = True
        except (asyncio.TimeoutError, TimeoutError) as exc:
            error = exc  # what was queued may still be delivered: indeterminate below
        except Exception as exc:  # refused before reaching the broker
            error = exc
        waiting = [f for _, f in futures]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, deadline - loop.time()))
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


def _failed(task: asyncio.Task[None]) -> bool:
    return task.cancelled() or task.exception() is not None

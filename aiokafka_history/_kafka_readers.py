"""Bounded reads over a pool of assign-only consumers, and consumers for live tails.

Part of the aiokafka boundary. Must be used from the event loop that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError

from ._kafka_fetch import TopicFetcher
from ._kafka_internals import consumer_client
from ._records import ReadResult, Record

__all__ = ["ReaderPool"]


class ReaderPool:
    """At most ``max_readers`` consumers (no group), reused across reads."""

    def __init__(self, client_kwargs: Mapping[str, Any], *, max_readers: int) -> None:
        self._kwargs = dict(client_kwargs)
        self._idle: list[Any] = []
        self.all: list[Any] = []
        self._slots = asyncio.Semaphore(max_readers)
        self._stopping: set[asyncio.Task[None]] = set()
        self._starting: dict[Any, asyncio.Task[None]] = {}
        self._closed = False

    async def close(self, timeout: float) -> list[BaseException]:
        """Stop every consumer; returns the errors met."""
        self._closed = True
        starting = dict(self._starting)
        if starting:  # let starts end first: a consumer stopped mid-start stays half open
            await asyncio.wait(set(starting.values()), timeout=timeout)
        readers = {*self.all, *starting}
        self.all = []
        self._idle.clear()
        tasks = [asyncio.ensure_future(r.stop()) for r in readers] + list(self._stopping)
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        return [e for t in done if not t.cancelled() and (e := t.exception()) is not None]

    def _consumer(self, **extra: Any) -> Any:
        return AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **extra,
        )

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[Any]:
        async with self._slots:
            reader = self._idle.pop() if self._idle else await self._start_reader()
            try:
                yield reader
            finally:
                # Pause rather than unsubscribe: unsubscribing makes aiokafka fetch the
                # metadata of every topic in the cluster, on every read. A read cancelled or
                # failed mid-fetch leaves the reader usable (the next read seeks anew); stopping
                # it then would cut aiokafka's fetcher off mid-connect, leaking the socket.
                if self._closed:
                    await self.close_consumer(reader)
                else:
                    reader.pause(*reader.assignment())
                    self._idle.append(reader)

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerStoppedError  # the client was closed: translated as such

    async def _start(self, **options: Any) -> Any:
        """Make and start a consumer of the pool's; stopped again if anything goes wrong.

        The start runs in a task of its own: a cancelled or failed caller leaves it to end
        and stops the consumer afterwards, never in the middle (aiokafka leaks a connection
        cut off while it is being opened).
        """
        self._check_open()  # before making one: an unstarted consumer warns when collected
        consumer = self._consumer(**options)
        self.all.append(consumer)
        starting = asyncio.ensure_future(consumer.start())
        self._starting[consumer] = starting
        starting.add_done_callback(lambda _: self._starting.pop(consumer, None))
        try:
            await asyncio.shield(starting)
            self._check_open()  # closed while it started
        except BaseException:
            self._forget(consumer)
            stopping = asyncio.ensure_future(_stop_after(starting, consumer))
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
            raise
        return consumer

    def _forget(self, consumer: Any) -> None:
        if consumer in self.all:
            self.all.remove(consumer)

    async def _start_reader(self) -> Any:
        return await self._start(fetch_max_wait_ms=50, max_partition_fetch_bytes=4 * 1024 * 1024)

    async def open_consumer(self, topic: str, starts: Mapping[int, int]) -> Any:
        """A started consumer of its own (for a live tail) reading ``topic`` from ``starts``.

        Stopped by :meth:`close_consumer` or with the pool.
        """
        consumer = await self._start()
        consumer.assign([TopicPartition(topic, p) for p in starts])
        for p, offset in starts.items():
            consumer.seek(TopicPartition(topic, p), offset)
        return consumer

    async def open_fetcher(
        self,
        topic: str,
        starts: Mapping[int, int],
        log_starts: Callable[[list[int]], Awaitable[Mapping[int, int]]],
    ) -> TopicFetcher:
        """A fetcher following every partition of ``topic`` from ``starts`` (for a local view).

        It sends its Fetch requests over the connections of a consumer of its own (started,
        never assigned: its own fetcher stays idle), stopped with the pool.
        """
        consumer = await self._start()
        client = consumer_client(consumer)
        await client.add_topic(topic)  # its leaders known before the first fetch
        return TopicFetcher(client, topic, starts, log_starts=log_starts)

    async def close_consumer(self, consumer: Any) -> None:
        """Stop a consumer from :meth:`open_consumer`."""
        self._forget(consumer)
        await asyncio.shield(consumer.stop())

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


async def _stop_after(starting: asyncio.Future[Any], consumer: Any) -> None:
    await asyncio.wait({starting})
    if not starting.cancelled():
        starting.exception()  # retrieved: the caller already got it
    await consumer.stop()

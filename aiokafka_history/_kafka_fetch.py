"""Following a whole topic with Fetch requests sent straight to each partition's leader.

Part of the aiokafka boundary. aiokafka's consumer fetches through general machinery (a
fetcher task, per-partition state, a consumer record per record) that costs more loop time
than the records themselves when a topic is followed write by write, and it is most of what
a rebuild spends per record. :class:`TopicFetcher` keeps one Fetch in flight per leader (the
next one leaves the moment a response is taken, so fetching overlaps applying), turns record
batches straight into ``(offset, timestamp, key, value)`` rows with aiokafka's own (compiled)
record parser, and knows every partition's position without asking.

It behaves as the consumer did for a follower: uncommitted isolation (aborted transactions'
records are returned, control batches skipped), CRCs checked, an out-of-range position reset
to the log start, leaders re-resolved after a leadership error, connection failures retried
after a back-off. Only errors a retry cannot mend (no access to the topic, a corrupt batch)
are raised. Must be used from the event loop that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    KafkaError,
    OffsetOutOfRangeError,
    for_code,
)
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

__all__ = ["KeyedRow", "TopicFetcher"]

logger = logging.getLogger("aiokafka_history")

#: A followed record: (offset, timestamp, key, value). A plain tuple: a rebuild makes millions.
KeyedRow = tuple[int, int, "bytes | None", "bytes | None"]

_READ_UNCOMMITTED = 0
_RETRY_BACKOFF = 0.1  # seconds before a failed fetch (or a leaderless partition) is tried again


class _Taken:
    """A partition's fetched records not yet returned, parsed a batch at a time."""

    __slots__ = ("partition", "position", "records")

    def __init__(self, partition: int, records: Any, position: int) -> None:
        self.partition = partition
        self.records = records
        self.position = position  # records below it were returned (or skipped)


class TopicFetcher:
    """Fetches every partition of ``topic`` from ``starts`` on, in offset order, until closed.

    ``client`` is a started aiokafka client of the fetcher's own (a long-polled Fetch holds
    its connection: the broker answers one request per connection at a time). ``log_starts``
    looks up the log start offsets of some partitions (for a position out of range).
    """

    def __init__(
        self,
        client: Any,
        topic: str,
        starts: Mapping[int, int],
        *,
        log_starts: Callable[[list[int]], Awaitable[Mapping[int, int]]],
        max_wait_ms: int = 250,
        partition_bytes: int = 256 * 1024,
        request_bytes: int = 4 * 1024 * 1024,
        max_records: int = 5_000,
    ) -> None:
        self._client = client
        self._topic = topic
        self._positions = dict(starts)
        self._log_starts = log_starts
        self._max_wait_ms = max_wait_ms
        self._partition_bytes = partition_bytes
        self._request_bytes = request_bytes
        self._max_records = max_records
        # node -> (the Fetch in flight, the positions it asked for)
        self._in_flight: dict[int, tuple[asyncio.Future[Any], dict[int, int]]] = {}
        self._taken: list[_Taken] = []  # parsed lazily: a big response is not one loop stall
        self._resets: dict[int, asyncio.Future[Mapping[int, int]]] = {}
        self._retry_at = 0.0
        self._error: Exception | None = None  # raised by the next call
        self._turn = 0  # rotates the order of partitions in requests
        self._highwater: dict[int, int] = {}  # the last end offset a response gave
        self._hold_until = 0.0  # no new Fetch before it, unless hurried
        self._hurried = asyncio.Event()
        self._closed = False

    @property
    def positions(self) -> dict[int, int]:
        """The next offset to return of every partition."""
        return dict(self._positions)

    async def fetch(
        self, timeout: float, *, linger: float = 0.0
    ) -> tuple[dict[int, list[KeyedRow]], dict[int, int]]:
        """Records fetched since the last call, and every partition's position after them.

        Waits up to ``timeout`` for some; returns at most ``max_records`` records. ``linger``:
        after records came, and no partition is known to hold more, hold the next Fetch back
        this long (seconds) unless :meth:`hurry` is called, so writes arriving one by one are
        taken several at a time.
        """
        if self._closed:
            raise ConsumerStoppedError
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if not self._taken:
            held = self._hold_until - time.monotonic()
            if held > 0:
                with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                    await asyncio.wait_for(self._hurried.wait(), min(held, timeout))
                if self._closed:
                    raise ConsumerStoppedError
                if self._hold_until > time.monotonic():
                    return {}, dict(self._positions)  # still held: ``timeout`` was shorter
            self._launch()
            waiting = [f for f, _ in self._in_flight.values()] + list(self._resets.values())
            if waiting and not any(f.done() for f in waiting):
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            elif not waiting:  # nothing to ask yet (leaders unknown, or backing off)
                await asyncio.sleep(min(timeout, max(0.0, self._retry_at - time.monotonic())))
            if self._closed:
                raise ConsumerStoppedError
            self._collect()
        rows = self._parse()
        if rows and linger > 0 and not self._taken and not self._behind():
            self._hold_until = time.monotonic() + linger
            self._hurried.clear()
        else:
            self._launch()  # the next fetch runs while the caller applies these
        return rows, dict(self._positions)

    def _behind(self) -> bool:
        """Whether a partition has more to fetch than the last responses brought."""
        highwater = self._highwater
        return any(at < highwater.get(p, 0) for p, at in self._positions.items())

    def hurry(self) -> None:
        """Someone waits for what is new: fetch now, not after the linger."""
        if self._hold_until:
            self._hold_until = 0.0
            self._hurried.set()

    def close(self) -> None:
        """Stop: cancel what is in flight (idempotent)."""
        self._closed = True
        self._hurried.set()
        for future in [f for f, _ in self._in_flight.values()] + list(self._resets.values()):
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: nobody will take it now
            future.cancel()
        self._in_flight.clear()
        self._resets.clear()
        self._taken.clear()

    # -- requests --------------------------------------------------------------------------

    def _launch(self) -> None:
        """Send a Fetch to every leader without one in flight (for its idle partitions)."""
        if self._closed or time.monotonic() < self._retry_at:
            return
        busy = {p for _, asked in self._in_flight.values() for p in asked}
        busy.update(t.partition for t in self._taken)
        busy.update(self._resets)
        cluster = self._client.cluster
        by_node: dict[int, dict[int, int]] = {}
        leaderless = False
        for p, position in self._positions.items():
            if p in busy:
                continue
            node = cluster.leader_for_partition(TopicPartition(self._topic, p))
            if node is None or node < 0:
                leaderless = True
            elif node not in self._in_flight:
                by_node.setdefault(node, {})[p] = position
        if leaderless:
            self._refresh()
        self._turn += 1
        for node, asked in by_node.items():
            # A new first partition every time: a broker gives only the first partition with
            # data more than ``partition_bytes`` (a large record whole); the others would wait
            # for as long as a partition before them keeps getting records.
            order = list(asked.items())
            first = self._turn % len(order)
            order = order[first:] + order[:first]
            request = FetchRequest(
                self._max_wait_ms,
                1,
                self._request_bytes,
                _READ_UNCOMMITTED,
                [(self._topic, [(p, at, self._partition_bytes) for p, at in order])],
            )
            future = asyncio.ensure_future(self._client.send(node, request))
            self._in_flight[node] = (future, asked)

    def _refresh(self) -> None:
        """Ask for new metadata (leaders moved or are unknown) and back off a little."""
        self._retry_at = time.monotonic() + _RETRY_BACKOFF
        with contextlib.suppress(Exception):
            self._client.force_metadata_update()

    def _collect(self) -> None:
        """Take the finished fetches and resets (raises what retrying cannot mend)."""
        for p, future in list(self._resets.items()):
            if not future.done():
                continue
            del self._resets[p]
            if future.cancelled() or future.exception() is not None:
                self._retry_at = time.monotonic() + _RETRY_BACKOFF
                continue
            start = future.result().get(p)
            if start is not None:
                logger.warning(
                    "%s[%d]: offset %d is out of range; following from the log start %d",
                    self._topic,
                    p,
                    self._positions[p],
                    start,
                )
                self._positions[p] = start
        for node, (future, asked) in list(self._in_flight.items()):
            if not future.done():
                continue
            del self._in_flight[node]
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                if isinstance(error, KafkaError) and error.retriable:
                    logger.debug("fetching %r from node %d failed: %r", self._topic, node, error)
                    self._refresh()
                    continue
                raise error
            self._take(future.result(), asked)

    def _take(self, response: Any, asked: Mapping[int, int]) -> None:
        for topic, partitions in response.topics:
            if topic != self._topic:
                continue
            for partition, code, highwater, *data in partitions:
                offset = asked.get(partition)
                if offset is None or self._positions.get(partition) != offset:
                    continue  # not asked, or reset meanwhile
                if code == 0:
                    self._highwater[partition] = highwater
                    self._taken.append(_Taken(partition, MemoryRecords(data[-1]), offset))
                    continue
                error = for_code(code)
                if error is OffsetOutOfRangeError:
                    self._resets[partition] = asyncio.ensure_future(self._log_starts([partition]))
                elif error.retriable:
                    logger.debug("fetching %s[%d]: %s", self._topic, partition, error.__name__)
                    self._refresh()
                else:
                    raise error(f"fetching {self._topic}[{partition}]")

    # -- records ---------------------------------------------------------------------------

    def _parse(self) -> dict[int, list[KeyedRow]]:
        """Rows of the taken responses, batch by batch, up to ``max_records``.

        A batch that cannot be read (a CRC that does not match, a compression codec not
        installed) stops its partition at that batch: the rows before it are returned first,
        and the error is raised by the next call, so nothing after it is skipped silently.
        """
        out: dict[int, list[KeyedRow]] = {}
        budget = self._max_records
        while self._taken and budget > 0:
            taken = self._taken[0]
            rows = out.setdefault(taken.partition, [])
            before = len(rows)
            try:
                done = _parse_batches(taken, rows, budget)
            except Exception as exc:
                self._taken.pop(0)  # fetched again from the batch that failed
                self._positions[taken.partition] = taken.position
                self._error = _at(exc, self._topic, taken.partition, taken.position)
                if not rows:
                    del out[taken.partition]
                if out:
                    return out  # what came before it first
                error, self._error = self._error, None
                raise error from exc
            budget -= len(rows) - before
            self._positions[taken.partition] = taken.position
            if not rows:
                del out[taken.partition]
            if done:
                self._taken.pop(0)
        return out


def _at(exc: Exception, topic: str, partition: int, offset: int) -> Exception:
    """``exc`` with the position it happened at (never a payload)."""
    where = f"{topic}[{partition}]@{offset}"
    error: Exception
    if isinstance(exc, KafkaError):
        error = type(exc)(f"the record batch at {where} cannot be read: {exc}")
    else:
        error = CorruptRecordException(f"the record batch at {where} cannot be read: {exc!r}")
    return error


def _parse_batches(taken: _Taken, rows: list[KeyedRow], budget: int) -> bool:
    """Append ``taken``'s records to ``rows`` until ``budget`` is spent; whether all are.

    Raises what reading a batch raised, with ``taken.position`` at that batch and none of its
    rows in ``rows``.
    """
    records = taken.records
    start = taken.position
    add = rows.append
    while budget > 0:
        batch = records.next_batch()
        if batch is None:
            return True
        mark = len(rows)
        try:
            if not batch.validate_crc():
                raise CorruptRecordException("its CRC does not match")
            if not batch.is_control_batch:
                for record in batch:
                    offset = record.offset
                    if offset >= start:  # a batch may begin below the position asked
                        add((offset, record.timestamp, record.key, record.value))
                        budget -= 1
        except Exception:
            del rows[mark:]
            raise
        # Format v2 keeps a batch's last offset when compaction removed its last records.
        start = taken.position = max(start, batch.next_offset)
    return not records.has_next()

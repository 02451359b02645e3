"""The task that applies a whole shared topic to the local view, in offset order.

Sits between the shared layout (``_shared_log.py``, which owns the view and answers reads)
and the aiokafka boundary. Fetched records are buffered and applied on the view's thread,
several fetches to a transaction while the view is busy, so a rebuild never holds the event
loop and a busy topic costs fewer commits. A rebuild of a fresh view runs in bulk: the view
drops its indexes until every partition has reached the end offsets seen at the start (SQLite
appends then run several times faster than random index inserts), and reads wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from aiokafka.errors import ConsumerStoppedError, KafkaError

from ._kafka_fetch import KeyedRow, TopicFetcher
from ._records import Record
from ._sqlite_view import LocalView, ViewThread
from ._transport import Transport

__all__ = ["BULK_FROM", "FollowTarget", "Follower"]

logger = logging.getLogger("aiokafka_history")

#: A fresh view rebuilds in bulk when at least this many records are to be applied.
BULK_FROM = 100_000
_IN_FLIGHT = 4  # applies queued on the view thread while the next batch is fetched
_BULK_IN_FLIGHT = 2
_BULK_BATCH = 20_000  # records per transaction in bulk
_MAX_BUFFER = 50_000  # records held while the view is busy, at most
_PRUNE_EVERY = 5.0  # seconds between drops of what retention removed from the topic
# After records came, the next fetch waits this long unless a reader or a tail hurries it:
# a process that writes one message after another applies several at a time.
_LINGER = 0.005


class FollowTarget(Protocol):
    """What the follower needs of the layout it follows for."""

    topic: str
    views: ViewThread
    view: LocalView
    rebuilding: bool  # cleared by the follower when its bulk rebuild ends

    @property
    def closed(self) -> bool:
        """Whether the layout was closed."""

    def apply_rows(
        self, rows: Mapping[int, list[KeyedRow]], after: Mapping[int, int]
    ) -> list[Record]:
        """On the view thread: apply ``rows``; the records that are not the layout's."""

    def log_strays(self, strays: list[Record]) -> None:
        """Log records skipped by :meth:`apply_rows`."""

    def advanced(self, offsets: Mapping[int, int]) -> None:
        """The view holds every record below ``offsets[p]``: readers may go on."""

    def failed(self, exc: KafkaError) -> bool:
        """Whether ``exc`` stops following (it was recorded for readers); else retried."""

    async def prune(self, transport: Transport) -> None:
        """Drop from the view what retention removed from the topic."""


class Follower:
    """One run of following: from the consumer's positions until the layout is closed."""

    def __init__(
        self,
        target: FollowTarget,
        transport: Transport,
        fetcher: TopicFetcher,
        bulk_until: Mapping[int, int] | None,
        applied: Mapping[int, int],
    ) -> None:
        self._target = target
        self._transport = transport
        self._fetcher = fetcher
        self._bulk = dict(bulk_until) if bulk_until is not None else None
        self._progress = dict(applied)  # what the view holds (published unless in bulk)
        self._pending: collections.deque[tuple[asyncio.Future[list[Record]], dict[int, int]]]
        self._pending = collections.deque()
        self._count = 0
        self._error: BaseException | None = None

    async def run(self) -> None:
        """Follow until closed; KafkaErrors are retried unless the target says stop."""
        try:
            await self._run()
        finally:
            self._fetcher.close()

    async def _run(self) -> None:
        target = self._target
        buffer: dict[int, list[KeyedRow]] = {}
        after: dict[int, int] = {}
        size = 0
        idle = True  # the last fetch returned nothing
        pruned = began = time.monotonic()
        while not target.closed and not self._transport.closed:
            if self._error is not None:
                raise self._error
            try:
                # Records held back for the busy view: look again soon, not in half a second.
                wait = 0.005 if buffer else 0.5
                linger = _LINGER if self._bulk is None else 0.0
                batch, positions = await self._fetcher.fetch(wait, linger=linger)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                if target.failed(exc):
                    return
                logger.warning("following %r failed (%s); retrying", target.topic, exc)
                await asyncio.sleep(0.5)
                continue
            idle = not batch
            for p, records in batch.items():
                buffer.setdefault(p, []).extend(records)
                after[p] = positions.get(p, records[-1][0] + 1)
                size += len(records)
            in_flight = _IN_FLIGHT if self._bulk is None else _BULK_IN_FLIGHT
            room = len(self._pending) < in_flight
            enough = size >= (1 if self._bulk is None else _BULK_BATCH)
            if buffer and (idle or size >= _MAX_BUFFER or (enough and room)):
                while len(self._pending) >= in_flight:
                    await self._settled(self._pending[0][0])
                self._count += size
                future = target.views.submit(target.apply_rows, buffer, after)
                self._pending.append((future, after))
                # Published the moment it is applied (in order), not after the next fetch.
                future.add_done_callback(self._applied)
                buffer, after, size = {}, {}, 0
            held = set(buffer).union(*(a for _, a in self._pending))
            self._advance({p: at for p, at in positions.items() if p not in held})
            if self._bulk is not None and idle and self._pending:
                await self._settled(*(f for f, _ in self._pending))
            if self._bulk_done() and not buffer and not self._pending:
                await self._end_bulk(began)
            if time.monotonic() - pruned > _PRUNE_EVERY:
                pruned = time.monotonic()
                await target.prune(self._transport)

    def _bulk_done(self) -> bool:
        bulk = self._bulk
        return bulk is not None and all(self._progress.get(p, 0) >= e for p, e in bulk.items())

    async def _settled(self, *futures: asyncio.Future[list[Record]]) -> None:
        """Wait for these applies, and publish what is applied."""
        await asyncio.wait(futures)
        self._applied()

    def _applied(self, _: object = None) -> None:
        """Publish the applies that are done, oldest first, up to the first still running."""
        pending = self._pending
        while pending and pending[0][0].done():
            future, after = pending.popleft()
            if future.cancelled():
                self._error = self._error or asyncio.CancelledError()
                return
            error = future.exception()
            if error is not None:
                self._error = self._error or error  # raised by the follower's loop
                return
            self._target.log_strays(future.result())
            self._advance(after)

    def _advance(self, offsets: Mapping[int, int]) -> None:
        moved = {p: at for p, at in offsets.items() if at > self._progress.get(p, 0)}
        self._progress.update(moved)
        if moved and self._bulk is None:
            self._target.advanced(moved)

    async def _end_bulk(self, began: float) -> None:
        target = self._target
        await target.views.run(target.view.end_bulk)
        self._bulk = None
        target.rebuilding = False
        took = time.monotonic() - began
        logger.info(
            "rebuilt the view of %r: %d records in %.1f s (%.0f/s)",
            target.topic,
            self._count,
            took,
            self._count / max(took, 1e-9),
        )
        target.advanced(self._progress)

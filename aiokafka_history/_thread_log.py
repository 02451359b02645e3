"""The storage of LangGraph threads in a shared topic: appends, reads, tombstones, deletion.

A session log of another kind than chat messages, on the shared-topic layout
(``_shared_log.py``): one thread is one session of the topic, its records are framed by
``_thread_records.py``. Reads are read-your-writes like the histories': they wait until the
local view has applied the partition's end offset. Must be used from its engine's event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka.errors import KafkaError

from ._config import TopicSettings
from ._deadline import within
from ._log_writes import raise_for_outcome, write_error
from ._read_cache import ReadCache
from ._shared_keys import check_session_id, message_key, partition_for
from ._shared_log import SharedLayout
from ._sqlite_view import Row
from ._thread_records import (
    KEY_ID_BYTES,
    Assembler,
    StoredUnit,
    ThreadIndex,
    frame_unit,
    record_count,
)
from ._topic_log import MARGIN
from ._translate import Subject, is_access_error, translating

__all__ = ["ThreadLog"]

T = TypeVar("T")

_PUT_ID_BYTES = 8
_CACHE_BYTES = 64 * 1024 * 1024  # memory of the indexes kept between reads (about)


@dataclass(frozen=True, slots=True)
class _CachedIndex:
    """A thread's index as last read, at the partition's rewrite count ``tag``."""

    index: ThreadIndex
    end: int  # the index holds every row of the thread below this offset
    tag: int
    size: int  # about the memory it holds (see ThreadIndex.feed)


class ThreadLog:
    """Every thread of one shared topic. Not thread-safe: use it on its engine's loop."""

    def __init__(self, layout: SharedLayout) -> None:
        self._layout = layout
        # The indexes of recently read threads: a read then fetches and folds only what came
        # after.
        self._cache: ReadCache[_CachedIndex] = ReadCache(_CACHE_BYTES)

    @property
    def topic(self) -> str:
        """The shared topic."""
        return self._layout.topic

    def _subject(self, thread_id: str) -> Subject:
        return Subject(thread_id, self._layout.topic)

    async def setup(self) -> None:
        """Create the topic (or validate it) and start following it.

        Raises:
            TopicAdminError: the topic could not be created or described in time.
            ConfigurationError: the topic exists with settings that break the contract.
        """
        layout = self._layout
        with translating("admin", Subject("", layout.topic), "setting up"):
            await within(layout.timeouts.admin + MARGIN, layout.ready())

    # -- reads ------------------------------------------------------------------------------

    async def read(self, thread_id: str) -> ThreadIndex:
        """The index of every committed unit of ``thread_id`` (read-your-writes).

        The index is shared with later reads, which may fold newer rows into it: callers
        only read it. A read after rows were removed (a deletion, retention) builds a new one.

        Raises:
            InvalidSessionIdError: ``thread_id`` is not a valid id.
            SessionReadError: the view did not catch up within the read timeout.
        """
        return await self._reading(thread_id, self._index)

    async def units(self, thread_id: str) -> list[StoredUnit]:
        """Every committed unit of ``thread_id`` with its bytes as stored, read afresh.

        For copies: the cached index keeps decoded units, not their bytes.

        Raises:
            InvalidSessionIdError: ``thread_id`` is not a valid id.
            SessionReadError: the view did not catch up within the read timeout.
        """
        return await self._reading(thread_id, self._units)

    async def _reading(self, thread_id: str, read: Callable[[str, bytes], Awaitable[T]]) -> T:
        raw = check_session_id(thread_id, "thread_id")
        layout = self._layout
        with translating("read", self._subject(thread_id), "reading"):
            return await within(layout.timeouts.read + MARGIN, read(thread_id, raw))

    async def _rows(
        self, thread_id: str, raw: bytes, cached: _CachedIndex | None
    ) -> tuple[int, int, bool, list[Row]]:
        """``(end, tag, whole, rows)``: the thread's rows after ``cached`` (all without it).

        ``end`` is the partition's end offset, which the view has applied; ``whole`` says
        that the view removed rows of the partition since ``cached`` (a tombstone, a clear,
        retention: the layout's own rewrite count ``tag``), so ``rows`` are all of them.
        """
        layout = self._layout
        transport = await layout.ready()
        p = partition_for(raw, layout.partitions)
        end = await layout.caught_up(transport, p)
        tag, whole, rows = await layout.delta(
            thread_id,
            p,
            None if cached is None else cached.tag,
            0 if cached is None else cached.end,
            end,
        )
        return end, tag, whole, rows

    async def _index(self, thread_id: str, raw: bytes) -> ThreadIndex:
        cached = self._cache.get(thread_id)
        end, tag, whole, fresh = await self._rows(thread_id, raw, cached)
        rows = ((r.offset, r.value) for r in fresh)
        if cached is None or whole:
            index = ThreadIndex()
            size = index.feed(rows)
            self._cache.put(thread_id, _CachedIndex(index, end, tag, size))
            return index
        # The index folds only rows it does not hold: another read may have folded some of
        # these meanwhile, into the same index.
        index = cached.index
        try:
            size = index.feed(rows)
        except BaseException:
            self._cache.drop(thread_id)  # a fold that failed half-way must not be built on
            raise
        latest = self._cache.get(thread_id)
        if latest is not None and latest.index is index:  # not evicted nor rebuilt meanwhile
            entry = _CachedIndex(index, max(end, latest.end), tag, latest.size + size)
            self._cache.put(thread_id, entry)
        return index

    async def _units(self, thread_id: str, raw: bytes) -> list[StoredUnit]:
        _end, _tag, _whole, rows = await self._rows(thread_id, raw, None)
        return Assembler().feed((r.offset, r.value) for r in rows)

    async def threads(self) -> list[str]:
        """Every thread with records, sorted (reads every partition).

        Raises:
            TopicAdminError: the view did not catch up within the admin timeout.
        """
        return await self._layout.sessions()

    # -- writes -----------------------------------------------------------------------------

    async def append(
        self, thread_id: str, units: Sequence[bytes], tombstones: Sequence[bytes] = ()
    ) -> None:
        """Append ``units`` (each framed into records), then tombstone the key ids.

        One produce call, in order, to the thread's partition: a unit is visible only once
        its last record (the commit) is acknowledged; tombstones follow the units they make
        room for.

        Raises:
            SessionWriteError: not everything was acknowledged within the write timeout.
            NotAuthorizedError: an ACL refused the write.
        """
        raw = check_session_id(thread_id, "thread_id")
        values: list[bytes | None] = []
        keys: list[bytes] = []
        for data in units:
            ids = [secrets.token_bytes(KEY_ID_BYTES) for _ in range(record_count(len(data)))]
            values.extend(frame_unit(data, ids, secrets.token_bytes(_PUT_ID_BYTES)))
            keys.extend(message_key(raw, key_id) for key_id in ids)
        for key_id in tombstones:
            values.append(None)
            keys.append(message_key(raw, key_id))
        if not values:
            return
        await self._produce(thread_id, raw, keys, values)

    async def _produce(
        self, thread_id: str, raw: bytes, keys: list[bytes], values: list[bytes | None]
    ) -> None:
        layout = self._layout
        subject = self._subject(thread_id)
        write = layout.timeouts.write
        loop = asyncio.get_running_loop()
        started = loop.time()
        with translating("admin", subject, "preparing to write to"):
            try:
                transport = await layout.ready_within(write)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise write_error(subject, 0, len(values), exc, indeterminate=False) from exc
        remaining = max(0.001, write - (loop.time() - started))
        try:
            outcome = await transport.producer.produce(
                layout.topic,
                keys[0],
                values,
                keys=keys,
                partition=partition_for(raw, layout.partitions),
                timeout=remaining,
            )
        except (TimeoutError, asyncio.TimeoutError, KafkaError) as exc:
            if is_access_error(exc):
                with translating("admin", subject, "writing to"):
                    raise
            raise write_error(subject, 0, len(values), exc, indeterminate=False) from exc
        raise_for_outcome(subject, len(values), outcome)

    async def delete(self, thread_id: str) -> bool:
        """Remove every record of ``thread_id``; False when it had none.

        Raises:
            TopicAdminError: the clear marker or its tombstones were not acknowledged.
        """
        self._cache.drop(thread_id)
        log = self._layout.log(thread_id, settings=TopicSettings(), consumer_group=None)
        return await log.delete()

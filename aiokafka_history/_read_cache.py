"""What full reads already fetched and decoded, so the next one fetches only what is new.

Pure logic, no I/O: the layouts decide when an entry is still valid (``_topic_log.py``
re-reads the last record it saw, ``_shared_log.py`` compares the view's rewrite counter) and
hand the new records here. Bounded: at most ``max_bytes`` bytes of records over all entries
(their decoded messages take a few times that), the least recently read entries evicted
first; ``max_bytes=0`` switches the cache off.

The messages handed out are shared by every read of the entry (as LangChain's in-memory
history shares its list's messages): treat them as read-only, or switch the cache off.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from langchain_core.messages import BaseMessage

from ._errors import ConfigurationError
from ._records import Record, merge_in_write_order

__all__ = ["DEFAULT_READ_CACHE_BYTES", "CachedRead", "ReadCache", "check_cache_size", "kept"]

#: Bytes of stored records whose messages a client keeps decoded, by default. Decoded
#: messages take about two to four times the bytes of their records.
DEFAULT_READ_CACHE_BYTES = 64 * 1024 * 1024

Pair = tuple[Record, BaseMessage]


def check_cache_size(max_bytes: object) -> int:
    """``max_bytes`` if it is an int >= 0.

    Raises:
        ConfigurationError: it is not.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ConfigurationError(
            f"read_cache_bytes must be an int >= 0 (0: no cache), got {max_bytes!r}"
        )
    return max_bytes


def kept(pairs: Sequence[Pair]) -> tuple[list[Pair], int]:
    """``pairs`` as an entry keeps them (records without their bytes), and those bytes."""
    size = 0
    out: list[Pair] = []
    for record, message in pairs:
        size += len(record.value or b"")
        out.append((Record(record.partition, record.offset, record.timestamp, None), message))
    return out, size


@dataclass(slots=True)
class CachedRead:
    """One session's full read: its messages in write order, and how far each partition went.

    ``pairs`` keep each message with its record's position and timestamp (not its bytes).
    ``ends``: the offset each partition was read up to (exclusive). ``last``: the last record
    read on each partition, messages or not, with its bytes (what a re-read must find again).
    ``starts``: the log start offsets it was read from. ``tag``: the layout's own validity
    token. ``size``: the bytes of the records of ``pairs``. ``partitions``: those of ``pairs``
    (known without a pass over them).
    """

    pairs: list[Pair]
    ends: dict[int, int]
    last: dict[int, Record] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)
    tag: int = 0
    size: int = 0
    partitions: frozenset[int] = frozenset()

    @classmethod
    def of(
        cls,
        pairs: Sequence[Pair],
        ends: Mapping[int, int],
        last: Mapping[int, Record] | None = None,
        starts: Mapping[int, int] | None = None,
        tag: int = 0,
    ) -> CachedRead:
        """An entry of a whole read (``pairs`` in write order, with their records' bytes)."""
        stored, size = kept(pairs)
        partitions = frozenset(r.partition for r, _ in stored)
        return cls(stored, dict(ends), dict(last or {}), dict(starts or {}), tag, size, partitions)

    def extended(
        self,
        new: Mapping[int, list[Pair]],
        ends: Mapping[int, int],
        last: Mapping[int, Record] | None = None,
        starts: Mapping[int, int] | None = None,
    ) -> CachedRead:
        """A new entry with ``new`` messages (per partition, offset order) appended.

        Across partitions the result is what a whole read would give: each partition in
        offset order, interleaved by ``merge_in_write_order``.
        """
        merged_ends = {**self.ends, **ends}
        merged_last = {**self.last, **(last or {})}
        merged_starts = {**self.starts, **(starts or {})}
        grown = {p: kept(pairs) for p, pairs in new.items() if pairs}
        if not grown:
            return CachedRead(
                self.pairs,
                merged_ends,
                merged_last,
                merged_starts,
                self.tag,
                self.size,
                self.partitions,
            )
        size = self.size + sum(n for _, n in grown.values())
        partitions = self.partitions.union(grown)
        if len(partitions) == 1:
            (added, _), *_ = grown.values()
            pairs = self.pairs + added  # one partition: offset order is write order
        else:
            per_partition: dict[int, list[Record]] = {}
            messages: dict[tuple[int, int], BaseMessage] = {}
            for record, message in (*self.pairs, *(p for ps, _ in grown.values() for p in ps)):
                per_partition.setdefault(record.partition, []).append(record)
                messages[(record.partition, record.offset)] = message
            pairs = [
                (r, messages[(r.partition, r.offset)]) for r in merge_in_write_order(per_partition)
            ]
        return CachedRead(
            pairs, merged_ends, merged_last, merged_starts, self.tag, size, partitions
        )

    def below(self, partition: int, start: int) -> CachedRead:
        """The entry without the records of ``partition`` below ``start`` (retention).

        Its ``size`` stays an upper bound (the bytes of dropped records are not known).
        """
        pairs = [(r, m) for r, m in self.pairs if r.partition != partition or r.offset >= start]
        starts = {**self.starts, partition: start}
        return CachedRead(
            pairs,
            dict(self.ends),
            dict(self.last),
            starts,
            self.tag,
            self.size,
            frozenset(r.partition for r, _ in pairs),
        )


class Sized(Protocol):
    """An entry of :class:`ReadCache`: it knows the bytes it holds."""

    @property
    def size(self) -> int:
        """Bytes held."""


E = TypeVar("E", bound=Sized)


class ReadCache(Generic[E]):
    """Entries by key, least recently read evicted first past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = check_cache_size(max_bytes)
        self._entries: collections.OrderedDict[str, E] = collections.OrderedDict()
        self._size = 0

    @property
    def enabled(self) -> bool:
        """Whether anything is kept at all."""
        return self.max_bytes > 0

    @property
    def size(self) -> int:
        """Bytes of records held over all entries."""
        return self._size

    def get(self, key: str) -> E | None:
        """The entry of ``key`` (now the most recently read), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: E) -> None:
        """Keep ``entry`` for ``key`` (not kept when it alone is over the bound)."""
        self.drop(key)
        if entry.size > self.max_bytes:
            return
        self._entries[key] = entry
        self._size += entry.size
        while self._size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= evicted.size

    def drop(self, key: str) -> None:
        """Forget ``key``'s entry."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= old.size

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._size = 0

"""What full reads already fetched and decoded, so the next one fetches only what is new.

Pure logic, no I/O: the layouts decide when an entry is still valid (``_topic_log.py``
re-reads the last record it saw, ``_shared_log.py`` compares the view's rewrite counter) and
hand the new records here. Bounded: at most ``max_messages`` messages over all entries, the
least recently read entries evicted first; ``max_messages=0`` switches the cache off.

The messages handed out are shared by every read of the entry (as LangChain's in-memory
history shares its list's messages): treat them as read-only, or switch the cache off.
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from langchain_core.messages import BaseMessage

from ._errors import ConfigurationError
from ._records import Record, merge_in_write_order

__all__ = ["DEFAULT_READ_CACHE_MESSAGES", "CachedRead", "ReadCache", "check_cache_size"]

#: Messages kept over all sessions of a client by default (a few tens of MB of messages).
DEFAULT_READ_CACHE_MESSAGES = 100_000

Pair = tuple[Record, BaseMessage]


def check_cache_size(max_messages: object) -> int:
    """``max_messages`` if it is an int >= 0.

    Raises:
        ConfigurationError: it is not.
    """
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 0:
        raise ConfigurationError(
            f"read_cache_messages must be an int >= 0 (0: no cache), got {max_messages!r}"
        )
    return max_messages


@dataclass(slots=True)
class CachedRead:
    """One session's full read: its messages in write order, and how far each partition went.

    ``ends``: the offset each partition was read up to (exclusive). ``last``: the last record
    read on each partition, messages or not (what a re-read must find again). ``starts``: the
    log start offsets it was read from. ``tag``: the layout's own validity token.
    """

    pairs: list[Pair]
    ends: dict[int, int]
    last: dict[int, Record] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)
    tag: int = 0

    def extended(
        self,
        new: Mapping[int, list[Pair]],
        ends: Mapping[int, int],
        last: Mapping[int, Record] | None = None,
        starts: Mapping[int, int] | None = None,
    ) -> CachedRead:
        """A new entry with ``new`` messages appended (in write order across partitions)."""
        merged_ends = {**self.ends, **ends}
        merged_last = {**self.last, **(last or {})}
        merged_starts = {**self.starts, **(starts or {})}
        grown = {p: pairs for p, pairs in new.items() if pairs}
        if not grown:
            return CachedRead(self.pairs, merged_ends, merged_last, merged_starts, self.tag)
        partitions = {r.partition for r, _ in self.pairs[-1:]} | set(grown)
        if len(partitions) == 1 and len(self.ends) <= 1:
            pairs = self.pairs + next(iter(grown.values()))  # offset order is write order
        else:
            added = {p: [r for r, _ in pairs] for p, pairs in grown.items()}
            messages = {(r.partition, r.offset): m for r, m in self.pairs}
            messages.update(((r.partition, r.offset), m) for ps in grown.values() for r, m in ps)
            records = list(
                heapq.merge(
                    (r for r, _ in self.pairs), merge_in_write_order(added), key=_write_order
                )
            )
            pairs = [(r, messages[(r.partition, r.offset)]) for r in records]
        return CachedRead(pairs, merged_ends, merged_last, merged_starts, self.tag)

    def below(self, partition: int, start: int) -> CachedRead:
        """The entry without the records of ``partition`` below ``start`` (retention)."""
        pairs = [(r, m) for r, m in self.pairs if r.partition != partition or r.offset >= start]
        starts = {**self.starts, partition: start}
        return CachedRead(pairs, dict(self.ends), dict(self.last), starts, self.tag)


def _write_order(record: Record) -> tuple[int, int, int]:
    return (record.timestamp, record.partition, record.offset)


class ReadCache:
    """Entries by session, least recently read evicted first past ``max_messages``."""

    def __init__(self, max_messages: int) -> None:
        self.max_messages = check_cache_size(max_messages)
        self._entries: collections.OrderedDict[str, CachedRead] = collections.OrderedDict()
        self._size = 0

    @property
    def enabled(self) -> bool:
        """Whether anything is kept at all."""
        return self.max_messages > 0

    @property
    def size(self) -> int:
        """Messages held over all entries."""
        return self._size

    def get(self, key: str) -> CachedRead | None:
        """The entry of ``key`` (now the most recently read), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CachedRead) -> None:
        """Keep ``entry`` for ``key`` (not kept when it alone is over the bound)."""
        self.drop(key)
        if len(entry.pairs) > self.max_messages:
            return
        self._entries[key] = entry
        self._size += len(entry.pairs)
        while self._size > self.max_messages:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted.pairs)

    def drop(self, key: str) -> None:
        """Forget ``key``'s entry."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old.pairs)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._size = 0

"""Records as read from Kafka, and the order they were written in. Pure logic, no I/O."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ReadResult", "Record", "merge_in_write_order", "take_first"]


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read: where it is, when it was written, its value (and key, if kept)."""

    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a bounded read returned, per partition, and whether it caught up."""

    records: dict[int, list[Record]]
    caught_up: bool


def merge_in_write_order(per_partition: Mapping[int, Sequence[Record]]) -> list[Record]:
    """Merge partitions back into the order the records were written.

    Within a partition, offset order is write order and is kept as it is. Across partitions
    (a topic written without keys, like langchain_community's default 3 partitions), records
    are interleaved by timestamp, then partition, then offset: the order of a single writer.
    """
    lists = [list(records) for _, records in sorted(per_partition.items()) if records]
    if len(lists) == 1:
        return lists[0]
    return list(heapq.merge(*lists, key=lambda r: (r.timestamp, r.partition, r.offset)))


def take_first(
    merged: list[Record], count: int | None, starts: Mapping[int, int]
) -> tuple[list[Record], dict[int, int]]:
    """The first ``count`` merged records and, per partition, the offset after them.

    A partition none of whose records were taken keeps its start offset.
    """
    taken = merged if count is None else merged[:count]
    positions = dict(starts)
    for record in taken:
        positions[record.partition] = record.offset + 1
    return taken, positions

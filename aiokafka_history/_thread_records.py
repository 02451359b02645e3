r"""The records of a LangGraph thread in a shared topic, and what they add up to. Pure, no I/O.

A thread is one session of a shared topic (``_shared_log.py``): every record is keyed
``THREAD \x00 m <16 hex>`` (a key of its own, so a tombstone removes exactly it, and the local
view and compaction treat it like a chat message). This module knows nothing of LangGraph:
values arrive already serialized as ``(type, bytes)`` pairs (LangGraph's ``dumps_typed``).

**Units.** What a saver stores is a *unit*: a checkpoint (with the blobs of the channels in
its ``new_versions``), the writes of one ``put_writes`` call, or blobs moved out of units a
deletion removes. A unit is a small JSON header (names, ids, where each value is) and the
values after it.

**Records.** A unit that fits :data:`CHUNK_BYTES` is one record (``W``). A larger one is cut
into part records (``P``) and a commit record (``C``) carrying the last chunk, written last:
a reader assembles a unit only from a commit whose parts all came before it, so a put that
failed half way exposes nothing, and its orphan parts are ignored (and removed by the next
prune or deletion of the thread). Every record carries its own key id, so a deletion knows
which keys to tombstone. Records not in this format are strays and are skipped.

**The index.** :class:`ThreadIndex` folds a thread's units, in offset order, into what
LangGraph's ``BaseCheckpointSaver`` promises: checkpoints per namespace, channel blobs by
``(namespace, channel, version)`` (the latest write of a key wins), and pending writes per
checkpoint deduplicated by ``(task_id, idx)`` (a regular write is kept once, a special one,
negative ``idx``, is replaced). :meth:`ThreadIndex.removal` plans a deletion: which records
to tombstone, and which blobs still in use must first move into a new unit.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHUNK_BYTES",
    "KEY_ID_BYTES",
    "Assembler",
    "BlobsUnit",
    "CheckpointUnit",
    "Removal",
    "StoredCheckpoint",
    "StoredUnit",
    "ThreadIndex",
    "Typed",
    "Unit",
    "UnitPlace",
    "Version",
    "WritesUnit",
    "decode_unit",
    "encode_unit",
    "frame_unit",
    "record_count",
]

#: A serialized value: LangGraph's ``(type, bytes)`` from ``serde.dumps_typed``.
Typed = tuple[str, bytes]
#: A channel version, as LangGraph makes them.
Version = str | int | float

#: The largest chunk of a unit in one record: well below aiokafka's ``max_request_size``
#: and the broker's default ``message.max.bytes`` (both 1 MiB), key and framing included.
CHUNK_BYTES = 768 * 1024
#: Bytes of a record's key id (its key's 16 hex digits).
KEY_ID_BYTES = 8
_PUT_ID_BYTES = 8

_MAGIC = b"KLG\x01"
_WHOLE, _PART, _COMMIT = b"W", b"P", b"C"
_COUNT = struct.Struct(">I")
_HEADER_LEN = struct.Struct(">I")
_EMPTY = "empty"  # LangGraph's marker of a channel without a value
#: What an indexed unit costs beyond its bytes (its objects and the index's entries): 2.3 KB
#: measured with tracemalloc for a checkpoint of 8 channels, 3 of them stored, and its writes.
_UNIT_MEMORY = 3 * 1024


# -- units ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointUnit:
    """One ``put``: the checkpoint (without channel values), its metadata and new blobs."""

    ns: str
    checkpoint_id: str
    parent_id: str | None
    checkpoint: Typed
    metadata: Typed
    versions: Mapping[str, Version]  # the checkpoint's channel_versions
    blobs: tuple[tuple[str, Version, Typed], ...] = ()


@dataclass(frozen=True)
class WritesUnit:
    """One ``put_writes`` call: ``(idx, channel, value)`` of a task, for one checkpoint."""

    ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: tuple[tuple[int, str, Typed], ...]


@dataclass(frozen=True)
class BlobsUnit:
    """Blobs still in use, moved out of units that a deletion removes."""

    ns: str
    blobs: tuple[tuple[str, Version, Typed], ...]


Unit = CheckpointUnit | WritesUnit | BlobsUnit


def encode_unit(unit: Unit) -> bytes:
    """The bytes of ``unit``: a 4-byte header length, the JSON header, then the values."""
    payload: list[bytes] = []

    def slot(value: Typed) -> list[Any]:
        payload.append(value[1])
        return [value[0], len(value[1])]

    header: dict[str, Any]
    if isinstance(unit, CheckpointUnit):
        header = {
            "u": "cp",
            "ns": unit.ns,
            "id": unit.checkpoint_id,
            "parent": unit.parent_id,
            "cp": slot(unit.checkpoint),
            "md": slot(unit.metadata),
            "versions": dict(unit.versions),
            "blobs": [[c, v, *slot(t)] for c, v, t in unit.blobs],
        }
    elif isinstance(unit, WritesUnit):
        header = {
            "u": "w",
            "ns": unit.ns,
            "id": unit.checkpoint_id,
            "task": unit.task_id,
            "path": unit.task_path,
            "writes": [[i, c, *slot(t)] for i, c, t in unit.writes],
        }
    else:
        header = {"u": "b", "ns": unit.ns, "blobs": [[c, v, *slot(t)] for c, v, t in unit.blobs]}
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"".join([_HEADER_LEN.pack(len(head)), head, *payload])


def decode_unit(data: bytes) -> Unit:
    """The unit encoded in ``data``.

    Raises:
        ValueError: ``data`` is not a unit of this format.
    """
    try:
        (size,) = _HEADER_LEN.unpack_from(data)
        header = json.loads(data[4 : 4 + size].decode("utf-8"))
        position = 4 + size

        def take(kind: str, length: int) -> Typed:
            nonlocal position
            if not isinstance(length, int) or length < 0:
                raise TypeError("length")
            value = data[position : position + length]
            if len(value) != length:
                raise ValueError("truncated unit")
            position += length
            return (_text(kind), value)

        kind = header["u"]
        if kind == "cp":
            cp = take(*header["cp"])
            md = take(*header["md"])
            blobs = tuple((_text(c), _version(v), take(t, n)) for c, v, t, n in header["blobs"])
            versions = header["versions"]
            if not isinstance(versions, dict):
                raise TypeError("versions")
            for channel, version in versions.items():
                _text(channel)
                _version(version)
            parent = header["parent"]
            unit: Unit = CheckpointUnit(
                _text(header["ns"]),
                _text(header["id"]),
                None if parent is None else _text(parent),
                cp,
                md,
                versions,
                blobs,
            )
        elif kind == "w":
            writes = tuple((_integer(i), _text(c), take(t, n)) for i, c, t, n in header["writes"])
            unit = WritesUnit(
                _text(header["ns"]),
                _text(header["id"]),
                _text(header["task"]),
                _text(header["path"]),
                writes,
            )
        elif kind == "b":
            blobs = tuple((_text(c), _version(v), take(t, n)) for c, v, t, n in header["blobs"])
            unit = BlobsUnit(_text(header["ns"]), blobs)
        else:
            raise ValueError(f"unknown unit kind {kind!r}")
    except (KeyError, TypeError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a checkpoint unit: {type(exc).__name__}") from None
    if position != len(data):
        raise ValueError("trailing bytes after a checkpoint unit")
    return unit


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a text field")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer field")
    return value


def _version(value: object) -> Version:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("a version")
    return value


# -- records --------------------------------------------------------------------------------


def record_count(size: int, chunk: int = CHUNK_BYTES) -> int:
    """How many records a unit of ``size`` bytes takes."""
    return max(1, -(-size // chunk))


def frame_unit(
    data: bytes, key_ids: Sequence[bytes], put_id: bytes, chunk: int = CHUNK_BYTES
) -> list[bytes]:
    """The record values of a unit: one per key id (``record_count(len(data))`` of them).

    Raises:
        ValueError: the number of key ids or the id sizes do not match.
    """
    count = record_count(len(data), chunk)
    if len(key_ids) != count or any(len(k) != KEY_ID_BYTES for k in key_ids):
        raise ValueError(f"a unit of {len(data)} bytes needs {count} key ids of 8 bytes")
    if count == 1:
        return [_MAGIC + _WHOLE + key_ids[0] + data]
    if len(put_id) != _PUT_ID_BYTES:
        raise ValueError("put_id must be 8 bytes")
    records = [
        _MAGIC + _PART + key_ids[i] + put_id + _COUNT.pack(i) + data[i * chunk : (i + 1) * chunk]
        for i in range(count - 1)
    ]
    last = data[(count - 1) * chunk :]
    records.append(_MAGIC + _COMMIT + key_ids[-1] + put_id + _COUNT.pack(count - 1) + last)
    return records


@dataclass(frozen=True)
class StoredUnit:
    """A unit read back: where its commit is, the key ids of its records, its bytes."""

    offset: int
    key_ids: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class UnitPlace:
    """Where an indexed unit is: its commit's offset and the key ids of its records.

    The index keeps this rather than the unit's bytes: the decoded unit holds its values.
    """

    offset: int
    key_ids: tuple[bytes, ...]


class Assembler:
    """Committed units from ``(offset, value)`` rows fed in offset order, a batch at a time.

    The parts of a unit wait across batches for its commit record; a commit whose parts are
    not all there, and parts beyond its count, are orphans for good.
    """

    def __init__(self) -> None:
        self.strays = 0
        self._lost: list[bytes] = []  # key ids of parts that can never be committed
        self._parts: dict[bytes, dict[int, tuple[bytes, bytes]]] = {}

    @property
    def lost(self) -> list[bytes]:
        """Key ids of parts that can never be committed (their commit came without them)."""
        return list(self._lost)

    @property
    def orphans(self) -> list[bytes]:
        """Key ids of parts without a commit: lost ones, and those still waiting for theirs."""
        waiting = (k for parts in self._parts.values() for k, _ in parts.values())
        return [*self._lost, *waiting]

    def feed(self, rows: Iterable[tuple[int, bytes | None]]) -> list[StoredUnit]:
        """The units ``rows`` commit, in offset order."""
        units: list[StoredUnit] = []
        parts = self._parts
        head = len(_MAGIC) + 1 + KEY_ID_BYTES
        for offset, value in rows:
            if value is None or len(value) < head or not value.startswith(_MAGIC):
                self.strays += 1
                continue
            kind = value[len(_MAGIC) : len(_MAGIC) + 1]
            key_id = value[len(_MAGIC) + 1 : head]
            if kind == _WHOLE:
                units.append(StoredUnit(offset, (key_id,), value[head:]))
                continue
            if kind not in (_PART, _COMMIT) or len(value) < head + _PUT_ID_BYTES + 4:
                self.strays += 1
                continue
            put_id = value[head : head + _PUT_ID_BYTES]
            (number,) = _COUNT.unpack_from(value, head + _PUT_ID_BYTES)
            chunk = value[head + _PUT_ID_BYTES + 4 :]
            if kind == _PART:
                parts.setdefault(put_id, {})[number] = (key_id, chunk)
                continue
            mine = parts.pop(put_id, {})
            if any(i not in mine for i in range(number)):  # a part is missing: never complete
                self._lost.extend(k for k, _ in mine.values())
                self._lost.append(key_id)
                continue
            ordered = [mine.pop(i) for i in range(number)]
            self._lost.extend(k for k, _ in mine.values())  # parts beyond the count
            keys = (*(k for k, _ in ordered), key_id)
            units.append(StoredUnit(offset, keys, b"".join([*(c for _, c in ordered), chunk])))
        return units


# -- the index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint of the index and the unit that holds it."""

    unit: CheckpointUnit
    stored: UnitPlace


@dataclass(frozen=True)
class Removal:
    """A planned deletion: blobs to move into new units first, then records to tombstone."""

    rehome: tuple[BlobsUnit, ...]
    tombstones: tuple[bytes, ...]  # key ids

    def __bool__(self) -> bool:
        return bool(self.rehome or self.tombstones)


_WriteEntry = tuple[str, str, Typed, str]  # task_id, channel, value, task_path


class ThreadIndex:
    """A thread's checkpoints, blobs and pending writes, folded from its records.

    Rows are fed in offset order, a batch at a time (:meth:`feed`): folding the rows of two
    batches gives what folding them at once gives, so a reader keeps one index per thread
    and decodes only what was appended since.
    """

    def __init__(self) -> None:
        self._assembler = Assembler()
        self.next_offset = 0  # rows below it were fed
        self.bad_units = 0
        self.units: list[tuple[UnitPlace, Unit]] = []
        self.checkpoints: dict[str, dict[str, StoredCheckpoint]] = {}
        self._blobs: dict[tuple[str, str, Version], tuple[Typed, UnitPlace]] = {}
        self._writes: dict[tuple[str, str], dict[tuple[str, int], _WriteEntry]] = {}

    @classmethod
    def of(cls, rows: Iterable[tuple[int, bytes | None]]) -> ThreadIndex:
        """The index of ``rows`` (in offset order)."""
        index = cls()
        index.feed(rows)
        return index

    @property
    def orphans(self) -> list[bytes]:
        """Key ids of records of units never committed (see :class:`Assembler`)."""
        return self._assembler.orphans

    @property
    def strays(self) -> int:
        """Records that are not of this format."""
        return self._assembler.strays

    def feed(self, rows: Iterable[tuple[int, bytes | None]]) -> int:
        """Fold ``rows`` (in offset order); those below :attr:`next_offset` were already.

        Returns about the memory the fold added: the values' bytes (the decoded units keep
        their values) plus :data:`_UNIT_MEMORY` per unit.
        """
        new = [(offset, value) for offset, value in rows if offset >= self.next_offset]
        if not new:
            return 0
        self.next_offset = new[-1][0] + 1
        units_before = len(self.units)
        for stored in self._assembler.feed(new):
            try:
                unit = decode_unit(stored.data)
            except ValueError:
                self.bad_units += 1
                continue
            place = UnitPlace(stored.offset, stored.key_ids)
            self.units.append((place, unit))
            self._add(place, unit)
        held = sum(len(value or b"") for _, value in new)
        return held + _UNIT_MEMORY * (len(self.units) - units_before)

    def _add(self, stored: UnitPlace, unit: Unit) -> None:
        if isinstance(unit, WritesUnit):
            mine = self._writes.setdefault((unit.ns, unit.checkpoint_id), {})
            for idx, channel, value in unit.writes:
                if idx >= 0 and (unit.task_id, idx) in mine:
                    continue  # a regular write is stored once
                mine[(unit.task_id, idx)] = (unit.task_id, channel, value, unit.task_path)
            return
        for channel, version, value in unit.blobs:
            self._blobs[(unit.ns, channel, version)] = (value, stored)
        if isinstance(unit, CheckpointUnit):
            by_id = self.checkpoints.setdefault(unit.ns, {})
            by_id[unit.checkpoint_id] = StoredCheckpoint(unit, stored)

    # -- reads ------------------------------------------------------------------------------

    def get(self, ns: str, checkpoint_id: str | None) -> StoredCheckpoint | None:
        """The checkpoint ``checkpoint_id`` of ``ns``, or the newest one (highest id)."""
        by_id = self.checkpoints.get(ns)
        if not by_id:
            return None
        if checkpoint_id is None:
            checkpoint_id = max(by_id)
        return by_id.get(checkpoint_id)

    def newest_first(self, ns: str | None) -> list[StoredCheckpoint]:
        """Checkpoints of ``ns`` (every namespace for None), highest id first."""
        found = [
            c
            for name, by_id in self.checkpoints.items()
            if ns is None or name == ns
            for c in by_id.values()
        ]
        found.sort(key=lambda c: c.unit.checkpoint_id, reverse=True)
        return found

    def channel_values(self, ns: str, versions: Mapping[str, Version]) -> dict[str, Typed]:
        """The stored value of each channel at ``versions`` (channels without one left out)."""
        values: dict[str, Typed] = {}
        for channel, version in versions.items():
            found = self._blobs.get((ns, channel, version))
            if found is not None and found[0][0] != _EMPTY:
                values[channel] = found[0]
        return values

    def pending_writes(self, ns: str, checkpoint_id: str) -> list[tuple[str, str, Typed]]:
        """``(task_id, channel, value)`` of a checkpoint, by ``(task_path, task_id, idx)``."""
        stored = self._writes.get((ns, checkpoint_id), {})
        order = sorted(stored, key=lambda k: (stored[k][3], k[0], k[1]))
        return [stored[k][:3] for k in order]

    # -- deletions --------------------------------------------------------------------------

    def removal(self, remove: Iterable[tuple[str, str]]) -> Removal:
        """Plan deleting the checkpoints ``(ns, checkpoint_id)`` and their writes.

        Also drops what nothing needs any more: checkpoints stored again later, writes of
        deleted checkpoints, blobs no surviving checkpoint refers to, parts of units that can
        never be committed (not those of a put that may still be in flight). Blobs that
        surviving checkpoints still use and that sit in a unit being dropped are moved into
        a new unit first.
        """
        gone = set(remove)
        alive = {
            (ns, cid)
            for ns, by_id in self.checkpoints.items()
            for cid in by_id
            if (ns, cid) not in gone
        }
        needed: set[tuple[str, str, Version]] = set()
        for ns, cid in alive:
            survivor = self.checkpoints[ns][cid].unit
            needed.update(
                (ns, channel, version)
                for channel, version in survivor.versions.items()
                if (ns, channel, version) in self._blobs
            )
        winners = {id(c.stored) for by_id in self.checkpoints.values() for c in by_id.values()}
        keep: set[int] = set()  # units (by the id of their UnitPlace) that stay
        for stored, unit in self.units:
            if isinstance(unit, WritesUnit):
                if (unit.ns, unit.checkpoint_id) in alive:
                    keep.add(id(stored))
            elif isinstance(unit, CheckpointUnit):
                if (unit.ns, unit.checkpoint_id) in alive and id(stored) in winners:
                    keep.add(id(stored))
            elif all(  # moved blobs that are all still in use stay where they are
                (unit.ns, c, v) in needed and self._blobs[(unit.ns, c, v)][1] is stored
                for c, v, _ in unit.blobs
            ):
                keep.add(id(stored))
        rehome: dict[str, list[tuple[str, Version, Typed]]] = {}
        for key in sorted(needed, key=repr):
            value, holder = self._blobs[key]
            if id(holder) not in keep:
                rehome.setdefault(key[0], []).append((key[1], key[2], value))
        tombstones = [
            k for stored, _ in self.units if id(stored) not in keep for k in stored.key_ids
        ]
        # Parts that can never be committed go too; parts still waiting for their commit stay:
        # the put may be in flight (a writer that died in the middle of one leaves its parts
        # until the thread is deleted).
        tombstones.extend(self._assembler.lost)
        units = tuple(BlobsUnit(ns, tuple(blobs)) for ns, blobs in rehome.items())
        return Removal(units, tuple(tombstones))

"""Checkpoint records of a thread (``_thread_records``): framing, chunks, the index. No broker."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc

import pytest

from aiokafka_history._thread_records import (
    Assembler,
    BlobsUnit,
    CheckpointUnit,
    ThreadIndex,
    WritesUnit,
    decode_unit,
    encode_unit,
    frame_unit,
    record_count,
)

CHUNK = 1000


def _checkpoint(
    cid: str, versions: dict[str, int], blobs: dict[str, int], ns: str = ""
) -> CheckpointUnit:
    return CheckpointUnit(
        ns=ns,
        checkpoint_id=cid,
        parent_id=None,
        checkpoint=("json", cid.encode()),
        metadata=("json", b"{}"),
        versions=versions,
        blobs=tuple((c, v, ("json", f"{c}@{v}".encode())) for c, v in blobs.items()),
    )


def _rows(*units: object, chunk: int = CHUNK) -> list[tuple[int, bytes | None]]:
    rows: list[tuple[int, bytes | None]] = []
    for unit in units:
        data = unit if isinstance(unit, bytes) else encode_unit(unit)  # type: ignore[arg-type]
        ids = [os.urandom(8) for _ in range(record_count(len(data), chunk))]
        for value in frame_unit(data, ids, os.urandom(8), chunk):
            rows.append((len(rows), value))
    return rows


def _index(rows: list[tuple[int, bytes | None]]) -> ThreadIndex:
    return ThreadIndex.of(rows)


@pytest.mark.parametrize(
    "unit",
    [
        _checkpoint("1", {"a": 1, "b": "00002.5"}, {"a": 1, "b": "00002.5"}, ns="child:x"),
        WritesUnit(
            "",
            "1",
            "task",
            "a:b",
            ((0, "ch", ("msgpack", b"\x00\xff")), (-3, "__interrupt__", ("null", b""))),
        ),
        BlobsUnit("", (("a", 1.5, ("bytes", b"")),)),
    ],
)
def test_units_round_trip(unit: object) -> None:
    assert decode_unit(encode_unit(unit)) == unit  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data", [b"", b"\x00\x00\x00\x02{}", b'\x00\x00\x00\x09{"u":"?"}', b"garbage!"]
)
def test_a_broken_unit_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_unit(data)


def _header(header: dict[str, object], payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return len(head).to_bytes(4, "big") + head + payload


_GOOD_CP: dict[str, object] = {
    "u": "cp",
    "ns": "",
    "id": "1",
    "parent": None,
    "cp": ["json", 1],
    "md": ["json", 1],
    "versions": {"a": 1},
    "blobs": [["a", 1, "json", 1]],
}


@pytest.mark.parametrize(
    "change",
    [
        {"ns": ["x"]},
        {"id": 7},
        {"parent": {"p": 1}},
        {"versions": {"a": [1]}},
        {"versions": {"a": True}},
        {"blobs": [[["a"], 1, "json", 1]]},
        {"blobs": [["a", [1], "json", 1]]},
        {"cp": [["json"], 1]},
        {"cp": ["json", 1.5]},
    ],
)
def test_a_unit_with_a_field_of_the_wrong_type_is_a_bad_unit_not_a_stopped_thread(
    change: dict[str, object],
) -> None:
    # Another writer of the shared topic may put anything under a thread's keys: a unit
    # whose header has a list where a name or a version goes is skipped like any bad unit
    # (a TypeError from indexing it used to fail every read of the thread).
    assert isinstance(decode_unit(_header(_GOOD_CP, b"abc")), CheckpointUnit)
    bad = _header({**_GOOD_CP, **change}, b"abc")
    with pytest.raises(ValueError):
        decode_unit(bad)
    rows = _rows(_checkpoint("1", {"a": 1}, {"a": 1}))
    rows.append((len(rows), frame_unit(bad, [os.urandom(8)], b"")[0]))
    rows += [(len(rows) + o, v) for o, v in _rows(_checkpoint("2", {"a": 2}, {"a": 2}))]
    index = ThreadIndex.of(rows)
    assert index.bad_units == 1
    assert sorted(index.checkpoints[""]) == ["1", "2"]


def test_a_large_unit_is_chunked_and_reassembled() -> None:
    big = _checkpoint("1", {"a": 1}, {"a": 1})
    big = CheckpointUnit(
        big.ns, "1", None, ("bytes", os.urandom(5500)), big.metadata, {"a": 1}, big.blobs
    )
    rows = _rows(big)
    assert len(rows) == 6  # 5 parts and the commit
    assembler = Assembler()
    units = assembler.feed(rows)
    assert [decode_unit(u.data) for u in units] == [big]
    assert len(units[0].key_ids) == 6
    assert assembler.orphans == []


def test_parts_without_their_commit_are_orphans_and_hide_nothing() -> None:
    small = _checkpoint("1", {"a": 1}, {"a": 1})
    big = CheckpointUnit("", "2", "1", ("bytes", os.urandom(3500)), small.metadata, {"a": 1}, ())
    rows = _rows(small, big)
    torn = rows[:-1]  # the commit of the big unit never landed
    index = _index(torn)
    assert list(index.checkpoints[""]) == ["1"]
    assert len(index.orphans) == 3
    # A commit whose part is missing is never assembled either.
    holed = rows[:2] + rows[3:]
    index = _index(holed)
    assert list(index.checkpoints[""]) == ["1"]
    assert len(index.orphans) == 3


def test_strays_are_skipped() -> None:
    rows = [
        (0, b'{"type": "human"}'),
        (1, None),
        *((o + 2, v) for o, v in _rows(_checkpoint("1", {}, {}))),
    ]
    assembler = Assembler()
    units = assembler.feed(rows)
    assert assembler.strays == 2 and len(units) == 1


def test_unchanged_channels_resolve_to_earlier_blobs() -> None:
    index = _index(
        _rows(
            _checkpoint("1", {"a": 1, "b": 1}, {"a": 1, "b": 1}),
            _checkpoint("2", {"a": 2, "b": 1}, {"a": 2}),
        )
    )
    assert index.channel_values("", {"a": 2, "b": 1}) == {
        "a": ("json", b"a@2"),
        "b": ("json", b"b@1"),
    }
    assert index.get("", None).unit.checkpoint_id == "2"  # type: ignore[union-attr]


def test_writes_keep_the_first_regular_write_and_the_last_special_one() -> None:
    def writes(task: str, *items: tuple[int, str, bytes], path: str = "") -> WritesUnit:
        return WritesUnit("", "1", task, path, tuple((i, c, ("json", v)) for i, c, v in items))

    index = _index(
        _rows(
            _checkpoint("1", {}, {}),
            writes("t2", (0, "x", b"first"), path="b"),
            writes("t2", (0, "x", b"again"), path="b"),
            writes("t1", (-1, "__error__", b"e1"), (1, "y", b"y"), path="a"),
            writes("t1", (-1, "__error__", b"e2"), path="a"),
        )
    )
    assert index.pending_writes("", "1") == [
        ("t1", "__error__", ("json", b"e2")),
        ("t1", "y", ("json", b"y")),
        ("t2", "x", ("json", b"first")),
    ]


def test_a_removal_moves_blobs_still_in_use_and_tombstones_the_rest() -> None:
    rows = _rows(
        _checkpoint("1", {"a": 1, "b": 1}, {"a": 1, "b": 1}),
        WritesUnit("", "1", "t", "", ((0, "x", ("json", b"w")),)),
        _checkpoint("2", {"a": 2, "b": 1}, {"a": 2}),
        WritesUnit("", "2", "t", "", ((0, "x", ("json", b"w2")),)),
    )
    index = _index(rows)
    removal = index.removal([("", "1")])
    assert removal.rehome == (BlobsUnit("", (("b", 1, ("json", b"b@1")),)),)
    keys = [k for stored, _ in index.units for k in stored.key_ids]
    assert set(removal.tombstones) == {keys[0], keys[1]}
    # Applied: the moved blob comes first, then the tombstones remove rows from the view.
    survivors = [
        (o, v) for o, v in rows if v is not None and v[5:13] not in set(removal.tombstones)
    ]
    moved = _rows(*removal.rehome)
    after = _index(survivors + [(100 + o, v) for o, v in moved])
    assert list(after.checkpoints[""]) == ["2"]
    assert after.channel_values("", {"a": 2, "b": 1}) == {
        "a": ("json", b"a@2"),
        "b": ("json", b"b@1"),
    }
    assert after.pending_writes("", "2") == [("t", "x", ("json", b"w2"))]
    # Nothing more to remove: the moved blobs stay where they are.
    assert not after.removal([])


def test_a_removal_of_nothing_drops_only_what_nothing_needs() -> None:
    rows = _rows(_checkpoint("1", {"a": 1}, {"a": 1}), _checkpoint("1", {"a": 2}, {"a": 2}))
    index = _index(rows)  # the same checkpoint stored twice: the later one wins
    removal = index.removal([])
    assert removal.rehome == ()
    assert removal.tombstones == index.units[0][0].key_ids


def _state(index: ThreadIndex) -> object:
    """What an index answers, comparable between two indexes."""
    return (
        [(stored.offset, stored.key_ids, unit) for stored, unit in index.units],
        {ns: {cid: c.unit for cid, c in by_id.items()} for ns, by_id in index.checkpoints.items()},
        sorted(index.orphans),
        index.strays,
        index.bad_units,
        [c.unit for c in index.newest_first(None)],
        index.pending_writes("", "1"),
        index.channel_values("", {"a": 2, "b": 1}),
        index.removal([("", "1")]),
    )


def test_an_index_fed_in_batches_answers_as_one_fed_at_once() -> None:
    # Whatever the cut between two reads (inside a chunked unit, before its commit, around
    # strays, an orphan and a bad unit), folding the rows in two or three batches gives the
    # index folding them at once gives, and rows fed twice are folded once.
    big = CheckpointUnit("", "2", "1", ("bytes", os.urandom(2500)), ("json", b"{}"), {"a": 2}, ())
    units = _rows(
        _checkpoint("1", {"a": 1, "b": 1}, {"a": 1, "b": 1}),
        WritesUnit("", "1", "t", "", ((0, "x", ("json", b"w")),)),
        big,
        _checkpoint("3", {"a": 2, "b": 1}, {"a": 2}),
    )
    torn = _rows(
        CheckpointUnit("", "9", None, ("bytes", os.urandom(1500)), ("json", b"{}"), {}, ())
    )
    rows = [(0, b"not ours"), *[(o + 1, v) for o, v in units]]
    rows += [
        (len(rows), None),
        (len(rows) + 1, torn[0][1]),
        (len(rows) + 2, b"KLG\x01W" + b"k" * 8 + b"??"),
    ]
    whole = _state(ThreadIndex.of(rows))
    cuts = range(len(rows) + 1)
    for first in cuts:
        for second in cuts[first:]:
            index = ThreadIndex()
            index.feed(rows[:first])
            index.feed(rows[:second])  # again from the start: what it holds is skipped
            index.feed(rows[second:])
            assert _state(index) == whole, (first, second)
    # A later batch completes a unit whose parts came before: not an orphan any more.
    index = ThreadIndex.of(rows[: 1 + 3])  # the first parts of the chunked unit
    assert index.orphans
    index.feed(rows)
    assert _state(index) == whole


def test_a_prune_keeps_the_parts_of_a_put_that_may_still_be_in_flight() -> None:
    # A prune planned while a large put has written its parts but not yet its commit must
    # not tombstone those parts: the commit lands after, and the acknowledged put would be
    # lost. Parts whose commit came without them can never be used: those go.
    old = _checkpoint("1", {"a": 1}, {"a": 1})
    big = CheckpointUnit("", "3", "2", ("bytes", os.urandom(2500)), old.metadata, {"a": 1}, ())
    done = _rows(old, _checkpoint("2", {"a": 1}, {}))
    in_flight = _rows(big)[:-1]  # its parts; the commit is not there yet
    holed = _rows(big)
    del holed[1]  # a commit whose second part is missing: never complete
    rows = [*done, *((len(done) + o, v) for o, v in holed)]
    rows += [(len(rows) + o, v) for o, v in in_flight]
    index = ThreadIndex.of(rows)
    waiting = {v[5:13] for _, v in in_flight if v is not None}  # their key ids
    lost = {v[5:13] for _, v in holed if v is not None}
    tombstones = set(index.removal([("", "1")]).tombstones)
    assert lost <= tombstones
    assert not waiting & tombstones


@pytest.mark.parametrize("value_bytes", [10, 2000])
def test_what_feed_says_an_index_holds_is_not_less_than_what_it_holds(value_bytes: int) -> None:
    # The saver's read cache is bounded by these estimates: small checkpoints cost far more
    # in objects than in bytes (3.7x their records' bytes for 10-byte values).
    units: list[object] = []
    for step in range(300):
        versions = {f"channel-{c}": step for c in range(8)}
        blobs = {f"channel-{c}": step for c in range(3)}
        checkpoint = _checkpoint(f"{step:08}", versions, {})
        units.append(
            CheckpointUnit(
                "",
                checkpoint.checkpoint_id,
                None,
                checkpoint.checkpoint,
                checkpoint.metadata,
                versions,
                tuple((c, v, ("json", os.urandom(value_bytes))) for c, v in blobs.items()),
            )
        )
        units.append(WritesUnit("", checkpoint.checkpoint_id, "t", "", ((0, "x", ("json", b"w")),)))
    rows = _rows(*units)
    gc.collect()
    tracemalloc.start()
    try:
        index = ThreadIndex()
        said = index.feed(rows[: len(rows) // 2]) + index.feed(rows)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert said >= held, (said, held)
    assert said <= 3 * held  # and not wildly more

"""The shared layout's pure parts: record keys, partitions, and the SQLite view."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from aiokafka_history import ConfigurationError, InvalidSessionIdError, SqliteView
from aiokafka_history._shared_keys import (
    check_session_id,
    clear_key,
    message_key,
    parse_key,
    partition_for,
    position_key,
)
from aiokafka_history._sqlite_view import ViewRecord


@pytest.mark.parametrize("session", ["s", "user 42 / chat: ü", "x" * 1024, "\x01\uffff", ".."])
@pytest.mark.parametrize("group", ["g", "a group ü", "x" * 300])
def test_keys_round_trip(session: str, group: str) -> None:
    raw = check_session_id(session)
    message = parse_key(message_key(raw))
    assert message is not None and (message.session, message.kind) == (session, "m")
    assert len(message.rest) == 16
    position = parse_key(position_key(raw, group))
    assert position is not None and (position.session, position.kind, position.rest) == (
        session,
        "p",
        group,
    )
    cleared = parse_key(clear_key(raw))
    assert cleared is not None and (cleared.session, cleared.kind) == (session, "c")


def test_message_keys_are_unique() -> None:
    raw = check_session_id("s")
    assert len({message_key(raw) for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize(
    "key",
    [
        None,
        b"",
        b"plain",
        b"\x00m0123456789abcdef",
        b"s\x00",
        b"s\x00x",
        b"s\x00m12",
        b"s\x00c1",
        b"s\x00p",
        b"\xff\x00c",
    ],
)
def test_keys_of_others_are_not_parsed(key: bytes | None) -> None:
    assert parse_key(key) is None


def test_partition_is_kafkas_default_partitioner_of_the_session() -> None:
    # Java: Utils.toPositive(Utils.murmur2("session-1".getBytes())) % 12 (Kafka's partitioner).
    from aiokafka.partitioner import DefaultPartitioner

    for name in ("session-1", "ü", "x" * 200):
        raw = name.encode()
        expected = DefaultPartitioner()(raw, list(range(12)), list(range(12)))
        assert partition_for(raw, 12) == expected


@pytest.mark.parametrize(
    ("session_id", "rule"),
    [
        ("", "non-empty"),
        (7, "non-empty str"),
        ("a\x00b", "NUL"),
        ("x" * 1025, "1024 bytes"),
        ("\ud800", "UTF-8"),
    ],
)
def test_session_id_rules(session_id: object, rule: str) -> None:
    with pytest.raises(InvalidSessionIdError, match=rule):
        check_session_id(session_id)


def _message(session: str, offset: int, value: bytes | None = b"{}") -> ViewRecord:
    return ViewRecord(offset, offset * 10, session, "m", f"{offset:016x}", b"k%d" % offset, value)


def test_view_applies_messages_clears_and_positions() -> None:
    view = SqliteView()
    assert view.bind("t", 2, stale_before=0) == {}
    view.apply(0, [_message("a", 0), _message("b", 1), _message("a", 2)], 3)
    assert [r.offset for r in view.rows("a", 0, 10, None)] == [0, 2]
    assert [r.offset for r in view.last_rows("a", 10, 1, None)] == [2]
    assert [r.offset for r in view.last_rows("a", 2, 5, None)] == [0]  # below the end only
    position = ViewRecord(3, 30, "a", "p", "g", b"pk", b"3")
    clear = ViewRecord(4, 40, "a", "c", "", b"ck", b"")
    view.apply(0, [position, _message("a", 5)], 6)
    assert view.position("a", "g") == 3
    view.apply(0, [clear], 7)  # hides what came before it, not what came after
    assert [r.offset for r in view.rows("a", 0, 10, None)] == [5]
    assert view.sessions() == ["a", "b"]
    assert view.counts() == {"a": 1, "b": 1}
    view.apply(0, [ViewRecord(8, 80, "a", "p", "g", b"pk", None)], 9)  # position tombstone
    assert view.position("a", "g") is None
    assert view.prune(0, 2) == 1  # retention removed offset 1 ("b")
    assert view.sessions() == ["a"]
    assert view.bind("t", 2, stale_before=0) == {0: 9}


def test_a_view_for_another_topic_or_a_stale_one_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite"
    view = SqliteView(path)
    view.bind("t", 1, stale_before=0)
    view.apply(0, [_message("a", 0)], 1)
    view.close()
    view = SqliteView(path)
    assert view.bind("t", 1, stale_before=0) == {0: 1}  # resumed from the file
    assert view.bind("t", 2, stale_before=0) == {}  # partitions changed: rebuilt
    view.apply(0, [_message("a", 0)], 1)
    assert view.bind("t", 2, stale_before=time.time() + 1) == {}  # offline too long: rebuilt
    assert view.rows("a", 0, 10, None) == []
    view.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


def test_a_view_file_serves_one_client_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite"
    first = SqliteView(path)
    first.bind("t", 1, stale_before=0)
    with pytest.raises(ConfigurationError, match="in use by another client"):
        SqliteView(path).bind("t", 1, stale_before=0)
    first.close()
    second = SqliteView(path)  # free again once the first is closed
    assert second.bind("t", 1, stale_before=0) == {}
    second.close()


def test_a_followed_view_without_new_records_is_not_stale(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite")
    view.bind("t", 1, stale_before=0)
    view.apply(0, [_message("a", 0)], 1)
    view._conn().execute("UPDATE applied SET at = 0")
    view.touch()  # ... but the view kept following until now
    assert view.bind("t", 1, stale_before=time.time() - 60) == {0: 1}
    view._conn().execute("DELETE FROM meta WHERE name = 'alive_at'")
    assert view.bind("t", 1, stale_before=time.time() - 60) == {}  # offline too long
    view.close()


def _tombstone(session: str, offset: int, of: int) -> ViewRecord:
    return ViewRecord(offset, offset * 10, session, "m", f"{of:016x}", b"k%d" % of, None)


def _view_state(view: SqliteView) -> tuple[object, ...]:
    return (
        {s: [(r.offset, r.value) for r in view.rows(s, 0, 100, None)] for s in view.sessions()},
        view.position("a", "g"),
        view.keys("a", 100),
    )


def _changes() -> list[list[ViewRecord]]:
    """Messages, a clear, a message tombstone and positions: what a rebuild may meet."""
    return [
        [_message("a", 0), _message("b", 1), _message("a", 2, b'{"x": 2}')],
        [ViewRecord(3, 30, "a", "p", "g", b"pk", b"2"), _message("b", 4), _message("a", 5)],
        [ViewRecord(6, 60, "b", "c", "", b"ck", b""), _tombstone("b", 7, of=1)],
        [_message("b", 8), _tombstone("a", 9, of=2), _message("a", 10)],
    ]


def test_a_message_tombstone_removes_that_message_only() -> None:
    view = SqliteView()
    view.bind("t", 1, stale_before=0)
    view.apply(0, [_message("a", 0), _message("a", 1), _message("a", 2)], 3)
    view.apply(0, [_tombstone("a", 3, of=1), _tombstone("a", 4, of=99)], 5)
    assert [r.offset for r in view.rows("a", 0, 10, None)] == [0, 2]
    assert view.keys("a", 10) == [b"a\x00m" + f"{o:016x}".encode() for o in (0, 2)]


def test_a_bulk_load_ends_in_the_state_record_by_record_applies_reach(tmp_path: Path) -> None:
    one_by_one = SqliteView()
    one_by_one.bind("t", 1, stale_before=0)
    for n, records in enumerate(_changes()):
        one_by_one.apply(0, records, 100 + n)
    expected = _view_state(one_by_one)
    assert expected[0] == {"a": [(0, b"{}"), (5, b"{}"), (10, b"{}")], "b": [(8, b"{}")]}

    path = tmp_path / "view.sqlite"
    bulk = SqliteView(path)
    bulk.bind("t", 1, stale_before=0)
    bulk.begin_bulk()
    assert bulk.in_bulk()
    changes = _changes()
    with bulk.batch():  # one transaction for several applies
        bulk.apply(0, changes[0], 100)
        bulk.apply(0, changes[1], 101)
    bulk.close()  # a crash mid-rebuild: the file says so, and the rebuild goes on
    bulk = SqliteView(path)
    assert bulk.bind("t", 1, stale_before=0) == {0: 101}
    assert bulk.in_bulk()
    bulk.apply(0, changes[2], 102)
    bulk.apply(0, changes[3], 103)
    bulk.end_bulk()
    assert not bulk.in_bulk()
    assert _view_state(bulk) == expected
    indexes = {n for (n,) in bulk._conn().execute("SELECT name FROM sqlite_master")}
    assert {"messages_by_session", "messages_by_partition"} <= indexes
    bulk.close()


def test_a_failed_batch_applies_nothing() -> None:
    view = SqliteView()
    view.bind("t", 1, stale_before=0)
    with pytest.raises(ZeroDivisionError), view.batch():
        view.apply(0, [_message("a", 0)], 1)
        raise ZeroDivisionError
    assert view.rows("a", 0, 10, None) == []
    assert view.bind("t", 1, stale_before=0) == {}


def test_a_view_file_of_an_older_layout_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE messages (session TEXT, offset INTEGER, key BLOB)")
    db.execute("CREATE TABLE applied (partition INTEGER PRIMARY KEY, next_offset, at)")
    db.execute("INSERT INTO applied VALUES (0, 7, 1e12)")
    db.commit()
    db.close()
    view = SqliteView(path)
    assert view.bind("t", 1, stale_before=0) == {}
    view.apply(0, [_message("a", 0)], 1)
    assert [r.offset for r in view.rows("a", 0, 10, None)] == [0]
    view.close()


@pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "bulk"])
def test_a_tombstone_removes_what_came_before_it_only(bulk: bool) -> None:
    view = SqliteView()
    view.bind("t", 1, stale_before=0)
    if bulk:
        view.begin_bulk()
    again = ViewRecord(2, 20, "a", "m", f"{0:016x}", b"k0", b'{"again": 1}')
    view.apply(0, [_message("a", 0), _tombstone("a", 1, of=0), again, _message("a", 3)], 4)
    if bulk:
        view.end_bulk()
    rows = view.rows("a", 0, 10, None)
    assert [(r.offset, r.value) for r in rows] == [(2, b'{"again": 1}'), (3, b"{}")]

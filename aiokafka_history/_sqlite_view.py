"""The local view of the shared topic, in SQLite (standard library): indexed by session.

Part of the storage boundary, like the aiokafka modules: every method does disk (or memory)
I/O and must run on the view's own thread (:class:`ViewThread`), never on an event loop.
In memory by default; with a file path a restarted process resumes from the offsets it had
applied instead of rebuilding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import queue
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol, TypeVar

from ._errors import ConfigurationError, HistoryClosedError

__all__ = ["LocalView", "Row", "SqliteView", "ViewRecord", "ViewThread", "open_view"]

T = TypeVar("T")

_SCHEMA_VERSION = 3  # PRAGMA user_version: a file of another version is rebuilt
_TABLES = ("meta", "applied", "messages", "positions", "deferred")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applied (
    partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL, offset INTEGER NOT NULL, partition INTEGER NOT NULL,
    ts INTEGER NOT NULL, mid TEXT NOT NULL, value BLOB
);
CREATE TABLE IF NOT EXISTS positions (
    session TEXT NOT NULL, grp TEXT NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (session, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deferred (session TEXT NOT NULL, offset INTEGER NOT NULL, mid TEXT);
"""
# Dropped during a bulk load and made again at its end (random inserts into an index are
# what a rebuild would otherwise spend its time on).
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_session ON messages (session, offset)",
    "CREATE INDEX IF NOT EXISTS messages_by_partition ON messages (partition, offset)",
)
_CACHE_KIB = 4 * 1024  # SQLite's page cache: bounded (and what an index build sorts in)


class Row(NamedTuple):
    """A stored message: its offset, timestamp and value (the record's bytes)."""

    offset: int
    timestamp: int
    value: bytes | None


class ViewRecord(NamedTuple):
    """A record to apply, already classified by the follower."""

    offset: int
    timestamp: int
    session: str
    kind: str  # "m" message, "p" position, "c" clear marker
    rest: str
    key: bytes
    value: bytes | None


class LocalView(Protocol):
    """What the shared layout needs of a view. Called on the view thread only."""

    def bind(self, topic: str, partitions: int, stale_before: float) -> dict[int, int]:
        """Check the view belongs to ``topic`` with this many partitions; the applied offsets.

        A view made for another topic or partition count, or last updated before
        ``stale_before`` (a ``time.time()``: tombstones it missed may be gone), is emptied
        and rebuilt.
        """

    def apply(self, partition: int, records: Iterable[ViewRecord], next_offset: int) -> None:
        """Apply the records (offset order) and record ``next_offset``, atomically.

        A message tombstone (kind ``"m"``, value None) removes that message.
        """

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Make the applies inside one transaction (fewer commits when records pour in)."""

    def begin_bulk(self) -> None:
        """Get ready for a rebuild: many applies follow, and no reads until :meth:`end_bulk`.

        A view may stop maintaining its indexes meanwhile; the state survives a restart
        (see :meth:`in_bulk`).
        """

    def end_bulk(self) -> None:
        """Finish a bulk load: after it, reads are answered again."""

    def in_bulk(self) -> bool:
        """Whether a bulk load was begun and not ended (in this process or a crashed one)."""

    def touch(self) -> None:
        """Record that the view is up and following, even when no record arrives."""

    def prune(self, partition: int, log_start: int) -> int:
        """Drop messages below the partition's log start (retention); how many."""

    def rows(self, session: str, start: int, end: int, limit: int | None) -> list[Row]:
        """Messages of ``session`` with ``start <= offset < end``, oldest first."""

    def last_rows(self, session: str, end: int, count: int, before: int | None) -> list[Row]:
        """The newest ``count`` messages below ``end`` (and ``before``), oldest first."""

    def keys(self, session: str, end: int) -> list[bytes]:
        """The keys of the session's messages below ``end``."""

    def position(self, session: str, group: str) -> int | None:
        """The last consumed position of ``session`` for ``group``."""

    def groups(self, session: str) -> list[str]:
        """The groups with a stored position for ``session``."""

    def sessions(self) -> list[str]:
        """Sessions with messages or positions, sorted."""

    def has(self, session: str) -> bool:
        """Whether ``session`` has messages or positions."""

    def counts(self) -> dict[str, int]:
        """Messages per session."""

    def close(self) -> None:
        """Release the database."""


class SqliteView:
    """:class:`LocalView` in SQLite: ``":memory:"`` or a file (WAL, ``synchronous=NORMAL``)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = os.fspath(path)
        self._db: sqlite3.Connection | None = None
        self._batching = False
        self._bulk = False

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0.2
                )
            except sqlite3.Error as exc:
                raise self._unusable(exc) from None
            try:
                if self.path != ":memory:":
                    # One client per file: two followers interleaving their applies could put
                    # back rows a clear removed. The lock is held until the view is closed.
                    db.execute("PRAGMA locking_mode=EXCLUSIVE")
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.execute("BEGIN EXCLUSIVE")
                    db.execute("COMMIT")
                db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                (version,) = db.execute("PRAGMA user_version").fetchone()
                if version != _SCHEMA_VERSION:  # an older layout of the file: rebuilt
                    for table in _TABLES:
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                db.executescript(_SCHEMA)
                self._bulk = _meta(db, "bulk") is not None
                if not self._bulk:
                    _make_indexes(db)
            except sqlite3.Error as exc:
                db.close()
                if "locked" in str(exc):
                    raise ConfigurationError(
                        f"the view file {self.path!r} is in use by another client (in this or "
                        "another process); give each client a file of its own"
                    ) from None
                raise self._unusable(exc) from None
            self._db = db
        return self._db

    def _unusable(self, exc: sqlite3.Error) -> ConfigurationError:
        return ConfigurationError(
            f"the view file {self.path!r} cannot be used ({type(exc).__name__}: {exc}): "
            "give view= the path of a SQLite file in a writable directory, or ':memory:'"
        )

    def bind(self, topic: str, partitions: int, stale_before: float) -> dict[int, int]:
        db = self._conn()
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        alive = float(meta.pop("alive_at", 0))
        bulk = meta.pop("bulk", None)
        wanted = {"topic": topic, "partitions": str(partitions)}
        (newest,) = db.execute("SELECT max(at) FROM applied").fetchone()
        stale = newest is not None and max(newest, alive) < stale_before
        if (meta and meta != wanted) or stale:
            with self._transaction(db):
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table}")
            if bulk:
                _make_indexes(db)
                self._bulk = False
            meta = {}
        if not meta:
            db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
        return dict(db.execute("SELECT partition, next_offset FROM applied").fetchall())

    @contextlib.contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        if self._batching:  # inside batch(): its transaction
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        db = self._conn()
        with self._transaction(db):
            self._batching = True
            try:
                yield
            finally:
                self._batching = False

    def begin_bulk(self) -> None:
        db = self._conn()
        with self._transaction(db):
            db.execute("DROP INDEX IF EXISTS messages_by_session")
            db.execute("DROP INDEX IF EXISTS messages_by_partition")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('bulk', '1')")
        self._bulk = True

    def end_bulk(self) -> None:
        db = self._conn()
        with self._transaction(db):
            _make_indexes(db)
            # What the bulk load put aside: clears, then removed messages, by session.
            clears = db.execute(
                "SELECT session, max(offset) FROM deferred WHERE mid IS NULL GROUP BY session"
            ).fetchall()
            db.executemany("DELETE FROM messages WHERE session = ? AND offset < ?", clears)
            dropped = db.execute(
                "SELECT session, mid, offset FROM deferred WHERE mid IS NOT NULL"
            ).fetchall()
            self._drop(db, dropped)
            db.execute("DELETE FROM deferred")
            db.execute("DELETE FROM meta WHERE name = 'bulk'")
        self._bulk = False

    def in_bulk(self) -> bool:
        self._conn()
        return self._bulk

    def apply(self, partition: int, records: Iterable[ViewRecord], next_offset: int) -> None:
        db = self._conn()
        bulk = self._bulk
        # The records themselves are the parameters (numbered: offset ?1, timestamp ?2,
        # session ?3, rest ?5, value ?7), so a message costs no Python work of its own.
        insert = (
            f"INSERT {'' if bulk else 'OR REPLACE '}INTO messages (offset, ts, session, mid, "
            f"value, partition) VALUES (?1, ?2, ?3, ?5, ?7, {partition:d})"
        )
        with self._transaction(db):
            inserts: list[ViewRecord] = []
            dropped: list[tuple[str, str, int]] = []
            for r in records:
                if r[3] == "m":  # kind
                    if r[6] is not None:  # value
                        if dropped:  # removals before it first: a key may come back
                            self._flush(db, insert, [], dropped, bulk)
                            dropped = []
                        inserts.append(r)
                    else:
                        if inserts:
                            self._flush(db, insert, inserts, [], bulk)
                            inserts = []
                        dropped.append((r.session, r.rest, r.offset))
                    continue
                if inserts or dropped:  # what came before, in order
                    self._flush(db, insert, inserts, dropped, bulk)
                    inserts, dropped = [], []
                if r.kind == "c":
                    if bulk:
                        db.execute(
                            "INSERT INTO deferred VALUES (?, ?, NULL)", (r.session, r.offset)
                        )
                    else:
                        db.execute(
                            "DELETE FROM messages WHERE session = ? AND offset < ?",
                            (r.session, r.offset),
                        )
                elif r.value is None:  # a position tombstone
                    db.execute(
                        "DELETE FROM positions WHERE session = ? AND grp = ?", (r.session, r.rest)
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                        (r.session, r.rest, int(r.value)),
                    )
            self._flush(db, insert, inserts, dropped, bulk)
            db.execute(
                "INSERT OR REPLACE INTO applied VALUES (?, ?, ?)",
                (partition, next_offset, time.time()),
            )

    def _flush(
        self,
        db: sqlite3.Connection,
        insert: str,
        inserts: list[ViewRecord],
        dropped: list[tuple[str, str, int]],
        bulk: bool,
    ) -> None:
        if inserts:
            whole = len(inserts) - len(inserts) % _ROWS
            if whole:
                # Many rows per statement: one SQLite step (and one release of Python's lock)
                # per _ROWS messages instead of per message. The parameters of row i are the
                # seven fields of its record, numbered from 7 * i + 1.
                flat = list(itertools.chain.from_iterable(inserts[:whole]))
                width = 7 * _ROWS
                db.executemany(
                    _many_rows(insert),
                    (flat[at : at + width] for at in range(0, len(flat), width)),
                )
            if whole < len(inserts):
                db.executemany(insert, inserts[whole:])
        if not dropped:
            return
        if bulk:
            db.executemany("INSERT INTO deferred (session, mid, offset) VALUES (?, ?, ?)", dropped)
        else:
            self._drop(db, dropped)

    @staticmethod
    def _drop(db: sqlite3.Connection, dropped: Iterable[tuple[str, str, int]]) -> None:
        """Remove messages by (session, mid, tombstone offset): what came before it."""
        db.executemany("DELETE FROM messages WHERE session = ? AND mid = ? AND offset < ?", dropped)

    def touch(self) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO meta VALUES ('alive_at', ?)", (str(time.time()),)
        )

    def prune(self, partition: int, log_start: int) -> int:
        cur = self._conn().execute(
            "DELETE FROM messages WHERE partition = ? AND offset < ?", (partition, log_start)
        )
        return cur.rowcount

    def rows(self, session: str, start: int, end: int, limit: int | None) -> list[Row]:
        cur = self._conn().execute(
            "SELECT offset, ts, value FROM messages WHERE session = ? AND offset >= ? "
            "AND offset < ? ORDER BY offset LIMIT ?",
            (session, start, end, -1 if limit is None else limit),
        )
        return [Row(o, t, v) for o, t, v in cur.fetchall()]

    def last_rows(self, session: str, end: int, count: int, before: int | None) -> list[Row]:
        top = end if before is None else min(end, before)
        cur = self._conn().execute(
            "SELECT offset, ts, value FROM messages WHERE session = ? AND offset < ? "
            "ORDER BY offset DESC LIMIT ?",
            (session, top, count),
        )
        return [Row(o, t, v) for o, t, v in reversed(cur.fetchall())]

    def keys(self, session: str, end: int) -> list[bytes]:
        cur = self._conn().execute(
            "SELECT mid FROM messages WHERE session = ? AND offset < ? ORDER BY offset",
            (session, end),
        )
        prefix = session.encode("utf-8") + b"\x00m"
        return [prefix + mid.encode("ascii") for (mid,) in cur.fetchall()]

    def position(self, session: str, group: str) -> int | None:
        row = (
            self._conn()
            .execute("SELECT offset FROM positions WHERE session = ? AND grp = ?", (session, group))
            .fetchone()
        )
        return None if row is None else int(row[0])

    def groups(self, session: str) -> list[str]:
        cur = self._conn().execute("SELECT grp FROM positions WHERE session = ?", (session,))
        return [g for (g,) in cur.fetchall()]

    def sessions(self) -> list[str]:
        cur = self._conn().execute(
            "SELECT session FROM messages GROUP BY session "
            "UNION SELECT session FROM positions ORDER BY 1"
        )
        return [s for (s,) in cur.fetchall()]

    def has(self, session: str) -> bool:
        db = self._conn()
        for table in ("messages", "positions"):
            found = db.execute(
                f"SELECT 1 FROM {table} WHERE session = ? LIMIT 1",
                (session,),
            ).fetchone()
            if found:
                return True
        return False

    def counts(self) -> dict[str, int]:
        cur = self._conn().execute("SELECT session, count(*) FROM messages GROUP BY session")
        return dict(cur.fetchall())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _make_indexes(db: sqlite3.Connection) -> None:
    for statement in _INDEXES:
        db.execute(statement)


def _meta(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def open_view(view: str | os.PathLike[str] | LocalView | None) -> LocalView:
    """The view for the ``view=`` option: a path, ``":memory:"``/None, or a view object."""
    if view is None:
        return SqliteView()
    if isinstance(view, str | os.PathLike):
        return SqliteView(view)
    if all(hasattr(view, name) for name in ("bind", "apply", "batch", "rows", "last_rows")):
        return view
    raise ConfigurationError(f"view must be a path, ':memory:' or a LocalView, got {view!r}")


_ROWS = 64  # messages per INSERT statement when many come together


@functools.lru_cache(maxsize=256)
def _many_rows(insert: str) -> str:
    """``insert`` (one row of numbered parameters ?1..?7) made to insert ``_ROWS`` rows."""
    head, _, row = insert.partition(" VALUES ")

    def shifted(i: int) -> str:
        return re.sub(r"\?(\d+)", lambda m: f"?{int(m.group(1)) + 7 * i}", row)

    return f"{head} VALUES {', '.join(shifted(i) for i in range(_ROWS))}"


class ViewThread:
    """The one thread a view runs on; its calls are awaited from the event loop in order.

    Leaner than an executor: a call is a tuple on a queue, and the results of calls that end
    while the loop is busy go back together, in one wake-up of the loop. A thousand reads at
    once would otherwise cost a thousand wake-ups (and an executor's locks and futures each).
    The thread starts with the first call and ends when the view is closed, or once this
    object is collected (it holds no reference to it, so an unclosed client's view is released
    with it). It is a daemon: a process that exits without closing the client leaves a file
    view as a crash would, and the view resumes from what it committed.
    """

    def __init__(self, view: LocalView, name: str) -> None:
        self.view = view
        self._name = name
        self._mailbox = _Mailbox()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the view thread."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the view thread (after what is queued); its future.

        A call whose future is cancelled before it starts does not run.

        Raises:
            HistoryClosedError: the view was closed.
        """
        if self._closed:
            raise HistoryClosedError("the local view was closed: the client was closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        mailbox = self._mailbox
        if self._thread is None:
            self._thread = threading.Thread(
                target=mailbox.work, name=f"{self._name}_0", daemon=True
            )
            self._thread.start()
            weakref.finalize(self, mailbox.calls.put, None)  # collected unclosed: stop
        mailbox.calls.put((fn, args, future, loop))  # type: ignore[arg-type]
        return future

    def close(self) -> None:
        """Close the view after what is queued, and stop the thread (does not wait); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            self.view.close()  # never used on a thread of its own
            return
        self._mailbox.calls.put((self.view.close, (), None, None))
        self._mailbox.calls.put(None)


_ViewCall = tuple[
    Callable[..., object],
    tuple[object, ...],
    "asyncio.Future[object] | None",
    "asyncio.AbstractEventLoop | None",
]


class _Mailbox:
    """The view thread's queue of calls and what goes back to the loop (no view in it)."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[_ViewCall | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ended: list[tuple[asyncio.Future[object], BaseException | None, object]] = []
        self._posted = False  # a delivery of ``_ended`` is queued on the loop

    def work(self) -> None:
        """The thread: run the calls in order, hand the results back to their loop."""
        calls = self.calls
        while (call := calls.get()) is not None:
            fn, args, future, loop = call
            del call
            if future is not None and future.cancelled():
                continue
            error: BaseException | None = None
            result: object = None
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                error = exc
            del fn, args
            if future is not None and loop is not None:
                self._hand_back(loop, future, error, result)

    def _hand_back(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[object],
        error: BaseException | None,
        result: object,
    ) -> None:
        with self._lock:
            self._ended.append((future, error, result))
            if self._posted:
                return  # the delivery already queued takes this one too
            self._posted = True
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop was closed: nobody awaits these any more
            with self._lock:
                self._ended.clear()
                self._posted = False

    def _deliver(self) -> None:
        """On the loop: settle the futures of the calls that ended."""
        with self._lock:
            ended, self._ended = self._ended, []
            self._posted = False
        for future, error, result in ended:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
                continue
            try:
                future.set_exception(error)
            except TypeError:  # StopIteration cannot travel through a future
                future.set_exception(RuntimeError(f"{type(error).__name__} raised in the view"))

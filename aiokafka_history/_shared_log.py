r"""The shared-topic layout: every session in one keyed topic, read from a local view.

Implements :class:`~._session_log.SessionLog` like ``_topic_log.py`` does, for services with
many sessions. Records are keyed ``session \x00 kind ...`` (``_shared_keys.py``) and a
session's records share one partition. A follower task applies the whole topic, in offset
order, to a local view (``_sqlite_view.py``); reads first ask the partition's end offset and
wait (within the read timeout) until the view has applied it, so a read sees every write
acknowledged before it began, in any process. The last consumed position of a session is a
record of its own (latest wins under compaction). Clearing writes a clear marker that hides
everything before it, then a tombstone per message so compaction removes them physically.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiokafka.errors import ConsumerStoppedError, KafkaError
from langchain_core.messages import BaseMessage

from ._codec import encode_messages
from ._config import TopicSettings
from ._deadline import within
from ._errors import ConfigurationError, TopicAdminError
from ._kafka_admin import EndOffsets, TopicMissingError
from ._kafka_fetch import KeyedRow, TopicFetcher
from ._kafka_producer import MAX_REQUEST_SIZE
from ._log_writes import raise_for_outcome, write_error
from ._read_cache import DEFAULT_READ_CACHE_BYTES, CachedRead, ReadCache
from ._records import Record
from ._session_log import BadRecords, StartPosition
from ._shared_keys import (
    check_session_id,
    clear_key,
    message_key,
    parse_key,
    partition_for,
    position_key,
)
from ._sqlite_view import LocalView, Row, ViewRecord, ViewThread
from ._topic_log import MARGIN, LogTimeouts
from ._translate import Subject, is_access_error, translating
from ._transport import Transport
from ._view_follower import BULK_FROM, Follower

__all__ = ["SharedLayout", "SharedSessionLog", "SharedTail", "check_shared_configs"]

T = TypeVar("T")
logger = logging.getLogger("aiokafka_history")

_TOPIC_APPEAR_TIMEOUT = 30.0
_DEFAULT_DELETE_RETENTION_MS = 86_400_000


def check_shared_configs(topic: str, configs: Mapping[str, str]) -> None:
    """Refuse a shared topic whose settings would lose or keep data against the contract.

    Raises:
        ConfigurationError: ``cleanup.policy`` lacks ``compact`` (deleted sessions would stay
            on disk until retention), or the topic is not keyed by offset order.
    """
    policy = {p.strip() for p in configs.get("cleanup.policy", "delete").split(",")}
    if "compact" not in policy:
        raise ConfigurationError(
            f"shared topic {topic!r} has cleanup.policy={configs.get('cleanup.policy')!r}: "
            "a shared topic needs 'compact' (or 'compact,delete') so that cleared and deleted "
            "sessions are removed physically; fix the topic or use another name"
        )


class SharedLayout:
    """Every session of one client in the topic ``topic``, served by a local view.

    ``settings`` are the topic's: partitions, replication, retention (``ttl_ms``).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Transport]],
        topic: str,
        settings: TopicSettings,
        view: LocalView,
        timeouts: LogTimeouts,
        bad_records: BadRecords,
        *,
        read_cache: int = DEFAULT_READ_CACHE_BYTES,
    ) -> None:
        self.connect = connect
        self.topic = topic
        self.settings = settings
        self.timeouts = timeouts
        self.bad_records = bad_records
        self.view = view
        self.views = ViewThread(view, "aiokafka-history-view")
        self.partitions = 0
        self._applied: dict[int, int] = {}
        self._advanced: asyncio.Event | None = None  # set on every change (tails wait on it)
        self._waiters: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        self._starting: asyncio.Task[Transport] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._fetcher: TopicFetcher | None = None
        self._failure: BaseException | None = None
        self._log_starts: dict[int, int] = {}  # pruned below these offsets already
        self.cache: ReadCache[CachedRead] = ReadCache(read_cache)  # full reads, by session
        # Per partition, how often the view removed rows (clears, removals, retention); only
        # touched on the view thread. A cached read is extended only while it is unchanged.
        self._rewrites: dict[int, int] = {}
        self._ends: EndOffsets | None = None
        self.rebuilding = False  # a bulk rebuild of the view runs: reads wait for its end
        # Set once the partitions are known: the partition of a session, and its id too.
        self._home: Callable[[bytes], int] = functools.partial(partition_for, partitions=1)
        self._owner: Callable[[bytes], tuple[str, int] | None] = functools.partial(
            _owner, partitions=1
        )
        self._closed = False

    def log(
        self, session_id: str, *, settings: TopicSettings, consumer_group: str | None
    ) -> SharedSessionLog:
        """The log of ``session_id``; validates it, no I/O."""
        raw = check_session_id(session_id)
        if settings != TopicSettings():
            raise ConfigurationError(
                "ttl_ms, replication_factor and partition belong to the shared topic (the "
                "client's shared_topic_settings), not to one of its sessions"
            )
        if consumer_group is not None and (
            not isinstance(consumer_group, str) or not consumer_group
        ):
            raise ConfigurationError("consumer_group must be a non-empty string or None")
        if consumer_group is not None:
            try:
                consumer_group.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigurationError("consumer_group must be encodable as UTF-8") from None
        return SharedSessionLog(self, session_id, raw, consumer_group or self.topic)

    # -- start and follow -------------------------------------------------------------------

    async def ready(self) -> Transport:
        """The transport, once the topic exists (created or validated) and is followed."""
        if self._closed:
            raise ConsumerStoppedError  # translated: the client was closed
        # A view that stopped (no READ permission, a broken view file) fails the reads that
        # wait for it, not the writes.
        # The engine's checks on every call, not just the first: open, and on its home loop
        # (the started task below would otherwise hand its transport to any loop).
        await self.connect()
        starting = self._starting
        if starting is not None and starting.done() and not _failed(starting):
            return starting.result()  # the common case: started long ago
        if starting is None or (starting.done() and _failed(starting)):
            starting = self._starting = asyncio.ensure_future(self._start())
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            if starting.cancelled() and self._closed and not _cancelling():
                raise ConsumerStoppedError from None  # aclose() stopped the start, not us
            raise

    async def ready_within(self, seconds: float) -> Transport:
        """:meth:`ready`, bounded by ``seconds`` while the start is still to come."""
        starting = self._starting
        if starting is not None and starting.done() and not _failed(starting):
            return await self.ready()  # started: no deadline to arm
        return await within(seconds, self.ready())

    async def _start(self) -> Transport:
        transport = await self.connect()
        admin = transport.admin
        try:
            parts = await admin.describe(self.topic)
            made = False
        except TopicMissingError:
            made = await admin.create_topic(
                self.topic,
                partitions=self.settings.partition,
                replication_factor=self.settings.replication_factor,
                configs=self.settings.shared_topic_configs(),
            )
            parts = await self._appear(transport)
        if made:
            configs = self.settings.shared_topic_configs()
        else:  # someone else's topic (or one created by another process just now)
            configs = await admin.topic_config(self.topic)
            check_shared_configs(self.topic, configs)
        keep = int(configs.get("delete.retention.ms", _DEFAULT_DELETE_RETENTION_MS)) / 1000
        views, view = self.views, self.view
        applied = await views.run(view.bind, self.topic, len(parts), time.time() - keep)
        begins, ends = await admin.offsets_bounds(self.topic, parts)
        for p, start in begins.items():
            if applied.get(p, 0) < start:
                await views.run(self._prune_view, p, start)
        self._log_starts = dict(begins)
        starts = {p: max(applied.get(p, 0), begins[p]) for p in parts}
        bulk = await views.run(view.in_bulk)
        if not bulk and not applied and sum(ends[p] - starts[p] for p in parts) >= BULK_FROM:
            await views.run(view.begin_bulk)  # a rebuild: no reads until it is done
            bulk = True
        self.rebuilding = bulk
        self.partitions = len(parts)
        self._home = functools.partial(partition_for, partitions=self.partitions)
        # A session's id and partition, kept for the busiest sessions. Small: a rebuild meets
        # each session's records far apart (the cache would only grow the process by tens of
        # megabytes, not save murmur2s), while a live topic's writers are few at a time.
        self._owner = functools.lru_cache(maxsize=4096)(
            functools.partial(_owner, partitions=self.partitions)
        )
        self._applied = dict(starts)
        self._advanced = asyncio.Event()
        fetcher = await transport.readers.open_fetcher(self.topic, starts, self._log_starts_of)
        self._fetcher = fetcher
        until = {p: ends[p] for p in parts} if bulk else None
        self._follower = asyncio.ensure_future(self._follow(transport, fetcher, until))
        return transport

    async def _appear(self, transport: Transport) -> list[int]:
        deadline = time.monotonic() + _TOPIC_APPEAR_TIMEOUT
        while True:
            try:
                return await transport.admin.describe(self.topic)
            except TopicMissingError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _log_starts_of(self, partitions: list[int]) -> Mapping[int, int]:
        transport = await self.connect()
        begins, _ = await within(
            self.timeouts.admin, transport.admin.offsets_bounds(self.topic, partitions)
        )
        return begins

    async def _follow(
        self, transport: Transport, fetcher: TopicFetcher, bulk_until: dict[int, int] | None
    ) -> None:
        """Apply the topic to the view, partition by partition in offset order, until closed.

        ``bulk_until``: a rebuild in bulk (the view without its indexes) until every partition
        is applied up to these offsets; reads wait for its end.
        """
        try:
            await Follower(self, transport, fetcher, bulk_until, self._applied).run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            logger.error("the view of %r stopped: %s", self.topic, type(exc).__name__)
            self._failure = TopicAdminError(
                f"the local view of shared topic {self.topic!r} stopped "
                f"({type(exc).__name__}); create a new client",
                session_id="",
                topic=self.topic,
            )
            self._wake()

    def advanced(self, offsets: Mapping[int, int]) -> None:
        """The view holds every record below ``offsets[p]``: wake the readers waiting."""
        applied = self._applied
        for p, at in offsets.items():
            if at > applied.get(p, 0):
                applied[p] = at
                self._release(p)
        self._wake()

    def failed(self, exc: KafkaError) -> bool:
        """Stop following on an access error, which reads then raise; else retry."""
        if not is_access_error(exc):
            return False
        self._failure = _translated(exc, self.topic)
        self._wake()
        return True

    async def prune(self, transport: Transport) -> None:
        """Drop from the view what retention removed from the topic."""
        with contextlib.suppress(KafkaError, asyncio.TimeoutError, TimeoutError):
            parts = list(range(self.partitions))
            begins = await within(
                self.timeouts.admin, transport.admin.offsets_bounds(self.topic, parts)
            )
            for p, start in begins[0].items():
                # Only where the log start moved: a prune scans the view's rows.
                if start > self._log_starts.get(p, 0):
                    await self.views.run(self._prune_view, p, start)
                    self._log_starts[p] = start
            await self.views.run(self.view.touch)

    def _prune_view(self, partition: int, log_start: int) -> int:
        """On the view thread: drop rows below ``log_start``."""
        self._rewrites[partition] = self._rewrites.get(partition, 0) + 1
        return self.view.prune(partition, log_start)

    async def delta(
        self, session: str, partition: int, tag: int | None, since: int, end: int
    ) -> tuple[int, bool, list[Row]]:
        """:meth:`delta_rows`, without a call on the view thread when nothing can have changed.

        A cached read made up to ``since >= end`` at the rewrite count the partition still has
        lacks nothing (the count is read after the caller waited for ``end``).
        """
        if tag is not None and since >= end and tag == self._rewrites.get(partition, 0):
            return tag, False, []
        return await self.views.run(self.delta_rows, session, partition, tag, since, end)

    def delta_rows(
        self, session: str, partition: int, tag: int | None, since: int, end: int
    ) -> tuple[int, bool, list[Row]]:
        """On the view thread: the rows of ``session`` below ``end`` a cached read lacks.

        ``tag`` is the partition's rewrite count when the cached read was made (None: no
        cached read) and ``since`` the offset it was made up to. Returns the rewrite count
        now, whether the rows are the whole session (nothing cached, or rows were removed
        since), and the rows. A check and a query in one call on the view thread: no apply
        comes between them.
        """
        now = self._rewrites.get(partition, 0)
        if tag is None or tag != now:
            return now, True, self.view.rows(session, 0, end, None)
        return now, False, self.view.rows(session, since, end, None) if since < end else []

    def log_strays(self, strays: list[Record]) -> None:
        """Log the records :meth:`apply_rows` skipped, by position."""
        for record in strays:
            self.bad_records.skipped(
                self.topic,
                record,
                f"record {self.topic}[{record.partition}]@{record.offset} is not a record of "
                "this layout (its key is not session \\x00 kind, or it is not on its "
                "session's partition)",
            )

    def apply_rows(
        self, rows: Mapping[int, list[KeyedRow]], after: Mapping[int, int]
    ) -> list[Record]:
        """On the view thread: apply ``rows`` in one transaction; the records not of this layout."""
        strays: list[Record] = []
        owner = self._owner
        make = tuple.__new__  # ViewRecord without its Python __new__: a rebuild makes millions
        with self.view.batch():
            for partition, records in rows.items():
                items: list[ViewRecord] = []
                rewritten = False
                for offset, timestamp, raw_key, value in records:
                    # The common record, a message: session \x00 m + 16 characters.
                    head, sep, tail = raw_key.partition(b"\x00") if raw_key else (b"", b"", b"")
                    if sep and len(tail) == 17 and tail[0] == 0x6D and tail.isascii():  # m
                        session = owner(head)
                        if session is not None and session[1] == partition:
                            rest = tail[1:].decode("ascii")
                            record = (offset, timestamp, session[0], "m", rest, raw_key, value)
                            items.append(make(ViewRecord, record))
                            rewritten = rewritten or value is None
                            continue
                    key = parse_key(raw_key)
                    if (
                        key is None
                        or raw_key is None
                        or self._home(head) != partition
                        or (key.kind == "p" and value is not None and not _is_offset(value))
                        or (key.kind == "c" and value is None)  # markers are never removed
                    ):
                        strays.append(Record(partition, offset, timestamp, value))
                        continue
                    items.append(
                        ViewRecord(
                            offset, timestamp, key.session, key.kind, key.rest, raw_key, value
                        )
                    )
                    if key.kind == "c" or value is None:
                        rewritten = True
                self.view.apply(partition, items, after[partition])
                if rewritten:
                    self._rewrites[partition] = self._rewrites.get(partition, 0) + 1
        return strays

    def _wake(self) -> None:
        """Wake the tails waiting for any change, and fail readers if the view stopped."""
        if self._failure is not None or self._closed:
            self._fail_waiters()
        event = self._advanced
        if event is not None:
            self._advanced = asyncio.Event()
            event.set()

    async def end_offset(self, transport: Transport, partition: int) -> int:
        """The partition's end offset now (lookups of concurrent calls go together)."""
        self._hurry()  # the view fetches what is new while the end is looked up
        ends = self._ends
        if ends is None or ends.admin is not transport.admin:
            ends = self._ends = EndOffsets(transport.admin, self.topic)
        return await ends.get(partition)

    async def caught_up(self, transport: Transport, partition: int) -> int:
        """The partition's end offset, once the view has applied everything before it."""
        end = await self.end_offset(transport, partition)
        await self.applied_up_to(partition, end)
        return end

    async def applied_up_to(self, partition: int, offset: int) -> None:
        """Wait until the view has applied ``partition`` below ``offset``."""
        if self._applied.get(partition, 0) >= offset:
            return
        if self._failure is not None:
            raise self._failure
        if self._closed or self._advanced is None:
            raise ConsumerStoppedError
        # Woken only when its own partition gets there: a thousand readers waiting on
        # different partitions are not all woken by every apply.
        self._hurry()
        waiter = (offset, asyncio.get_running_loop().create_future())
        waiters = self._waiters.setdefault(partition, [])
        waiters.append(waiter)
        try:
            await waiter[1]
        finally:
            if not waiter[1].done():  # cancelled or timed out
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)

    def _hurry(self) -> None:
        """Someone waits for what is new: the follower fetches now, not after its linger."""
        if self._fetcher is not None:
            self._fetcher.hurry()

    def _release(self, partition: int) -> None:
        """Wake the readers of ``partition`` whose offset is applied."""
        waiters = self._waiters.get(partition)
        if not waiters:
            return
        applied = self._applied.get(partition, 0)
        still = []
        for offset, future in waiters:
            if offset <= applied:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((offset, future))
        self._waiters[partition] = still

    def _fail_waiters(self) -> None:
        """Fail every waiting reader: the view stopped (or the layout closed)."""
        waiters, self._waiters = self._waiters, {}
        for pending in waiters.values():
            for _, future in pending:
                if not future.done():
                    future.set_exception(self._failure or ConsumerStoppedError())

    def applied(self, partition: int) -> int:
        """Below which offset ``partition`` is applied."""
        return self._applied.get(partition, 0)

    async def wait_for_change(self, timeout: float) -> None:
        """Wait until the view applied something (or ``timeout`` passed)."""
        event = self._advanced
        if event is None or self._closed:
            return
        self._hurry()
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await within(timeout, event.wait())

    # -- sessions ---------------------------------------------------------------------------

    async def sessions(self) -> list[str]:
        """Every session with messages or a position, sorted (reads every partition)."""
        subject = Subject("", self.topic)

        async def run() -> list[str]:
            transport = await self.ready()
            parts = list(range(self.partitions))
            ends = await transport.admin.end_offsets(self.topic, parts)
            for p, end in ends.items():
                await self.applied_up_to(p, end)
            return await self.views.run(self.view.sessions)

        with translating("admin", subject, "listing the sessions of"):
            return await within(self.timeouts.admin, run())

    async def exists(self, session_id: str) -> bool:
        """Whether ``session_id`` has messages or a stored position."""
        return await self.log(session_id, settings=TopicSettings(), consumer_group=None).has_state()

    async def delete(self, session_id: str) -> bool:
        """Remove ``session_id`` for good; False when it had nothing stored."""
        return await self.log(session_id, settings=TopicSettings(), consumer_group=None).delete()

    async def aclose(self) -> None:
        """Stop following and close the view; idempotent."""
        self._closed = True
        starting = self._starting
        if starting is not None and not starting.done():
            # A start still running would otherwise open a consumer after the close.
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower
        self._wake()
        if self._ends is not None:
            self._ends.close()
        self.views.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def close_now(self) -> None:
        """Close from outside the loop (the loop is gone): the view only."""
        self._closed = True
        if self._ends is not None:
            self._ends.close()
        self.views.close()


class SharedSessionLog:
    """One session in the shared topic. See :class:`~._session_log.SessionLog`."""

    __slots__ = ("_layout", "_lock", "_raw", "consumer_group", "session_id")

    def __init__(
        self, layout: SharedLayout, session_id: str, raw: bytes, consumer_group: str
    ) -> None:
        self._layout = layout
        self._raw = raw
        self.session_id = session_id
        self.consumer_group = consumer_group
        self._lock: asyncio.Lock | None = None

    @property
    def topic(self) -> str:
        """The shared topic."""
        return self._layout.topic

    @property
    def settings(self) -> TopicSettings:
        """The shared topic's settings."""
        return self._layout.settings

    @property
    def subject(self) -> Subject:
        """The session and its topic, for messages."""
        return Subject(self.session_id, self._layout.topic)

    @property
    def layout(self) -> SharedLayout:
        """The layout this log belongs to."""
        return self._layout

    def _partition(self) -> int:
        return partition_for(self._raw, self._layout.partitions)

    async def _rows(self, fn: Callable[..., T], *args: object) -> T:
        return await self._layout.views.run(fn, *args)

    # -- reads ------------------------------------------------------------------------------

    async def read(
        self,
        start: StartPosition,
        *,
        limit: int | None,
        max_time: float | None,
        commit: bool,
    ) -> list[BaseMessage]:
        """See :meth:`~._session_log.SessionLog.read`."""
        timeout = max_time if max_time is not None else self._layout.timeouts.read
        with translating("read", self.subject, "reading"):
            pairs = await within(
                timeout + MARGIN, self._read(start, limit, timeout, commit, max_time is not None)
            )
        return [message for _, message in pairs]

    async def _read(
        self, start: StartPosition, limit: int | None, timeout: float, commit: bool, partial: bool
    ) -> list[tuple[Record, BaseMessage]]:
        layout = self._layout
        deadline = time.monotonic() + timeout
        transport = await layout.ready_within(timeout)
        p = self._partition()
        end = await layout.end_offset(transport, p)
        try:
            if layout.applied(p) < end:
                remaining = max(0.001, deadline - time.monotonic())
                await within(remaining, layout.applied_up_to(p, end))
        except (asyncio.TimeoutError, TimeoutError):
            if not partial:
                raise TimeoutError from None
            if layout.rebuilding:  # nothing answerable yet: clears may still be set aside
                return []
            end = layout.applied(p)  # max_time_sec: what the view holds by now
        if start == "beginning" and limit is None and not commit and layout.cache.enabled:
            return await self._full_read(p, end)
        if not commit:
            return await self._read_rows(transport, p, start, end, limit, commit=False)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._read_rows(transport, p, start, end, limit, commit=True)

    async def _read_rows(
        self,
        transport: Transport,
        p: int,
        start: StartPosition,
        end: int,
        limit: int | None,
        *,
        commit: bool,
    ) -> list[tuple[Record, BaseMessage]]:
        view = self._layout.view
        known: int | None = None
        if start == "latest":
            begin = end
        elif start == "beginning":
            begin = 0
        else:
            known = await self._rows(view.position, self.session_id, self.consumer_group)
            begin = min(known or 0, end)
        if commit and known is None:
            known = await self._rows(view.position, self.session_id, self.consumer_group)
        taken: list[tuple[Record, BaseMessage]] = []
        position = cursor = begin
        while cursor < end:
            want = None if limit is None else limit - len(taken)
            if want == 0:
                break
            rows = await self._rows(view.rows, self.session_id, cursor, end, want)
            taken.extend(self.decode(p, rows))
            if want is None or len(rows) < want:
                position = end  # everything up to the end was consumed
                break
            position = cursor = rows[-1].offset + 1
        if start == "latest":
            position = end
        # The stored position only moves past this session's messages. Other records of the
        # partition (other sessions, and the position record a commit writes itself) need no
        # commit: a read from the old position finds the same messages, and an idle read that
        # committed would move the end again, writing a record on every read.
        if commit and position != known:
            if taken:
                await self._commit(transport, p, position)
            elif begin > (known or 0) and await self._has_messages(known or 0, position):
                await self._commit(transport, p, position)  # "latest": skips unread messages
        return taken

    async def _has_messages(self, begin: int, end: int) -> bool:
        """Whether the session has messages with ``begin <= offset < end``."""
        if begin >= end:
            return False
        view = self._layout.view
        return bool(await self._rows(view.rows, self.session_id, begin, end, 1))

    async def _full_read(self, p: int, end: int) -> list[tuple[Record, BaseMessage]]:
        """Everything below ``end``, decoding only what the cached read of it lacks."""
        layout = self._layout
        cached = layout.cache.get(self.session_id)
        tag, whole, rows = await layout.delta(
            self.session_id,
            p,
            None if cached is None else cached.tag,
            0 if cached is None else cached.ends.get(p, 0),
            end,
        )
        if whole or cached is None:
            entry = CachedRead.of(self.decode(p, rows), {p: end}, tag=tag)
        elif not rows and cached.ends.get(p, 0) >= end:
            return cached.pairs
        else:
            entry = cached.extended({p: self.decode(p, rows)}, {p: end})
        current = layout.cache.get(self.session_id)
        if current is cached or current is None or current.ends.get(p, 0) <= end:
            layout.cache.put(self.session_id, entry)
        return entry.pairs

    def decode(self, p: int, rows: Sequence[Row]) -> list[tuple[Record, BaseMessage]]:
        records = [Record(p, r.offset, r.timestamp, r.value) for r in rows]
        return self._layout.bad_records.decode(self._layout.topic, records)

    async def _commit(self, transport: Transport, p: int, position: int) -> None:
        key = position_key(self._raw, self.consumer_group)
        outcome = await transport.producer.produce(
            self._layout.topic,
            key,
            [str(position).encode("ascii")],
            timeout=self._layout.timeouts.write,
            partition=p,
        )
        if outcome.error is not None:
            raise outcome.error

    async def commit_position(self, p: int, position: int) -> None:
        """Store ``position`` as the last consumed position (for tails)."""
        transport = await self._layout.ready()
        await self._commit(transport, p, position)

    async def entries(self) -> list[tuple[int, BaseMessage]]:
        """See :meth:`~._session_log.SessionLog.entries`."""
        timeout = self._layout.timeouts.read
        with translating("read", self.subject, "reading"):
            pairs = await within(
                timeout + MARGIN, self._read("beginning", None, timeout, False, False)
            )
        return [(record.timestamp, message) for record, message in pairs]

    async def last(self, count: int) -> list[BaseMessage]:
        """See :meth:`~._session_log.SessionLog.last`."""
        timeout = self._layout.timeouts.read
        with translating("read", self.subject, "reading"):
            return await within(timeout + MARGIN, self._last(count, timeout))

    async def _last(self, count: int, timeout: float) -> list[BaseMessage]:
        layout = self._layout
        transport = await layout.ready_within(timeout)
        p = self._partition()
        end = await layout.caught_up(transport, p)
        found: list[tuple[Record, BaseMessage]] = []
        before: int | None = None
        while len(found) < count:
            need = count - len(found)
            rows = await self._rows(layout.view.last_rows, self.session_id, end, need, before)
            found[:0] = self.decode(p, rows)
            if len(rows) < need:
                break
            before = rows[0].offset
        return [message for _, message in found[-count:]]

    # -- writes -----------------------------------------------------------------------------

    async def append(self, messages: Sequence[BaseMessage]) -> None:
        """See :meth:`~._session_log.SessionLog.append`."""
        layout = self._layout
        longest = self._raw + b"\x00m" + b"0" * 16
        values = encode_messages(messages, key=longest, max_record_bytes=MAX_REQUEST_SIZE)
        if not values:
            return
        started = time.monotonic()
        write = layout.timeouts.write
        with translating("admin", self.subject, "preparing to write to"):
            try:
                transport = await layout.ready_within(write)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise write_error(self.subject, 0, len(values), exc, indeterminate=False) from exc
        remaining = max(0.001, write - (time.monotonic() - started))
        keys = [message_key(self._raw) for _ in values]
        try:
            outcome = await transport.producer.produce(
                layout.topic,
                keys[0],
                values,
                keys=keys,
                partition=self._partition(),
                timeout=remaining,
            )
        except (TimeoutError, asyncio.TimeoutError, KafkaError) as exc:
            if is_access_error(exc):
                with translating("admin", self.subject, "writing to"):
                    raise
            raise write_error(self.subject, 0, len(values), exc, indeterminate=False) from exc
        raise_for_outcome(self.subject, len(values), outcome)

    async def truncate(self) -> None:
        """See :meth:`~._session_log.SessionLog.truncate`: a clear marker, then tombstones."""
        with translating("admin", self.subject, "clearing"):
            await within(self._layout.timeouts.admin, self._remove(positions=False))

    async def delete(self) -> bool:
        """See :meth:`~._session_log.SessionLog.delete`: clear, and forget the positions."""
        with translating("admin", self.subject, "deleting"):
            return await within(self._layout.timeouts.admin, self._remove(positions=True))

    async def has_state(self) -> bool:
        """Whether the session has messages or a stored position."""

        async def run() -> bool:
            transport = await self._layout.ready()
            await self._layout.caught_up(transport, self._partition())
            return await self._rows(self._layout.view.has, self.session_id)

        with translating("admin", self.subject, "describing"):
            return await within(self._layout.timeouts.admin, run())

    async def _remove(self, *, positions: bool) -> bool:
        layout = self._layout
        transport = await layout.ready()
        p = self._partition()
        end = await layout.caught_up(transport, p)
        view = layout.view
        keys = await self._rows(view.keys, self.session_id, end)
        groups = await self._rows(view.groups, self.session_id) if positions else []
        if not keys and not groups:
            return False
        # The marker first: once it is acknowledged every reader stops seeing the messages;
        # the tombstones after it let compaction remove them (and the positions) physically.
        out_keys = [clear_key(self._raw), *keys, *(position_key(self._raw, g) for g in groups)]
        values: list[bytes | None] = [b"", *([None] * (len(out_keys) - 1))]
        outcome = await transport.producer.produce(
            layout.topic,
            out_keys[0],
            values,
            keys=out_keys,
            partition=p,
            timeout=layout.timeouts.admin,
        )
        if outcome.error is not None:
            if outcome.acknowledged == 0:
                raise outcome.error
            raise TopicAdminError(
                f"cleared {self.subject} for every reader, but only "
                f"{outcome.acknowledged - 1} of {len(out_keys) - 1} tombstones were "
                "acknowledged: the rest of its records stay on disk until retention removes "
                "them; clear again to retry",
                session_id=self.session_id,
                topic=layout.topic,
            )
        return True

    # -- tails ------------------------------------------------------------------------------

    async def tail(self, start: StartPosition) -> SharedTail:
        """See :meth:`~._session_log.SessionLog.tail`."""
        with translating("read", self.subject, "starting a tail of"):
            return await within(self._layout.timeouts.read, self._tail(start))

    async def _tail(self, start: StartPosition) -> SharedTail:
        layout = self._layout
        transport = await layout.ready()
        p = self._partition()
        # Caught up first, whatever the start: a tail then hands out at once every message
        # acknowledged before it began (read-your-writes, as reads do).
        end = await layout.caught_up(transport, p)
        if start == "beginning":
            begin = 0
        elif start == "latest":
            begin = end
        else:
            known = await self._rows(layout.view.position, self.session_id, self.consumer_group)
            begin = min(known or 0, end)
        return SharedTail(self, p, begin)


class SharedTail:
    """A live read of one session from the view. See :class:`~._session_log.TailCursor`."""

    def __init__(self, log: SharedSessionLog, partition: int, start: int) -> None:
        self._log = log
        self._partition = partition
        self._next = start
        self._starts = {partition: start}
        self._closed = False

    @property
    def starts(self) -> Mapping[int, int]:
        """See :attr:`~._session_log.TailCursor.starts`."""
        return self._starts

    async def next_batch(self, timeout: float) -> list[tuple[Record, BaseMessage]] | None:
        """See :meth:`~._session_log.TailCursor.next_batch`."""
        log = self._log
        layout = log.layout
        deadline = time.monotonic() + timeout
        while not (self._closed or layout.closed):
            applied = layout.applied(self._partition)
            if applied > self._next:
                rows = await layout.views.run(
                    layout.view.rows, log.session_id, self._next, applied, None
                )
                self._next = applied
                if rows:
                    return log.decode(self._partition, rows)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await layout.wait_for_change(remaining)
        return None

    async def commit(self, positions: Mapping[int, int]) -> None:
        """See :meth:`~._session_log.TailCursor.commit`."""
        with translating("read", self._log.subject, "committing"):
            for p, position in positions.items():
                await within(
                    self._log.layout.timeouts.write, self._log.commit_position(p, position)
                )

    async def close(self) -> None:
        """See :meth:`~._session_log.TailCursor.close`."""
        self._closed = True


def _translated(exc: BaseException, topic: str) -> BaseException:
    """This package's error for ``exc`` met while following ``topic``."""
    try:
        with translating("read", Subject("", topic), "following"):
            raise exc
    except BaseException as translated:
        return translated


def _owner(session: bytes, partitions: int) -> tuple[str, int] | None:
    """The id and partition of a session's key part, or None when it is no session id."""
    if not session:
        return None
    try:
        return session.decode("utf-8"), partition_for(session, partitions)
    except UnicodeDecodeError:
        return None


def _is_offset(value: bytes) -> bool:
    """Whether a position record's value is an offset (digits that fit a signed 64-bit int)."""
    digits = value.strip()
    return len(digits) <= 19 and digits.isdigit() and int(digits) < 2**63


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.cancelled() or task.exception() is not None


def _cancelling() -> bool:
    """Whether the current task was asked to cancel (always False before Python 3.11)."""
    task = asyncio.current_task()
    return task is not None and bool(getattr(task, "cancelling", lambda: 0)())

"""The session log: what every storage layout offers the public classes.

A session log is one session's ordered messages: bounded reads from a start position, the
newest N, appends, truncation, the last consumed position, live tails. The public classes
(histories, tails, the client's session listing) speak only to these interfaces;
``_topic_log.py`` implements them with a topic per session. Also here: what to do with a
record that is not a chat message.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from langchain_core.messages import BaseMessage

from ._codec import decode_message
from ._config import TopicSettings
from ._errors import ConfigurationError, RecordDecodeError
from ._records import Record

__all__ = [
    "BadRecords",
    "OnBadRecord",
    "SessionLayout",
    "SessionLog",
    "StartPosition",
    "TailCursor",
]

logger = logging.getLogger("aiokafka_history")

StartPosition = Literal["beginning", "latest", "last_consumed"]
"""Where a read or a tail starts: the oldest stored message, the end, or the last consumed."""

OnBadRecord = Literal["skip", "raise"]
"""What a read does with a record that is not a chat message."""

_POLICIES = ("skip", "raise")
_REMEMBERED = 4096


class BadRecords:
    """Decodes records, skipping (and logging once) or raising at those that are not messages.

    A skipped record is logged at WARNING once per process and position, with topic,
    partition and offset, never its payload. Thread-safe enough for one event loop.
    """

    def __init__(self, policy: OnBadRecord) -> None:
        if policy not in _POLICIES:
            raise ConfigurationError(
                f"on_bad_record must be one of {', '.join(_POLICIES)}, got {policy!r}"
            )
        self.policy: OnBadRecord = policy
        self._logged: OrderedDict[tuple[str, int, int], None] = OrderedDict()

    def decode(self, topic: str, records: Iterable[Record]) -> list[tuple[Record, BaseMessage]]:
        """The records that are messages, in the given order, each with its message.

        Tombstones (records without a value) are not messages and are passed over silently.

        Raises:
            RecordDecodeError: with ``policy="raise"``, at the first bad record.
        """
        out: list[tuple[Record, BaseMessage]] = []
        for record in records:
            if record.value is None:
                continue
            try:
                message = decode_message(
                    record.value, topic=topic, partition=record.partition, offset=record.offset
                )
            except RecordDecodeError as exc:
                if self.policy == "raise":
                    raise
                self._log_once(topic, record, exc)
                continue
            out.append((record, message))
        return out

    def _log_once(self, topic: str, record: Record, exc: RecordDecodeError) -> None:
        self.skipped(topic, record, str(exc))

    def skipped(self, topic: str, record: Record, reason: str) -> None:
        """Log, once per position, that ``record`` was skipped (its position, never payload)."""
        key = (topic, record.partition, record.offset)
        if key in self._logged:
            return
        self._logged[key] = None
        if len(self._logged) > _REMEMBERED:
            self._logged.popitem(last=False)
        logger.warning("skipped a record that is not a chat message: %s", reason)


class TailCursor(Protocol):
    """A live read of one session, from :meth:`SessionLog.tail`."""

    @property
    def starts(self) -> Mapping[int, int]:
        """Where it started: partition → offset."""

    async def next_batch(self, timeout: float) -> list[tuple[Record, BaseMessage]] | None:
        """What arrived, in write order; waits at most ``timeout`` seconds for something.

        None once the cursor was stopped (its client closed).
        """

    async def commit(self, positions: Mapping[int, int]) -> None:
        """Store ``positions`` (partition → next offset) as the last consumed position."""

    async def close(self) -> None:
        """Stop; idempotent."""


class SessionLog(Protocol):
    """One session's storage. Cheap to create: no I/O until a method is awaited.

    Every method ends within the client's timeout for its kind (read, write, admin) plus
    about a second, with an exception of :mod:`._errors`.
    """

    @property
    def session_id(self) -> str:
        """The session."""

    @property
    def topic(self) -> str:
        """The topic that holds it."""

    @property
    def consumer_group(self) -> str:
        """The group whose committed offsets are its last consumed position."""

    @property
    def settings(self) -> TopicSettings:
        """How its storage is created on first use."""

    async def read(
        self,
        start: StartPosition,
        *,
        limit: int | None,
        max_time: float | None,
        commit: bool,
    ) -> list[BaseMessage]:
        """Messages from ``start`` up to the end seen when the call began, in write order."""

    async def last(self, count: int) -> list[BaseMessage]:
        """The newest ``count`` messages, oldest first; moves no position."""

    async def entries(self) -> list[tuple[int, BaseMessage]]:
        """The whole history, each message with its record's timestamp (ms); moves nothing."""

    async def append(self, messages: Sequence[BaseMessage]) -> None:
        """Store ``messages`` in order, all or nothing validated before sending."""

    async def truncate(self) -> None:
        """Remove every stored message; the session stays usable."""

    async def delete(self) -> bool:
        """Remove the session's storage for good; False when there was none."""

    async def tail(self, start: StartPosition) -> TailCursor:
        """Start following the session live."""


class SessionLayout(Protocol):
    """A storage layout: makes session logs and knows which sessions exist."""

    def log(
        self, session_id: str, *, settings: TopicSettings, consumer_group: str | None
    ) -> SessionLog:
        """The log of ``session_id`` (validates the id; no I/O)."""

    async def sessions(self) -> list[str]:
        """Every session this layout can see, sorted."""

    async def exists(self, session_id: str) -> bool:
        """Whether ``session_id`` has storage (creates nothing)."""

    async def delete(self, session_id: str) -> bool:
        """Remove ``session_id``'s storage; False when there was none."""

    async def aclose(self) -> None:
        """Stop what the layout runs (on the home loop); idempotent."""

    def close_now(self) -> None:
        """Release what the layout holds when its loop is gone; idempotent."""

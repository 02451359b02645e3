"""Live tails: a session's messages as they arrive, as async and blocking iterators."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage
from typing_extensions import Self

from ._errors import ConfigurationError, HistoryClosedError
from ._records import Record
from ._session_log import SessionLog, StartPosition, TailCursor

__all__ = ["BlockingMessageTail", "MessageTail", "ProxyMessageTail"]

T = TypeVar("T")
_STARTS = ("beginning", "latest", "last_consumed")


class _AsyncTailBase:
    """``async for`` and ``async with`` over :meth:`start`, ``__anext__`` and :meth:`aclose`."""

    async def start(self) -> Self:
        raise NotImplementedError

    async def __anext__(self) -> BaseMessage:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class MessageTail(_AsyncTailBase):
    """Async iterator over a session's messages as they are written; also ``async with``.

    Starts (connects and fixes its start position) on ``async with``, :meth:`start` or the
    first ``__anext__``. With ``start="latest"`` it yields what is written after it started.
    Messages come in write order within a partition (all of a session's own writes share
    one). A record that is not a chat message is skipped (and logged once), never the valid
    messages around it. With ``commit=True`` the last consumed position moves past each
    message once the next one is asked for, and on close. Cancel-safe: cancelling a pending
    ``__anext__`` loses nothing. Ends after ``idle_timeout`` seconds without a message.

    Not thread-safe: use it from the event loop that started it.
    """

    def __init__(
        self,
        log: SessionLog,
        start: StartPosition,
        *,
        commit: bool,
        idle_timeout: float | None,
    ) -> None:
        if start not in _STARTS:
            raise ConfigurationError(f"start must be one of {', '.join(_STARTS)}, got {start!r}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ConfigurationError(f"idle_timeout must be None or > 0, got {idle_timeout!r}")
        self._log = log
        self._start = start
        self._commit = commit
        self._idle_timeout = idle_timeout
        self._cursor: TailCursor | None = None
        self._buffer: deque[tuple[Record, BaseMessage]] = deque()
        self._yielded: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._closed = False

    async def start(self) -> Self:
        """Connect and fix the start position; idempotent."""
        if self._closed:
            raise HistoryClosedError("this tail is closed")
        if self._cursor is not None:
            return self
        cursor = await self._log.tail(self._start)
        self._cursor = cursor
        self._committed = dict(cursor.starts)
        self._yielded = dict(cursor.starts)
        return self

    async def __anext__(self) -> BaseMessage:
        if self._closed:
            raise StopAsyncIteration
        await self.start()
        assert self._cursor is not None
        await self._commit_yielded()
        waited = 0.0
        while not self._buffer:
            step = 1.0
            if self._idle_timeout is not None:
                if waited >= self._idle_timeout:
                    raise StopAsyncIteration
                step = min(step, self._idle_timeout - waited)
            batch = await self._cursor.next_batch(step)
            if batch is None or self._closed:
                raise StopAsyncIteration
            waited += step if not batch else 0.0
            self._buffer.extend(batch)
        record, message = self._buffer.popleft()
        self._yielded[record.partition] = record.offset + 1
        return message

    async def _commit_yielded(self) -> None:
        if not self._commit or self._yielded == self._committed or self._cursor is None:
            return
        await self._cursor.commit(self._yielded)
        self._committed = dict(self._yielded)

    async def aclose(self) -> None:
        """Stop tailing (committing what was yielded, with ``commit=True``); idempotent."""
        if self._closed:
            return
        self._closed = True
        cursor, self._cursor = self._cursor, None
        if cursor is None:
            return
        try:
            self._cursor = cursor
            await self._commit_yielded()
        finally:
            self._cursor = None
            await cursor.close()


class BlockingMessageTail:
    """Blocking iterator twin of :class:`MessageTail`; also ``with``. Thread-safe to close."""

    def __init__(self, tail: MessageTail, call: Callable[..., Any]) -> None:
        self._tail = tail
        self._call = call

    def start(self) -> Self:
        """Connect and fix the start position; idempotent."""
        self._call(self._tail.start)
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> BaseMessage:
        try:
            message: BaseMessage = self._call(self._tail.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None
        return message

    def close(self) -> None:
        """Stop tailing; idempotent."""
        self._call(self._tail.aclose)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ProxyMessageTail(_AsyncTailBase):
    """A :class:`MessageTail` living on another event loop, awaited from this one.

    ``submit`` starts a coroutine function on the tail's loop and returns its
    ``concurrent.futures.Future``. Cancel-safe like the tail itself: a cancelled
    ``__anext__`` leaves its call running there, and the next ``__anext__`` returns the
    message that call took, so none is lost.
    """

    def __init__(
        self, tail: MessageTail, submit: Callable[..., concurrent.futures.Future[Any]]
    ) -> None:
        self._tail = tail
        self._submit = submit
        self._pending: concurrent.futures.Future[Any] | None = None

    async def _call(self, fn: Callable[..., Awaitable[Any]]) -> Any:
        return await asyncio.wrap_future(self._submit(fn))

    async def start(self) -> Self:
        """Connect and fix the start position; idempotent."""
        await self._call(self._tail.start)
        return self

    async def __anext__(self) -> BaseMessage:
        if self._pending is None:
            self._pending = self._submit(self._tail.__anext__)
        pending = self._pending
        try:
            message: BaseMessage = await asyncio.shield(asyncio.wrap_future(pending))
        except asyncio.CancelledError:
            if pending.cancelled():
                self._pending = None
            raise  # the call goes on over there; the next __anext__ collects its message
        except BaseException:
            self._pending = None
            raise
        self._pending = None
        return message

    async def aclose(self) -> None:
        """Stop tailing; idempotent."""
        await self._call(self._tail.aclose)

"""Live tails: a session's messages as they arrive, as async and blocking iterators."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.errors import ConsumerStoppedError, KafkaError
from langchain_core.messages import BaseMessage
from typing_extensions import Self

from ._codec import decode_message
from ._errors import ConfigurationError, HistoryClosedError
from ._ordering import merge_in_write_order
from ._transport import Record

if TYPE_CHECKING:
    from ._history import AsyncKafkaChatMessageHistory, StartPosition

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
    one). With ``commit=True`` the last consumed position moves past each message once the
    next one is asked for, and on close. Cancel-safe: cancelling a pending ``__anext__`` loses
    nothing. Ends after ``idle_timeout`` seconds without a message, if given.

    Not thread-safe: use it from the event loop that started it.
    """

    def __init__(
        self,
        history: AsyncKafkaChatMessageHistory,
        start: StartPosition,
        *,
        commit: bool,
        idle_timeout: float | None,
    ) -> None:
        if start not in _STARTS:
            raise ConfigurationError(f"start must be one of {', '.join(_STARTS)}, got {start!r}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ConfigurationError(f"idle_timeout must be None or > 0, got {idle_timeout!r}")
        self._history = history
        self._start = start
        self._commit = commit
        self._idle_timeout = idle_timeout
        self._consumer: Any = None
        self._transport: Any = None
        self._buffer: deque[tuple[Record, BaseMessage]] = deque()
        self._yielded: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._started = False
        self._closed = False

    async def start(self) -> Self:
        """Connect and fix the start position; idempotent."""
        if self._closed:
            raise HistoryClosedError("this tail is closed")
        if self._started:
            return self
        history = self._history
        transport = self._transport = await history._transport()
        parts = await history._partitions(transport)
        try:
            if self._start == "last_consumed":
                committed, ends = await asyncio.gather(
                    transport.committed(history.consumer_group, history.topic, parts),
                    transport.end_offsets(history.topic, parts),
                )
                starts = {p: min(committed[p] or 0, ends[p]) for p in parts}
            elif self._start == "latest":
                starts = await transport.end_offsets(history.topic, parts)
            else:
                starts = {p: 0 for p in parts}  # below the log start: resets to it
            self._consumer = await transport.open_consumer()
            self._consumer.assign([transport.tp(history.topic, p) for p in parts])
            for p, offset in starts.items():
                self._consumer.seek(transport.tp(history.topic, p), offset)
        except KafkaError as exc:
            await self.aclose()
            raise history._read_error(exc) from exc
        self._committed = dict(starts)
        self._yielded = dict(starts)
        self._started = True
        return self

    async def __anext__(self) -> BaseMessage:
        if self._closed:
            raise StopAsyncIteration
        await self.start()
        await self._commit_yielded()
        waited = 0.0
        while not self._buffer:
            step = 1.0
            if self._idle_timeout is not None:
                if waited >= self._idle_timeout:
                    raise StopAsyncIteration
                step = min(step, self._idle_timeout - waited)
            try:
                batch = await self._consumer.getmany(timeout_ms=max(1, int(step * 1000)))
            except ConsumerStoppedError:
                raise StopAsyncIteration from None
            except KafkaError as exc:
                raise self._history._read_error(exc) from exc
            waited += step if not batch else 0.0
            self._buffer_batch(batch)
        record, message = self._buffer.popleft()
        self._yielded[record.partition] = record.offset + 1
        return message

    def _buffer_batch(self, batch: dict[Any, list[Any]]) -> None:
        history = self._history
        per_partition = {
            tp.partition: [Record(tp.partition, r.offset, r.timestamp, r.value) for r in rows]
            for tp, rows in batch.items()
        }
        for record in merge_in_write_order(per_partition):
            if record.value is None:
                continue
            message = decode_message(
                record.value, topic=history.topic, partition=record.partition, offset=record.offset
            )
            self._buffer.append((record, message))

    async def _commit_yielded(self) -> None:
        if not self._commit or self._yielded == self._committed:
            return
        history = self._history
        try:
            await self._transport.commit(history.consumer_group, history.topic, self._yielded)
        except KafkaError as exc:
            raise history._read_error(exc) from exc
        self._committed = dict(self._yielded)

    async def aclose(self) -> None:
        """Stop tailing (committing what was yielded, with ``commit=True``); idempotent."""
        if self._closed:
            return
        self._closed = True
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            if not self._history.client.closed:
                await self._commit_yielded()
        finally:
            await self._transport.close_consumer(consumer)


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
    """A :class:`MessageTail` living on another event loop, awaited from this one."""

    def __init__(
        self, tail: MessageTail, run: Callable[[Callable[..., Awaitable[Any]]], Awaitable[Any]]
    ) -> None:
        self._tail = tail
        self._run = run

    async def start(self) -> Self:
        """Connect and fix the start position; idempotent."""
        await self._run(self._tail.start)
        return self

    async def __anext__(self) -> BaseMessage:
        message: BaseMessage = await self._run(self._tail.__anext__)
        return message

    async def aclose(self) -> None:
        """Stop tailing; idempotent."""
        await self._run(self._tail.aclose)

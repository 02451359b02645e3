"""An event loop in a named background thread, for blocking callers.

Used by the synchronous classes (their whole core runs there) and by the async classes'
blocking methods when no other loop can serve them. The thread starts on first use, never in
a constructor, and belongs to the object that created it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ._errors import EventLoopError

__all__ = ["LoopThread"]

T = TypeVar("T")
_numbers = itertools.count(1)


class LoopThread:
    """An asyncio loop run by anyio in a daemon thread, reached through a blocking portal.

    Thread-safe: any thread may call :meth:`call`, any other event loop may await
    :meth:`run`. Calling :meth:`call` from the loop's own thread raises instead of
    deadlocking.
    """

    def __init__(self, name: str) -> None:
        self._name = f"{name}-{next(_numbers)}"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, once started."""
        return self._loop

    def in_thread(self) -> bool:
        """Whether the caller runs in this loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure(self) -> BlockingPortal:
        with self._lock:
            if self._stopped:
                raise EventLoopError(f"{self._name} has been stopped")
            if self._portal is None:
                ready = threading.Event()
                failure: list[BaseException] = []

                async def main() -> None:
                    try:
                        async with BlockingPortal() as portal:
                            self._loop = asyncio.get_running_loop()
                            self._portal = portal
                            ready.set()
                            await portal.sleep_until_stopped()
                    except BaseException as exc:  # pragma: no cover - startup failure
                        failure.append(exc)
                        ready.set()
                        raise

                thread = threading.Thread(
                    target=anyio.run, args=(main,), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                if failure:  # pragma: no cover
                    raise EventLoopError(f"{self._name} failed to start") from failure[0]
                self._thread = thread
            assert self._portal is not None
            return self._portal

    def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``fn(*args)`` on the loop and block until it returns.

        Raises:
            EventLoopError: called from the loop's own thread (it would deadlock).
        """
        if self.in_thread():
            raise EventLoopError(
                "a blocking method was called from inside its own event loop thread; "
                "await the async method instead"
            )
        return self._ensure().call(fn, *args)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``fn(*args)`` on the loop, awaiting it from another loop without blocking it."""
        if self.in_thread():
            return await fn(*args)
        future = self._ensure().start_task_soon(fn, *args)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Stop the loop and join its thread; idempotent. Pending calls are cancelled."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            portal, thread = self._portal, self._thread
        if portal is not None and thread is not None:
            if threading.current_thread() is thread:
                raise EventLoopError("a LoopThread cannot stop itself from its own thread")
            portal.call(portal.stop, True)
            thread.join()

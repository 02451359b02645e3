"""An event loop in a named background thread, for the blocking classes.

Built on anyio's ``start_blocking_portal``. The thread starts on first use, never in a
constructor, and belongs to the object that created it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._errors import EventLoopError

__all__ = ["LoopThread"]

T = TypeVar("T")
_numbers = itertools.count(1)


class LoopThread:
    """An asyncio loop in a daemon thread named ``NAME-N``, reached through a blocking portal.

    Thread-safe: any thread may :meth:`call`, any other event loop may await :meth:`run`.
    Calling :meth:`call` from the loop's own thread raises instead of deadlocking.
    """

    def __init__(self, name: str) -> None:
        self.name = f"{name}-{next(_numbers)}"
        self._lock = threading.Lock()
        self._context: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        """Whether the thread was started (and not stopped)."""
        return self._portal is not None and not self._stopped

    def in_thread(self) -> bool:
        """Whether the caller runs in this loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure(self) -> BlockingPortal:
        with self._lock:
            if self._stopped:
                raise EventLoopError(f"{self.name} has been stopped")
            if self._portal is None:
                context = start_blocking_portal("asyncio", name=self.name)
                portal = context.__enter__()
                self._thread, self._loop = portal.call(_current_thread_and_loop)
                self._context, self._portal = context, portal
            return self._portal

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop and block until it returns.

        Raises:
            EventLoopError: called from the loop's own thread (it would deadlock), or the
                loop was stopped.
        """
        if self.in_thread():
            raise EventLoopError(
                "a blocking method was called from inside its own event loop thread; "
                "await the async method instead"
            )
        loop = self._loop
        if loop is None or self._stopped:
            return self._ensure().call(fn, *args)
        # The hot path: straight onto the loop, without the portal's per-call task wrapper
        # (about 30 us). A call still pending when the loop stops is cancelled with it.
        return asyncio.run_coroutine_threadsafe(_awaited(fn, *args), loop).result()

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
        """Start ``fn(*args)`` on the loop and return its future at once."""
        return self._ensure().start_task_soon(fn, *args)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop, awaiting it from another loop without blocking it."""
        if self.in_thread():
            return await fn(*args)
        future = self._ensure().start_task_soon(fn, *args)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Stop the loop (cancelling pending calls) and join its thread; idempotent.

        Raises:
            EventLoopError: called from the loop's own thread.
        """
        if self.in_thread():
            raise EventLoopError(f"{self.name} cannot stop itself from its own thread")
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            context, portal = self._context, self._portal
        if context is None or portal is None:
            return
        with contextlib.suppress(RuntimeError):
            portal.call(portal.stop, True)
        context.__exit__(None, None, None)


async def _current_thread_and_loop() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
    return threading.current_thread(), asyncio.get_running_loop()


async def _awaited(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)

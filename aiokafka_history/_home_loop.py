"""Blocking calls that hop onto the event loop an async object lives on. No Kafka I/O.

The async classes offer LangChain's blocking methods (``messages``, ``add_messages``,
``clear``) for code that runs in worker threads while the object's own loop runs elsewhere
(a FastAPI sync background task, LangChain's executor threads). They never start a loop of
their own, and never block the loop they would need.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._errors import EventLoopError

__all__ = ["PICKUP_TIMEOUT", "call_on_loop"]

T = TypeVar("T")

#: Seconds a healthy event loop needs at most to start a call handed to it from a thread; a
#: loop that takes longer is blocked (and would deadlock the caller).
PICKUP_TIMEOUT = 5.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def call_on_loop(
    loop: asyncio.AbstractEventLoop | None,
    fn: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
    method: str,
) -> T:
    """Run ``fn(*args)`` on ``loop`` from another thread and wait for the result.

    ``method`` is ``"Class.name"`` of the blocking method, for the messages.

    Raises:
        EventLoopError: there is no running loop to hop onto (the object was never used
            from async code, or its loop stopped), the caller *is* that loop's thread (it
            would deadlock), or the loop did not take the call up within
            :data:`PICKUP_TIMEOUT` seconds (its thread is blocked, perhaps waiting for this
            one).
    """
    cls, _, name = method.partition(".")
    async_name = "aget_messages" if name in ("messages", "get_messages") else f"a{name}"
    hint = f"await {cls}.{async_name}() instead"
    sync_cls = cls.removeprefix("Async")
    if loop is None or not loop.is_running():
        raise EventLoopError(
            f"{method} blocks until its event loop does the work, and this object has no "
            f"running event loop (it was not used from async code yet, or its loop ended); "
            f"in blocking code use {sync_cls}, which runs its own loop thread, or {hint}"
        )
    if _running_loop() is loop:
        raise EventLoopError(
            f"{method} was called on the thread of the event loop it needs, where it would "
            f"deadlock; {hint} (or use {sync_cls} from blocking code)"
        )
    started = threading.Event()
    abandoned = False
    lock = threading.Lock()

    async def run() -> T:
        nonlocal abandoned
        with lock:
            if abandoned:
                raise asyncio.CancelledError
            started.set()
        return await fn(*args)

    future = asyncio.run_coroutine_threadsafe(run(), loop)
    if not started.wait(PICKUP_TIMEOUT):
        with lock:
            abandoned = not started.is_set()
        if abandoned:
            future.cancel()
            raise EventLoopError(
                f"{method} needs its event loop, and the loop did not take the call up within "
                f"{PICKUP_TIMEOUT:.0f} s: its thread is blocked, e.g. by a blocking "
                f"chain.invoke() running on that loop while this thread works for it. Nothing "
                f"was done. On the loop use chain.ainvoke() / {hint}; in blocking code use "
                f"{sync_cls}"
            )
    # Taken up: the call is bounded by its own timeouts (or, for a tail, is meant to wait).
    return future.result()

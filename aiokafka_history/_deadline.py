"""A deadline around a coroutine, on every supported Python. No I/O."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, cancelling it and raising ``TimeoutError`` after ``seconds``.

    On Python 3.10 the error is ``asyncio.TimeoutError`` (a distinct class there).
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - 3.10

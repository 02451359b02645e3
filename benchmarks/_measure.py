"""Timing loops (bounded, ``perf_counter``) and result checks for the measured calls."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

__all__ = ["BenchmarkError", "ameasure", "expect", "measure"]


class BenchmarkError(RuntimeError):
    """A measured call did not do what the benchmark relies on (so its timing means nothing)."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`BenchmarkError` unless ``condition`` (unlike ``assert``, survives ``-O``)."""
    if not condition:
        raise BenchmarkError(message)


def measure(call: Callable[[], object], n: int, *, warmup: int = 0) -> list[float]:
    """Seconds each of ``n`` calls took, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    for _ in range(n):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


async def ameasure(
    call: Callable[[], Awaitable[object]], n: int, *, warmup: int = 0
) -> list[float]:
    """:func:`measure` for coroutine functions."""
    for _ in range(warmup):
        await call()
    samples: list[float] = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return samples

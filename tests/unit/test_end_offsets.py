"""Coalesced end-offset lookups (``EndOffsets``): few requests, never a stale answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import ConsumerStoppedError, KafkaTimeoutError

from aiokafka_history._kafka_admin import EndOffsets

pytestmark = pytest.mark.anyio


class _Admin:
    """Answers each lookup with its request number as every partition's end offset."""

    def __init__(self, leaders: dict[int, int] | None = None) -> None:
        self.requests: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False
        self.leaders = leaders or {}
        self.hung: set[int] = set()  # leaders that never answer

    def leader(self, topic: str, partition: int) -> int | None:
        return self.leaders.get(partition)

    async def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        self.requests.append(sorted(partitions))
        number = len(self.requests)
        if any(self.leaders.get(p) in self.hung for p in partitions):
            await asyncio.Event().wait()
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise KafkaTimeoutError
        return {p: number for p in partitions}


async def test_callers_meanwhile_share_one_request_sent_after_they_asked() -> None:
    admin = _Admin()
    ends = EndOffsets(admin, "t")  # type: ignore[arg-type]
    first = asyncio.ensure_future(ends.get(0))
    await asyncio.sleep(0)  # its request is out
    later = [asyncio.ensure_future(ends.get(p % 3)) for p in range(20)]
    await asyncio.sleep(0)
    admin.release.set()
    assert await first == 1
    # Asked while request 1 was out: answered by request 2, never by request 1.
    assert await asyncio.gather(*later) == [2] * 20
    assert admin.requests == [[0], [0, 1, 2]]


async def test_a_failed_lookup_fails_its_callers_only() -> None:
    admin = _Admin()
    ends = EndOffsets(admin, "t")  # type: ignore[arg-type]
    admin.fail_next = True
    admin.release.set()
    with pytest.raises(KafkaTimeoutError):
        await ends.get(1)
    assert await ends.get(1) == 2


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    admin = _Admin()
    ends = EndOffsets(admin, "t")  # type: ignore[arg-type]
    gone: Any = asyncio.ensure_future(ends.get(0))
    kept = asyncio.ensure_future(ends.get(0))
    await asyncio.sleep(0)
    gone.cancel()
    admin.release.set()
    assert await kept == 1
    assert gone.cancelled()


async def test_closing_tells_waiting_callers_the_client_closed() -> None:
    admin = _Admin()
    ends = EndOffsets(admin, "t")  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(ends.get(0))
    await asyncio.sleep(0)
    ends.close()
    with pytest.raises(ConsumerStoppedError):
        await waiting


async def test_a_slow_leader_holds_up_only_its_own_partitions() -> None:
    admin = _Admin(leaders={0: 1, 1: 2})
    admin.hung.add(1)
    admin.release.set()
    ends = EndOffsets(admin, "t")  # type: ignore[arg-type]
    stuck = asyncio.ensure_future(ends.get(0))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(ends.get(1), 1.0) == 2  # not queued behind partition 0
    assert not stuck.done()
    ends.close()
    with pytest.raises(ConsumerStoppedError):
        await stuck

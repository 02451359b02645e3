"""6. Memory and sockets at scale: 10,000 history objects over one shared client.

Bytes per idle history object are measured with tracemalloc (snapshot difference over
creating 10,000 of them, list slot included) against ``InMemoryChatMessageHistory`` objects
made the same way. Then 50 of the 10,000 write and read (so connections exist) and the
process's broker connections are counted: established TCP connections to the broker port,
from ``/proc/self/fd`` and ``/proc/self/net/tcp*`` (plus ``Transport.sockets()`` and all
socket fds as a cross-check). langchain_community opens an admin client and a producer per
object: 5 objects are measured the same way and the figure for 10,000 is extrapolated.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from langchain_core.chat_history import InMemoryChatMessageHistory

from aiokafka_history import AsyncKafkaHistoryClient

from ._community import CommunityKafkaHistory
from ._context import Context
from ._measure import expect
from ._report import Figure, Row

TITLE = "10,000 histories: memory and sockets"

T = TypeVar("T")

COUNT = 10_000
ACTIVE = 50
COMMUNITY_SAMPLE = 5


def _socket_inodes() -> set[int]:
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def socket_fds() -> int:
    """Open socket file descriptors of this process (any kind)."""
    return len(_socket_inodes())


def broker_connections(ports: set[int]) -> int:
    """Established TCP connections of this process to one of ``ports``."""
    mine = _socket_inodes()
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port in ports and int(fields[9]) in mine:
                count += 1
    return count


def bytes_per_object(make: Callable[[int], T], count: int) -> tuple[float, list[T]]:
    """Traced bytes that creating ``count`` objects (kept in a list) added, per object.

    One object is made first, untraced, so one-off caches are not counted per object.
    """
    make(-1)
    gc.collect()
    tracemalloc.start()
    try:
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        before = tracemalloc.take_snapshot().filter_traces(ignore)
        objects = [make(i) for i in range(count)]
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(ignore)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / count, objects


async def _ours(ctx: Context) -> tuple[float, int, int, int]:
    async with AsyncKafkaHistoryClient(ctx.bootstrap, topic_prefix=ctx.topic("scale-")) as client:
        per_object, histories = bytes_per_object(lambda i: client.history(f"s{i}"), COUNT)
        fds_before = socket_fds()
        connections_before = broker_connections(ctx.broker_ports)
        active = histories[:: COUNT // ACTIVE]
        # One write first: concurrent first calls on a fresh client race its start-up.
        await active[0].aadd_user_message(f"hello from {active[0].session_id}")
        await asyncio.gather(
            *(h.aadd_user_message(f"hello from {h.session_id}") for h in active[1:])
        )
        results = await asyncio.gather(*(h.aget_messages() for h in active))
        expect(all(len(r) == 1 for r in results), "each active history must read its message")
        reported = client.sockets()
        connections = broker_connections(ctx.broker_ports) - connections_before
        fds = socket_fds() - fds_before
    return per_object, connections, reported, fds


def _settled_connections(ports: set[int]) -> int:
    """librdkafka connects in background threads: wait until the count holds for 1 s."""
    previous, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        count = broker_connections(ports)
        if count != previous:
            previous, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            break
        time.sleep(0.1)
    return previous


def _community(ctx: Context) -> tuple[int, int]:
    before = broker_connections(ctx.broker_ports)
    fds_before = socket_fds()
    objects = [
        CommunityKafkaHistory(ctx.topic(f"scale-community-{i}"), ctx.bootstrap)
        for i in range(COMMUNITY_SAMPLE)
    ]
    try:
        connections = _settled_connections(ctx.broker_ports) - before
        fds = socket_fds() - fds_before
    finally:
        for history in objects:
            history.close()
        del objects
        gc.collect()  # frees the librdkafka handles, which closes their sockets
    return connections, fds


def _in_memory_bytes() -> float:
    with warnings.catch_warnings():
        # langchain_core >= 1.6.4 deprecates the class on every instantiation; it is still
        # the natural "one object per session" baseline.
        warnings.filterwarnings(
            "ignore", message="The class `InMemoryChatMessageHistory` was deprecated"
        )
        per_object, objects = bytes_per_object(lambda _: InMemoryChatMessageHistory(), COUNT)
    del objects
    return per_object


def run(ctx: Context) -> list[Row]:
    per_object, connections, reported, fds = asyncio.run(_ours(ctx))
    community_connections, community_fds = _community(ctx)
    in_memory = _in_memory_bytes()
    per_community = community_connections / COMMUNITY_SAMPLE
    return [
        Row(
            "6",
            "bytes per idle history (client.history)",
            Figure.single(per_object, "B/object", n=COUNT),
            "InMemoryChatMessageHistory()",
            Figure.single(in_memory, "B/object", n=COUNT),
            on="value",
            words=("smaller", "larger"),
        ),
        Row(
            "6",
            f"broker connections, {COUNT:,} histories",
            Figure.single(
                connections,
                "conns",
                n=COUNT,
                note=(
                    f"ours: {ACTIVE} of the {COUNT:,} histories wrote and read; "
                    f"Transport.sockets() said {reported}; socket fds +{fds}"
                ),
            ),
            "langchain_community, 1 object per session",
            Figure.single(
                per_community * COUNT,
                "conns",
                n=COUNT,
                note=(
                    f"langchain_community: EXTRAPOLATED to {COUNT:,} objects from "
                    f"{COMMUNITY_SAMPLE} measured ({per_community:.1f} broker conns and "
                    f"{community_fds / COMMUNITY_SAMPLE:.1f} socket fds each: admin + producer)"
                ),
            ),
            on="value",
            words=("fewer", "more"),
            extra={"community_measured_objects": COMMUNITY_SAMPLE},
        ),
    ]

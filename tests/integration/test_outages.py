"""Every call is bounded through outages, and nothing acknowledged is ever lost.

Each scenario prints one line of figures: operations, acknowledged, lost, duplicated,
reordered, indeterminate, and the worst call duration against its bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from langchain_core.messages import HumanMessage

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    KafkaHistoryClient,
    KafkaHistoryError,
    SessionWriteError,
    TopicSettings,
)
from kafkalocal import KafkaCluster

TIMEOUT = 3.0  # read, write and admin timeouts of the clients under test
CLOSE = 2.0
MARGIN = 1.0  # documented: each call ends within its timeout plus about a second
SLACK = 0.5  # scheduling on a loaded 2-core CI machine
OPTIONS: dict[str, Any] = {
    "read_timeout": TIMEOUT,
    "write_timeout": TIMEOUT,
    "admin_timeout": TIMEOUT,
    "close_timeout": CLOSE,
    "request_timeout_ms": 2000,
}


@dataclass
class Ledger:
    """What happened to every write of a scenario, and how long each call took."""

    name: str
    operations: int = 0
    acknowledged: list[str] = field(default_factory=list)
    indeterminate: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    worst: float = 0.0
    errors: set[str] = field(default_factory=set)

    async def call(self, bound: float, op: Callable[[], Awaitable[Any]]) -> Any:
        """Run one call; assert it ended within ``bound`` (+ slack) with a library error."""
        self.operations += 1
        started = time.monotonic()
        try:
            return await op()
        except KafkaHistoryError as exc:
            self.errors.add(type(exc).__name__)
            return exc
        finally:
            took = time.monotonic() - started
            self.worst = max(self.worst, took)
            assert took <= bound + SLACK, f"{self.name}: a call took {took:.2f} s > {bound} s"

    async def write(self, history: Any, text: str) -> None:
        outcome = await self.call(TIMEOUT + MARGIN, lambda: history.aadd_user_message(text))
        if outcome is None:
            self.acknowledged.append(text)
        elif isinstance(outcome, SessionWriteError) and outcome.indeterminate:
            self.indeterminate.append(text)
        else:
            self.failed.append(text)

    def check(self, stored: list[str]) -> None:
        """Nothing acknowledged lost, nothing duplicated or reordered, nothing invented."""
        lost = [t for t in self.acknowledged if t not in stored]
        duplicated = len(stored) - len(set(stored))
        acked = set(self.acknowledged)
        order = [t for t in stored if t in acked]
        reordered = order != self.acknowledged
        invented = [t for t in stored if t not in acked and t not in self.indeterminate]
        print(
            f"\n[{self.name}] operations={self.operations} "
            f"acknowledged={len(self.acknowledged)} lost={len(lost)} "
            f"duplicated={duplicated} reordered={int(reordered)} "
            f"indeterminate={len(self.indeterminate)} "
            f"(stored later: {sum(t in stored for t in self.indeterminate)}) "
            f"refused={len(self.failed)} worst_call={self.worst:.2f}s "
            f"errors={sorted(self.errors)}"
        )
        assert not lost and not duplicated and not reordered and not invented


def _texts(messages: list[Any]) -> list[str]:
    return [str(m.content) for m in messages]


async def _write_until_it_works(history: Any, text: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await history.aadd_user_message(text)
            return
        except KafkaHistoryError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def _layout(name: str) -> dict[str, Any]:
    if name == "topic-per-session":
        return {}
    return {"shared_topic": "chat.shared", "shared_topic_settings": TopicSettings(partition=2)}


@pytest.mark.parametrize("layout_name", ["topic-per-session", "shared-topic"])
def test_a_full_outage_bounds_every_call_and_the_same_objects_recover(
    session_id: str, layout_name: str
) -> None:
    ledger = Ledger(f"full outage, 1 node stopped, {layout_name}")
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers

        async def scenario() -> list[str]:
            options = {**OPTIONS, **_layout(layout_name)}
            async with AsyncKafkaHistoryClient(bootstrap, **options) as client:
                history = client.history(session_id, messages_mode="full")
                positional = client.history(session_id)
                for i in range(10):
                    await ledger.write(history, f"before:{i}")
                assert len(ledger.acknowledged) == 10
                await asyncio.to_thread(cluster.stop_node, 0)

                for i in range(5):
                    await ledger.write(history, f"during:{i}")
                # Over 1 MiB in one call: several record batches, still one bound.
                big = [HumanMessage(content=f"big:{i}:" + "x" * 100_000) for i in range(30)]
                outcome = await ledger.call(TIMEOUT + MARGIN, lambda: history.aadd_messages(big))
                assert isinstance(outcome, SessionWriteError)
                big_texts = [str(m.content) for m in big]
                (ledger.indeterminate if outcome.indeterminate else ledger.failed).extend(big_texts)
                read = TIMEOUT + MARGIN
                await ledger.call(read, history.aget_messages)
                await ledger.call(read, positional.aget_messages)
                await ledger.call(1.0 + MARGIN, lambda: positional.amessages_from_beginning(2, 1.0))
                await ledger.call(read, lambda: history.alast_messages(3))
                await ledger.call(read, history.aclear)
                await ledger.call(read, client.list_sessions)
                await ledger.call(read, lambda: client.session_exists(session_id))
                # A write pending while the client is closed elsewhere: both end in bounds.
                assert "SessionWriteError" in ledger.errors or "BrokerUnavailableError" in (
                    ledger.errors
                )

                await asyncio.to_thread(cluster.start_node, 0)
                await _write_until_it_works(history, "after:0")
                ledger.acknowledged.append("after:0")
                for i in range(1, 10):
                    await ledger.write(history, f"after:{i}")
                return _texts(await history.aget_messages())

        stored = asyncio.run(scenario())
    ledger.check(stored)
    assert stored[-10:] == [f"after:{i}" for i in range(10)]


@pytest.mark.parametrize("layout_name", ["topic-per-session", "shared-topic"])
def test_closing_during_an_outage_with_a_write_pending_is_bounded(
    session_id: str, layout_name: str
) -> None:
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers

        async def scenario() -> tuple[float, Any]:
            client = AsyncKafkaHistoryClient(bootstrap, **OPTIONS, **_layout(layout_name))
            history = client.history(session_id)
            await history.aadd_user_message("connected")
            await asyncio.to_thread(cluster.stop_node, 0)
            pending = asyncio.ensure_future(history.aadd_user_message("pending"))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await client.aclose()
            took = time.monotonic() - started
            outcome = (await asyncio.gather(pending, return_exceptions=True))[0]
            return took, outcome

        took, outcome = asyncio.run(scenario())
    print(f"\n[close during outage] aclose took {took:.2f}s, pending write: {outcome!r}"[:300])
    assert took <= 3 * CLOSE + SLACK
    assert outcome is None or isinstance(outcome, KafkaHistoryError)


def test_blocking_calls_are_bounded_during_an_outage(session_id: str) -> None:
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        with KafkaHistoryClient(bootstrap, **OPTIONS) as client:
            blocking = client.history(session_id, messages_mode="full")
            blocking.add_user_message("before")
            cluster.stop_node(0)
            durations = []
            for op in (
                lambda: blocking.add_user_message("during"),
                lambda: blocking.messages,
                blocking.clear,
            ):
                started = time.monotonic()
                with pytest.raises(KafkaHistoryError):
                    op()
                durations.append(time.monotonic() - started)
            cluster.start_node(0)
            deadline = time.monotonic() + 60
            while True:
                try:
                    blocking.add_user_message("after")
                    break
                except KafkaHistoryError:
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
            stored = [str(m.content) for m in blocking.messages]
    print(f"\n[blocking calls during outage] durations {[round(d, 2) for d in durations]}")
    assert max(durations) <= TIMEOUT + MARGIN + SLACK
    assert stored[0] == "before" and stored[-1] == "after"
    assert stored.count("before") == 1 and stored.count("after") == 1


async def _leader(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return int(described["partitions"][0]["leader"])


def test_below_min_insync_replicas_writes_fail_in_bounds_and_nothing_is_lost(
    kafka_cluster: KafkaCluster, session_id: str
) -> None:
    ledger = Ledger("2 of 3 nodes down (below min.insync.replicas=2)")
    bootstrap = kafka_cluster.bootstrap_servers

    async def scenario() -> list[str]:
        async with AsyncKafkaHistoryClient(bootstrap, **OPTIONS) as client:
            history = client.history(session_id, replication_factor=3, messages_mode="full")
            for i in range(10):
                await ledger.write(history, f"before:{i}")
            leader = await _leader(bootstrap, session_id)
            followers = [n for n in range(3) if n != leader]
            for node in followers:
                await asyncio.to_thread(kafka_cluster.kill_node, node)
            try:
                for i in range(5):
                    await ledger.write(history, f"during:{i}")
            finally:
                for node in followers:
                    await asyncio.to_thread(kafka_cluster.start_node, node)
            await _write_until_it_works(history, "after:0")
            ledger.acknowledged.append("after:0")
            for i in range(1, 10):
                await ledger.write(history, f"after:{i}")
            return _texts(await history.aget_messages())

    stored = asyncio.run(scenario())
    ledger.check(stored)
    assert len(ledger.acknowledged) >= 20

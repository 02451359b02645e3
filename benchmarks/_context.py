"""What every benchmark group gets: the broker, this run's topic prefix, the iteration counts.

Every topic (and consumer group) a run creates starts with ``Context.prefix``, which is unique
per run, so :func:`delete_run_topics` can remove them all at the end, also after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["BOOTSTRAP_ENV", "Context", "bootstrap_from_env", "count_topics", "delete_run_topics"]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class Context:
    """The run's settings, shared by every benchmark group."""

    bootstrap: str
    quick: bool = False
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}-")

    def topic(self, label: str) -> str:
        """A session id (= topic name) of this run."""
        return f"{self.prefix}{label}"

    def n(self, full: int, quick: int) -> int:
        """An iteration count: ``full`` normally, ``quick`` with ``--quick``."""
        return quick if self.quick else full

    @property
    def broker_ports(self) -> set[int]:
        """The ports of the bootstrap servers (to recognise broker connections)."""
        return {int(server.rsplit(":", 1)[1]) for server in self.bootstrap.split(",")}


def bootstrap_from_env() -> str:
    """``$KAFKA_BOOTSTRAP_SERVERS``, which must name loopback addresses only.

    Raises:
        SystemExit: unset, or pointing away from this machine (the run creates and deletes
            topics and floods the broker, so it only ever talks to a local one).
    """
    bootstrap = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not bootstrap:
        raise SystemExit(
            f"{BOOTSTRAP_ENV} is not set: run `python -m kafkalocal exec -- python -m benchmarks`"
            f" or export {BOOTSTRAP_ENV}=127.0.0.1:PORT of a local broker"
        )
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if host not in _LOOPBACK or not port.isdigit():
            raise SystemExit(
                f"{BOOTSTRAP_ENV}={bootstrap!r}: benchmarks only run against a local broker "
                "(127.0.0.1:PORT or localhost:PORT)"
            )
    return bootstrap


async def _topics(bootstrap: str, delete_prefix: str | None) -> list[str]:
    """Every topic of the cluster; with ``delete_prefix``, delete (and return) those only."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="benchmarks-admin")
    await admin.start()
    try:
        topics: list[str] = sorted(await admin.list_topics())
        if delete_prefix is None:
            return topics
        doomed = [t for t in topics if t.startswith(delete_prefix)]
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100])
        return doomed
    finally:
        await admin.close()


def count_topics(ctx: Context) -> int:
    """How many topics the cluster has (reads get slower the more there are, see README)."""
    return len(asyncio.run(_topics(ctx.bootstrap, None)))


def _delete_groups(bootstrap: str, prefix: str) -> int:
    """Consumer groups (both libraries name them after the topic) of this run; best effort."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    deleted = 0
    for start in range(0, len(groups), 50):
        futures = admin.delete_consumer_groups(groups[start : start + 50], request_timeout=10)
        for future in futures.values():
            with contextlib.suppress(Exception):  # already gone is fine
                future.result()
                deleted += 1
    return deleted


def delete_run_topics(ctx: Context) -> str:
    """Delete every topic and consumer group of this run; a one-line summary."""
    try:
        groups = f"{_delete_groups(ctx.bootstrap, ctx.prefix)} consumer groups"
    except Exception as exc:  # the topics are what matters; groups without offsets expire
        groups = f"no consumer groups ({type(exc).__name__}: {exc})"
    topics = asyncio.run(_topics(ctx.bootstrap, ctx.prefix))
    return f"deleted {len(topics)} topics and {groups} with prefix {ctx.prefix!r}"

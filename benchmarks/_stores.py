"""The chat-history stores compared by the peer benchmarks, behind the same four async calls.

Every store answers ``add`` (append messages), ``read`` (the whole history, in order),
``newest`` (the last ``n`` messages) and ``seed`` (an untimed bulk write), as an application
would call it per request:

- **ours** (:class:`Ours`): one :class:`AsyncKafkaHistoryClient` (topic per session, or
  ``shared_topic=``); each call makes a fresh ``client.history(...)`` view, as a server
  (or ``RunnableWithMessageHistory``'s ``get_session_history``) does per request. ``read``
  is a full read (``messages_mode="full"``), ``newest`` is ``alast_messages(n)``.
- **Postgres** (:class:`Postgres`): langchain-postgres' ``PostgresChatMessageHistory``
  with psycopg 3 async connections from a ``psycopg_pool.AsyncConnectionPool``; each call
  takes a connection from the pool and makes a fresh history over it (the documented
  pattern). ``newest`` is its own SQL on the class's table: ``ORDER BY id DESC LIMIT n``.
- **Redis** (:class:`Redis`): langchain_community's ``RedisChatMessageHistory``, one object
  per session made once, untimed (its constructor opens a connection pool per object, so
  reusing it is its best case). It is a blocking class: calls one after another use its
  blocking methods directly (no executor hop); calls made at once (``concurrent=True``) use
  LangChain's ``aget_messages`` / ``aadd_messages``, which run them in the loop's default
  thread pool. ``newest`` is its own ``LRANGE``: the class ``LPUSH``es, so the newest
  messages are at the head (``LRANGE key 0 n-1``, reversed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    message_to_dict,
    messages_from_dict,
)

from aiokafka_history import AsyncKafkaChatMessageHistory, AsyncKafkaHistoryClient

from ._measure import expect
from ._report import Figure, percentile

__all__ = ["POOL_SIZE", "Ours", "Postgres", "Redis", "Store", "burst_turns", "pair"]

POOL_SIZE = 10  # Postgres connections in the pool (the server has max_connections=300)
TABLE = "chat_history"


class Store:
    """What the peer benchmarks call; subclasses are async context managers."""

    name = ""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def add(self, session: str, messages: Sequence[BaseMessage]) -> None:
        raise NotImplementedError

    async def read(self, session: str) -> list[BaseMessage]:
        raise NotImplementedError

    async def newest(self, session: str, count: int) -> list[BaseMessage]:
        raise NotImplementedError

    async def seed(self, session: str, messages: Sequence[BaseMessage]) -> None:
        for start in range(0, len(messages), 2_000):
            await self.add(session, messages[start : start + 2_000])

    async def turn(self, session: str, pair: Sequence[BaseMessage]) -> int:
        """One chat turn: read the whole history, then add the question and the answer."""
        history = await self.read(session)
        await self.add(session, pair)
        return len(history)


class Ours(Store):
    """aiokafka-history, one shared async client, a fresh history view per call."""

    def __init__(self, bootstrap: str, *, shared_topic: str | None, topic_prefix: str) -> None:
        self.name = "ours, shared topic" if shared_topic else "ours, topic per session"
        if shared_topic:
            self.client = AsyncKafkaHistoryClient(bootstrap, shared_topic=shared_topic)
        else:
            self.client = AsyncKafkaHistoryClient(bootstrap, topic_prefix=topic_prefix)

    async def __aenter__(self) -> Ours:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def history(self, session: str, *, full: bool = False) -> AsyncKafkaChatMessageHistory:
        return self.client.history(session, messages_mode="full" if full else "last_consumed")

    async def add(self, session: str, messages: Sequence[BaseMessage]) -> None:
        await self.history(session).aadd_messages(messages)

    async def read(self, session: str) -> list[BaseMessage]:
        return await self.history(session, full=True).aget_messages()

    async def newest(self, session: str, count: int) -> list[BaseMessage]:
        return await self.history(session).alast_messages(count)


class Postgres(Store):
    """langchain-postgres' PostgresChatMessageHistory over a psycopg 3 async pool."""

    name = "Postgres"

    def __init__(self, conninfo: str, *, pool_size: int = POOL_SIZE) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            conninfo, min_size=pool_size, max_size=pool_size, open=False, timeout=60
        )

    async def __aenter__(self) -> Postgres:
        from langchain_postgres import PostgresChatMessageHistory

        await self.pool.open(wait=True)
        async with self.pool.connection() as conn:
            await PostgresChatMessageHistory.acreate_tables(conn, TABLE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    async def add(self, session: str, messages: Sequence[BaseMessage]) -> None:
        from langchain_postgres import PostgresChatMessageHistory

        async with self.pool.connection() as conn:
            history = PostgresChatMessageHistory(TABLE, session, async_connection=conn)
            await history.aadd_messages(messages)

    async def read(self, session: str) -> list[BaseMessage]:
        from langchain_postgres import PostgresChatMessageHistory

        async with self.pool.connection() as conn:
            history = PostgresChatMessageHistory(TABLE, session, async_connection=conn)
            return await history.aget_messages()

    async def newest(self, session: str, count: int) -> list[BaseMessage]:
        from psycopg import sql

        query = sql.SQL(
            "SELECT message FROM {} WHERE session_id = %s ORDER BY id DESC LIMIT %s"
        ).format(sql.Identifier(TABLE))
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, (session, count))
            rows = await cursor.fetchall()
        return messages_from_dict([row[0] for row in reversed(rows)])

    async def analyze(self) -> None:
        """Fresh planner statistics after a bulk seed (what autovacuum would do soon)."""
        async with self.pool.connection() as conn:
            await conn.execute(f"ANALYZE {TABLE}")


class Redis(Store):
    """langchain_community's RedisChatMessageHistory, one object per session."""

    name = "Redis"

    def __init__(self, url: str, *, concurrent: bool = False) -> None:
        self.url = url
        self.concurrent = concurrent
        self._histories: dict[str, Any] = {}

    def history(self, session: str) -> Any:
        found = self._histories.get(session)
        if found is None:
            from ._community import CommunityRedisHistory

            found = self._histories[session] = CommunityRedisHistory(session, url=self.url)
        return found

    def prepare(self, sessions: Sequence[str]) -> None:
        """Make the sessions' objects now (untimed)."""
        for session in sessions:
            self.history(session)

    async def __aexit__(self, *exc: object) -> None:
        for history in self._histories.values():
            history.redis_client.close()
        self._histories.clear()

    async def add(self, session: str, messages: Sequence[BaseMessage]) -> None:
        history = self.history(session)
        if self.concurrent:
            await history.aadd_messages(messages)
        else:
            history.add_messages(messages)

    async def read(self, session: str) -> list[BaseMessage]:
        history = self.history(session)
        if self.concurrent:
            result: list[BaseMessage] = await history.aget_messages()
            return result
        messages: list[BaseMessage] = history.messages
        return messages

    async def newest(self, session: str, count: int) -> list[BaseMessage]:
        history = self.history(session)
        items = history.redis_client.lrange(history.key, 0, count - 1)
        return messages_from_dict([json.loads(item) for item in reversed(items)])

    async def seed(self, session: str, messages: Sequence[BaseMessage]) -> None:
        history = self.history(session)  # LPUSH in order, as its add_message does one by one
        values = [json.dumps(message_to_dict(m)) for m in messages]
        for start in range(0, len(values), 2_000):
            history.redis_client.lpush(history.key, *values[start : start + 2_000])


def pair(session: str, turn: int) -> list[BaseMessage]:
    """A turn's question and answer, a typical chat size (~60 characters each)."""
    return [
        HumanMessage(content=f"{session[:8]} question {turn}: what about the retention?"),
        AIMessage(content=f"{session[:8]} answer {turn}: seven days, set retention.ms."),
    ]


async def burst_turns(
    store: Store, sessions: Sequence[str], first: int, turns: int
) -> tuple[Figure, list[float]]:
    """Every session makes ``turns`` turns at once (from turn ``first``), each checking it
    read 2 messages per earlier turn; messages written per second, and
    ``[seconds, turn p50 ms, turn p99 ms]``."""
    latencies: list[float] = []

    async def converse(session: str) -> None:
        for turn in range(first, first + turns):
            began = time.perf_counter()
            seen = await store.turn(session, pair(session, turn))
            latencies.append(time.perf_counter() - began)
            expect(seen == 2 * turn, f"{store.name}: turn {turn} of {session} read {seen}")

    began = time.perf_counter()
    await asyncio.gather(*(converse(s) for s in sessions))
    elapsed = time.perf_counter() - began
    written = 2 * turns * len(sessions)
    ms = [s * 1000 for s in latencies]
    figure = Figure.single(written / elapsed, "msg/s", n=len(latencies))
    return figure, [elapsed, percentile(ms, 50), percentile(ms, 99)]

"""The Kafka connections of one event loop: admin, producer and readers together.

This is the typed boundary around aiokafka (which ships no types). It knows topics,
partitions, offsets and bytes, nothing of sessions or LangChain, so every storage layout
stands on it. Every aiokafka object is created inside the loop that uses it; a
``Transport`` must only be used from that loop. Not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ._kafka_admin import Admin
from ._kafka_internals import open_sockets
from ._kafka_probe import probe_connection
from ._kafka_producer import Producer
from ._kafka_readers import ReaderPool

__all__ = ["Transport"]

logger = logging.getLogger("aiokafka_history")


class Transport:
    """Admin client, producer and reader consumers bound to the running event loop.

    Nothing connects before :meth:`start`. :meth:`close` ends within ``close_timeout``
    seconds (plus the time to cancel), also during an outage and while a start is pending.
    """

    def __init__(
        self,
        client_kwargs: Mapping[str, Any],
        *,
        max_readers: int,
        backoff: float,
        close_timeout: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._client_kwargs = client_kwargs
        self.admin = Admin(client_kwargs, backoff)
        self.producer = Producer(client_kwargs, close_timeout=close_timeout)
        self.readers = ReaderPool(client_kwargs, max_readers=max_readers)
        self._close_timeout = close_timeout
        self._starting: asyncio.Task[None] | None = None
        self.closed = False

    async def start(self) -> None:
        """Connect the admin client (the producer and readers connect on first use).

        Concurrent callers share one attempt; a caller cancelled while waiting leaves the
        attempt running for the others, and :meth:`close` ends it.
        """
        starting = self._starting
        if starting is None:
            starting = self._starting = asyncio.ensure_future(self.admin.start())
        elif starting.done() and not starting.cancelled():
            starting.result()  # the common case, connected long ago: no shield to arm
            return
        await asyncio.shield(starting)

    async def diagnose(self, timeout: float) -> BaseException | None:
        """What one fresh connection to the first bootstrap server meets (after a failure)."""
        return await probe_connection(self._client_kwargs, timeout)

    async def close(self) -> None:
        """Close every connection; idempotent, bounded by ``close_timeout``."""
        if self.closed:
            return
        self.closed = True
        starting = self._starting
        if starting is not None and not starting.done():
            # Let a pending connect end (bounded) rather than cut it off mid-way: aiokafka
            # leaks a connection cancelled while it is being opened.
            await asyncio.wait({starting}, timeout=self._close_timeout)
            starting.cancel()
        errors = await self.readers.close(self._close_timeout)
        tasks = [
            asyncio.ensure_future(self.producer.close()),
            asyncio.ensure_future(self.admin.close(self._close_timeout)),
        ]
        done, pending = await asyncio.wait(tasks, timeout=3 * self._close_timeout)
        for task in pending:
            task.cancel()
        errors += [e for t in done if not t.cancelled() and (e := t.exception()) is not None]
        for error in errors:
            logger.warning("closing a Kafka connection failed: %s", type(error).__name__)

    def sockets(self) -> int:
        """How many broker connections are open (for diagnostics and tests)."""
        return open_sockets(self.producer.aiokafka_producer, self.admin.client, *self.readers.all)

"""One process, many sessions: connections stay bounded by the client, not the sessions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from aiokafka_history import AsyncKafkaHistoryClient


@pytest.mark.anyio
async def test_ten_thousand_histories_share_a_bounded_set_of_connections(
    kafka_bootstrap: str, socket_fds: Callable[[], int]
) -> None:
    prefix = f"it-scale-{uuid.uuid4().hex[:8]}."
    brokers = len(kafka_bootstrap.split(","))

    before = socket_fds()
    async with AsyncKafkaHistoryClient(
        kafka_bootstrap, topic_prefix=prefix, max_readers=4
    ) as client:
        histories = [client.history(f"s{i}", messages_mode="full") for i in range(10_000)]
        assert socket_fds() == before  # making histories opens nothing
        active = histories[:: 10_000 // 60]
        try:
            await asyncio.gather(*(h.aadd_user_message(h.session_id) for h in active))
            results = await asyncio.gather(*(h.aget_messages() for h in active))
            assert [[m.content for m in r] for r in results] == [[h.session_id] for h in active]
            library_sockets, process_sockets = client.sockets(), socket_fds() - before
        finally:
            await asyncio.gather(*(client.delete_session(h.session_id) for h in active))

    # A producer, an admin client and at most max_readers readers, each with at most one
    # connection per broker plus one bootstrap/coordinator connection.
    bound = (2 + 4) * (brokers + 1)
    print(f"\n{len(active)} active of 10,000 histories: {library_sockets} library sockets")
    assert 0 < library_sockets <= bound
    assert process_sockets <= bound

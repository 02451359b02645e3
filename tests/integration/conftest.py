"""Fixtures of the library's integration tests (the broker fixtures live in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@pytest.fixture
def make_session_id(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """Fresh, legal session ids for this test; their topics are deleted afterwards."""
    made: list[str] = []
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]

    def make(label: str = "") -> str:
        session_id = f"it-{base}-{label}-{uuid.uuid4().hex[:8]}".replace("--", "-")
        made.append(session_id)
        return session_id

    yield make
    if made:
        asyncio.run(_delete_topics(kafka_bootstrap, made))

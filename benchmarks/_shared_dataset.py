r"""The synthetic data of the shared-topic scale benchmark, and a raw bulk loader for it.

Sessions are named like real ones (UUID strings, so new sessions land all over the view's
index, not at its end) but derived from a label (``"bulk:42"``, ``"long:1:7"``), so the
expected content of any session can be recomputed instead of stored.

The record format is re-derived here from the documented format of the shared layout, not
imported from the library's private ``_shared_keys``:

- key ``session \x00 m <16 hex digits>``, one key per message;
- partition ``(murmur2(session) & 0x7fffffff) % partitions``: Kafka's default partitioner
  applied to the session part of the key;
- value ``json.dumps(message_to_dict(message))``, as langchain_community writes it.

A mistake here cannot hide: the benchmark reads every bulk-loaded sample back through the
library and compares content and order (a record on the wrong partition is never found, a
malformed key is skipped as a stray record).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

__all__ = [
    "BULK_BATCH_BYTES",
    "MESSAGES_PER_SESSION",
    "LoadStats",
    "bulk_load",
    "conversation",
    "encode",
    "message_key",
    "partition_of",
    "session_id",
]

#: Messages of every bulk-loaded session (a user turn and an answer, five times).
MESSAGES_PER_SESSION = 10
#: Record batches of the bulk load: the library's own largest batch (64 KiB, ~270 records).
BULK_BATCH_BYTES = 64 * 1024
#: Sessions written interleaved, one message each in turn: how many are "active" at once.
INTERLEAVE = 20_000
_PUT_TIMEOUT = 300.0  # seconds a full batch may wait for its partition's sender


def session_id(label: str) -> str:
    """A UUID-shaped session id derived from ``label`` (same label, same id)."""
    return str(uuid.UUID(bytes=hashlib.blake2b(label.encode(), digest_size=16).digest()))


def _content(label: str, i: int) -> str:
    if i % 2 == 0:
        return f"question {i // 2} in {label}: how long do you keep my chat history?"
    return f"answer {i // 2} in {label}: seven days, then the topic's retention removes it."


def message(label: str, i: int) -> BaseMessage:
    """Message ``i`` of the session labelled ``label``: user turns and answers alternate."""
    if i % 2 == 0:
        return HumanMessage(content=_content(label, i))
    return AIMessage(content=_content(label, i))


def conversation(label: str, count: int, first: int = 0) -> list[BaseMessage]:
    """Messages ``first`` to ``first + count - 1`` of the session labelled ``label``."""
    return [message(label, i) for i in range(first, first + count)]


_MARK = "@@content@@"
_TEMPLATES = {
    kind: json.dumps(message_to_dict(cls(content=_MARK))).split(json.dumps(_MARK))
    for kind, cls in ((0, HumanMessage), (1, AIMessage))
}


def encode(label: str, i: int) -> bytes:
    """The record value of :func:`message` ``(label, i)``, fast (no message object).

    Byte-identical to ``json.dumps(message_to_dict(message(label, i)))``; checked by
    :func:`check_encoding`.
    """
    before, after = _TEMPLATES[i % 2]
    return (before + json.dumps(_content(label, i)) + after).encode()


def check_encoding() -> None:
    """Raise unless :func:`encode` writes what langchain_community would."""
    for label, i in (("bulk:0", 0), ("bulk:0", 1), ("long:3:5", 28), ("bulk:999999", 9)):
        wanted = json.dumps(message_to_dict(message(label, i))).encode()
        if encode(label, i) != wanted:
            raise RuntimeError(f"the fast encoder differs from message_to_dict at {label}/{i}")


def message_key(session: bytes, serial: int) -> bytes:
    r"""``session \x00 m`` and 16 hex digits, unique per message of the session."""
    return session + b"\x00m" + b"%016x" % serial


def partition_of(session: str, partitions: int) -> int:
    """The partition of every record of ``session``: Kafka's default partitioner."""
    hashed: int = murmur2(session.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class LoadStats:
    """What :func:`bulk_load` wrote and how long it took."""

    records: int
    sessions: int
    seconds: float
    bytes: int


def _bulk_records(first: int, last: int, partitions: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, value) of bulk sessions ``first`` to ``last - 1``.

    Sessions are taken :data:`INTERLEAVE` at a time and written round-robin, one message of
    each in turn, as concurrent conversations would be (not one whole session after another).
    """
    for start in range(first, last, INTERLEAVE):
        chunk = []
        for k in range(start, min(last, start + INTERLEAVE)):
            label = f"bulk:{k}"
            sid = session_id(label)
            chunk.append((label, sid.encode(), partition_of(sid, partitions), k << 8))
        for i in range(MESSAGES_PER_SESSION):
            for label, raw, p, serial in chunk:
                yield p, message_key(raw, serial | i), encode(label, i)


async def bulk_load(
    bootstrap: str,
    topic: str,
    partitions: int,
    first: int,
    last: int,
    *,
    progress: float = 30.0,
    say: Callable[[str], None] | None = None,
) -> LoadStats:
    """Write bulk sessions ``first`` to ``last - 1`` with raw aiokafka (acks=all, idempotent).

    Records are packed into :data:`BULK_BATCH_BYTES` batches per partition and sent by one
    task per partition (aiokafka keeps one batch per partition in flight, in order), so a
    session's messages keep their order.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="shared-scale-bulk",
        acks="all",
        enable_idempotence=True,
        max_batch_size=BULK_BATCH_BYTES,
        request_timeout_ms=120_000,
    )
    await producer.start()
    queues: list[asyncio.Queue[object]] = [asyncio.Queue(maxsize=4) for _ in range(partitions)]
    written = [0, 0]  # records, bytes acknowledged

    async def put(p: int, batch: object) -> None:
        # A sender that failed stops taking batches: its error, not a hang.
        for task in senders:
            if task.done():
                task.result()
        await asyncio.wait_for(queues[p].put(batch), _PUT_TIMEOUT)

    async def sender(p: int) -> None:
        pending: list[asyncio.Future[object]] = []
        while True:
            batch = await queues[p].get()
            if batch is None:
                break
            pending.append(await producer.send_batch(batch, topic, partition=p))
            if len(pending) >= 8:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)

    began = time.perf_counter()
    senders = [asyncio.ensure_future(sender(p)) for p in range(partitions)]
    try:
        builders = [producer.create_batch() for _ in range(partitions)]
        reported = time.monotonic()
        for count, (p, key, value) in enumerate(_bulk_records(first, last, partitions), 1):
            if builders[p].append(key=key, value=value, timestamp=None) is None:
                await put(p, builders[p])
                builders[p] = producer.create_batch()
                builders[p].append(key=key, value=value, timestamp=None)
            written[0] += 1
            written[1] += len(key) + len(value)
            if count % 2048 == 0:
                await asyncio.sleep(0)  # let the senders run
                if say is not None and time.monotonic() - reported > progress:
                    reported = time.monotonic()
                    rate = count / (time.perf_counter() - began)
                    say(f"      bulk load: {count:,} records ({rate:,.0f}/s)")
        for p, builder in enumerate(builders):
            if builder.record_count():
                await put(p, builder)
        for p in range(partitions):
            await put(p, None)
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        await producer.stop()
    return LoadStats(written[0], last - first, time.perf_counter() - began, written[1])

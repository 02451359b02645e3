"""4. The last-N window: ``last_messages(20)`` of a 20,000-message session.

Baseline: what a caller does without it, reading the whole history (``messages_mode="full"``,
as ``RunnableWithMessageHistory`` needs) and keeping the last 20. Both on warm views of one
shared client.
"""

from __future__ import annotations

from aiokafka_history import KafkaHistoryClient

from ._context import Context
from ._measure import expect, measure
from ._report import Figure, Row
from .from_beginning import conversation

TITLE = "last_messages(20), 20,000 messages"

TOTAL = 20_000
WINDOW = 20
BATCH = 2_000


def run(ctx: Context) -> list[Row]:
    messages = conversation(TOTAL)
    expected = messages[-WINDOW:]
    session = ctx.topic("last-n")
    with KafkaHistoryClient(ctx.bootstrap) as client:
        history = client.history(session)
        full = client.history(session, messages_mode="full")
        for start in range(0, TOTAL, BATCH):
            history.add_messages(messages[start : start + BATCH])

        def window() -> None:
            got = history.last_messages(WINDOW)
            expect(got == expected, f"last_messages({WINDOW}) returned {len(got)} others")

        def whole() -> None:
            got = full.messages
            expect(len(got) == TOTAL, f"full read returned {len(got)} of {TOTAL}")
            expect(got[-WINDOW:] == expected, "full read ends with other messages")

        ours = Figure.latency(measure(window, ctx.n(50, 10), warmup=3))
        base = Figure.latency(measure(whole, ctx.n(5, 2), warmup=1))
    return [
        Row(
            "4",
            "last_messages(20), 20,000 msgs",
            ours,
            "full read (messages_mode='full')[-20:]",
            base,
        )
    ]

"""The langchain_community Kafka page's walk-through, step by step, with aiokafka-history.

Run it with ``python3 -m nox -s demo`` (starts a local Kafka), or against your own cluster:
``KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/seed_walkthrough.py``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from aiokafka_history import KafkaChatMessageHistory


def show(step: str, code: str, action: Callable[[], Any]) -> Any:
    """Print a step, run it, print its result and how long it took."""
    if step:
        print(f"\n# {step}")
    print(f">>> {code}")
    started = time.perf_counter()
    result = action()
    elapsed = (time.perf_counter() - started) * 1000
    if result is not None:
        print(_format(result))
    print(f"    ({elapsed:.1f} ms)")
    return result


def _format(result: Any) -> str:
    if isinstance(result, list):
        if not result:
            return "[]"
        rows = ",\n ".join(_message(m) for m in result)
        return f"[{rows}]"
    return repr(result)


def _message(message: BaseMessage) -> str:
    return f"{type(message).__name__}(content={message.content!r})"


def expect(actual: list[BaseMessage], *expected: BaseMessage) -> None:
    """Stop the demo loudly if a step did not give what the page shows."""
    if actual != list(expected):
        sys.exit(f"unexpected result: {actual!r}")


def main() -> None:
    """Walk through the page against $KAFKA_BOOTSTRAP_SERVERS."""
    bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    # A fresh session per run, so the demo shows the page's results every time.
    chat_session_id = f"chat-message-history-kafka-{uuid.uuid4().hex[:8]}"
    print(f"Kafka at {bootstrap_servers}; session {chat_session_id}")

    history = KafkaChatMessageHistory(chat_session_id, bootstrap_servers)
    try:
        show(
            "Add messages",
            'history.add_user_message("hi!")',
            lambda: history.add_user_message("hi!"),
        )
        show("", 'history.add_ai_message("whats up?")', lambda: history.add_ai_message("whats up?"))
        expect(
            show("Retrieve them", "history.messages", lambda: history.messages),
            HumanMessage(content="hi!"),
            AIMessage(content="whats up?"),
        )
        expect(
            show(
                "Again: empty, the consumer is at the end of the history",
                "history.messages",
                lambda: history.messages,
            )
        )
        show(
            "Add new messages and continue consuming",
            'history.add_user_message("hi again!")',
            lambda: history.add_user_message("hi again!"),
        )
        show(
            "",
            'history.add_ai_message("whats up again?")',
            lambda: history.add_ai_message("whats up again?"),
        )
        expect(
            show("", "history.messages", lambda: history.messages),
            HumanMessage(content="hi again!"),
            AIMessage(content="whats up again?"),
        )
        expect(
            show(
                "Reset the consumer and read from the beginning (in write order)",
                "history.messages_from_beginning()",
                history.messages_from_beginning,
            ),
            HumanMessage(content="hi!"),
            AIMessage(content="whats up?"),
            HumanMessage(content="hi again!"),
            AIMessage(content="whats up again?"),
        )
        expect(
            show(
                "Set the consumer to the end, add a few messages and consume them",
                "history.messages_from_latest()",
                history.messages_from_latest,
            )
        )
        show("", 'history.add_user_message("HI!")', lambda: history.add_user_message("HI!"))
        show("", 'history.add_ai_message("WHATS UP?")', lambda: history.add_ai_message("WHATS UP?"))
        expect(
            show("", "history.messages", lambda: history.messages),
            HumanMessage(content="HI!"),
            AIMessage(content="WHATS UP?"),
        )
        show("Clean up: delete the demo's topic", "history.delete_topic()", history.delete_topic)
    finally:
        history.close()
    print("\nEvery step gave the page's result, in write order.")


if __name__ == "__main__":
    main()

"""An asyncio chat chain whose history lives in Kafka: two sessions, two turns each.

``RunnableWithMessageHistory`` over one shared ``AsyncKafkaHistoryClient`` in
``messages_mode="full"``, with langchain-core's fake chat model standing in for a real one
(put ``ChatOpenAI(...)`` or any chat model in its place). The sessions run concurrently; each
turn's prompt holds the session's earlier turns, read from Kafka.

Run it against a local Kafka (started for the command) or your own cluster::

    python -m kafkalocal exec -- python examples/async_chain.py
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/async_chain.py

It exits non-zero if a session's stored history is not what the turns wrote, and deletes its
sessions afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
import warnings
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.runnables.history import RunnableWithMessageHistory

from aiokafka_history import AsyncKafkaChatMessageHistory, AsyncKafkaHistoryClient

QUESTIONS = ("hi!", "what is Kafka?")

prompt = ChatPromptTemplate.from_messages(
    [
        ("system", "You are a helpful assistant."),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)


def build_chain(client: AsyncKafkaHistoryClient) -> Runnable[Any, Any]:
    """The chain: prompt, model, and the session's history from ``client``."""
    model = FakeListChatModel(responses=["Hello!", "A distributed, replicated log."])

    def get_session_history(session_id: str) -> AsyncKafkaChatMessageHistory:
        # A cheap view of the shared client, made per call and never closed.
        return client.history(session_id, messages_mode="full")

    # langchain-core deprecates RunnableWithMessageHistory (since 1.3.3, for removal in 2.0)
    # in favour of LangGraph; it still works. See examples/langgraph_node.py.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="RunnableWithMessageHistory is deprecated", category=Warning
        )
        return RunnableWithMessageHistory(
            prompt | model,
            get_session_history,
            input_messages_key="question",
            history_messages_key="history",
        )


async def converse(chain: Runnable[Any, Any], session_id: str) -> None:
    """Two turns of one session: one awaited whole, one streamed."""
    config = {"configurable": {"session_id": session_id}}
    answer = await chain.ainvoke({"question": QUESTIONS[0]}, config)
    print(f"[{session_id}] {QUESTIONS[0]} -> {answer.content}")
    chunks = [chunk.content async for chunk in chain.astream({"question": QUESTIONS[1]}, config)]
    print(f"[{session_id}] {QUESTIONS[1]} -> {''.join(chunks)}")


async def main() -> int:
    """Run two sessions at once, check what Kafka holds, clean up."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    run = uuid.uuid4().hex[:8]
    sessions = [f"async-chain-{run}-{n}" for n in (1, 2)]
    async with AsyncKafkaHistoryClient(bootstrap, topic_prefix="examples.") as client:
        try:
            chain = build_chain(client)
            await asyncio.gather(*(converse(chain, session) for session in sessions))
            for session in sessions:
                stored = await client.history(session, messages_mode="full").aget_messages()
                print(f"[{session}] stored: {[(m.type, m.content) for m in stored]}")
                if [m.content for m in stored[::2]] != list(QUESTIONS) or len(stored) != 4:
                    print(f"unexpected history in {session}", file=sys.stderr)
                    return 1
        finally:
            for session in sessions:
                await client.delete_session(session)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

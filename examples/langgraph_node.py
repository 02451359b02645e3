"""A LangGraph graph whose conversation memory is a Kafka history, read and written in a node.

The graph is one node, ``chat``: it reads the session's last messages from Kafka, calls the
model with them and the new input, and appends the turn (question and answer in one write).
The client and the session id travel in LangGraph's runtime context, so the compiled graph
holds no connection. langchain-core's fake chat model stands in for a real one.

A LangGraph checkpointer backed by Kafka is planned; until then this is the pattern (see
docs/langgraph.md). LangGraph is a development dependency here, not one of the package's.

Run it against a local Kafka (started for the command) or your own cluster::

    python -m kafkalocal exec -- python examples/langgraph_node.py
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/langgraph_node.py

It exits non-zero if the stored history is not the conversation, and deletes its session.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime

from aiokafka_history import AsyncKafkaHistoryClient

QUESTIONS = ("hi!", "what is Kafka?", "and a topic?")
WINDOW = 50  # messages of the conversation put in front of each prompt

model = FakeListChatModel(responses=["Hello!", "A distributed, replicated log.", "A named log."])
prompts: list[list[BaseMessage]] = []  # what the model was given, to check the memory


@dataclass
class Context:
    """What the node needs besides the graph state."""

    histories: AsyncKafkaHistoryClient
    session_id: str


async def chat(state: MessagesState, runtime: Runtime[Context]) -> dict[str, Any]:
    """One turn: the earlier conversation from Kafka, the model, the turn back to Kafka."""
    history = runtime.context.histories.history(runtime.context.session_id, messages_mode="full")
    earlier = await history.alast_messages(WINDOW)
    prompt = [SystemMessage("You are a helpful assistant."), *earlier, *state["messages"]]
    prompts.append(prompt)
    answer = await model.ainvoke(prompt)
    await history.aadd_messages([*state["messages"], answer])
    return {"messages": [answer]}


graph = (
    StateGraph(MessagesState, context_schema=Context)
    .add_node(chat)
    .add_edge(START, "chat")
    .add_edge("chat", END)
    .compile()
)


async def main() -> int:
    """Three turns of one session; each prompt must hold the turns before it."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    session_id = f"langgraph-{uuid.uuid4().hex[:8]}"
    async with AsyncKafkaHistoryClient(bootstrap, topic_prefix="examples.") as client:
        try:
            context = Context(histories=client, session_id=session_id)
            for question in QUESTIONS:
                # Every invocation starts from an empty graph state: Kafka is the memory.
                result = await graph.ainvoke(
                    {"messages": [HumanMessage(question)]}, context=context
                )
                print(f"{question} -> {result['messages'][-1].content}")
            stored = await client.history(session_id, messages_mode="full").aget_messages()
            print(f"stored: {[(m.type, m.content) for m in stored]}")
            # The third prompt: system, the two earlier turns from Kafka, the new question.
            if len(stored) != 2 * len(QUESTIONS) or len(prompts[-1]) != 1 + 4 + 1:
                print("the conversation was not remembered", file=sys.stderr)
                return 1
        finally:
            await client.delete_session(session_id)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A real LangGraph graph on the Kafka savers: 20 turns, interrupted, resumed by another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kafkalocal import TopicFactory

ROOT = Path(__file__).resolve().parents[2]

# The graph and one run of turns, for both processes: MessagesState, a fake chat model, and
# a review node that interrupts once, after the 10th answer.
GRAPH = """
import asyncio, sys
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt
from aiokafka_history import AsyncKafkaHistoryClient, KafkaHistoryClient, TopicSettings
from aiokafka_history.langgraph import AsyncKafkaSaver, KafkaSaver

SETTINGS = TopicSettings(partition=3)

def chat(state):
    turn = sum(1 for m in state["messages"] if str(m.content).startswith("turn "))
    model = FakeListChatModel(responses=[f"answer {turn}"])
    return {"messages": [model.invoke(state["messages"])]}

def review(state):
    if len(state["messages"]) == 20:
        verdict = interrupt("halfway: go on?")
        return {"messages": [HumanMessage(f"review: {verdict}")]}
    return {}

def build(saver):
    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_node("review", review)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=saver)

def run_sync(bootstrap, topic, thread, first, last, resume):
    config = {"configurable": {"thread_id": thread}}
    with KafkaHistoryClient(bootstrap) as client:
        graph = build(KafkaSaver(client, topic=topic, topic_settings=SETTINGS))
        if resume:
            assert graph.get_state(config).next == ("review",)
            graph.invoke(Command(resume="yes"), config)
        for turn in range(first, last + 1):
            graph.invoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
        state = graph.get_state(config)
        return [m.content for m in state.values["messages"]], state.next

async def run_async(bootstrap, topic, thread, first, last, resume):
    config = {"configurable": {"thread_id": thread}}
    async with AsyncKafkaHistoryClient(bootstrap) as client:
        graph = build(AsyncKafkaSaver(client, topic=topic, topic_settings=SETTINGS))
        if resume:
            assert (await graph.aget_state(config)).next == ("review",)
            await graph.ainvoke(Command(resume="yes"), config)
        for turn in range(first, last + 1):
            await graph.ainvoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
        state = await graph.aget_state(config)
        return [m.content for m in state.values["messages"]], state.next

def run(mode, *args):
    if mode == "sync":
        return run_sync(*args)
    return asyncio.run(run_async(*args))
"""

CHILD = GRAPH + textwrap.dedent(
    """
    mode, bootstrap, topic, thread = sys.argv[1:5]
    contents, pending = run(mode, bootstrap, topic, thread, 11, 20, True)
    print(len(contents), repr(pending))
    """
)


def _expected() -> list[str]:
    out: list[str] = []
    for turn in range(1, 21):
        out += [f"turn {turn}", f"answer {turn}"]
        if turn == 10:
            out.append("review: yes")
    return out


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_twenty_turns_interrupted_and_resumed_in_another_process(
    mode: str, kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("lg")
    scope: dict[str, object] = {}
    exec(compile(GRAPH, "<graph>", "exec"), scope)  # the same code the child runs
    run = scope["run"]
    contents, pending = run(mode, kafka_bootstrap, topic, "thread-1", 1, 10, False)  # type: ignore[operator]
    assert pending == ("review",)  # interrupted after the 10th answer
    assert contents == _expected()[:20]

    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHILD, mode, kafka_bootstrap, topic, "thread-1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["41", "()"]

    # This process sees what the other one wrote, from Kafka alone (a fresh client).
    contents, pending = run(mode, kafka_bootstrap, topic, "thread-1", 1, 0, False)  # type: ignore[operator]
    assert contents == _expected()
    assert pending == ()

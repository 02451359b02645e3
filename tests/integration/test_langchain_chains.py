"""RunnableWithMessageHistory over both history classes, with a fake model that records prompts.

Each turn's prompt must hold exactly the earlier turns, in order, and the topic must hold every
message once. Both clients are driven through ``invoke``, ``stream``, ``ainvoke`` and
``astream``, with a ``MessagesPlaceholder`` (``history_messages_key``) and with the messages
passed straight to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory
from pydantic import Field

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    EventLoopError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)

# langchain-core >= 1.3.3 announces RunnableWithMessageHistory's retirement (in 2.0) on
# construction; it is what this module tests, so the notice is expected here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated:DeprecationWarning"
)

QUESTIONS = ["hi!", "what is Kafka?", "and a topic?", "thanks!"]

Shape = Literal["placeholder", "messages"]
"""``placeholder``: a prompt with ``MessagesPlaceholder`` (``history_messages_key``);
``messages``: the model alone, fed history + input messages."""

AnyClient = KafkaHistoryClient | AsyncKafkaHistoryClient
ClientClass = type[KafkaHistoryClient] | type[AsyncKafkaHistoryClient]

CLIENTS = [
    pytest.param(KafkaHistoryClient, id="sync-client"),
    pytest.param(AsyncKafkaHistoryClient, id="async-client"),
]
SHAPES = ["placeholder", "messages"]

HISTORY_CLASS: dict[ClientClass, type[BaseChatMessageHistory]] = {
    KafkaHistoryClient: KafkaChatMessageHistory,
    AsyncKafkaHistoryClient: AsyncKafkaChatMessageHistory,
}

OpenHistory = Callable[..., contextlib.AbstractContextManager[KafkaChatMessageHistory]]
AOpenHistory = Callable[..., contextlib.AbstractAsyncContextManager[AsyncKafkaChatMessageHistory]]


class RecordingChatModel(BaseChatModel):
    """A fake chat model: records every prompt, answers ``reply N to <last message>``."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def _answer(self, messages: list[BaseMessage]) -> str:
        self.prompts.append(list(messages))
        return f"reply {len(self.prompts)} to {messages[-1].text}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = AIMessage(content=self._answer(messages))
        return ChatResult(generations=[ChatGeneration(message=answer)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in re.findall(r"\S+\s*", self._answer(messages)):  # "reply ", "1 ", ...
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages):
            yield chunk


def make_chain(
    model: RecordingChatModel,
    get_session_history: Callable[[str], BaseChatMessageHistory],
    shape: Shape,
) -> RunnableWithMessageHistory:
    if shape == "placeholder":
        prompt = ChatPromptTemplate.from_messages(
            [MessagesPlaceholder("history"), ("human", "{question}")]
        )
        return RunnableWithMessageHistory(
            prompt | model,
            get_session_history,
            input_messages_key="question",
            history_messages_key="history",
        )
    return RunnableWithMessageHistory(model, get_session_history)


def chain_input(shape: Shape, question: str) -> dict[str, str] | list[BaseMessage]:
    return {"question": question} if shape == "placeholder" else [HumanMessage(content=question)]


def session_config(session_id: str) -> RunnableConfig:
    return {"configurable": {"session_id": session_id}}


def full_history_factory(
    client: AnyClient, made: list[BaseChatMessageHistory]
) -> Callable[[str], BaseChatMessageHistory]:
    """The recommended ``get_session_history``: a cheap full-mode view on one shared client."""

    def get_session_history(session_id: str) -> BaseChatMessageHistory:
        history = client.history(session_id, messages_mode="full")
        made.append(history)
        return history

    return get_session_history


def invoke_turn(chain: RunnableWithMessageHistory, shape: Shape, q: str, session_id: str) -> str:
    answer = chain.invoke(chain_input(shape, q), session_config(session_id))
    assert isinstance(answer, AIMessage)
    return answer.text


def stream_turn(chain: RunnableWithMessageHistory, shape: Shape, q: str, session_id: str) -> str:
    chunks = list(chain.stream(chain_input(shape, q), session_config(session_id)))
    assert len(chunks) > 1  # really streamed
    return "".join(chunk.text for chunk in chunks)


async def ainvoke_turn(
    chain: RunnableWithMessageHistory, shape: Shape, q: str, session_id: str
) -> str:
    answer = await chain.ainvoke(chain_input(shape, q), session_config(session_id))
    assert isinstance(answer, AIMessage)
    return answer.text


async def astream_turn(
    chain: RunnableWithMessageHistory, shape: Shape, q: str, session_id: str
) -> str:
    chunks = [c async for c in chain.astream(chain_input(shape, q), session_config(session_id))]
    assert len(chunks) > 1
    return "".join(chunk.text for chunk in chunks)


def transcript(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    """Role and text of each message (a streamed answer is stored as an ``AIMessageChunk``)."""
    roles = {HumanMessage: "human", AIMessage: "ai", AIMessageChunk: "ai"}
    return [(roles[type(m)], m.text) for m in messages]


def expected_transcript(turns: int) -> list[tuple[str, str]]:
    expected = []
    for n, question in enumerate(QUESTIONS[:turns], start=1):
        expected += [("human", question), ("ai", f"reply {n} to {question}")]
    return expected


def assert_each_prompt_holds_the_earlier_turns(
    model: RecordingChatModel, answers: list[str], stored: list[BaseMessage]
) -> None:
    """Every message stored once, in order; turn N's prompt is turns 1..N-1 plus question N."""
    assert transcript(stored) == expected_transcript(len(QUESTIONS))
    assert answers == [text for role, text in expected_transcript(len(QUESTIONS)) if role == "ai"]
    assert len(model.prompts) == len(QUESTIONS)
    for turn, (prompt, question) in enumerate(zip(model.prompts, QUESTIONS, strict=True)):
        # Exact equality: the earlier turns come back from Kafka field for field (ids too).
        assert prompt == [*stored[: 2 * turn], HumanMessage(content=question)]


def read_full_history(open_history: OpenHistory, session_id: str) -> list[BaseMessage]:
    """The whole session, read by a fresh history (and, in the shared layout, a fresh view)."""
    with open_history(session_id, messages_mode="full") as fresh:
        return fresh.messages


async def aread_full_history(aopen_history: AOpenHistory, session_id: str) -> list[BaseMessage]:
    async with aopen_history(session_id, messages_mode="full") as fresh:
        return await fresh.aget_messages()


# -- full mode: every call style, both clients, both chain shapes ----------------------------


@pytest.mark.parametrize("call", ["invoke", "stream"])
@pytest.mark.parametrize("shape", SHAPES)
def test_blocking_chain_calls_see_the_whole_history(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    open_history: OpenHistory,
    session_id: str,
    shape: Shape,
    call: Literal["invoke", "stream"],
) -> None:
    """Plain threads: the blocking client runs its core on its loop thread."""
    turn = invoke_turn if call == "invoke" else stream_turn
    model = RecordingChatModel()
    made: list[BaseChatMessageHistory] = []
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, made), shape)
        answers = [turn(chain, shape, q, session_id) for q in QUESTIONS]

    assert made and all(type(h) is KafkaChatMessageHistory for h in made)
    stored = read_full_history(open_history, session_id)
    assert_each_prompt_holds_the_earlier_turns(model, answers, stored)


@pytest.mark.parametrize("call", ["invoke", "stream"])
def test_blocking_chain_calls_with_the_async_client_say_what_to_use(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    open_history: OpenHistory,
    session_id: str,
    call: Literal["invoke", "stream"],
) -> None:
    """Plain threads with the async client: no hidden loop, a clear error, nothing stored."""
    turn = invoke_turn if call == "invoke" else stream_turn
    model = RecordingChatModel()
    with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, []), "placeholder")
        with pytest.raises(EventLoopError, match="KafkaChatMessageHistory") as info:
            turn(chain, "placeholder", QUESTIONS[0], session_id)
        assert "aget_messages()" in str(info.value)
        assert not client.connected  # nothing was started behind the caller's back
    assert model.prompts == []
    assert read_full_history(open_history, session_id) == []


@pytest.mark.anyio
@pytest.mark.parametrize("call", ["ainvoke", "astream"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("client_class", CLIENTS)
async def test_async_chain_calls_see_the_whole_history(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    aopen_history: AOpenHistory,
    session_id: str,
    client_class: ClientClass,
    shape: Shape,
    call: Literal["ainvoke", "astream"],
) -> None:
    """Inside an event loop; for the sync client the core runs on its loop thread."""
    turn = ainvoke_turn if call == "ainvoke" else astream_turn
    model = RecordingChatModel()
    made: list[BaseChatMessageHistory] = []
    async with client_class(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, made), shape)
        answers = [await turn(chain, shape, q, session_id) for q in QUESTIONS]

    assert made and all(type(h) is HISTORY_CLASS[client_class] for h in made)
    stored = await aread_full_history(aopen_history, session_id)
    assert_each_prompt_holds_the_earlier_turns(model, answers, stored)


@pytest.mark.anyio
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("client_class", CLIENTS)
async def test_one_session_across_call_styles_and_threads(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    aopen_history: AOpenHistory,
    session_id: str,
    client_class: ClientClass,
    shape: Shape,
) -> None:
    """One client and session, called as an async app with sync endpoints in worker threads.

    The async client serves the worker threads' blocking calls on its own (running) loop.
    """
    model = RecordingChatModel()
    made: list[BaseChatMessageHistory] = []
    async with client_class(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, made), shape)
        first, second, third, fourth = QUESTIONS
        answers = [
            await ainvoke_turn(chain, shape, first, session_id),
            await asyncio.to_thread(stream_turn, chain, shape, second, session_id),
            await astream_turn(chain, shape, third, session_id),
            await asyncio.to_thread(invoke_turn, chain, shape, fourth, session_id),
        ]

    stored = await aread_full_history(aopen_history, session_id)
    assert_each_prompt_holds_the_earlier_turns(model, answers, stored)


@pytest.mark.anyio
@pytest.mark.parametrize("shape", SHAPES)
async def test_blocking_chain_calls_inside_a_running_loop(
    kafka_bootstrap: str,
    layout: dict[str, Any],
    aopen_history: AOpenHistory,
    session_id: str,
    shape: Shape,
) -> None:
    """A notebook cell: ``invoke`` / ``stream`` block the loop; the blocking client's own
    loop thread serves them."""
    model = RecordingChatModel()
    made: list[BaseChatMessageHistory] = []
    async with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, made), shape)
        first, second, third, fourth = QUESTIONS
        answers = [
            await ainvoke_turn(chain, shape, first, session_id),
            invoke_turn(chain, shape, second, session_id),
            stream_turn(chain, shape, third, session_id),
            await astream_turn(chain, shape, fourth, session_id),
        ]

    stored = await aread_full_history(aopen_history, session_id)
    assert_each_prompt_holds_the_earlier_turns(model, answers, stored)


@pytest.mark.anyio
async def test_blocking_chain_calls_on_the_async_clients_own_loop_are_refused(
    kafka_bootstrap: str, layout: dict[str, Any], aopen_history: AOpenHistory, session_id: str
) -> None:
    """``invoke`` on the loop the async client lives on would deadlock: a clear error."""
    model = RecordingChatModel()
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, full_history_factory(client, []), "placeholder")
        first = await ainvoke_turn(chain, "placeholder", QUESTIONS[0], session_id)
        # LangChain reads the history in a worker thread while invoke() blocks the loop the
        # client needs: refused after a bounded wait, never a hang.
        with pytest.raises(EventLoopError, match="its thread is blocked") as info:
            invoke_turn(chain, "placeholder", QUESTIONS[1], session_id)
        assert "await AsyncKafkaChatMessageHistory.aget_messages()" in str(info.value)
        assert "KafkaChatMessageHistory" in str(info.value)
        # The refused turn left nothing behind; the next async turn sees the first one.
        second = await ainvoke_turn(chain, "placeholder", QUESTIONS[1], session_id)

    stored = await aread_full_history(aopen_history, session_id)
    assert transcript(stored) == expected_transcript(2)
    assert [first, second] == [text for role, text in expected_transcript(2) if role == "ai"]
    assert model.prompts == [
        [HumanMessage(content=QUESTIONS[0])],
        [*stored[:2], HumanMessage(content=QUESTIONS[1])],
    ]


# -- the default "last_consumed" mode is the wrong one for chains ------------------------------


def test_last_consumed_mode_feeds_a_chain_only_the_previous_turn(
    kafka_bootstrap: str, layout: dict[str, Any], open_history: OpenHistory, session_id: str
) -> None:
    """Each read returns only what is new since the last read and moves the position past it.

    So turn 2 still sees turn 1 (written after turn 1's read), but from turn 3 on each prompt
    holds the previous turn alone: the chain forgets everything older.
    """
    model = RecordingChatModel()
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, client.history, "placeholder")  # default messages_mode
        answers = [invoke_turn(chain, "placeholder", q, session_id) for q in QUESTIONS]

    stored = read_full_history(open_history, session_id)
    assert transcript(stored) == expected_transcript(4)  # the topic itself is right
    assert answers == [f"reply {n} to {q}" for n, q in enumerate(QUESTIONS, start=1)]
    hi, kafka, topic, thanks = QUESTIONS
    assert [transcript(p) for p in model.prompts] == [
        [("human", hi)],
        [("human", hi), ("ai", f"reply 1 to {hi}"), ("human", kafka)],
        [("human", kafka), ("ai", f"reply 2 to {kafka}"), ("human", topic)],
        [("human", topic), ("ai", f"reply 3 to {topic}"), ("human", thanks)],
    ]


def test_last_consumed_mode_makes_a_chain_rewrite_the_history(
    kafka_bootstrap: str, layout: dict[str, Any], open_history: OpenHistory, session_id: str
) -> None:
    """Without ``history_messages_key`` the chain reads the history again after the model ran,
    to cut it off the input before saving; in this mode that read is empty, so nothing is cut
    and every turn writes the whole conversation again."""
    model = RecordingChatModel()
    with KafkaHistoryClient(kafka_bootstrap, **layout) as client:
        chain = make_chain(model, client.history, "messages")  # default messages_mode
        for q in QUESTIONS:
            invoke_turn(chain, "messages", q, session_id)

    # The prompts look right (each read finds what the previous turn wrote: all of it) ...
    assert [transcript(p) for p in model.prompts] == [
        [*expected_transcript(n), ("human", q)] for n, q in enumerate(QUESTIONS)
    ]
    # ... but the topic grows quadratically: 2 + 4 + 6 + 8 records instead of 8.
    stored = read_full_history(open_history, session_id)
    assert transcript(stored) == [
        message for n in range(1, len(QUESTIONS) + 1) for message in expected_transcript(n)
    ]

"""A FastAPI chat service that keeps every session's history in Kafka.

One :class:`~aiokafka_history.AsyncKafkaHistoryClient` is opened by the lifespan and shared by
every request; each request takes a cheap per-session view of it. Endpoints:

- ``POST /sessions/{session_id}/messages`` with ``{"role": "user" | "ai", "content": "..."}``
  appends one message and answers ``201`` once Kafka acknowledged it.
- ``POST /sessions/{session_id}/turns`` with ``{"content": "...", "reply_by": "async" | "sync"}``
  appends the user's message, answers ``202``, and writes the reply
  ``"ack (<reply_by>): <content>"`` afterwards in a background task: an ``async def`` on the
  server's event loop (``"async"``), or a plain ``def`` that Starlette runs in its threadpool
  and that uses the blocking history API (``"sync"``, as code built on a blocking LLM SDK
  would).
- ``GET /sessions/{session_id}/messages`` returns the whole history, oldest first.
- ``GET /health`` reports the event loop lag measured by a probe running on the server's loop.

Every request of a session first waits for the replies its earlier turns scheduled, so a
session reads ``user, reply, user, reply, ...`` in the order its client sent the requests, and a
``GET`` returns every reply of the turns sent before it.

Session ids come from URLs, so they are checked before anything reaches Kafka: an id must be
a legal Kafka topic name on its own (letters, digits, ``.``, ``_``, ``-``; not ``.`` or ``..``)
that is not reserved for Kafka's internal topics (``__consumer_offsets``, ``heartbeats``,
``...-changelog``; see ``RESERVED_TOPIC_RULES``), and it must still fit behind the app's topic
prefix. Any other id is answered with ``422`` naming the rule. Every topic the app touches is
``<topic_prefix><session id>`` (default prefix ``chat.``), so no URL can reach a topic outside
the app's namespace.

Run it with::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 uvicorn --factory examples.fastapi_app.app:create_app
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, Field

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    ConfigurationError,
    InvalidSessionIdError,
    KafkaOperationError,
    TopicNaming,
)

__all__ = [
    "LoopLagProbe",
    "MessageIn",
    "MessageOut",
    "PendingReplies",
    "SessionMessages",
    "TurnAccepted",
    "TurnIn",
    "create_app",
    "reply_to",
]

logger = logging.getLogger(__name__)

LOOP_LAG_INTERVAL = 0.005
"""Seconds the loop-lag probe sleeps between two measurements."""

REPLY_WAIT_TIMEOUT = 30.0
"""Seconds a request waits for its session's earlier replies before answering ``503``."""

DEFAULT_TOPIC_PREFIX = "chat."
"""Put before every session id to name its topic: the app's namespace in the cluster."""

BARE_SESSION_IDS = TopicNaming()
"""The rules a session id must meet on its own, whatever the prefix: a legal topic name that
is not reserved. Behind a prefix ``__consumer_offsets`` would be harmless, but an id that is
an internal topic's name is refused all the same: it is a mistake or a probe."""

Role = Literal["user", "ai"]
ReplyBy = Literal["async", "sync"]


# -- API models -------------------------------------------------------------------------------


class MessageIn(BaseModel):
    """A message to append."""

    role: Role
    content: str = Field(min_length=1)


class MessageOut(BaseModel):
    """A stored message: its LangChain type (``"human"`` is shown as ``"user"``) and content."""

    role: str
    content: str | list[str | dict[str, Any]]

    @classmethod
    def of(cls, message: BaseMessage) -> MessageOut:
        """The API form of a LangChain message."""
        role = "user" if message.type == "human" else message.type
        return cls(role=role, content=message.content)


class TurnIn(BaseModel):
    """A user message whose reply is written in the background."""

    content: str = Field(min_length=1)
    reply_by: ReplyBy = "async"


class TurnAccepted(BaseModel):
    """The answer to a turn: the user message is stored, the reply is on its way."""

    session_id: str
    stored: MessageOut
    reply_by: ReplyBy


class SessionMessages(BaseModel):
    """A session's whole history, oldest first."""

    session_id: str
    messages: list[MessageOut]


def reply_to(content: str, reply_by: ReplyBy) -> str:
    """The reply a turn gets: deterministic, and naming the background task that wrote it."""
    return f"ack ({reply_by}): {content}"


# -- ordering and monitoring ------------------------------------------------------------------


class PendingReplies:
    """The replies still being written in the background, per session.

    Lets a request wait until every reply scheduled before it arrived is stored, which keeps
    a session's history in the order its client sent the requests. Lives on the server's event
    loop: :meth:`add` and :meth:`wait` must be called there; :meth:`resolve_threadsafe` may be
    called from any thread.
    """

    def __init__(self) -> None:
        self._pending: dict[str, set[asyncio.Future[None]]] = {}

    def add(self, session_id: str) -> asyncio.Future[None]:
        """Register a reply of ``session_id`` that is about to be scheduled.

        The caller must resolve the returned future (with :meth:`resolve` or
        :meth:`resolve_threadsafe`) once the reply is written or has failed.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(session_id, set()).add(future)
        future.add_done_callback(lambda done: self._forget(session_id, done))
        return future

    async def wait(self, session_id: str, timeout: float = REPLY_WAIT_TIMEOUT) -> None:
        """Wait until the replies of ``session_id`` registered so far are done.

        Raises:
            HTTPException: ``503`` when they are not done within ``timeout`` seconds.
        """
        futures = self._pending.get(session_id)
        if not futures:
            return
        _, not_done = await asyncio.wait(set(futures), timeout=timeout)
        if not_done:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"a reply of session {session_id!r} is still being written; retry later",
                headers={"Retry-After": "1"},
            )

    @staticmethod
    def resolve(future: asyncio.Future[None]) -> None:
        """Mark a reply done (from the future's own event loop)."""
        if not future.done():
            future.set_result(None)

    @classmethod
    def resolve_threadsafe(cls, future: asyncio.Future[None]) -> None:
        """Mark a reply done from any thread."""
        future.get_loop().call_soon_threadsafe(cls.resolve, future)

    def _forget(self, session_id: str, future: asyncio.Future[None]) -> None:
        futures = self._pending.get(session_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._pending[session_id]


class LoopLagProbe:
    """Measures how late the event loop wakes up a task that sleeps ``interval`` seconds.

    A loop blocked by synchronous work (a blocking call in async code) shows up as lag as long
    as the blocking call. Run :meth:`run` as a task on the loop to watch; :meth:`stop` ends it
    within one interval. Not thread-safe; read the figures from any thread once it stopped.
    """

    def __init__(self, interval: float = LOOP_LAG_INTERVAL) -> None:
        self.interval = interval
        self.samples = 0
        self.max_lag = 0.0
        self._stopping = False

    async def run(self) -> None:
        """Sleep ``interval`` seconds again and again, recording the worst wake-up delay."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.max_lag = max(self.max_lag, loop.time() - expected)
            self.samples += 1

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current sleep."""
        self._stopping = True


# -- dependencies -----------------------------------------------------------------------------


def _pending(request: Request) -> PendingReplies:
    pending: PendingReplies = request.app.state.pending_replies
    return pending


def checked_session_id(request: Request, session_id: str) -> str:
    """The session id from the URL, checked before anything reaches Kafka.

    It must be a legal, non-reserved topic name by itself (:data:`BARE_SESSION_IDS`) and
    still legal behind the app's topic prefix, which counts towards the 249 characters.
    Pure computation: no Kafka call is made for a refused id.

    Raises:
        InvalidSessionIdError: the id breaks a rule (answered with ``422`` naming it).
    """
    BARE_SESSION_IDS.topic_for(session_id)
    client: AsyncKafkaHistoryClient = request.app.state.history_client
    client.naming.topic_for(session_id)
    return session_id


SessionId = Annotated[str, Depends(checked_session_id)]


async def session_history(request: Request, session_id: SessionId) -> AsyncKafkaChatMessageHistory:
    """The session's history (whole-history mode), once the replies sent before are stored.

    Raises:
        InvalidSessionIdError: the session id is refused (answered with ``422``).
        HTTPException: ``503`` when an earlier reply is still not written.
    """
    client: AsyncKafkaHistoryClient = request.app.state.history_client
    history = client.history(session_id, messages_mode="full")
    await _pending(request).wait(session_id)
    return history


History = Annotated[AsyncKafkaChatMessageHistory, Depends(session_history)]
Pending = Annotated[PendingReplies, Depends(_pending)]


# -- background tasks -------------------------------------------------------------------------


async def reply_on_loop(
    history: AsyncKafkaChatMessageHistory, content: str, done: asyncio.Future[None]
) -> None:
    """Background task run on the server's event loop: append the reply with the async API."""
    try:
        await history.aadd_ai_message(reply_to(content, "async"))
    finally:
        PendingReplies.resolve(done)


def reply_in_thread(
    history: AsyncKafkaChatMessageHistory, content: str, done: asyncio.Future[None]
) -> None:
    """Background task run in Starlette's threadpool: append the reply with the blocking API.

    The blocking call runs the write on the shared client's event loop (the server's) and
    waits for it in this worker thread, so the loop keeps serving requests meanwhile.
    """
    try:
        history.add_ai_message(reply_to(content, "sync"))
    finally:
        PendingReplies.resolve_threadsafe(done)


# -- routes -----------------------------------------------------------------------------------

router = APIRouter()


@router.post(
    "/sessions/{session_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
)
async def append_message(history: History, message: MessageIn) -> MessageOut:
    """Append one message; answers once Kafka acknowledged it."""
    stored: BaseMessage = (
        HumanMessage(content=message.content)
        if message.role == "user"
        else AIMessage(content=message.content)
    )
    await history.aadd_message(stored)
    return MessageOut.of(stored)


@router.post(
    "/sessions/{session_id}/turns",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TurnAccepted,
)
async def start_turn(
    history: History, turn: TurnIn, pending: Pending, background: BackgroundTasks
) -> TurnAccepted:
    """Append the user's message and write the reply in a background task."""
    stored = HumanMessage(content=turn.content)
    await history.aadd_message(stored)
    done = pending.add(history.session_id)
    if turn.reply_by == "async":
        background.add_task(reply_on_loop, history, turn.content, done)
    else:
        background.add_task(reply_in_thread, history, turn.content, done)
    return TurnAccepted(
        session_id=history.session_id, stored=MessageOut.of(stored), reply_by=turn.reply_by
    )


@router.get("/sessions/{session_id}/messages", response_model=SessionMessages)
async def read_messages(history: History) -> SessionMessages:
    """The whole history of the session, oldest first (empty for an unknown session)."""
    messages = await history.aget_messages()
    return SessionMessages(
        session_id=history.session_id, messages=[MessageOut.of(m) for m in messages]
    )


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Liveness, with the event loop lag seen so far."""
    probe: LoopLagProbe = request.app.state.loop_lag
    return {
        "status": "ok",
        "loop_lag_max_ms": round(probe.max_lag * 1000, 3),
        "loop_lag_samples": probe.samples,
    }


# -- error mapping ----------------------------------------------------------------------------


async def _invalid_session_id(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={
            "detail": [
                {
                    "type": "invalid_session_id",
                    "loc": ["path", "session_id"],
                    "msg": str(exc),
                    "input": request.path_params.get("session_id"),
                }
            ]
        },
    )


async def _kafka_failed(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"the history store failed: {type(exc).__name__}"},
        headers={"Retry-After": "1"},
    )


# -- the application --------------------------------------------------------------------------


def create_app(
    bootstrap_servers: str | None = None,
    *,
    topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    shared_topic: str | None = None,
) -> FastAPI:
    """Build the application; it connects to Kafka when the server starts it.

    The lifespan opens one shared client (and connects it, so a wrong address fails at startup
    rather than on the first request), starts the loop-lag probe, and on shutdown stops the
    probe and closes the client. While it runs, ``app.state`` holds ``history_client``,
    ``pending_replies`` and ``loop_lag`` (a :class:`LoopLagProbe`, readable after shutdown).

    Example::

        app = create_app("localhost:9092", topic_prefix="chat.")
        uvicorn.run(app)

    Args:
        bootstrap_servers: the Kafka cluster, ``"host:port[,host:port...]"``; default: the
            ``KAFKA_BOOTSTRAP_SERVERS`` environment variable.
        topic_prefix: put before every session id to name its topic; required, since the
            ids come from URLs and the prefix keeps their topics in the app's namespace.
        shared_topic: store every session in this one topic instead (the shared layout, for
            many sessions; ``topic_prefix`` is then unused); default: the
            ``CHAT_SHARED_TOPIC`` environment variable, else a topic per session.

    Raises:
        ConfigurationError: no bootstrap servers given or set in the environment, or the topic
            prefix is empty or not allowed (see :class:`~aiokafka_history.TopicNaming`).
    """
    servers = bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise ConfigurationError(
            "no Kafka to connect to: pass bootstrap_servers or set KAFKA_BOOTSTRAP_SERVERS"
        )
    shared_topic = shared_topic or os.environ.get("CHAT_SHARED_TOPIC") or None
    if shared_topic is None and not topic_prefix:
        raise ConfigurationError(
            "the app needs a topic_prefix such as 'chat.': session ids come from URLs, and the "
            "prefix keeps every topic they name inside the app's namespace"
        )
    TopicNaming(topic_prefix)  # a bad prefix fails here, not at startup
    options: dict[str, Any] = (
        {"topic_prefix": topic_prefix} if shared_topic is None else {"shared_topic": shared_topic}
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncKafkaHistoryClient(servers, **options)
        probe = LoopLagProbe()
        probe_task = asyncio.create_task(probe.run(), name="loop-lag-probe")
        app.state.history_client = client
        app.state.loop_lag = probe
        try:
            await client.list_sessions()  # connects, or fails the startup
            yield
        finally:
            probe.stop()
            await probe_task
            await client.aclose()
            logger.info(
                "worst event loop lag %.1f ms over %d samples",
                probe.max_lag * 1000,
                probe.samples,
            )

    app = FastAPI(title="aiokafka-history chat", lifespan=lifespan)
    app.state.pending_replies = PendingReplies()
    app.include_router(router)
    app.add_exception_handler(InvalidSessionIdError, _invalid_session_id)
    app.add_exception_handler(KafkaOperationError, _kafka_failed)
    return app

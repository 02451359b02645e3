"""The example FastAPI app, served by uvicorn, under 200 concurrent requests over 50 sessions.

The server runs as `uvicorn app:app` would: in its own thread with its own event loop, which
the app's loop-lag probe watches. The requests of one session are sent one after the other,
different sessions at the same time, so every session's stored history is predictable.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from aiokafka_history import AsyncKafkaHistoryClient, ConfigurationError
from examples.fastapi_app.app import LoopLagProbe, create_app

pytestmark = pytest.mark.anyio

SESSIONS = 50
REQUESTS_PER_SESSION = 4
# What a request does: append one message ("user", "ai"), or start a turn whose reply is
# written by an async background task ("turn-async") or by a sync one in the threadpool
# ("turn-sync"). Session i sends them rotated by i, so all four kinds run at the same time.
KINDS = ("turn-async", "turn-sync", "user", "ai")
# A lag this long means something blocked the server's loop; it is no speed measurement.
# Healthy runs show tens of ms, from a gen-2 GC pass or the GIL this test's client thread
# shares with the server; a blocking Kafka call in the loop would show as seconds.
BLOCKED_LOOP_LAG = 1.0

Step = tuple[str, str]  # (kind, content)
Stored = tuple[str, str]  # (role, content) as the API shows a message


@pytest.fixture
async def topic_prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A topic prefix of this test alone; every session under it is deleted afterwards."""
    prefix = f"it-fastapi-{uuid.uuid4().hex[:8]}."
    yield prefix
    async with AsyncKafkaHistoryClient(kafka_bootstrap, topic_prefix=prefix) as client:
        for session_id in await client.list_sessions():
            await client.delete_session(session_id)


@pytest.fixture
def app_layout(layout: dict[str, Any], topic_prefix: str) -> dict[str, Any]:
    """Options of a client that sees the app's sessions in the test's storage layout.

    A topic per session: the test's topic prefix. Shared: the layout's fresh shared topic,
    which the app is given with ``create_app(..., shared_topic=...)``.
    """
    return layout or {"topic_prefix": topic_prefix}


def make_app(kafka_bootstrap: str, topic_prefix: str, app_layout: dict[str, Any]) -> FastAPI:
    """The example app in the test's storage layout."""
    shared_topic = app_layout.get("shared_topic")
    return create_app(kafka_bootstrap, topic_prefix=topic_prefix, shared_topic=shared_topic)


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn in a thread of its own on a free port; yield its base URL.

    Leaving stops the server the way a SIGTERM would: in-flight requests and their background
    tasks finish, then the lifespan shuts down.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        # uvicorn closes a keep-alive connection idle for 5 s by default; on a slow machine
        # httpx could send a request into one as it closed (httpx.ReadError, not our bug).
        timeout_keep_alive=300,
    )
    server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on a failed startup, too
            failures.append(exc)

    thread = threading.Thread(target=run, name="test-uvicorn-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server did not start: {failures!r}")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 60)
        sock.close()
    assert not thread.is_alive(), "the server did not stop within 60 s"
    assert not failures, failures


def plan(index: int, session_id: str) -> list[Step]:
    """The requests session ``index`` sends, in order; contents carry the sequence number."""
    kinds = [KINDS[(index + seq) % len(KINDS)] for seq in range(REQUESTS_PER_SESSION)]
    return [(kind, f"{session_id} #{seq} {kind}") for seq, kind in enumerate(kinds)]


def expected_history(steps: list[Step]) -> list[Stored]:
    """What the session holds once every reply is written."""
    stored: list[Stored] = []
    for kind, content in steps:
        if kind in ("user", "ai"):
            stored.append((kind, content))
        else:
            reply_by = kind.removeprefix("turn-")
            stored += [("user", content), ("ai", f"ack ({reply_by}): {content}")]
    return stored


async def send(http: httpx.AsyncClient, session_id: str, steps: list[Step]) -> None:
    """Send one session's requests one after the other."""
    for kind, content in steps:
        if kind in ("user", "ai"):
            response = await http.post(
                f"/sessions/{session_id}/messages", json={"role": kind, "content": content}
            )
            assert response.status_code == 201, response.text
            assert response.json() == {"role": kind, "content": content}
        else:
            reply_by = kind.removeprefix("turn-")
            response = await http.post(
                f"/sessions/{session_id}/turns", json={"content": content, "reply_by": reply_by}
            )
            assert response.status_code == 202, response.text
            assert response.json() == {
                "session_id": session_id,
                "stored": {"role": "user", "content": content},
                "reply_by": reply_by,
            }


def stray_threads(before: set[threading.Thread], timeout: float) -> list[str]:
    """Threads started since ``before`` that do not end within ``timeout`` seconds.

    Idle threadpool workers of the server end shortly after its loop does. ``asyncio_N``
    threads belong to this test's own event loop (httpx resolves addresses there) and do not
    count; the server's loop joins its own when it closes.
    """
    deadline = time.monotonic() + timeout
    started = [
        t for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio_")
    ]
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in started if t.is_alive())


async def test_concurrent_requests_store_every_message_once_in_order(
    kafka_bootstrap: str,
    topic_prefix: str,
    app_layout: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    threads_before = set(threading.enumerate())
    session_ids = [f"s{i:02d}" for i in range(SESSIONS)]
    plans = {sid: plan(i, sid) for i, sid in enumerate(session_ids)}
    expected = {sid: expected_history(steps) for sid, steps in plans.items()}
    assert sum(len(steps) for steps in plans.values()) == 200
    app = make_app(kafka_bootstrap, topic_prefix, app_layout)

    limits = httpx.Limits(max_connections=SESSIONS)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http,
    ):
        await asyncio.gather(*(send(http, sid, plans[sid]) for sid in session_ids))
        # A read waits for the replies its session's earlier turns scheduled.
        responses = await asyncio.gather(
            *(http.get(f"/sessions/{sid}/messages") for sid in session_ids)
        )
        health = (await http.get("/health")).json()
        library_threads = [t.name for t in threading.enumerate() if "aiokafka" in t.name]

    for sid, response in zip(session_ids, responses, strict=True):
        assert response.status_code == 200, response.text
        served = [(m["role"], m["content"]) for m in response.json()["messages"]]
        assert served == expected[sid], sid
    assert health["status"] == "ok"
    assert health["loop_lag_samples"] > 0
    # The sync replies ran the write on the server's loop, not on a private bridge thread.
    # (The shared layout's local view has its one thread, for SQLite: no loop runs there.)
    shared = "shared_topic" in app_layout
    assert library_threads == (["aiokafka-history-view_0"] if shared else [])

    # The server is down: every background task finished and the lifespan closed the client.
    client = app.state.history_client
    assert client.closed
    probe: LoopLagProbe = app.state.loop_lag
    print(
        f"\nworst event loop lag of the server: {probe.max_lag * 1000:.1f} ms "
        f"over {probe.samples} samples"
    )
    assert probe.samples > 0, "the loop-lag probe never ran"
    assert probe.max_lag < BLOCKED_LOOP_LAG, "the server's event loop was blocked"

    # What Kafka holds, read with a fresh client: each message exactly once, in order.
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **app_layout) as reader:
        assert await reader.list_sessions() == session_ids
        for sid in session_ids:
            stored = await reader.history(sid, messages_mode="full").aget_messages()
            as_api = [("user" if m.type == "human" else m.type, m.content) for m in stored]
            assert as_api == expected[sid], sid

    del app, client
    gc.collect()  # an unclosed client would warn now (ResourceWarning is an error here)
    assert await asyncio.to_thread(stray_threads, threads_before, 10.0) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_invalid_session_ids_are_422(
    kafka_bootstrap: str, topic_prefix: str, app_layout: dict[str, Any]
) -> None:
    app = make_app(kafka_bootstrap, topic_prefix, app_layout)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        for bad in ("bad id!", "x" * 250, "sessión"):
            path = f"/sessions/{quote(bad, safe='')}"
            responses = [
                await http.post(f"{path}/messages", json={"role": "user", "content": "hi"}),
                await http.post(f"{path}/turns", json={"content": "hi", "reply_by": "sync"}),
                await http.get(f"{path}/messages"),
            ]
            for response in responses:
                assert response.status_code == 422, response.text
                (detail,) = response.json()["detail"]
                assert detail["type"] == "invalid_session_id"
                assert detail["input"] == bad
                assert "a Kafka topic name is 1-249 characters" in detail["msg"]
        # A legal id with a bad body is refused by FastAPI's own validation.
        response = await http.post("/sessions/ok/messages", json={"role": "system", "content": "x"})
        assert response.status_code == 422
    assert app.state.history_client.closed
    async with AsyncKafkaHistoryClient(kafka_bootstrap, **app_layout) as client:
        assert await client.list_sessions() == []


def url_path(session_id: str) -> str:
    """``/sessions/<id>`` with the id percent-encoded, dots too (so ``..`` stays an id)."""
    return "/sessions/" + quote(session_id, safe="").replace(".", "%2E")


# An id from a URL and the rule its refusal names. The over-long id is legal on its own: it is
# the test's 20-character topic prefix that takes the topic over 249 characters.
HOSTILE_IDS = {
    "__consumer_offsets": "reserved for Kafka's internal topics (names starting with '__'",
    "connect-offsets": "reserved for Kafka's internal topics (the name 'connect-offsets'",
    "..": "is '..'",
    "x" * 240: "260 characters long",
}


async def test_hostile_session_ids_are_refused_before_any_kafka_call(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(kafka_bootstrap, topic_prefix=topic_prefix)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        for bad, rule in HOSTILE_IDS.items():
            path = url_path(bad)
            responses = [
                await http.post(f"{path}/messages", json={"role": "user", "content": "hi"}),
                await http.post(f"{path}/turns", json={"content": "hi", "reply_by": "async"}),
                await http.get(f"{path}/messages"),
            ]
            for response in responses:
                assert response.status_code == 422, response.text
                (detail,) = response.json()["detail"]
                assert detail["type"] == "invalid_session_id"
                assert detail["input"] == bad
                assert rule in detail["msg"]
                assert "Traceback" not in response.text
        legal = "ok-session.1"
        response = await http.post(
            f"{url_path(legal)}/messages", json={"role": "user", "content": "hi"}
        )
        assert response.status_code == 201, response.text
        response = await http.get(f"{url_path(legal)}/messages")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "session_id": legal,
            "messages": [{"role": "user", "content": "hi"}],
        }
    assert app.state.history_client.closed
    # Nothing was created for the refused ids, in the app's namespace or outside it.
    async with AsyncKafkaHistoryClient(kafka_bootstrap, topic_prefix=topic_prefix) as client:
        assert await client.list_sessions() == [legal]
        assert not await client.session_exists("__consumer_offsets")
        assert not await client.session_exists("connect-offsets")
        assert not await client.session_exists("..")
    # No "Exception in ASGI application" with its stack trace, nor any other error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_app_keeps_its_topics_under_a_prefix() -> None:
    with pytest.raises(ConfigurationError, match="needs a topic_prefix"):
        create_app("127.0.0.1:9", topic_prefix="")
    with pytest.raises(ConfigurationError, match="reserved for Kafka's internal topics"):
        create_app("127.0.0.1:9", topic_prefix="__chat.")

"""Security as production has it: SCRAM users, prefixed ACLs per tenant, TLS, and mistakes.

Runs against kafkalocal's ``kafka_secure`` broker (SASL_SSL and SASL_PLAINTEXT listeners,
SCRAM-SHA-512/256, StandardAuthorizer without allow-everyone, a CA made for the run). Two
tenants, A and B, are SCRAM users allowed everything on topics and consumer groups under
their own prefix (``tenant-a.`` / ``tenant-b.``) and nothing else.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from aiokafka_history import (
    AsyncKafkaHistoryClient,
    AuthenticationError,
    BrokerUnavailableError,
    KafkaSettings,
    NotAuthorizedError,
)
from aiokafka_history._kafka_probe import probe_connection
from kafkalocal import SecureKafka, TopicFactory

pytestmark = pytest.mark.anyio

FAST_S = 15.0  # generous: a refused connection must not wait for request timeouts


@dataclass(frozen=True)
class Tenant:
    name: str
    password: str
    prefix: str


@pytest.fixture(scope="module")
def tenants(kafka_secure: SecureKafka) -> tuple[Tenant, Tenant]:
    made = []
    for letter in "ab":
        tenant = Tenant(f"tenant-{letter}", f"pw-{uuid.uuid4().hex}", f"tenant-{letter}.")
        kafka_secure.add_user(tenant.name, tenant.password, "SCRAM-SHA-512")
        kafka_secure.allow(tenant.name, "topic", tenant.prefix, ["ALL"])
        kafka_secure.allow(tenant.name, "group", tenant.prefix, ["ALL"])
        made.append(tenant)
    return made[0], made[1]


@pytest.fixture
def tenant_a(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def tenant_b(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[1]


@pytest.fixture
def new_session(kafka_secure: SecureKafka, kafka_topics: TopicFactory) -> Callable[[Tenant], str]:
    """A fresh session id under ``tenant``'s prefix; its topic is deleted after the test."""
    topics = kafka_topics.on(kafka_secure)

    def make(tenant: Tenant) -> str:
        return topics(prefix=tenant.prefix).removeprefix(tenant.prefix)

    return make


def connect(
    kafka: SecureKafka,
    tenant: Tenant,
    *,
    topic_prefix: str | None = None,
    bootstrap: str | None = None,
    **options: Any,
) -> AsyncKafkaHistoryClient:
    settings: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "ssl_context": ssl.create_default_context(cafile=str(kafka.ca_file)),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": tenant.name,
        "sasl_plain_password": tenant.password,
        "request_timeout_ms": 30_000,
        **options,
    }
    if "shared_topic" in settings:
        return AsyncKafkaHistoryClient(bootstrap or kafka.sasl_ssl, **settings)
    return AsyncKafkaHistoryClient(
        bootstrap or kafka.sasl_ssl,
        topic_prefix=tenant.prefix if topic_prefix is None else topic_prefix,
        **settings,
    )


@asynccontextmanager
async def client_of(
    kafka: SecureKafka, tenant: Tenant, **options: Any
) -> AsyncIterator[AsyncKafkaHistoryClient]:
    async with connect(kafka, tenant, **options) as client:
        yield client


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


async def contents(kafka: SecureKafka, tenant: Tenant, session_id: str) -> list[str]:
    async with client_of(kafka, tenant) as client:
        history = client.history(session_id, messages_mode="full")
        return [str(message.content) for message in await history.aget_messages()]


# -- a tenant on its own sessions -----------------------------------------------------------


async def test_a_tenant_works_in_its_own_shared_topic_and_a_reader_without_read_is_told(
    kafka_secure: SecureKafka, tenant_a: Tenant, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics.on(kafka_secure)(prefix=tenant_a.prefix)
    async with client_of(kafka_secure, tenant_a, shared_topic=topic) as client:
        history = client.history("user 1", messages_mode="full")
        await history.aadd_user_message("hello")
        assert [m.content for m in await history.aget_messages()] == ["hello"]
        assert await client.list_sessions() == ["user 1"]
    # A principal that may write and describe the topic but not read it: reads say so at
    # once instead of waiting out the read timeout.
    writer = Tenant(f"writer-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}", "")
    kafka_secure.add_user(writer.name, writer.password, "SCRAM-SHA-512")
    kafka_secure.allow(
        writer.name, "topic", topic, ["WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"], pattern="LITERAL"
    )
    async with client_of(kafka_secure, writer, shared_topic=topic, read_timeout=60) as client:
        history = client.history("user 1", messages_mode="full")
        await history.aadd_user_message("written")
        started = time.monotonic()
        with pytest.raises(NotAuthorizedError) as caught:
            await history.aget_messages()
        assert time.monotonic() - started < FAST_S
        assert writer.password not in str(caught.value)
        await history.aadd_user_message("writes still work")


async def test_a_tenant_works_end_to_end_on_its_own_sessions_over_sasl_ssl(
    kafka_secure: SecureKafka, tenant_a: Tenant, new_session: Callable[[Tenant], str]
) -> None:
    session_id = new_session(tenant_a)
    async with client_of(kafka_secure, tenant_a) as client:
        history = client.history(session_id, messages_mode="full")
        await history.aadd_user_message("hello")
        await history.aadd_user_message("again")
        assert [m.content for m in await history.aget_messages()] == ["hello", "again"]
        assert await client.session_exists(session_id)
        assert session_id in await client.list_sessions()
        await history.aclear()
        assert await history.aget_messages() == []
        await history.aadd_user_message("after clear")
        assert [m.content for m in await history.aget_messages()] == ["after clear"]
        assert await history.adelete_topic()
        assert not await client.session_exists(session_id)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_the_generated_ca_works_by_address_and_by_name(
    kafka_secure: SecureKafka, tenant_a: Tenant, new_session: Callable[[Tenant], str], host: str
) -> None:
    session_id = new_session(tenant_a)
    bootstrap = kafka_secure.sasl_ssl.replace("127.0.0.1", host)
    async with client_of(kafka_secure, tenant_a, bootstrap=bootstrap) as client:
        await client.history(session_id, messages_mode="full").aadd_user_message("over TLS")
        assert await client.session_exists(session_id)


# -- one tenant against the other's sessions --------------------------------------------------


async def _read(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.history(session_id, messages_mode="full").aget_messages()


async def _write(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.history(session_id, messages_mode="full").aadd_user_message("intruder")


async def _describe(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.session_exists(session_id)


async def _clear(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.history(session_id, messages_mode="full").aclear()


async def _delete_topic(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.history(session_id, messages_mode="full").adelete_topic()


async def _delete_session(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.delete_session(session_id)


Operation = Callable[[AsyncKafkaHistoryClient, str], Awaitable[object]]


@pytest.mark.parametrize(
    "operation",
    [_read, _write, _describe, _clear, _delete_topic, _delete_session],
    ids=["read", "write", "describe", "clear", "delete_topic", "delete_session"],
)
async def test_a_tenant_cannot_touch_another_tenants_session(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    tenant_b: Tenant,
    new_session: Callable[[Tenant], str],
    operation: Operation,
) -> None:
    session_id = new_session(tenant_b)
    async with client_of(kafka_secure, tenant_b) as owner:
        history = owner.history(session_id, messages_mode="full")
        await history.aadd_user_message("b's secret")
        await history.aadd_user_message("b's second")

    # A addresses B's topics: same session id, B's prefix.
    async with client_of(kafka_secure, tenant_a, topic_prefix=tenant_b.prefix) as intruder:
        with pytest.raises(NotAuthorizedError) as caught:
            await operation(intruder, session_id)
    assert "not authorized" in str(caught.value).lower()

    assert await contents(kafka_secure, tenant_b, session_id) == ["b's secret", "b's second"]


async def test_a_tenant_cannot_create_sessions_under_another_tenants_prefix(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    tenant_b: Tenant,
    new_session: Callable[[Tenant], str],
) -> None:
    session_id = new_session(tenant_b)
    async with client_of(kafka_secure, tenant_a, topic_prefix=tenant_b.prefix) as intruder:
        history = intruder.history(session_id, messages_mode="full")
        with pytest.raises(NotAuthorizedError) as caught:
            await history.aadd_user_message("squatting")
    assert "not authorized" in str(caught.value).lower()

    async with client_of(kafka_secure, tenant_b) as owner:
        assert not await owner.session_exists(session_id)


async def test_list_sessions_never_shows_another_tenants_sessions(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    tenant_b: Tenant,
    new_session: Callable[[Tenant], str],
) -> None:
    mine, theirs = new_session(tenant_a), new_session(tenant_b)
    async with client_of(kafka_secure, tenant_a) as client:
        await client.history(mine, messages_mode="full").aadd_user_message("a")
    async with client_of(kafka_secure, tenant_b) as client:
        await client.history(theirs, messages_mode="full").aadd_user_message("b")

    async with client_of(kafka_secure, tenant_a, topic_prefix="tenant-") as client:
        visible = await client.list_sessions()
    assert f"a.{mine}" in visible
    assert f"b.{theirs}" not in visible
    assert not [session for session in visible if session.startswith("b.")]
    async with client_of(kafka_secure, tenant_a, topic_prefix=tenant_b.prefix) as client:
        assert await client.list_sessions() == []


# -- mistakes: a wrong password, a wrong protocol, a wrong certificate -------------------------


async def _list(client: AsyncKafkaHistoryClient, session_id: str) -> object:
    return await client.list_sessions()


@pytest.mark.parametrize("operation", [_list, _write], ids=["list_sessions", "write"])
async def test_a_wrong_password_is_an_authentication_error_without_the_password(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    new_session: Callable[[Tenant], str],
    operation: Operation,
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    impostor = Tenant(tenant_a.name, wrong, tenant_a.prefix)
    began = time.monotonic()
    async with client_of(kafka_secure, impostor) as client:
        with pytest.raises(AuthenticationError) as caught:
            await operation(client, new_session(tenant_a))
    elapsed = time.monotonic() - began

    assert "authentication" in str(caught.value).lower()
    for exc in chain(caught.value):
        assert wrong not in str(exc), f"password in str() of {type(exc).__name__}"
        assert wrong not in repr(exc), f"password in repr() of {type(exc).__name__}"
    assert elapsed < FAST_S


@pytest.mark.parametrize(
    ("listener", "protocol"),
    [
        ("SASL_SSL", "SASL_PLAINTEXT"),  # no TLS against a TLS listener
        ("SASL_PLAINTEXT", "PLAINTEXT"),  # no SASL against a SASL listener
        ("SASL_PLAINTEXT", "SASL_SSL"),  # TLS against a listener without TLS
    ],
)
async def test_a_security_protocol_mismatch_fails_fast_and_names_the_setting(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    new_session: Callable[[Tenant], str],
    listener: str,
    protocol: str,
) -> None:
    options: dict[str, Any] = {"security_protocol": protocol}
    if "SSL" not in protocol:
        options["ssl_context"] = None
    began = time.monotonic()
    async with client_of(
        kafka_secure, tenant_a, bootstrap=kafka_secure.bootstrap(listener), **options
    ) as client:
        with pytest.raises(BrokerUnavailableError) as caught:
            await client.history(new_session(tenant_a), messages_mode="full").aadd_user_message("x")
    elapsed = time.monotonic() - began

    assert "security_protocol" in str(caught.value)
    assert elapsed < FAST_S


@pytest.mark.parametrize("mistake", ["host name mismatch", "unknown CA"])
async def test_a_certificate_that_does_not_check_out_is_refused(
    kafka_secure: SecureKafka,
    tenant_a: Tenant,
    new_session: Callable[[Tenant], str],
    mistake: str,
) -> None:
    if mistake == "host name mismatch":  # signed by our CA, but only for another name
        options: dict[str, Any] = {"bootstrap": kafka_secure.wrong_host}
    else:  # the system's CAs do not know ours
        options = {"ssl_context": ssl.create_default_context()}
    began = time.monotonic()
    async with client_of(kafka_secure, tenant_a, **options) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.history(new_session(tenant_a), messages_mode="full").aadd_user_message("x")
    elapsed = time.monotonic() - began

    assert "TLS" in str(caught.value)
    assert elapsed < FAST_S


def _open_transports(loop: asyncio.AbstractEventLoop) -> list[object]:
    """The loop's socket transports whose socket is still open (TLS ones included)."""
    return [
        t
        for t in gc.get_objects()
        if isinstance(t, asyncio.selector_events._SelectorSocketTransport)
        and t._loop is loop
        and t._sock is not None
    ]


@pytest.mark.parametrize("mistake", ["wrong password", "no TLS on the client"])
async def test_the_diagnosing_connection_is_released_when_the_error_is_raised(
    kafka_secure: SecureKafka, tenant_a: Tenant, mistake: str
) -> None:
    # After a failed connect the client connects once more to say why. That connection must
    # be gone when the error is raised: a TLS connection closes only after its close_notify
    # exchange, and one still closing when the caller's loop ends leaks its socket (a
    # ResourceWarning at some later garbage collection, in a test it has nothing to do with).
    settings = KafkaSettings(
        kafka_secure.sasl_ssl,
        security_protocol="SASL_SSL",
        ssl_context=ssl.create_default_context(cafile=str(kafka_secure.ca_file)),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=tenant_a.name,
        sasl_plain_password=tenant_a.password
        if mistake != "wrong password"
        else f"wrong-{uuid.uuid4().hex}",
    )
    kwargs = dict(settings.client_kwargs())
    if mistake == "no TLS on the client":
        kwargs.update(security_protocol="SASL_PLAINTEXT", ssl_context=None)
    loop = asyncio.get_running_loop()
    assert _open_transports(loop) == []

    error = await probe_connection(kwargs, timeout=10)

    assert error is not None
    assert _open_transports(loop) == []

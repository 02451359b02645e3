"""Every ```python block of README.md and docs/*.md runs against a real broker, so none rots.

A block runs as a script would (``__name__ == "__main__"``) in a fresh namespace and a
temporary working directory, with ``KAFKA_BOOTSTRAP_SERVERS`` set to the test broker and
every literal ``localhost:9092`` replaced by its address. The topics it made are deleted
afterwards. Blocks on the default broker run against both of ``kafka_bootstrap``'s brokers
(test settings and Kafka's defaults).

An HTML comment on the line right before a block's fence changes how it runs (options are
separated by ``;``; the comment does not show on the rendered page)::

    <!-- sample: continue -->         run in the namespace the page's previous block left
    <!-- sample: broker=cluster -->   on the 3-node cluster (for replication_factor=3)
    <!-- sample: broker=secure -->    on the SASL_SSL broker as a user allowed everything
                                      on topics and groups under "chat."; the block reads
                                      KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_CA_FILE
    <!-- sample: check=NAME -->       then run CHECKS[NAME] on the namespace (for a block
                                      that only defines something, such as an app)
    <!-- sample: skip REASON -->      not run; REASON is required. Use sparingly: a skipped
                                      block can rot.

``tests/unit/test_docs_samples_syntax.py`` checks the markers and that every block compiles,
without a broker.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from kafkalocal import KafkaCluster, SecureKafka, delete_topics
from tests.docs_samples import Sample, collect_samples, compile_sample

pytestmark = [
    # The chain pages build RunnableWithMessageHistory, which langchain-core deprecates
    # (docs/langchain.md says so); the samples show it as users run it.
    pytest.mark.filterwarnings(
        "ignore:RunnableWithMessageHistory is deprecated:DeprecationWarning"
    ),
]

SAMPLES = collect_samples()
# One test per chain: a block and the blocks that continue it.
HEADS = [s for s in SAMPLES if not s.skip and not s.continues]
ON_DEFAULT_BROKER = [s for s in HEADS if s.broker == "default"]
ON_OWN_BROKER = [s for s in HEADS if s.broker != "default"]
SECURE_PREFIX = "chat."


def _fastapi_app(namespace: dict[str, Any]) -> None:
    """Serve the page's app in-process (lifespan included) and send it a turn."""
    from fastapi.testclient import TestClient

    session = f"docs-{uuid.uuid4().hex[:8]}"
    with TestClient(namespace["app"]) as client:
        stored = client.post(f"/sessions/{session}/messages", params={"text": "hi!"})
        assert stored.status_code == 200, stored.text
        messages = client.get(f"/sessions/{session}/messages").json()
        assert [m["content"] for m in messages][:1] == ["hi!"]
        refused = client.get("/sessions/__consumer_offsets/messages")
        assert refused.status_code == 422, refused.text


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"fastapi-app": _fastapi_app}


async def _topics(bootstrap: str, **security: Any) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _run(
    samples: list[Sample],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    bootstrap: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    namespace: dict[str, Any] = {}
    for sample in samples:
        if not sample.continues:
            namespace = {"__name__": "__main__"}
        code = compile_sample(sample, sample.source.replace("localhost:9092", bootstrap))
        exec(code, namespace)
        if sample.check:
            CHECKS[sample.check](namespace)


@pytest.fixture
def cleanup_on() -> Iterator[Callable[..., None]]:
    """Call with a broker before running samples: their new topics are deleted afterwards."""
    armed: list[tuple[Any, str, dict[str, Any], set[str]]] = []

    def arm(target: Any, bootstrap: str, **security: Any) -> None:
        armed.append((target, bootstrap, security, asyncio.run(_topics(bootstrap, **security))))

    yield arm
    for target, bootstrap, security, before in armed:
        made = asyncio.run(_topics(bootstrap, **security)) - before
        if made:
            delete_topics(target, sorted(made))


def test_every_check_named_by_a_sample_exists() -> None:
    assert {s.check for s in SAMPLES if s.check} <= CHECKS.keys()


@pytest.mark.parametrize("sample", ON_DEFAULT_BROKER, ids=lambda s: s.id)
def test_sample_runs(
    sample: Sample,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cleanup_on: Callable[..., None],
) -> None:
    cleanup_on(kafka_bootstrap, kafka_bootstrap)
    _run(sample.chain, monkeypatch, tmp_path, kafka_bootstrap)


@pytest.mark.parametrize(
    "sample",
    # Marked as the conftest marks tests that take kafka_cluster as an argument.
    [
        pytest.param(s, id=s.id, marks=[pytest.mark.cluster] * (s.broker == "cluster"))
        for s in ON_OWN_BROKER
    ],
)
def test_sample_runs_on_its_broker(
    sample: Sample,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cleanup_on: Callable[..., None],
) -> None:
    if sample.broker == "cluster":
        cluster: KafkaCluster = request.getfixturevalue("kafka_cluster")
        cleanup_on(cluster, cluster.bootstrap_servers)
        _run(sample.chain, monkeypatch, tmp_path, cluster.bootstrap_servers)
        return
    assert sample.broker == "secure", sample.broker
    secure: SecureKafka = request.getfixturevalue("kafka_secure")
    user, password = f"docs-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    secure.add_user(user, password, "SCRAM-SHA-512")
    secure.allow(user, "topic", SECURE_PREFIX, ["ALL"])
    secure.allow(user, "group", SECURE_PREFIX, ["ALL"])
    monkeypatch.setenv("KAFKA_SASL_USERNAME", user)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", password)
    monkeypatch.setenv("KAFKA_CA_FILE", str(secure.ca_file))
    cleanup_on(
        secure,
        secure.sasl_ssl,
        security_protocol="SASL_SSL",
        ssl_context=ssl.create_default_context(cafile=str(secure.ca_file)),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=secure.admin_username,
        sasl_plain_password=secure.admin_password,
    )
    _run(sample.chain, monkeypatch, tmp_path, secure.sasl_ssl)

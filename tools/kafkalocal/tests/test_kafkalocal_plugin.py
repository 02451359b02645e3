"""The pytest plugin's fixtures on real brokers, spoken to with kafkalocal's own raw client."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kafkalocal import Endpoint, KafkaAdminError, SecureKafka, Security, TopicFactory
from kafkalocal._admin import create_topics
from kafkalocal._probe import Metadata, fetch_metadata
from kafkalocal._wire import SaslError

UNKNOWN_TOPIC = 3
TOPIC_AUTHORIZATION_FAILED = 29


def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still not {what} after {timeout} s")
        time.sleep(0.1)


def codes(endpoint: Endpoint, topics: list[str]) -> dict[str, int]:
    return fetch_metadata(endpoint, topics).topics


# -- kafka_bootstrap and kafka_topics ----------------------------------------------------


def test_kafka_bootstrap_serves_metadata(kafka_bootstrap: str) -> None:
    assert fetch_metadata(Endpoint(kafka_bootstrap), []).brokers


def test_topic_factory_deletes_what_it_handed_out(kafka_bootstrap: str) -> None:
    endpoint = Endpoint(kafka_bootstrap)
    factory = TopicFactory("test_cleanup", lambda: [kafka_bootstrap])
    names = [factory("a"), factory("b"), factory("never-created")]
    assert create_topics(endpoint, names[:2]) == names[:2]
    assert codes(endpoint, names[:2]) == {names[0]: 0, names[1]: 0}
    factory.cleanup()
    eventually(
        lambda: set(codes(endpoint, names).values()) == {UNKNOWN_TOPIC}, "deleted everywhere"
    )


def test_the_test_broker_never_creates_topics_by_itself(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("auto")
    endpoint = Endpoint(kafka_bootstrap)
    assert fetch_metadata(endpoint, [topic], auto_create=True).topics == {topic: UNKNOWN_TOPIC}


# -- kafka_defaults_bootstrap -------------------------------------------------------------


def test_the_defaults_broker_creates_topics_on_first_use(
    kafka_defaults_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics("auto")
    endpoint = Endpoint(kafka_defaults_bootstrap)
    answers: list[Metadata] = []

    def created() -> bool:
        answers.append(fetch_metadata(endpoint, [topic], auto_create=True))
        return answers[-1].topics == {topic: 0}

    eventually(created, "auto-created")
    assert answers[-1].partitions == {topic: 1}  # num.partitions=1, as in the sample


# -- kafka_secure ----------------------------------------------------------------------------


def user_security(kafka: SecureKafka, name: str, password: str, **options: str) -> Security:
    mechanism = options.pop("mechanism", "SCRAM-SHA-512")
    return Security("SASL_SSL", mechanism, name, password, cafile=str(kafka.ca_file), **options)


def test_a_new_user_may_log_in_but_do_only_what_acls_allow(
    kafka_secure: SecureKafka, kafka_topics: TopicFactory
) -> None:
    user, password = f"u{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex
    kafka_secure.add_user(user, password, "SCRAM-SHA-256")
    endpoint = Endpoint(
        kafka_secure.sasl_ssl,
        user_security(kafka_secure, user, password, mechanism="SCRAM-SHA-256"),
    )
    topics = kafka_topics.on(kafka_secure)
    mine, other = topics(prefix=f"{user}."), topics(prefix="someone-else.")

    with pytest.raises(KafkaAdminError, match="TOPIC_AUTHORIZATION_FAILED"):
        create_topics(endpoint, [mine])
    kafka_secure.allow(user, "topic", f"{user}.", ["create", "describe"])
    assert create_topics(endpoint, [mine]) == [mine]
    with pytest.raises(KafkaAdminError, match="TOPIC_AUTHORIZATION_FAILED"):
        create_topics(endpoint, [other])
    assert create_topics(kafka_secure.admin_endpoint, [other]) == [other]
    assert codes(endpoint, [mine, other]) == {mine: 0, other: TOPIC_AUTHORIZATION_FAILED}


def test_the_secure_topics_are_deleted_by_the_admin(kafka_secure: SecureKafka) -> None:
    factory = TopicFactory("test_secure_cleanup", lambda: [])
    topic = factory.on(kafka_secure)()
    assert create_topics(kafka_secure.admin_endpoint, [topic]) == [topic]
    factory.cleanup()
    eventually(
        lambda: codes(kafka_secure.admin_endpoint, [topic]) == {topic: UNKNOWN_TOPIC}, "deleted"
    )


def test_a_wrong_password_is_refused(kafka_secure: SecureKafka) -> None:
    security = user_security(kafka_secure, kafka_secure.admin_username, "not-the-password")
    with pytest.raises(SaslError, match="invalid credentials"):
        fetch_metadata(Endpoint(kafka_secure.sasl_ssl, security), [])


def test_the_admin_works_on_every_listener_and_mechanism(kafka_secure: SecureKafka) -> None:
    admin, password = kafka_secure.admin_username, kafka_secure.admin_password
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        for bootstrap, protocol in (
            (kafka_secure.sasl_ssl, "SASL_SSL"),
            (kafka_secure.sasl_plaintext, "SASL_PLAINTEXT"),
        ):
            security = Security(
                protocol, mechanism, admin, password, cafile=str(kafka_secure.ca_file)
            )
            assert fetch_metadata(Endpoint(bootstrap, security), []).brokers == {0}


def test_tls_checks_the_host_name(kafka_secure: SecureKafka) -> None:
    admin, password = kafka_secure.admin_username, kafka_secure.admin_password
    localhost = kafka_secure.sasl_ssl.replace("127.0.0.1", "localhost")
    good = Security("SASL_SSL", "SCRAM-SHA-512", admin, password, cafile=str(kafka_secure.ca_file))
    assert fetch_metadata(Endpoint(localhost, good), []).brokers == {0}
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        fetch_metadata(Endpoint(kafka_secure.wrong_host, good), [])
    named = user_security(
        kafka_secure, admin, password, server_hostname=kafka_secure.wrong_hostname
    )
    assert fetch_metadata(Endpoint(kafka_secure.wrong_host, named), []).brokers == {0}
    context = kafka_secure.ssl_context()
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_an_untrusted_ca_is_refused(kafka_secure: SecureKafka) -> None:
    security = Security(
        "SASL_SSL", "SCRAM-SHA-512", kafka_secure.admin_username, kafka_secure.admin_password
    )  # the system CAs do not know ours
    with pytest.raises(ssl.SSLCertVerificationError):
        fetch_metadata(Endpoint(kafka_secure.sasl_ssl, security), [])


def test_nothing_listens_without_authentication(kafka_secure: SecureKafka) -> None:
    with pytest.raises(OSError):
        fetch_metadata(Endpoint(kafka_secure.sasl_plaintext), [])


# -- a broker that cannot start ---------------------------------------------------------


def test_a_broker_that_cannot_start_is_an_error_not_a_skip(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    mvn = tmp_path / "bin" / "mvn"
    mvn.write_text('#!/bin/sh\necho run >> "$MVN_CALLS"\necho "[ERROR] BUILD FAILURE"; exit 1\n')
    mvn.chmod(0o755)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            def test_one(kafka_bootstrap):
                pass

            def test_two(kafka_bootstrap):
                pass
            """
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "KAFKALOCAL_CACHE_DIR": str(tmp_path / "cache"),
        "KAFKA_VERSION": "9.9.9",
        "MVN_CALLS": str(tmp_path / "mvn-calls"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "2 errors" in result.stdout
    assert "skipped" not in result.stdout
    assert "KafkaStartError" in result.stdout
    assert "BUILD FAILURE" in result.stdout
    assert (tmp_path / "mvn-calls").read_text().count("run") == 1  # no second attempt

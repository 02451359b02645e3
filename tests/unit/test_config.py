import ssl
from collections.abc import Callable
from typing import Any

import pytest

from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    ConfigurationError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
    KafkaSettings,
)
from aiokafka_history._config import TopicSettings

SECRET = "s3cr3t-pa55"


def test_secrets_stay_out_of_repr() -> None:
    settings = KafkaSettings(
        "broker:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=SECRET,
    )
    assert SECRET not in repr(settings)
    assert "alice" in repr(settings)
    assert settings.client_kwargs()["sasl_plain_password"] == SECRET
    client = AsyncKafkaHistoryClient(
        "broker:9092", sasl_plain_username="alice", sasl_plain_password=SECRET
    )
    history = client.history("s")
    assert SECRET not in repr(client)
    assert SECRET not in repr(history)
    client.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bootstrap_servers": ""}, "bootstrap_servers is empty"),
        ({"bootstrap_servers": "b:1", "security_protocol": "TLS"}, "security_protocol"),
        ({"bootstrap_servers": "b:1", "sasl_mechanism": "MD5"}, "sasl_mechanism"),
        ({"bootstrap_servers": "b:1", "security_protocol": "SSL"}, "needs ssl_context"),
        ({"bootstrap_servers": "b:1", "request_timeout_ms": 0}, "request_timeout_ms"),
    ],
)
def test_bad_settings_name_the_rule(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        KafkaSettings(**kwargs)  # type: ignore[arg-type]


def test_ssl_context_passes_through() -> None:
    context = ssl.create_default_context()
    settings = KafkaSettings("b:1", security_protocol="SSL", ssl_context=context)
    assert settings.client_kwargs()["ssl_context"] is context


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ttl_ms": 0}, "ttl_ms"),
        ({"ttl_ms": -5}, "ttl_ms"),
        ({"partition": 0}, "partition must be >= 1"),
        ({"replication_factor": 0}, "replication_factor must be >= 1"),
        ({"partition": True}, "partition must be an int"),
    ],
)
def test_bad_topic_settings(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        TopicSettings(**kwargs)


def test_topic_settings_defaults_and_configs() -> None:
    spec = TopicSettings()
    assert (spec.ttl_ms, spec.partition, spec.replication_factor) == (604800000, 1, 1)
    assert spec.topic_configs() == {
        "retention.ms": "604800000",
        "cleanup.policy": "delete",
        "segment.ms": "86400000",  # retention acts on closed segments: at most a day old
    }
    assert TopicSettings(ttl_ms=-1).topic_configs() == {
        "retention.ms": "-1",
        "cleanup.policy": "delete",
    }
    assert TopicSettings(ttl_ms=60_000).topic_configs()["segment.ms"] == "60000"


def test_replicated_topics_get_durable_settings() -> None:
    assert TopicSettings(replication_factor=3).topic_configs() == {
        "retention.ms": "604800000",
        "cleanup.policy": "delete",
        "segment.ms": "86400000",
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }
    assert TopicSettings(replication_factor=2).topic_configs()["min.insync.replicas"] == "2"


def test_constructors_do_no_io_and_validate_early() -> None:
    # An unroutable address: a constructor that connected would hang or fail here.
    for cls in (KafkaChatMessageHistory, AsyncKafkaChatMessageHistory):
        history = cls("ok-session", "192.0.2.1:9", 1000, 1, 1)
        assert history.topic == "ok-session"
        history.close()
        with pytest.raises(ConfigurationError, match="messages_mode"):
            cls("s", "b:1", messages_mode="everything")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="bootstrap_servers"):
            cls("s")


def test_client_option_excludes_connection_options() -> None:
    with KafkaHistoryClient("b:1") as client:
        with pytest.raises(ConfigurationError, match="either client="):
            KafkaChatMessageHistory("s", "b:1", client=client)
        view = KafkaChatMessageHistory("s", client=client)
        assert view.client is client
        view.close()
    async_client = AsyncKafkaHistoryClient("b:1", max_readers=2)
    with pytest.raises(ConfigurationError, match="either client="):
        AsyncKafkaChatMessageHistory("s", client=async_client, client_id="x")
    async_client.close()
    with pytest.raises(ConfigurationError, match="max_readers"):
        AsyncKafkaHistoryClient("b:1", max_readers=0)
    with pytest.raises(ConfigurationError, match="read_timeout"):
        KafkaHistoryClient("b:1", read_timeout=0)


def test_read_limits_are_checked_before_any_io() -> None:
    history = KafkaChatMessageHistory("s", "192.0.2.1:9")
    with pytest.raises(ConfigurationError, match="max_message_count"):
        history.messages_from_beginning(max_message_count=-1)
    with pytest.raises(ConfigurationError, match="max_time_sec"):
        history.messages_from_latest(max_time_sec=0)
    history.close()


def test_an_unreachable_cluster_is_a_library_error_naming_the_address() -> None:
    # Port 1 on loopback refuses at once: no broker is involved, nothing is mocked.
    from aiokafka.errors import KafkaError

    from aiokafka_history import BrokerUnavailableError

    with KafkaChatMessageHistory("s", "127.0.0.1:1", request_timeout_ms=2000) as history:
        with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1") as info:
            history.add_user_message("x")
        assert isinstance(info.value.__cause__, KafkaError)
        # Nothing was kept half-open: the next call tries afresh and fails the same way.
        with pytest.raises(BrokerUnavailableError):
            _ = history.messages


@pytest.mark.parametrize("option", ["read_timeout", "write_timeout", "admin_timeout"])
@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "5", True])
def test_timeouts_must_be_finite_positive_seconds(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"{option} must be a finite number"):
        AsyncKafkaHistoryClient("b:1", **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("servers", ["", " ", ",", " , ", [""], [",", " "]])
def test_an_empty_bootstrap_list_is_refused(servers: object) -> None:
    with pytest.raises(ConfigurationError, match="bootstrap_servers is empty"):
        AsyncKafkaHistoryClient(servers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("constructor", "option", "suggestion"),
    [
        ("async client", "requst_timeout_ms", "request_timeout_ms"),
        ("blocking client", "read_timout", "read_timeout"),
        ("blocking history", "sasl_pasword", "sasl_plain_password"),
        ("async history", "message_mode", "messages_mode"),
        # With client= given, the message is about the name, not "pass either client=".
        ("async history on a client", "consumer_grup", "consumer_group"),
        ("blocking history on a client", "ttl", "ttl_ms"),
    ],
)
def test_a_misspelt_option_is_named_with_a_suggestion_and_without_its_value(
    constructor: str, option: str, suggestion: str
) -> None:
    misspelt: dict[str, Any] = {option: SECRET}
    with AsyncKafkaHistoryClient("b:1") as async_client, KafkaHistoryClient("b:1") as client:
        make: dict[str, Callable[[], object]] = {
            "async client": lambda: AsyncKafkaHistoryClient("b:1", **misspelt),
            "blocking client": lambda: KafkaHistoryClient("b:1", **misspelt),
            "blocking history": lambda: KafkaChatMessageHistory("s", "b:1", **misspelt),
            "async history": lambda: AsyncKafkaChatMessageHistory("s", "b:1", **misspelt),
            "async history on a client": lambda: AsyncKafkaChatMessageHistory(
                "s", client=async_client, **misspelt
            ),
            "blocking history on a client": lambda: KafkaChatMessageHistory(
                "s", client=client, **misspelt
            ),
        }
        with pytest.raises(ConfigurationError) as caught:
            make[constructor]()
    message = str(caught.value)
    assert f"unknown option {option!r} (did you mean {suggestion!r}?)" in message
    assert "request_timeout_ms" in message  # the list of the connection settings
    assert SECRET not in message and SECRET not in repr(caught.value)

"""TopicFactory without a broker: names, prefixes, and which broker each name is deleted on."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from kafkalocal import Endpoint, KafkaAdminError, Security, TopicFactory
from kafkalocal import _topics as topics_module

LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@pytest.fixture
def deleted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    calls: list[tuple[str, list[str]]] = []

    def fake_delete(endpoint: Endpoint, names: Sequence[str], timeout: float = 30.0) -> list[str]:
        calls.append((endpoint.bootstrap, list(names)))
        if endpoint.bootstrap == "broken:1":
            raise KafkaAdminError("deleting topics on broken:1: refused")
        return list(names)

    monkeypatch.setattr(topics_module, "_delete_topics", fake_delete)
    return calls


@pytest.mark.parametrize("case", ["a/b c", "x" * 300])
def test_kafka_topics_names_are_fresh_and_legal(kafka_topics: TopicFactory, case: str) -> None:
    # From the test name "test_kafka_topics_names_are_fresh_and_legal[<case>]", cut to 80.
    first, second = kafka_topics(), kafka_topics()
    prefix = "test-kafka-topics-names-are-fresh-and-legal-"
    assert re.fullmatch(re.escape(prefix) + r"[a-zA-Z0-9-]+-[0-9a-f]{8}", first)
    assert len(first) <= len("test-") + 80 + len("-12345678")
    assert first != second
    assert kafka_topics.names == [first, second]


def test_labels_and_prefixes() -> None:
    factory = TopicFactory("test_x", lambda: [])
    assert re.fullmatch(r"test-x-orders-2-[0-9a-f]{8}", factory("orders #2"))
    assert re.fullmatch(r"tenant-a\.test-x-[0-9a-f]{8}", factory(prefix="tenant-a."))
    longest = factory("y" * 500, prefix="p" * 200)
    assert LEGAL.fullmatch(longest)
    assert longest.startswith("p" * 200)
    with pytest.raises(ValueError, match="may only contain"):
        factory(prefix="a/b")
    with pytest.raises(ValueError, match="no room"):
        factory(prefix="p" * 245)


def test_cleanup_deletes_each_name_on_its_broker_once(
    deleted: list[tuple[str, list[str]]],
) -> None:
    default_calls = []

    def defaults() -> list[str]:
        default_calls.append(1)
        return ["a:1", "b:1"]

    factory = TopicFactory("test_x", defaults)
    one, two = factory("one"), factory("two")
    secure = Endpoint("s:1", Security("SASL_PLAINTEXT", username="admin", password="pw"))
    three = factory.on(secure)("three")
    four = factory.on("a:1")("four")
    factory.cleanup()
    assert deleted == [("a:1", [one, two, four]), ("b:1", [one, two]), ("s:1", [three])]
    assert default_calls == [1]
    factory.cleanup()
    assert len(deleted) == 3


def test_two_fixtures_naming_one_broker_delete_each_name_once(
    deleted: list[tuple[str, list[str]]],
) -> None:
    # e.g. a test that took kafka_bootstrap while it pointed at kafka_defaults_bootstrap:
    # one DeleteTopics naming a topic twice is an INVALID_REQUEST for Kafka.
    factory = TopicFactory("test_x", lambda: ["a:1", "a:1"])
    one = factory("one")
    factory.cleanup()
    assert deleted == [("a:1", [one])]


def test_a_failed_deletion_is_reported_after_the_others(
    deleted: list[tuple[str, list[str]]],
) -> None:
    factory = TopicFactory("test_x", lambda: ["broken:1", "ok:1"])
    name = factory()
    with pytest.raises(KafkaAdminError, match=r"could not delete test topics.*broken:1"):
        factory.cleanup()
    assert deleted[-1] == ("ok:1", [name])


def test_nothing_handed_out_means_nothing_to_delete(
    deleted: list[tuple[str, list[str]]],
) -> None:
    TopicFactory("test_x", lambda: pytest.fail("not needed")).cleanup()
    assert deleted == []


def test_on_rejects_what_is_not_a_broker() -> None:
    with pytest.raises(TypeError, match="a topic target is"):
        TopicFactory("test_x", lambda: []).on(42)  # type: ignore[arg-type]

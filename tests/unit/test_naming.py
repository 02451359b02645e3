import pytest

from aiokafka_history import ConfigurationError, InvalidSessionIdError, TopicNaming
from aiokafka_history._naming import validate_topic_name


@pytest.mark.parametrize("name", ["a", "chat-message-history-kafka", "A.b_c-9", "x" * 249, "..."])
def test_legal_session_ids_are_the_topic(name: str) -> None:
    assert TopicNaming().topic_for(name) == name


@pytest.mark.parametrize(
    ("session_id", "why"),
    [
        ("", "must not be empty"),
        (".", "is '.'"),
        ("..", "is '..'"),
        ("x" * 250, "250 characters"),
        ("has space", "contains ' '"),
        ("user/42", "contains '/'"),
        ("naïve", "contains 'ï'"),
    ],
)
def test_illegal_session_ids_name_the_rule(session_id: str, why: str) -> None:
    with pytest.raises(InvalidSessionIdError) as info:
        TopicNaming().topic_for(session_id)
    message = str(info.value)
    assert why in message
    if session_id:
        assert "[a-zA-Z0-9._-]" in message
        assert "encode_session_ids=True" in message
    assert isinstance(info.value, ValueError)


def test_non_str_session_id_is_rejected() -> None:
    with pytest.raises(InvalidSessionIdError, match="must be a str"):
        TopicNaming().topic_for(42)  # type: ignore[arg-type]


def test_prefix_is_prepended_and_counts_towards_the_length() -> None:
    naming = TopicNaming(prefix="chat.")
    assert naming.topic_for("abc") == "chat.abc"
    with pytest.raises(InvalidSessionIdError, match="254 characters"):
        naming.topic_for("x" * 249)


@pytest.mark.parametrize("prefix", ["bad prefix", "a/b", "é"])
def test_illegal_prefix_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="topic prefix"):
        TopicNaming(prefix=prefix)


@pytest.mark.parametrize(
    "session_id",
    ["user/42", "a b", "naïve ☃", "a.b", "a_b", "a_2Eb", "__x", "-", ".", "..", "日本語"],
)
def test_encoding_is_legal_and_round_trips(session_id: str) -> None:
    naming = TopicNaming(prefix="p-", encode_session_ids=True)
    topic = naming.topic_for(session_id)
    assert validate_topic_name(topic) is None
    assert "." not in topic[len("p-") :]
    assert naming.session_for(topic) == session_id


def test_encoding_is_injective_even_for_look_alikes() -> None:
    naming = TopicNaming(encode_session_ids=True)
    ids = ["a.b", "a_b", "a_2Eb", "a_5Fb", "a-b", "A.B", "a.5fb"]
    topics = [naming.topic_for(i) for i in ids]
    assert len(set(topics)) == len(ids)
    # Kafka treats '.' and '_' alike in metric names: encoded names must not collide there.
    assert len({t.replace(".", "_") for t in topics}) == len(ids)


def test_encoded_ids_still_have_a_length_limit() -> None:
    with pytest.raises(InvalidSessionIdError, match="shorter session id"):
        TopicNaming(encode_session_ids=True).topic_for("/" * 100)


def test_session_for_ignores_foreign_and_internal_topics() -> None:
    naming = TopicNaming(prefix="chat.")
    assert naming.session_for("chat.abc") == "abc"
    assert naming.session_for("other") is None
    assert naming.session_for("chat.") is None
    assert TopicNaming().session_for("__consumer_offsets") is None
    encoded = TopicNaming(encode_session_ids=True)
    assert encoded.session_for("not_valid") is None
    assert encoded.session_for("a.b") is None

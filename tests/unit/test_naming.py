import re

import pytest

from aiokafka_history import ConfigurationError, InvalidSessionIdError, TopicNaming
from aiokafka_history._naming import (
    RESERVED_TOPIC_RULES,
    reserved_topic_rule,
    validate_topic_name,
)


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


# -- reserved names ----------------------------------------------------------------------------

RESERVED = [
    ("__consumer_offsets", "'__'"),
    ("__transaction_state", "'__'"),
    ("__cluster_metadata", "'__'"),
    ("__share_group_state", "'__'"),
    ("__", "'__'"),
    ("_confluent-metrics", "'_confluent'"),
    ("_confluent_balancer_api_state", "'_confluent'"),
    ("_schemas", "'_schemas'"),
    ("connect-configs", "'connect-configs'"),
    ("connect-offsets", "'connect-offsets'"),
    ("connect-status", "'connect-status'"),
    ("heartbeats", "'heartbeats'"),
    ("us-west.heartbeats", "'.heartbeats'"),
    ("mm2-offset-syncs", "'mm2-'"),
    ("us-west.checkpoints.internal", "'.internal'"),
    ("app-store-changelog", "'-changelog'"),
    ("app-KSTREAM-MAP-0000000001-repartition", "'-repartition'"),
]
SUFFIX_RESERVED = [(s, why) for s, why in RESERVED if why.startswith("'-") or why[1] == "."]
NOT_RESERVED = [
    "_consumer_offsets",
    "a__b",
    "_confluen",
    "confluent-metrics",
    "_schemas2",
    "schemas",
    "connect-configs-2",
    "my-connect-status",
    "heartbeat",
    "heartbeats2",
    "Heartbeats",
    "mm2",
    "mm2.x",
    "x-mm2-y",
    "internal",
    "x-internal",
    "x.internal2",
    "changelog",
    "x-changelogs",
    "x.changelog",
    "x-Repartition",
]


@pytest.mark.parametrize(("session_id", "rule"), RESERVED)
def test_reserved_names_are_refused_naming_the_rule_and_the_fix(session_id: str, rule: str) -> None:
    with pytest.raises(InvalidSessionIdError) as info:
        TopicNaming().topic_for(session_id)
    message = str(info.value)
    assert "reserved for Kafka's internal topics" in message
    assert rule in message
    assert "use another session id" in message
    assert reserved_topic_rule(session_id) is not None


@pytest.mark.parametrize("session_id", NOT_RESERVED)
def test_look_alikes_of_reserved_names_are_accepted(session_id: str) -> None:
    assert reserved_topic_rule(session_id) is None
    assert TopicNaming().topic_for(session_id) == session_id
    assert TopicNaming().session_for(session_id) == session_id


@pytest.mark.parametrize(("session_id", "rule"), RESERVED)
def test_reserved_rules_apply_to_the_final_name_prefix_included(session_id: str, rule: str) -> None:
    naming = TopicNaming(prefix="chat.")
    if session_id == "heartbeats":
        # chat.heartbeats is what MirrorMaker 2 names heartbeats replicated from "chat".
        with pytest.raises(InvalidSessionIdError, match=r"'\.heartbeats'"):
            naming.topic_for(session_id)
    elif (session_id, rule) in SUFFIX_RESERVED:
        # A suffix stays a suffix behind any prefix.
        with pytest.raises(InvalidSessionIdError, match="a topic_prefix does not help"):
            naming.topic_for(session_id)
        assert naming.session_for(f"chat.{session_id}") is None
    else:
        assert naming.topic_for(session_id) == f"chat.{session_id}"
        assert naming.session_for(f"chat.{session_id}") == session_id


def test_a_prefix_can_complete_a_reserved_name() -> None:
    with pytest.raises(InvalidSessionIdError, match="'_confluent'"):
        TopicNaming(prefix="_conf").topic_for("luent-metrics")
    with pytest.raises(InvalidSessionIdError, match="'heartbeats'"):
        TopicNaming(prefix="heart").topic_for("beats")


@pytest.mark.parametrize("session_id", [s for s, _ in RESERVED] + ["mm2-x.internal"])
def test_listing_never_shows_a_reserved_name(session_id: str) -> None:
    for naming in (TopicNaming(), TopicNaming(encode_session_ids=True)):
        assert naming.session_for(session_id) is None


@pytest.mark.parametrize("prefix", ["__", "__chat.", "_", "_confluent", "_confluent-chat.", "mm2-"])
def test_reserved_looking_prefix_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="reserved for Kafka's internal topics") as info:
        TopicNaming(prefix=prefix)
    assert "use a prefix such as 'chat.'" in str(info.value)
    assert not isinstance(info.value, InvalidSessionIdError)


@pytest.mark.parametrize("prefix", ["_x", "chat_", "a__", "mm2", "_conf", "connect-", "heart"])
def test_prefixes_that_only_start_a_reserved_name_are_accepted(prefix: str) -> None:
    assert TopicNaming(prefix=prefix).prefix == prefix


@pytest.mark.parametrize(
    ("prefix", "session_id", "topic"),
    [
        ("", "heartbeats", "_68eartbeat_73"),
        ("", "connect-configs", "_63onnect-config_73"),
        ("", "mm2-x", "_6Dm2-_78"),
        ("", "x-changelog", "_78-changelo_67"),
        ("", "x-y-internal.internal", "x-y-internal_2Einternal"),  # '.' is escaped anyway
        ("", "_schemas", "_5Fschemas"),  # so is '_'
        ("heartbeat", "s", "heartbeat_73"),
        ("_conf", "luent-x", "_conf_6Cuent-_78"),
        ("connect-", "status", "connect-_73tatu_73"),
        ("p-", "heartbeats", "p-heartbeats"),
    ],
)
def test_encoding_escapes_both_ends_instead_of_making_a_reserved_name(
    prefix: str, session_id: str, topic: str
) -> None:
    naming = TopicNaming(prefix=prefix, encode_session_ids=True)
    assert naming.topic_for(session_id) == topic
    assert reserved_topic_rule(topic) is None
    assert naming.session_for(topic) == session_id


def test_every_rule_can_be_escaped_by_the_encoding() -> None:
    # What the encoder's escape-both-ends fallback relies on (see RESERVED_TOPIC_RULES).
    for rule in RESERVED_TOPIC_RULES:
        if rule.kind == "suffix":
            assert rule.text[-1] not in "0123456789ABCDEF", rule
        else:
            assert re.search("_[0-9A-F]", rule.text) is None, rule


def test_session_for_accepts_only_what_the_encoder_writes() -> None:
    naming = TopicNaming(encode_session_ids=True)
    assert naming.topic_for("a") == "a"
    assert naming.session_for("_61") is None  # also decodes to "a": listed once, not twice
    assert naming.session_for("heartbeats") is None  # reserved; "heartbeats" is _68eartbeat_73
    assert naming.topic_for("__") == "_5F_5F"
    assert naming.session_for("_5F_5F") == "__"


def test_lone_surrogates_are_invalid_session_ids() -> None:
    with pytest.raises(InvalidSessionIdError, match="lone surrogate at position 1"):
        TopicNaming(encode_session_ids=True).topic_for("a\udc80")
    with pytest.raises(InvalidSessionIdError, match="contains"):
        TopicNaming().topic_for("a\udc80")

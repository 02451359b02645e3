"""Property tests: topic naming and the record codec, over generated inputs.

Random locally; derandomised (same examples every run, no example database) when the ``CI``
environment variable is set, through the ``ci`` profile registered here.
"""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from aiokafka_history import InvalidSessionIdError, RecordDecodeError, TopicNaming, _codec
from aiokafka_history._codec import decode_message, encode_message
from aiokafka_history._naming import (
    MAX_TOPIC_LENGTH,
    RESERVED_TOPIC_RULES,
    reserved_topic_rule,
    validate_topic_name,
)
from aiokafka_history._shared_keys import check_session_id, message_key, parse_key, position_key

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
if "CI" in os.environ:
    settings.load_profile("ci")

FAST = settings(max_examples=200, deadline=None)
LEGAL_CHARS = string.ascii_letters + string.digits + "._-"
KEPT_BYTES = (string.ascii_letters + string.digits + "-").encode()  # not escaped when encoded

# -- topic naming ------------------------------------------------------------------------------

# Prefixes that end part-way into a reserved name, so the prefix and the id complete it.
PREFIXES = ["", "chat.", "p-", "a_", "mm", "_conf", "heart", "heartbeat", "connect-", "x.inter"]
FRAGMENTS = ["", ".", "..", "_", "__", "-", "_2E", "_5F", "x", "é", "/"] + [
    rule.text for rule in RESERVED_TOPIC_RULES
]

legal_text = st.text(alphabet=LEGAL_CHARS, min_size=1, max_size=40)
# Ids built around reserved starts, ends and names, and around what the encoder writes.
near_reserved = st.builds(
    lambda a, b, c: a + b + c,
    st.sampled_from(FRAGMENTS),
    st.text(alphabet=LEGAL_CHARS, max_size=6),
    st.sampled_from(FRAGMENTS),
)
# Long enough for the topic to cross 249 characters, escaped or not.
long_text = st.text(alphabet=LEGAL_CHARS + "/é日", min_size=70, max_size=260)
session_ids = st.one_of(st.text(min_size=1), legal_text, near_reserved, long_text).filter(bool)


def is_usable(topic: str) -> bool:
    """Legal, not reserved, and made of topic characters only."""
    return (
        validate_topic_name(topic) is None
        and reserved_topic_rule(topic) is None
        and len(topic) <= MAX_TOPIC_LENGTH
        and all(c in LEGAL_CHARS for c in topic)
    )


@FAST
@given(prefix=st.sampled_from(PREFIXES), session_id=session_ids)
def test_encoded_ids_map_to_usable_topics_and_back_or_are_too_long(
    prefix: str, session_id: str
) -> None:
    naming = TopicNaming(prefix=prefix, encode_session_ids=True)
    # Every byte outside [a-zA-Z0-9-] takes 3 characters; escaping both ends adds at most 4.
    shortest = len(prefix) + sum(1 if b in KEPT_BYTES else 3 for b in session_id.encode())
    try:
        topic = naming.topic_for(session_id)
    except InvalidSessionIdError as exc:
        assert "characters long" in str(exc)
        assert "shorter session id" in str(exc)
        assert shortest + 4 > MAX_TOPIC_LENGTH
        return
    assert shortest <= len(topic) <= shortest + 4
    assert topic.startswith(prefix)
    assert is_usable(topic)
    assert "." not in topic[len(prefix) :]
    assert naming.session_for(topic) == session_id


@FAST
@given(prefix=st.sampled_from(PREFIXES), session_id=session_ids)
def test_plain_ids_are_accepted_exactly_when_legal_and_not_reserved(
    prefix: str, session_id: str
) -> None:
    naming = TopicNaming(prefix=prefix)
    expected = prefix + session_id
    try:
        topic = naming.topic_for(session_id)
    except InvalidSessionIdError as exc:
        assert not is_usable(expected)
        message = str(exc)
        if validate_topic_name(expected) is None:
            assert "reserved for Kafka's internal topics" in message
        else:
            assert "a Kafka topic name is 1-249 characters" in message
        assert naming.session_for(expected) is None
        return
    assert topic == expected
    assert is_usable(topic)
    assert naming.session_for(topic) == session_id


@FAST
@given(prefix=st.sampled_from(PREFIXES), encode=st.booleans(), data=st.data())
def test_distinct_ids_never_share_a_topic(prefix: str, encode: bool, data: st.DataObject) -> None:
    naming = TopicNaming(prefix=prefix, encode_session_ids=encode)
    first = data.draw(session_ids, label="first")
    try:
        first_topic = naming.topic_for(first)
    except InvalidSessionIdError:
        reject()
    # Look-alikes: the other id spelled as the first one's topic, or with a case or '.'/'_' swap.
    look_alikes = [
        first_topic[len(prefix) :],
        first.swapcase(),
        first.replace(".", "_"),
        first.replace("_", "."),
    ]
    second = data.draw(st.one_of(session_ids, st.sampled_from(look_alikes)), label="second")
    assume(second != first)
    try:
        second_topic = naming.topic_for(second)
    except InvalidSessionIdError:
        return
    assert second_topic != first_topic
    if encode:
        # Kafka's metric names treat '.' and '_' alike; encoded names must differ there too.
        assert second_topic.replace(".", "_") != first_topic.replace(".", "_")


@FAST
@given(
    prefix=st.sampled_from(PREFIXES),
    encode=st.booleans(),
    topic=st.one_of(legal_text, near_reserved.filter(lambda t: validate_topic_name(t) is None)),
)
def test_session_for_only_names_sessions_that_map_back_to_the_topic(
    prefix: str, encode: bool, topic: str
) -> None:
    naming = TopicNaming(prefix=prefix, encode_session_ids=encode)
    session_id = naming.session_for(prefix + topic)
    if session_id is not None:
        assert naming.topic_for(session_id) == prefix + topic
    if reserved_topic_rule(prefix + topic) is not None:
        assert session_id is None


# -- record codec ------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
kwargs_dicts = st.dictionaries(
    st.text().filter(lambda k: k not in ("tool_calls", "function_call")), json_values, max_size=4
)
contents = st.one_of(
    st.text(),
    st.lists(
        st.one_of(
            st.text(),
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}),
        ),
        max_size=3,
    ),
)
optional_text = st.none() | st.text()
common = {
    "content": contents,
    "additional_kwargs": kwargs_dicts,
    "response_metadata": st.dictionaries(st.text(), json_values, max_size=3),
    "id": optional_text,
    "name": optional_text,
}
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.text(min_size=1),
            "args": st.dictionaries(st.text(), json_values, max_size=3),
            "id": optional_text,
        }
    ),
    max_size=2,
)
messages: st.SearchStrategy[BaseMessage] = st.one_of(
    st.builds(HumanMessage, **common),
    st.builds(SystemMessage, **common),
    st.builds(AIMessage, tool_calls=tool_calls, **common),
    st.builds(
        ToolMessage,
        tool_call_id=st.text(),
        artifact=json_values,
        status=st.sampled_from(["success", "error"]),
        **common,
    ),
)


@FAST
@given(message=messages)
def test_codec_writes_langchain_community_bytes_and_round_trips(message: BaseMessage) -> None:
    value = encode_message(message)
    # langchain_community's KafkaChatMessageHistory writes json.dumps(message_to_dict(m)).
    assert value == json.dumps(message_to_dict(message)).encode()
    assert value.isascii()  # json's default ASCII escapes, whatever the text
    assert decode_message(value, topic="chat.t", partition=0, offset=0) == message


plain = {
    "content": st.text(),
    "response_metadata": st.dictionaries(st.text(), json_values, max_size=3),
    "id": optional_text,
    "name": optional_text,
}
# What chats mostly hold: the shape decoding builds without validating again.
plain_messages: st.SearchStrategy[BaseMessage] = st.one_of(
    st.builds(HumanMessage, **plain),
    st.builds(SystemMessage, **plain),
    st.builds(AIMessage, **plain),
)


def _assert_identical(built: BaseMessage, validated: BaseMessage) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert built.__dict__ == validated.__dict__
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set
    assert built.__pydantic_extra__ == validated.__pydantic_extra__
    assert built.model_dump() == validated.model_dump()
    assert encode_message(built) == encode_message(validated)


@FAST
@given(message=st.one_of(plain_messages, messages))
def test_decoding_gives_exactly_what_messages_from_dict_gives(message: BaseMessage) -> None:
    value = encode_message(message)
    built = decode_message(value, topic="t", partition=0, offset=0)
    _assert_identical(built, messages_from_dict([json.loads(value)])[0])


def _tamper(data: dict, how: str) -> None:  # type: ignore[type-arg]
    fields = data["data"]
    if how == "reorder":
        data["data"] = dict(reversed(list(fields.items())))
    elif how == "drop":
        fields.pop("name")
    elif how == "extra":
        fields["extra"] = [1, {"a": None}]
    elif how == "content-list":
        fields["content"] = ["x", {"type": "text", "text": "y"}]
    elif how == "content-int":
        fields["content"] = 7
    elif how == "name-int":
        fields["name"] = 3
    elif how == "id-int":
        fields["id"] = 3
    elif how == "legacy-tool-calls":
        fields["additional_kwargs"] = {
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a": 1}'}}]
        }
    elif how == "type-mismatch":
        fields["type"] = "system" if fields["type"] != "system" else "human"
    elif how == "big-numbers":
        fields["response_metadata"] = {"big": 2**70, "inf": float("inf")}
    elif how == "outer-extra":
        data["more"] = 1


@FAST
@given(
    message=plain_messages,
    how=st.sampled_from(
        [
            "reorder",
            "drop",
            "extra",
            "content-list",
            "content-int",
            "name-int",
            "id-int",
            "legacy-tool-calls",
            "type-mismatch",
            "big-numbers",
            "outer-extra",
        ]
    ),
)
def test_decoding_a_value_of_another_shape_gives_what_messages_from_dict_gives(
    message: BaseMessage, how: str
) -> None:
    data = message_to_dict(message)
    _tamper(data, how)
    value = json.dumps(data).encode()
    try:
        validated = messages_from_dict([json.loads(value)])[0]
    except Exception:
        with pytest.raises(RecordDecodeError):
            decode_message(value, topic="t", partition=0, offset=0)
        return
    _assert_identical(decode_message(value, topic="t", partition=0, offset=0), validated)


_session_ids = st.text(min_size=1, max_size=50).filter(lambda s: "\x00" not in s)


@given(_session_ids, st.text(min_size=1, max_size=20))
def test_shared_keys_round_trip_for_any_session_and_group(session: str, group: str) -> None:
    try:
        raw = check_session_id(session)
        group.encode("utf-8")
    except (InvalidSessionIdError, UnicodeEncodeError):
        return  # lone surrogates: not UTF-8, refused up front
    message = parse_key(message_key(raw))
    assert message is not None and message.session == session
    position = parse_key(position_key(raw, group))
    assert position is not None and (position.session, position.rest) == (session, group)


def test_plain_messages_are_built_without_validating_again() -> None:
    # The import-time check found building equal to validating with the pinned versions: the
    # fast path is on (a mismatch would switch it off, and this would say so).
    assert set(_codec._PLAIN) == {"human", "ai", "system"}
    value = encode_message(AIMessage(content="x", name="n"))
    assert _codec._built(json.loads(value)) is not None


@given(st.integers().filter(lambda n: abs(n) >= 2**63) | st.integers(-(2**70), 2**70))
def test_numbers_of_any_size_decode_exactly(number: int) -> None:
    message = HumanMessage(content="n", response_metadata={"n": number, "l": [number, -number]})
    value = encode_message(message)
    decoded = decode_message(value, topic="t", partition=0, offset=0)
    assert decoded.response_metadata == {"n": number, "l": [number, -number]}
    _assert_identical(decoded, messages_from_dict([json.loads(value)])[0])


@given(st.binary(max_size=300))
def test_our_murmur2_is_aiokafkas(data: bytes) -> None:
    """The shared layout's partitioner: Kafka's murmur2 exactly (aiokafka's as the reference)."""
    from aiokafka.partitioner import murmur2 as aiokafkas

    from aiokafka_history._shared_keys import murmur2

    assert murmur2(data) == aiokafkas(data)

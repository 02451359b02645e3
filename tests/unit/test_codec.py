import json

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from aiokafka_history import RecordDecodeError
from aiokafka_history._codec import decode_message, encode_message, encode_messages


def _round_trip(message):  # type: ignore[no-untyped-def]
    return decode_message(encode_message(message), topic="t", partition=0, offset=0)


def test_bytes_match_langchain_community() -> None:
    # langchain_community produces json.dumps(message_to_dict(m)) with json's defaults.
    message = HumanMessage(content="hi! ☃", id="m1")
    expected = json.dumps(message_to_dict(message)).encode()
    assert encode_message(message) == expected
    assert b"\\u2603" in expected  # ASCII escapes, as json's default


def test_full_fidelity_round_trip() -> None:
    messages = [
        SystemMessage(content="be brief", id="s1"),
        HumanMessage(content=[{"type": "text", "text": "naïve 日本語 🚀"}], name="alice"),
        AIMessage(
            content="",
            id="a1",
            tool_calls=[{"name": "search", "args": {"q": "kafka", "n": 3}, "id": "call-1"}],
            additional_kwargs={"foo": [1, 2, {"x": None}]},
            response_metadata={"model": "fake", "tokens": 12},
        ),
        ToolMessage(content="result", tool_call_id="call-1", artifact={"rows": 2}),
    ]
    for message in messages:
        assert _round_trip(message) == message


def test_not_a_message_is_a_type_error_before_anything_is_encoded() -> None:
    with pytest.raises(TypeError, match="BaseMessage"):
        encode_messages([HumanMessage(content="ok"), "plain text"])  # type: ignore[list-item]


@pytest.mark.parametrize("value", [b"not json", b'{"type": "nope", "data": {}}', b"[]"])
def test_undecodable_record_names_its_position_not_its_payload(value: bytes) -> None:
    with pytest.raises(RecordDecodeError) as info:
        decode_message(value, topic="chat", partition=2, offset=41)
    assert "chat[2]@41" in str(info.value)
    assert value.decode() not in str(info.value)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("chat", 2, 41)

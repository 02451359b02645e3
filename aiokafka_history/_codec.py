"""Chat message ⇄ record value, byte-compatible with langchain_community.

langchain_community's ``KafkaChatMessageHistory`` writes ``json.dumps(message_to_dict(m))`` with
``json``'s defaults (ASCII escapes, ``", "`` and ``": "`` separators); this module writes exactly
the same bytes, so either library reads the other's topics. No I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import orjson
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
    messages_from_dict,
)

from ._errors import InvalidMessageError, RecordDecodeError

__all__ = [
    "RECORD_OVERHEAD",
    "decode_message",
    "encode_message",
    "encode_messages",
    "encode_session_key",
]

#: Bytes a record may need beyond its key and value inside a batch (headers, varints,
#: the batch header of a single-record batch): what to leave below a size limit.
RECORD_OVERHEAD = 128


def encode_message(message: BaseMessage) -> bytes:
    """Serialize one message to a record value.

    Raises:
        TypeError: ``message`` is not a ``BaseMessage``.
        InvalidMessageError: it holds data JSON cannot encode.
    """
    if not isinstance(message, BaseMessage):
        raise TypeError(
            f"expected a langchain_core BaseMessage, got {type(message).__name__}; "
            "wrap text in HumanMessage(...) or use add_user_message()"
        )
    try:
        return json.dumps(message_to_dict(message)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        # The cause names the offending value: keep it out of the chain.
        raise InvalidMessageError(
            f"a {type(message).__name__} cannot be stored: its fields must be JSON "
            f"serializable ({type(exc).__name__}); convert custom objects in content or "
            "additional_kwargs to str, numbers, lists or dicts"
        ) from None


def encode_session_key(session_id: str) -> bytes:
    """The record key: the session id, so a session's records share one partition."""
    return session_id.encode("utf-8")


def decode_message(value: bytes, *, topic: str, partition: int, offset: int) -> BaseMessage:
    """Deserialize one record value.

    Equal to ``messages_from_dict([json.loads(value)])[0]`` (a property test compares them),
    only faster: orjson parses (``json`` when orjson refuses, e.g. ``NaN``), and a plain
    human, AI or system message in exactly the shape ``message_to_dict`` writes is built
    without validating again what validated when it was written.

    Raises:
        RecordDecodeError: the value is not JSON of ``message_to_dict``. The position is named,
            the payload is not, and no cause is chained (parsers quote their input).
    """
    try:
        data: Any = _loads(value)
        return _built(data) or messages_from_dict([data])[0]
    except Exception as exc:
        reason = type(exc).__name__
    raise RecordDecodeError(
        f"record {topic}[{partition}]@{offset} is not a serialized LangChain message ({reason})",
        topic=topic,
        partition=partition,
        offset=offset,
    )


def _loads(value: bytes) -> Any:
    # orjson turns integers beyond 64 bits into floats: json keeps them exact.
    if _LONG_NUMBER.search(value) is None:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # what json also takes: NaN, UTF-16, a BOM
            pass
    return json.loads(value)


_LONG_NUMBER = re.compile(rb"\d{19}")


_PLAIN: dict[str, tuple[type[BaseMessage], tuple[str, ...]]] = {
    cls.model_fields["type"].default: (cls, tuple(cls.model_fields))
    for cls in (HumanMessage, AIMessage, SystemMessage)
}
_new = object.__new__
_set = object.__setattr__


def _plain(cls: type[BaseMessage], fields: dict[str, Any]) -> BaseMessage:
    message = _new(cls)
    _set(message, "__dict__", fields)
    _set(message, "__pydantic_fields_set__", set(fields))
    _set(message, "__pydantic_extra__", {})
    _set(message, "__pydantic_private__", None)
    return message


def _built(data: Any) -> BaseMessage | None:
    """``data``'s message built as validation would build it, or None if not plain.

    Plain: every field in declaration order, text content, no additional kwargs, and for
    AI messages no tool calls or usage: nothing a validator of the class would change.
    """
    if type(data) is not dict or len(data) != 2:
        return None
    spec = _PLAIN.get(data.get("type"))  # type: ignore[arg-type]
    fields = data.get("data")
    if spec is None or type(fields) is not dict:
        return None
    cls, keys = spec
    if tuple(fields) != keys or fields["type"] != data["type"]:
        return None
    kwargs, metadata, name, id_ = (
        fields["additional_kwargs"],
        fields["response_metadata"],
        fields["name"],
        fields["id"],
    )
    if (
        type(fields["content"]) is not str
        or type(kwargs) is not dict
        or kwargs
        or type(metadata) is not dict
        or not (name is None or type(name) is str)
        or not (id_ is None or type(id_) is str)
    ):
        return None
    if cls is AIMessage and (
        fields["tool_calls"] != []
        or fields["invalid_tool_calls"] != []
        or fields["usage_metadata"] is not None
    ):
        return None
    return _plain(cls, fields)


def _plain_is_validated() -> bool:
    """Whether building plain messages gives what validation gives (with this pydantic)."""
    try:
        samples: list[BaseMessage] = [
            HumanMessage(content="q", name="n", id="i", response_metadata={"a": [1]}),
            AIMessage(content="a"),
            SystemMessage(content="s"),
        ]
        for sample in samples:
            data = json.loads(json.dumps(message_to_dict(sample)))
            built, validated = _built(data), messages_from_dict([data])[0]
            if (
                built is None
                or built != validated
                or built.__dict__ != validated.__dict__
                or built.model_fields_set != validated.model_fields_set
                or built.model_dump() != validated.model_dump()
            ):
                return False
    except Exception:
        return False
    return True


if not _plain_is_validated():  # another pydantic or langchain-core: validate everything
    _PLAIN.clear()


def encode_messages(
    messages: Iterable[BaseMessage], *, key: bytes = b"", max_record_bytes: int | None = None
) -> list[bytes]:
    """Serialize messages, all of them or none: a bad one raises before anything is sent.

    Raises:
        TypeError: an item is not a ``BaseMessage``.
        InvalidMessageError: an item cannot be encoded, or its record would exceed
            ``max_record_bytes`` (the message says which item and both sizes).
    """
    values = [encode_message(m) for m in messages]
    if max_record_bytes is not None:
        room = max_record_bytes - len(key) - RECORD_OVERHEAD
        for index, value in enumerate(values):
            if len(value) > room:
                raise InvalidMessageError(
                    f"message {index} of the batch is {len(value)} bytes once encoded, over "
                    f"the {room} bytes a record may hold (the {max_record_bytes}-byte request "
                    "limit less key and overhead); nothing was written: split its content "
                    "over several messages"
                )
    return values

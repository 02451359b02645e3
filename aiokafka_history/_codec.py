"""Chat message ⇄ record value, byte-compatible with langchain_community.

langchain_community's ``KafkaChatMessageHistory`` writes ``json.dumps(message_to_dict(m))`` with
``json``'s defaults (ASCII escapes, ``", "`` and ``": "`` separators); this module writes exactly
the same bytes, so either library reads the other's topics. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

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

    Raises:
        RecordDecodeError: the value is not JSON of ``message_to_dict``. The position is named,
            the payload is not, and no cause is chained (parsers quote their input).
    """
    try:
        data: Any = json.loads(value)
        return messages_from_dict([data])[0]
    except Exception as exc:
        reason = type(exc).__name__
    raise RecordDecodeError(
        f"record {topic}[{partition}]@{offset} is not a serialized LangChain message ({reason})",
        topic=topic,
        partition=partition,
        offset=offset,
    )


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

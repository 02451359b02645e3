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

from ._errors import RecordDecodeError

__all__ = ["decode_message", "encode_message", "encode_messages", "encode_session_key"]


def encode_message(message: BaseMessage) -> bytes:
    """Serialize one message to a record value.

    Raises:
        TypeError: ``message`` is not a ``BaseMessage`` or holds data JSON cannot encode.
    """
    if not isinstance(message, BaseMessage):
        raise TypeError(
            f"expected a langchain_core BaseMessage, got {type(message).__name__}; "
            "wrap text in HumanMessage(...) or use add_user_message()"
        )
    return json.dumps(message_to_dict(message)).encode("utf-8")


def encode_session_key(session_id: str) -> bytes:
    """The record key: the session id, so a session's records share one partition."""
    return session_id.encode("utf-8")


def decode_message(value: bytes, *, topic: str, partition: int, offset: int) -> BaseMessage:
    """Deserialize one record value.

    Raises:
        RecordDecodeError: the value is not JSON of ``message_to_dict`` (the position is named,
            the payload is not).
    """
    try:
        data: Any = json.loads(value)
        return messages_from_dict([data])[0]
    except Exception as exc:
        raise RecordDecodeError(
            f"record {topic}[{partition}]@{offset} is not a serialized LangChain message "
            f"({type(exc).__name__})",
            topic=topic,
            partition=partition,
            offset=offset,
        ) from exc


def encode_messages(messages: Iterable[BaseMessage]) -> list[bytes]:
    """Serialize messages, all of them or none (a bad one raises before anything is sent)."""
    return [encode_message(m) for m in messages]

"""Session id ⇄ topic name. Pure logic, no I/O.

A Kafka topic name is 1 to 249 characters from ``[a-zA-Z0-9._-]`` and is neither ``.`` nor
``..``. By default the topic is the session id itself (as in langchain_community), optionally
behind a prefix. With ``encode_session_ids=True`` any non-empty string is accepted and mapped
injectively: ``[a-zA-Z0-9-]`` stay as they are, every other UTF-8 byte becomes ``_XX`` (hex).
The encoded form never contains ``.``, so two encoded names can never collide in Kafka's
metric names (where ``.`` and ``_`` are the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ConfigurationError, InvalidSessionIdError

__all__ = ["MAX_TOPIC_LENGTH", "TopicNaming", "validate_topic_name"]

MAX_TOPIC_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_ESCAPED = re.compile(r"_([0-9A-F]{2})")
_RULE = "a Kafka topic name is 1-249 characters from [a-zA-Z0-9._-] and is not '.' or '..'"


def validate_topic_name(name: str) -> str | None:
    """Return why ``name`` is not a legal topic name, or None when it is."""
    if not name:
        return "it is empty"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"it is {len(name)} characters long"
    if name in (".", ".."):
        return f"it is {name!r}"
    if not _LEGAL.fullmatch(name):
        bad = sorted({c for c in name if not _LEGAL.fullmatch(c)})
        return f"it contains {''.join(bad)!r}"
    return None


def _encode(session_id: str) -> str:
    out: list[str] = []
    for byte in session_id.encode("utf-8"):
        out.append(chr(byte) if byte in _KEEP else f"_{byte:02X}")
    return "".join(out)


def _decode(encoded: str) -> str | None:
    if not all(c in "_" or ord(c) in _KEEP for c in encoded):
        return None
    raw = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == "_":
            m = _ESCAPED.match(encoded, i)
            if m is None:
                return None
            raw.append(int(m.group(1), 16))
            i += 3
        else:
            raw.append(ord(encoded[i]))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class TopicNaming:
    """How session ids map to topic names.

    Args:
        prefix: put before every session's topic name, e.g. ``"chat."``; must itself use only
            legal topic characters. Lets a shared client list only its own sessions.
        encode_session_ids: accept any non-empty session id and encode it injectively
            (see the module docstring) instead of requiring a legal topic name.

    Raises:
        ConfigurationError: the prefix is not made of legal topic characters.
    """

    prefix: str = ""
    encode_session_ids: bool = False

    def __post_init__(self) -> None:
        if self.prefix and not _LEGAL.fullmatch(self.prefix):
            raise ConfigurationError(
                f"topic prefix {self.prefix!r} is not allowed: {_RULE}; "
                "use only letters, digits, '.', '_' and '-'"
            )
        if len(self.prefix) >= MAX_TOPIC_LENGTH:
            raise ConfigurationError(f"topic prefix is too long: {_RULE}")

    def topic_for(self, session_id: str) -> str:
        """The topic holding ``session_id``'s messages.

        Raises:
            InvalidSessionIdError: the resulting name breaks Kafka's topic rule; the message
                says which rule and how to fix it.
        """
        if not isinstance(session_id, str):
            raise InvalidSessionIdError(
                f"session id must be a str, got {type(session_id).__name__}"
            )
        if not session_id:
            raise InvalidSessionIdError("session id must not be empty")
        name = self.prefix + (_encode(session_id) if self.encode_session_ids else session_id)
        why = validate_topic_name(name)
        if why is not None:
            fix = (
                "use a shorter session id"
                if self.encode_session_ids
                else "use only letters, digits, '.', '_' and '-', or pass "
                "encode_session_ids=True to accept any session id"
            )
            raise InvalidSessionIdError(
                f"session id {session_id[:80]!r} cannot be used: the topic name "
                f"{name[:80]!r} is illegal because {why}; {_RULE}; {fix}"
            )
        return name

    def session_for(self, topic: str) -> str | None:
        """The session id stored in ``topic``, or None when ``topic`` is not one of ours."""
        if not topic.startswith(self.prefix) or topic.startswith("__"):
            return None
        rest = topic[len(self.prefix) :]
        if not rest:
            return None
        return _decode(rest) if self.encode_session_ids else rest

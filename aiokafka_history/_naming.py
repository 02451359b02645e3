"""Session id ⇄ topic name. Pure logic, no I/O.

A Kafka topic name is 1 to 249 characters from ``[a-zA-Z0-9._-]`` and is neither ``.`` nor
``..``. By default the topic is the session id itself (as in langchain_community), optionally
behind a prefix.

Some legal names belong to Kafka or to the tools around it, and a session must never take
one: ``delete_session("__consumer_offsets")`` would delete every consumer group's committed
offsets. :data:`RESERVED_TOPIC_RULES` lists them (names starting with ``__``, Schema
Registry's, Kafka Connect's, MirrorMaker 2's and Kafka Streams' internal topics). They apply
to the final name, prefix included: under ``topic_prefix="chat."`` the session id
``__consumer_offsets`` is the harmless topic ``chat.__consumer_offsets``. A prefix that would
make every name (or every name of an id starting with ``_``) reserved is refused.

With ``encode_session_ids=True`` any non-empty string is accepted and mapped injectively:
``[a-zA-Z0-9-]`` stay as they are, every other UTF-8 byte becomes ``_XX`` (uppercase hex).
When that would give a reserved name (``heartbeats``, ``x-changelog``, ...), the first and
last bytes are escaped too (``_68eartbeat_73``): an escape is ``_`` and two characters of
``[0-9A-F]``, which no reserved rule can start or end with, so an encoded id is only ever
refused for its length. Decoding accepts only the one form the encoder writes, so every
topic maps back to at most one session. The encoded form never contains ``.``, so two
encoded names can never collide in Kafka's metric names (where ``.`` and ``_`` are the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigurationError, InvalidSessionIdError

__all__ = [
    "MAX_TOPIC_LENGTH",
    "RESERVED_TOPIC_RULES",
    "ReservedTopicRule",
    "TopicNaming",
    "check_topic_name",
    "reserved_topic_rule",
    "validate_topic_name",
]

MAX_TOPIC_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_ESCAPED = re.compile(r"_([0-9A-F]{2})")
_RULE = "a Kafka topic name is 1-249 characters from [a-zA-Z0-9._-] and is not '.' or '..'"


@dataclass(frozen=True)
class ReservedTopicRule:
    """Topic names that belong to Kafka or a tool around it.

    Args:
        kind: how :attr:`text` is matched against a whole topic name: ``"prefix"`` (the name
            starts with it), ``"suffix"`` (ends with it) or ``"name"`` (equals it). Matching is
            case-sensitive, as topic names are.
        text: the reserved start, end or name.
        owner: whose topics these are, with examples; quoted in error messages.
    """

    kind: Literal["prefix", "suffix", "name"]
    text: str
    owner: str

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` is reserved by this rule."""
        if self.kind == "prefix":
            return topic.startswith(self.text)
        if self.kind == "suffix":
            return topic.endswith(self.text)
        return topic == self.text

    def describe(self) -> str:
        """The rule in words, e.g. ``names starting with '__'``."""
        how = {"prefix": "names starting with", "suffix": "names ending in", "name": "the name"}
        return f"{how[self.kind]} {self.text!r}"


RESERVED_TOPIC_RULES: tuple[ReservedTopicRule, ...] = (
    ReservedTopicRule(
        "prefix",
        "__",
        "the broker's own topics, such as __consumer_offsets, __transaction_state, "
        "__cluster_metadata and __share_group_state, and tools following its convention",
    ),
    ReservedTopicRule(
        "prefix",
        "_confluent",
        "Confluent Platform's topics, such as _confluent-metrics, _confluent-command, "
        "_confluent-license and _confluent-ksql-*",
    ),
    ReservedTopicRule("name", "_schemas", "Schema Registry's default schema store"),
    ReservedTopicRule("name", "connect-configs", "Kafka Connect's default config topic"),
    ReservedTopicRule("name", "connect-offsets", "Kafka Connect's default offset topic"),
    ReservedTopicRule("name", "connect-status", "Kafka Connect's default status topic"),
    ReservedTopicRule("name", "heartbeats", "MirrorMaker 2's heartbeats topic"),
    ReservedTopicRule(
        "suffix", ".heartbeats", "MirrorMaker 2's replicated heartbeats, such as us-west.heartbeats"
    ),
    ReservedTopicRule(
        "prefix",
        "mm2-",
        "MirrorMaker 2's topics, such as mm2-offset-syncs.<cluster>.internal and "
        "mm2-configs.<cluster>.internal",
    ),
    ReservedTopicRule(
        "suffix",
        ".internal",
        "MirrorMaker 2's internal topics, such as <cluster>.checkpoints.internal, which it "
        "never replicates",
    ),
    ReservedTopicRule(
        "suffix", "-changelog", "Kafka Streams' state store changelogs, <app>-<store>-changelog"
    ),
    ReservedTopicRule(
        "suffix", "-repartition", "Kafka Streams' repartition topics, <app>-<name>-repartition"
    ),
)
"""Topic names a session may never take, checked against the final name (prefix included).

Deleting or writing to these breaks the cluster or a tool on it: ``__consumer_offsets``
holds every consumer group's committed offsets. Covered: Kafka's internal topics (``__``),
Confluent Platform's (``_confluent``) and Schema Registry's (``_schemas``), Kafka Connect's
default internal topics, MirrorMaker 2's (``heartbeats``, ``.heartbeats``, ``mm2-``,
``.internal``), and Kafka Streams' internal suffixes. Deployments that rename their internal
topics are not covered: a ``topic_prefix`` of their own keeps sessions apart from them.

Keep every rule a prefix, suffix or whole name such that prefixes and whole names contain no
``_`` followed by ``[0-9A-F]`` and suffixes do not end in ``[0-9A-F]``: then an encoded id
escaped at both ends (``_XX...``, ``..._XX``) matches none of them, which is what keeps
``encode_session_ids=True`` from ever producing a reserved name (a unit test checks this).
"""


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


def check_topic_name(name: object, option: str) -> None:
    """Raise unless ``name`` is a legal topic name that no rule reserves.

    Raises:
        ConfigurationError: the message names the option and the rule broken.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"{option} must be a str, got {type(name).__name__}")
    why = validate_topic_name(name)
    if why is not None:
        raise ConfigurationError(
            f"{option} {name[:80]!r} is not a legal Kafka topic name because {why}; {_RULE}"
        )
    rule = reserved_topic_rule(name)
    if rule is not None:
        raise ConfigurationError(
            f"{option} {name!r} is reserved: {rule.describe()} belong to {rule.owner}"
        )


def reserved_topic_rule(name: str) -> ReservedTopicRule | None:
    """The first rule of :data:`RESERVED_TOPIC_RULES` that reserves ``name``, or None."""
    return next((rule for rule in RESERVED_TOPIC_RULES if rule.matches(name)), None)


def _encode(data: bytes, *, escape_ends: bool = False) -> str:
    last = len(data) - 1
    out: list[str] = []
    for i, byte in enumerate(data):
        keep = byte in _KEEP and not (escape_ends and i in (0, last))
        out.append(chr(byte) if keep else f"_{byte:02X}")
    return "".join(out)


def _decode(encoded: str) -> str | None:
    if not all(c == "_" or ord(c) in _KEEP for c in encoded):
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
    """How session ids map to topic names. Immutable, so thread-safe.

    Example::

        naming = TopicNaming(prefix="chat.")
        naming.topic_for("42")  # "chat.42"
        naming.session_for("chat.42")  # "42"

    Args:
        prefix: put before every session's topic name, e.g. ``"chat."``; must itself use only
            legal topic characters and not make names reserved. Lets a shared client list
            only its own sessions, and keeps them apart from internal topics.
        encode_session_ids: accept any non-empty session id and encode it injectively
            (see the module docstring) instead of requiring a legal topic name.

    Raises:
        ConfigurationError: the prefix is not made of legal topic characters, is too long, or
            starts a reserved name (``__``, ``_confluent``, ``mm2-``, or ``_`` alone).
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
        for rule in RESERVED_TOPIC_RULES:
            if rule.kind != "prefix" or not (self.prefix + "_").startswith(rule.text):
                continue
            why = (
                "every topic under it would start with"
                if self.prefix.startswith(rule.text)
                else "a session id starting with '_' would give a topic starting with"
            )
            raise ConfigurationError(
                f"topic prefix {self.prefix!r} is not allowed: {why} {rule.text!r}, and "
                f"{rule.describe()} are reserved for Kafka's internal topics ({rule.owner}); "
                "use a prefix such as 'chat.'"
            )

    def topic_for(self, session_id: str) -> str:
        """The topic holding ``session_id``'s messages.

        Raises:
            InvalidSessionIdError: the resulting name breaks Kafka's topic rule or is reserved
                (see :data:`RESERVED_TOPIC_RULES`); the message says which rule and how to
                fix it.
        """
        if not isinstance(session_id, str):
            raise InvalidSessionIdError(
                f"session id must be a str, got {type(session_id).__name__}"
            )
        if not session_id:
            raise InvalidSessionIdError("session id must not be empty")
        name = self._encoded(session_id) if self.encode_session_ids else self.prefix + session_id
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
        rule = reserved_topic_rule(name)
        if rule is not None:
            fix = (
                f"use another session id, one that does not end in {rule.text!r} "
                "(a topic_prefix does not help here)"
                if rule.kind == "suffix"
                else "use another session id, or a topic_prefix (such as 'chat.') that keeps "
                "session topics apart from internal ones"
            )
            raise InvalidSessionIdError(
                f"session id {session_id[:80]!r} cannot be used: the topic name "
                f"{name[:80]!r} is reserved for Kafka's internal topics ({rule.describe()}: "
                f"{rule.owner}); {fix}"
            )
        return name

    def session_for(self, topic: str) -> str | None:
        """The session id stored in ``topic``, or None when ``topic`` is not one of ours.

        None for every reserved name, every name outside the prefix, and (with
        ``encode_session_ids``) every name the encoder would not have written, so
        ``session_for(topic_for(x)) == x`` and no two topics give the same session.
        """
        if not topic.startswith(self.prefix):
            return None
        rest = topic[len(self.prefix) :]
        session_id = _decode(rest) if self.encode_session_ids else rest
        if not session_id:
            return None
        try:
            ours = self.topic_for(session_id) == topic
        except InvalidSessionIdError:
            return None
        return session_id if ours else None

    def _encoded(self, session_id: str) -> str:
        try:
            data = session_id.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidSessionIdError(
                f"session id {session_id[:80]!r} cannot be used: it holds a lone surrogate at "
                f"position {exc.start}, which has no UTF-8 form; pass properly decoded text"
            ) from exc
        name = self.prefix + _encode(data)
        if reserved_topic_rule(name) is not None:
            name = self.prefix + _encode(data, escape_ends=True)
        return name

"""Admin requests over :mod:`._wire`: topics, ACLs and SCRAM users, standard library only.

Each function opens one connection to the first broker of the endpoint that
answers (KRaft brokers forward these requests to the controller), sends one
request and checks every per-item error code.

| request                   | API key | version |
|---------------------------|---------|---------|
| CreateTopics              | 19      | 5       |
| DeleteTopics              | 20      | 4       |
| DescribeAcls              | 29      | 2       |
| CreateAcls                | 30      | 2       |
| AlterUserScramCredentials | 51      | 0       |
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._errors import KafkaAdminError
from ._wire import (
    SCRAM_MECHANISMS,
    Endpoint,
    ProtocolError,
    Reader,
    Writer,
    connect_any,
    salted_password,
)

__all__ = [
    "OPERATIONS",
    "RESOURCE_TYPES",
    "AclBinding",
    "create_acls",
    "create_topics",
    "delete_topics",
    "describe_acls",
    "upsert_scram_credential",
]

_CREATE_TOPICS = 19
_DELETE_TOPICS = 20
_DESCRIBE_ACLS = 29
_CREATE_ACLS = 30
_ALTER_USER_SCRAM_CREDENTIALS = 51

_UNKNOWN_TOPIC_OR_PARTITION = 3
_TOPIC_ALREADY_EXISTS = 36
_ANY = 1

#: ACL resource types by name, as Kafka numbers them.
RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
_PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
#: ACL operations by name, as Kafka numbers them.
OPERATIONS = {
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
_PERMISSIONS = {"DENY": 2, "ALLOW": 3}
# Kafka refuses fewer than 4096 SCRAM iterations.
_SCRAM_ITERATIONS = 4096


def _name_of(table: Mapping[str, int], code: int) -> str:
    return next((name for name, value in table.items() if value == code), str(code))


@dataclass(frozen=True)
class AclBinding:
    """One ACL: ``principal`` may do ``operation`` on resources matching the pattern.

    Names are Kafka's, upper case: ``resource_type`` TOPIC, GROUP, CLUSTER or
    TRANSACTIONAL_ID; ``pattern_type`` LITERAL or PREFIXED; ``operation`` one of
    :data:`OPERATIONS`; ``permission`` ALLOW or DENY.

    Raises:
        ValueError: an unknown name, or a principal without ``Type:`` (``User:alice``).
    """

    principal: str
    resource_type: str
    resource_name: str
    operation: str
    pattern_type: str = "LITERAL"
    permission: str = "ALLOW"
    host: str = "*"

    def __post_init__(self) -> None:
        for value, table, what in (
            (self.resource_type, RESOURCE_TYPES, "resource type"),
            (self.pattern_type, _PATTERN_TYPES, "pattern type"),
            (self.operation, OPERATIONS, "operation"),
            (self.permission, _PERMISSIONS, "permission"),
        ):
            if value not in table:
                raise ValueError(f"unknown ACL {what} {value!r}: use one of {', '.join(table)}")
        if ":" not in self.principal:
            raise ValueError(
                f"a principal is 'Type:name', e.g. 'User:alice'; got {self.principal!r}"
            )

    def _write(self, out: Writer) -> None:
        out.int8(RESOURCE_TYPES[self.resource_type]).compact_string(self.resource_name)
        out.int8(_PATTERN_TYPES[self.pattern_type]).compact_string(self.principal)
        out.compact_string(self.host).int8(OPERATIONS[self.operation])
        out.int8(_PERMISSIONS[self.permission]).tags()


def _fail(what: str, exc: Exception) -> KafkaAdminError:
    return KafkaAdminError(f"{what}: {exc}")


def _check(errors: Iterable[tuple[str, int, str | None]], what: str, ok: set[int]) -> None:
    failed = [(item, code, message) for item, code, message in errors if code not in ok]
    if failed:
        item, code, message = failed[0]
        raise KafkaAdminError(str(ProtocolError(f"{what} of {item!r}", code, message)))


def _call(endpoint: Endpoint, api_key: int, version: int, body: bytes, what: str) -> Reader:
    try:
        with connect_any(endpoint) as conn:
            return conn.request(api_key, version, body, flexible=True)
    except OSError as exc:
        raise _fail(f"{what} on {endpoint.bootstrap}", exc) from exc


def delete_topics(endpoint: Endpoint, topics: Sequence[str], timeout: float = 30.0) -> list[str]:
    """Delete ``topics``; return those that existed. Topics that do not exist are fine.

    Raises:
        KafkaAdminError: no broker answered, or a deletion was refused (not authorized,
            timed out, ...).
    """
    if not topics:
        return []
    body = Writer().compact_array(len(topics))
    for topic in topics:
        body.compact_string(topic)
    body.int32(int(timeout * 1000)).tags()
    reader = _call(endpoint, _DELETE_TOPICS, 4, body.build(), "deleting topics")
    try:
        reader.int32()  # throttle_time_ms
        results = []
        for _ in range(reader.compact_array()):
            name, code = reader.compact_string() or "", reader.int16()
            reader.skip_tags()
            results.append((name, code, None))
    except struct.error as exc:
        raise _fail("malformed DeleteTopics response", exc) from exc
    _check(results, "deleting topic", {0, _UNKNOWN_TOPIC_OR_PARTITION})
    return [name for name, code, _ in results if code == 0]


def create_topics(
    endpoint: Endpoint,
    topics: Sequence[str],
    *,
    partitions: int = 1,
    replication_factor: int = -1,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create ``topics`` (-1 means the broker's default); return those that were new.

    Raises:
        KafkaAdminError: no broker answered, or a creation was refused (other than
            the topic existing already).
    """
    if not topics:
        return []
    body = Writer().compact_array(len(topics))
    for topic in topics:
        body.compact_string(topic).int32(partitions).int16(replication_factor)
        body.compact_array(0)  # no manual assignments
        body.compact_array(len(configs or {}))
        for key, value in (configs or {}).items():
            body.compact_string(key).compact_string(value).tags()
        body.tags()
    body.int32(int(timeout * 1000)).int8(0).tags()  # validate_only=false
    reader = _call(endpoint, _CREATE_TOPICS, 5, body.build(), "creating topics")
    try:
        reader.int32()  # throttle_time_ms
        results = []
        for _ in range(reader.compact_array()):
            name, code, message = (
                reader.compact_string() or "",
                reader.int16(),
                reader.compact_string(),
            )
            reader.take(">ih")  # num_partitions, replication_factor
            for _ in range(reader.compact_array()):  # configs
                reader.compact_string()
                reader.compact_string()
                reader.take(">bbb")  # read_only, config_source, is_sensitive
                reader.skip_tags()
            reader.skip_tags()
            results.append((name, code, message))
    except struct.error as exc:
        raise _fail("malformed CreateTopics response", exc) from exc
    _check(results, "creating topic", {0, _TOPIC_ALREADY_EXISTS})
    return [name for name, code, _ in results if code == 0]


def create_acls(endpoint: Endpoint, bindings: Sequence[AclBinding]) -> None:
    """Add ``bindings`` (adding an existing ACL again is a no-op).

    Raises:
        KafkaAdminError: no broker answered, or the cluster refused (no authorizer, not
            authorized).
    """
    body = Writer().compact_array(len(bindings))
    for binding in bindings:
        binding._write(body)
    reader = _call(endpoint, _CREATE_ACLS, 2, body.tags().build(), "creating ACLs")
    try:
        reader.int32()  # throttle_time_ms
        results = []
        for binding, _ in zip(bindings, range(reader.compact_array()), strict=False):
            code, message = reader.int16(), reader.compact_string()
            reader.skip_tags()
            results.append((str(binding), code, message))
    except struct.error as exc:
        raise _fail("malformed CreateAcls response", exc) from exc
    _check(results, "creating ACL", {0})


def describe_acls(endpoint: Endpoint, principal: str | None = None) -> set[AclBinding]:
    """Return the ACLs this broker's authorizer holds (of ``principal``, or all).

    Raises:
        KafkaAdminError: no broker answered, or the request was refused.
    """
    body = Writer().int8(_ANY).compact_string(None).int8(_ANY).compact_string(principal)
    body.compact_string(None).int8(_ANY).int8(_ANY).tags()
    reader = _call(endpoint, _DESCRIBE_ACLS, 2, body.build(), "describing ACLs")
    found: set[AclBinding] = set()
    try:
        reader.int32()  # throttle_time_ms
        code, message = reader.int16(), reader.compact_string()
        _check([("ACLs", code, message)], "describing", {0})
        for _ in range(reader.compact_array()):
            resource_type, name, pattern = reader.int8(), reader.compact_string(), reader.int8()
            for _ in range(reader.compact_array()):
                who, host = reader.compact_string(), reader.compact_string()
                operation, permission = reader.int8(), reader.int8()
                reader.skip_tags()
                found.add(
                    AclBinding(
                        principal=who or "",
                        resource_type=_name_of(RESOURCE_TYPES, resource_type),
                        resource_name=name or "",
                        operation=_name_of(OPERATIONS, operation),
                        pattern_type=_name_of(_PATTERN_TYPES, pattern),
                        permission=_name_of(_PERMISSIONS, permission),
                        host=host or "*",
                    )
                )
            reader.skip_tags()
    except (struct.error, ValueError) as exc:
        raise _fail("malformed DescribeAcls response", exc) from exc
    return found


def upsert_scram_credential(
    endpoint: Endpoint,
    user: str,
    password: str,
    mechanism: str,
    iterations: int = _SCRAM_ITERATIONS,
) -> None:
    """Create or replace ``user``'s SCRAM credential for ``mechanism``.

    The salted password is computed here; the password itself is never sent.

    Raises:
        ValueError: ``mechanism`` is not SCRAM-SHA-256 or SCRAM-SHA-512.
        KafkaAdminError: no broker answered, or the cluster refused.
    """
    if mechanism not in SCRAM_MECHANISMS:
        raise ValueError(
            f"mechanism must be one of {', '.join(SCRAM_MECHANISMS)}, got {mechanism!r}"
        )
    salt = os.urandom(32)
    body = Writer().compact_array(0)  # no deletions
    body.compact_array(1).compact_string(user).int8(SCRAM_MECHANISMS[mechanism][1])
    body.int32(iterations).compact_bytes(salt)
    body.compact_bytes(salted_password(mechanism, password, salt, iterations)).tags()
    body.tags()
    what = f"adding SCRAM user {user!r}"
    reader = _call(endpoint, _ALTER_USER_SCRAM_CREDENTIALS, 0, body.build(), what)
    try:
        reader.int32()  # throttle_time_ms
        results = []
        for _ in range(reader.compact_array()):
            name, code, message = reader.compact_string(), reader.int16(), reader.compact_string()
            reader.skip_tags()
            results.append((name or user, code, message))
    except struct.error as exc:
        raise _fail("malformed AlterUserScramCredentials response", exc) from exc
    _check(results, f"{mechanism} credential", {0})

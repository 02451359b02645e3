"""The raw protocol client without a broker: encodings, SCRAM, framing, admin requests."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from kafkalocal import AclBinding, Endpoint, KafkaAdminError, Security
from kafkalocal._admin import delete_topics
from kafkalocal._wire import (
    KafkaConnection,
    ProtocolError,
    Reader,
    SaslError,
    ScramClient,
    Writer,
    split_bootstrap,
)

# -- encodings ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1])
def test_uvarint_round_trips(value: int) -> None:
    assert Reader(Writer().uvarint(value).build()).uvarint() == value


def test_uvarint_known_bytes() -> None:
    assert Writer().uvarint(300).build() == b"\xac\x02"


def test_compact_and_classic_fields_round_trip() -> None:
    data = (
        Writer()
        .compact_string("héllo")
        .compact_string(None)
        .compact_bytes(b"\x00\x01")
        .string("x")
        .string(None)
        .int8(-1)
        .int16(-2)
        .int32(-3)
        .compact_array(2)
        .tags()
        .build()
    )
    reader = Reader(data)
    assert reader.compact_string() == "héllo"
    assert reader.compact_string() is None
    assert reader.compact_bytes() == b"\x00\x01"
    assert reader.string() == "x"
    assert reader.string() is None
    assert (reader.int8(), reader.int16(), reader.int32()) == (-1, -2, -3)
    assert reader.compact_array() == 2
    reader.skip_tags()


def test_tagged_fields_are_skipped() -> None:
    data = Writer().uvarint(2).uvarint(0).uvarint(2).raw(b"ab").uvarint(5).uvarint(0).build()
    reader = Reader(data + b"\x07")
    reader.skip_tags()
    assert reader.int8() == 7


def test_a_short_response_is_an_error() -> None:
    with pytest.raises(struct.error):
        Reader(Writer().uvarint(10).build() + b"abc").compact_string()


def test_split_bootstrap() -> None:
    assert split_bootstrap("127.0.0.1:1, localhost:2,[::1]:3") == [
        ("127.0.0.1", 1),
        ("localhost", 2),
        ("::1", 3),
    ]
    with pytest.raises(ValueError, match="not host:port"):
        split_bootstrap("localhost")


# -- security settings ---------------------------------------------------------------


def test_security_hides_the_password_and_checks_names() -> None:
    security = Security("SASL_SSL", "SCRAM-SHA-256", "alice", "s3cret")
    assert "s3cret" not in repr(security)
    assert security.uses_tls and security.uses_sasl
    with pytest.raises(ValueError, match="security protocol must be one of"):
        Security("TLS")
    with pytest.raises(ValueError, match="SASL mechanism must be one of"):
        Security("SASL_PLAINTEXT", "PLAIN")


# -- SCRAM ------------------------------------------------------------------------------


def test_scram_sha_256_matches_rfc_7677() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = client.final(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(SaslError, match="signature does not match"):
        client.verify(b"v=AAAA")
    with pytest.raises(SaslError, match="invalid-proof"):
        client.verify(b"e=invalid-proof")


def test_scram_rejects_a_nonce_the_server_did_not_extend() -> None:
    client = ScramClient("SCRAM-SHA-512", "user", "pencil", nonce="abc")
    with pytest.raises(SaslError, match="malformed SCRAM server-first"):
        client.final(b"r=xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_scram_escapes_user_names() -> None:
    assert ScramClient("SCRAM-SHA-512", "a=b,c", "p", nonce="n").first() == b"n,,n=a=3Db=2Cc,r=n"


# -- framing against a fake broker ------------------------------------------------------


@contextmanager
def fake_broker(answer: Callable[[Reader], bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """Serve one connection: for each request, record it and send ``answer(request)``."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                (size,) = struct.unpack(">i", head)
                request = conn.recv(size, socket.MSG_WAITALL)
                seen.append(request)
                body = answer(Reader(request))
                conn.sendall(struct.pack(">i", len(body)) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        server.close()
        thread.join(5)


def _header(reader: Reader) -> tuple[int, int, int, str | None]:
    return reader.int16(), reader.int16(), reader.int32(), reader.string()


def test_flexible_requests_carry_header_v2_and_read_response_header_v1() -> None:
    def answer(request: Reader) -> bytes:
        _, _, correlation_id, _ = _header(request)
        return Writer().int32(correlation_id).tags().int16(42).build()

    with fake_broker(answer) as (port, seen), KafkaConnection("127.0.0.1", port) as conn:
        reply = conn.request(20, 4, b"BODY", flexible=True)
        assert reply.int16() == 42
    request = Reader(seen[0])
    assert _header(request) == (20, 4, 1, "kafkalocal")
    request.skip_tags()
    assert request.take(">4s") == (b"BODY",)  # type: ignore[comparison-overlap]


def test_a_wrong_correlation_id_is_an_error() -> None:
    with (
        fake_broker(lambda request: Writer().int32(99).build()) as (port, _),
        KafkaConnection("127.0.0.1", port) as conn,
        pytest.raises(ConnectionError, match="unexpected correlation id 99"),
    ):
        conn.request(3, 4, b"", flexible=False)


def test_delete_topics_accepts_missing_topics_and_reports_refusals() -> None:
    def answer(request: Reader) -> bytes:
        _, _, correlation_id, _ = _header(request)
        request.skip_tags()
        names = [request.compact_string() for _ in range(request.compact_array())]
        reply = Writer().int32(correlation_id).tags().int32(0).compact_array(len(names))
        codes = {"gone": 0, "never": 3, "theirs": 29}
        for name in names:
            reply.compact_string(name).int16(codes[name or ""]).tags()
        return reply.tags().build()

    with fake_broker(answer) as (port, _):
        assert delete_topics(Endpoint(f"127.0.0.1:{port}"), ["gone", "never"]) == ["gone"]
    with (
        fake_broker(answer) as (port, _),
        pytest.raises(KafkaAdminError, match=r"'theirs'.*TOPIC_AUTHORIZATION_FAILED"),
    ):
        delete_topics(Endpoint(f"127.0.0.1:{port}"), ["gone", "theirs"])


def test_admin_requests_to_nobody_fail_with_the_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    with pytest.raises(KafkaAdminError, match=f"127.0.0.1:{port}"):
        delete_topics(Endpoint(f"127.0.0.1:{port}"), ["t"])


def test_protocol_error_names_the_code() -> None:
    assert str(ProtocolError("CreateAcls", 54, "no authorizer")) == (
        "CreateAcls failed with SECURITY_DISABLED (54): no authorizer"
    )


def test_acl_bindings_check_their_names() -> None:
    AclBinding("User:a", "TOPIC", "t.", "READ", pattern_type="PREFIXED")
    with pytest.raises(ValueError, match="unknown ACL operation 'FLY'"):
        AclBinding("User:a", "TOPIC", "t.", "FLY")
    with pytest.raises(ValueError, match="'Type:name'"):
        AclBinding("alice", "TOPIC", "t.", "READ")

"""A minimal blocking Kafka protocol client: framing, encodings, TLS and SASL/SCRAM.

Standard library only (``socket``, ``ssl``, ``hashlib``, ``hmac``): enough for
kafkalocal's readiness probe and its few admin requests, not a general client.
Classic requests use request header v1 and response header v0; flexible ones
(KIP-482) request header v2 and response header v1. Every version used is one
that both Kafka 3.7 and 4.x serve (KIP-896 removed only older ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

__all__ = [
    "SCRAM_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "Endpoint",
    "KafkaConnection",
    "ProtocolError",
    "Reader",
    "SaslError",
    "ScramClient",
    "Security",
    "Writer",
    "connect_any",
    "error_name",
    "salted_password",
    "split_bootstrap",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SCRAM mechanism name -> (hashlib name, AlterUserScramCredentials mechanism id).
SCRAM_MECHANISMS = {"SCRAM-SHA-256": ("sha256", 1), "SCRAM-SHA-512": ("sha512", 2)}

_SASL_HANDSHAKE = 17
_SASL_AUTHENTICATE = 36
_MAX_RESPONSE = 64 * 1024 * 1024

_ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    7: "REQUEST_TIMED_OUT",
    17: "INVALID_TOPIC_EXCEPTION",
    29: "TOPIC_AUTHORIZATION_FAILED",
    30: "GROUP_AUTHORIZATION_FAILED",
    31: "CLUSTER_AUTHORIZATION_FAILED",
    33: "UNSUPPORTED_SASL_MECHANISM",
    34: "ILLEGAL_SASL_STATE",
    35: "UNSUPPORTED_VERSION",
    36: "TOPIC_ALREADY_EXISTS",
    37: "INVALID_PARTITIONS",
    38: "INVALID_REPLICATION_FACTOR",
    40: "INVALID_CONFIG",
    41: "NOT_CONTROLLER",
    42: "INVALID_REQUEST",
    44: "POLICY_VIOLATION",
    54: "SECURITY_DISABLED",
    58: "SASL_AUTHENTICATION_FAILED",
    73: "TOPIC_DELETION_DISABLED",
    89: "THROTTLING_QUOTA_EXCEEDED",
    91: "RESOURCE_NOT_FOUND",
    92: "DUPLICATE_RESOURCE",
    93: "UNACCEPTABLE_CREDENTIAL",
}


def error_name(code: int) -> str:
    """Return Kafka's name of error ``code`` (``ERROR_<n>`` for codes we do not name)."""
    return _ERROR_NAMES.get(code, f"ERROR_{code}")


class ProtocolError(Exception):
    """A response carried an error code (or could not be parsed).

    Attributes:
        code: Kafka's error code (0 when the response was malformed).
    """

    def __init__(self, what: str, code: int, message: str | None = None) -> None:
        detail = f": {message}" if message else ""
        super().__init__(f"{what} failed with {error_name(code)} ({code}){detail}")
        self.code = code


class SaslError(ConnectionError):
    """SASL authentication failed: unknown user, wrong password or mechanism."""


@dataclass(frozen=True)
class Security:
    """How to talk to a listener: its security protocol and, for SASL, SCRAM credentials.

    ``cafile`` is the PEM file of the CA that signed the broker's certificate; with
    ``server_hostname`` the certificate is checked against that name instead of
    the host connected to. The password never appears in ``repr``.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str | None = None
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"security protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.protocol!r}"
            )
        if self.protocol.startswith("SASL_") and self.mechanism not in SCRAM_MECHANISMS:
            raise ValueError(
                f"SASL mechanism must be one of {', '.join(SCRAM_MECHANISMS)}, "
                f"got {self.mechanism!r}"
            )

    @property
    def uses_tls(self) -> bool:
        """Return whether the listener speaks TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """Return whether the listener wants SASL authentication."""
        return self.protocol.startswith("SASL_")


@dataclass(frozen=True)
class Endpoint:
    """A cluster to send admin requests to: ``host:port[,host:port...]`` and how to connect."""

    bootstrap: str
    security: Security = field(default_factory=Security)


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """Parse ``host:port[,host:port...]``.

    Raises:
        ValueError: an entry is not ``host:port``.
    """
    addresses = []
    for entry in bootstrap.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"not host:port: {entry.strip()!r} in {bootstrap!r}")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


# -- encodings -----------------------------------------------------------------------


class Writer:
    """Builds a request body. Methods return the writer, so calls chain."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def raw(self, data: bytes) -> Writer:
        """Append bytes as they are."""
        self._buf += data
        return self

    def int8(self, value: int) -> Writer:
        """Append a signed 8-bit integer."""
        return self.raw(struct.pack(">b", value))

    def int16(self, value: int) -> Writer:
        """Append a signed 16-bit integer."""
        return self.raw(struct.pack(">h", value))

    def int32(self, value: int) -> Writer:
        """Append a signed 32-bit integer."""
        return self.raw(struct.pack(">i", value))

    def string(self, value: str | None) -> Writer:
        """Append a (nullable) classic string: int16 length, UTF-8."""
        if value is None:
            return self.int16(-1)
        data = value.encode()
        return self.int16(len(data)).raw(data)

    def bytes_(self, value: bytes) -> Writer:
        """Append classic bytes: int32 length."""
        return self.int32(len(value)).raw(value)

    def uvarint(self, value: int) -> Writer:
        """Append an unsigned varint."""
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                self._buf.append(byte | 0x80)
            else:
                self._buf.append(byte)
                return self

    def compact_string(self, value: str | None) -> Writer:
        """Append a (nullable) compact string: uvarint length + 1, UTF-8."""
        if value is None:
            return self.uvarint(0)
        data = value.encode()
        return self.uvarint(len(data) + 1).raw(data)

    def compact_bytes(self, value: bytes) -> Writer:
        """Append compact bytes."""
        return self.uvarint(len(value) + 1).raw(value)

    def compact_array(self, count: int) -> Writer:
        """Append the length of a compact array whose ``count`` items follow."""
        return self.uvarint(count + 1)

    def tags(self) -> Writer:
        """Append an empty tagged-field section."""
        return self.uvarint(0)

    def build(self) -> bytes:
        """Return the bytes written so far."""
        return bytes(self._buf)


class Reader:
    """Reads a response body front to back.

    Raises:
        struct.error: the response ended early.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        """Read fixed-size fields with a :mod:`struct` format."""
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def int8(self) -> int:
        """Read a signed 8-bit integer."""
        return self.take(">b")[0]

    def int16(self) -> int:
        """Read a signed 16-bit integer."""
        return self.take(">h")[0]

    def int32(self) -> int:
        """Read a signed 32-bit integer."""
        return self.take(">i")[0]

    def int64(self) -> int:
        """Read a signed 64-bit integer."""
        return self.take(">q")[0]

    def _slice(self, length: int) -> bytes:
        if length < 0 or self._pos + length > len(self._data):
            raise struct.error(f"need {length} bytes at {self._pos} of {len(self._data)}")
        data = self._data[self._pos : self._pos + length]
        self._pos += length
        return data

    def string(self) -> str | None:
        """Read a nullable classic string."""
        length = self.int16()
        return None if length < 0 else self._slice(length).decode()

    def bytes_(self) -> bytes | None:
        """Read nullable classic bytes."""
        length = self.int32()
        return None if length < 0 else self._slice(length)

    def uvarint(self) -> int:
        """Read an unsigned varint."""
        value = shift = 0
        while True:
            (byte,) = self.take(">B")
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise struct.error("varint too long")

    def compact_string(self) -> str | None:
        """Read a nullable compact string."""
        length = self.uvarint() - 1
        return None if length < 0 else self._slice(length).decode()

    def compact_bytes(self) -> bytes | None:
        """Read nullable compact bytes."""
        length = self.uvarint() - 1
        return None if length < 0 else self._slice(length)

    def compact_array(self) -> int:
        """Read the length of a compact array (0 for a null one)."""
        return max(0, self.uvarint() - 1)

    def skip_tags(self) -> None:
        """Skip a tagged-field section."""
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._slice(self.uvarint())


# -- SCRAM (RFC 5802 / 7677, as Kafka does it: no SASLprep) -------------------------------


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Return SCRAM's ``SaltedPassword := Hi(password, salt, i)`` for ``mechanism``."""
    algorithm, _ = SCRAM_MECHANISMS[mechanism]
    return hashlib.pbkdf2_hmac(algorithm, password.encode(), salt, iterations)


def _hmac(algorithm: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, algorithm).digest()


def _sasl_name(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: str) -> dict[str, str]:
    parts = (part.split("=", 1) for part in message.split(",") if "=" in part)
    return {key: value for key, value in parts}


class ScramClient:
    """The client side of one SCRAM exchange: :meth:`first`, :meth:`final`, :meth:`verify`."""

    def __init__(self, mechanism: str, username: str, password: str, nonce: str = "") -> None:
        self._algorithm = SCRAM_MECHANISMS[mechanism][0]
        self._mechanism = mechanism
        self._password = password
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={_sasl_name(username)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        """Return the client-first message."""
        return f"n,,{self._first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """Return the client-final message answering ``server_first``.

        Raises:
            SaslError: the server's message is malformed or does not extend our nonce.
        """
        text = server_first.decode()
        attrs = _attributes(text)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or not salt or not iterations.isdigit():
            raise SaslError(f"malformed SCRAM server-first message: {text!r}")
        salted = salted_password(
            self._mechanism, self._password, base64.b64decode(salt), int(iterations)
        )
        client_key = _hmac(self._algorithm, salted, b"Client Key")
        stored_key = hashlib.new(self._algorithm, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = _hmac(self._algorithm, stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = _hmac(self._algorithm, salted, b"Server Key")
        self._server_signature = _hmac(self._algorithm, server_key, auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        """Check the server's signature.

        Raises:
            SaslError: the server reported an error or proved no knowledge of the password.
        """
        attrs = _attributes(server_final.decode())
        if "e" in attrs:
            raise SaslError(f"SCRAM authentication failed: {attrs['e']}")
        if base64.b64decode(attrs.get("v", "")) != self._server_signature:
            raise SaslError("SCRAM server signature does not match: not the expected broker")


# -- connections -------------------------------------------------------------------------


class KafkaConnection:
    """One blocking connection to one broker, authenticated as ``security`` says. Not thread-safe.

    Example:
        >>> with KafkaConnection("127.0.0.1", 9092) as conn:  # doctest: +SKIP
        ...     body = conn.request(3, 4, b"...", flexible=False)

    Raises:
        OSError: not reachable, TLS failed, closed or timed out (:class:`SaslError` when
            authentication failed).
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: Security | None = None,
        *,
        timeout: float = 10.0,
        client_id: str = "kafkalocal",
    ) -> None:
        self.host = host
        self.port = port
        self.security = security or Security()
        self._timeout = timeout
        self._client_id = client_id
        self._sock: socket.socket | None = None
        self._correlation_id = 0

    def __enter__(self) -> KafkaConnection:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect, start TLS and authenticate, as the security settings say."""
        sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
        try:
            if self.security.uses_tls:
                context = ssl.create_default_context(cafile=self.security.cafile)
                sock = context.wrap_socket(
                    sock, server_hostname=self.security.server_hostname or self.host
                )
            self._sock = sock
            if self.security.uses_sasl:
                self._authenticate()
        except BaseException:
            sock.close()
            self._sock = None
            raise

    def close(self) -> None:
        """Close the connection. Idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _read_exactly(self, size: int) -> bytes:
        assert self._sock is not None
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise ConnectionError(f"{self.host}:{self.port} closed the connection")
            chunks += chunk
        return bytes(chunks)

    def request(self, api_key: int, version: int, body: bytes, *, flexible: bool) -> Reader:
        """Send one request and return a reader positioned after the response header.

        Raises:
            OSError: the connection failed or closed; ``ConnectionError`` for a response
                that does not belong to this request.
        """
        if self._sock is None:
            raise ConnectionError("the connection is not open")
        self._correlation_id += 1
        header = Writer().int16(api_key).int16(version).int32(self._correlation_id)
        header.string(self._client_id)
        if flexible:
            header.tags()
        payload = header.build() + body
        self._sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._read_exactly(4))
        if not 4 <= size <= _MAX_RESPONSE:
            raise ConnectionError(f"implausible response size {size} from {self.host}")
        reader = Reader(self._read_exactly(size))
        try:
            got = reader.int32()
            if flexible:
                reader.skip_tags()
        except struct.error as exc:
            raise ConnectionError(f"malformed response header: {exc}") from exc
        if got != self._correlation_id:
            raise ConnectionError(f"unexpected correlation id {got}")
        return reader

    def _authenticate(self) -> None:
        mechanism = self.security.mechanism
        reader = self.request(
            _SASL_HANDSHAKE, 1, Writer().string(mechanism).build(), flexible=False
        )
        code = reader.int16()
        if code:
            offered = [reader.string() for _ in range(max(0, reader.int32()))]
            raise SaslError(
                f"the listener at {self.host}:{self.port} refused SASL mechanism {mechanism} "
                f"({error_name(code)}); it offers {offered}"
            )
        scram = ScramClient(mechanism, self.security.username, self.security.password)
        server_first = self._sasl_step(scram.first())
        scram.verify(self._sasl_step(scram.final(server_first)))

    def _sasl_step(self, token: bytes) -> bytes:
        body = Writer().compact_bytes(token).tags().build()
        reader = self.request(_SASL_AUTHENTICATE, 2, body, flexible=True)
        code = reader.int16()
        message = reader.compact_string()
        answer = reader.compact_bytes() or b""
        if code:
            raise SaslError(
                f"SASL {self.security.mechanism} authentication as "
                f"{self.security.username!r} failed: {message or error_name(code)}"
            )
        return answer


@contextmanager
def connect_any(endpoint: Endpoint, *, timeout: float = 10.0) -> Iterator[KafkaConnection]:
    """Yield an open connection to the first broker of ``endpoint`` that answers.

    Raises:
        OSError: none answered (the last error), or authentication failed (:class:`SaslError`,
            not retried on other brokers).
    """
    last: OSError | None = None
    for host, port in split_bootstrap(endpoint.bootstrap):
        conn = KafkaConnection(host, port, endpoint.security, timeout=timeout)
        try:
            conn.open()
        except SaslError:
            raise
        except OSError as exc:
            last = exc
            continue
        try:
            yield conn
        finally:
            conn.close()
        return
    assert last is not None
    raise last

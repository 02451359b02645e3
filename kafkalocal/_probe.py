"""Ask one broker which brokers it knows, with a raw Kafka Metadata v4 request.

Blocking sockets, no client library, no event loop: a cheap readiness probe.
Metadata v4 is the oldest version that Kafka 4.x still serves (KIP-896) and
every KRaft release serves it. Only alive (unfenced) brokers are listed.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["metadata_brokers"]

_METADATA = 3
_VERSION = 4
_CLIENT_ID = b"kafkalocal-probe"


def _request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", _METADATA, _VERSION, correlation_id, len(_CLIENT_ID))
    body = struct.pack(">ib", 0, 0)  # no topics, allow_auto_topic_creation=false
    payload = header + _CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def skip_string(self) -> None:
        (length,) = self.take(">h")
        self._pos += max(0, length)


def _parse(response: bytes, correlation_id: int) -> set[int]:
    reader = _Reader(response)
    (got_id,) = reader.take(">i")
    if got_id != correlation_id:
        raise ConnectionError(f"unexpected correlation id {got_id}")
    reader.take(">i")  # throttle_time_ms
    (count,) = reader.take(">i")
    brokers = set()
    for _ in range(max(0, count)):
        (node_id,) = reader.take(">i")
        reader.skip_string()  # host
        reader.take(">i")  # port
        reader.skip_string()  # rack (nullable)
        brokers.add(node_id)
    return brokers


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> set[int]:
    """Return the node ids of the alive brokers that the broker at ``host:port`` knows.

    Raises:
        OSError: not reachable, closed the connection, or timed out.
    """
    correlation_id = 1
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_request(correlation_id))
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        try:
            return _parse(_read_exactly(sock, size), correlation_id)
        except struct.error as exc:
            raise ConnectionError(f"malformed Metadata response: {exc}") from exc

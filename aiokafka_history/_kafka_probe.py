"""Why a connection failed: one connection made the way aiokafka makes it.

aiokafka's bootstrap logs why each server refused and raises only "Unable to bootstrap". When
that happens this probe connects once more to the first bootstrap server with the same
settings and returns the real error (refused, TLS, SASL, a closed connection), so the client
can say what to fix. Part of the aiokafka boundary; used only after a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.conn import AIOKafkaConnection, collect_hosts
from aiokafka.protocol.metadata import MetadataRequest

from ._kafka_internals import connection_made

__all__ = ["probe_connection"]

_CLOSE_WAIT = 1.0  # seconds to wait for the probe's connection to be released

_CONNECTION_KEYS = (
    "client_id",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
)


async def probe_connection(
    client_kwargs: Mapping[str, Any], timeout: float
) -> BaseException | None:
    """Connect to the first bootstrap server and ask for metadata; the error, or None."""
    hosts = collect_hosts(client_kwargs["bootstrap_servers"], randomize=False)
    if not hosts:
        return None
    host, port, _family = hosts[0]
    options = {k: client_kwargs[k] for k in _CONNECTION_KEYS if k in client_kwargs}
    conn: Any = AIOKafkaConnection(host, port, request_timeout_ms=int(timeout * 1000), **options)
    try:
        await asyncio.wait_for(conn.connect(), timeout)
        await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
    except Exception as exc:
        return exc
    finally:
        # Wait (briefly) until the socket is released: a TLS connection closes only after its
        # close_notify exchange, and one still closing when the caller's loop ends is leaked.
        closed = conn.close()
        if closed is not None and connection_made(conn):
            await asyncio.wait([closed], timeout=_CLOSE_WAIT)
    return None

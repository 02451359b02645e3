"""Free TCP ports on 127.0.0.1 for broker and controller listeners.

Ports are picked below the kernel's ephemeral range when it is known (Linux),
so a client's outgoing connection can't take the port of a node that is down
for a restart. A port is only handed out if it could be bound just now; a race
with another process is still possible and is retried by the cluster.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["HOST", "ephemeral_range", "free_ports"]

HOST = "127.0.0.1"
_LOWEST = 10000
_TRIES_PER_PORT = 50


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range | None:
    """Return the kernel's ephemeral port range, or None when unknown."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def _bind(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def free_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """Return ``count`` distinct ports that were bindable on 127.0.0.1 a moment ago.

    Raises:
        OSError: no free port was found.
    """
    rng = rng or random.Random()
    ephemeral = ephemeral_range()
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = None
            if ephemeral is not None and ephemeral.start - _LOWEST > 10 * count:
                for _ in range(_TRIES_PER_PORT):
                    sock = _bind(rng.randrange(_LOWEST, ephemeral.start))
                    if sock is not None:
                        break
            if sock is None:
                sock = _bind(0)  # let the kernel choose
            if sock is None:
                raise OSError(f"no free TCP port on {HOST}")
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()

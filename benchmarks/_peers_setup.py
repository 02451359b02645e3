"""Throw-away local peers: a PostgreSQL 15 instance and a redis-server, each in a temp dir.

Both listen on a free loopback port, keep their files in a temporary directory and are
stopped, and the directory removed, when the ``with`` block ends (also on an error or
Ctrl-C). PostgreSQL runs with its defaults (``fsync=on``, ``synchronous_commit=on``): every
acknowledged commit is on disk. Redis runs with its defaults too (RDB snapshots only, no
append-only file): an acknowledged write lives in memory until the next snapshot.

A peer that cannot be started raises :class:`PeerUnavailable` with the reason; the groups
print it and go on without that peer.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["PeerUnavailable", "local_postgres", "local_redis"]

PG_BIN = Path("/usr/local/bin")  # initdb, pg_ctl, postgres (PostgreSQL 15 in the machine image)
PG_USER = "bench"
_START_TIMEOUT = 30.0


class PeerUnavailable(RuntimeError):
    """A peer could not be started here (the message says why)."""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, alive: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise PeerUnavailable(f"{what} exited during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise PeerUnavailable(f"{what} did not listen on 127.0.0.1:{port} within {_START_TIMEOUT} s")


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_runner() -> tuple[Callable[[], None] | None, int | None]:
    """How to run the PostgreSQL binaries: as ourselves, or (as root) as the postgres user.

    PostgreSQL refuses to run as root; as root, the server runs as the ``postgres`` system
    user and the data directory is handed to it.
    """
    if os.geteuid() != 0:
        return None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise PeerUnavailable(
            "running as root and there is no 'postgres' user to run PostgreSQL as"
        ) from None
    uid, gid = user.pw_uid, user.pw_gid

    def demote() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return demote, uid


@contextlib.contextmanager
def local_postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port; yields its psycopg conninfo.

    Raises:
        PeerUnavailable: no PostgreSQL binaries, or it would not start.
    """
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not (initdb.exists() and pg_ctl.exists()):
        raise PeerUnavailable(f"no PostgreSQL binaries in {PG_BIN} (initdb, pg_ctl)")
    demote, uid = _pg_runner()
    workdir = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    data = workdir / "data"
    port = free_port()
    started = False
    log = workdir / "log"
    try:
        if uid is not None:
            os.chown(workdir, uid, -1)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        run = subprocess.run(
            [str(initdb), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            preexec_fn=demote,
            env=env,
            check=False,
        )
        if run.returncode != 0:
            raise PeerUnavailable(f"initdb failed: {run.stderr.strip()[-500:]}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={workdir} "
            "-c fsync=on -c synchronous_commit=on -c max_connections=300"
        )
        run = subprocess.run(
            [str(pg_ctl), "start", "-D", str(data), "-l", str(log), "-o", options, "-w"],
            capture_output=True,
            text=True,
            preexec_fn=demote,
            env=env,
            check=False,
        )
        if run.returncode != 0:
            tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise PeerUnavailable(f"pg_ctl start failed: {run.stderr.strip()} {tail}")
        started = True
        _say(f"    PostgreSQL started on 127.0.0.1:{port} ({data}, fsync on)")
        yield f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres"
    finally:
        if started:
            stop = subprocess.run(
                [str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                text=True,
                preexec_fn=demote,
                check=False,
            )
            if stop.returncode != 0:
                _say(f"    pg_ctl stop failed: {stop.stderr.strip()}")
            else:
                _say("    PostgreSQL stopped")
        shutil.rmtree(workdir, ignore_errors=True)


# -- Redis ---------------------------------------------------------------------------------


def _redis_server() -> str:
    """The redis-server binary; installed with apt-get (Debian's package) when root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise PeerUnavailable(
            "redis-server is not on PATH (install Debian's redis-server package; the "
            "benchmark installs it itself only when it runs as root)"
        )
    _say("    redis-server not found: apt-get install -y redis-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)

    done = apt("install", "-y", "--no-install-recommends", "redis-server")
    if done.returncode != 0:  # an empty or stale package list: refresh it once
        apt("update")
        done = apt("install", "-y", "--no-install-recommends", "redis-server")
    found = shutil.which("redis-server")
    if done.returncode != 0 or not found:
        raise PeerUnavailable(f"apt-get install redis-server failed: {done.stderr.strip()[-300:]}")
    return found


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """A redis-server (its defaults) on a free loopback port; yields its ``redis://`` URL.

    Raises:
        PeerUnavailable: no redis-server and it cannot be installed, or it would not start.
    """
    binary = _redis_server()
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        with (workdir / "log").open("wb") as log:
            process = subprocess.Popen(
                [binary, *args, "--daemonize", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        running = process
        _wait_for_port(port, lambda: running.poll() is None, "redis-server")
        _say(f"    redis-server started on 127.0.0.1:{port} ({workdir}, defaults: no AOF)")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
                _say("    redis-server stopped")
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)

"""Command line: ``python -m kafkalocal resolve | run [--nodes N] | exec -- CMD [ARG...]``.

``resolve``  fetch the broker jars into the cache (once) and print where they are.
``run``      start a cluster in the foreground, print ``KAFKA_BOOTSTRAP_SERVERS=...``,
             stop it cleanly on Ctrl-C or SIGTERM.
``exec``     start one node unless ``$KAFKA_BOOTSTRAP_SERVERS`` is set, run CMD with
             it exported, stop the node, exit with CMD's exit code.

Timings go to stderr; failures print the log tail and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from ._cluster import BOOTSTRAP_ENV, KafkaCluster, broker_from_env
from ._errors import KafkaStartError
from ._maven import resolve_kafka
from ._versions import VERSION_ENV, kafka_version


def _say(message: str) -> None:
    print(f"kafkalocal: {message}", file=sys.stderr, flush=True)


class _Terminated(Exception):
    """SIGTERM or SIGHUP arrived."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


def _resolve(version: str | None) -> int:
    began = time.monotonic()
    home = resolve_kafka(version)
    jars = list((home / "libs").glob("*.jar"))
    jar_bytes = sum(jar.stat().st_size for jar in jars)
    all_bytes = sum(path.stat().st_size for path in home.rglob("*") if path.is_file())
    _say(f"resolved in {time.monotonic() - began:.1f} s")
    print(home)
    print(f"{len(jars)} jars, {jar_bytes / 1e6:.1f} MB; {all_bytes / 1e6:.1f} MB in all")
    return 0


def _run(nodes: int, version: str | None) -> int:
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    cluster = KafkaCluster(nodes=nodes, version=version)
    _say(f"starting {nodes} node(s) of Kafka {cluster.version} ...")
    try:
        cluster.start()
        _say(f"started {nodes} node(s) in {cluster.start_seconds:.1f} s; Ctrl-C stops")
        print(f"{BOOTSTRAP_ENV}={cluster.bootstrap_servers}", flush=True)
        while True:
            for i in range(nodes):
                if not cluster.is_running(i):
                    _say(f"node {i} exited unexpectedly:\n{cluster.log_tail(i)}")
                    return 1
            time.sleep(1.0)
    except (KeyboardInterrupt, _Terminated):
        _say("stopping ...")
        return 0
    finally:
        began = time.monotonic()
        cluster.stop()
        _say(f"stopped in {time.monotonic() - began:.1f} s")


def _exec(command: Sequence[str], version: str | None) -> int:
    if not command:
        _say("exec needs a command: python -m kafkalocal exec -- CMD [ARG...]")
        return 2
    signal.signal(signal.SIGTERM, _raise_terminated)
    began = time.monotonic()
    try:
        with broker_from_env(version) as bootstrap:
            if os.environ.get(BOOTSTRAP_ENV, "").strip():
                _say(f"using {BOOTSTRAP_ENV}={bootstrap}")
            else:
                _say(f"started Kafka {kafka_version(version)} in {time.monotonic() - began:.1f} s")
            env = {**os.environ, BOOTSTRAP_ENV: bootstrap}
            child = subprocess.Popen(list(command), env=env)
            # Like a shell: the terminal's Ctrl-C reaches the child itself.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                code = _wait_forwarding_sigterm(child)
            finally:
                signal.signal(signal.SIGINT, previous)
    except (KeyboardInterrupt, _Terminated):
        return 130
    return code if code >= 0 else 128 - code


def _wait_forwarding_sigterm(child: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            return child.wait()
        except _Terminated:
            child.terminate()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m kafkalocal",
        description="Run Apache Kafka (KRaft) locally without Docker.",
    )
    parser.add_argument(
        "--kafka-version",
        metavar="X.Y.Z",
        help=f"Kafka release (default: ${VERSION_ENV} or the pinned one)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("resolve", help="fetch the broker jars into the cache, print where")
    run = commands.add_parser("run", help="run a cluster in the foreground until Ctrl-C")
    run.add_argument("--nodes", type=int, default=1, choices=(1, 3), help="1 (default) or 3")
    run_cmd = commands.add_parser("exec", help="run CMD with KAFKA_BOOTSTRAP_SERVERS set")
    run_cmd.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    args = parser.parse_args(argv)
    try:
        if args.command == "resolve":
            return _resolve(args.kafka_version)
        if args.command == "run":
            return _run(args.nodes, args.kafka_version)
        command = list(args.cmd)
        if command[:1] == ["--"]:
            command = command[1:]
        return _exec(command, args.kafka_version)
    except KafkaStartError as exc:
        _say(f"error: {exc}")
        return 1
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

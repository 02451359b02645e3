"""Developer tasks: `python3 -m nox` runs lint, typecheck and tests (what CI runs).

Every session installs what it needs into its own virtualenv; Kafka comes from Maven
Central through `kafkalocal` (Java 17 and Maven required, no Docker).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


def _install(session: nox.Session) -> None:
    session.install("--quiet", "--editable", ".[dev]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit and integration tests; starts its own Kafka unless KAFKA_BOOTSTRAP_SERVERS is set."""
    _install(session)
    session.run("python", "-m", "kafkalocal", "resolve")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The langchain_community Kafka page's walk-through, run with this library."""
    _install(session)
    session.run(
        "python", "-m", "kafkalocal", "exec", "--", "python", "examples/seed_walkthrough.py"
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("--quiet", "ruff==0.17.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on kafkalocal."""
    _install(session)
    session.run("mypy", "--strict", "aiokafka_history", "kafkalocal")


@nox.session(python=PYTHON)
def kafka(session: nox.Session) -> None:
    """A local Kafka in the foreground (`-- --nodes 3` for a cluster); Ctrl-C stops it."""
    _install(session)
    session.run("python", "-m", "kafkalocal", "run", *session.posargs)


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Latency, throughput and memory figures, as ratios against a baseline of the same run."""
    _install(session)
    session.run("python", "-m", "kafkalocal", "exec", "--", "python", "-m", "benchmarks")

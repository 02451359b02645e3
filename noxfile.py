"""Developer tasks: `python3 -m nox` runs lint, typecheck and tests (what CI runs).

Every session installs what it needs into its own virtualenv; Kafka comes from Maven
Central through `kafkalocal` (`tools/kafkalocal`, its own distribution and pytest plugin;
Java 17, Maven and openssl required, no Docker).
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "tests_oldest"]
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
KAFKALOCAL = "./tools/kafkalocal"  # its own distribution: the local Kafka and the pytest plugin


def _oldest_python() -> str:
    """Python 3.10, the oldest supported: where pyenv keeps it, or on PATH."""
    # pyenv's shim for python3.10 is on PATH even when 3.10 is not selected: look past it.
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    return found[-1] if found else "3.10"


def _install(session: nox.Session) -> None:
    session.install("--quiet", "--editable", ".[dev]", "--editable", KAFKALOCAL)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit and integration tests; starts its own Kafka unless KAFKA_BOOTSTRAP_SERVERS is set."""
    _install(session)
    session.run("python", "-m", "kafkalocal", "resolve")
    session.run("pytest", *session.posargs)


@nox.session(python=_oldest_python())
def tests_oldest(session: nox.Session) -> None:
    """The tests on Python 3.10 with only the runtime dependencies (+ pytest, kafkalocal)."""
    session.install(
        "--quiet",
        "--editable",
        ".",
        "--editable",
        KAFKALOCAL,
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
    )
    session.run("python", "-m", "kafkalocal", "resolve")
    session.run(
        "pytest",
        # These need the dev-only peers (langchain_community, FastAPI), which need 3.11.
        "--ignore=tests/integration/test_interop_langchain_community.py",
        "--ignore=tests/integration/test_fastapi_app.py",
        "--ignore=tests/unit/test_properties.py",  # hypothesis is a dev-only tool
        # The Kafka-defaults broker round runs on 3.11 (the tests session).
        "-k",
        "not kafka-defaults",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The langchain_community Kafka page's walk-through, run with this library."""
    _install(session)
    session.run(
        "python", "-m", "kafkalocal", "exec", "--", "python", "examples/seed_walkthrough.py"
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the layers contract (import-linter)."""
    session.install("--quiet", "ruff==0.17.5", "import-linter==2.17")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # Data flows one way (pyproject.toml [tool.importlinter]); reads the source, imports nothing.
    session.run("lint-imports", env={"PYTHONPATH": "."})


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on kafkalocal."""
    _install(session)
    session.run("mypy", "--strict", "aiokafka_history", "tools/kafkalocal/src/kafkalocal")


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

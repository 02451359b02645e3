"""Developer tasks: `python3 -m nox` runs lint, typecheck, tests, docs and package (CI).

Every session installs what it needs into its own virtualenv; Kafka comes from Maven
Central through `kafkalocal` (`tools/kafkalocal`, its own distribution and pytest plugin;
Java 17, Maven and openssl required, no Docker).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "tests_oldest", "docs", "package"]
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
KAFKALOCAL = "./tools/kafkalocal"  # its own distribution: the local Kafka and the pytest plugin
# Development tools are PEP 735 dependency groups of pyproject.toml (dev, docs, package).
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _oldest_python() -> str:
    """Python 3.10, the oldest supported: where pyenv keeps it, or on PATH."""
    # pyenv's shim for python3.10 is on PATH even when 3.10 is not selected: look past it.
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    return found[-1] if found else "3.10"


def _install(session: nox.Session) -> None:
    session.install(
        "--quiet",
        "--editable",
        ".",
        "--editable",
        KAFKALOCAL,
        *nox.project.dependency_groups(PYPROJECT, "dev"),
    )


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
        # The docs' samples and the examples use LangGraph and FastAPI (dev-only).
        "--ignore=tests/integration/test_docs_samples.py",
        "--ignore=tests/integration/test_examples.py",
        # The LangGraph savers: the langgraph extra and LangGraph's suite (dev-only).
        "--ignore=tests/integration/test_langgraph_conformance.py",
        "--ignore=tests/integration/test_langgraph_saver.py",
        "--ignore=tests/integration/test_langgraph_graph.py",
        "--ignore=tests/unit/test_langgraph_api.py",
        # The Kafka-defaults broker round, and the shared-topic round of the layout-parametrised
        # tests, run on 3.11 (the tests session); 3.10 runs the shared layout through
        # test_shared_layout.py and the unit tests (keeps CI well under 30 minutes).
        "-k",
        # ... and moving a session into a LangGraph thread needs the langgraph extra.
        "not kafka-defaults and not shared-topic and not move_to_thread_moves",
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
    """Latency, throughput and memory figures, as ratios against a baseline of the same run.

    The peers (langchain-postgres on a throw-away PostgreSQL, Redis) come from the `bench`
    group; `-- --quick`, `-- --only peers`, `-- --json PATH --plot PATH` pass through.
    """
    _install(session)
    session.install("--quiet", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run(
        "python", "-m", "kafkalocal", "exec", "--", "python", "-m", "benchmarks", *session.posargs
    )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml): `mkdocs build --strict` into site/.

    Offline apart from the installs: no web fonts, no remote inventories. The API reference is
    read from the source by griffe, so the package itself is not installed.
    """
    session.install("--quiet", *nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


# What the sdist holds at its top level, and files it must hold (see pyproject.toml).
SDIST_TOP = {
    "aiokafka_history",
    "tests",
    "examples",
    "tools",
    "docs",
    "mkdocs.yml",
    "compose.yaml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",  # hatchling always ships the VCS ignore file
}
SDIST_NEEDS = (
    "LICENSE",
    "CHANGELOG.md",
    "README.md",
    "aiokafka_history/__init__.py",
    "aiokafka_history/py.typed",
    "tests/conftest.py",
    "docs/index.md",
    "mkdocs.yml",
    "tools/kafkalocal/pyproject.toml",
)
STRAY = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.hypothesis|\.nox|site)(/|$)|\.pyc$")


def _version() -> str:
    text = Path("aiokafka_history/__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert found, "no __version__ in aiokafka_history/__init__.py"
    return found[1]


def _check_sdist(session: nox.Session, sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    top = {name.split("/", 1)[0] for name in names}
    unexpected, missing = sorted(top - SDIST_TOP), sorted(set(SDIST_NEEDS) - set(names))
    if unexpected or missing:
        session.error(f"sdist: unexpected {unexpected}, missing {missing}")
    stray = [name for name in names if STRAY.search(name)]
    if stray:
        session.error(f"sdist: stray files {stray[:10]}")
    counts = {
        part: sum(n.startswith(part + "/") or n == part for n in names) for part in sorted(top)
    }
    session.log(f"sdist: {len(names)} files: {counts}")


def _check_wheel(session: nox.Session, wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    info = f"aiokafka_history-{version}.dist-info/"
    outside = [n for n in names if not n.startswith(("aiokafka_history/", info))]
    if outside or f"{info}licenses/LICENSE" not in names:
        session.error(f"wheel: files outside the package {outside}, or no LICENSE")
    session.log(f"wheel: {len(names)} files, the package and its metadata only")


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """Build sdist and wheel; twine check --strict; check both listings; install each in a
    fresh virtual environment with the runtime dependencies only, and import it there."""
    session.install("--quiet", *nox.project.dependency_groups(PYPROJECT, "package"))
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist), ".")
    version = _version()
    sdist = dist / f"aiokafka_history-{version}.tar.gz"
    wheel = dist / f"aiokafka_history-{version}-py3-none-any.whl"
    if sorted(dist.iterdir()) != sorted([sdist, wheel]):
        session.error(f"expected {sdist.name} and {wheel.name}, got {sorted(dist.iterdir())}")
    session.run("twine", "check", "--strict", str(sdist), str(wheel))
    _check_sdist(session, sdist)
    _check_wheel(session, wheel, version)
    check = (
        "import importlib.metadata as md, pathlib, aiokafka_history as m; "
        f"assert m.__version__ == md.version('aiokafka-history') == {version!r}; "
        "assert all(hasattr(m, name) for name in m.__all__); "
        "assert (pathlib.Path(m.__file__).parent / 'py.typed').exists(); "
        "assert 'site-packages' in m.__file__, m.__file__; "
        "print('imported', m.__version__, 'from', m.__file__)"
    )
    for kind, artifact in (("wheel", wheel), ("sdist", sdist)):
        venv = tmp / f"venv-{kind}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        session.run(python, "-m", "pip", "install", "--quiet", str(artifact), external=True)
        session.run(python, "-m", "pip", "check", external=True)
        # -I: isolated, so the checkout (the working directory) cannot shadow the install.
        session.run(python, "-I", "-c", check, external=True)


@nox.session(python=PYTHON)
def shared_scale(session: nox.Session) -> None:
    """One shared topic at 100k / 1M / 10M messages vs a topic per session (`-- --quick`).

    Starts its own 3-node and 1-node Kafka; about an hour on 2 cores. Writes the table to
    stdout and JSON + PNG to build/shared-scale/ (later `--json` / `--plot` posargs win).
    """
    _install(session)
    session.install("--quiet", "matplotlib==3.11.2")
    session.run("python", "-m", "kafkalocal", "resolve")
    out = "build/shared-scale"
    os.makedirs(out, exist_ok=True)
    session.run(
        "python",
        "-m",
        "benchmarks.shared_scale",
        "--json",
        f"{out}/shared-scale.json",
        "--plot",
        f"{out}/shared-scale.png",
        *session.posargs,
    )

"""Resolve the broker jars of one Kafka release from Maven Central into a user cache.

Layout of the cache (``$KAFKALOCAL_CACHE_DIR``, default ``~/.cache/kafkalocal``, or
``$XDG_CACHE_HOME/kafkalocal``)::

    <root>/<version>/pom.xml         the generated pom that was resolved
    <root>/<version>/libs/*.jar      kafka_2.13, its runtime dependencies, a logging backend
    <root>/<version>/resolved.json   marker, written last: the jar names that must be present
    <root>/.<version>.lock           flock held while one process resolves

A resolve runs in a private temporary directory that is renamed into place only
after Maven succeeded and the marker was written, so an interrupted resolve is
redone and readers never see half a cache. Concurrent resolves of one version
serialise on the lock; the loser finds the cache complete and skips Maven.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import KafkaStartError
from ._logs import tail
from ._process import child_preexec
from ._versions import kafka_version, uses_log4j1

__all__ = ["CACHE_ENV", "cache_root", "classpath", "render_pom", "resolve_kafka"]

#: Environment variable that moves the cache root.
CACHE_ENV = "KAFKALOCAL_CACHE_DIR"

_MARKER = "resolved.json"
_DEPENDENCY_PLUGIN = "3.8.1"
_SLF4J2 = "2.0.17"
_LOG4J2 = "2.24.3"
_SLF4J1 = "1.7.36"
_RELOAD4J = "1.2.25"
_MVN_TIMEOUT_S = 900


def cache_root() -> Path:
    """Return the cache root: ``$KAFKALOCAL_CACHE_DIR``, else ``~/.cache/kafkalocal``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when it is set.
    """
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "kafkalocal"


def classpath(kafka_home: Path) -> str:
    """Return the JVM ``-cp`` value for a directory returned by :func:`resolve_kafka`."""
    return str(kafka_home / "libs" / "*")


def _dependency(group: str, artifact: str, version: str) -> str:
    return (
        "    <dependency><groupId>"
        f"{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>"
        "</dependency>\n"
    )


def render_pom(version: str) -> str:
    """Return a pom.xml whose runtime classpath runs a Kafka ``version`` broker.

    Kafka 4.x logs through log4j 2 (slf4j 2 binding; slf4j-api 2 is named
    explicitly because kafka_2.13 drags in 1.7.36); 3.x through reload4j.
    """
    deps = _dependency("org.apache.kafka", "kafka_2.13", version)
    if uses_log4j1(version):
        deps += _dependency("org.slf4j", "slf4j-api", _SLF4J1)
        deps += _dependency("org.slf4j", "slf4j-reload4j", _SLF4J1)
        deps += _dependency("ch.qos.reload4j", "reload4j", _RELOAD4J)
    else:
        deps += _dependency("org.slf4j", "slf4j-api", _SLF4J2)
        deps += _dependency("org.apache.logging.log4j", "log4j-slf4j2-impl", _LOG4J2)
        deps += _dependency("org.apache.logging.log4j", "log4j-core", _LOG4J2)
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.kafkalocal</groupId>\n"
        f"  <artifactId>kafka-runtime</artifactId><version>{version}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{deps}  </dependencies>\n"
        "  <build><pluginManagement><plugins><plugin>\n"
        "    <groupId>org.apache.maven.plugins</groupId>"
        "<artifactId>maven-dependency-plugin</artifactId>"
        f"<version>{_DEPENDENCY_PLUGIN}</version>\n"
        "  </plugin></plugins></pluginManagement></build>\n"
        "</project>\n"
    )


def _is_complete(home: Path) -> bool:
    try:
        jars = json.loads((home / _MARKER).read_text(encoding="utf-8"))["jars"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    libs = home / "libs"
    return bool(jars) and all((libs / name).is_file() for name in jars)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(work: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaStartError(
            "mvn is not on PATH: install Maven 3.6+ (e.g. `apt-get install maven`) "
            "so kafkalocal can fetch the Kafka jars from Maven Central"
        )
    (work / "pom.xml").write_text(render_pom(version), encoding="utf-8")
    log = work / "mvn.log"
    command = [
        mvn,
        "-B",
        "-ntp",
        "-Dstyle.color=never",
        "-f",
        str(work / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={work / 'libs'}",
        "-DincludeScope=runtime",
    ]
    with log.open("wb") as out:
        try:
            code = subprocess.call(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_MVN_TIMEOUT_S,
                preexec_fn=child_preexec(),  # mvn dies with us
            )
        except subprocess.TimeoutExpired:
            code = -1
    jars = sorted(p.name for p in (work / "libs").glob("*.jar"))
    if code != 0 or not any(name.startswith("kafka_2.13-") for name in jars):
        raise KafkaStartError(
            f"mvn could not resolve org.apache.kafka:kafka_2.13:{version} "
            f"(exit code {code}; is the version on Maven Central?). "
            f"Last lines of {log.name}:\n{tail(log)}"
        )
    (work / _MARKER).write_text(
        json.dumps({"version": version, "jars": jars}, indent=1), encoding="utf-8"
    )


def resolve_kafka(version: str | None = None) -> Path:
    """Return the cache directory holding the jars of Kafka ``version``, running mvn once.

    Thread- and process-safe. ``version`` defaults to ``$KAFKA_VERSION`` or the
    pinned release. The jars are in ``<returned>/libs``; see :func:`classpath`.

    Example:
        >>> home = resolve_kafka("4.1.1")  # doctest: +SKIP

    Raises:
        KafkaStartError: mvn is missing or failed; the message ends with its output.
        ValueError: ``version`` is malformed.
    """
    version = kafka_version(version)
    root = cache_root()
    home = root / version
    if _is_complete(home):
        return home
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{version}.lock"):
        if _is_complete(home):
            return home
        for leftover in root.glob(f".{version}.*-*"):  # from a resolve that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=root))
        try:
            _run_maven(work, version)
            if home.exists():
                stale = Path(tempfile.mkdtemp(prefix=f".{version}.stale-", dir=root))
                home.rename(stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            work.rename(home)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return home

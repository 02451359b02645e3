"""Which Apache Kafka release to run, and what differs between releases.

I/O-free apart from reading the ``KAFKA_VERSION`` environment variable.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "VERSION_ENV",
    "kafka_version",
    "uses_log4j1",
    "version_tuple",
]

#: The pinned release: the newest 4.x that aiokafka 0.14 was verified against.
DEFAULT_KAFKA_VERSION = "4.4.0"

#: Environment variable that selects another release, e.g. ``3.9.1`` or ``4.0.1``.
VERSION_ENV = "KAFKA_VERSION"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_tuple(version: str) -> tuple[int, int, int]:
    """Parse ``MAJOR.MINOR.PATCH``.

    Raises:
        ValueError: ``version`` is not three dot-separated integers, or is older than 3.7.
    """
    match = _VERSION_RE.match(version)
    if match is None:
        raise ValueError(
            f"Kafka version {version!r} is not MAJOR.MINOR.PATCH; "
            f"set {VERSION_ENV} to a release such as {DEFAULT_KAFKA_VERSION} or 3.9.1"
        )
    major, minor, patch = (int(part) for part in match.groups())
    if (major, minor) < (3, 7):
        raise ValueError(
            f"Kafka {version} is too old: kafkalocal runs KRaft releases 3.7 and newer"
        )
    return major, minor, patch


def kafka_version(version: str | None = None) -> str:
    """Return ``version``, else ``$KAFKA_VERSION``, else the pinned default; validated.

    Raises:
        ValueError: the chosen version is malformed or unsupported.
    """
    chosen = version or os.environ.get(VERSION_ENV, "").strip() or DEFAULT_KAFKA_VERSION
    version_tuple(chosen)
    return chosen


def uses_log4j1(version: str) -> bool:
    """Return whether ``version`` logs through log4j 1 (reload4j): releases before 4.0."""
    return version_tuple(version) < (4, 0, 0)

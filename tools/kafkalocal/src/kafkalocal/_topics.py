"""Fresh topic names for a test, and deleting every topic that was handed out.

No pytest here: the plugin wraps :class:`TopicFactory` in the ``kafka_topics`` fixture.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence

from ._admin import delete_topics as _delete_topics
from ._cluster import KafkaCluster
from ._errors import KafkaAdminError
from ._secure import SecureKafka
from ._wire import Endpoint

__all__ = ["MAX_TOPIC_LENGTH", "Target", "TopicFactory", "delete_topics", "endpoint_of"]

#: What topics can be deleted on: ``"host:port,..."`` (PLAINTEXT), a cluster, or an endpoint.
Target = str | KafkaCluster | SecureKafka | Endpoint
#: Kafka's limit on the length of a topic name.
MAX_TOPIC_LENGTH = 249

_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9-]+")
_LEGAL = re.compile(r"[a-zA-Z0-9._-]*")
_TEST_PART = 80
_LABEL_PART = 60


def endpoint_of(target: Target) -> Endpoint:
    """Return where and how to send admin requests for ``target``.

    Raises:
        TypeError: ``target`` is none of the supported kinds.
    """
    if isinstance(target, Endpoint):
        return target
    if isinstance(target, str):
        return Endpoint(target)
    if isinstance(target, (KafkaCluster, SecureKafka)):
        return target.admin_endpoint
    raise TypeError(
        "a topic target is 'host:port,...', a KafkaCluster, a SecureKafka or an Endpoint; "
        f"got {type(target).__name__}"
    )


def delete_topics(target: Target, topics: Sequence[str], timeout: float = 30.0) -> list[str]:
    """Delete ``topics`` on ``target`` with a raw DeleteTopics request; return those that existed.

    Topics that do not exist are fine. Standard library only.

    Example:
        >>> delete_topics("127.0.0.1:9092", ["scratch-1", "scratch-2"])  # doctest: +SKIP

    Raises:
        KafkaAdminError: no broker answered or a deletion was refused.
    """
    return _delete_topics(endpoint_of(target), topics, timeout)


def _slug(text: str, limit: int) -> str:
    return _NOT_IN_NAME.sub("-", text).strip("-")[:limit].strip("-")


class TopicFactory:
    """Hands out fresh, unique, legal topic names for one test and deletes them afterwards.

    ``factory(label="")`` returns ``test-<test name>-<label>-<8 hex>`` (the label part
    only when given), with ``prefix`` in front if one is passed. Names handed out by the
    factory itself are deleted on its default targets; :meth:`on` gives a factory whose
    names are deleted on another broker. Not thread-safe.

    Args:
        test_name: the test's name; becomes part of every topic name.
        default_targets: called at :meth:`cleanup`; where names of this factory live.
    """

    def __init__(
        self,
        test_name: str,
        default_targets: Callable[[], Sequence[Target]],
    ) -> None:
        self._stem = "test-" + (_slug(test_name.removeprefix("test_"), _TEST_PART) or "topic")
        self._default_targets = default_targets
        self._target: Target | None = None
        self._ledger: list[tuple[Target | None, str]] = []

    def __call__(self, label: str = "", *, prefix: str = "") -> str:
        """Return a new topic name; it is deleted at cleanup.

        Raises:
            ValueError: ``prefix`` has characters Kafka does not allow in topic names, or is
                so long that no name fits.
        """
        if not _LEGAL.fullmatch(prefix):
            raise ValueError(
                f"topic prefix {prefix!r} may only contain ASCII letters, digits, '.', '_', '-'"
            )
        label_part = _slug(label, _LABEL_PART)
        name = f"{self._stem}-{label_part}" if label_part else self._stem
        suffix = f"-{uuid.uuid4().hex[:8]}"
        room = MAX_TOPIC_LENGTH - len(prefix) - len(suffix)
        if room < 1:
            raise ValueError(f"topic prefix {prefix!r} leaves no room for a name")
        topic = f"{prefix}{name[:room]}{suffix}"
        self._ledger.append((self._target, topic))
        return topic

    def on(self, target: Target) -> TopicFactory:
        """Return a factory whose names are deleted on ``target`` when this one cleans up.

        Example:
            >>> topic = kafka_topics.on(kafka_secure)("orders")  # doctest: +SKIP
        """
        endpoint_of(target)  # fail early on a wrong kind
        bound = TopicFactory.__new__(TopicFactory)
        bound._stem = self._stem
        bound._default_targets = self._default_targets
        bound._target = target
        bound._ledger = self._ledger
        return bound

    @property
    def names(self) -> list[str]:
        """Return every name handed out so far, by this factory and those made by :meth:`on`."""
        return [name for _, name in self._ledger]

    def cleanup(self) -> None:
        """Delete every topic handed out, on the broker(s) it was meant for. Idempotent.

        Raises:
            KafkaAdminError: a deletion failed (after all others were tried).
        """
        ledger, self._ledger[:] = list(self._ledger), []
        if not ledger:
            return
        plan: list[tuple[Endpoint, list[str]]] = []
        defaults: Sequence[Target] | None = None
        for target, name in ledger:
            if target is None:
                defaults = self._default_targets() if defaults is None else defaults
                targets: Sequence[Target] = defaults
            else:
                targets = [target]
            for each in targets:
                endpoint = endpoint_of(each)
                for planned, names in plan:
                    if planned == endpoint:
                        if name not in names:  # two fixtures may name the same broker
                            names.append(name)
                        break
                else:
                    plan.append((endpoint, [name]))
        errors = []
        for endpoint, names in plan:
            try:
                _delete_topics(endpoint, names)
            except KafkaAdminError as exc:
                errors.append(str(exc))
        if errors:
            raise KafkaAdminError("could not delete test topics: " + "; ".join(errors))

"""What tests share to open a history in a storage layout from a child process."""

from __future__ import annotations

from typing import Any

__all__ = ["OPEN_IN_LAYOUT", "layout_args"]

# A script prefix: ``open_history(session_id, bootstrap, shared_topic, partitions)`` opens a
# history in the layout given on the command line, as the test's own process does.
OPEN_IN_LAYOUT = """
import contextlib, sys
from aiokafka_history import KafkaChatMessageHistory, KafkaHistoryClient, TopicSettings

@contextlib.contextmanager
def open_history(session_id, bootstrap, shared_topic, partitions):
    if not shared_topic:
        with KafkaChatMessageHistory(session_id, bootstrap) as history:
            yield history
        return
    settings = TopicSettings(partition=int(partitions))
    with KafkaHistoryClient(
        bootstrap, shared_topic=shared_topic, shared_topic_settings=settings
    ) as client, client.history(session_id) as history:
        yield history
"""


def layout_args(layout: dict[str, Any]) -> list[str]:
    """The ``layout`` fixture as command-line arguments of :data:`OPEN_IN_LAYOUT`."""
    if not layout:
        return ["", "0"]
    return [layout["shared_topic"], str(layout["shared_topic_settings"].partition)]

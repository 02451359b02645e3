"""LangGraph persistence in Kafka: checkpointers on a shared, compacted topic.

``AsyncKafkaSaver`` is the asyncio-native checkpointer; ``KafkaSaver`` its blocking twin.
``amove_session_to_thread`` / ``move_session_to_thread`` move a chat session's messages into
a thread's state. Needs the ``langgraph`` extra: ``pip install aiokafka-history[langgraph]``.
"""

from __future__ import annotations

from ._blocking import KafkaSaver
from ._bridge import amove_session_to_thread, move_session_to_thread
from ._saver import DEFAULT_TOPIC, AsyncKafkaSaver

__all__ = [
    "DEFAULT_TOPIC",
    "AsyncKafkaSaver",
    "KafkaSaver",
    "amove_session_to_thread",
    "move_session_to_thread",
]

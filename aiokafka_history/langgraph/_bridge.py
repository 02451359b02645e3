"""From chat histories to LangGraph threads: a session's messages into a thread's state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
)
from langgraph.checkpoint.base.id import uuid6

from .._history import AsyncKafkaChatMessageHistory
from .._sync import KafkaChatMessageHistory

__all__ = ["amove_session_to_thread", "move_session_to_thread"]

#: LangGraph's checkpoint format (``langgraph.pregel``'s ``LATEST_VERSION``) for a new thread.
_CHECKPOINT_FORMAT = 4


async def amove_session_to_thread(
    history: AsyncKafkaChatMessageHistory,
    saver: BaseCheckpointSaver[Any],
    thread_id: str,
    *,
    channel: str = "messages",
    checkpoint_ns: str = "",
    clear: bool = False,
) -> RunnableConfig:
    """Append a chat session's messages to the ``messages`` channel of a LangGraph thread.

    For moving from ``RunnableWithMessageHistory`` (deprecated) to LangGraph persistence:
    the next run of a graph whose state has that channel (``MessagesState``) on
    ``thread_id`` continues the conversation. Writes one checkpoint, as a state update
    does (``source="update"``), after the thread's newest one; a message whose id the
    thread already holds is not added twice, so moving again adds only what is new. Any
    saver works (``AsyncKafkaSaver``, ``InMemorySaver``, Postgres...).

    Example::

        async with AsyncKafkaHistoryClient("localhost:9092") as client:
            saver = AsyncKafkaSaver(client)
            await amove_session_to_thread(client.history("s-1"), saver, "s-1")

    Args:
        history: the session to read (all its messages, the position is not moved).
        saver: the checkpointer of the graph.
        thread_id: the thread to append to (made if it has no checkpoint).
        channel: the state key of the messages.
        checkpoint_ns: the namespace ("" for the graph itself, not a subgraph).
        clear: clear the session once the checkpoint is stored.

    Returns:
        The config of the new checkpoint.

    Raises:
        SessionReadError: the session could not be read.
        SessionWriteError: the checkpoint was not stored (the session is left as it was).
    """
    messages = [message for _, message in await history.atimed_messages()]
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    }
    previous = await saver.aget_tuple(config)
    put = _update(saver, previous, config, channel, messages)
    stored = await saver.aput(*put)
    if clear:
        await history.aclear()
    return stored


def move_session_to_thread(
    history: KafkaChatMessageHistory,
    saver: BaseCheckpointSaver[Any],
    thread_id: str,
    *,
    channel: str = "messages",
    checkpoint_ns: str = "",
    clear: bool = False,
) -> RunnableConfig:
    """Blocking twin of :func:`amove_session_to_thread` (a blocking history and saver)."""
    messages = [message for _, message in history.timed_messages()]
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    }
    previous = saver.get_tuple(config)
    put = _update(saver, previous, config, channel, messages)
    stored = saver.put(*put)
    if clear:
        history.clear()
    return stored


def _update(
    saver: BaseCheckpointSaver[Any],
    previous: CheckpointTuple | None,
    config: RunnableConfig,
    channel: str,
    messages: Sequence[BaseMessage],
) -> tuple[RunnableConfig, Checkpoint, CheckpointMetadata, dict[str, Any]]:
    """The arguments of the put that appends ``messages`` after ``previous``."""
    now = datetime.now(timezone.utc).isoformat()
    if previous is None:
        checkpoint = Checkpoint(
            v=_CHECKPOINT_FORMAT,
            id="",
            ts=now,
            channel_values={},
            channel_versions={},
            versions_seen={},
            updated_channels=None,
        )
        step = -1
        parent = config
    else:
        checkpoint = copy_checkpoint(previous.checkpoint)
        step = int(previous.metadata.get("step", -1)) + 1
        parent = previous.config
    held = list(checkpoint["channel_values"].get(channel) or [])
    known = {m.id for m in held if isinstance(m, BaseMessage) and m.id}
    held.extend(m for m in messages if not (m.id and m.id in known))
    version = saver.get_next_version(checkpoint["channel_versions"].get(channel), None)
    checkpoint["id"] = str(uuid6(clock_seq=-1))
    checkpoint["ts"] = now
    checkpoint["channel_values"][channel] = held
    checkpoint["channel_versions"][channel] = version
    checkpoint["updated_channels"] = [channel]
    metadata: CheckpointMetadata = {"source": "update", "step": step, "parents": {}}
    return parent, checkpoint, metadata, {channel: version}

"""Copying sessions between clients and layouts, idempotently (migration both ways)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._engine import Engine
from ._errors import ConfigurationError
from ._history import AsyncKafkaChatMessageHistory

__all__ = ["copy_sessions"]

_CHUNK = 500


async def copy_sessions(
    source: Engine,
    target: Engine,
    session_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy sessions from ``source`` to ``target`` (clients of either layout), in order.

    Migrates topic-per-session topics (this library's or langchain_community's: name the
    sessions, a topic named after each) into a shared topic, and exports sessions back. Each
    session's whole history is read from ``source`` and what ``target`` lacks is appended:
    running it again copies nothing twice, and a run that stopped half way is completed by
    the next one. Both clients must live on the running event loop.

    Args:
        source: the client to read from.
        target: the client to write to.
        session_ids: the sessions to copy (default: every session ``source`` lists).
        progress: called after each session with its id and how many messages were copied.

    Returns:
        How many messages were copied, per session.

    Raises:
        ConfigurationError: the target already holds other messages for a session than the
            source's first ones (nothing of that session is written).
        SessionReadError, SessionWriteError: as the histories raise them; sessions copied
            before stay copied.
    """
    ids = list(session_ids) if session_ids is not None else await source.list_sessions()
    copied: dict[str, int] = {}
    for session_id in ids:
        messages = await AsyncKafkaChatMessageHistory(
            session_id, client=source, messages_mode="full"
        ).aget_messages()
        into = AsyncKafkaChatMessageHistory(session_id, client=target, messages_mode="full")
        held = await into.aget_messages()
        if held != messages[: len(held)]:
            raise ConfigurationError(
                f"session {session_id!r} already holds {len(held)} messages in the target "
                "that are not the source's first ones; it was not copied (clear it there, "
                "or copy it under another id)"
            )
        rest = messages[len(held) :]
        for start in range(0, len(rest), _CHUNK):
            await into.aadd_messages(rest[start : start + _CHUNK])
        copied[session_id] = len(rest)
        if progress is not None:
            progress(session_id, len(rest))
    return copied

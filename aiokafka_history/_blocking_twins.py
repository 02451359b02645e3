"""The blocking methods LangChain requires of a history, over its async ones.

:class:`BlockingTwins` is mixed into :class:`AsyncKafkaChatMessageHistory`: each method is one
line handing the async twin to ``_hop``, which the history implements by running it on its
client's loop from another thread (see ``_home_loop.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from ._session_log import StartPosition
from ._tail import BlockingMessageTail, MessageTail

__all__ = ["BlockingTwins"]

T = TypeVar("T")


class BlockingTwins:
    """Blocking twins of the history's async methods, for threads other than its loop's."""

    def _hop(self, method: str, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        raise NotImplementedError

    async def aget_messages(self) -> list[BaseMessage]:
        raise NotImplementedError

    async def amessages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        raise NotImplementedError

    async def amessages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        raise NotImplementedError

    async def amessages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        raise NotImplementedError

    async def alast_messages(self, count: int) -> list[BaseMessage]:
        raise NotImplementedError

    async def atimed_messages(self) -> list[tuple[datetime, BaseMessage]]:
        raise NotImplementedError

    def atail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> MessageTail:
        raise NotImplementedError

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        raise NotImplementedError

    async def aadd_user_message(self, message: HumanMessage | str) -> None:
        raise NotImplementedError

    async def aadd_ai_message(self, message: AIMessage | str) -> None:
        raise NotImplementedError

    async def aclear(self) -> None:
        raise NotImplementedError

    async def adelete_topic(self) -> bool:
        raise NotImplementedError

    @property
    def messages(self) -> list[BaseMessage]:
        """Blocking twin of :meth:`aget_messages`, for other threads."""
        return self._hop("messages", self.aget_messages)

    def get_messages(self) -> list[BaseMessage]:
        """Blocking twin of :meth:`aget_messages`, as a method."""
        return self._hop("get_messages", self.aget_messages)

    def messages_from_beginning(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_beginning`."""
        return self._hop(
            "messages_from_beginning",
            self.amessages_from_beginning,
            max_message_count,
            max_time_sec,
        )

    def messages_from_latest(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_latest`."""
        return self._hop(
            "messages_from_latest", self.amessages_from_latest, max_message_count, max_time_sec
        )

    def messages_from_last_consumed(
        self, max_message_count: int | None = None, max_time_sec: float | None = None
    ) -> list[BaseMessage]:
        """Blocking twin of :meth:`amessages_from_last_consumed`."""
        return self._hop(
            "messages_from_last_consumed",
            self.amessages_from_last_consumed,
            max_message_count,
            max_time_sec,
        )

    def last_messages(self, count: int) -> list[BaseMessage]:
        """Blocking twin of :meth:`alast_messages`."""
        return self._hop("last_messages", self.alast_messages, count)

    def timed_messages(self) -> list[tuple[datetime, BaseMessage]]:
        """Blocking twin of :meth:`atimed_messages`."""
        return self._hop("timed_messages", self.atimed_messages)

    def tail(
        self,
        start: StartPosition = "latest",
        *,
        commit: bool = False,
        idle_timeout: float | None = None,
    ) -> BlockingMessageTail:
        """Blocking twin of :meth:`atail`: an iterator (and ``with`` block) of live messages."""
        tail = self.atail(start, commit=commit, idle_timeout=idle_timeout)
        return BlockingMessageTail(tail, lambda fn, *args: self._hop("tail", fn, *args))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Blocking twin of :meth:`aadd_messages`."""
        self._hop("add_messages", self.aadd_messages, messages)

    def add_message(self, message: BaseMessage) -> None:
        """Blocking twin of :meth:`aadd_message`."""
        self._hop("add_message", self.aadd_messages, [message])

    def add_user_message(self, message: HumanMessage | str) -> None:
        """Blocking twin of :meth:`aadd_user_message`."""
        self._hop("add_user_message", self.aadd_user_message, message)

    def add_ai_message(self, message: AIMessage | str) -> None:
        """Blocking twin of :meth:`aadd_ai_message`."""
        self._hop("add_ai_message", self.aadd_ai_message, message)

    def clear(self) -> None:
        """Blocking twin of :meth:`aclear`."""
        self._hop("clear", self.aclear)

    def delete_topic(self) -> bool:
        """Blocking twin of :meth:`adelete_topic`."""
        return self._hop("delete_topic", self.adelete_topic)

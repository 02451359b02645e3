"""``KafkaSaver``: the blocking twin of ``AsyncKafkaSaver``, on its client's loop thread."""

from __future__ import annotations

import builtins
import contextlib
import copy
import os
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from typing_extensions import Unpack

from .._config import KafkaOptions, TopicSettings, check_kafka_options
from .._errors import ConfigurationError
from .._sqlite_view import LocalView
from .._sync import KafkaHistoryClient
from ._saver import DEFAULT_TOPIC, AsyncKafkaSaver

__all__ = ["KafkaSaver"]


class KafkaSaver(BaseCheckpointSaver[str]):
    """Blocking twin of :class:`AsyncKafkaSaver`, for ``graph.invoke`` and ``graph.stream``.

    Runs an :class:`AsyncKafkaSaver` on the event loop thread of a
    :class:`~aiokafka_history.KafkaHistoryClient`. Thread-safe; its ``a``-prefixed methods
    await the same core from any other event loop without blocking it, so one saver serves
    ``invoke`` and ``ainvoke`` alike. Arguments and errors are those of
    :class:`AsyncKafkaSaver`.

    Example::

        with KafkaSaver.from_conn_string("localhost:9092") as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})
    """

    def __init__(
        self,
        client: KafkaHistoryClient,
        *,
        topic: str = DEFAULT_TOPIC,
        topic_settings: TopicSettings | None = None,
        view: str | os.PathLike[str] | LocalView | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        if not isinstance(client, KafkaHistoryClient):
            raise ConfigurationError(
                "client must be a KafkaHistoryClient (for async code use AsyncKafkaSaver)"
            )
        self.client = client
        self.core = AsyncKafkaSaver(
            client.core, topic=topic, topic_settings=topic_settings, view=view, serde=serde
        )
        self.serde = self.core.serde
        self.topic = topic

    @classmethod
    @contextlib.contextmanager
    def from_conn_string(
        cls,
        bootstrap_servers: str | list[str],
        *,
        topic: str = DEFAULT_TOPIC,
        topic_settings: TopicSettings | None = None,
        view: str | os.PathLike[str] | LocalView | None = None,
        serde: SerializerProtocol | None = None,
        read_timeout: float = 30.0,
        write_timeout: float = 30.0,
        admin_timeout: float = 30.0,
        close_timeout: float = 10.0,
        **kafka_options: Unpack[KafkaOptions],
    ) -> Iterator[KafkaSaver]:
        """A saver on connections of its own, closed when the block ends.

        Raises:
            ConfigurationError: an option breaks a rule, or is unknown.
        """
        check_kafka_options(kafka_options, of=cls.from_conn_string)
        with KafkaHistoryClient(
            bootstrap_servers,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            admin_timeout=admin_timeout,
            close_timeout=close_timeout,
            **kafka_options,
        ) as client:
            yield cls(client, topic=topic, topic_settings=topic_settings, view=view, serde=serde)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> KafkaSaver:
        """A shallow clone whose serializer also allows ``extra_allowlist`` (LangGraph's)."""
        core = self.core.with_allowlist(extra_allowlist)
        if core is self.core:
            return self
        clone = copy.copy(self)
        clone.core = core  # type: ignore[assignment]
        clone.serde = core.serde
        return clone

    def get_next_version(self, current: str | None, channel: None) -> str:
        """See :meth:`AsyncKafkaSaver.get_next_version`."""
        return self.core.get_next_version(current, channel)

    def setup(self) -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.setup`."""
        self.client.call(self.core.setup)

    def close(self) -> None:
        """Close the client (and so the saver); idempotent."""
        self.client.close()

    # -- blocking ---------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Blocking twin of :meth:`AsyncKafkaSaver.aget_tuple`."""
        return self.client.call(self.core.aget_tuple, config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Blocking twin of :meth:`AsyncKafkaSaver.alist` (reads the matches at once)."""
        return iter(self.client.call(self._collect, config, filter, before, limit))

    async def _collect(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> builtins.list[CheckpointTuple]:
        return [t async for t in self.core.alist(config, filter=filter, before=before, limit=limit)]

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Blocking twin of :meth:`AsyncKafkaSaver.aput`."""
        return self.client.call(self.core.aput, config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.aput_writes`."""
        self.client.call(self.core.aput_writes, config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.adelete_thread`."""
        self.client.call(self.core.adelete_thread, thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.adelete_for_runs`."""
        self.client.call(self.core.adelete_for_runs, run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.acopy_thread`."""
        self.client.call(self.core.acopy_thread, source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Blocking twin of :meth:`AsyncKafkaSaver.aprune`."""
        self.client.call(self._prune, thread_ids, strategy)

    async def _prune(self, thread_ids: Sequence[str], strategy: str) -> None:
        await self.core.aprune(thread_ids, strategy=strategy)

    # -- awaited from another event loop ----------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """:meth:`get_tuple` awaited from another event loop."""
        return await self.client.acall(self.core.aget_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """:meth:`list` awaited from another event loop."""
        for item in await self.client.acall(self._collect, config, filter, before, limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """:meth:`put` awaited from another event loop."""
        return await self.client.acall(self.core.aput, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """:meth:`put_writes` awaited from another event loop."""
        await self.client.acall(self.core.aput_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """:meth:`delete_thread` awaited from another event loop."""
        await self.client.acall(self.core.adelete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """:meth:`delete_for_runs` awaited from another event loop."""
        await self.client.acall(self.core.adelete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """:meth:`copy_thread` awaited from another event loop."""
        await self.client.acall(self.core.acopy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """:meth:`prune` awaited from another event loop."""
        await self.client.acall(self._prune, thread_ids, strategy)

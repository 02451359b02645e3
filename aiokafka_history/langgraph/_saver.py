"""``AsyncKafkaSaver``: LangGraph checkpoints in a shared Kafka topic, served by a local view."""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from typing_extensions import Unpack

from .._client import AsyncKafkaHistoryClient
from .._config import KafkaOptions, TopicSettings, check_kafka_options
from .._errors import ConfigurationError
from .._sqlite_view import LocalView
from .._thread_log import ThreadLog
from .._thread_records import (
    CheckpointUnit,
    StoredCheckpoint,
    ThreadIndex,
    Typed,
    WritesUnit,
    encode_unit,
)

__all__ = ["DEFAULT_TOPIC", "AsyncKafkaSaver"]

#: The shared topic of checkpoints when none is named.
DEFAULT_TOPIC = "langgraph-checkpoints"


class AsyncKafkaSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer that stores every thread in one compacted Kafka topic.

    One thread is one key range of the topic (``thread_id`` is the session id of the
    shared layout), read back through a local SQLite view that one follower task keeps up
    to date, so millions of threads cost no topics. Reads are read-your-writes: a read sees
    every put acknowledged before it began, in any process. A put is invisible until its
    last record is acknowledged; values beyond the broker's record limit are chunked.

    Make it on an existing :class:`~aiokafka_history.AsyncKafkaHistoryClient` (it shares the
    client's connections and is closed with it) or with :meth:`from_conn_string`. Use it from
    the client's event loop; for blocking code use :class:`KafkaSaver`.

    Example::

        async with AsyncKafkaSaver.from_conn_string("localhost:9092") as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Args:
        client: the client whose connections to use.
        topic: the shared topic of the checkpoints (created on first use).
        topic_settings: partitions (default 12), replication and retention of the topic.
        view: where the local view lives: ``":memory:"`` (default) or a SQLite file path.
        serde: LangGraph's serializer (default ``JsonPlusSerializer``).

    Raises:
        ConfigurationError: an option breaks a rule (the message says which).
    """

    def __init__(
        self,
        client: AsyncKafkaHistoryClient,
        *,
        topic: str = DEFAULT_TOPIC,
        topic_settings: TopicSettings | None = None,
        view: str | os.PathLike[str] | LocalView | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if not isinstance(client, AsyncKafkaHistoryClient):
            raise ConfigurationError(
                "client must be an AsyncKafkaHistoryClient (for blocking code use KafkaSaver)"
            )
        self.client = client
        self.topic = topic
        self._log = ThreadLog(client.shared_layout(topic, topic_settings, view))

    @classmethod
    @contextlib.asynccontextmanager
    async def from_conn_string(
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
    ) -> AsyncIterator[AsyncKafkaSaver]:
        """A saver on connections of its own, closed when the block ends.

        Example::

            async with AsyncKafkaSaver.from_conn_string("localhost:9092") as saver:
                ...

        Raises:
            ConfigurationError: an option breaks a rule, or is unknown.
        """
        check_kafka_options(kafka_options, of=cls.from_conn_string)
        async with AsyncKafkaHistoryClient(
            bootstrap_servers,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            admin_timeout=admin_timeout,
            close_timeout=close_timeout,
            **kafka_options,
        ) as client:
            yield cls(client, topic=topic, topic_settings=topic_settings, view=view, serde=serde)

    async def setup(self) -> None:
        """Create the topic (or validate an existing one) and start following it.

        Optional: the first call does it too. Idempotent.

        Raises:
            TopicAdminError: the topic could not be created or described in time.
            ConfigurationError: the topic exists without ``cleanup.policy=compact``.
        """
        await self._log.setup()

    async def aclose(self) -> None:
        """Close the client (and so the saver); idempotent."""
        await self.client.aclose()

    # -- reads ------------------------------------------------------------------------------

    async def _index(self, thread_id: str) -> ThreadIndex:
        return await self._log.read(_thread_id(thread_id))

    def _tuple(
        self, thread_id: str, index: ThreadIndex, found: StoredCheckpoint
    ) -> CheckpointTuple:
        return self._decoded(thread_id, _Found.of(index, found))

    def _decoded(self, thread_id: str, found: _Found) -> CheckpointTuple:
        unit = found.unit
        checkpoint: Checkpoint = self.serde.loads_typed(unit.checkpoint)
        checkpoint["channel_values"] = {
            channel: self.serde.loads_typed(value) for channel, value in found.values.items()
        }
        writes = [
            (task_id, channel, self.serde.loads_typed(value))
            for task_id, channel, value in found.writes
        ]
        return CheckpointTuple(
            config=_config(thread_id, unit.ns, unit.checkpoint_id),
            checkpoint=checkpoint,
            metadata=self.serde.loads_typed(unit.metadata),
            parent_config=(_config(thread_id, unit.ns, unit.parent_id) if unit.parent_id else None),
            pending_writes=writes,
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of ``config`` (its ``checkpoint_id``, or the newest), or None.

        Raises:
            SessionReadError: the view did not catch up within the read timeout.
        """
        thread_id, ns = _thread_and_ns(config)
        index = await self._index(thread_id)
        found = index.get(ns, get_checkpoint_id(config))
        return None if found is None else self._tuple(thread_id, index, found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, if it names one).

        ``filter`` keeps those whose metadata has each key with an equal value, ``before``
        those with a lower id than its checkpoint, ``limit`` the first that many. Without a
        config every thread of the topic is listed (this reads the whole topic).

        Raises:
            SessionReadError: the view did not catch up within the read timeout.
        """
        if limit is not None and limit <= 0:
            return
        configurable = config["configurable"] if config else {}
        ns: str | None = configurable.get("checkpoint_ns")
        wanted_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        threads = [configurable["thread_id"]] if config else await self._log.threads()
        for thread_id in threads:
            index = await self._index(thread_id)
            # What the thread holds now, taken before the first yield: the index is shared,
            # and a read made while the caller holds an item may fold newer writes into it.
            listed: list[_Found] = []
            for found in index.newest_first(ns):
                cid = found.unit.checkpoint_id
                if wanted_id and cid != wanted_id:
                    continue
                if before_id and cid >= before_id:
                    continue
                if filter:
                    metadata = self.serde.loads_typed(found.unit.metadata)
                    if not all(metadata.get(k) == v for k, v in filter.items()):
                        continue
                listed.append(_Found.of(index, found))
                if limit is not None and len(listed) >= limit:
                    break
            for item in listed:
                yield self._decoded(thread_id, item)
            if limit is not None:
                limit -= len(listed)
                if limit <= 0:
                    return

    # -- writes -----------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` with the values of the channels in ``new_versions``.

        Returns the config of the stored checkpoint once every record of it is acknowledged.

        Raises:
            SessionWriteError: the write was not (fully) acknowledged within the write timeout.
        """
        thread_id, ns = _thread_and_ns(config)
        stored: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = stored.pop("channel_values", {})
        blobs = tuple(
            (
                channel,
                version,
                self.serde.dumps_typed(values[channel]) if channel in values else ("empty", b""),
            )
            for channel, version in new_versions.items()
        )
        unit = CheckpointUnit(
            ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_id=config["configurable"].get("checkpoint_id"),
            checkpoint=self.serde.dumps_typed(stored),
            metadata=self.serde.dumps_typed(get_checkpoint_metadata(config, metadata)),
            versions=dict(checkpoint["channel_versions"]),
            blobs=blobs,
        )
        await self._log.append(thread_id, [encode_unit(unit)])
        return _config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes of a task for the checkpoint of ``config``.

        A regular write is stored once per ``(task_id, idx)``; a special one (error,
        interrupt, resume, scheduled) replaces the one before.

        Raises:
            SessionWriteError: the write was not (fully) acknowledged within the write timeout.
        """
        thread_id, ns = _thread_and_ns(config)
        unit = WritesUnit(
            ns=ns,
            checkpoint_id=config["configurable"]["checkpoint_id"],
            task_id=task_id,
            task_path=task_path,
            writes=tuple(
                (WRITES_IDX_MAP.get(channel, idx), channel, self.serde.dumps_typed(value))
                for idx, (channel, value) in enumerate(writes)
            ),
        )
        await self._log.append(thread_id, [encode_unit(unit)])

    # -- deletions --------------------------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of ``thread_id`` (every namespace).

        Raises:
            TopicAdminError: the deletion was not acknowledged in time.
        """
        await self._log.delete(_thread_id(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is listed.

        Reads every thread of the topic. Blobs that remaining checkpoints still use move
        into a new record before the old ones are tombstoned.

        Raises:
            SessionWriteError: the deletion was not acknowledged in time.
        """
        wanted = set(run_ids)
        if not wanted:
            return
        for thread_id in await self._log.threads():
            index = await self._index(thread_id)
            remove = [
                (ns, cid)
                for ns, by_id in index.checkpoints.items()
                for cid, found in by_id.items()
                if self.serde.loads_typed(found.unit.metadata).get("run_id") in wanted
            ]
            if remove:
                await self._remove(thread_id, index, remove)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread to another, in their order.

        Raises:
            SessionWriteError: the copy was not (fully) acknowledged in time.
        """
        index = await self._index(source_thread_id)
        removal = index.removal(())  # what the source still uses, nothing else
        dropped = set(removal.tombstones)
        kept = {
            place.key_ids for place, _ in index.units if not dropped.intersection(place.key_ids)
        }
        # Their bytes as stored (a newer version's unit keeps what this one does not know).
        stored = await self._log.units(_thread_id(source_thread_id))
        units = [unit.data for unit in stored if unit.key_ids in kept]
        units.extend(encode_unit(unit) for unit in removal.rehome)
        await self._log.append(_thread_id(target_thread_id), units)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the newest checkpoint per namespace (``"keep_latest"``), or none.

        Raises:
            ConfigurationError: an unknown strategy.
            SessionWriteError: the deletion was not acknowledged in time.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ConfigurationError(
                f"strategy must be 'keep_latest' or 'delete', got {strategy!r}"
            )
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            index = await self._index(thread_id)
            remove = [
                (ns, cid) for ns, by_id in index.checkpoints.items() for cid in sorted(by_id)[:-1]
            ]
            await self._remove(thread_id, index, remove)

    async def _remove(
        self, thread_id: str, index: ThreadIndex, remove: Iterable[tuple[str, str]]
    ) -> None:
        removal = index.removal(remove)
        if removal:
            units = [encode_unit(unit) for unit in removal.rehome]
            await self._log.append(thread_id, units, removal.tombstones)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The version after ``current``: a zero-padded counter and a random tiebreak."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"


@dataclass(frozen=True, slots=True)
class _Found:
    """A checkpoint with the stored values and pending writes it has at one moment."""

    unit: CheckpointUnit
    values: dict[str, Typed]
    writes: list[tuple[str, str, Typed]]

    @classmethod
    def of(cls, index: ThreadIndex, found: StoredCheckpoint) -> _Found:
        unit = found.unit
        versions = unit.versions
        return cls(
            unit,
            index.channel_values(unit.ns, versions),
            index.pending_writes(unit.ns, unit.checkpoint_id),
        )


def _thread_id(thread_id: object) -> str:
    """The thread id as a str (LangGraph accepts ids such as UUIDs or ints too)."""
    if isinstance(thread_id, str | int | uuid.UUID) and not isinstance(thread_id, bool):
        text = str(thread_id)
        if text:
            return text
    raise ConfigurationError(
        f"thread_id must be a non-empty str (or an int or UUID), got {thread_id!r:.40}"
    )


def _thread_and_ns(config: RunnableConfig) -> tuple[str, str]:
    configurable = config.get("configurable") or {}
    if "thread_id" not in configurable:
        raise ConfigurationError(
            "the config has no configurable.thread_id: pass "
            '{"configurable": {"thread_id": ...}} to the graph'
        )
    return _thread_id(configurable["thread_id"]), configurable.get("checkpoint_ns") or ""


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }

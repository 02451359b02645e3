"""The ``aiokafka-history`` command line: the commands and their connection options.

Built on click and the package's public API only: the blocking client, whose loop thread also
runs the steps that need the asyncio core (``client.call``). Every failure ends as one line
``aiokafka-history: error: ...`` on stderr and exit status 1 (2 for usage errors), never a
traceback (``--debug`` adds it). The SASL password comes from the environment or a file, never
from an argument. What is shown and read (tables, progress, JSON Lines) is in ``_cli_render``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import click
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from . import (
    AsyncKafkaHistoryClient,
    KafkaHistoryClient,
    SessionWriteError,
    StartPosition,
    __version__,
    copy_sessions,
)
from ._cli_options import DEBUG, SECONDS, CliError, Connection, connection_options
from ._cli_render import (
    PROG,
    Progress,
    export_line,
    failure,
    message_table,
    one_line,
    parse_import,
    record_room,
    session_table,
    stderr_logging,
    tail_line,
    visible,
)

if TYPE_CHECKING:  # the langgraph extra is optional: imported by move-to-thread only
    from langgraph.checkpoint.base import CheckpointTuple

__all__ = ["main"]

_COUNT_READERS = 4  # sessions counted at once (the client's default max_readers)
_CHUNK = 500  # messages per import write, and at most _CHUNK_BYTES of them
_CHUNK_BYTES = 4 * 1024 * 1024
_SHOWN_BAD_LINES = 100


_PROGRESS = click.option(
    "--progress/--no-progress", default=None, help="Progress on stderr (default: if a terminal)."
)
_WIDTH = click.option("--width", type=click.IntRange(min=20), help="Columns (default: terminal).")
_FULL = click.option("--full", is_flag=True, help="Whole contents, over as many lines as needed.")
_YES = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
_SESSION = click.argument("session_id", metavar="SESSION")


def _progress(enabled: bool | None, label: str, unit: str) -> Progress:
    shown = enabled if enabled is not None else sys.stderr.isatty()
    return Progress(sys.stderr if shown else None, label, unit)


def _note(text: str) -> None:
    click.echo(f"{PROG}: {text}", err=True)


def _require(client: KafkaHistoryClient, session_id: str, shared_topic: str | None) -> None:
    """Raise unless ``session_id`` exists (reading a missing session returns nothing)."""
    if client.session_exists(session_id):
        return
    where = shared_topic and f"in shared topic {shared_topic!r}"
    where = where or f"(no topic {client.history(session_id).topic!r})"
    raise CliError(
        f"session {visible(session_id)!r} not found {where}; `{PROG} sessions` lists them"
    )


def _confirm(what: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"refusing to {what} without confirmation (no terminal): pass --yes")
    if not click.confirm(f"{what[0].upper()}{what[1:]}?", default=False, err=True):
        raise CliError(f"not confirmed: did not {what}")


def _columns(width: int | None) -> int:
    return width or shutil.get_terminal_size((100, 24)).columns


# -- the command group -------------------------------------------------------------------------


class _Main(click.Group):
    """The command group; reports every failure as one line (see the module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in (argv[: argv.index("--")] if "--" in argv else argv)
        with stderr_logging(debug):
            try:
                result = super().main(
                    argv,
                    prog_name or PROG,
                    complete_var,
                    standalone_mode=False,
                    windows_expand_args=windows_expand_args,
                    **extra,
                )
                code = result if isinstance(result, int) else 0
            except Exception as exc:  # click made KeyboardInterrupt an Abort
                if debug:
                    traceback.print_exception(type(exc), exc, exc.__traceback__)
                message, code = failure(exc)
                click.echo(f"{PROG}: error: {one_line(message)}", err=True)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(name=PROG, cls=_Main)
@click.version_option(__version__, prog_name=PROG)
@DEBUG
def main() -> None:
    """LangChain chat histories stored in Kafka: list, show, follow, export, import, migrate.

    move-to-thread moves a session into a LangGraph thread (the langgraph extra).

    Connection options follow the command, each with an environment variable (see the
    command's --help). The SASL password is read from $AIOKAFKA_HISTORY_SASL_PASSWORD or
    --sasl-password-file, never from an argument.
    """


# -- the commands ------------------------------------------------------------------------------


@main.command()
@click.option("--no-counts", is_flag=True, help="Only the ids, one a line, without reading.")
@_PROGRESS
@connection_options()
def sessions(conn: Connection, no_counts: bool, progress: bool | None) -> None:
    """List the sessions, with how many messages each holds."""
    with conn.client() as client:
        ids = client.list_sessions()
        if no_counts or not ids:
            for session_id in ids:
                click.echo(visible(session_id))
            if not ids:
                _note("no sessions")
            return
        shown = _progress(progress, "counting messages", "sessions")
        shown.start(len(ids))
        counts: dict[str, int] = client.call(_count, client.core, ids, shown.advance)
        shown.finish()
    for line in session_table([(i, counts[i]) for i in ids], "MESSAGES"):
        click.echo(line)


async def _count(
    core: AsyncKafkaHistoryClient, ids: list[str], done: Callable[[], None]
) -> dict[str, int]:
    """Count each session's messages by reading it, a few sessions at a time."""
    counts: dict[str, int] = {}
    todo = iter(ids)

    async def reader() -> None:
        for session_id in todo:
            history = core.history(session_id, messages_mode="full")
            counts[session_id] = len(await history.aget_messages())
            done()

    tasks = [asyncio.ensure_future(reader()) for _ in range(min(_COUNT_READERS, len(ids)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return counts


@main.command()
@_SESSION
@_WIDTH
@_FULL
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the newest N.")
@connection_options()
def show(
    conn: Connection, session_id: str, width: int | None, full: bool, last: int | None
) -> None:
    """Show a session as a table: time (UTC), role, content cut to the width."""
    with conn.client() as client:
        timed = client.history(session_id, messages_mode="full").timed_messages()
        if not timed:
            _require(client, session_id, conn.shared_topic)
            _note(f"session {visible(session_id)!r} has no messages")
            return
    for line in message_table(timed[-last:] if last else timed, width=_columns(width), full=full):
        click.echo(line)


@main.command()
@_SESSION
@click.option(
    "--from",
    "start",
    type=click.Choice(["latest", "beginning", "last_consumed"]),
    default="latest",
    show_default=True,
    help="Where to start.",
)
@click.option(
    "--idle-timeout",
    type=SECONDS,
    metavar="SECONDS",
    help="Stop after this long without a message (default: only Ctrl-C stops).",
)
@_WIDTH
@_FULL
@connection_options()
def tail(
    conn: Connection,
    session_id: str,
    start: str,
    idle_timeout: float | None,
    width: int | None,
    full: bool,
) -> None:
    """Follow a session: print messages as they are written, until Ctrl-C (exit status 0)."""
    columns = _columns(width)
    try:
        with conn.client() as client:
            _require(client, session_id, conn.shared_topic)  # a tail would create the topic
            follow = client.history(session_id).tail(
                cast(StartPosition, start), idle_timeout=idle_timeout
            )
            with follow:
                _note(f"following session {visible(session_id)!r} from {start}; Ctrl-C stops")
                for message in follow:
                    click.echo(tail_line(message, width=columns, full=full))
    except KeyboardInterrupt:
        click.echo(err=True)  # ends the terminal's ^C line


@main.command()
@_SESSION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write to this file (replaced once complete) instead of stdout.",
)
@_PROGRESS
@connection_options()
def export(conn: Connection, session_id: str, output: Path | None, progress: bool | None) -> None:
    """Export a session as JSON Lines: {"time": ..., "message": message_to_dict(m)} per line."""
    to_file = output is not None and str(output) != "-"
    shown = _progress(progress, f"exporting session {visible(session_id)!r}", "messages")
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(_replacing(output)) if output and to_file else None
        with conn.client() as client:
            timed = client.history(session_id, messages_mode="full").timed_messages()
            if not timed:
                _require(client, session_id, conn.shared_topic)
        out = sink or sys.stdout.buffer
        shown.start(len(timed))
        for when, message in timed:
            out.write(export_line(when, message))
            shown.advance()
        out.flush()
        shown.finish()
    if to_file:
        _note(f"exported {len(timed)} messages of session {visible(session_id)!r} to {output}")


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A new file beside ``path`` that replaces it on success and is removed on failure."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise CliError(f"{path}: cannot write there ({exc.strerror})") from exc
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@main.command(name="import")
@_SESSION
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--append", is_flag=True, help="Add after the messages the session holds.")
@_PROGRESS
@connection_options()
def import_(
    conn: Connection, session_id: str, file: str, append: bool, progress: bool | None
) -> None:
    """Import JSON Lines into a session, checking every line before writing anything.

    Lines are export lines or bare message_to_dict objects. Bad lines are reported by number
    and nothing is written. The session must be empty unless --append.
    """
    with click.open_file(file, "rb") as source:
        found = parse_import(source, room=record_room(session_id), keep_bad=_SHOWN_BAD_LINES)
    for bad in found.bad:
        click.echo(f"line {bad.number}: {bad.reason}", err=True)
    if found.bad_count > len(found.bad):
        click.echo(f"... and {found.bad_count - len(found.bad)} more bad lines", err=True)
    if found.bad_count:
        raise CliError(
            f"{file}: {found.bad_count} of {found.lines} lines are not messages; nothing written"
        )
    if not found.messages:
        _note(f"{file} holds no messages; nothing written")
        return
    shown = _progress(progress, f"importing into session {visible(session_id)!r}", "messages")
    with conn.client(creates=True) as client:
        history = client.history(session_id, messages_mode="full")
        if not append and history.last_messages(1):
            raise CliError(
                f"session {visible(session_id)!r} already holds messages: pass --append to add "
                "after them, or clear it first"
            )
        _write(history.add_messages, found.messages, found.sizes, shown)
    _note(f"imported {len(found.messages)} messages into session {visible(session_id)!r}")


def _write(
    add: Callable[[list[BaseMessage]], None],
    messages: list[BaseMessage],
    sizes: list[int],
    shown: Progress,
) -> None:
    """Write ``messages`` in chunks (each bounded by the write timeout), showing progress."""
    shown.start(len(messages))
    start = 0
    while start < len(messages):
        end, size = start + 1, sizes[start]
        while end < len(messages) and end - start < _CHUNK and size + sizes[end] <= _CHUNK_BYTES:
            size += sizes[end]
            end += 1
        try:
            add(messages[start:end])
        except SessionWriteError as exc:
            stored = start + exc.acknowledged
            rest = "the rest may still appear" if exc.indeterminate else "the rest were not"
            raise CliError(f"{exc} ({stored} of {len(messages)} stored; {rest})") from exc
        shown.advance(end - start)
        start = end
    shown.finish()


@main.command()
@_SESSION
@_YES
@connection_options()
def clear(conn: Connection, session_id: str, yes: bool) -> None:
    """Remove every message of a session; the session stays (asks unless --yes)."""
    with conn.client() as client:
        _require(client, session_id, conn.shared_topic)
        _confirm(f"clear every message of session {visible(session_id)!r}", yes)
        client.history(session_id).clear()
    _note(f"cleared session {visible(session_id)!r}")


@main.command()
@_SESSION
@_YES
@connection_options()
def delete(conn: Connection, session_id: str, yes: bool) -> None:
    """Delete a session and its messages for good (asks unless --yes)."""
    with conn.client() as client:
        _require(client, session_id, conn.shared_topic)
        _confirm(f"delete session {visible(session_id)!r} for good", yes)
        if not client.delete_session(session_id):  # deleted by someone else meanwhile
            _require(client, session_id, conn.shared_topic)
    _note(f"deleted session {visible(session_id)!r}")


@main.command()
@click.argument("session_ids", nargs=-1, metavar="[SESSION]...")
@click.option("--to-shared-topic", metavar="TOPIC", help="Copy topic-per-session sessions here.")
@click.option("--from-shared-topic", metavar="TOPIC", help="Copy sessions from here to topics.")
@_PROGRESS
@connection_options(shared=False)
def migrate(
    conn: Connection,
    session_ids: tuple[str, ...],
    to_shared_topic: str | None,
    from_shared_topic: str | None,
    progress: bool | None,
) -> None:
    """Copy sessions into a shared topic, or out of one into a topic each (idempotent).

    Appends what the target lacks, in order: running it again copies nothing twice. Without
    SESSION arguments every session of the source is copied; --to-shared-topic then needs
    --topic-prefix.
    """
    shared_topic = to_shared_topic or from_shared_topic
    if shared_topic is None or (to_shared_topic and from_shared_topic):
        raise click.UsageError("pass one of --to-shared-topic TOPIC or --from-shared-topic TOPIC")
    to_shared = to_shared_topic is not None
    if to_shared and not session_ids and not conn.topic_prefix:
        raise click.UsageError(
            "name the sessions to migrate, or give --topic-prefix: without a prefix every "
            "topic of the cluster would be taken for a session"
        )
    if not to_shared:
        conn.require_topic(shared_topic)
    way = "to" if to_shared else "from"
    shown = _progress(progress, f"migrating {way} {shared_topic!r}", "sessions")
    with conn.client() as topics:
        copied: dict[str, int] = topics.call(
            _migrate, topics.core, conn.options(shared_topic), to_shared, list(session_ids), shown
        )
    if not copied:
        _note("no sessions to migrate")
        return
    for line in session_table(list(copied.items()), "COPIED"):
        click.echo(line)
    into = "into" if to_shared else "out of"
    _note(
        f"copied {sum(copied.values())} messages of {len(copied)} sessions {into} {shared_topic!r}"
    )


async def _migrate(
    topics: AsyncKafkaHistoryClient,
    shared_options: dict[str, Any],
    to_shared: bool,
    ids: list[str],
    shown: Progress,
) -> dict[str, int]:
    """Copy ``ids`` (default: every session of the source) between the two layouts."""
    shared_topic = shared_options["shared_topic"]
    async with AsyncKafkaHistoryClient(**shared_options) as shared:
        source, target = (topics, shared) if to_shared else (shared, topics)
        if not ids:
            ids = await source.list_sessions()
            if to_shared:  # the shared topic may sit under the prefix: it is not a session
                ids = [i for i in ids if topics.history(i).topic != shared_topic]
        for session_id in ids:  # every id checked in both layouts before anything is copied
            shared.history(session_id)
            if topics.history(session_id).topic == shared_topic:
                raise CliError(f"session {visible(session_id)!r} names the shared topic itself")
        shown.start(len(ids))
        copied = await copy_sessions(source, target, ids, progress=lambda _, __: shown.advance())
        shown.finish()
        return copied


# -- LangGraph ---------------------------------------------------------------------------------

_EXTRA = "pip install 'aiokafka-history[langgraph]'"


@main.command(name="move-to-thread")
@_SESSION
@click.argument("thread_id", metavar="THREAD")
@click.option(
    "--checkpoint-topic",
    metavar="TOPIC",
    default="langgraph-checkpoints",  # the savers' DEFAULT_TOPIC (not imported: optional)
    show_default=True,
    help="The checkpointer's topic (created if missing).",
)
@click.option("--checkpoint-ns", metavar="NS", default="", help="Namespace (default: the graph).")
@click.option(
    "--channel", metavar="KEY", default="messages", show_default=True, help="The state key."
)
@click.option("--clear", is_flag=True, help="Clear the session once the checkpoint is stored.")
@connection_options()
def move_to_thread(
    conn: Connection,
    session_id: str,
    thread_id: str,
    checkpoint_topic: str,
    checkpoint_ns: str,
    channel: str,
    clear: bool,
) -> None:
    """Append a session's messages to a LangGraph thread's state (needs the langgraph extra).

    Writes one checkpoint (a state update) after the thread's newest one, read and written by
    AsyncKafkaSaver / KafkaSaver on --checkpoint-topic. A message whose id the thread holds is
    not added again, so running it again adds only what is new. Prints the new checkpoint id.
    """
    with conn.client() as client:
        _require(client, session_id, conn.shared_topic)  # first: a typo says so, extra or not
        try:
            from .langgraph import KafkaSaver, move_session_to_thread
        except ModuleNotFoundError as exc:  # the optional extra is not installed
            if (exc.name or "").partition(".")[0] != "langgraph":
                raise
            raise CliError(f"move-to-thread needs LangGraph's checkpointer: {_EXTRA}") from exc
        history = client.history(session_id, messages_mode="full")
        if history.topic == checkpoint_topic:
            raise CliError(
                f"--checkpoint-topic {checkpoint_topic!r} holds the session itself: name a "
                "topic of its own for the checkpoints"
            )
        saver = KafkaSaver(client, topic=checkpoint_topic)
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        }
        held = _held(saver.get_tuple(config), channel)
        stored = move_session_to_thread(
            history,
            saver,
            thread_id,
            channel=channel,
            checkpoint_ns=checkpoint_ns,
            clear=clear,
        )
        now = _held(saver.get_tuple(stored), channel)
    click.echo(stored["configurable"]["checkpoint_id"])
    cleared = f"; cleared session {visible(session_id)!r}" if clear else ""
    _note(
        f"added {now - held} messages of session {visible(session_id)!r} to thread "
        f"{visible(thread_id)!r}, which holds {now}{cleared}"
    )


def _held(found: CheckpointTuple | None, channel: str) -> int:
    """How many messages ``channel`` of a checkpoint tuple holds (0 without a checkpoint)."""
    if found is None:
        return 0
    return len(found.checkpoint["channel_values"].get(channel) or [])

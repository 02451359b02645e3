"""The ``aiokafka-history`` command line, end to end on the real broker.

Most runs go through click's CliRunner on the command the installed console-script entry
point names; the ones that need a real process (a terminal prompt, Ctrl-C, nothing but one
line on stderr) run the console script next to ``sys.executable``. Each command runs in both
storage layouts; each error path is provoked and must end as one line with its exit status.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import json
import os
import pty
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
)

from aiokafka_history import KafkaHistoryClient
from kafkalocal import SecureKafka, TopicFactory

(_ENTRY,) = importlib.metadata.entry_points(group="console_scripts", name="aiokafka-history")
COMMAND = _ENTRY.load()
SCRIPT = Path(sys.executable).with_name("aiokafka-history")
PROG = "aiokafka-history: "
ERROR = "aiokafka-history: error: "
UNREACHABLE = ["--bootstrap-servers", "127.0.0.1:1", "--timeout", "3"]

LONG = "whats up? " + "blah " * 60 + "THE END"
MESSAGES: list[BaseMessage] = [
    HumanMessage("hi!"),
    AIMessage(LONG),
    SystemMessage("line one\nline two \x1b[31mred\x1b[0m 漢字"),
]


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without the CLI's variables, plus ``extra``."""
    ours = ("KAFKA_BOOTSTRAP_SERVERS", "AIOKAFKA_HISTORY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {**env, **extra}


def cli(*args: str, input: str | bytes | None = None, **env: str | None) -> Result:
    """Run the command in this process (stderr kept apart) with a clean environment."""
    runner = (
        CliRunner(mix_stderr=False)  # click 8.1; later versions always keep it apart
        if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters
        else CliRunner()
    )
    cleared: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("KAFKA_BOOTSTRAP_SERVERS", "AIOKAFKA_"))
    }
    return runner.invoke(COMMAND, list(args), input=input, env={**cleared, **env})


def run_script(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a real process."""
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=_environment(**env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def assert_one_error(result: Result | subprocess.CompletedProcess[str], code: int) -> str:
    """The run failed with ``code`` and said so in one line, without a traceback."""
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    stderr = result.stderr
    assert exit_code == code, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith(ERROR)]
    assert stderr.strip().splitlines()[-1] == line
    return line


def assert_ok(result: Result) -> Result:
    assert result.exit_code == 0, result.stderr
    assert ERROR not in result.stderr
    return result


@dataclass
class Target:
    """A storage layout on a broker, as the library and the CLI address it."""

    bootstrap: str
    options: dict[str, Any]
    args: list[str]
    new_session: Callable[[str], str]

    def client(self) -> KafkaHistoryClient:
        return KafkaHistoryClient(self.bootstrap, **self.options)

    def seed(self, session_id: str, messages: list[BaseMessage]) -> None:
        with self.client() as client:
            client.history(session_id).add_messages(messages)

    def messages(self, session_id: str) -> list[BaseMessage]:
        with self.client() as client:
            return client.history(session_id, messages_mode="full").messages


@pytest.fixture
def target(kafka_bootstrap: str, layout: dict[str, Any], kafka_topics: TopicFactory) -> Target:
    """The test's layout; topic-per-session sessions live under a prefix of their own."""
    if layout:
        args = ["--bootstrap-servers", kafka_bootstrap, "--shared-topic", layout["shared_topic"]]
        return Target(kafka_bootstrap, layout, args, lambda label: f"{label} {uuid.uuid4().hex}")
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    args = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]
    return Target(
        kafka_bootstrap,
        {"topic_prefix": prefix},
        args,
        lambda label: kafka_topics(label, prefix=prefix).removeprefix(prefix),
    )


def _table_rows(stdout: str) -> dict[str, int]:
    """``SESSION  COUNT`` rows (after the header) as a dict."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        name, _, count = line.rstrip().rpartition(" ")
        rows[name.strip()] = int(count)
    return rows


# -- sessions, show, export, import ---------------------------------------------------------------


def test_sessions_lists_every_session_with_its_count(target: Target) -> None:
    none = cli("sessions", *target.args)
    if target.options.get("shared_topic"):  # not created by reading: it may be misspelt
        assert "shared topic" in assert_one_error(none, 1) and "does not exist" in none.stderr
    else:
        assert none.stdout == "" and f"{PROG}no sessions" in assert_ok(none).stderr
    first, second = target.new_session("first"), target.new_session("second")
    target.seed(first, MESSAGES)
    target.seed(second, MESSAGES[:1])

    listed = assert_ok(cli("sessions", "--progress", *target.args))
    assert listed.stdout.splitlines()[0].split() == ["SESSION", "MESSAGES"]
    assert _table_rows(listed.stdout) == {first: 3, second: 1}
    assert f"{PROG}counting messages: 2/2 sessions" in listed.stderr

    ids = assert_ok(cli("sessions", "--no-counts", *target.args))
    assert sorted(ids.stdout.splitlines()) == sorted([first, second])


def test_show_prints_a_table_cut_to_the_width_with_controls_escaped(target: Target) -> None:
    session = target.new_session("show")
    target.seed(session, MESSAGES)

    shown = assert_ok(cli("show", session, "--width", "100", *target.args))
    header, *rows = shown.stdout.splitlines()
    assert header.split() == ["TIME", "(UTC)", "ROLE", "CONTENT"]
    assert [row.split()[2] for row in rows] == ["human", "ai", "system"]
    assert rows[0].endswith("  human   hi!")
    assert len(rows[1]) <= 100 and rows[1].endswith("blah…") and "THE END" not in rows[1]
    assert rows[2].endswith("  system  line one line two \\x1b[31mred\\x1b[0m 漢字")
    assert "\x1b" not in shown.stdout

    # 39 cells left for the content: 漢 (2 cells) no longer fits before the ellipsis.
    narrow = assert_ok(cli("show", session, "--width", "68", *target.args))
    assert narrow.stdout.splitlines()[3].endswith("\\x1b[0m…")

    full = assert_ok(cli("show", session, "--full", "--width", "40", *target.args))
    assert LONG in full.stdout
    assert "\n" + " " * len("2026-01-01 00:00:00  system  ") + "line two" in full.stdout

    last = assert_ok(cli("show", session, "--last", "1", *target.args))
    assert len(last.stdout.splitlines()) == 2 and "system" in last.stdout


def test_export_then_import_round_trips_a_session(target: Target, tmp_path: Path) -> None:
    source, copy = target.new_session("source"), target.new_session("copy")
    target.seed(source, MESSAGES)
    dump = tmp_path / "dump.jsonl"

    exported = assert_ok(cli("export", source, "-o", str(dump), "--progress", *target.args))
    assert f"exported 3 messages of session {source!r} to {dump}" in exported.stderr
    assert f"exporting session {source!r}: 3/3 messages" in exported.stderr
    lines = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert [line["message"] for line in lines] == [message_to_dict(m) for m in MESSAGES]
    assert all(line["time"].endswith("+00:00") for line in lines)
    assert not [p for p in tmp_path.iterdir() if p != dump]  # no temporary file left

    to_stdout = assert_ok(cli("export", source, *target.args))
    assert to_stdout.stdout == dump.read_text(encoding="utf-8")

    imported = assert_ok(cli("import", copy, str(dump), "--progress", *target.args))
    assert f"importing into session {copy!r}: 3/3 messages" in imported.stderr
    assert f"imported 3 messages into session {copy!r}" in imported.stderr
    assert target.messages(copy) == MESSAGES

    again = cli("import", copy, str(dump), *target.args)
    assert "already holds messages: pass --append" in assert_one_error(again, 1)
    assert target.messages(copy) == MESSAGES

    # Bare message_to_dict lines from stdin, blank lines skipped, added with --append.
    bare = "\n".join(json.dumps(message_to_dict(m)) for m in MESSAGES[:2]) + "\n\n"
    assert_ok(cli("import", copy, "-", "--append", *target.args, input=bare))
    assert target.messages(copy) == MESSAGES + MESSAGES[:2]


def test_encoded_session_ids_address_any_session_id(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, session = f"cli-{uuid.uuid4().hex[:8]}.", "user 42/ünïcode"
    connection = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]
    dump = tmp_path / "one.jsonl"
    dump.write_text(json.dumps(message_to_dict(MESSAGES[0])) + "\n", encoding="utf-8")
    assert "[a-zA-Z0-9._-]" in assert_one_error(cli("import", session, str(dump), *connection), 1)

    encoded = [*connection, "--encode-session-ids"]
    try:
        assert_ok(cli("import", session, str(dump), *encoded))
        assert assert_ok(cli("sessions", "--no-counts", *encoded)).stdout == f"{session}\n"
        assert "hi!" in assert_ok(cli("show", session, *encoded)).stdout
    finally:
        assert_ok(cli("delete", session, "--yes", *encoded))


def test_an_empty_session_shows_and_exports_nothing(target: Target) -> None:
    session = target.new_session("empty")
    target.seed(session, MESSAGES[:1])
    with target.client() as client:
        client.history(session).clear()

    shown, exported = cli("show", session, *target.args), cli("export", session, *target.args)
    if target.options.get("shared_topic"):  # a cleared shared session exists only by its positions
        assert "not found" in assert_one_error(shown, 1)
        assert "not found" in assert_one_error(exported, 1)
    else:  # its topic stays
        assert f"session {session!r} has no messages" in assert_ok(shown).stderr
        assert shown.stdout == ""
        assert assert_ok(exported).stdout == ""


# -- import: validation first --------------------------------------------------------------------


def test_import_reports_every_bad_line_by_number_and_writes_nothing(
    target: Target, tmp_path: Path
) -> None:
    session = target.new_session("bad-import")
    good = json.dumps(
        {"time": "2026-01-01T00:00:00+00:00", "message": message_to_dict(MESSAGES[0])}
    )
    secret = "payload-that-must-not-be-echoed"
    lines = [
        good.encode(),  # 1
        b'{"type": "human", "data": {"content": "' + secret.encode() + b'"',  # 2: not JSON
        b"[1, 2]",  # 3: not an object
        json.dumps({"type": "gossip", "data": {"content": secret}}).encode(),  # 4
        json.dumps({"type": "human"}).encode(),  # 5: no data
        json.dumps({"type": "human", "data": {"content": 5}}).encode(),  # 6: content no str
        b"\xff\xfe" + secret.encode(),  # 7: not UTF-8
        json.dumps({"time": "yesterday", "message": message_to_dict(MESSAGES[0])}).encode(),  # 8
        json.dumps(message_to_dict(HumanMessage("x" * (1024 * 1024)))).encode(),  # 9: too big
        json.dumps({"data": {"content": secret}}).encode(),  # 10: no type
        good.encode(),  # 11
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = cli("import", session, str(path), *target.args)

    line = assert_one_error(result, 1)
    assert line == f"{ERROR}{path}: 9 of 11 lines are not messages; nothing written"
    reported = [row for row in result.stderr.splitlines() if row.startswith("line ")]
    assert [row.split(":")[0] for row in reported] == [f"line {n}" for n in range(2, 11)]
    assert "not JSON" in reported[0]
    assert "expected a JSON object, got an array" in reported[1]
    assert "unknown message type 'gossip'" in reported[2]
    assert '"data" must be a JSON object' in reported[3]
    assert "invalid field 'content'" in reported[4]
    assert "not UTF-8" in reported[5]
    assert '"time" is not an ISO-8601 time' in reported[6]
    assert "bytes once encoded, over the" in reported[7]
    assert 'no "type"' in reported[8]
    assert secret not in result.stderr
    assert result.stdout == ""
    with target.client() as client:
        assert not client.session_exists(session)


def test_import_lists_at_most_100_bad_lines_and_counts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_text("junk\n" * 150, encoding="utf-8")

    # Validation comes before any connection: an unreachable broker is never asked.
    result = cli("import", "session", str(path), *UNREACHABLE)

    assert assert_one_error(result, 1).endswith(
        "150 of 150 lines are not messages; nothing written"
    )
    assert len([row for row in result.stderr.splitlines() if row.startswith("line ")]) == 100
    assert "... and 50 more bad lines" in result.stderr


def test_an_import_file_without_messages_writes_nothing(target: Target, tmp_path: Path) -> None:
    session, path = target.new_session("nothing"), tmp_path / "blank.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    result = assert_ok(cli("import", session, str(path), *target.args))
    assert "holds no messages; nothing written" in result.stderr
    with target.client() as client:
        assert not client.session_exists(session)


# -- tail ----------------------------------------------------------------------------------------


def test_tail_from_the_beginning_stops_after_the_idle_timeout(target: Target) -> None:
    session = target.new_session("tail")
    target.seed(session, MESSAGES[:2])
    started = time.monotonic()
    result = assert_ok(
        cli("tail", session, "--from", "beginning", "--idle-timeout", "1", "--width", "40",
            *target.args)
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert f"following session {session!r} from beginning" in result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["human", "ai"]
    assert lines[0].split(maxsplit=1)[1] == "hi!"
    assert lines[1].endswith("…") and len(lines[1]) <= 40


class _Output:
    """What a child writes to stdout and stderr, as it comes (read on threads)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._seen = {"stdout": b"", "stderr": b""}
        self._chunks: dict[str, queue.Queue[bytes | None]] = {}
        for name in self._seen:
            self._chunks[name] = chunks = queue.Queue()
            stream = getattr(process, name)
            threading.Thread(target=self._pump, args=(stream, chunks), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[bytes], into: queue.Queue[bytes | None]) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            into.put(chunk)
        into.put(None)

    def wait_for(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self._seen[name]:
            chunk = self._chunks[name].get(timeout=max(0.01, deadline - time.monotonic()))
            assert chunk is not None, f"{name} ended without {text!r}: {self._seen}"
            self._seen[name] += chunk

    def rest(self, name: str) -> str:
        while (chunk := self._chunks[name].get(timeout=30)) is not None:
            self._seen[name] += chunk
        return self._seen[name].decode()


def _start(args: list[str], stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start the installed console script as a real process."""
    return subprocess.Popen(
        [str(SCRIPT), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(),
    )


def test_tail_follows_live_messages_and_ctrl_c_exits_0_without_a_traceback(
    target: Target,
) -> None:
    session = target.new_session("live")
    target.seed(session, MESSAGES[:1])
    with _start(["tail", session, *target.args]) as process:
        try:
            lines = _Output(process)
            lines.wait_for("stderr", "following session")
            target.seed(session, [HumanMessage("live one")])
            lines.wait_for("stdout", "live one")

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        stderr, stdout = lines.rest("stderr"), lines.rest("stdout")
    assert "Traceback" not in stderr and ERROR not in stderr
    assert stdout.splitlines() == ["human     live one"]  # from "latest": only what is new


# -- clear and delete ----------------------------------------------------------------------------


def test_clear_and_delete_ask_and_refuse_without_a_terminal(target: Target) -> None:
    session = target.new_session("remove")
    target.seed(session, MESSAGES)

    for command in ("clear", "delete"):
        refused = cli(command, session, *target.args)
        assert "without confirmation (no terminal): pass --yes" in assert_one_error(refused, 1)
    assert target.messages(session) == MESSAGES

    assert (
        f"cleared session {session!r}"
        in assert_ok(cli("clear", session, "--yes", *target.args)).stderr
    )
    assert target.messages(session) == []
    target.seed(session, MESSAGES[:1])

    deleted = assert_ok(cli("delete", session, "--yes", *target.args))
    assert f"deleted session {session!r}" in deleted.stderr
    with target.client() as client:
        assert not client.session_exists(session)


def test_commands_on_an_unknown_session_fail_and_create_nothing(
    target: Target, tmp_path: Path
) -> None:
    target.seed(target.new_session("other"), MESSAGES[:1])  # the shared topic exists
    session = target.new_session("unknown")
    out = tmp_path / "out.jsonl"
    for args in (
        ["show", session],
        ["export", session, "-o", str(out)],
        ["tail", session, "--idle-timeout", "1"],
        ["clear", session, "--yes"],
        ["delete", session, "--yes"],
        ["move-to-thread", session, "thread-1"],
    ):
        line = assert_one_error(cli(*args, *target.args), 1)
        assert f"session {session!r} not found" in line
        assert "sessions` lists them" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with target.client() as client:
        assert not client.session_exists(session)


def _run_with_terminal(args: list[str], answer: bytes) -> subprocess.CompletedProcess[str]:
    """Run the console script with a pseudo-terminal as stdin, answering its prompt."""
    main, child = pty.openpty()
    try:
        with subprocess.Popen(
            [str(SCRIPT), *args],
            stdin=child,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
        ) as process:
            os.close(child)
            os.write(main, answer)
            stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(main)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_delete_asks_on_a_terminal_and_does_nothing_unless_confirmed(target: Target) -> None:
    session = target.new_session("asked")
    target.seed(session, MESSAGES[:1])

    declined = _run_with_terminal(["delete", session, *target.args], b"n\n")
    # The answer's newline is echoed on the terminal, not into the stderr pipe.
    prompt, _, after = declined.stderr.partition("[y/N]:")
    assert prompt == f"Delete session {session!r} for good? "
    assert after.lstrip() == f"{ERROR}not confirmed: did not delete session {session!r} for good\n"
    assert declined.returncode == 1
    assert target.messages(session) == MESSAGES[:1]

    accepted = _run_with_terminal(["delete", session, *target.args], b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert f"deleted session {session!r}" in accepted.stderr
    with target.client() as client:
        assert not client.session_exists(session)


def test_ctrl_c_at_the_prompt_aborts_and_deletes_nothing(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    session = kafka_topics(prefix=prefix).removeprefix(prefix)
    target = Target(kafka_bootstrap, {"topic_prefix": prefix}, [], lambda _: "")
    target.seed(session, MESSAGES[:1])
    args = ["delete", session, "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]
    main, child = pty.openpty()
    try:
        with _start(args, stdin=child) as process:
            os.close(child)
            lines = _Output(process)
            lines.wait_for("stderr", "[y/N]:")
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 1
            stderr = lines.rest("stderr")
            lines.rest("stdout")
    finally:
        os.close(main)
    assert stderr.endswith(f"{ERROR}aborted\n") and "Traceback" not in stderr
    assert target.messages(session) == MESSAGES[:1]


# -- migrate -------------------------------------------------------------------------------------


def test_migrate_to_a_shared_topic_and_back_is_idempotent(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    shared = kafka_topics("shared")
    first, second, third = (kafka_topics(prefix=prefix).removeprefix(prefix) for _ in range(3))
    topics = Target(kafka_bootstrap, {"topic_prefix": prefix}, [], lambda _: "")
    into = Target(kafka_bootstrap, {"shared_topic": shared}, [], lambda _: "")
    topics.seed(first, MESSAGES)
    topics.seed(second, MESSAGES[:1])
    connection = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]

    moved = assert_ok(cli("migrate", "--to-shared-topic", shared, "--progress", *connection))
    assert _table_rows(moved.stdout) == {first: 3, second: 1}
    assert f"migrating to {shared!r}: 2/2 sessions" in moved.stderr
    assert f"copied 4 messages of 2 sessions into {shared!r}" in moved.stderr
    assert into.messages(first) == MESSAGES and into.messages(second) == MESSAGES[:1]

    again = assert_ok(cli("migrate", "--to-shared-topic", shared, first, *connection))
    assert _table_rows(again.stdout) == {first: 0}

    # Back: a session only the shared topic holds gets a topic; the others are complete.
    into.seed(third, MESSAGES[1:])
    back = assert_ok(cli("migrate", "--from-shared-topic", shared, *connection))
    assert _table_rows(back.stdout) == {first: 0, second: 0, third: 2}
    assert topics.messages(third) == MESSAGES[1:]

    missing = cli("migrate", "--from-shared-topic", f"{shared}-typo", *connection)
    assert f"shared topic '{shared}-typo' does not exist" in assert_one_error(missing, 1)

    # A target holding other messages is refused, and nothing of that session is written.
    topics.seed(second, [HumanMessage("only in the topic")])
    into.seed(second, [HumanMessage("only in the shared topic")])
    refused = cli("migrate", "--to-shared-topic", shared, second, *connection)
    assert "not the source's first ones" in assert_one_error(refused, 1)
    assert into.messages(second) == [*MESSAGES[:1], HumanMessage("only in the shared topic")]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["migrate"], "pass one of --to-shared-topic TOPIC or --from-shared-topic TOPIC"),
        (["migrate", "--to-shared-topic", "a", "--from-shared-topic", "b"], "pass one of"),
        (["migrate", "--to-shared-topic", "s"], "name the sessions to migrate, or give --topic"),
    ],
)
def test_migrate_usage_errors(args: list[str], says: str) -> None:
    assert says in assert_one_error(cli(*args, *UNREACHABLE), 2)


# -- move-to-thread (the langgraph extra) -----------------------------------------------------

WITH_IDS = [m.model_copy(update={"id": f"m-{i}"}) for i, m in enumerate(MESSAGES)]


async def _thread_state(bootstrap: str, topic: str, thread: str, channel: str) -> tuple[str, Any]:
    """The id and ``channel`` of the thread's newest checkpoint, read by ``AsyncKafkaSaver``."""
    from aiokafka_history.langgraph import AsyncKafkaSaver

    async with AsyncKafkaSaver.from_conn_string(bootstrap, topic=topic) as saver:
        found = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    assert found is not None
    values = found.checkpoint["channel_values"]
    return found.config["configurable"]["checkpoint_id"], values[channel]


def test_move_to_thread_moves_a_session_and_again_adds_only_what_is_new(
    target: Target, kafka_topics: TopicFactory
) -> None:
    session, checkpoints = target.new_session("move"), kafka_topics("checkpoints")
    target.seed(session, WITH_IDS)
    move = ["move-to-thread", session, "thread-1", "--checkpoint-topic", checkpoints]

    moved = assert_ok(cli(*move, *target.args))
    said = f"added 3 messages of session {session!r} to thread 'thread-1', which holds 3"
    assert said in moved.stderr
    checkpoint_id, messages = asyncio.run(
        _thread_state(target.bootstrap, checkpoints, "thread-1", "messages")
    )
    assert moved.stdout == f"{checkpoint_id}\n" and messages == WITH_IDS

    again = assert_ok(cli(*move, *target.args))  # nothing new: one more checkpoint, same state
    assert "added 0 messages" in again.stderr and "which holds 3" in again.stderr
    assert again.stdout != moved.stdout
    assert asyncio.run(_thread_state(target.bootstrap, checkpoints, "thread-1", "messages")) == (
        again.stdout.strip(),
        WITH_IDS,
    )

    more = HumanMessage("one more", id="m-new")
    target.seed(session, [more])
    cleared = assert_ok(cli(*move, "--clear", *target.args))
    assert "added 1 messages" in cleared.stderr and "which holds 4" in cleared.stderr
    assert f"cleared session {session!r}" in cleared.stderr
    assert target.messages(session) == []
    _, messages = asyncio.run(_thread_state(target.bootstrap, checkpoints, "thread-1", "messages"))
    assert messages == [*WITH_IDS, more]

    # Another channel of another thread; the session's own topic is refused for checkpoints.
    target.seed(session, WITH_IDS[:1])
    other = ["move-to-thread", session, "thread-2", "--channel", "chat"]
    assert_ok(cli(*other, "--checkpoint-topic", checkpoints, *target.args))
    _, messages = asyncio.run(_thread_state(target.bootstrap, checkpoints, "thread-2", "chat"))
    assert messages == WITH_IDS[:1]
    with target.client() as client:
        own = client.history(session).topic
    refused = cli(*other, "--checkpoint-topic", own, *target.args)
    assert "holds the session itself" in assert_one_error(refused, 1)


def _without_langgraph(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a process where ``import langgraph`` fails, as without the extra."""
    code = (
        "import sys; sys.modules['langgraph'] = None\n"
        "from aiokafka_history._cli import main\n"
        "main(sys.argv[1:])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_environment(),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_move_to_thread_without_the_extra_names_it_and_the_rest_still_works(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    session = kafka_topics(prefix=prefix).removeprefix(prefix)
    Target(kafka_bootstrap, {"topic_prefix": prefix}, [], lambda _: "").seed(session, MESSAGES)
    connection = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]

    failed = _without_langgraph("move-to-thread", session, "thread-1", *connection)
    line = assert_one_error(failed, 1)
    assert "pip install 'aiokafka-history[langgraph]'" in line and failed.stdout == ""

    listed = _without_langgraph("sessions", *connection)
    assert listed.returncode == 0, listed.stderr
    assert _table_rows(listed.stdout) == {session: 3}
    helped = _without_langgraph("move-to-thread", "--help")
    assert helped.returncode == 0 and "--checkpoint-topic" in helped.stdout


# -- connection and usage errors ---------------------------------------------------------------


def test_an_unreachable_broker_is_one_line_and_exit_1_in_a_real_process() -> None:
    started = time.monotonic()
    result = run_script("sessions", *UNREACHABLE)
    assert time.monotonic() - started < 30
    line = assert_one_error(result, 1)
    assert "could not connect to Kafka at '127.0.0.1:1'" in line
    assert result.stderr == line + "\n"  # aiokafka's own log stays quiet
    assert result.stdout == ""


def test_debug_adds_the_traceback() -> None:
    result = run_script("show", "some-session", *UNREACHABLE, "--debug")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "BrokerUnavailableError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"{ERROR}could not connect")


@pytest.mark.parametrize(
    "servers", ["localhost:abc", "localhost:0", "host:1:2", "::1", "a:9092,,b:9092", ""]
)
def test_a_bad_bootstrap_string_is_a_usage_error(servers: str) -> None:
    line = assert_one_error(cli("sessions", "--bootstrap-servers", servers), 2)
    assert "is not HOST:PORT" in line


def test_bootstrap_servers_come_from_the_environment() -> None:
    line = assert_one_error(cli("sessions", KAFKA_BOOTSTRAP_SERVERS="nohost:99999"), 2)
    assert "'nohost:99999' is not HOST:PORT" in line
    missing = assert_one_error(cli("sessions"), 2)
    assert "pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS" in missing
    reached = cli("sessions", "--timeout", "3", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert "could not connect to Kafka at '127.0.0.1:1'" in assert_one_error(reached, 1)


def test_a_password_flag_is_refused_without_echoing_it() -> None:
    secret = f"hunter-{uuid.uuid4().hex}"
    for args in (["--sasl-password", secret], [f"--sasl-password={secret}"]):
        result = run_script("sessions", *UNREACHABLE, *args)
        line = assert_one_error(result, 2)
        assert "--sasl-password is not an option" in line
        assert "AIOKAFKA_HISTORY_SASL_PASSWORD" in line and "--sasl-password-file" in line
        assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        (["--security-protocol", "SASL_PLAINTEXT"], {}, 2, "needs --sasl-username"),
        (["--security-protocol", "SASL_SSL", "--sasl-username", "u"], {}, 2, "no SASL password"),
        (["--sasl-username", "u"], {}, 2, "SASL options need --security-protocol SASL_*"),
        (["--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "u",
          "--sasl-password-file", "{file}"], {"AIOKAFKA_HISTORY_SASL_PASSWORD": "p"}, 2,
         "both AIOKAFKA_HISTORY_SASL_PASSWORD and --sasl-password-file"),
        (["--ca-file", "{file}"], {}, 2, "--ca-file needs --security-protocol SSL"),
        (["--security-protocol", "SSL", "--ca-file", "{file}"], {}, 1, "not PEM CA certificates"),
        (["--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "u",
          "--sasl-password-file", "{empty}"], {}, 1, "is empty"),
        (["--security-protocol", "TLS"], {}, 2, "Invalid value for '--security-protocol'"),
        (["--ca-file", "/nonexistent/ca.pem"], {}, 2, "does not exist"),
        (["--timeout", "0"], {}, 2, "Invalid value for '--timeout'"),
        (["--shared-topic", "chat", "--topic-prefix", "p."], {}, 2, "drop them"),
        (["--no-such-option"], {}, 2, "No such option"),
    ],
)  # fmt: skip
def test_bad_connection_settings_are_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, says: str
) -> None:
    (tmp_path / "file").write_text("not a certificate\n", encoding="utf-8")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    args = [a.format(file=tmp_path / "file", empty=tmp_path / "empty") for a in args]
    assert says in assert_one_error(cli("sessions", *UNREACHABLE, *args, **env), code)


def test_an_invalid_session_id_states_the_rule() -> None:
    line = assert_one_error(cli("show", "bad/name", *UNREACHABLE), 1)
    assert "bad/name" in line and "[a-zA-Z0-9._-]" in line


def test_an_unwritable_export_file_fails_before_connecting(tmp_path: Path) -> None:
    where = tmp_path / "missing-dir" / "out.jsonl"
    line = assert_one_error(cli("export", "session", "-o", str(where), *UNREACHABLE), 1)
    assert f"{where}: cannot write there" in line


def test_usage_errors_and_help(tmp_path: Path) -> None:
    assert "No such command 'frobnicate'" in assert_one_error(cli("frobnicate"), 2)
    missing = cli("import", "session", str(tmp_path / "none.jsonl"), *UNREACHABLE)
    assert "does not exist" in assert_one_error(missing, 2)
    helped = assert_ok(cli("show", "--help"))
    assert (
        "AIOKAFKA_HISTORY_TOPIC_PREFIX" in helped.stdout and "--sasl-password-file" in helped.stdout
    )
    assert "--sasl-password " not in helped.stdout
    assert assert_ok(cli("--version")).stdout.startswith("aiokafka-history, version ")


def test_ctrl_c_elsewhere_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: KafkaHistoryClient) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(KafkaHistoryClient, "list_sessions", interrupted)
    assert assert_one_error(cli("sessions", *UNREACHABLE), 130) == f"{ERROR}interrupted"


def test_an_unexpected_error_is_one_generic_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: KafkaHistoryClient) -> list[str]:
        raise RuntimeError("internal detail with a payload")

    monkeypatch.setattr(KafkaHistoryClient, "list_sessions", broken)
    result = cli("sessions", *UNREACHABLE)
    line = assert_one_error(result, 1)
    assert line == f"{ERROR}unexpected RuntimeError; run with --debug for the traceback"
    assert "payload" not in result.stderr


# -- security: SASL over TLS, a wrong password, an ACL ------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    password: str
    prefix: str


@pytest.fixture(scope="module")
def cli_user(kafka_secure: SecureKafka) -> User:
    user = User(f"cli-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}", "cli-user.")
    kafka_secure.add_user(user.name, user.password, "SCRAM-SHA-512")
    kafka_secure.allow(user.name, "topic", user.prefix, ["ALL"])
    kafka_secure.allow(user.name, "group", user.prefix, ["ALL"])
    return user


@pytest.fixture
def secure_session(kafka_secure: SecureKafka, kafka_topics: TopicFactory, cli_user: User) -> str:
    return kafka_topics.on(kafka_secure)(prefix=cli_user.prefix).removeprefix(cli_user.prefix)


def _secure_args(kafka: SecureKafka, user: User, *extra: str) -> list[str]:
    return [
        "--bootstrap-servers", kafka.sasl_ssl, "--security-protocol", "SASL_SSL",
        "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", user.name,
        "--ca-file", str(kafka.ca_file), "--timeout", "15", *extra,
    ]  # fmt: skip


def test_sasl_over_tls_with_a_password_file_and_the_failures_it_can_meet(
    kafka_secure: SecureKafka, cli_user: User, secure_session: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(cli_user.password + "\n", encoding="utf-8")
    dump = tmp_path / "in.jsonl"
    dump.write_text(json.dumps(message_to_dict(MESSAGES[0])) + "\n", encoding="utf-8")
    args = _secure_args(kafka_secure, cli_user, "--topic-prefix", cli_user.prefix)

    with_file = [*args, "--sasl-password-file", str(password_file)]
    assert_ok(cli("import", secure_session, str(dump), *with_file))
    shown = assert_ok(cli("show", secure_session, *args,
                          AIOKAFKA_HISTORY_SASL_PASSWORD=cli_user.password))  # fmt: skip
    assert shown.stdout.splitlines()[1].split()[2:] == ["human", "hi!"]

    wrong = f"wrong-{uuid.uuid4().hex}"
    refused = cli("show", secure_session, *args, AIOKAFKA_HISTORY_SASL_PASSWORD=wrong)
    assert "authentication" in assert_one_error(refused, 1).lower()
    assert wrong not in refused.stderr

    # Another tenant's topics: the ACL refuses, and the message says so.
    other = _secure_args(kafka_secure, cli_user, "--topic-prefix", "cli-other.")
    denied = cli("show", secure_session, *other, AIOKAFKA_HISTORY_SASL_PASSWORD=cli_user.password)
    assert "not authorized" in assert_one_error(denied, 1).lower()
    assert cli_user.password not in denied.stderr

    # Without the CA file the broker's certificate is not trusted.
    no_ca = [a for a in args if a not in ("--ca-file", str(kafka_secure.ca_file))]
    untrusted = cli("sessions", "--no-counts", *no_ca, AIOKAFKA_HISTORY_SASL_PASSWORD="x")
    assert "TLS" in assert_one_error(untrusted, 1)

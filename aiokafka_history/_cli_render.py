"""What the command line shows and reads: tables, safe text, progress, failures, JSON Lines.

No Kafka here and no I/O beyond the streams handed in; ``_cli`` holds the commands. Text that
came from a session is shown with its control characters escaped, so a stored message cannot
drive the terminal. A failure becomes one line and an exit status (:func:`failure`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

import click
from langchain_core.messages import BaseMessage, ChatMessage, message_to_dict, messages_from_dict

from . import KafkaHistoryError

__all__ = [
    "PROG",
    "BadLine",
    "ImportFile",
    "Progress",
    "export_line",
    "failure",
    "message_table",
    "one_line",
    "parse_import",
    "record_room",
    "session_table",
    "stderr_logging",
    "tail_line",
    "visible",
]

PROG = "aiokafka-history"

#: Kafka's request limit the library writes under, less what a record needs beyond its value:
#: the per-record overhead and the longest key either layout uses (session id + 18 bytes).
_REQUEST_LIMIT = 1024 * 1024
_RECORD_OVERHEAD = 128
_KEY_EXTRA = 18
_TIME_WIDTH = len("2026-01-01 00:00:00")
_ROLE_WIDTH = len("function")
_ELLIPSIS = "…"


def record_room(session_id: str) -> int:
    """The largest encoded message the library accepts for ``session_id`` (either layout)."""
    return _REQUEST_LIMIT - _RECORD_OVERHEAD - len(session_id.encode("utf-8")) - _KEY_EXTRA


# -- text ---------------------------------------------------------------------------------------


def visible(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` safe for a terminal: control characters escaped as ``\xNN``.

    On one line (the default) every run of whitespace, newlines included, becomes one space.
    """
    text = " ".join(text.split()) if not keep_newlines else text.replace("\r\n", "\n")
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append("    ")
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    return sum(_cells(ch) for ch in text)


def _trim(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, ending in an ellipsis when cut."""
    if _width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        cells = _cells(ch)
        if used + cells > width - 1:
            break
        out.append(ch)
        used += cells
    return "".join(out).rstrip() + _ELLIPSIS


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return visible(message.role) or "chat"
    kind = message.type
    if kind.endswith("MessageChunk"):  # "AIMessageChunk" -> "ai"
        kind = kind[: -len("MessageChunk")].lower()
    return visible(kind)


def _text(message: BaseMessage) -> str:
    """The readable text of a message: its text parts, a tag for anything else."""
    content = message.content
    parts: list[str] = []
    for block in [content] if isinstance(content, str) else content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        else:
            parts.append(f"[{block.get('type', 'block')}]")
    for call in getattr(message, "tool_calls", None) or []:
        parts.append(f"[tool call {call.get('name')}]")
    return "\n".join(part for part in parts if part)


def _row(prefix: str, message: BaseMessage, width: int | None, full: bool) -> str:
    if full:
        lines = visible(_text(message), keep_newlines=True).split("\n")
        indent = "\n" + " " * _width(prefix)
        return prefix + indent.join(lines)
    room = None if width is None else max(10, width - _width(prefix))
    text = visible(_text(message))
    return prefix + (text if room is None else _trim(text, room))


def message_table(
    rows: Sequence[tuple[datetime, BaseMessage]], *, width: int | None, full: bool
) -> list[str]:
    """``show``'s lines: a header, then time (UTC), role and content per message.

    Content is cut to ``width`` cells on one line, or shown whole with ``full``.
    """
    role_width = max([len("ROLE"), *(_width(_role(m)) for _, m in rows)])
    lines = [f"{_pad('TIME (UTC)', _TIME_WIDTH)}  {_pad('ROLE', role_width)}  CONTENT"]
    for when, message in rows:
        stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        prefix = f"{stamp}  {_pad(_role(message), role_width)}  "
        lines.append(_row(prefix, message, width, full))
    return lines


def tail_line(message: BaseMessage, *, width: int | None, full: bool) -> str:
    """``tail``'s line of one message: role and content."""
    return _row(f"{_pad(_role(message), _ROLE_WIDTH)}  ", message, width, full)


def session_table(rows: Sequence[tuple[str, int]], heading: str) -> list[str]:
    """Session ids (escaped) with a number each, under a header."""
    names = [visible(session_id) for session_id, _ in rows]
    name_width = max([len("SESSION"), *(_width(name) for name in names)])
    lines = [f"{_pad('SESSION', name_width)}  {heading}"]
    lines += [
        f"{_pad(name, name_width)}  {count:>{len(heading)}}"
        for name, (_, count) in zip(names, rows, strict=True)
    ]
    return lines


# -- progress -----------------------------------------------------------------------------------


class Progress:
    """Progress of long work on ``stream`` (None: silent).

    On a terminal one line is rewritten in place (at most 10 times a second); elsewhere a line
    is written at most once a second, and always at the end. Thread-safe enough for one
    writer at a time (the CLI's main thread or its client's loop thread, never both at once).
    """

    def __init__(self, stream: IO[str] | None, label: str, unit: str) -> None:
        self._stream = stream
        self._tty = stream is not None and stream.isatty()
        self._label = label
        self._unit = unit
        self._total: int | None = None
        self._done = 0
        self._shown = 0.0

    def start(self, total: int | None) -> None:
        """Set the amount of work and show it."""
        self._total = total
        self._show(force=True)

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units done."""
        self._done += amount
        self._show(force=False)

    def finish(self) -> None:
        """Show the final count (and end the line on a terminal)."""
        self._show(force=True)
        if self._tty and self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, *, force: bool) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        if not force and now - self._shown < (0.1 if self._tty else 1.0):
            return
        self._shown = now
        of = "" if self._total is None else f"/{self._total}"
        text = f"{PROG}: {self._label}: {self._done}{of} {self._unit}"
        self._stream.write(f"\r\x1b[K{text}" if self._tty else f"{text}\n")
        self._stream.flush()


# -- failures and logs ------------------------------------------------------------------------


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def failure(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit status of a command's failure (2: usage)."""
    if isinstance(exc, click.UsageError):
        return f"{exc.format_message()} (see --help)", 2
    if isinstance(exc, click.ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, click.Abort):  # click's form of Ctrl-C, or of a declined prompt
        return (
            ("interrupted", 130) if isinstance(exc.__cause__, KeyboardInterrupt) else ("aborted", 1)
        )
    if isinstance(exc, KafkaHistoryError):  # never holds a payload or a secret
        return str(exc) or type(exc).__name__, 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or type(exc).__name__}", 1
    return f"unexpected {type(exc).__name__}; run with --debug for the traceback", 1


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {one_line(record.getMessage())}"


@contextlib.contextmanager
def stderr_logging(debug: bool) -> Iterator[None]:
    """The library's warnings as one line each on stderr; aiokafka's log only with ``debug``.

    aiokafka logs connection failures that the library reports as exceptions anyway. The
    loggers are put back as they were afterwards.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"{PROG}: %(name)s: %(levelname)s: %(message)s") if debug else _OneLine()
    )
    levels = {
        "aiokafka_history": logging.DEBUG if debug else logging.WARNING,
        "aiokafka": logging.INFO if debug else logging.CRITICAL + 1,
        "asyncio": logging.DEBUG if debug else logging.ERROR,
    }
    saved = []
    for name, level in levels.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(level)
        logger.propagate = False
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


# -- JSON Lines ---------------------------------------------------------------------------------


def export_line(when: datetime, message: BaseMessage) -> bytes:
    """One line of an export: ``{"time": ISO-8601 UTC, "message": message_to_dict(m)}``."""
    entry = {
        "time": when.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "message": message_to_dict(message),
    }
    try:
        return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the content: JSON escapes it
        return (json.dumps(entry) + "\n").encode("ascii")


@dataclass(frozen=True)
class BadLine:
    """A line of an import file that is not a message, and why (never its content)."""

    number: int
    reason: str


@dataclass
class ImportFile:
    """What :func:`parse_import` found: the messages with their encoded sizes, or bad lines."""

    messages: list[BaseMessage] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    lines: int = 0


_SHAPE = 'expected {"type": ..., "data": {...}} or {"time": ..., "message": {...}}'


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _check_time(value: object) -> str | None:
    if not isinstance(value, str):
        return f'"time" must be an ISO-8601 string, got {_json_type(value)}'
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return '"time" is not an ISO-8601 time'
    return None


def _message(entry: Any, room: int) -> tuple[BaseMessage, int] | str:
    """The message of one parsed line and its encoded size, or why it is not one."""
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {_json_type(entry)}"
    if "message" in entry and "type" not in entry:
        if "time" in entry and (problem := _check_time(entry["time"])):
            return problem
        entry = entry["message"]
        if not isinstance(entry, dict):
            return f'"message" must be a JSON object, got {_json_type(entry)}'
    if "type" not in entry:
        return f'no "type": {_SHAPE}'
    kind = entry["type"]
    if not isinstance(kind, str):
        return f'"type" must be a string, got {_json_type(kind)}'
    if not isinstance(entry.get("data"), dict):
        return f'"data" must be a JSON object, got {_json_type(entry.get("data"))}'
    try:
        message = messages_from_dict([entry])[0]
    except Exception as exc:  # parsers quote their input: name the field, not the value
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors(include_input=False, include_url=False)[0]
            return f"invalid field {first['loc'][0]!r}: {first['msg']}"
        if isinstance(exc, ValueError) and "unexpected message type" in str(exc):
            return f"unknown message type {visible(kind[:40])!r}"
        return f"not a message ({type(exc).__name__})"
    try:
        size = len(json.dumps(message_to_dict(message)).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        return f"cannot be stored ({type(exc).__name__})"
    if size > room:
        return f"{size} bytes once encoded, over the {room} bytes a record may hold"
    return message, size


def parse_import(lines: Iterable[bytes], *, room: int, keep_bad: int) -> ImportFile:
    """Validate every line of an import file; blank lines are skipped.

    Each line is an export line or a bare ``message_to_dict`` object. Keeps the first
    ``keep_bad`` bad lines and counts them all.
    """
    found = ImportFile()
    for number, raw in enumerate(lines, start=1):
        found.lines = number
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            outcome: tuple[BaseMessage, int] | str = "not UTF-8 text"
        else:
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                outcome = _message(json.loads(text), room)
            except json.JSONDecodeError as exc:
                outcome = f"not JSON ({exc.msg} at column {exc.colno})"
            except RecursionError:
                outcome = "not JSON (nested too deeply)"
        if isinstance(outcome, str):
            found.bad_count += 1
            if len(found.bad) < keep_bad:
                found.bad.append(BadLine(number, outcome))
        else:
            found.messages.append(outcome[0])
            found.sizes.append(outcome[1])
    return found

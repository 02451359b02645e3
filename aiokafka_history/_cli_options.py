"""The ``aiokafka-history`` command line's connection options: flags, environment, secrets.

:class:`Connection` holds where and how to reach the cluster and makes the client;
:func:`connection_options` adds the options to a command. The SASL password comes from the
environment or a file, never from an argument.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import KafkaHistoryClient
from ._cli_render import visible

__all__ = ["DEBUG", "PASSWORD_ENV", "SECONDS", "CliError", "Connection", "connection_options"]

PASSWORD_ENV = "AIOKAFKA_HISTORY_SASL_PASSWORD"
_ENV = "AIOKAFKA_HISTORY_"
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+)(?::(?P<port>.*))?$")


class CliError(click.ClickException):
    """A failure to report as one line, exit status 1."""


# -- connection options -----------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the cluster, from the options and the environment."""

    bootstrap_servers: str | None
    topic_prefix: str
    shared_topic: str | None
    encode_session_ids: bool
    security_protocol: str
    sasl_mechanism: str | None
    sasl_username: str | None
    sasl_password_file: Path | None
    ca_file: Path | None
    timeout: float

    def options(self, shared_topic: str | None) -> dict[str, Any]:
        """Keyword arguments of a client of this cluster, in the layout ``shared_topic`` says."""
        if not self.bootstrap_servers:
            raise click.UsageError(
                "no Kafka to talk to: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS"
            )
        layout: dict[str, Any] = {"shared_topic": shared_topic}
        if shared_topic is None:
            layout.update(
                topic_prefix=self.topic_prefix, encode_session_ids=self.encode_session_ids
            )
        timeout = self.timeout
        return {
            "bootstrap_servers": self.bootstrap_servers,
            **layout,
            **{f"{kind}_timeout": timeout for kind in ("read", "write", "admin")},
            "close_timeout": min(timeout, 10.0),
            "request_timeout_ms": max(1000, int(min(timeout, 30.0) * 1000)),
            **self._security(),
        }

    def client(self, *, creates: bool = False) -> KafkaHistoryClient:
        """A blocking client in the layout the options chose.

        Unless the command ``creates`` sessions, a shared topic must exist: the library would
        create a misspelt one on first use.
        """
        if self.shared_topic is not None:
            if self.topic_prefix or self.encode_session_ids:
                raise click.UsageError(
                    "--topic-prefix and --encode-session-ids name per-session topics; with a "
                    "shared topic every session lives in that one topic: drop them"
                )
            if not creates:
                self.require_topic(self.shared_topic)
        return KafkaHistoryClient(**self.options(self.shared_topic))

    def require_topic(self, topic: str) -> None:
        """Raise unless ``topic`` exists (looked up as a session of an unprefixed client)."""
        options = {**self.options(None), "topic_prefix": "", "encode_session_ids": False}
        with KafkaHistoryClient(**options) as probe:
            if not probe.session_exists(topic):
                raise CliError(
                    f"shared topic {topic!r} does not exist (import and migrate create it)"
                )

    def _security(self) -> dict[str, Any]:
        protocol = self.security_protocol.upper()
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol.endswith("SSL"):
            try:
                cafile = None if self.ca_file is None else str(self.ca_file)
                options["ssl_context"] = ssl.create_default_context(cafile=cafile)
            except ssl.SSLError as exc:
                raise CliError(f"--ca-file {self.ca_file}: not PEM CA certificates") from exc
        elif self.ca_file is not None:
            raise click.UsageError("--ca-file needs --security-protocol SSL or SASL_SSL")
        if not protocol.startswith("SASL_"):
            if self.sasl_mechanism or self.sasl_username or self.sasl_password_file:
                raise click.UsageError("SASL options need --security-protocol SASL_*")
            return options
        if not self.sasl_username:
            raise click.UsageError(f"{protocol} needs --sasl-username or {_ENV}SASL_USERNAME")
        options["sasl_mechanism"] = (self.sasl_mechanism or "PLAIN").upper()
        options["sasl_plain_username"] = self.sasl_username
        options["sasl_plain_password"] = self._password()
        return options

    def _password(self) -> str:
        from_env = os.environ.get(PASSWORD_ENV)
        if self.sasl_password_file is None:
            if not from_env:
                raise click.UsageError(
                    f"no SASL password: set {PASSWORD_ENV} or pass --sasl-password-file PATH"
                )
            return from_env
        if from_env:
            raise click.UsageError(f"both {PASSWORD_ENV} and --sasl-password-file are set")
        password = self.sasl_password_file.read_text(encoding="utf-8")
        password = password.removesuffix("\n").removesuffix("\r")
        if not password:
            raise CliError(f"--sasl-password-file {self.sasl_password_file} is empty")
        return password


def _check_bootstrap(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    for entry in [] if value is None else value.split(","):
        match = _HOST_PORT.match(entry.strip())
        port = match and match.group("port")
        if match is None or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
            raise click.BadParameter(
                f"{visible(entry.strip())!r} is not HOST:PORT (a host name or address, [IPv6] "
                "in brackets, a port 1-65535; several separated by commas)"
            )
    return value


def _refuse_password(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--sasl-password is not an option: a password in the arguments leaks into shell "
            f"history and process lists; set {PASSWORD_ENV} or use --sasl-password-file PATH"
        )


def _env(name: str, *decls: str, **attrs: Any) -> Callable[[Any], Any]:
    """An option that may also come from the environment variable ``AIOKAFKA_HISTORY_<name>``."""
    envvar = name if name.startswith("KAFKA_") else f"{_ENV}{name}"
    return click.option(*decls, envvar=envvar, show_envvar=True, **attrs)


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_PROTOCOLS = click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], case_sensitive=False)
_MECHANISMS = click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], case_sensitive=False)
SECONDS = click.FloatRange(min=0, min_open=True, max=86400)
DEBUG = click.option("--debug", is_flag=True, expose_value=False, help="Show tracebacks, logs.")


def connection_options(*, shared: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """Add the connection options to a command and hand it a :class:`Connection`."""
    options = [
        _env("KAFKA_BOOTSTRAP_SERVERS", "--bootstrap-servers", metavar="HOST:PORT[,...]",
             callback=_check_bootstrap, help="Kafka's bootstrap servers."),
        _env("TOPIC_PREFIX", "--topic-prefix", default="", help="Prefix of each session's topic."),
        *([_env("SHARED_TOPIC", "--shared-topic", metavar="TOPIC",
                help="Sessions live in this one shared topic.")] if shared else []),
        _env("ENCODE_SESSION_IDS", "--encode-session-ids", is_flag=True,
             help="Session ids are encoded into topic names."),
        _env("SECURITY_PROTOCOL", "--security-protocol", type=_PROTOCOLS, default="PLAINTEXT"),
        _env("SASL_MECHANISM", "--sasl-mechanism", type=_MECHANISMS, help="Default: PLAIN."),
        _env("SASL_USERNAME", "--sasl-username"),
        _env("SASL_PASSWORD_FILE", "--sasl-password-file", type=_FILE,
             help=f"File holding the SASL password (else ${PASSWORD_ENV})."),
        click.option("--sasl-password", hidden=True, expose_value=False, is_eager=True,
                     callback=_refuse_password),
        _env("CA_FILE", "--ca-file", type=_FILE, help="CA certificates (PEM) to trust for TLS."),
        _env("TIMEOUT", "--timeout", type=SECONDS, default=30.0, show_default=True,
             help="Seconds each Kafka call may take."),
        DEBUG,
    ]  # fmt: skip
    names = Connection.__dataclass_fields__

    def decorate(command: Callable[..., Any]) -> Any:
        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            return command(Connection(**{"shared_topic": None, **given}), **kwargs)

        for option in reversed(options):
            run = option(run)
        return run

    return decorate

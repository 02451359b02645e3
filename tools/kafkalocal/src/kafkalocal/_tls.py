"""A throw-away certificate authority and broker key stores, made with the ``openssl`` CLI.

Files written to the given directory:

``ca.pem``             the CA certificate, for clients (``create_default_context(cafile=...)``)
``ca.key``             its private key
``server.p12``         PKCS#12 key store: key and certificate for 127.0.0.1 and localhost
``wrong-host.p12``     the same, but valid only for :data:`WRONG_HOSTNAME`
``*.pem``, ``*.key``   the certificates and keys inside the key stores

EC P-256 keys, two days of validity; everything takes a few tens of milliseconds.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import KafkaStartError

__all__ = ["WRONG_HOSTNAME", "TlsFiles", "make_tls_files"]

#: The only name in the certificate of the mismatched listener: a reserved, never-resolving name.
WRONG_HOSTNAME = "wrong-host.kafkalocal.invalid"
_DAYS = "2"
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
_TIMEOUT_S = 60


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA and the key stores are; the key store password is not in ``repr``."""

    ca_file: Path
    keystore: Path
    wrong_host_keystore: Path
    password: str = field(repr=False)


def _openssl(directory: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaStartError(
            "openssl is not on PATH: install it (e.g. `apt-get install openssl`) so kafkalocal "
            "can make the certificates of the secure broker"
        )
    try:
        result = subprocess.run(
            [openssl, *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaStartError(f"openssl {args[0]} failed: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise KafkaStartError(
            f"openssl {args[0]} failed (exit code {result.returncode}):\n{output[-2000:]}"
        )


def _server_certificate(directory: Path, name: str, san: str, password: str) -> Path:
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={san}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="ascii",
    )
    _openssl(
        directory, "req", "-new", *_EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", str(secrets.randbits(63)), "-days", _DAYS, "-sha256",
        "-extfile", f"{name}.ext", "-out", f"{name}.pem",
    )  # fmt: skip
    _openssl(
        directory, "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key",
        "-certfile", "ca.pem", "-name", "kafka", "-out", f"{name}.p12",
        "-passout", f"pass:{password}",
    )  # fmt: skip
    return directory / f"{name}.p12"


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and two server key stores signed by it in ``directory`` (created).

    Raises:
        KafkaStartError: openssl is missing or failed; the message carries its output.
    """
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    _openssl(
        directory, "req", "-x509", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.pem",
        "-days", _DAYS, "-sha256", "-subj", "/CN=kafkalocal test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    keystore = _server_certificate(directory, "server", "IP:127.0.0.1,DNS:localhost", password)
    wrong = _server_certificate(directory, "wrong-host", f"DNS:{WRONG_HOSTNAME}", password)
    return TlsFiles(directory / "ca.pem", keystore, wrong, password)

"""A Kafka cluster secured as production has it: SASL/SCRAM, TLS, ACLs and a super user.

Listeners of every node, all on 127.0.0.1:

==================  ==============  ====================================================
listener name       protocol        what for
==================  ==============  ====================================================
``SASL_SSL``        SASL_SSL        clients; certificate valid for 127.0.0.1 and localhost
``SASL_PLAINTEXT``  SASL_PLAINTEXT  clients, and brokers among themselves (as the admin)
``WRONG_HOST``      SASL_SSL        a certificate valid only for :data:`WRONG_HOSTNAME`
``CONTROLLER``      SASL_PLAINTEXT  KRaft, SASL/PLAIN as the admin
==================  ==============  ====================================================

Client listeners take SCRAM-SHA-512 and SCRAM-SHA-256. The authorizer is
``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``, so a user
without ACLs may authenticate but do nothing; ``User:admin`` is the only super
user. Its SCRAM credentials are written at format time (``kafka-storage format
--add-scram``); other users are added at run time (AlterUserScramCredentials).
The certificates are made by ``openssl`` for each start (see ``_tls``).
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from ._admin import RESOURCE_TYPES, AclBinding, create_acls, describe_acls, upsert_scram_credential
from ._cluster import KafkaCluster
from ._config import DEFAULT_HEAP, NodeAddress
from ._errors import KafkaAdminError
from ._tls import WRONG_HOSTNAME, TlsFiles, make_tls_files
from ._wire import SCRAM_MECHANISMS, Endpoint, KafkaConnection, SaslError, Security

__all__ = ["LISTENERS", "WRONG_HOSTNAME", "SecureKafka"]

#: The client listeners, in the order of ``NodeAddress``'s ports.
LISTENERS = ("SASL_PLAINTEXT", "SASL_SSL", "WRONG_HOST")
_ADMIN = "admin"
_SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required"
_PLAIN_JAAS = "org.apache.kafka.common.security.plain.PlainLoginModule required"
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_PROPAGATION_TIMEOUT_S = 15.0
_POLL_S = 0.05


def _mechanism_key(mechanism: str) -> str:
    return mechanism.lower()


class _SecureCustomizer:
    """The ``NodeCustomizer`` of :class:`SecureKafka`."""

    extra_ports = len(LISTENERS) - 1  # SASL_PLAINTEXT uses the broker port

    def __init__(self, password: str) -> None:
        self._password = password
        self.tls: TlsFiles | None = None

    @property
    def admin_security(self) -> Security:
        return Security("SASL_PLAINTEXT", "SCRAM-SHA-512", _ADMIN, self._password)

    def format_args(self) -> list[str]:
        args = []
        for mechanism in SCRAM_MECHANISMS:
            args += ["--add-scram", f"{mechanism}=[name={_ADMIN},password={self._password}]"]
        return args

    def customize(self, address: NodeAddress, props: dict[str, str], home: Path) -> None:
        tls_dir = home.parent / "tls"  # shared by the nodes of one start
        if self.tls is None or self.tls.ca_file.parent != tls_dir:
            self.tls = make_tls_files(tls_dir)
        host, password = address.host, self._password
        ports = dict(zip(LISTENERS, (address.broker_port, *address.extra_ports), strict=True))
        client = [f"{name}://{host}:{port}" for name, port in ports.items()]
        props["listeners"] = ",".join([*client, f"CONTROLLER://{host}:{address.controller_port}"])
        props["advertised.listeners"] = ",".join(client)
        props["listener.security.protocol.map"] = (
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,WRONG_HOST:SASL_SSL,"
            "CONTROLLER:SASL_PLAINTEXT"
        )
        props["inter.broker.listener.name"] = "SASL_PLAINTEXT"
        props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
        props["sasl.mechanism.inter.broker.protocol"] = "SCRAM-SHA-512"
        props["sasl.mechanism.controller.protocol"] = "PLAIN"
        props["listener.name.controller.sasl.enabled.mechanisms"] = "PLAIN"
        props["listener.name.controller.plain.sasl.jaas.config"] = (
            f'{_PLAIN_JAAS} username="{_ADMIN}" password="{password}" user_{_ADMIN}="{password}";'
        )
        for listener in LISTENERS:
            for mechanism in SCRAM_MECHANISMS:
                key = f"listener.name.{listener.lower()}.{_mechanism_key(mechanism)}"
                credentials = (
                    f' username="{_ADMIN}" password="{password}"'
                    if (listener, mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
                    else ""
                )
                props[f"{key}.sasl.jaas.config"] = f"{_SCRAM_JAAS}{credentials};"
        for prefix, keystore in (
            ("", self.tls.keystore),
            ("listener.name.wrong_host.", self.tls.wrong_host_keystore),
        ):
            props[f"{prefix}ssl.keystore.type"] = "PKCS12"
            props[f"{prefix}ssl.keystore.location"] = str(keystore)
            props[f"{prefix}ssl.keystore.password"] = self.tls.password
            props[f"{prefix}ssl.key.password"] = self.tls.password
        props["ssl.client.auth"] = "none"
        props["authorizer.class.name"] = _AUTHORIZER
        props["allow.everyone.if.no.acl.found"] = "false"
        props["super.users"] = f"User:{_ADMIN}"


class SecureKafka:
    """Kafka with SASL/SCRAM, TLS and ACLs on 127.0.0.1, as production runs it.

    See the module docstring for its listeners. Not thread-safe.

    Example:
        >>> with SecureKafka() as kafka:  # doctest: +SKIP
        ...     kafka.add_user("alice", "alice-secret")
        ...     kafka.allow("alice", "topic", "alice.", ["ALL"])
        ...     context = ssl.create_default_context(cafile=kafka.ca_file)
        ...     print(kafka.sasl_ssl)  # connect here with SASL_SSL and SCRAM-SHA-512

    Args:
        nodes: how many nodes (one is usual).
        version: Kafka release; default ``$KAFKA_VERSION`` or the pinned one.
        heap: ``-Xmx`` of each JVM.
        start_timeout: seconds to wait for nodes to become reachable.
        stop_timeout: seconds a node gets to shut down after SIGTERM.

    Raises:
        ValueError: ``nodes`` < 1 or a malformed version.
    """

    #: The super user.
    admin_username = _ADMIN

    def __init__(
        self,
        nodes: int = 1,
        version: str | None = None,
        *,
        heap: str = DEFAULT_HEAP,
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        #: The super user's password, made up for this instance.
        self.admin_password = secrets.token_urlsafe(16)
        self._customizer = _SecureCustomizer(self.admin_password)
        #: The underlying cluster (its ``bootstrap_servers`` is the SASL_PLAINTEXT listener).
        self.cluster = KafkaCluster(
            nodes,
            version,
            heap=heap,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            customizer=self._customizer,
        )

    def __repr__(self) -> str:
        return f"<SecureKafka nodes={self.cluster.nodes} version={self.cluster.version}>"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Make the certificates, format the storage with the admin's credentials, start.

        Raises:
            KafkaStartError: openssl, the format or a node failed; the message ends with
                the relevant output.
            RuntimeError: already started.
        """
        self.cluster.start()

    def stop(self) -> None:
        """Stop every node and delete all files, certificates included. Idempotent."""
        self.cluster.stop()

    def __enter__(self) -> SecureKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def start_seconds(self) -> float | None:
        """Return how many seconds the latest start took, certificates included."""
        return self.cluster.start_seconds

    # -- addresses and credentials ---------------------------------------------

    def bootstrap(self, listener: str) -> str:
        """Return ``host:port,...`` of ``listener`` (one of :data:`LISTENERS`) on every node.

        Raises:
            ValueError: an unknown listener.
            RuntimeError: not started.
        """
        if listener not in LISTENERS:
            raise ValueError(f"unknown listener {listener!r}: use one of {', '.join(LISTENERS)}")
        index = LISTENERS.index(listener)
        addresses = [self.cluster.node_address(i) for i in range(self.cluster.nodes)]
        return ",".join(
            f"{address.host}:{(address.broker_port, *address.extra_ports)[index]}"
            for address in addresses
        )

    @property
    def sasl_ssl(self) -> str:
        """Return the SASL_SSL listener's bootstrap servers (certificate for 127.0.0.1)."""
        return self.bootstrap("SASL_SSL")

    @property
    def sasl_plaintext(self) -> str:
        """Return the SASL_PLAINTEXT listener's bootstrap servers."""
        return self.bootstrap("SASL_PLAINTEXT")

    @property
    def wrong_host(self) -> str:
        """Return the bootstrap servers of the SASL_SSL listener with another host's certificate.

        Its certificate names only :data:`WRONG_HOSTNAME`: a client that checks host
        names must refuse it.
        """
        return self.bootstrap("WRONG_HOST")

    @property
    def wrong_hostname(self) -> str:
        """Return the only name in the ``WRONG_HOST`` listener's certificate."""
        return WRONG_HOSTNAME

    @property
    def ca_file(self) -> Path:
        """Return the PEM file of the CA that signed every listener's certificate.

        Raises:
            RuntimeError: not started.
        """
        if self._customizer.tls is None:
            raise RuntimeError("this SecureKafka is not started")
        return self._customizer.tls.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        """Return a client TLS context that trusts :attr:`ca_file` and checks host names."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def admin_endpoint(self) -> Endpoint:
        """Return where and how kafkalocal sends admin requests (SASL_PLAINTEXT, as admin)."""
        return self.cluster.admin_endpoint

    # -- users and ACLs ----------------------------------------------------------

    def add_user(self, name: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        """Create (or change the password of) SCRAM user ``name``; return once it can log in.

        A new user is authenticated but authorized for nothing: see :meth:`allow`.

        Raises:
            ValueError: ``mechanism`` is not SCRAM-SHA-512 or SCRAM-SHA-256.
            KafkaAdminError: the broker refused, or the user could not log in within 15 s.
        """
        upsert_scram_credential(self.admin_endpoint, name, password, mechanism)
        security = Security("SASL_PLAINTEXT", mechanism, name, password)
        self._wait_everywhere(
            lambda address: self._can_log_in(address, security),
            f"user {name!r} to be able to log in with {mechanism}",
        )

    def allow(
        self,
        principal: str,
        resource_type: str,
        prefix: str,
        operations: str | Iterable[str],
        *,
        pattern: str = "PREFIXED",
    ) -> None:
        """Allow ``principal`` the ``operations`` on resources whose name starts with ``prefix``.

        Returns once every node enforces the new ACLs.

        Example:
            >>> kafka.allow("alice", "topic", "tenant-a.", ["READ", "WRITE"])  # doctest: +SKIP
            >>> kafka.allow("alice", "group", "tenant-a.", "ALL")  # doctest: +SKIP

        Args:
            principal: ``"User:alice"``, or just ``"alice"``.
            resource_type: ``"topic"``, ``"group"``, ``"transactional_id"`` or ``"cluster"``
                (any case).
            prefix: the resource name prefix (``pattern="LITERAL"``: the exact name; the
                cluster's is ``"kafka-cluster"``).
            operations: Kafka operation names such as READ, WRITE, CREATE, DELETE, DESCRIBE,
                DESCRIBE_CONFIGS, ALTER_CONFIGS or ALL (any case).
            pattern: ``"PREFIXED"`` or ``"LITERAL"``.

        Raises:
            ValueError: an unknown resource type, operation or pattern.
            KafkaAdminError: the broker refused, or the ACLs were not in force within 15 s.
        """
        if ":" not in principal:
            principal = f"User:{principal}"
        kind = resource_type.upper()
        if kind not in RESOURCE_TYPES:
            raise ValueError(
                f"unknown resource type {resource_type!r}: use one of "
                f"{', '.join(name.lower() for name in RESOURCE_TYPES)}"
            )
        names = [operations] if isinstance(operations, str) else list(operations)
        bindings = [
            AclBinding(principal, kind, prefix, operation.upper(), pattern_type=pattern.upper())
            for operation in names
        ]
        create_acls(self.admin_endpoint, bindings)
        wanted = set(bindings)
        self._wait_everywhere(
            lambda address: wanted <= describe_acls(self._node_endpoint(address), principal),
            f"ACLs of {principal} on {kind} {prefix!r} to be in force",
        )

    # -- waiting for metadata to reach every node ----------------------------------

    def _node_endpoint(self, address: NodeAddress) -> Endpoint:
        return Endpoint(address.broker, self.admin_endpoint.security)

    def _can_log_in(self, address: NodeAddress, security: Security) -> bool:
        try:
            with KafkaConnection(address.host, address.broker_port, security, timeout=5.0):
                return True
        except SaslError:
            return False

    def _wait_everywhere(self, done: Callable[[NodeAddress], bool], what: str) -> None:
        deadline = time.monotonic() + _PROPAGATION_TIMEOUT_S
        pending = [self.cluster.node_address(i) for i in range(self.cluster.nodes)]
        pending = [a for a in pending if self.cluster.is_running(a.node_id)]
        while pending:
            pending = [address for address in pending if not done(address)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise KafkaAdminError(
                    f"timed out after {_PROPAGATION_TIMEOUT_S:.0f} s waiting for {what} "
                    f"on node(s) {[a.node_id for a in pending]}"
                )
            time.sleep(_POLL_S)

"""kafkalocal's I/O-free parts: versions, pom, broker properties, ids, ports, probe parsing."""

from __future__ import annotations

import base64
import random
import re
import socket
import struct
from pathlib import Path

import pytest

from kafkalocal import DEFAULT_KAFKA_VERSION, SAMPLE_SETTINGS, VERSION_ENV, kafka_version
from kafkalocal._config import (
    NodeAddress,
    bootstrap_servers,
    jvm_options,
    log_config,
    log_config_name,
    new_cluster_id,
    node_addresses,
    render_properties,
    server_properties,
)
from kafkalocal._maven import CACHE_ENV, cache_root, render_pom
from kafkalocal._ports import ephemeral_range, free_ports
from kafkalocal._probe import metadata_body, parse_metadata
from kafkalocal._secure import _SecureCustomizer
from kafkalocal._versions import uses_log4j1, version_tuple
from kafkalocal._wire import Reader

THREE = node_addresses([9092, 9093, 9192, 9193, 9292, 9293])


def parse_properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


# -- versions and pom ----------------------------------------------------------


def test_pinned_version_is_a_4x_release() -> None:
    assert version_tuple(DEFAULT_KAFKA_VERSION)[0] == 4


def test_kafka_version_prefers_argument_then_env_then_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VERSION_ENV, raising=False)
    assert kafka_version() == DEFAULT_KAFKA_VERSION
    monkeypatch.setenv(VERSION_ENV, "3.9.1")
    assert kafka_version() == "3.9.1"
    assert kafka_version("4.0.2") == "4.0.2"


@pytest.mark.parametrize("bad", ["4.1", "latest", "4.1.1-rc0", "3.6.2", "2.8.0"])
def test_bad_versions_are_rejected_with_the_rule(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(bad)):
        kafka_version(bad)


def test_logging_backend_follows_the_major_version() -> None:
    assert uses_log4j1("3.9.1")
    assert not uses_log4j1("4.0.0")
    assert log_config_name("3.9.1") == "log4j.properties"
    assert "ConsoleAppender" in log_config("3.9.1")
    assert log_config_name("4.1.1") == "log4j2.properties"
    assert "type = Console" in log_config("4.1.1")


def test_pom_for_4x_binds_slf4j2_to_log4j2() -> None:
    pom = render_pom("4.1.1")
    assert "<artifactId>kafka_2.13</artifactId><version>4.1.1</version>" in pom
    assert "<artifactId>slf4j-api</artifactId><version>2.0.17</version>" in pom
    assert "log4j-slf4j2-impl" in pom
    assert "log4j-core" in pom
    assert "reload4j" not in pom


def test_pom_for_3x_uses_reload4j() -> None:
    pom = render_pom("3.9.1")
    assert "<artifactId>kafka_2.13</artifactId><version>3.9.1</version>" in pom
    assert "slf4j-reload4j" in pom
    assert "log4j-core" not in pom


def test_cache_root_is_outside_the_repo_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == Path.home() / ".cache" / "kafkalocal"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "kafkalocal"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path


# -- broker properties ---------------------------------------------------------


def test_node_addresses_pair_broker_and_controller_ports() -> None:
    assert THREE[1] == NodeAddress(node_id=1, broker_port=9192, controller_port=9193)
    assert THREE[1].broker == "127.0.0.1:9192"
    assert THREE[1].voter == "1@127.0.0.1:9193"
    assert bootstrap_servers(THREE) == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"


@pytest.mark.parametrize("ports", [[], [1], [1, 2, 3], [5, 5]])
def test_node_addresses_reject_odd_or_duplicate_ports(ports: list[int]) -> None:
    with pytest.raises(ValueError, match="two distinct ports per node"):
        node_addresses(ports)


def test_single_node_properties(tmp_path: Path) -> None:
    (only,) = node_addresses([19092, 19093])
    props = server_properties(0, [only], tmp_path / "data", "4.1.1")
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "0"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "0@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["delete.topic.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert 1 <= int(props["offsets.topic.num.partitions"]) <= 5


def test_three_node_properties_replicate_three_ways_with_two_in_sync(tmp_path: Path) -> None:
    voters = "0@127.0.0.1:9093,1@127.0.0.1:9193,2@127.0.0.1:9293"
    for address in THREE:
        props = server_properties(address.node_id, THREE, tmp_path, "4.1.1")
        assert props["node.id"] == str(address.node_id)
        assert props["controller.quorum.voters"] == voters
        assert props["advertised.listeners"] == f"PLAINTEXT://{address.broker}"
        assert f"CONTROLLER://127.0.0.1:{address.controller_port}" in props["listeners"]
        assert props["default.replication.factor"] == "3"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["share.coordinator.state.topic.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["share.coordinator.state.topic.min.isr"] == "2"


def test_share_coordinator_settings_only_from_4_0(tmp_path: Path) -> None:
    props = server_properties(0, THREE, tmp_path, "3.9.1")
    assert not any(key.startswith("share.") for key in props)


def test_unknown_node_id_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node 7"):
        server_properties(7, THREE, tmp_path, "4.1.1")


def test_defaults_are_the_sample_settings_plus_this_nodes_addresses(tmp_path: Path) -> None:
    (only,) = node_addresses([19092, 19093])
    props = server_properties(0, [only], tmp_path, "4.4.0", "defaults")
    node = {
        "node.id": "0",
        "listeners": "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:19092",
        "controller.quorum.voters": "0@127.0.0.1:19093",
        "log.dirs": str(tmp_path),
    }
    assert props == {**SAMPLE_SETTINGS, **node}
    for tweak in ("auto.create.topics.enable", "group.initial.rebalance.delay.ms"):
        assert tweak not in props  # Kafka's defaults: true and 3000 ms
    assert props["num.partitions"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"


def test_defaults_before_3_9_leave_out_the_share_coordinator(tmp_path: Path) -> None:
    (only,) = node_addresses([19092, 19093])
    props = server_properties(0, [only], tmp_path, "3.8.1", "defaults")
    assert not any(key.startswith("share.") for key in props)


def test_unknown_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="settings must be one of test, defaults"):
        server_properties(0, THREE, tmp_path, "4.1.1", "prod")  # type: ignore[arg-type]


def test_extra_ports_per_node() -> None:
    first, second = node_addresses(list(range(9000, 9008)), per_node=4)
    assert first == NodeAddress(0, 9000, 9001, (9002, 9003))
    assert second.extra_ports == (9006, 9007)
    with pytest.raises(ValueError, match="need 4 distinct ports per node"):
        node_addresses(list(range(9000, 9006)), per_node=4)


def test_secure_node_properties(tmp_path: Path) -> None:
    (address,) = node_addresses([19092, 19093, 19094, 19095], per_node=4)
    customizer = _SecureCustomizer("pw")
    props = server_properties(0, [address], tmp_path / "data", "4.4.0")
    customizer.customize(address, props, tmp_path / "node-0")
    assert props["listeners"] == (
        "SASL_PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,"
        "WRONG_HOST://127.0.0.1:19095,CONTROLLER://127.0.0.1:19093"
    )
    assert "CONTROLLER" not in props["advertised.listeners"]
    assert "PLAINTEXT:PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    assert props["ssl.keystore.location"].endswith("server.p12")
    assert props["listener.name.wrong_host.ssl.keystore.location"].endswith("wrong-host.p12")
    assert customizer.format_args() == [
        "--add-scram",
        "SCRAM-SHA-256=[name=admin,password=pw]",
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=pw]",
    ]
    assert "pw" not in repr(customizer.admin_security)


def test_render_properties_round_trips() -> None:
    props = {"a.b": "1", "log.dirs": "/tmp/x y", "path": "C:\\kafka"}
    text = render_properties(props)
    assert text.endswith("\n")
    assert parse_properties(text) == {"a.b": "1", "log.dirs": "/tmp/x y", "path": "C:\\\\kafka"}


def test_jvm_options_cap_the_heap_and_point_at_the_log_config(tmp_path: Path) -> None:
    options = jvm_options("4.1.1", tmp_path / "log4j2.properties")
    (xmx,) = [option for option in options if option.startswith("-Xmx")]
    assert xmx == "-Xmx512m"
    assert f"-Dlog4j2.configurationFile={tmp_path / 'log4j2.properties'}" in options
    old = jvm_options("3.9.1", tmp_path / "log4j.properties", heap="1g")
    assert "-Xmx1g" in old
    assert f"-Dlog4j.configuration=file:{tmp_path / 'log4j.properties'}" in old


# -- cluster id ------------------------------------------------------------------


def test_cluster_id_is_22_chars_of_base64url() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_skips_reserved_ids_and_leading_dash() -> None:
    leading_dash = base64.urlsafe_b64decode("-" + "A" * 21 + "==")
    draws = iter([bytes(16), bytes(15) + b"\x01", leading_dash, b"\x01" * 16])
    assert new_cluster_id(lambda n: next(draws)) == "AQEBAQEBAQEBAQEBAQEBAQ"


# -- ports -----------------------------------------------------------------------


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = free_ports(6, rng=random.Random(1))
    assert len(set(ports)) == 6
    ephemeral = ephemeral_range()
    for port in ports:
        if ephemeral is not None:
            assert port < ephemeral.start
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_ephemeral_range_parses_procfs_format(tmp_path: Path) -> None:
    good = tmp_path / "range"
    good.write_text("32768\t60999\n")
    assert ephemeral_range(good) == range(32768, 61000)
    good.write_text("garbage")
    assert ephemeral_range(good) is None
    assert ephemeral_range(tmp_path / "missing") is None


# -- metadata probe ----------------------------------------------------------------


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(text)) + text.encode()


def test_metadata_request_is_a_v4_request_for_no_topics_or_some() -> None:
    assert metadata_body() == struct.pack(">ib", 0, 0)
    assert metadata_body(None) == struct.pack(">ib", -1, 0)
    assert metadata_body(["ab"], auto_create=True) == struct.pack(">i", 1) + _string("ab") + b"\x01"


def test_metadata_response_lists_broker_ids_and_topic_errors() -> None:
    response = struct.pack(">ii", 0, 2)
    response += struct.pack(">i", 0) + _string("127.0.0.1") + struct.pack(">i", 1) + _string(None)
    response += struct.pack(">i", 2) + _string("127.0.0.1") + struct.pack(">i", 3) + _string("r1")
    response += _string("cluster") + struct.pack(">ii", 0, 2)
    response += struct.pack(">h", 0) + _string("t1") + b"\x00" + struct.pack(">i", 1)
    response += struct.pack(">hii", 0, 0, 2)  # error, partition 0, leader 2
    response += struct.pack(">iii", 2, 2, 0) + struct.pack(">ii", 1, 2)  # replicas [2, 0], ISR [2]
    response += struct.pack(">h", 29) + _string("secret") + b"\x00" + struct.pack(">i", 0)
    metadata = parse_metadata(Reader(response))
    assert metadata.brokers == {0, 2}
    assert metadata.topics == {"t1": 0, "secret": 29}
    assert metadata.partitions == {"t1": 1, "secret": 0}
    with pytest.raises(ConnectionError, match="malformed"):
        parse_metadata(Reader(response[:-3]))

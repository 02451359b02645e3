"""kafkalocal's processes and files without a broker: fake mvn and java, real cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kafkalocal import (
    CACHE_ENV,
    KafkaCluster,
    KafkaStartError,
    _reaper,
    broker_from_env,
    resolve_kafka,
)
from kafkalocal._cds import ClassArchive
from kafkalocal._logs import tail
from kafkalocal._workdir import WorkDir, remove_stale_workdirs, work_root

SRC = Path(__file__).resolve().parents[1] / "src"
FAKE_VERSION = "9.9.9"

FAKE_MVN = """\
#!/bin/sh
echo run >> "$FAKE_MVN_CALLS"
if [ -n "$FAKE_MVN_FAIL" ]; then
  echo "[ERROR] BUILD FAILURE: Could not find artifact org.apache.kafka:kafka_2.13"
  exit 1
fi
sleep "${FAKE_MVN_SLEEP:-0}"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out"
: > "$out/kafka_2.13-9.9.9.jar"
: > "$out/kafka-clients-9.9.9.jar"
"""

FAKE_JAVA = """\
#!/bin/sh
case "$*" in
  *kafka.tools.StorageTool*)
    if [ "$FAKE_JAVA_MODE" = format-fails ]; then echo "boom-format"; exit 1; fi
    echo "Formatting metadata directory"; exit 0;;
  *kafka.Kafka*)
    echo "fake broker starting"
    case "$FAKE_JAVA_MODE" in
      broker-exits) echo "FATAL boom-broker"; exit 3;;
      port-taken) echo "java.net.BindException: Address already in use"; exit 1;;
    esac
    exec sleep 60;;
esac
exit 99
"""


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake mvn first on PATH, a fake JDK in JAVA_HOME, and an empty cache in place."""
    _script(tmp_path / "bin" / "mvn", FAKE_MVN)
    _script(tmp_path / "jdk" / "bin" / "java", FAKE_JAVA)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_MVN_CALLS", str(tmp_path / "mvn-calls"))
    return tmp_path


def mvn_calls(tmp_path: Path) -> int:
    calls = tmp_path / "mvn-calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".tmp-" in p.name or ".stale-" in p.name)


def our_workdirs() -> list[Path]:
    """Return the work directories this test process owns."""
    owners = {d: _reaper.read_identity(d / _reaper.OWNER_FILE) for d in work_root().glob("run-*")}
    return sorted(d for d, owner in owners.items() if owner is not None and owner[0] == os.getpid())


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- jar cache -------------------------------------------------------------------


def test_resolve_runs_mvn_once_then_reuses_the_cache(fake_tools: Path) -> None:
    home = resolve_kafka(FAKE_VERSION)
    assert home == fake_tools / "cache" / FAKE_VERSION
    assert (home / "libs" / "kafka_2.13-9.9.9.jar").is_file()
    assert (home / "resolved.json").is_file()
    assert resolve_kafka(FAKE_VERSION) == home
    assert mvn_calls(fake_tools) == 1
    assert leftovers(fake_tools / "cache") == []


def test_incomplete_cache_is_resolved_again(fake_tools: Path) -> None:
    home = resolve_kafka(FAKE_VERSION)
    (home / "libs" / "kafka-clients-9.9.9.jar").unlink()  # a jar went missing
    assert resolve_kafka(FAKE_VERSION) == home
    assert (home / "libs" / "kafka-clients-9.9.9.jar").is_file()
    half_done = fake_tools / "cache" / "9.9.8"
    (half_done / "libs").mkdir(parents=True)  # no marker: an interrupted resolve
    resolve_kafka("9.9.8")
    assert (half_done / "resolved.json").is_file()
    assert mvn_calls(fake_tools) == 3


def test_concurrent_resolves_run_mvn_once(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_SLEEP", "0.5")
    homes: list[Path] = []
    threads = [
        threading.Thread(target=lambda: homes.append(resolve_kafka(FAKE_VERSION))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(homes) == 3
    assert len(set(homes)) == 1
    assert mvn_calls(fake_tools) == 1


def test_mvn_failure_raises_with_its_output_and_caches_nothing(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    with pytest.raises(KafkaStartError, match=r"(?s)exit code 1.*BUILD FAILURE"):
        resolve_kafka(FAKE_VERSION)
    assert not (fake_tools / "cache" / FAKE_VERSION).exists()
    assert leftovers(fake_tools / "cache") == []


def test_missing_mvn_is_a_clear_error(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_tools / "empty"))
    with pytest.raises(KafkaStartError, match="mvn is not on PATH"):
        resolve_kafka(FAKE_VERSION)


# -- start failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("format-fails", r"(?s)formatting the storage of Kafka node 0 failed.*boom-format"),
        ("broker-exits", r"(?s)node 0 exited \(code 3\).*fake broker starting.*boom-broker"),
        ("port-taken", r"(?s)port was taken by another process 3 times.*Address already in use"),
        ("broker-hangs", r"(?s)timed out after 1 s.*fake broker starting"),
    ],
)
def test_start_failure_raises_with_log_tail_and_cleans_up(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("FAKE_JAVA_MODE", mode)
    before = our_workdirs()  # session fixtures may own some
    cluster = KafkaCluster(nodes=1, version=FAKE_VERSION, start_timeout=1.0, stop_timeout=5.0)
    with pytest.raises(KafkaStartError, match=message):
        cluster.start()
    assert our_workdirs() == before
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.bootstrap_servers


def test_broker_from_env_uses_the_variable_and_starts_nothing(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    with broker_from_env() as bootstrap:
        assert bootstrap == "broker.example:9092"
    assert mvn_calls(fake_tools) == 0


def test_cluster_rejects_zero_nodes() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        KafkaCluster(nodes=0)


# -- work directories and orphans ------------------------------------------------


def test_stale_workdir_is_removed_and_its_jvm_killed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "run-stale"
    (stale / "try-1" / "node-0").mkdir(parents=True)
    (stale / _reaper.OWNER_FILE).write_text(f"{dead.pid} 1")
    orphan = subprocess.Popen(["sleep", "60"])
    (stale / "try-1" / "node-0" / "jvm.pid").write_text(_reaper.identity(orphan.pid))
    alive = tmp_path / "run-alive"
    alive.mkdir()
    (alive / _reaper.OWNER_FILE).write_text(_reaper.identity(os.getpid()))
    fresh = tmp_path / "run-fresh"  # owner file not written yet
    fresh.mkdir()

    assert remove_stale_workdirs(tmp_path) == [stale]
    assert orphan.wait(5) == -signal.SIGKILL
    assert not stale.exists()
    assert alive.exists()
    assert fresh.exists()


CHILD_WITH_WORKDIR = """
import sys, time
sys.path.insert(0, {src!r})
from kafkalocal._process import spawn_daemon
from kafkalocal._workdir import WorkDir
work = WorkDir.create()
proc = spawn_daemon(["sleep", "60"], cwd=work.path, log=work.path / "sleep.log")
print(work.path, proc.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_sigkill_of_the_owner_kills_its_children_and_removes_its_workdir(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD_WITH_WORKDIR.format(src=str(SRC)))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert owner.stdout is not None
    path_text, pid_text = owner.stdout.readline().split()
    workdir, child = Path(path_text), int(pid_text)
    assert workdir.is_dir()
    assert workdir.parent == tmp_path / f"kafkalocal-{os.getuid()}"
    owner.kill()
    owner.wait()
    owner.stdout.close()
    assert wait_until(lambda: not _reaper.is_running(child)), "child survived its owner"
    assert wait_until(lambda: not workdir.exists()), "work directory survived its owner"


def test_workdir_close_removes_it_and_releases_the_watchdog() -> None:
    work = WorkDir.create()
    assert (work.path / _reaper.OWNER_FILE).is_file()
    work.close()
    work.close()
    assert not work.path.exists()


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert "does not exist" in tail(tmp_path / "nope.log")


# -- command line ----------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkalocal", *args],
        cwd=SRC,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exec_uses_the_bootstrap_variable_and_returns_the_exit_code() -> None:
    check = "import os, sys; sys.exit(7 if os.environ['KAFKA_BOOTSTRAP_SERVERS'] == 'h:1' else 1)"
    result = run_cli(
        "exec", "--", sys.executable, "-c", check, env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"}
    )
    assert result.returncode == 7, result.stderr
    assert "using KAFKA_BOOTSTRAP_SERVERS=h:1" in result.stderr


def test_cli_exec_without_a_command_fails() -> None:
    result = run_cli("exec", env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    assert result.returncode == 2
    assert "exec needs a command" in result.stderr


def test_cli_reports_start_errors_and_exits_non_zero(fake_tools: Path) -> None:
    env = {"FAKE_JAVA_MODE": "broker-exits", "KAFKA_BOOTSTRAP_SERVERS": ""}
    result = run_cli("--kafka-version", FAKE_VERSION, "exec", "--", "true", env=env)
    assert result.returncode == 1
    assert "error: Kafka node 0 exited (code 3)" in result.stderr
    assert "boom-broker" in result.stderr


def test_cli_rejects_a_bad_version() -> None:
    result = run_cli("--kafka-version", "latest", "resolve")
    assert result.returncode == 2
    assert "MAJOR.MINOR.PATCH" in result.stderr


# -- class archive ---------------------------------------------------------------


def test_class_archive_is_written_by_one_node_and_published_after_a_clean_exit(
    tmp_path: Path,
) -> None:
    archive = ClassArchive(tmp_path, sys.executable)
    first, second = object(), object()
    options, dump = archive.options(first)
    assert dump is not None
    assert options == [f"-XX:ArchiveClassesAtExit={dump}"]
    assert archive.options(second) == ([], None)
    assert archive.read_options() == []

    dump.write_bytes(b"half")
    archive.publish(dump, -signal.SIGKILL)  # killed mid-dump: discarded
    assert not dump.exists()
    assert not archive.path.exists()

    options, dump = archive.options(first)  # the same node tries again on restart
    assert dump is not None
    dump.write_bytes(b"classes")
    archive.publish(dump, 143)
    assert archive.path.read_bytes() == b"classes"
    assert archive.options(second) == ([f"-XX:SharedArchiveFile={archive.path}"], None)
    assert archive.read_options() == [f"-XX:SharedArchiveFile={archive.path}"]

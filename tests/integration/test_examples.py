"""Every script in examples/ runs as a user would run it, against the test broker.

Each runs in a fresh interpreter with warnings as errors and ``KAFKA_BOOTSTRAP_SERVERS`` set,
and must exit 0 (each checks its own results and exits non-zero when they are wrong). The
FastAPI service (``examples/fastapi_app``) is served under load by ``test_fastapi_app.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["seed_walkthrough.py", "async_chain.py", "langgraph_node.py"]


def test_every_example_script_is_run_here() -> None:
    on_disk = {p.name for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py"}
    assert on_disk == set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error", f"examples/{script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

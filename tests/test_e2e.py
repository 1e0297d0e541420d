"""`python -m pcls` as a subprocess against the sandbox (a moto server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcls import sandbox


def pcls(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pcls", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    sandbox.stop(tmp_path / ".pcls")


def test_sandbox_lifecycle_end_to_end(project: Path) -> None:
    assert pcls(project, "init", "meet.example.com", "--region", "eu-central-2").returncode == 0
    started = pcls(project, "sandbox", "start")
    assert started.returncode == 0, started.stderr
    state = json.loads((project / ".pcls" / "sandbox.json").read_text())
    assert state["url"].startswith("http://127.0.0.1:")

    plan = pcls(project, "plan", "--sandbox")
    assert plan.returncode == 0, plan.stderr
    assert "SANDBOX" in plan.stdout and "would create" in plan.stdout

    up = pcls(project, "up", "--sandbox")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.startswith("Target: account 123456789012")
    assert "endpoint http://127.0.0.1:" in up.stdout

    again = pcls(project, "up", "--sandbox", "--api-calls")
    assert again.returncode == 0, again.stderr
    calls = json.loads(again.stderr[again.stderr.index("{") :])
    assert calls["writes"] == 0, calls

    status = pcls(project, "status", "--sandbox", "--json")
    assert status.returncode == 0, status.stdout
    assert json.loads(status.stdout)["in_sync"] is True

    down = pcls(project, "teardown", "--sandbox", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "verified" in down.stdout
    after = pcls(project, "status", "--sandbox", "--json")
    assert after.returncode == 3
    assert {r["outcome"] for r in json.loads(after.stdout)["resources"]} <= {"missing", "in sync"}

    assert pcls(project, "sandbox", "stop").returncode == 0
    assert pcls(project, "sandbox", "status").returncode == 3


def test_aws_endpoint_url_is_honoured_and_named(project: Path) -> None:
    assert pcls(project, "init", "meet.example.com", "--region", "eu-central-1").returncode == 0
    state, _ = sandbox.start(project / ".pcls")
    env = {
        "AWS_ENDPOINT_URL": state["url"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    plan = pcls(project, "plan", env=env)
    assert f"endpoint {state['url']}" in plan.stdout, plan.stdout + plan.stderr

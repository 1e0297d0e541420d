"""The README's commands run as written, so the documentation cannot drift from the code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pcls import sandbox

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def console_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_configuration_reference_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config-reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout


def test_every_documented_command_exists() -> None:
    from pcls.__main__ import parser

    commands = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    documented = set(re.findall(r"^### `pcls ([a-z-]+)", README, flags=re.M))
    assert documented <= commands, documented - commands
    assert {"init", "plan", "up", "status", "teardown", "cost", "sandbox"} <= documented


def test_console_examples_run_on_the_sandbox(tmp_path: Path) -> None:
    commands = console_commands()
    assert commands[0].startswith("pcls init") and "pcls up --sandbox" in commands
    try:
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "pcls"
            done = subprocess.run(
                [sys.executable, "-m", "pcls", *argv[1:]],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    finally:
        sandbox.stop(tmp_path / ".pcls")


@pytest.mark.skipif(sys.platform != "linux", reason="the demo script is bash")
def test_quickstart_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PCLS_VENV": sys.prefix,  # the environment running these tests already has pcls
        "PCLS_DEMO_DIR": str(tmp_path),
    }
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        sandbox.stop(tmp_path / ".pcls")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    out = done.stdout
    for marker in ("Plan:", "up:", "in sync", "drifted", "teardown:", "verified"):
        assert marker in out, marker

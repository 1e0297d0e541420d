"""scripts/demo-live: the slot's steps in order within 10 minutes, every pcls command in it one
the CLI accepts, and a clear refusal before anything runs when something it needs is missing
(no AWS call: the runs here have no credentials)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pcls.__main__ import parser

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "demo-live"
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _script(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    if not (BIN / "pcls").exists():
        pytest.skip(f"pcls is not installed in {BIN} (pip install -e .)")
    # The venv's pcls and python first; no aws CLI, no credentials, no profile.
    base = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _subcommands() -> set[str]:
    action = next(a for a in parser()._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_the_slot_is_its_steps_in_order_within_ten_minutes(tmp_path: Path) -> None:
    res = _script(tmp_path, "--dry-run")
    assert res.returncode == 0, res.stderr
    out = ANSI.sub("", res.stdout)
    steps = re.findall(r"^== \[(\d\d):(\d\d)\] (\d)\. (.+)$", out, re.M)
    assert [int(n) for _, _, n, _ in steps] == list(range(1, 9))
    starts = [int(m) * 60 + int(s) for m, s, _, _ in steps]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] < 600
    titles = " | ".join(t for *_, t in steps)
    for word in ("Up", "Verify", "three people", "shard task", "bridge task", "Sleep", "Wake"):
        assert word in titles, word
    assert titles.endswith("Teardown")
    commands = re.findall(r"^\$ (.+)$", out, re.M)
    assert any("aws ecs stop-task" in c and "--task TASK" in c for c in commands)
    order = [c.split()[3] for c in commands if c.startswith("pcls --config")]
    # status --compact between the steps: after the call, each stopped task, sleep and wake
    assert [c for c in order if c != "status"] == [
        "up",
        "verify",
        "sleep",
        "cost",
        "wake",
        "teardown",
    ]
    assert order.count("status") == 5
    known = _subcommands()
    for line in commands:
        argv = shlex.split(line.split("   (")[0])
        if argv[0] != "pcls":
            continue
        argv = argv[3:] if argv[1:2] == ["--config"] else argv[1:]
        if argv[0] in ("sleep", "wake") and argv[0] not in known:
            continue  # the script refuses to start without them (below)
        parser().parse_args(argv)  # SystemExit on any flag the CLI does not have


def test_without_a_config_it_refuses_before_anything_runs(tmp_path: Path) -> None:
    res = _script(tmp_path)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        "demo-live: no pcls.toml here; run it where the stack's pcls.toml is (or set PCLS_CONFIG)\n"
    )


def test_a_missing_command_or_aws_cli_stops_it_with_the_name_of_what_is_missing(
    tmp_path: Path,
) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "pcls", "init", "meet.example.com", "--region", "eu-central-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": f"{BIN}:/usr/bin:/bin"},
    )
    assert init.returncode == 0, init.stderr
    res = _script(tmp_path)
    assert (res.returncode, res.stdout) == (2, "")
    missing = [c for c in ("sleep", "wake") if c not in _subcommands()]
    if missing:
        assert res.stderr == (
            f"demo-live: this pcls has no `pcls {missing[0]}` command; the sleep and wake "
            "steps need it\n"
        )
    elif shutil.which("aws", path=f"{BIN}:/usr/bin:/bin") is None:
        assert res.stderr.startswith("demo-live: needs the aws CLI"), res.stderr
    else:
        assert "no working credentials" in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PCLS_DEMO_SHARD": "jvb"}, "PCLS_DEMO_SHARD: 'jvb' is not allowed"),
        ({"PCLS_DEMO_ROOM": "a b"}, "PCLS_DEMO_ROOM: 'a b' is not allowed"),
        ({"PCLS_DEMO_REFRESH": "0"}, "PCLS_DEMO_REFRESH: '0' is not allowed"),
    ],
)
def test_bad_settings_are_one_line_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    res = _script(tmp_path, "--dry-run", **env)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1

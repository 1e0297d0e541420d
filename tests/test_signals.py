"""Ctrl-C and SIGTERM in real `python -m pcls` processes, and a sandbox state file not trusted.

The runs go against a sandbox started with `pcls sandbox start`. To signal a run while its step
walk is under way, each call a step makes is slowed down by a `sitecustomize` on PYTHONPATH,
which also drops a marker file at the first such call: the signal is sent once the marker is
there, while the walk has several seconds to go.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from pcls import sandbox

SLOW = 1.0  # seconds per call a step makes

SITECUSTOMIZE = """
import os

if os.environ.get("PCLS_TEST_SLOW_STEPS"):
    import threading
    import time

    import botocore.session

    _delay = float(os.environ["PCLS_TEST_SLOW_STEPS"])
    _marker = os.environ["PCLS_TEST_MARKER"]
    _create = botocore.session.Session.create_client

    def _slow(model, **_):
        if threading.current_thread().name.startswith("pcls-step"):
            if not os.path.exists(_marker):
                open(_marker, "w").close()
            time.sleep(_delay)

    def create_client(self, *args, **kwargs):
        client = _create(self, *args, **kwargs)
        client.meta.events.register("before-call", _slow)
        return client

    botocore.session.Session.create_client = create_client
"""


def pcls(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcls", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with the sandbox running and the stack up."""
    root = tmp_path_factory.mktemp("signals")
    assert pcls(root, "init", "meet.example.com", "--region", "eu-central-1").returncode == 0
    started = pcls(root, "sandbox", "start")
    assert started.returncode == 0, started.stderr
    try:
        up = pcls(root, "up", "--sandbox")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        site = root / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
        yield root
    finally:
        sandbox.stop(root / ".pcls")


def signalled(root: Path, sig: signal.Signals, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m pcls ARGS`, send `sig` once a step's call is under way; wait for the end."""
    marker = root / "walking"
    marker.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "site"),
        "PCLS_TEST_SLOW_STEPS": str(SLOW),
        "PCLS_TEST_MARKER": str(marker),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcls", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no step started"
            time.sleep(0.02)
        time.sleep(0.3)  # the walk's first steps are started and in their calls
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def lock_parameters(root: Path) -> list[str]:
    url = json.loads((root / ".pcls" / "sandbox.json").read_text())["url"]
    ssm = boto3.client(
        "ssm",
        region_name="eu-central-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return [p["Name"] for p in ssm.describe_parameters()["Parameters"] if "/run/" in p["Name"]]


SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def interrupted(verb: str) -> tuple[str, str]:
    """The walk's own message; the second when the signal lands while a worker is started."""
    return (
        f"interrupted: {verb} did not finish and shows nothing; run {verb} again",
        "interrupted; run the command again to resume",
    )


@pytest.mark.parametrize("sig", SIGNALS)
def test_status_interrupted_exits_130_and_reports_no_drift(
    deployed: Path, sig: signal.Signals
) -> None:
    done = signalled(deployed, sig, "status", "--sandbox")
    assert done.returncode == 130, (done.returncode, done.stdout[-1500:], done.stderr[-1500:])
    assert done.stderr.splitlines()[-1] in interrupted("status"), done.stderr
    assert "pcls status" not in done.stdout  # no table of a partial walk
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", SIGNALS)
def test_plan_interrupted_exits_130_and_reports_no_plan(
    deployed: Path, sig: signal.Signals
) -> None:
    done = signalled(deployed, sig, "plan", "--sandbox")
    assert done.returncode == 130, (done.returncode, done.stdout[-1500:], done.stderr[-1500:])
    assert done.stderr.splitlines()[-1] in interrupted("plan"), done.stderr
    assert "Plan:" not in done.stdout and "Cost:" not in done.stdout
    assert "Traceback" not in done.stderr


def test_up_terminated_releases_its_lock_and_resumes(deployed: Path) -> None:
    done = signalled(deployed, signal.SIGTERM, "up", "--sandbox")
    assert done.returncode == 130, (done.returncode, done.stdout[-1500:], done.stderr[-1500:])
    assert done.stderr.splitlines()[-1] in (
        "interrupted: the ledger is saved; run up again to resume",
        "interrupted; run the command again to resume",
    ), done.stderr
    assert lock_parameters(deployed) == []
    again = pcls(deployed, "up", "--sandbox")
    assert again.returncode == 0, again.stderr[-2000:]
    assert lock_parameters(deployed) == []


# -- the sandbox's state file ------------------------------------------------------------------


def write_state(root: Path, url: str, pid: int) -> Path:
    (root / ".pcls").mkdir(exist_ok=True)
    path = root / ".pcls" / "sandbox.json"
    path.write_text(json.dumps({"url": url, "pid": pid, "started": time.time()}))
    return path


def project(root: Path) -> Path:
    assert pcls(root, "init", "meet.example.com", "--region", "eu-central-1").returncode == 0
    return root


def test_sandbox_stop_leaves_an_unrelated_process_alone(tmp_path: Path) -> None:
    root = project(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        state = write_state(root, "http://127.0.0.1:1", sleeper.pid)
        done = pcls(root, "sandbox", "stop")
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("\n") == 1
        assert f"pid {sleeper.pid}" in done.stdout and "left alone" in done.stdout
        time.sleep(0.3)
        assert sleeper.poll() is None  # not signalled
        assert not state.exists()  # the stale file is gone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sandbox_stop_leaves_another_projects_server_alone(deployed: Path, tmp_path: Path) -> None:
    theirs = json.loads((deployed / ".pcls" / "sandbox.json").read_text())
    root = project(tmp_path)
    state = write_state(root, theirs["url"], theirs["pid"])
    done = pcls(root, "sandbox", "stop")
    assert done.returncode == 0 and "left alone" in done.stdout, done.stdout + done.stderr
    assert not state.exists()
    assert pcls(deployed, "sandbox", "status").returncode == 0  # still running


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port on another loopback address: a tampered url points there."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.2", 0))
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    sock.listen(8)
    sock.settimeout(0.5)
    yield sock
    sock.close()


@pytest.mark.parametrize(
    "args", [("status", "--sandbox"), ("up", "--sandbox"), ("sandbox", "status")]
)
def test_a_sandbox_url_off_127_0_0_1_is_refused(
    tmp_path: Path, listener: socket.socket, args: tuple[str, ...]
) -> None:
    root = project(tmp_path)
    url = f"http://127.0.0.2:{listener.getsockname()[1]}"
    write_state(root, url, os.getpid())
    done = pcls(root, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1
    assert f"sandbox url {url!r} is not on 127.0.0.1; refused" in done.stderr
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing was sent there


@pytest.mark.parametrize(
    "url", ["http://localhost:4566", "https://127.0.0.1:4566", "http://10.1.2.3:4566", "nonsense"]
)
def test_every_other_url_is_refused_too(tmp_path: Path, url: str) -> None:
    root = project(tmp_path)
    write_state(root, url, os.getpid())
    done = pcls(root, "plan", "--sandbox")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "is not on 127.0.0.1; refused" in done.stderr and done.stderr.count("\n") == 1

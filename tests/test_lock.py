"""The stack's run lock in AWS (/pcls/<stack>/run/lock), through the CLI on in-process moto."""

from __future__ import annotations

import _thread
import datetime as dt
import io
import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from pcls import lock
from pcls.aws import is_read
from tests.faults import FailNth, on_every_client
from tests.harness import CliResult, Harness
from tests.inventory import inventory

NAME = "/pcls/meet/run/lock"
OTHER = "arn:aws:iam::123456789012:user/alice"


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def foreign_lock(h: Harness, *, expires_in: float = 300, **fields: Any) -> dict[str, Any]:
    """A lock as another machine's run writes it."""
    now = dt.datetime.now(dt.UTC)
    doc = {
        "holder": OTHER,
        "host": "ci-runner-7",
        "pid": 4242,
        "command": "up",
        "started": iso(now - dt.timedelta(minutes=20)),
        "expires": iso(now + dt.timedelta(seconds=expires_in)),
        "lease_seconds": 600,
        "token": "0123456789abcdef0123456789abcdef",
        "machine": "another-machine",
        "process": "12345",
        **fields,
    }
    h.client("ssm").put_parameter(
        Name=NAME,
        Value=json.dumps(doc),
        Type="String",
        Tags=[{"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": "lock"}],
    )
    return doc


def lock_value(h: Harness) -> dict[str, Any] | None:
    try:
        p = h.client("ssm").get_parameter(Name=NAME)["Parameter"]
    except h.client("ssm").exceptions.ParameterNotFound:
        return None
    return json.loads(p["Value"])


class Writes:
    """Every write call pcls attempts, on every client (independent of pcls's own counting)."""

    def __init__(self) -> None:
        self.ops: list[str] = []

    def register(self, client: Any) -> None:
        def hook(model: Any, **_: Any) -> None:
            if not is_read(model.name):
                self.ops.append(f"{model.service_model.service_name}:{model.name}")

        client.meta.events.register("before-call", hook)


def cli_counting(
    h: Harness, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[CliResult, list[str]]:
    writes = Writes()
    with on_every_client(writes.register):
        res = h.cli(*args, capsys=capsys)
    return res, writes.ops


def error_line(res: CliResult) -> str:
    lines = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.err
    return lines[0]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- held by another machine -------------------------------------------------------------------


def test_a_lock_held_elsewhere_stops_up_with_no_write(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = foreign_lock(harness)
    res, writes = cli_counting(harness, capsys, "up", "--api-calls")
    assert res.code == 2
    assert writes == []
    line = error_line(res)
    for part in (OTHER, "ci-runner-7", "pid 4242", "`pcls up`", doc["started"], doc["expires"]):
        assert part in line, (part, line)
    assert "locked by" in line and "wait for that run to finish" in line
    calls = json.loads(res.err[res.err.index("{") :])
    assert calls["writes"] == 0 and calls["run_lock"]["writes"] == 0
    assert calls["run_lock"]["calls"] == {"ssm:GetParameter": 1}
    assert not harness.ledger_path.exists()
    assert lock_value(harness) == doc


def test_a_lock_held_elsewhere_stops_teardown_before_the_question(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.cli("up", capsys=capsys).code == 0
    doc = foreign_lock(harness, command="teardown")
    ledger = harness.ledger_path.read_bytes()
    before = inventory(harness.region)
    res, writes = cli_counting(harness, capsys, "teardown")  # would ask: refused first
    assert res.code == 2, res.err
    assert writes == []
    assert "Type the stack name" not in res.out
    line = error_line(res)
    assert "`pcls teardown`" in line and doc["expires"] in line
    res, writes = cli_counting(harness, capsys, "teardown", "--yes")
    assert res.code == 2 and writes == []
    assert harness.ledger_path.read_bytes() == ledger
    assert inventory(harness.region) == before
    assert lock_value(harness) == doc


def test_plan_and_status_take_no_lock_but_mention_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = foreign_lock(harness)
    res = harness.cli("plan", capsys=capsys)
    assert res.code == 0 and "Plan:" in res.out
    assert f"is locked by {OTHER} on ci-runner-7" in res.err
    res = harness.cli("status", "--json", capsys=capsys)
    assert res.code == 3  # nothing deployed: missing, as without a lock
    assert "is locked by" in res.err
    assert lock_value(harness) == doc


# -- stale locks and `pcls unlock` -------------------------------------------------------------


def test_a_stale_lock_is_reported_as_stale_and_unlock_removes_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = foreign_lock(harness, expires_in=-60)
    res, writes = cli_counting(harness, capsys, "up")
    assert res.code == 2 and writes == []
    line = error_line(res)
    assert "stale run lock" in line and OTHER in line and doc["expires"] in line
    assert "`pcls unlock`" in line

    res = harness.cli("unlock", capsys=capsys)  # no terminal, no --yes
    assert res.code == 2
    assert error_line(res) == (
        "error: unlock: not a terminal; pass --yes to confirm removing the run lock"
    )
    assert lock_value(harness) == doc

    res = harness.cli("unlock", "--yes", capsys=capsys)
    assert res.code == 0, res.err
    assert f"run lock {NAME}: {OTHER} on ci-runner-7 (pid 4242, `pcls up`)" in res.out
    assert "stale" in res.out and "removed the run lock of stack meet" in res.out
    assert lock_value(harness) is None
    assert harness.cli("up", capsys=capsys).code == 0


@pytest.mark.parametrize(("typed", "code"), [("meet\n", 0), ("video\n", 2), ("", 2)])
def test_unlock_asks_for_the_stack_name(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    typed: str,
    code: int,
) -> None:
    doc = foreign_lock(harness)  # live: unlock warns that its run may still be going
    monkeypatch.setattr(sys, "stdin", Terminal(typed))
    res = harness.cli("unlock", capsys=capsys)
    assert "Type the stack name to confirm:" in res.out
    assert "may still be going" in res.out
    assert res.code == code, res.err
    if code == 0:
        assert lock_value(harness) is None
    else:
        assert error_line(res) == "error: unlock: confirmation did not match; the lock was kept"
        assert lock_value(harness) == doc


def test_unlock_without_a_lock_says_so(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    res = harness.cli("unlock", "--yes", capsys=capsys)
    assert res.code == 0
    assert f"stack meet has no run lock ({NAME})" in res.out


# -- this machine ------------------------------------------------------------------------------


def gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(not lock.machine_id(), reason="needs /proc to tell a gone process")
def test_a_lock_left_by_a_gone_process_on_this_machine_is_taken_over(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign_lock(harness, machine=lock.machine_id(), pid=gone_pid(), process="")
    res = harness.cli("up", capsys=capsys)
    assert res.code == 0, res.err
    assert "note: took over the run lock of" in res.err
    assert lock_value(harness) is None


@pytest.mark.skipif(not lock.machine_id(), reason="needs /proc to tell a gone process")
def test_a_lock_of_a_live_process_on_this_machine_is_held(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        doc = foreign_lock(harness, machine=lock.machine_id(), pid=sleeper.pid, process="")
        res, writes = cli_counting(harness, capsys, "up")
        assert res.code == 2 and writes == []
        assert f"pid {sleeper.pid}" in error_line(res)
        assert lock_value(harness) == doc
    finally:
        sleeper.kill()
        sleeper.wait()


# -- a run's own lock --------------------------------------------------------------------------


def test_up_and_teardown_hold_the_lock_and_leave_none(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, Any]] = []
    ssm = harness.client("ssm")

    def look(**_: Any) -> None:  # while the run's first step works, the lock is there
        if not seen:
            value = json.loads(ssm.get_parameter(Name=NAME)["Parameter"]["Value"])
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)
            seen.append({**value, "tags": {t["Key"]: t["Value"] for t in tags["TagList"]}})

    def register(client: Any) -> None:
        if client.meta.service_model.service_name == "ec2":
            client.meta.events.register("before-call.ec2.CreateVpc", look)

    with on_every_client(register):
        res = harness.cli("up", "--api-calls", capsys=capsys)
    assert res.code == 0, res.err
    (value,) = seen
    assert value["tags"] == {"pcls:stack": "meet", "pcls:step": "lock"}
    assert value["holder"] == "arn:aws:sts::123456789012:user/moto"
    assert value["command"] == "up" and value["pid"] > 0 and value["host"]
    assert value["lease_seconds"] == lock.LEASE_SECONDS and len(value["token"]) == 32
    started = dt.datetime.fromisoformat(value["started"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(value["expires"].replace("Z", "+00:00"))
    assert expires - started >= dt.timedelta(seconds=lock.LEASE_SECONDS - 5)
    assert lock_value(harness) is None
    calls = json.loads(res.err[res.err.index("{") :])
    assert calls["run_lock"] == {
        "parameter": NAME,
        "reads": 3,  # the check before the run, before taking it, before deleting it
        "writes": 2,
        "calls": {"ssm:DeleteParameter": 1, "ssm:GetParameter": 3, "ssm:PutParameter": 1},
    }
    assert "ssm:GetParameter" not in calls["calls"]

    again = harness.cli("up", "--api-calls", capsys=capsys)
    assert again.code == 0
    assert json.loads(again.err[again.err.index("{") :])["writes"] == 0  # the stack's writes
    assert lock_value(harness) is None

    res = harness.cli("teardown", "--yes", capsys=capsys)
    assert res.code == 0, res.err
    assert lock_value(harness) is None


def test_a_failing_run_releases_the_lock(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    fail = FailNth("CreateSecurityGroup", times=100, code="UnauthorizedOperation")
    with on_every_client(fail.register):
        res = harness.cli("up", capsys=capsys)
    assert res.code == 1 and fail.raised
    step, _, why = error_line(res).removeprefix("error: ").partition(": ")
    assert step in ("sg-alb", "sg-jvb", "sg-signal")
    assert (
        why == "CreateSecurityGroup failed: UnauthorizedOperation: injected UnauthorizedOperation"
    )
    assert lock_value(harness) is None


def test_an_interrupted_run_releases_the_lock(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = threading.Event()

    def ctrl_c(**_: Any) -> None:
        if not seen.is_set():
            seen.set()
            _thread.interrupt_main()  # Ctrl-C while the run's steps work

    def register(client: Any) -> None:
        client.meta.events.register("before-call.ec2.CreateSubnet", ctrl_c)

    with on_every_client(register):
        res = harness.cli("up", capsys=capsys)
    assert seen.is_set()
    assert res.code == 130, res.err
    assert "interrupted" in res.err
    assert lock_value(harness) is None


def test_a_run_whose_lock_is_removed_stops_and_says_so(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "RENEW_SECONDS", 0.05)
    ssm = harness.client("ssm")
    removed = threading.Event()

    def unlock_meanwhile(**_: Any) -> None:  # an operator runs `pcls unlock` on a live lock
        if not removed.is_set():
            removed.set()
            ssm.delete_parameter(Name=NAME)
            time.sleep(0.5)  # the renewal notices while this step still works

    def register(client: Any) -> None:
        client.meta.events.register("before-call.ec2.CreateSubnet", unlock_meanwhile)

    with on_every_client(register):
        res = harness.cli("up", capsys=capsys)
    assert removed.is_set()
    assert res.code == 1, res.err
    line = error_line(res)
    # Removed between two renewals, or while one ran (then its write shows the change).
    assert f"the run lock {NAME} was removed" in line or "changed while it was renewed" in line
    assert "up stopped at a safe point" in line and "run up again" in line
    steps = json.loads(harness.ledger_path.read_text())["steps"]
    assert "service-jvb" not in steps  # stopped early, not run to the end


# -- renewal -----------------------------------------------------------------------------------


def test_renewal_extends_the_lease(harness: Harness) -> None:
    s = harness.session()
    held = lock.RunLock(s.aws, "meet", "up", lease=30, renew_every=3600)
    held.acquire()
    try:
        first = lock_value(harness)
        assert first is not None
        time.sleep(1.1)  # the value has whole seconds
        assert held.renew()
        second = lock_value(harness)
        assert second is not None and second["token"] == first["token"]
        assert second["expires"] > first["expires"] and second["started"] == first["started"]
    finally:
        held.release()
    assert lock_value(harness) is None


def test_renewal_runs_in_the_background(harness: Harness) -> None:
    s = harness.session()
    held = lock.RunLock(s.aws, "meet", "up", lease=30, renew_every=0.05)
    held.acquire()
    try:
        deadline = time.monotonic() + 10
        while held.version < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.version >= 4 and not held.lost
    finally:
        held.release()
    assert lock_value(harness) is None


def test_renewal_never_overwrites_another_runs_lock(harness: Harness) -> None:
    s = harness.session()
    lost: list[str] = []
    held = lock.RunLock(s.aws, "meet", "up", lease=30, renew_every=3600, on_lost=lost.append)
    held.acquire()
    try:
        harness.client("ssm").delete_parameter(Name=NAME)  # `pcls unlock`, then another run
        doc = foreign_lock(harness)
        assert not held.renew()
        assert lost == [
            f"the run lock {NAME} was taken by {OTHER} on ci-runner-7 "
            f"(pid 4242, `pcls up`) since {doc['started']}"
        ]
        assert lock_value(harness) == doc
    finally:
        held.release()
    assert lock_value(harness) == doc  # not ours: release leaves it alone

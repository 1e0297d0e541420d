"""Ledger, lock and CLI contract through the public surface, on in-process moto."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from pcls.ledger import Ledger
from tests.harness import Harness


def test_ledger_is_private_and_complete_after_up(harness: Harness) -> None:
    result = harness.up()
    assert result.ok
    mode = stat.S_IMODE(os.stat(harness.ledger_path).st_mode)
    assert mode == 0o600
    data = json.loads(harness.ledger_path.read_text())
    assert data["schema"] == 1 and data["stack"] == "meet"
    assert data["account"] == "123456789012" and data["region"] == harness.region
    s = harness.last
    assert s is not None
    for name, r in result.results.items():
        if not s.ctx.outputs[name].retained:  # a zone pcls merely uses is not its to record
            assert data["steps"][name]["id"] == r.id, name
    assert not list(harness.state_dir.glob("*.tmp"))


def test_plan_writes_no_ledger(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    res = harness.cli("plan", capsys=capsys)
    assert res.code == 0
    assert "would create" in res.out and "Plan:" in res.out
    assert not harness.ledger_path.exists()


def test_up_prints_its_target_first(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    res = harness.cli("up", capsys=capsys)
    assert res.code == 0, res.err
    first = res.out.splitlines()[0]
    assert first.startswith("Target: account 123456789012")
    assert f"region {harness.region}" in first


def test_second_concurrent_run_is_refused_at_once(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Ledger(harness.state_dir, "meet")
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with ledger.locked():
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(5)
        res = harness.cli("up", capsys=capsys)
        assert res.code == 2
        assert "locked by pid" in res.err
        assert harness.cli("teardown", "--yes", capsys=capsys).code == 2
    finally:
        release.set()
        t.join()
    ec2 = harness.client("ec2")
    assert not ec2.describe_vpcs(Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}])["Vpcs"]


def test_ledger_from_another_account_stops_the_run(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.mkdir()
    ledger = {"schema": 1, "stack": "meet", "account": "999999999999", "region": "", "steps": {}}
    harness.ledger_path.write_text(json.dumps(ledger))
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert "999999999999" in res.err and res.err.count("\n") == 1
    assert json.loads(harness.ledger_path.read_text()) == ledger


def test_ledger_from_another_region_stops_the_run(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.mkdir()
    ledger = {"schema": 1, "stack": "meet", "account": "", "region": "us-west-2", "steps": {}}
    harness.ledger_path.write_text(json.dumps(ledger))
    assert harness.cli("up", capsys=capsys).code == 2


def test_corrupted_ledger_is_kept_as_backup(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.mkdir()
    harness.ledger_path.write_text('{"schema": 1, "stack": "meet", "ste')
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2 and "kept as" in res.err
    backups = list(harness.state_dir.glob("meet.json.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_text() == '{"schema": 1, "stack": "meet", "ste'
    # the next run rebuilds it from tags
    assert harness.cli("up", capsys=capsys).code == 0
    assert json.loads(harness.ledger_path.read_text())["steps"]


def test_status_json_and_exit_codes(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    res = harness.cli("status", "--json", capsys=capsys)
    assert res.code == 3
    doc = json.loads(res.out)
    assert doc["in_sync"] is False
    outcomes = {r["step"]: r["outcome"] for r in doc["resources"]}
    assert outcomes.pop("zone") == "in sync"  # the registered domain's zone already exists
    assert set(outcomes.values()) == {"missing"}
    assert harness.cli("up", capsys=capsys).code == 0
    res = harness.cli("status", "--json", capsys=capsys)
    assert res.code == 0, res.out
    doc = json.loads(res.out)
    assert doc["in_sync"] is True
    vpc = next(r for r in doc["resources"] if r["step"] == "vpc")
    assert vpc["id"].startswith("vpc-") and vpc["outcome"] == "in sync"


def test_teardown_needs_confirmation(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.cli("up", capsys=capsys).code == 0
    res = harness.cli("teardown", capsys=capsys)  # stdin is not a terminal under pytest
    assert res.code == 2 and "--yes" in res.err
    ec2 = harness.client("ec2")
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}])["Vpcs"]
    res = harness.cli("teardown", "--yes", capsys=capsys)
    assert res.code == 0, res.err
    assert "verified" in res.out


def test_aws_failure_is_one_line_naming_step_action_and_code(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    import botocore.session
    from botocore.exceptions import ClientError

    def deny(**kwargs: object) -> None:
        raise ClientError(
            {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed to CreateVpc"}},
            "CreateVpc",
        )

    # Every client pcls builds is made from botocore's session, so a global handler reaches it.
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call.ec2.CreateVpc", deny)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    try:
        res = harness.cli("up", capsys=capsys)
        res_debug = harness.cli("up", "--debug", capsys=capsys)
    finally:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]
    assert res.code == 1
    assert res.err.strip().splitlines() == [
        "error: vpc: CreateVpc failed: UnauthorizedOperation: not allowed to CreateVpc"
    ]
    assert res_debug.code == 1 and "Traceback" in res_debug.err

"""Ledger, lock and CLI contract through the public surface, on in-process moto."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from pcls.errors import ConfigError
from pcls.ledger import Ledger
from pcls.steps.network import Vpc
from tests.faults import on_every_client
from tests.harness import CliResult, Harness
from tests.inventory import inventory
from tests.test_bad_input import Recorder, one_line

REBUILD = "the ledger is only a cache: run again to rebuild it from AWS tags"


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
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.ledger_path}: ledger is for region us-west-2, credentials point at "
        f"{harness.region}; switch region or move the ledger away"
    )
    assert json.loads(harness.ledger_path.read_text()) == ledger


def test_corrupted_ledger_is_kept_as_backup(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.mkdir()
    harness.ledger_path.write_text('{"schema": 1, "stack": "meet", "ste')
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2 and "kept as" in res.err and REBUILD in res.err
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


# -- a ledger that cannot be trusted -----------------------------------------------------------

GOOD = {"schema": 1, "stack": "meet", "account": "", "region": "", "steps": {}}
WRONG_SHAPE = [
    pytest.param({**GOOD, "steps": {"vpc": "vpc-1"}}, "steps.vpc is not an object", id="entry"),
    pytest.param(
        {**GOOD, "steps": {"vpc": {"id": 5}}},
        "steps.vpc.id 5 is not a non-empty string",
        id="id-number",
    ),
    pytest.param(
        {**GOOD, "steps": {"vpc": {"id": ""}}},
        "steps.vpc.id '' is not a non-empty string",
        id="id-empty",
    ),
    pytest.param(
        {**GOOD, "steps": {"vpc": {"zone": "Z1"}}},
        "steps.vpc.id None is not a non-empty string",
        id="id-missing",
    ),
    pytest.param({**GOOD, "steps": []}, "steps is not an object", id="steps-list"),
    pytest.param(
        {**GOOD, "account": 123456789012}, "account 123456789012 is not a string", id="account"
    ),
    pytest.param({**GOOD, "region": None}, "region None is not a string", id="region"),
    pytest.param({**GOOD, "stack": ["meet"]}, "stack ['meet'] is not a string", id="stack"),
    pytest.param({**GOOD, "schema": "1"}, "schema '1' is not a whole number", id="schema-string"),
    pytest.param({**GOOD, "schema": True}, "schema True is not a whole number", id="schema-bool"),
    pytest.param([GOOD], "a JSON list, not an object", id="list"),
]


def run_refused(
    h: Harness, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[CliResult, Recorder]:
    """Run the CLI; prove AWS saw no write and holds what it held before."""
    before = inventory(h.region)
    rec = Recorder()
    with on_every_client(rec.register):
        res = h.cli(*args, capsys=capsys)
    assert rec.writes == [], rec.writes
    assert inventory(h.region) == before
    return res, rec


def kept_aside(h: Harness, path: Path) -> Path:
    """The one backup of path beside it; nothing else changed in the state directory."""
    backups = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(backups) == 1, backups
    assert re.fullmatch(re.escape(path.name) + r"\.corrupt-\d{14}", backups[0].name)
    assert not os.path.lexists(path)
    return backups[0]


@pytest.mark.parametrize("args", [("status",), ("plan",), ("up",)], ids=["status", "plan", "up"])
@pytest.mark.parametrize(("doc", "why"), WRONG_SHAPE)
def test_ledger_of_the_wrong_shape_is_kept_aside_and_stops_the_run(
    harness: Harness, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], doc: Any, why: str
) -> None:
    harness.state_dir.mkdir()
    text = json.dumps(doc)
    harness.ledger_path.write_text(text)
    res, rec = run_refused(harness, capsys, *args)
    assert res.code == 2, res.err
    backup = kept_aside(harness, harness.ledger_path)
    assert backup.read_text() == text  # the exact bytes, for whoever wants to look
    assert one_line(res) == (
        f"error: {harness.ledger_path}: unreadable ledger ({why}); kept as {backup.name}; {REBUILD}"
    )
    assert rec.ops == []  # refused before any AWS call
    assert sorted(p.name for p in harness.state_dir.iterdir()) == [backup.name]


def test_a_directory_where_the_ledger_should_be_is_kept_aside(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.ledger_path.mkdir(parents=True)
    (harness.ledger_path / "note").write_text("x")
    res, rec = run_refused(harness, capsys, "status")
    assert res.code == 2
    backup = kept_aside(harness, harness.ledger_path)
    assert (backup / "note").read_text() == "x"
    assert one_line(res) == (
        f"error: {harness.ledger_path}: a directory, where the ledger file should be; "
        f"kept as {backup.name}; {REBUILD}"
    )
    assert rec.ops == []


def test_a_fifo_where_the_ledger_should_be_is_never_opened(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.mkdir()
    os.mkfifo(harness.ledger_path)
    res, _ = run_refused(harness, capsys, "plan")  # would block forever if it were opened
    assert res.code == 2
    backup = kept_aside(harness, harness.ledger_path)
    assert stat.S_ISFIFO(os.lstat(backup).st_mode)
    assert one_line(res) == (
        f"error: {harness.ledger_path}: not a regular file, where the ledger file should be; "
        f"kept as {backup.name}; {REBUILD}"
    )


def test_a_file_where_the_state_directory_should_be_is_kept_aside(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.state_dir.write_text("not a directory")
    res, rec = run_refused(harness, capsys, "up")
    assert res.code == 2
    backup = kept_aside(harness, harness.state_dir)
    assert backup.read_text() == "not a directory"
    assert one_line(res) == (
        f"error: {harness.state_dir}: a file, where the ledger directory should be; "
        f"kept as {backup.name}; {REBUILD}"
    )
    assert rec.ops == []


def test_an_earlier_backup_is_never_overwritten(harness: Harness) -> None:
    harness.state_dir.mkdir()
    for n in range(3):
        harness.ledger_path.write_text(f"broken {n}")
        with pytest.raises(ConfigError):
            Ledger(harness.state_dir, "meet")
    kept = sorted(p.read_text() for p in harness.state_dir.glob("meet.json.corrupt-*"))
    assert kept == ["broken 0", "broken 1", "broken 2"]


def test_reject_keeps_the_ledger_aside_and_writes_nothing_more(harness: Harness) -> None:
    harness.state_dir.mkdir()
    doc = {**GOOD, "steps": {"vpc": {"id": "sg-0123"}}}
    harness.ledger_path.write_text(json.dumps(doc))
    ledger = Ledger(harness.state_dir, "meet")
    with pytest.raises(ConfigError) as err:
        ledger.reject("vpc", "id 'sg-0123' is not a ec2 vpc id (vpc-[0-9a-f]+)")
    backup = kept_aside(harness, harness.ledger_path)
    assert json.loads(backup.read_text()) == doc
    assert str(err.value) == (
        f"{harness.ledger_path}: ledger entry vpc: id 'sg-0123' is not a ec2 vpc id "
        f"(vpc-[0-9a-f]+); kept as {backup.name}; {REBUILD}"
    )
    # A step still in flight records its resource: nothing is written after the refusal.
    ledger.record("subnet-1", {"id": "subnet-1"})
    ledger.bind_target("123456789012", "eu-central-1")
    assert sorted(p.name for p in harness.state_dir.iterdir()) == [backup.name]


def test_reject_without_a_ledger_file_says_so(harness: Harness) -> None:
    ledger = Ledger(harness.state_dir, "meet")
    with pytest.raises(ConfigError) as err:
        ledger.reject("vpc", "id 'x' is not a ec2 vpc id")
    assert str(err.value) == (
        f"{harness.ledger_path}: ledger entry vpc: id 'x' is not a ec2 vpc id; "
        f"no ledger file was written yet; {REBUILD}"
    )
    assert not harness.state_dir.exists()


@pytest.mark.parametrize("args", [("status",), ("plan",), ("up",)], ids=["status", "plan", "up"])
def test_a_ledger_id_of_the_wrong_form_is_rejected_through_the_cli(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    monkeypatch.setattr(Vpc, "id_pattern", r"vpc-[0-9a-f]+")
    harness.state_dir.mkdir()
    doc = {**GOOD, "steps": {"vpc": {"id": "sg-0123"}}}
    harness.ledger_path.write_text(json.dumps(doc))
    res, _ = run_refused(harness, capsys, *args)
    assert res.code == 2, res.err
    backup = kept_aside(harness, harness.ledger_path)
    assert json.loads(backup.read_text()) == doc
    line = one_line(res)
    assert line.startswith(f"error: {harness.ledger_path}: ledger entry vpc: id 'sg-0123' ")
    assert line.endswith(f"; kept as {backup.name}; {REBUILD}")
    assert not harness.ledger_path.exists()


# -- atomic writes -----------------------------------------------------------------------------


def test_a_crash_before_the_rename_leaves_the_previous_ledger(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(harness.state_dir, "meet")
    ledger.record("vpc", {"id": "vpc-1"})
    before = harness.ledger_path.read_bytes()
    inode = os.stat(harness.ledger_path).st_ino

    def crash(src: Any, dst: Any) -> None:
        assert Path(src).parent == Path(dst).parent == harness.state_dir  # same filesystem
        assert json.loads(Path(src).read_text())["steps"]["subnet-1"] == {"id": "subnet-1"}
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(OSError):
            ledger.record("subnet-1", {"id": "subnet-1"})
    assert harness.ledger_path.read_bytes() == before
    assert os.stat(harness.ledger_path).st_ino == inode
    assert sorted(p.name for p in harness.state_dir.iterdir()) == ["meet.json"]  # no temp file
    assert Ledger(harness.state_dir, "meet").steps == {"vpc": {"id": "vpc-1"}}

    ledger.record("subnet-2", {"id": "subnet-2"})  # a save that succeeds replaces the file
    assert os.stat(harness.ledger_path).st_ino != inode
    assert set(json.loads(harness.ledger_path.read_text())["steps"]) == {
        "vpc",
        "subnet-1",
        "subnet-2",
    }
    assert sorted(p.name for p in harness.state_dir.iterdir()) == ["meet.json"]

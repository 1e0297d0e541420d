"""What `pcls status --json` and `pcls plan` say, value by value, not only their exit codes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.harness import Harness

KEYS = {"step", "kind", "outcome", "id", "drift", "details", "error"}


def status(h: Harness, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    res = h.cli("status", "--json", capsys=capsys)
    assert res.err == ""
    return res.code, json.loads(res.out)


def by_step(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = {r["step"]: r for r in doc["resources"]}
    assert len(rows) == len(doc["resources"])
    return rows


def zone_id(h: Harness) -> str:
    zones = h.client("route53").list_hosted_zones_by_name(DNSName="example.com")["HostedZones"]
    return zones[0]["Id"].split("/")[-1]


def test_status_json_names_the_stack_region_and_every_step_before_and_after_up(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = harness.session().engine.steps
    code, doc = status(harness, capsys)
    assert code == 3
    assert set(doc) == {"stack", "region", "in_sync", "resources"}
    assert (doc["stack"], doc["region"], doc["in_sync"]) == ("meet", harness.region, False)
    rows = by_step(doc)
    assert set(rows) == set(steps)
    for name, row in rows.items():
        assert set(row) == KEYS, name
        assert row["kind"] == steps[name].kind
        assert (row["drift"], row["error"]) == ([], None), name
    zone = rows.pop("zone")
    assert (zone["outcome"], zone["id"]) == ("in sync", zone_id(harness))
    assert {(r["outcome"], r["id"], json.dumps(r["details"])) for r in rows.values()} == {
        ("missing", "", "{}")
    }

    assert harness.cli("up", capsys=capsys).code == 0
    ledger = json.loads(harness.ledger_path.read_text())["steps"]
    code, doc = status(harness, capsys)
    assert code == 0
    assert (doc["stack"], doc["region"], doc["in_sync"]) == ("meet", harness.region, True)
    rows = by_step(doc)
    assert set(rows) == set(steps)
    assert rows.pop("zone")["id"] == zone_id(harness)  # used, not made: not in the ledger
    for name, row in rows.items():
        assert (row["outcome"], row["drift"], row["error"]) == ("in sync", [], None), name
        assert row["id"] == ledger[name]["id"], name
    assert rows["vpc"]["id"].startswith("vpc-")


def test_status_json_names_the_drifted_resource_and_what_differs(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.cli("up", capsys=capsys).code == 0
    ec2 = harness.client("ec2")
    sg = ec2.describe_security_groups(Filters=[{"Name": "tag:pcls:step", "Values": ["sg-jvb"]}])[
        "SecurityGroups"
    ][0]
    ec2.revoke_security_group_egress(GroupId=sg["GroupId"], IpPermissions=sg["IpPermissionsEgress"])
    code, doc = status(harness, capsys)
    assert code == 3
    assert doc["in_sync"] is False
    rows = by_step(doc)
    drifted = {n: r for n, r in rows.items() if r["outcome"] != "in sync"}
    assert list(drifted) == ["sg-jvb"]
    assert drifted["sg-jvb"]["outcome"] == "drifted"
    assert drifted["sg-jvb"]["id"] == sg["GroupId"]
    assert drifted["sg-jvb"]["drift"] == ["egress to anywhere missing"]


def test_plan_on_an_empty_account_lists_each_create_and_what_it_waits_for(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = harness.session().engine.steps
    res = harness.cli("plan", capsys=capsys)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == (
        f"Target: account 123456789012 · region {harness.region} · stack meet (plan: read-only)"
    )
    shown = sorted(re.sub(r" \(\d+\.\ds\)$", "", line) for line in lines if line.startswith("+ "))
    expected = []
    for name, step in steps.items():
        if name == "zone":  # the registered domain's zone exists: unchanged, not listed
            continue
        missing = [d for d in step.depends_on if d != "zone"]
        line = f"+ {'would create':<13}{name:<24}"
        expected.append(line + (f" after {', '.join(missing)}" if missing else ""))
    assert shown == sorted(expected)
    assert f"Plan: {len(steps) - 1} to create, 0 to update, 1 unchanged." in lines
    assert not [line for line in lines if line.startswith(("~ ", "- ", "! "))]

"""The projector view the live demo shows: `pcls status --compact` and `pcls cost --compact`
fit 80 columns by 24 lines and say what the full views say (counts, names, amounts)."""

from __future__ import annotations

import json
import re

import pytest

from tests.harness import Harness

COLUMNS, ROWS = 80, 24


def _fits(out: str) -> list[str]:
    lines = out.splitlines()
    assert 0 < len(lines) <= ROWS, len(lines)
    assert all(len(line) <= COLUMNS for line in lines), max(lines, key=len)
    return lines


def _groups(lines: list[str]) -> dict[str, str]:
    """label → rest of the line, for the lines after the header."""
    return {line[:14].strip(): line[14:] for line in lines[1:]}


def test_status_compact_before_and_after_up_and_with_drift(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = harness.session().engine.steps
    res = harness.cli("status", "--compact", capsys=capsys)
    assert (res.code, res.err) == (3, "")
    lines = _fits(res.out)
    assert (
        lines[0]
        == f"meet · eu-central-1 · {len(steps)} resources: 1 in sync, {len(steps) - 1} missing"
    )
    named = re.findall(r"missing: ([^·\n]+)", res.out)
    listed = {n.strip() for group in named for n in group.split(",")}
    # a long list ends in "…": every step is named or cut off at the line's end
    assert "zone" not in listed
    assert {n for n in listed if not n.endswith("…")} <= set(steps) - {"zone"}
    assert len(listed) + sum(line.endswith("…") for line in lines) >= len(steps) - 3

    assert harness.cli("up", capsys=capsys).code == 0
    res = harness.cli("status", "--compact", capsys=capsys)
    assert (res.code, res.err) == (0, "")
    lines = _fits(res.out)
    assert lines[0] == f"meet · eu-central-1 · {len(steps)} resources: {len(steps)} in sync"
    groups = _groups(lines)
    counts = [int(m.group(1)) for v in groups.values() if (m := re.fullmatch(r"(\d+) in sync", v))]
    assert sum(counts) == len(steps)
    assert {"network", "load balancer", "services", "scaling"} <= set(groups)
    assert groups["shard-a"].startswith("eu-central-1a · 1/1 running")
    assert groups["shard-b"].startswith("eu-central-1b · 1/1 running")
    assert groups["bridges"].startswith("2/2 running (min 2, max 4)")

    ec2 = harness.client("ec2")
    sg = ec2.describe_security_groups(Filters=[{"Name": "tag:pcls:step", "Values": ["sg-jvb"]}])[
        "SecurityGroups"
    ][0]
    ec2.revoke_security_group_egress(GroupId=sg["GroupId"], IpPermissions=sg["IpPermissionsEgress"])
    res = harness.cli("status", "--compact", capsys=capsys)
    assert res.code == 3
    groups = _groups(_fits(res.out))
    assert groups["network"] == "7 in sync · sg-jvb drifted (egress to anywhere missing)"
    assert [k for k, v in groups.items() if "drifted" in v] == ["network"]


def test_status_compact_with_the_most_shards_still_fits(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.write_config("[signal]\nshards = 8\n")
    assert harness.cli("up", capsys=capsys).code == 0
    res = harness.cli("status", "--compact", capsys=capsys)
    assert res.code == 0, res.err
    groups = _groups(_fits(res.out))
    shards = [k for k in groups if k.startswith("shard-")]
    assert shards == [f"shard-{c}" for c in "abcdefgh"]


def test_cost_compact_shows_the_amounts_of_cost_json(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    full = harness.cli("cost", "--json", capsys=capsys)
    assert full.code == 0
    doc = json.loads(full.out)
    res = harness.cli("cost", "--compact", capsys=capsys)
    assert (res.code, res.err) == (0, "")
    lines = _fits(res.out)

    def amounts(line: str) -> tuple[str, str]:
        m = re.search(r"(\$[\d,]+\.\d\d) +(\$[\d,]+\.\d\d)$", line)
        assert m, line
        return m.group(1), m.group(2)

    def money(v: float) -> str:
        return f"${v:,.2f}"

    total = next(line for line in lines if line.startswith("Total per month"))
    assert amounts(total) == (money(doc["total"]["idle"]), money(doc["total"]["max"]))
    big = [i for i in doc["lines"] if i["idle"] >= 1 or i["max"] >= 1]
    for item in big:
        line = next(line for line in lines if line.startswith(item["name"][:40]))
        assert amounts(line) == (money(item["idle"]), money(item["max"]))
        assert (line[53] == "E") == item["estimate"], line
    small = [i for i in doc["lines"] if i not in big]
    rest = next(line for line in lines if line.startswith(f"{len(small)} more items"))
    assert amounts(rest) == (
        money(sum(i["idle"] for i in small)),
        money(sum(i["max"] for i in small)),
    )
    for c in doc["comparisons"].values():
        line = next(line for line in lines if line.startswith(c["name"][:40]))
        assert amounts(line) == (money(c["idle"]), money(c["max"]))
    central = doc["per_100_participant_hours"]["central"]["total"]
    assert f"central {money(central)}" in res.out


@pytest.mark.parametrize("command", ["status", "cost"])
def test_compact_and_json_together_is_one_line_exit_2(
    harness: Harness, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    res = harness.cli(command, "--compact", "--json", capsys=capsys)
    assert (res.code, res.out) == (2, "")
    assert res.err == "error: --compact: not with --json; pick one\n"

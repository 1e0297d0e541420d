"""Behaviours a mutation of the core once left unchecked, each asserted by what it does.

docs/mutation.md names, for each mutation, the test here (or elsewhere) that now fails on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from pcls import config, runner
from pcls.aws import STACK_TAG, STEP_TAG, Aws
from pcls.engine import Context
from pcls.ledger import Ledger
from pcls.steps import platform
from pcls.ui import Outcome, RecordingReporter
from tests.faults import on_every_client
from tests.harness import Harness

REGION = "eu-central-1"
ACCOUNT = "123456789012"


def _ctx(tmp_path: Path, ledger_steps: dict[str, str] | None = None) -> Context:
    cfg = config.loads('[stack]\nname = "tt"\ndomain = "t.example.com"\nregion = "eu-central-1"\n')
    ledger = Ledger(tmp_path, "tt")
    for step, rid in (ledger_steps or {}).items():
        ledger.record(step, {"id": rid})
    return Context(cfg, Aws(REGION), ledger, RecordingReporter())


def _item(rid: str, stack: str | None = "tt", step: str | None = "topic", name: str = "") -> Any:
    tags = []
    if stack is not None:
        tags.append({"Key": STACK_TAG, "Value": stack})
    if step is not None:
        tags.append({"Key": STEP_TAG, "Value": step})
    return {"Id": rid, "Name": name, "Tags": tags}


# -- Context.pick: the tags decide, the ledger id only breaks a tie ----------------------------


def test_pick_takes_the_one_the_ledger_names_among_two_tagged(tmp_path: Path) -> None:
    items = [_item("a-1"), _item("a-2")]
    assert _ctx(tmp_path / "l1", {"topic": "a-2"}).pick("topic", items, "Id")["Id"] == "a-2"
    assert _ctx(tmp_path / "l2", {"topic": "a-1"}).pick("topic", items, "Id")["Id"] == "a-1"


def test_pick_without_a_ledger_id_refuses_to_guess_between_two_tagged(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(Exception) as err:
        ctx.pick("topic", [_item("a-1"), _item("a-2")], "Id")
    assert str(err.value) == (
        "topic: 2 resources carry pcls:stack=tt pcls:step=topic (a-1, a-2); "
        "delete the extra one, then run again"
    )


def test_pick_never_takes_what_the_ledger_names_when_it_is_not_the_stacks(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"topic": "x-9"})
    items = [_item("a-1"), _item("x-9", stack=None, step=None), _item("o-1", stack="other")]
    assert ctx.pick("topic", items, "Id", what="sns topic tt-alarms")["Id"] == "a-1"
    [conflict] = ctx.conflicts_of("topic")
    assert (conflict.id, conflict.from_ledger, conflict.owner) == ("x-9", True, "")
    assert conflict.message("tt") == (
        "topic: sns topic tt-alarms (x-9) carries no pcls:stack tag; the ledger names it: "
        "rename the stack (stack.name), remove that resource, or claim it with "
        "`pcls adopt topic x-9`"
    )


def test_pick_records_an_item_of_our_name_that_is_not_ours(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    items = [_item("n-1", stack="other", step="topic", name="tt-alarms"), _item("n-2", name="x")]
    found = ctx.pick("topic", items, "Id", name=lambda i: i["Name"], want="tt-alarms")
    assert found["Id"] == "n-2"
    [conflict] = ctx.conflicts_of("topic")
    assert (conflict.id, conflict.from_ledger, conflict.owner) == ("n-1", False, "other")
    assert conflict.message("tt") == (
        "topic: topic (n-1) belongs to stack 'other' (pcls:stack=other); it has the name pcls "
        "would use: another stack's resource is never adopted: rename the stack (stack.name)"
    )


def _tagged_vpc(cidr: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    tags = [{"Key": STACK_TAG, "Value": "meet"}, {"Key": STEP_TAG, "Value": "vpc"}]
    return ec2.create_vpc(
        CidrBlock=cidr, TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}]
    )["Vpc"]["VpcId"]


def _write_ledger(h: Harness, steps: dict[str, str]) -> None:
    h.state_dir.mkdir(exist_ok=True)
    doc = {"schema": 1, "stack": "meet", "account": "", "region": "", "steps": {}}
    doc["steps"] = {step: {"id": rid} for step, rid in steps.items()}
    h.ledger_path.write_text(json.dumps(doc))


def _status_of(h: Harness, capsys: Any, step: str) -> dict[str, Any]:
    res = h.cli("status", "--json", capsys=capsys)
    return next(r for r in json.loads(res.out)["resources"] if r["step"] == step)


def test_two_tagged_vpcs_the_ledger_names_one_and_status_shows_that_one(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _tagged_vpc("10.42.0.0/16"), _tagged_vpc("10.42.0.0/16")
    _write_ledger(harness, {"vpc": second})
    assert _status_of(harness, capsys, "vpc")["id"] == second
    _write_ledger(harness, {"vpc": first})
    assert _status_of(harness, capsys, "vpc")["id"] == first
    harness.ledger_path.unlink()
    vpc = _status_of(harness, capsys, "vpc")
    assert vpc["outcome"] == "failed"
    assert vpc["error"] == (
        f"vpc: 2 resources carry pcls:stack=meet pcls:step=vpc ({first}, {second}); "
        "delete the extra one, then run again"
    ) or vpc["error"] == (
        f"vpc: 2 resources carry pcls:stack=meet pcls:step=vpc ({second}, {first}); "
        "delete the extra one, then run again"
    )


def test_a_ledger_id_naming_an_untagged_vpc_stops_plan_before_any_write(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    mine = _tagged_vpc("10.42.0.0/16")
    stranger = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    _write_ledger(harness, {"vpc": stranger})
    res = harness.cli("plan", capsys=capsys)
    assert res.code == 2
    assert res.err.strip() == (
        f"error: vpc: VPC ({stranger}) carries no pcls:stack tag; the ledger names it: "
        "rename the stack (stack.name), remove that resource, or claim it with "
        f"`pcls adopt vpc {stranger}`"
    )
    assert mine in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}


# -- the ledger is replaced whole, never rewritten in place ------------------------------------


def test_a_crash_while_the_new_ledger_is_written_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path, "meet")
    ledger.record("vpc", {"id": "vpc-1"})
    path = tmp_path / "meet.json"
    before = path.read_bytes()
    real_dump = json.dump

    def half_then_full_disk(obj: Any, fh: Any, **kw: Any) -> None:
        fh.write(json.dumps(obj, **kw)[:20])
        fh.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        ledger.record("subnet-1", {"id": "subnet-1"})
    monkeypatch.setattr(json, "dump", real_dump)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meet.json"]
    assert Ledger(tmp_path, "meet").steps == {"vpc": {"id": "vpc-1"}}


def test_every_save_is_a_new_file_renamed_over_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path, "meet")
    renames: list[tuple[str, str]] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ledger.record("vpc", {"id": "vpc-1"})
    ledger.forget("vpc")
    assert len(renames) == 2
    for src, dst in renames:
        assert dst == "meet.json"
        assert src.startswith(".meet.") and src.endswith(".tmp")
    assert json.loads((tmp_path / "meet.json").read_text())["steps"] == {}


# -- the operator policy's log-group scope is the log group pcls makes ------------------------


def test_iam_policy_log_group_scope_is_the_stacks_log_group(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    res = harness.cli("iam-policy", "--account", ACCOUNT, capsys=capsys)
    assert res.code == 0, res.err
    docs = json.loads(res.out)
    name = platform.log_group_name(harness.session().ctx)
    assert name == "/pcls/meet"
    group = f"arn:aws:logs:{harness.region}:{ACCOUNT}:log-group:{name}"
    scoped = {
        st["Sid"]: st["Resource"]
        for doc in docs
        for st in doc["Statement"]
        if any(a.startswith("logs:") and a != "logs:DescribeLogGroups" for a in st["Action"])
        and st["Resource"] != "*"
    }
    # and the wake function's own group, Lambda's name for it
    wake = f"arn:aws:logs:{harness.region}:{ACCOUNT}:log-group:/aws/lambda/meet-wake"
    both = [group, f"{group}:*", wake, f"{wake}:*"]
    assert scoped == {"LogGroupCreate": both, "LogGroupOwn": both}


# -- a security group's egress: drift, repaired by up ----------------------------------------


def _group(h: Harness, step: str) -> dict[str, Any]:
    ec2 = h.client("ec2")
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": f"tag:{STACK_TAG}", "Values": ["meet"]},
            {"Name": f"tag:{STEP_TAG}", "Values": [step]},
        ]
    )["SecurityGroups"]
    assert len(groups) == 1
    return groups[0]


def _egress(group: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (p["IpProtocol"], r["CidrIp"]) for p in group["IpPermissionsEgress"] for r in p["IpRanges"]
    )


def test_a_removed_egress_rule_is_drift_and_up_restores_it(harness: Harness) -> None:
    assert harness.up().ok
    sg = _group(harness, "sg-jvb")
    assert _egress(sg) == [("-1", "0.0.0.0/0")]
    harness.client("ec2").revoke_security_group_egress(
        GroupId=sg["GroupId"], IpPermissions=sg["IpPermissionsEgress"]
    )
    plan = harness.plan().results["sg-jvb"]
    assert plan.outcome is Outcome.WOULD_UPDATE
    assert plan.drift == ["egress to anywhere missing"]
    status = harness.status().results["sg-jvb"]
    assert (status.outcome, status.drift) == (Outcome.DRIFTED, ["egress to anywhere missing"])
    up = harness.up().results["sg-jvb"]
    assert up.outcome is Outcome.UPDATED
    assert up.detail == f"{sg['GroupId']}: egress to anywhere missing"
    assert _egress(_group(harness, "sg-jvb")) == [("-1", "0.0.0.0/0")]
    assert harness.status().results["sg-jvb"].outcome is Outcome.IN_SYNC


def test_an_added_egress_rule_is_drift_and_up_removes_it(harness: Harness) -> None:
    assert harness.up().ok
    sg = _group(harness, "sg-alb")
    harness.client("ec2").authorize_security_group_egress(
        GroupId=sg["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 25,
                "ToPort": 25,
                "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "added by hand"}],
            }
        ],
    )
    drift = ["egress tcp/25 cidr:10.0.0.0/8 not in config"]
    plan = harness.plan().results["sg-alb"]
    assert (plan.outcome, plan.drift) == (Outcome.WOULD_UPDATE, drift)
    status = harness.status().results["sg-alb"]
    assert (status.outcome, status.drift) == (Outcome.DRIFTED, drift)
    up = harness.up().results["sg-alb"]
    assert up.outcome is Outcome.UPDATED
    assert up.detail == f"{sg['GroupId']}: {drift[0]}"
    assert _egress(_group(harness, "sg-alb")) == [("-1", "0.0.0.0/0")]
    assert harness.status().results["sg-alb"].outcome is Outcome.IN_SYNC


def test_an_egress_rule_to_another_group_is_revoked_and_the_allow_all_restored(
    harness: Harness,
) -> None:
    """Both at once: the allow-all rule replaced by a narrower one naming another group."""
    assert harness.up().ok
    sg = _group(harness, "sg-jvb")
    other = _group(harness, "sg-alb")["GroupId"]
    ec2 = harness.client("ec2")
    ec2.revoke_security_group_egress(GroupId=sg["GroupId"], IpPermissions=sg["IpPermissionsEgress"])
    ec2.authorize_security_group_egress(
        GroupId=sg["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 53,
                "ToPort": 53,
                "UserIdGroupPairs": [{"GroupId": other}],
            }
        ],
    )
    drift = ["egress to anywhere missing", f"egress udp/53 group:{other} not in config"]
    assert harness.status().results["sg-jvb"].drift == drift
    up = harness.up().results["sg-jvb"]
    assert up.outcome is Outcome.UPDATED
    assert _egress(_group(harness, "sg-jvb")) == [("-1", "0.0.0.0/0")]
    assert _group(harness, "sg-jvb")["IpPermissionsEgress"][0].get("UserIdGroupPairs", []) == []
    assert harness.status().results["sg-jvb"].outcome is Outcome.IN_SYNC


def test_dual_stack_groups_keep_both_allow_all_egress_rules(harness: Harness) -> None:
    """In a VPC with an IPv6 range a new group allows all outbound of both families: both are
    the stack's rules (no drift), and the IPv6 one comes back when it is revoked."""
    harness.write_config("[network]\ndual_stack = true\n")
    assert harness.up().ok
    sg = _group(harness, "sg-jvb")
    v6 = [
        (p["IpProtocol"], r["CidrIpv6"]) for p in sg["IpPermissionsEgress"] for r in p["Ipv6Ranges"]
    ]
    assert (_egress(sg), v6) == ([("-1", "0.0.0.0/0")], [("-1", "::/0")])
    assert harness.status().results["sg-jvb"].outcome is Outcome.IN_SYNC
    harness.client("ec2").revoke_security_group_egress(
        GroupId=sg["GroupId"],
        IpPermissions=[{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    )
    assert harness.status().results["sg-jvb"].drift == ["egress to anywhere (IPv6) missing"]
    assert harness.up().results["sg-jvb"].outcome is Outcome.UPDATED
    again = _group(harness, "sg-jvb")["IpPermissionsEgress"]
    assert sorted(r["CidrIpv6"] for p in again for r in p.get("Ipv6Ranges", [])) == ["::/0"]
    assert harness.status().results["sg-jvb"].outcome is Outcome.IN_SYNC


def test_teardown_reports_an_alias_to_a_load_balancer_that_no_longer_exists(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the after-teardown check reads: an alias of the domain in the stack's zone whose
    target is a load balancer of this region that is gone. It is named, never deleted."""
    r53 = harness.client("route53")
    zone = r53.list_hosted_zones_by_name(DNSName="example.com")["HostedZones"][0]["Id"]
    target = f"dualstack.gone-alb-123.{harness.region}.elb.amazonaws.com."
    alias = {
        "Name": "meet.example.com.",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": "Z215JYRZR1TBD5",
            "DNSName": target,
            "EvaluateTargetHealth": False,
        },
    }
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": alias}]},
    )
    s = harness.session()
    result = runner.do_teardown(s)
    assert not result.failures
    [left] = result.remaining
    assert left.startswith("dns-record (route53 alias meet.example.com A to ")
    assert f"gone-alb-123.{harness.region}.elb.amazonaws.com" in left
    assert left.endswith(f", a load balancer that no longer exists, in zone {zone.split('/')[-1]})")
    sets = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert any(r["Name"] == "meet.example.com." and r["Type"] == "A" for r in sets)


def test_a_rule_that_is_there_already_is_not_an_error(harness: Harness) -> None:
    """A describe that lags (or a rule EC2 added itself) makes pcls add a rule AWS has: EC2
    refuses the whole call with InvalidPermission.Duplicate, and up adds the others one by one."""
    harness.write_config("[network]\ndual_stack = true\n")
    assert harness.up().ok
    sg = _group(harness, "sg-jvb")
    harness.client("ec2").revoke_security_group_egress(
        GroupId=sg["GroupId"],
        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    refused: list[str] = []

    def lagging(parsed: dict, **_: object) -> None:  # the ::/0 rule not seen yet
        for group in parsed.get("SecurityGroups", []):
            for perm in group.get("IpPermissionsEgress", []):
                perm["Ipv6Ranges"] = []

    def record(http_response: object, parsed: dict, **_: object) -> None:
        if parsed.get("Error", {}).get("Code"):
            refused.append(parsed["Error"]["Code"])

    def register(client: object) -> None:
        events = client.meta.events  # type: ignore[attr-defined]
        if client.meta.service_model.service_id.hyphenize() == "ec2":  # type: ignore[attr-defined]
            events.register("after-call.ec2.DescribeSecurityGroups", lagging)
            events.register("after-call.ec2.AuthorizeSecurityGroupEgress", record)

    with on_every_client(register):
        up = harness.up()
    assert up.ok and up.results["sg-jvb"].outcome is Outcome.UPDATED
    assert "InvalidPermission.Duplicate" in refused  # moto, like EC2, refused the batch
    again = _group(harness, "sg-jvb")["IpPermissionsEgress"]
    assert _egress(_group(harness, "sg-jvb")) == [("-1", "0.0.0.0/0")]
    assert sorted(r["CidrIpv6"] for p in again for r in p.get("Ipv6Ranges", [])) == ["::/0"]
    assert harness.status().results["sg-jvb"].outcome is Outcome.IN_SYNC

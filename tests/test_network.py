"""Network layer through the step API and the CLI, on moto."""

from __future__ import annotations

import json

from pcls.ui import Outcome
from tests.harness import Harness

NETWORK_STEPS = {
    "vpc",
    "subnet-1",
    "subnet-2",
    "internet-gateway",
    "route-table",
    "sg-alb",
    "sg-jvb",
    "sg-signal",
}


def _stack_count(h: Harness, op: str, key: str) -> int:
    ec2 = h.client("ec2")
    flt = [{"Name": "tag:pcls:stack", "Values": ["meet"]}]
    return len(getattr(ec2, op)(Filters=flt)[key])


def test_up_creates_network_with_expected_shape(harness: Harness) -> None:
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    outcomes = {n: r.outcome for n, r in result.results.items() if n in NETWORK_STEPS}
    assert set(outcomes.values()) == {Outcome.CREATED}
    ec2 = harness.client("ec2")
    vpc_id = result.results["vpc"].id
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")[
        "EnableDnsHostnames"
    ]["Value"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    rt = ec2.describe_route_tables(RouteTableIds=[result.results["route-table"].id])
    routes = rt["RouteTables"][0]["Routes"]
    igw = result.results["internet-gateway"].id
    assert any(
        r.get("DestinationCidrBlock") == "0.0.0.0/0" and r["GatewayId"] == igw for r in routes
    )
    assocs = {a["SubnetId"] for a in rt["RouteTables"][0]["Associations"] if a.get("SubnetId")}
    assert assocs == {s["SubnetId"] for s in subnets}
    signal = ec2.describe_security_groups(GroupIds=[result.results["sg-signal"].id])
    pairs = {
        (p["FromPort"], g["GroupId"])
        for p in signal["SecurityGroups"][0]["IpPermissions"]
        for g in p["UserIdGroupPairs"]
    }
    assert pairs == {
        (8080, result.results["sg-alb"].id),  # the routers, the load balancer's targets
        (8000, result.results["sg-signal"].id),  # every shard's web, from the routers
        (5222, result.results["sg-jvb"].id),
        (8888, result.results["sg-jvb"].id),  # jicofo REST, for draining bridges
    }
    # Every resource carries the stack and step tags.
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["Tags"]}
    assert tags["pcls:stack"] == "meet" and tags["pcls:step"] == "vpc"


def test_second_up_makes_no_write_calls(harness: Harness) -> None:
    assert harness.up().ok
    result = harness.up()
    assert result.ok
    assert harness.writes() == {}
    assert {r.outcome for n, r in result.results.items() if n in NETWORK_STEPS} == {
        Outcome.UNCHANGED
    }


def test_plan_is_read_only_and_lists_creates(harness: Harness) -> None:
    result = harness.plan()
    assert harness.writes() == {}
    assert result.results["vpc"].outcome is Outcome.WOULD_CREATE
    assert _stack_count(harness, "describe_vpcs", "Vpcs") == 0


def test_read_only_mode_refuses_writes(harness: Harness) -> None:
    s = harness.session()
    s.aws.read_only = True
    try:
        s.aws.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")
    except Exception as exc:
        assert "refused" in str(exc)
    else:
        raise AssertionError("a write went through in read-only mode")


def test_lost_ledger_is_rebuilt_from_tags_without_duplicates(harness: Harness) -> None:
    first = harness.up()
    ids = {n: r.id for n, r in first.results.items()}
    harness.ledger_path.unlink()
    second = harness.up()
    assert second.ok
    assert {n: r.id for n, r in second.results.items()} == ids
    assert harness.writes() == {}
    assert _stack_count(harness, "describe_vpcs", "Vpcs") == 1
    assert _stack_count(harness, "describe_subnets", "Subnets") == 2
    ledger = json.loads(harness.ledger_path.read_text())
    assert ledger["steps"]["vpc"]["id"] == ids["vpc"]


def test_deleted_rule_is_drift_and_up_restores_it(harness: Harness, capsys) -> None:
    first = harness.up()
    sg = first.results["sg-jvb"].id
    ec2 = harness.client("ec2")
    ec2.revoke_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 10000,
                "ToPort": 10000,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    res = harness.cli("status", capsys=capsys)
    assert res.code == 3
    assert "sg-jvb" in res.out and "udp/10000" in res.out
    fixed = harness.up()
    assert fixed.results["sg-jvb"].outcome is Outcome.UPDATED
    assert harness.cli("status", capsys=capsys).code == 0


def test_extra_rule_is_drift_and_up_revokes_it(harness: Harness) -> None:
    first = harness.up()
    sg = first.results["sg-alb"].id
    harness.client("ec2").authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    status = harness.status()
    assert status.results["sg-alb"].outcome is Outcome.DRIFTED
    assert any("tcp/22" in d for d in status.results["sg-alb"].drift)
    assert harness.up().results["sg-alb"].outcome is Outcome.UPDATED
    assert harness.status().results["sg-alb"].outcome is Outcome.IN_SYNC


def test_teardown_leaves_no_network_resource(harness: Harness) -> None:
    assert harness.up().ok
    result = harness.teardown()
    assert result.ok, result.remaining
    for op, key in (
        ("describe_vpcs", "Vpcs"),
        ("describe_subnets", "Subnets"),
        ("describe_internet_gateways", "InternetGateways"),
        ("describe_route_tables", "RouteTables"),
        ("describe_security_groups", "SecurityGroups"),
    ):
        assert _stack_count(harness, op, key) == 0, op
    # A second teardown finds nothing and still succeeds.
    again = harness.teardown()
    assert again.ok
    assert all(
        r.outcome is Outcome.ABSENT for r in again.results.values() if r.step in NETWORK_STEPS
    )


def test_three_azs(harness: Harness) -> None:
    harness.write_config("[network]\nazs = 3\n")
    result = harness.up()
    assert result.ok
    assert _stack_count(harness, "describe_subnets", "Subnets") == 3


def test_more_azs_than_region_has_is_refused_before_any_write(harness: Harness, capsys) -> None:
    harness.write_config("[network]\nazs = 6\n")
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert "network.azs" in res.err and "offers 3" in res.err
    assert _stack_count(harness, "describe_vpcs", "Vpcs") == 0


def test_dual_stack_gives_vpc_subnets_and_routes_ipv6(harness: Harness) -> None:
    harness.write_config("[network]\ndual_stack = true\n")
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    ec2 = harness.client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[result.results["vpc"].id])["Vpcs"][0]
    block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    v6 = sorted(s["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"] for s in subnets["Subnets"])
    assert len(v6) == 2 and all(b.endswith("/64") for b in v6)
    assert block.split("::")[0][:9] == v6[0][:9]
    rt = ec2.describe_route_tables(RouteTableIds=[result.results["route-table"].id])
    routes = rt["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationIpv6CidrBlock") == "::/0" for r in routes)
    alb_sg = ec2.describe_security_groups(GroupIds=[result.results["sg-alb"].id])
    v6_rules = [r for p in alb_sg["SecurityGroups"][0]["IpPermissions"] for r in p["Ipv6Ranges"]]
    assert len(v6_rules) == 2
    assert harness.up().ok and harness.writes() == {}


def test_teardown_names_a_stack_resource_no_step_owns_any_more(harness: Harness) -> None:
    assert harness.up().ok
    ec2 = harness.client("ec2")
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
    stray = ec2.create_security_group(
        GroupName="meet-old",
        Description="left from an older config",
        VpcId=default_vpc["Vpcs"][0]["VpcId"],
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [
                    {"Key": "pcls:stack", "Value": "meet"},
                    {"Key": "pcls:step", "Value": "sg-old"},
                ],
            }
        ],
    )["GroupId"]
    result = harness.teardown()
    assert not result.failures
    assert result.remaining == [f"sg-old (ec2 security-group {stray})"]


def test_vpc_delete_blocked_by_a_dropped_subnet_names_it(harness: Harness) -> None:
    harness.write_config("[network]\nazs = 3\n")
    assert harness.up().ok
    harness.write_config("[network]\nazs = 2\n")  # subnet-3 is no longer in the config
    sub3 = harness.client("ec2").describe_subnets(
        Filters=[{"Name": "tag:pcls:step", "Values": ["subnet-3"]}]
    )["Subnets"][0]["SubnetId"]
    result = harness.teardown()
    vpc = result.results["vpc"]
    assert vpc.outcome is Outcome.FAILED
    assert sub3 in vpc.detail and "run again" in vpc.detail

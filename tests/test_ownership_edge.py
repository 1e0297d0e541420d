"""Ownership at the edge and in the network: pcls touches only what carries its stack's tags.

Several stacks share one account here (`meet`, `meet-2`, `m`), as they would in a team's
account. Names and ledger ids only say where to look: what another stack owns, or what carries
no tag at all, is never found, re-tagged, repaired or deleted. The describe output of the
other stacks' resources is compared before and after with plain boto3 clients, and writes are
counted with the run's own call accounting.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import botocore.awsrequest
import pytest
from botocore.exceptions import ClientError

from pcls import runner
from pcls.engine import Collision, RunResult
from pcls.steps import dns
from pcls.ui import Outcome
from tests.conftest import REGION
from tests.harness import Harness
from tests.test_edge import session as edge_session

EDGE = ("zone", "certificate", "target-group", "alb", "listener-https", "listener-http")


# -- helpers -----------------------------------------------------------------------------------


def stack(root: Path, name: str, domain: str) -> Harness:
    """A second working copy (its own pcls.toml and .pcls/) in the same account."""
    root.mkdir()
    h = Harness(root, region=REGION, domain=domain)
    h.write_config(name=name)
    return h


def ok(result: RunResult) -> RunResult:
    assert result.ok, [r.detail for r in result.failures] or result.remaining
    return result


def writes(s: runner.Session) -> int:
    return int(s.aws.call_summary()["writes"])


def ledger_file(h: Harness, name: str) -> Path:
    return h.state_dir / f"{name}.json"


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def snapshot() -> dict[str, Any]:
    """What the account holds at the edge, as independent describe calls report it."""
    elb, acm, r53, ec2 = client("elbv2"), client("acm"), client("route53"), client("ec2")
    out: dict[str, Any] = {"lb": {}, "listener": {}, "tg": {}, "cert": {}, "record": {}}
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        arn = lb["LoadBalancerArn"]
        attrs = elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        out["lb"][arn] = (
            lb["LoadBalancerName"],
            lb["DNSName"],
            sorted(az["SubnetId"] for az in lb["AvailabilityZones"]),
            sorted(lb.get("SecurityGroups", [])),
            tags(elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]),
            sorted((a["Key"], a["Value"]) for a in attrs),
        )
        for li in elb.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
            larn = li["ListenerArn"]
            out["listener"][larn] = (
                li["Port"],
                li.get("SslPolicy"),
                li.get("Certificates"),
                li["DefaultActions"],
                tags(elb.describe_tags(ResourceArns=[larn])["TagDescriptions"][0]["Tags"]),
            )
    for tg in elb.describe_target_groups()["TargetGroups"]:
        arn = tg["TargetGroupArn"]
        attrs = elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        out["tg"][arn] = (
            tg["TargetGroupName"],
            tg["HealthCheckPath"],
            tags(elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]),
            sorted((a["Key"], a["Value"]) for a in attrs),
        )
    for c in acm.list_certificates()["CertificateSummaryList"]:
        arn = c["CertificateArn"]
        out["cert"][arn] = (
            c["DomainName"],
            tags(acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]),
        )
    for z in r53.list_hosted_zones()["HostedZones"]:
        zid = z["Id"].split("/")[-1]
        zone_tags = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zid)
        out["record"][zid] = (
            z["Name"],
            tags(zone_tags["ResourceTagSet"].get("Tags")),
            sorted(
                json.dumps(rr, sort_keys=True)
                for rr in r53.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]
            ),
        )
    out["vpc"] = {
        v["VpcId"]: tags(v.get("Tags")) for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]
    }
    out["sg"] = {
        g["GroupId"]: (g["GroupName"], tags(g.get("Tags")), len(g["IpPermissions"]))
        for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    return out


def record(zone: str, name: str, rtype: str = "A") -> dict[str, Any] | None:
    sets = client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return next((rr for rr in sets if rr["Name"] == name and rr["Type"] == rtype), None)


def example_zone() -> str:
    zones = client("route53").list_hosted_zones_by_name(DNSName="example.com")["HostedZones"]
    return next(z["Id"].split("/")[-1] for z in zones if z["Name"] == "example.com.")


def set_ledger_id(h: Harness, name: str, step: str, rid: str) -> None:
    """Put `rid` into the stack's ledger for `step`, as a copied or hand-edited ledger would."""
    path = ledger_file(h, name)
    data = (
        json.loads(path.read_text())
        if path.exists()
        else {"schema": 1, "stack": name, "account": "123456789012", "region": REGION, "steps": {}}
    )
    data["steps"][step] = {"id": rid}
    h.state_dir.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))


def untagged_vpc_with_subnets() -> tuple[str, list[str]]:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])[
        :2
    ]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate(zones)
    ]
    return vpc, subnets


def remove_pcls_tags(arn: str) -> None:
    client("elbv2").remove_tags(ResourceArns=[arn], TagKeys=["pcls:stack", "pcls:step"])


def short_circuit(s: runner.Session, operation: str, parsed: dict[str, Any]) -> list[int]:
    """Answer `operation` on the run's own client with `parsed`, as AWS would for an existing
    resource of the same name and settings (the call never reaches the emulator)."""
    seen = [0]
    lock = threading.Lock()

    def hook(model: Any, **_: Any) -> Any:
        if model.name != operation:
            return None
        with lock:
            seen[0] += 1
        http = botocore.awsrequest.AWSResponse("https://elb.example", 200, {}, None)
        return http, parsed

    s.aws.client("elbv2").meta.events.register("before-call", hook)
    return seen


@pytest.fixture
def meet2(harness: Harness, tmp_path: Path) -> tuple[Harness, RunResult]:
    """Stack meet-2 (its own domain) deployed at the edge beside the not yet deployed meet."""
    other = stack(tmp_path / "meet-2", "meet-2", "meet2.example.com")
    result = ok(runner.do_up(edge_session(other)))
    return other, result


# -- two stacks in one account -----------------------------------------------------------------


def test_teardown_of_a_stack_never_deployed_leaves_the_other_stacks_alone(
    harness: Harness, tmp_path: Path, meet2: tuple[Harness, RunResult]
) -> None:
    m = stack(tmp_path / "m", "m", "m.example.com")
    ok(runner.do_up(edge_session(m)))
    before = snapshot()
    # each stack: a load balancer, two listeners, the routers' and the wake page's groups
    assert len(before["lb"]) == 2 and len(before["listener"]) == 4 and len(before["tg"]) == 4

    s = edge_session(harness)
    result = ok(runner.do_teardown(s))
    assert writes(s) == 0
    assert {result.results[n].outcome for n in EDGE[1:]} == {Outcome.ABSENT}
    assert result.results["zone"].outcome is Outcome.KEPT  # the account's zone: used, never ours
    assert snapshot() == before

    # meet now built beside them, and torn down again: theirs stay exactly as they were.
    built = ok(runner.do_up(edge_session(harness)))
    assert built.results["alb"].id not in before["lb"]
    assert built.results["target-group"].id not in before["tg"]
    ok(runner.do_teardown(edge_session(harness)))
    assert snapshot() == before


def test_same_domain_another_stacks_record_and_certificate_are_never_ours(
    harness: Harness, tmp_path: Path, capsys: Any
) -> None:
    other = stack(tmp_path / "meet-2", "meet-2", harness.domain)
    ok(runner.do_up(edge_session(other)))
    before = snapshot()

    s = edge_session(harness)
    result = ok(runner.do_teardown(s))
    assert writes(s) == 0
    assert result.results["dns-record"].outcome is Outcome.KEPT  # meet-2's, pointing at its ALB
    assert result.results["certificate"].outcome is Outcome.ABSENT
    assert snapshot() == before

    refused = harness.cli("up", capsys=capsys)
    assert refused.code == 2
    assert "meet-2-alb" in refused.err and "pcls did not create" in refused.err
    assert snapshot() == before


# -- a foreign resource with the name pcls would use -------------------------------------------


def test_untagged_load_balancer_and_target_group_of_our_names_stop_up_before_any_write(
    harness: Harness, capsys: Any
) -> None:
    vpc, subnets = untagged_vpc_with_subnets()
    elb = client("elbv2")
    lb = elb.create_load_balancer(Name="meet-alb", Subnets=subnets)["LoadBalancers"][0]
    tg = elb.create_target_group(Name="meet-web", Protocol="HTTP", Port=80, VpcId=vpc)
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    before = snapshot()

    with pytest.raises(Collision) as caught:
        harness.up()
    assert harness.writes() == {}
    text = str(caught.value)
    for needle in (
        f"alb: load balancer meet-alb ({lb['LoadBalancerArn']}) carries no pcls:stack tag",
        f"target-group: target group meet-web ({tg_arn}) carries no pcls:stack tag",
        "rename the stack (stack.name), remove that resource, or claim it with",
        f"`pcls adopt alb {lb['LoadBalancerArn']}`",
    ):
        assert needle in text

    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert "meet-alb" in res.err and "pcls adopt" in res.err
    plan = harness.cli("plan", capsys=capsys)
    assert plan.code == 2 and "meet-web" in plan.err
    assert snapshot() == before

    # teardown leaves both alone and says so
    down = runner.do_teardown(edge_session(harness))
    assert not down.failures
    assert snapshot() == before


def test_load_balancer_of_another_stack_by_our_name_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    _, subnets = untagged_vpc_with_subnets()
    foreign = [{"Key": "pcls:stack", "Value": "meet-2"}, {"Key": "pcls:step", "Value": "alb"}]
    client("elbv2").create_load_balancer(Name="meet-alb", Subnets=subnets, Tags=foreign)
    with pytest.raises(Collision, match=r"belongs to stack 'meet-2'.*never adopted"):
        runner.do_up(edge_session(harness))
    assert harness.writes() == {}


def test_create_that_returns_an_existing_load_balancer_is_a_collision_and_leaves_it_alone(
    harness: Harness,
) -> None:
    """CreateLoadBalancer is idempotent on AWS: same name and settings return the existing one.

    moto always makes a new one, so the answer is replaced by a foreign ALB's description.
    """
    _, subnets = untagged_vpc_with_subnets()
    elb = client("elbv2")
    theirs = elb.create_load_balancer(Name="theirs-alb", Subnets=subnets)["LoadBalancers"][0]
    before = snapshot()
    s = edge_session(harness)
    seen = short_circuit(s, "CreateLoadBalancer", {"LoadBalancers": [theirs]})
    result = runner.do_up(s)
    failed = result.results["alb"]
    assert seen[0] == 1 and failed.outcome is Outcome.FAILED
    assert isinstance(failed.error, Collision) and failed.error.exit_code == 2
    assert theirs["LoadBalancerArn"] in failed.detail and "AWS returned it" in failed.detail
    assert snapshot()["lb"] == before["lb"]  # tags, attributes, subnets: untouched
    assert "alb" not in json.loads(harness.ledger_path.read_text())["steps"]


def test_create_that_returns_an_existing_target_group_is_a_collision(harness: Harness) -> None:
    vpc, _ = untagged_vpc_with_subnets()
    elb = client("elbv2")
    theirs = elb.create_target_group(Name="theirs-web", Protocol="HTTP", Port=80, VpcId=vpc)
    before = snapshot()["tg"]
    s = edge_session(harness)
    short_circuit(s, "CreateTargetGroup", {"TargetGroups": theirs["TargetGroups"]})
    # Whichever target group step creates first (the wake page's needs no VPC) is answered.
    (failed,) = runner.do_up(s).failures
    assert failed.step in ("target-group", "wake-target-group")
    assert isinstance(failed.error, Collision)
    assert snapshot()["tg"] == before


# -- a ledger naming another stack's resource --------------------------------------------------


@pytest.mark.parametrize("step", ["alb", "certificate", "target-group", "listener-https", "vpc"])
def test_ledger_id_of_another_stacks_resource_is_refused_and_nothing_is_deleted(
    harness: Harness, meet2: tuple[Harness, RunResult], capsys: Any, step: str
) -> None:
    _, theirs = meet2
    before = snapshot()
    set_ledger_id(harness, "meet", step, theirs.results[step].id)
    for command in (["up"], ["teardown", "--yes"], ["plan"], ["status"]):
        set_ledger_id(harness, "meet", step, theirs.results[step].id)  # refused: moved aside
        res = harness.cli(*command, capsys=capsys)
        assert res.code == 2, (command, res.err)
        assert "meet-2" in res.err and theirs.results[step].id in res.err
        assert snapshot() == before


# -- tags removed: not ours any more -----------------------------------------------------------


def test_load_balancer_whose_tags_were_removed_is_a_collision(
    harness: Harness, capsys: Any
) -> None:
    first = ok(runner.do_up(edge_session(harness)))
    arn = first.results["alb"].id
    remove_pcls_tags(arn)
    before = snapshot()
    s = edge_session(harness)
    with pytest.raises(Collision, match=rf"load balancer meet-alb \({arn}\) carries no pcls"):
        runner.do_up(s)
    assert writes(s) == 0
    status = edge_session(harness).engine.status()
    assert status.results["alb"].outcome is Outcome.MISSING
    assert "carries no pcls:stack tag" in status.results["alb"].detail
    assert snapshot() == before


def test_listener_whose_tags_were_removed_is_a_collision_on_its_port(harness: Harness) -> None:
    first = ok(runner.do_up(edge_session(harness)))
    arn = first.results["listener-https"].id
    remove_pcls_tags(arn)
    s = edge_session(harness)
    with pytest.raises(Collision, match=r"listener 443 of load balancer meet-alb"):
        runner.do_up(s)
    assert writes(s) == 0


def test_certificate_whose_tags_were_removed_is_a_collision(harness: Harness) -> None:
    first = ok(runner.do_up(edge_session(harness)))
    arn = first.results["certificate"].id
    client("acm").remove_tags_from_certificate(
        CertificateArn=arn,
        Tags=[{"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": "certificate"}],
    )
    s = edge_session(harness)
    with pytest.raises(Collision, match=rf"ACM certificate for meet.example.com \({arn}\)"):
        runner.do_up(s)
    assert writes(s) == 0


def test_security_group_whose_tags_were_removed_is_a_collision_in_our_vpc(
    harness: Harness,
) -> None:
    first = ok(runner.do_up(edge_session(harness)))
    sg = first.results["sg-alb"].id
    client("ec2").delete_tags(Resources=[sg], Tags=[{"Key": "pcls:stack"}, {"Key": "pcls:step"}])
    s = edge_session(harness)
    with pytest.raises(Collision, match=rf"security group meet-alb in vpc-\w+ \({sg}\)"):
        runner.do_up(s)
    assert writes(s) == 0


# -- pcls adopt: claim, then tag -----------------------------------------------------------------


@pytest.mark.parametrize(
    "step", ["alb", "target-group", "listener-http", "certificate", "vpc", "sg-alb"]
)
def test_an_untagged_resource_is_claimed_only_when_adopted_and_then_tagged(
    harness: Harness, step: str
) -> None:
    first = ok(runner.do_up(edge_session(harness)))
    rid = first.results[step].id
    if rid.startswith(("vpc-", "sg-")):
        client("ec2").delete_tags(
            Resources=[rid], Tags=[{"Key": "pcls:stack"}, {"Key": "pcls:step"}]
        )
    elif ":acm:" in rid:
        client("acm").remove_tags_from_certificate(
            CertificateArn=rid,
            Tags=[{"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": step}],
        )
    else:
        remove_pcls_tags(rid)
    s = edge_session(harness)
    target = s.engine.steps[step]
    assert target.find(s.ctx) is None and s.ctx.conflicts_of(step)

    s = edge_session(harness)
    s.ctx.adopting[step] = rid
    res = target.find(s.ctx)
    assert res is not None and res.id == rid and not s.ctx.conflicts_of(step)
    target.tag(s.ctx, res)

    again = ok(runner.do_up(edge_session(harness)))
    assert again.results[step].outcome is Outcome.UNCHANGED
    assert harness.writes() == {}


# -- the public name after the load balancer is gone -------------------------------------------


def test_record_delete_answered_not_found_is_checked_and_the_record_really_goes(
    harness: Harness,
) -> None:
    ok(runner.do_up(edge_session(harness)))
    s = edge_session(harness)
    calls = [0]

    def lie(model: Any, **_: Any) -> None:
        if model.name == "ChangeResourceRecordSets" and calls[0] == 0:
            calls[0] += 1
            raise ClientError(
                {
                    "Error": {
                        "Code": "InvalidChangeBatch",
                        "Message": "[Tried to delete resource record set "
                        "[name='meet.example.com.', type='A'] but it was not found]",
                    }
                },
                "ChangeResourceRecordSets",
            )

    s.aws.client("route53").meta.events.register("before-call", lie)
    result = ok(runner.do_teardown(s))
    assert result.results["dns-record"].outcome is Outcome.DELETED
    assert record(example_zone(), "meet.example.com.") is None


def test_record_left_behind_after_the_load_balancer_is_gone_is_found_by_the_check(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ok(runner.do_up(edge_session(harness)))
    monkeypatch.setattr(dns.PublicName, "delete", lambda self, ctx, res: None)  # a lost delete
    result = runner.do_teardown(edge_session(harness))
    assert not result.failures
    assert result.remaining == ["dns-record (route53 alias-record meet.example.com)"]
    assert record(example_zone(), "meet.example.com.") is not None
    monkeypatch.undo()

    # No ledger entry, no load balancer: the alias to this stack's (gone) ALB name is still
    # this stack's, and the next teardown deletes it.
    assert "dns-record" not in json.loads(harness.ledger_path.read_text())["steps"]
    again = harness.cli("teardown", "--yes", capsys=capsys)
    assert again.code == 0, again.err
    assert record(example_zone(), "meet.example.com.") is None


def test_dangling_alias_not_provably_ours_is_reported_never_deleted(
    harness: Harness, capsys: Any
) -> None:
    zone = example_zone()
    alias = {
        "Name": "meet.example.com.",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": "Z2P70J7EXAMPLE",
            "DNSName": "dualstack.other-alb-1.eu-central-1.elb.amazonaws.com.",
            "EvaluateTargetHealth": False,
        },
    }
    client("route53").change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": alias}]},
    )
    res = harness.cli("teardown", "--yes", capsys=capsys)
    assert res.code == 1
    assert "meet.example.com" in res.err and "other-alb-1.eu-central-1" in res.err
    assert "no longer exists" in res.err
    assert record(zone, "meet.example.com.") is not None
    # Not deleted by this run, so nothing to wait for: no re-reads for read_settle.
    assert "reads lag behind deletes" not in res.out + res.err


def test_alias_to_another_stacks_live_load_balancer_is_never_deleted(
    harness: Harness, meet2: tuple[Harness, RunResult]
) -> None:
    """meet's own record edited by hand to point at meet-2's ALB: no longer meet's, even with
    the ledger saying meet wrote it."""
    ok(runner.do_up(edge_session(harness)))
    _, theirs = meet2
    lb = client("elbv2").describe_load_balancers(LoadBalancerArns=[theirs.results["alb"].id])
    lb = lb["LoadBalancers"][0]
    rr = {
        "Name": "meet.example.com.",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": lb["CanonicalHostedZoneId"],
            "DNSName": lb["DNSName"],
            "EvaluateTargetHealth": False,
        },
    }
    zone = example_zone()
    client("route53").change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rr}]}
    )
    result = ok(runner.do_teardown(edge_session(harness)))
    assert result.results["dns-record"].outcome is Outcome.KEPT
    assert record(zone, "meet.example.com.")["AliasTarget"]["DNSName"].rstrip(".") == lb["DNSName"]


# -- hosted zones --------------------------------------------------------------------------------


def test_untagged_zone_created_by_this_stack_is_claimed_by_its_caller_reference(
    harness: Harness,
) -> None:
    """A run stopped between CreateHostedZone and the tagging call leaves an untagged zone."""
    harness.write_config("[dns]\ncreate_zone = true\n")
    r53 = client("route53")
    made = r53.create_hosted_zone(
        Name="meet.example.com", CallerReference=dns.caller_reference("meet")
    )["HostedZone"]
    zid = made["Id"].split("/")[-1]
    first = ok(runner.do_up(edge_session(harness)))
    assert first.results["zone"].outcome is Outcome.UPDATED and first.results["zone"].id == zid
    zone_tags = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zid)
    assert tags(zone_tags["ResourceTagSet"]["Tags"])["pcls:step"] == "zone"
    assert len(r53.list_hosted_zones_by_name(DNSName="meet.example.com")["HostedZones"]) >= 1
    down = ok(runner.do_teardown(edge_session(harness)))
    assert down.results["zone"].outcome is Outcome.DELETED


def test_zone_of_our_name_made_by_someone_else_is_used_never_deleted(harness: Harness) -> None:
    harness.write_config("[dns]\ncreate_zone = true\n")
    r53 = client("route53")
    theirs = r53.create_hosted_zone(Name="meet.example.com", CallerReference="by-hand")
    zid = theirs["HostedZone"]["Id"].split("/")[-1]
    # Not even a ledger naming it makes it ours (and a ledger naming it is refused).
    up = ok(runner.do_up(edge_session(harness)))
    assert up.results["zone"].outcome is Outcome.UNCHANGED and up.results["zone"].id == zid
    down = ok(runner.do_teardown(edge_session(harness)))
    assert down.results["zone"].outcome is Outcome.KEPT
    assert any(z["Id"].endswith(zid) for z in r53.list_hosted_zones()["HostedZones"])

    set_ledger_id(harness, "meet", "zone", zid)
    with pytest.raises(Collision, match=rf"hosted zone meet.example.com \({zid}\) carries no"):
        runner.do_up(edge_session(harness))


def test_zone_of_our_name_owned_by_another_stack_is_a_collision(
    harness: Harness, tmp_path: Path
) -> None:
    harness.write_config("[dns]\ncreate_zone = true\n")
    r53 = client("route53")
    made = r53.create_hosted_zone(Name="meet.example.com", CallerReference="pcls:meet-2:x")
    zid = made["HostedZone"]["Id"].split("/")[-1]
    r53.change_tags_for_resource(
        ResourceType="hostedzone",
        ResourceId=zid,
        AddTags=[{"Key": "pcls:stack", "Value": "meet-2"}, {"Key": "pcls:step", "Value": "zone"}],
    )
    s = edge_session(harness)
    with pytest.raises(Collision, match=rf"hosted zone meet.example.com \({zid}\) belongs to"):
        runner.do_up(s)
    assert writes(s) == 0
    down = ok(runner.do_teardown(edge_session(harness)))
    assert down.results["zone"].outcome is Outcome.ABSENT
    assert any(z["Id"].endswith(zid) for z in r53.list_hosted_zones()["HostedZones"])


def test_caller_reference_names_the_stack_exactly() -> None:
    assert dns.caller_reference("meet").startswith("pcls:meet:")

    class Ctx:
        stack = "meet"

    for ref, mine in (
        (dns.caller_reference("meet"), True),
        ("pcls-meet-" + "a" * 32, True),  # earlier versions
        (dns.caller_reference("meet-2"), False),
        ("pcls-meet-2-" + "a" * 32, False),
        ("pcls:meet:", False),
        ("by-hand", False),
    ):
        assert dns.made_by(Ctx(), {"CallerReference": ref}) is mine, ref  # type: ignore[arg-type]

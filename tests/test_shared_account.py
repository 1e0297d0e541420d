"""Four stacks in one account whose names prefix each other: `m`, `meet`, `meet-2`, `meet2`.

Each is brought up, checked and torn down through the CLI in turn; after every command the
resources of the other three are exactly as they were (ids, tags, listeners, certificates,
records, subscriptions), read with plain describe calls that rely on no pcls code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from pcls.__main__ import run as cli_run
from tests.conftest import REGION

STACKS = ("m", "meet", "meet-2", "meet2")
Key = tuple[str, str, str]  # (owner stack, type, id)


def _tags(items: Any) -> dict[str, str]:
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in items or []}


def snapshot() -> dict[Key, Any]:
    """Every resource of the kinds pcls makes, by owner (its pcls:stack tag, or for what
    carries no tags the stack its name or parent names)."""

    def c(service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    out: dict[Key, Any] = {}

    def put(tags: dict[str, str], kind: str, rid: str, detail: Any) -> None:
        out[(tags.get("pcls:stack", "(untagged)"), kind, rid)] = detail

    ec2 = c("ec2")
    for kind, call, key, ident in (
        ("vpc", "describe_vpcs", "Vpcs", "VpcId"),
        ("subnet", "describe_subnets", "Subnets", "SubnetId"),
        ("igw", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        ("route-table", "describe_route_tables", "RouteTables", "RouteTableId"),
        ("sg", "describe_security_groups", "SecurityGroups", "GroupId"),
    ):
        for item in getattr(ec2, call)()[key]:
            tags = _tags(item.get("Tags"))
            if "pcls:stack" in tags:
                put(tags, kind, item[ident], item)
    elb = c("elbv2")
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        arn = lb["LoadBalancerArn"]
        tags = _tags(elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"])
        listeners = elb.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        put(tags, "alb", arn, {"lb": lb, "tags": tags, "listeners": listeners})
    for tg in elb.describe_target_groups()["TargetGroups"]:
        arn = tg["TargetGroupArn"]
        tags = _tags(elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"])
        put(tags, "target-group", arn, {"tg": tg, "tags": tags})
    acm = c("acm")
    for cert in acm.list_certificates()["CertificateSummaryList"]:
        arn = cert["CertificateArn"]
        tags = _tags(acm.list_tags_for_certificate(CertificateArn=arn).get("Tags"))
        put(tags, "certificate", arn, {"domain": cert["DomainName"], "tags": tags})
    r53 = c("route53")
    for zone in r53.list_hosted_zones()["HostedZones"]:
        if zone.get("Config", {}).get("PrivateZone"):
            continue
        for rr in r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
            if rr["Type"] in ("NS", "SOA"):
                continue
            labels = rr["Name"].split(".")
            # A validation record is _<hash>.<domain>: the stack is its domain's first label.
            label = labels[1] if labels[0].startswith("_") else labels[0]
            owner = label if label in STACKS else "(other)"
            out[(owner, "record", f"{rr['Name']} {rr['Type']}")] = rr
    ecs = c("ecs")
    for arn in ecs.list_clusters()["clusterArns"]:
        cl = ecs.describe_clusters(clusters=[arn], include=["TAGS"])["clusters"][0]
        if cl["status"] != "ACTIVE":
            continue
        put(_tags(cl.get("tags")), "cluster", arn, cl["tags"])
        for svc_arn in ecs.list_services(cluster=arn)["serviceArns"]:
            svc = ecs.describe_services(cluster=arn, services=[svc_arn], include=["TAGS"])[
                "services"
            ][0]
            keep = {k: svc.get(k) for k in ("taskDefinition", "desiredCount", "tags")}
            put(_tags(svc.get("tags")), "service", svc_arn, keep)
    for td in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        tags = _tags(ecs.describe_task_definition(taskDefinition=td, include=["TAGS"])["tags"])
        put(tags, "task-definition", td, tags)
    sd = c("servicediscovery")
    for ns in sd.list_namespaces()["Namespaces"]:
        put(_tags(sd.list_tags_for_resource(ResourceARN=ns["Arn"])["Tags"]), "ns", ns["Id"], ns)
    for svc in sd.list_services()["Services"]:
        tags = _tags(sd.list_tags_for_resource(ResourceARN=svc["Arn"])["Tags"])
        put(tags, "discovery", svc["Id"], svc["Name"])
    iam = c("iam")
    for role in iam.list_roles()["Roles"]:
        if role["Path"].startswith("/aws-service-role/"):
            continue
        tags = _tags(iam.list_role_tags(RoleName=role["RoleName"])["Tags"])
        put(tags, "role", role["RoleName"], {"arn": role["Arn"], "tags": tags})
    ssm = c("ssm")
    for p in ssm.describe_parameters()["Parameters"]:
        tags = _tags(
            ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"]
        )
        put(tags, "parameter", p["Name"], str(p["LastModifiedDate"]))
    logs = c("logs")
    for g in logs.describe_log_groups()["logGroups"]:
        put(
            logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"],
            "log",
            g["logGroupName"],
            g.get("retentionInDays"),
        )
    cw = c("cloudwatch")
    for a in cw.describe_alarms()["MetricAlarms"]:
        tags = _tags(cw.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"])
        if a["AlarmName"].startswith("TargetTracking-service/"):
            # Made by Application Auto Scaling for a policy: the cluster is the stack.
            tags = {"pcls:stack": a["AlarmName"].split("/")[1]}
        put(tags, "alarm", a["AlarmName"], a.get("Threshold"))
    for d in cw.list_dashboards()["DashboardEntries"]:
        body = cw.get_dashboard(DashboardName=d["DashboardName"])["DashboardBody"]
        out[(d["DashboardName"], "dashboard", d["DashboardName"])] = body
    sns = c("sns")
    for t in sns.list_topics()["Topics"]:
        arn = t["TopicArn"]
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        tags = _tags(sns.list_tags_for_resource(ResourceArn=arn)["Tags"])
        put(tags, "topic", arn, {"subs": sorted(s["Endpoint"] for s in subs), "tags": tags})
    aas = c("application-autoscaling")
    for t in aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]:
        cluster = t["ResourceId"].split("/")[1]
        out[(cluster, "scalable-target", t["ResourceId"])] = (t["MinCapacity"], t["MaxCapacity"])
    for p in aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]:
        cluster = p["ResourceId"].split("/")[1]
        out[(cluster, "scaling-policy", p["PolicyName"])] = p["PolicyARN"]
    return out


def others(snap: dict[Key, Any], stack: str) -> dict[Key, Any]:
    return {k: v for k, v in snap.items() if k[0] != stack}


def pcls(root: Path, stack: str, *args: str) -> int:
    return cli_run(["--config", str(root / stack / "pcls.toml"), *args])


@pytest.fixture
def projects(tmp_path: Path, aws_mock: None) -> Path:
    r53 = boto3.client("route53", region_name=REGION)
    r53.create_hosted_zone(Name="example.com", CallerReference="example.com")
    for stack in STACKS:
        (tmp_path / stack).mkdir()
        (tmp_path / stack / "pcls.toml").write_text(
            f'[stack]\nname = "{stack}"\nregion = "{REGION}"\ndomain = "{stack}.example.com"\n'
            '[alerts]\nemail = "ops@example.com"\n'
        )
    return tmp_path


def test_four_stacks_whose_names_prefix_each_other_never_touch_each_other(
    projects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Torn down before it ever existed: it must find nothing of the others to delete.
    before = snapshot()
    assert pcls(projects, "meet", "teardown", "--yes") == 0
    assert snapshot() == before

    for stack in STACKS:
        before = snapshot()
        assert pcls(projects, stack, "up") == 0, capsys.readouterr().err
        after = snapshot()
        assert others(after, stack) == others(before, stack), stack
        assert any(k[0] == stack for k in after), stack

    full = snapshot()
    for stack in STACKS:
        capsys.readouterr()
        assert pcls(projects, stack, "status") == 0, capsys.readouterr()
        assert pcls(projects, stack, "plan") == 0
        assert snapshot() == full

    for stack in ("meet", "m", "meet2", "meet-2"):
        before = snapshot()
        assert pcls(projects, stack, "teardown", "--yes") == 0, capsys.readouterr().err
        after = snapshot()
        assert others(after, stack) == others(before, stack), stack
        assert not [k for k in after if k[0] == stack], stack


@pytest.mark.parametrize("command", ["teardown", "up", "status", "plan"])
def test_another_stacks_ledger_copied_under_this_name_is_refused(
    projects: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert pcls(projects, "meet-2", "up") == 0
    before = snapshot()
    theirs = json.loads((projects / "meet-2" / ".pcls" / "meet-2.json").read_text())
    theirs["stack"] = "meet"  # a copy made to look like this stack's own
    ledger = projects / "meet" / ".pcls" / "meet.json"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps(theirs))
    capsys.readouterr()

    args = [command, "--yes"] if command == "teardown" else [command]
    assert pcls(projects, "meet", *args) == 2
    err = capsys.readouterr().err
    assert "belongs to stack 'meet-2'" in err and "refused" in err, err
    assert snapshot() == before
    assert not ledger.exists()  # kept aside, not used again
    assert list(ledger.parent.glob("meet.json.*"))

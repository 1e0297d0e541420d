"""Everything of a kind pcls creates that exists in the account, listed per service.

Independent of pcls's own find(): plain list/describe calls of every type pcls creates, with no
reliance on tags (the tagging API misses several types), so duplicates and orphans show up.
Each entry is (type, name) where name is stable across runs (names, step tags, record names),
so two runs' inventories compare equal exactly when they made the same resources.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

import boto3
import botocore.session

# The clients are made once per process and kept: making them took most of an inventory's time,
# and the bad-input cases take two inventories each. They come from botocore's own create_client,
# taken at import, so a hook a test adds to every new client (tests/faults.on_every_client)
# never reaches them. moto's mock answers them in whichever test asks.
_CREATE_CLIENT = botocore.session.Session.create_client
_SESSION = botocore.session.Session()
_CLIENTS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    if endpoint_url:  # a sandbox server's: made for the one call
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url)
    with _LOCK:
        if (service, region) not in _CLIENTS:
            _CLIENTS[service, region] = _CREATE_CLIENT(_SESSION, service, region_name=region)
        return _CLIENTS[service, region]


def _tag(tags: list[dict[str, str]] | None, key: str = "pcls:step") -> str:
    return next((t["Value"] for t in tags or [] if t.get("Key") == key), "(untagged)")


def inventory(region: str, endpoint_url: str | None = None) -> Counter[tuple[str, str]]:
    def c(service: str) -> Any:
        return _client(service, region, endpoint_url)

    out: Counter[tuple[str, str]] = Counter()
    ec2 = c("ec2")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    for v in ec2.describe_vpcs()["Vpcs"]:
        if v["VpcId"] not in default_vpcs:
            out["vpc", _tag(v.get("Tags"))] += 1
    for s in ec2.describe_subnets()["Subnets"]:
        if s["VpcId"] not in default_vpcs:
            out["subnet", _tag(s.get("Tags"))] += 1
    for g in ec2.describe_internet_gateways()["InternetGateways"]:
        attached = {a["VpcId"] for a in g.get("Attachments", [])}
        if not attached & default_vpcs:
            out["igw", _tag(g.get("Tags"))] += 1
    for rt in ec2.describe_route_tables()["RouteTables"]:
        main = any(a.get("Main") for a in rt.get("Associations", []))
        if rt["VpcId"] not in default_vpcs and not main:
            out["route-table", _tag(rt.get("Tags"))] += 1
    for sg in ec2.describe_security_groups()["SecurityGroups"]:
        if sg["VpcId"] not in default_vpcs and sg["GroupName"] != "default":
            out["sg", sg["GroupName"]] += 1
    elb = c("elbv2")
    lbs = elb.describe_load_balancers()["LoadBalancers"]
    for lb in lbs:
        out["alb", lb["LoadBalancerName"]] += 1
        for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            out["listener", f"{lb['LoadBalancerName']}:{li['Port']}"] += 1
    for tg in elb.describe_target_groups()["TargetGroups"]:
        out["target-group", tg["TargetGroupName"]] += 1
    for cert in c("acm").list_certificates()["CertificateSummaryList"]:
        out["certificate", cert["DomainName"]] += 1
    r53 = c("route53")
    for z in r53.list_hosted_zones()["HostedZones"]:
        private = z.get("Config", {}).get("PrivateZone")
        if private and z["Name"].rstrip(".").endswith("-hz"):
            # moto's stand-in for the zone Cloud Map owns: AWS deletes that zone with the
            # namespace, moto never does. Not a resource pcls makes or may touch.
            continue
        out["zone", f"{z['Name']}{' (private)' if private else ''}"] += 1
        for rr in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]:
            if rr["Type"] not in ("NS", "SOA"):
                out["record", f"{rr['Name']} {rr['Type']}"] += 1
    ecs = c("ecs")
    for arn in ecs.list_clusters()["clusterArns"]:
        cluster = ecs.describe_clusters(clusters=[arn])["clusters"][0]
        if cluster["status"] != "ACTIVE":
            continue
        out["cluster", cluster["clusterName"]] += 1
        for svc_arn in ecs.list_services(cluster=arn)["serviceArns"]:
            svc = ecs.describe_services(cluster=arn, services=[svc_arn])["services"][0]
            if svc["status"] == "ACTIVE":
                out["service", svc["serviceName"]] += 1
    for td in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        out["task-definition", td.split("/")[-1].rsplit(":", 1)[0]] += 1
    sd = c("servicediscovery")
    for ns in sd.list_namespaces()["Namespaces"]:
        out["namespace", ns["Name"]] += 1
    for svc in sd.list_services()["Services"]:
        out["discovery-service", svc["Name"]] += 1
    for role in c("iam").list_roles()["Roles"]:
        if not role["Path"].startswith("/aws-service-role/"):
            out["role", role["RoleName"]] += 1
    for p in c("ssm").describe_parameters()["Parameters"]:
        out["parameter", p["Name"]] += 1
    for g in c("logs").describe_log_groups()["logGroups"]:
        out["log-group", g["logGroupName"]] += 1
    cw = c("cloudwatch")
    for a in cw.describe_alarms()["MetricAlarms"]:
        # Target tracking alarms end in a random id; their count is what must match.
        out["alarm", re.sub(r"-[0-9a-f-]{36}$", "", a["AlarmName"])] += 1
    for d in cw.list_dashboards()["DashboardEntries"]:
        out["dashboard", d["DashboardName"]] += 1
    sns = c("sns")
    for t in sns.list_topics()["Topics"]:
        out["topic", t["TopicArn"].split(":")[-1]] += 1
    for s in sns.list_subscriptions()["Subscriptions"]:
        out["subscription", f"{s['Protocol']}:{s['Endpoint']}"] += 1
    aas = c("application-autoscaling")
    for t in aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]:
        out["scalable-target", t["ResourceId"]] += 1
    for p in aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]:
        out["scaling-policy", p["PolicyName"]] += 1
    for a in aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]:
        out["scheduled-action", a["ScheduledActionName"]] += 1
    for f in c("lambda").list_functions()["Functions"]:
        out["function", f["FunctionName"]] += 1
    scheduler = c("scheduler")
    for g in scheduler.list_schedule_groups()["ScheduleGroups"]:
        if g["Name"] != "default":  # every account has it
            out["schedule-group", g["Name"]] += 1
    for s in scheduler.list_schedules()["Schedules"]:
        out["schedule", f"{s['GroupName']}/{s['Name']}"] += 1
    return out


def stack_only(inv: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Drop what exists before pcls runs: the registered domain's zone and its NS/SOA."""
    return Counter({k: n for k, n in inv.items() if k not in {("zone", "example.com.")}})

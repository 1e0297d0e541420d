"""Drift catalogue: out-of-band changes made with boto3 after a converged `up`.

Each case changes one thing behind pcls's back. `pcls status` must exit 3 and name the step and
the difference; `up` must repair it (or recreate what was deleted); then `status` exits 0 and
another `up` makes no write call. docs/drift-catalogue.md lists the cases with real output.

One converged stack serves the module: every case ends by proving the stack is converged again
(status 0, an `up` with no write), which is exactly the start state the next case needs. A case
that fails leaves the stack marked dirty, and the next case starts from a fresh moto and a new
`up`.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws
from rich.console import Console

from pcls import router, runner
from pcls.engine import RunResult, StepResult
from pcls.steps.monitoring import marker_widget
from pcls.steps.platform import READY_SECONDS
from pcls.ui import Outcome
from pcls.wakefn.handler import sleep_action
from tests.conftest import DOMAIN, REGION
from tests.harness import Harness

HAND_STUN = "stun.example.net:3478"  # what the task definition changed by hand points at
# the config default
PCLS_STUN = "meet-jit-si-turnrelay.jitsi.net:443,stun.l.google.com:19302,stun.cloudflare.com:3478"

# -- the shared stack --------------------------------------------------------------------------


class Stack:
    """A converged stack on moto, rebuilt only after a case left it in an unknown state."""

    def __init__(self, mock: Any, tmp: pytest.TempPathFactory) -> None:
        self.mock = mock
        self.tmp = tmp
        self.h: Harness | None = None
        self.clean = False

    def converged(self) -> Harness:
        if self.h is None or not self.clean:
            self.mock.reset()  # every moto backend back to empty
            h = Harness(self.tmp.mktemp("stack"), region=REGION, domain=DOMAIN)
            h.make_zone("example.com")
            first = h.up()
            assert first.ok, [r.detail for r in first.failures]
            self.h = h
        self.clean = False  # until the case proves the stack converged again
        return self.h


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with mock_aws(config={"iam": {"load_aws_managed_policies": False}}) as mock:
        yield Stack(mock, tmp_path_factory)


# -- reading `pcls status` ---------------------------------------------------------------------

COLUMNS = ("step", "kind", "id", "state", "sync", "difference")


def status_rows(out: str) -> dict[str, dict[str, str]]:
    """The status table as {step: {column: text}}, with cells folded over lines joined."""
    rows: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in out.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != len(COLUMNS):
            continue
        if cells[0]:
            current = rows.setdefault(cells[0], {c: [] for c in COLUMNS})
        if current is None:
            continue
        for column, text in zip(COLUMNS, cells, strict=True):
            if text:
                current[column].append(text)
    return {step: {c: " ".join(parts) for c, parts in cols.items()} for step, cols in rows.items()}


def squash(text: str) -> str:
    """Text without whitespace: a cell folded mid-word still contains its fragment."""
    return "".join(text.split())


# -- helpers for the changes -------------------------------------------------------------------


def ledger_id(h: Harness, step: str) -> str:
    return str(json.loads(h.ledger_path.read_text())["steps"][step]["id"])


def zone_id(h: Harness) -> str:
    zones = h.client("route53").list_hosted_zones_by_name(DNSName="example.com")["HostedZones"]
    return str(zones[0]["Id"]).split("/")[-1]


def alias_record(h: Harness) -> dict[str, Any]:
    sets = h.client("route53").list_resource_record_sets(HostedZoneId=zone_id(h))
    return next(
        rr for rr in sets["ResourceRecordSets"] if rr["Name"] == f"{DOMAIN}." and rr["Type"] == "A"
    )


def change_record(h: Harness, action: str, rr: dict[str, Any]) -> None:
    h.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id(h),
        ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rr}]},
    )


def jvb_service(h: Harness) -> dict[str, Any]:
    out = h.client("ecs").describe_services(cluster="meet", services=["jvb"])["services"]
    return next(s for s in out if s["status"] == "ACTIVE")


def latest_jvb_revision(h: Harness) -> str:
    arns = h.client("ecs").list_task_definitions(familyPrefix="meet-jvb", status="ACTIVE")
    return max(arns["taskDefinitionArns"], key=lambda a: int(a.rsplit(":", 1)[1]))


def stun_servers(h: Harness, revision: str) -> str:
    td = h.client("ecs").describe_task_definition(taskDefinition=revision)["taskDefinition"]
    jvb = next(c for c in td["containerDefinitions"] if c["name"] == "jvb")
    return next(e["value"] for e in jvb["environment"] if e["name"] == "JVB_STUN_SERVERS")


# -- the changes -------------------------------------------------------------------------------


def sg_rule_removed(h: Harness) -> None:
    h.client("ec2").revoke_security_group_ingress(
        GroupId=ledger_id(h, "sg-jvb"),
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 10000,
                "ToPort": 10000,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )


def sg_rule_added(h: Harness) -> None:
    h.client("ec2").authorize_security_group_ingress(
        GroupId=ledger_id(h, "sg-alb"),
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )


def route_deleted(h: Harness) -> None:
    h.client("ec2").delete_route(
        RouteTableId=ledger_id(h, "route-table"), DestinationCidrBlock="0.0.0.0/0"
    )


def https_policy_changed(h: Harness) -> None:
    h.client("elbv2").modify_listener(
        ListenerArn=ledger_id(h, "listener-https"), SslPolicy="ELBSecurityPolicy-TLS13-1-3-2021-06"
    )


def http_redirect_changed(h: Harness) -> None:
    h.client("elbv2").modify_listener(
        ListenerArn=ledger_id(h, "listener-http"),
        DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_302"}}
        ],
    )


def health_check_path_changed(h: Harness) -> None:
    h.client("elbv2").modify_target_group(
        TargetGroupArn=ledger_id(h, "target-group"), HealthCheckPath="/health"
    )


def idle_timeout_changed(h: Harness) -> None:
    h.client("elbv2").modify_load_balancer_attributes(
        LoadBalancerArn=ledger_id(h, "alb"),
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"}],
    )


def alias_deleted(h: Harness) -> None:
    change_record(h, "DELETE", alias_record(h))


def alias_pointed_elsewhere(h: Harness) -> None:
    rr = {"Name": f"{DOMAIN}.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.7"}]}
    change_record(h, "UPSERT", rr)


def alarm_deleted(h: Harness) -> None:
    h.client("cloudwatch").delete_alarms(AlarmNames=["meet-signal-down-shard-a"])


def alarm_threshold_changed(h: Harness) -> None:
    cw = h.client("cloudwatch")
    alarm = cw.describe_alarms(AlarmNames=["meet-jvb-cpu-high"])["MetricAlarms"][0]
    keys = (
        "AlarmName",
        "AlarmDescription",
        "ActionsEnabled",
        "AlarmActions",
        "OKActions",
        "InsufficientDataActions",
        "MetricName",
        "Namespace",
        "Statistic",
        "Dimensions",
        "Period",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "ComparisonOperator",
        "TreatMissingData",
    )
    cw.put_metric_alarm(**{k: alarm[k] for k in keys if k in alarm}, Threshold=99.0)


def dashboard_changed(h: Harness) -> None:
    # Edited by hand, the marker kept: still the stack's dashboard (see tfstate-free.md).
    body = {"widgets": [marker_widget("meet")]}
    h.client("cloudwatch").put_dashboard(DashboardName="meet", DashboardBody=json.dumps(body))


def retention_changed(h: Harness) -> None:
    h.client("logs").put_retention_policy(logGroupName="/pcls/meet", retentionInDays=30)


def parameter_deleted(h: Harness) -> None:
    h.client("ssm").delete_parameter(Name="/pcls/meet/JVB_AUTH_PASSWORD")


def inline_policy_changed(h: Harness) -> None:
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}],
    }
    h.client("iam").put_role_policy(
        RoleName="meet-execution", PolicyName="logs-and-secrets", PolicyDocument=json.dumps(wide)
    )


def taskdef_registered_by_hand(h: Harness) -> None:
    ecs = h.client("ecs")
    td = ecs.describe_task_definition(taskDefinition="meet-jvb")["taskDefinition"]
    keys = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "containerDefinitions",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "runtimePlatform",
    )
    request = copy.deepcopy({k: td[k] for k in keys if k in td})
    jvb = next(c for c in request["containerDefinitions"] if c["name"] == "jvb")
    for env in jvb["environment"]:
        if env["name"] == "JVB_STUN_SERVERS":
            env["value"] = HAND_STUN
    ecs.register_task_definition(**request)


def service_deleted(h: Harness) -> None:
    ecs = h.client("ecs")
    ecs.delete_service(cluster="meet", service="jvb", force=True)


def signal_scaled_to_zero(h: Harness) -> None:
    h.client("ecs").update_service(cluster="meet", service="shard-a", desiredCount=0)


def shard_service_deleted(h: Harness) -> None:
    ecs = h.client("ecs")
    ecs.update_service(cluster="meet", service="shard-b", desiredCount=0)
    ecs.delete_service(cluster="meet", service="shard-b", force=True)


def _revision_request(td: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "containerDefinitions",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "runtimePlatform",
    )
    return copy.deepcopy({k: td[k] for k in keys if k in td})


def router_config_changed(h: Harness) -> None:
    # A new revision of shard-a's family whose router skips the health checks, with pcls's
    # tags copied (as the console's "create new revision" offers): pcls's own family, changed.
    ecs = h.client("ecs")
    out = ecs.describe_task_definition(taskDefinition="meet-shard-a", include=["TAGS"])
    request = _revision_request(out["taskDefinition"])
    (proxy,) = [c for c in request["containerDefinitions"] if c["name"] == "router"]
    (cfg,) = proxy["environment"]
    cfg["value"] = router.encoded(router.decoded(cfg["value"]).replace(" check ", " "))
    ecs.register_task_definition(**request, tags=out["tags"])


def bridge_pool_shard_list_changed(h: Harness) -> None:
    # The bridges pointed at shard-a only, by hand: a revision pcls did not make, deployed.
    ecs = h.client("ecs")
    request = _revision_request(
        ecs.describe_task_definition(taskDefinition="meet-jvb")["taskDefinition"]
    )
    jvb = next(c for c in request["containerDefinitions"] if c["name"] == "jvb")
    for env in jvb["environment"]:
        if env["name"] == "XMPP_SERVER":
            env["value"] = "shard-a.meet.internal"
    arn = ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="meet", service="jvb", taskDefinition=arn)


def shard_name_ttl_changed(h: Harness) -> None:
    sd = h.client("servicediscovery")
    (svc,) = [x for x in sd.list_services()["Services"] if x["Name"] == "shard-a"]
    sd.update_service(
        Id=svc["Id"], Service={"DnsConfig": {"DnsRecords": [{"Type": "A", "TTL": 300}]}}
    )


def forward_rule_deleted(h: Harness) -> None:
    elbv2 = h.client("elbv2")
    rules = elbv2.describe_rules(ListenerArn=ledger_id(h, "listener-http"))["Rules"]
    (rule,) = [r for r in rules if not r["IsDefault"]]
    elbv2.delete_rule(RuleArn=rule["RuleArn"])


def router_reach_revoked(h: Harness) -> None:
    # The rule that lets the routers reach every shard's web, revoked as EC2 describes it.
    ec2 = h.client("ec2")
    group = ledger_id(h, "sg-signal")
    (sg,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    (rule,) = [p for p in sg["IpPermissions"] if p.get("FromPort") == 8000]
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[rule])


def target_max_changed(h: Harness) -> None:
    h.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/meet/jvb",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=9,
    )


def scaling_policy_deleted(h: Harness) -> None:
    h.client("application-autoscaling").delete_scaling_policy(
        PolicyName="meet-jvb-cpu",
        ServiceNamespace="ecs",
        ResourceId="service/meet/jvb",
        ScalableDimension="ecs:service:DesiredCount",
    )


# -- proofs of a repair beyond "status is in sync" ---------------------------------------------


def jvb_runs_pcls_revision(h: Harness) -> None:
    latest = latest_jvb_revision(h)
    assert jvb_service(h)["taskDefinition"] == latest
    assert stun_servers(h, latest) == PCLS_STUN


def jvb_service_recreated(h: Harness) -> None:
    svc = jvb_service(h)
    assert svc["desiredCount"] == 2  # jvb.min_count (one per AZ), set once at create
    assert svc["taskDefinition"] == latest_jvb_revision(h)


def shard_b_runs_again(h: Harness) -> None:
    out = h.client("ecs").describe_services(cluster="meet", services=["shard-b"])["services"]
    (svc,) = [x for x in out if x["status"] == "ACTIVE"]
    assert svc["desiredCount"] == 1 and svc["loadBalancers"][0]["containerName"] == "router"


def shard_a_runs_pcls_router(h: Harness) -> None:
    ecs = h.client("ecs")
    (svc,) = ecs.describe_services(cluster="meet", services=["shard-a"])["services"]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    (proxy,) = [c for c in td["containerDefinitions"] if c["name"] == "router"]
    assert router.decoded(proxy["environment"][0]["value"]) == router.config("meet.internal")


def bridges_list_every_shard(h: Harness) -> None:
    latest = latest_jvb_revision(h)
    assert jvb_service(h)["taskDefinition"] == latest
    td = h.client("ecs").describe_task_definition(taskDefinition=latest)["taskDefinition"]
    jvb = next(c for c in td["containerDefinitions"] if c["name"] == "jvb")
    env = {e["name"]: e["value"] for e in jvb["environment"]}
    assert env["XMPP_SERVER"] == "shard-a.meet.internal,shard-b.meet.internal"


def _wake_arn(h: Harness) -> str:
    config = h.client("lambda").get_function(FunctionName="meet-wake")["Configuration"]
    return str(config["FunctionArn"])


def _group(h: Harness, name: str) -> str:
    return str(
        h.client("elbv2").describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
    )


def wake_memory_changed(h: Harness) -> None:
    h.client("lambda").update_function_configuration(FunctionName="meet-wake", MemorySize=256)


def wake_concurrency_removed(h: Harness) -> None:
    h.client("lambda").delete_function_concurrency(FunctionName="meet-wake")


def wake_permission_removed(h: Harness) -> None:
    h.client("lambda").remove_permission(FunctionName="meet-wake", StatementId="pcls-alb")


def wake_deregistered(h: Harness) -> None:
    h.client("elbv2").deregister_targets(
        TargetGroupArn=_group(h, "meet-wake"), Targets=[{"Id": _wake_arn(h)}]
    )


def wake_code_replaced(h: Harness) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    h.client("lambda").update_function_code(FunctionName="meet-wake", ZipFile=buf.getvalue())


def wake_code_is_pcls(h: Harness) -> None:
    from pcls.steps.wake import code_sha256, code_zip

    config = h.client("lambda").get_function(FunctionName="meet-wake")["Configuration"]
    assert config["CodeSha256"] == code_sha256(code_zip())


def tick_disabled(h: Harness) -> None:
    scheduler = h.client("scheduler")
    tick = scheduler.get_schedule(Name="tick", GroupName="pcls-meet")
    scheduler.update_schedule(
        Name="tick",
        GroupName="pcls-meet",
        ScheduleExpression=tick["ScheduleExpression"],
        FlexibleTimeWindow=tick["FlexibleTimeWindow"],
        Target=tick["Target"],
        State="DISABLED",
    )


def tick_deleted(h: Harness) -> None:
    h.client("scheduler").delete_schedule(Name="tick", GroupName="pcls-meet")


def https_shows_the_sleep_page(h: Harness) -> None:
    elbv2 = h.client("elbv2")
    action = [sleep_action(READY_SECONDS)]
    elbv2.modify_listener(ListenerArn=ledger_id(h, "listener-https"), DefaultActions=action)


def _wake_rule(h: Harness) -> dict:
    elbv2 = h.client("elbv2")
    rules = elbv2.describe_rules(ListenerArn=ledger_id(h, "listener-https"))["Rules"]
    (rule,) = [r for r in rules if not r["IsDefault"]]
    return rule


def wake_rule_deleted(h: Harness) -> None:
    h.client("elbv2").delete_rule(RuleArn=_wake_rule(h)["RuleArn"])


def wake_rule_retargeted(h: Harness) -> None:
    action = [{"Type": "forward", "TargetGroupArn": _group(h, "meet-web")}]
    h.client("elbv2").modify_rule(RuleArn=_wake_rule(h)["RuleArn"], Actions=action)


def alarm_actions_off_while_awake(h: Harness) -> None:
    h.client("cloudwatch").disable_alarm_actions(AlarmNames=["meet-signal-down-shard-a"])


def alarm_actions_on(h: Harness) -> None:
    cw = h.client("cloudwatch")
    (alarm,) = cw.describe_alarms(AlarmNames=["meet-signal-down-shard-a"])["MetricAlarms"]
    assert alarm["ActionsEnabled"] is True


# -- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    id: str
    step: str  # the step `status` names
    fragment: str  # distinctive text of the difference ("" for a missing resource)
    change: Callable[[Harness], None]
    repaired: Outcome = Outcome.UPDATED  # CREATED when the change deleted the resource
    proof: Callable[[Harness], None] | None = None
    also: tuple[tuple[str, str], ...] = ()  # other (step, fragment) rows the change drifts


CATALOGUE = [
    Drift(
        "security-group-rule-removed",
        "sg-jvb",
        "ingress udp/10000 cidr:0.0.0.0/0 missing",
        sg_rule_removed,
    ),
    Drift(
        "security-group-rule-added",
        "sg-alb",
        "ingress tcp/22 cidr:0.0.0.0/0 not in config",
        sg_rule_added,
    ),
    Drift(
        "default-route-deleted", "route-table", "default route to nothing, not igw-", route_deleted
    ),
    Drift(
        "https-listener-ssl-policy-changed",
        "listener-https",
        "ssl policy ELBSecurityPolicy-TLS13-1-3-2021-06 -> ELBSecurityPolicy-TLS13-1-2-2021-06",
        https_policy_changed,
    ),
    Drift(
        "http-listener-redirect-changed",
        "listener-http",
        "default action redirect HTTP_302 to https:#{port}, not redirect HTTP_301 to https:443",
        http_redirect_changed,
    ),
    Drift(
        "target-group-health-check-path-changed",
        "target-group",
        "health check HealthCheckPath '/health' -> '/router-health'",
        health_check_path_changed,
    ),
    Drift(
        "alb-idle-timeout-changed",
        "alb",
        "attribute idle_timeout.timeout_seconds 60 -> 900",
        idle_timeout_changed,
    ),
    Drift("alias-record-deleted", "dns-record", "", alias_deleted, Outcome.CREATED),
    Drift(
        "alias-record-pointed-elsewhere",
        "dns-record",
        "A record points to 192.0.2.7, not the load balancer",
        alias_pointed_elsewhere,
    ),
    Drift("alarm-deleted", "alarms", "meet-signal-down-shard-a missing", alarm_deleted),
    Drift(
        "alarm-threshold-changed",
        "alarms",
        "meet-jvb-cpu-high: Threshold 99.0 (want 85.0)",
        alarm_threshold_changed,
    ),
    Drift(
        "dashboard-body-changed",
        "dashboard",
        "body differs from config (1 widgets, want 11)",
        dashboard_changed,
    ),
    Drift("log-retention-changed", "log-group", "retention 30 -> 14 days", retention_changed),
    Drift("ssm-parameter-deleted", "secrets", "JVB_AUTH_PASSWORD missing", parameter_deleted),
    Drift(
        "iam-inline-policy-changed",
        "role-execution",
        "inline policy logs-and-secrets differs",
        inline_policy_changed,
    ),
    Drift(
        "task-definition-changed-by-hand",
        "taskdef-jvb",
        # Untagged, so not pcls's: pcls registers its own content on top, never removes it.
        "newer revision meet-jvb:2 not pcls's: new revision",
        taskdef_registered_by_hand,
        proof=jvb_runs_pcls_revision,
    ),
    Drift(
        "ecs-service-deleted",
        "service-jvb",
        "",
        service_deleted,
        Outcome.CREATED,
        proof=jvb_service_recreated,
    ),
    Drift(
        "signal-service-scaled-to-zero",
        "service-signal",
        "shard-a: desired count 0 -> 1",
        signal_scaled_to_zero,
    ),
    Drift(
        "shard-service-deleted",
        "service-signal",
        "shard-b missing",
        shard_service_deleted,
        proof=shard_b_runs_again,
    ),
    Drift(
        "router-config-changed",
        "taskdef-signal",
        "shard-a: content differs (containerDefinitions[router].environment[HAPROXY_CFG].value)"
        ": new revision",
        router_config_changed,
        proof=shard_a_runs_pcls_router,
    ),
    Drift(
        "bridge-pool-shard-list-changed",
        "service-jvb",
        # revision numbers depend on the cases run before on the same stack
        "task definition meet-jvb:",
        bridge_pool_shard_list_changed,
        proof=bridges_list_every_shard,
        also=(("taskdef-jvb", "not pcls's: new revision"),),
    ),
    Drift(
        "shard-name-ttl-changed",
        "discovery-xmpp",
        "shard-a: DNS records [('A', 300)] -> [('A', 10)]",
        shard_name_ttl_changed,
    ),
    Drift(
        "http-forward-rule-deleted",
        "listener-http",
        "forward rule /router-health missing (attaches the target group)",
        forward_rule_deleted,
    ),
    Drift(
        "router-reach-revoked",
        "sg-signal",
        "ingress tcp/8000 sg:sg-signal missing",
        router_reach_revoked,
    ),
    Drift(
        "scalable-target-max-changed",
        "scaling-target",
        "min/max 1/9 (config 2/4)",
        target_max_changed,
    ),
    Drift(
        "scaling-policy-deleted", "scaling-policies", "meet-jvb-cpu missing", scaling_policy_deleted
    ),
    Drift("wake-memory-changed", "wake-function", "MemorySize 256 -> 128", wake_memory_changed),
    Drift(
        "wake-concurrency-removed",
        "wake-function",
        "reserved concurrency none -> 2",
        wake_concurrency_removed,
    ),
    Drift(
        "wake-permission-removed",
        "wake-function",
        "permission for the wake target group to invoke it missing",
        wake_permission_removed,
    ),
    Drift(
        "wake-function-deregistered",
        "wake-function",
        "not registered in target group meet-wake",
        wake_deregistered,
    ),
    Drift(
        "wake-code-replaced",
        "wake-function",
        "code differs from this pcls's handler.py",
        wake_code_replaced,
        proof=wake_code_is_pcls,
    ),
    Drift(
        "wake-tick-disabled",
        "wake-schedule",
        "schedule tick State 'DISABLED' -> 'ENABLED'",
        tick_disabled,
    ),
    Drift("wake-tick-deleted", "wake-schedule", "schedule tick missing", tick_deleted),
    Drift(
        "https-listener-on-the-sleep-page-while-awake",
        "listener-https",
        "default action fixed response 200 (the sleep page), not forward to targetgroup/meet-web/",
        https_shows_the_sleep_page,
    ),
    Drift(
        "https-wake-rule-deleted",
        "listener-https",
        "forward rule /_pcls/* missing (the wake function's button and status)",
        wake_rule_deleted,
    ),
    Drift(
        "https-wake-rule-retargeted",
        "listener-https",
        "forward rule /_pcls/*: forward to targetgroup/meet-web/",
        wake_rule_retargeted,
    ),
    Drift(
        "alarm-actions-off-while-awake",
        "alarms",
        "meet-signal-down-shard-a: ActionsEnabled False (want True)",
        alarm_actions_off_while_awake,
        proof=alarm_actions_on,
    ),
]


def test_the_catalogue_has_at_least_ten_kinds_of_drift() -> None:
    assert len(CATALOGUE) >= 10
    assert len({d.id for d in CATALOGUE}) == len(CATALOGUE)
    assert len({d.step for d in CATALOGUE}) >= 10  # spread over the stack, not one resource


@pytest.mark.parametrize("drift", CATALOGUE, ids=[d.id for d in CATALOGUE])
def test_status_names_the_drift_and_up_repairs_it(
    stack: Stack, drift: Drift, capsys: pytest.CaptureFixture[str]
) -> None:
    h = stack.converged()
    drift.change(h)

    seen = h.cli("status", capsys=capsys)
    assert seen.code == 3, seen.out + seen.err
    rows = status_rows(seen.out)
    row = rows[drift.step]
    if drift.repaired is Outcome.CREATED:
        assert row["sync"] == "missing", row
    else:
        assert row["sync"] == "drifted", row
        assert squash(drift.fragment) in squash(row["difference"]), row
    for step, fragment in drift.also:
        assert squash(fragment) in squash(rows[step]["difference"]), rows[step]
    assert seen.err == ""

    fixed = h.up()
    assert fixed.ok, [r.detail for r in fixed.failures]
    assert fixed.results[drift.step].outcome is drift.repaired
    if drift.proof is not None:
        drift.proof(h)

    after = h.cli("status", capsys=capsys)
    assert after.code == 0, after.out
    assert h.up().ok
    assert h.writes() == {}
    stack.clean = True


def test_desired_count_set_by_hand_is_not_drift(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    h = stack.converged()
    # As autoscaling (or an operator) would: the bridge pool moves to 3.
    h.client("ecs").update_service(cluster="meet", service="jvb", desiredCount=3)

    seen = h.cli("status", capsys=capsys)
    assert seen.code == 0, seen.out
    assert status_rows(seen.out)["service-jvb"]["sync"] == "in sync"
    again = h.up()
    assert again.ok
    assert again.results["service-jvb"].outcome is Outcome.UNCHANGED
    assert h.writes() == {}
    assert jvb_service(h)["desiredCount"] == 3
    # moto's running count no longer matches a converged stack: the next case starts afresh.
    stack.clean = False


def test_status_rows_join_folded_cells() -> None:
    out = (
        "│ sg-jvb   │ ec2 │ sg-1 │ rules=0 │ drifted │ ingress udp/10000       │\n"
        "│          │     │      │         │         │ cidr:0.0.0.0/0 missing  │\n"
        "│ vpc      │ ec2 │ vpc- │ -       │ in sync │                         │\n"
        "│          │     │ 12   │         │         │                         │\n"
    )
    rows = status_rows(out)
    assert rows["sg-jvb"]["difference"] == "ingress udp/10000 cidr:0.0.0.0/0 missing"
    assert rows["vpc"]["id"] == "vpc- 12" and squash(rows["vpc"]["id"]) == "vpc-12"
    assert set(rows) == {"sg-jvb", "vpc"}


def test_status_table_shows_the_difference_verbatim() -> None:
    line = (
        "content differs (containerDefinitions[jvb].environment[JVB_STUN_SERVERS].value): "
        "new revision"
    )
    result = RunResult("status")
    result.results["taskdef-jvb"] = StepResult(
        "taskdef-jvb", "ecs task-definition", Outcome.DRIFTED, "meet-jvb:2", drift=[line]
    )
    console = Console(file=io.StringIO(), width=400)
    console.print(runner.status_table(result))
    assert line in console.file.getvalue()

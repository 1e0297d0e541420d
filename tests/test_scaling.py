"""Autoscaling of the bridges through the step API on moto: exact requests, drift, status."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from pcls import config, runner
from pcls.aws import Aws
from pcls.engine import Context
from pcls.ledger import Ledger
from pcls.steps.scaling import protected_tasks
from pcls.ui import Outcome, RecordingReporter
from tests.harness import Harness

RID = "service/meet/jvb"
NS = {"ServiceNamespace": "ecs", "ResourceId": RID, "ScalableDimension": "ecs:service:DesiredCount"}
SCALING_STEPS = ("scaling-target", "scaling-policies", "scaling-schedule")

ZURICH_OFFICE_HOURS = """timezone = "Europe/Zurich"
[jvb]
min_count = 1
max_count = 6
[scaling]
metric = "stress"
target = 0.6
cpu_target = 65.0
scale_in_cooldown = 600
scale_out_cooldown = 90
[[scaling.schedule]]
name = "evening"
cron = "cron(0 19 ? * MON-FRI *)"
min_count = 0
max_count = 1
[[scaling.schedule]]
name = "morning"
cron = "cron(0 7 ? * MON-FRI *)"
min_count = 1
max_count = 6
"""

# What the config above asks for, written out by hand.
WANT_TARGET = {
    **NS,
    "MinCapacity": 1,
    "MaxCapacity": 6,
    "Tags": {"pcls:stack": "meet", "pcls:step": "scaling-target"},
}
WANT_POLICIES = {
    "meet-jvb-load": {
        **NS,
        "PolicyName": "meet-jvb-load",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 0.6,
            "CustomizedMetricSpecification": {
                "MetricName": "StressLevel",
                "Namespace": "pcls/Jitsi",
                "Dimensions": [{"Name": "Stack", "Value": "meet"}],
                "Statistic": "Average",
            },
            "ScaleOutCooldown": 90,
            "ScaleInCooldown": 600,
            "DisableScaleIn": False,
        },
    },
    "meet-jvb-cpu": {
        **NS,
        "PolicyName": "meet-jvb-cpu",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 65.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
            "ScaleOutCooldown": 90,
            "ScaleInCooldown": 600,
            "DisableScaleIn": False,
        },
    },
}
WANT_ACTIONS = {
    "meet-evening": {
        **NS,
        "ScheduledActionName": "meet-evening",
        "Schedule": "cron(0 19 ? * MON-FRI *)",
        "Timezone": "Europe/Zurich",
        "ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 1},
    },
    "meet-morning": {
        **NS,
        "ScheduledActionName": "meet-morning",
        "Schedule": "cron(0 7 ? * MON-FRI *)",
        "Timezone": "Europe/Zurich",
        "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 6},
    },
}


def _capture(s: runner.Session, *operations: str) -> dict[str, list[dict[str, Any]]]:
    """The exact keyword arguments of each call to the named operations."""
    seen: dict[str, list[dict[str, Any]]] = {op: [] for op in operations}
    client = s.aws.client("application-autoscaling")
    for op in operations:

        def hook(params: dict[str, Any], op: str = op, **_: Any) -> None:
            seen[op].append(copy.deepcopy(params))

        client.meta.events.register(f"before-parameter-build.application-autoscaling.{op}", hook)
    return seen


def _actions(h: Harness) -> dict[str, dict[str, Any]]:
    items = h.client("application-autoscaling").describe_scheduled_actions(**NS)
    return {a["ScheduledActionName"]: a for a in items["ScheduledActions"]}


def _policies(h: Harness) -> dict[str, dict[str, Any]]:
    items = h.client("application-autoscaling").describe_scaling_policies(**NS)
    return {p["PolicyName"]: p for p in items["ScalingPolicies"]}


def _target(h: Harness) -> dict[str, Any]:
    (target,) = h.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[RID]
    )["ScalableTargets"]
    return target


def _desired(h: Harness) -> int:
    svc = h.client("ecs").describe_services(cluster="meet", services=["jvb"])["services"][0]
    return int(svc["desiredCount"])


@pytest.fixture(autouse=True)
def tasks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto runs no tasks; the services wait for theirs, so say every service runs one."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")


@pytest.fixture
def zurich(harness: Harness) -> Harness:
    harness.write_config(ZURICH_OFFICE_HOURS)
    return harness


def test_up_sends_exactly_the_config_and_a_rerun_writes_nothing(zurich: Harness) -> None:
    s = zurich.session()
    seen = _capture(s, "RegisterScalableTarget", "PutScalingPolicy", "PutScheduledAction")
    result = runner.do_up(s)
    assert result.ok, [r.detail for r in result.failures]

    assert seen["RegisterScalableTarget"] == [WANT_TARGET]
    assert {p["PolicyName"]: p for p in seen["PutScalingPolicy"]} == WANT_POLICIES
    assert len(seen["PutScalingPolicy"]) == 2
    assert {a["ScheduledActionName"]: a for a in seen["PutScheduledAction"]} == WANT_ACTIONS
    assert len(seen["PutScheduledAction"]) == 2

    # AWS (moto) keeps what was sent, time zone included.
    target = _target(zurich)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 6)
    for name, want in WANT_POLICIES.items():
        have = _policies(zurich)[name]["TargetTrackingScalingPolicyConfiguration"]
        assert have == want["TargetTrackingScalingPolicyConfiguration"]
    for name, want in WANT_ACTIONS.items():
        have = _actions(zurich)[name]
        assert (have["Schedule"], have["Timezone"], have["ScalableTargetAction"]) == (
            want["Schedule"],
            want["Timezone"],
            want["ScalableTargetAction"],
        )

    again = zurich.up()
    assert again.ok
    assert zurich.writes() == {}
    assert {again.results[n].outcome for n in SCALING_STEPS} == {Outcome.UNCHANGED}
    calls = zurich.calls()["calls"]
    # One listing per resource type, shared by the three steps.
    assert calls["application-autoscaling:DescribeScalableTargets"] == 1
    assert calls["application-autoscaling:DescribeScalingPolicies"] == 1
    assert calls["application-autoscaling:DescribeScheduledActions"] == 1


def test_drift_is_repaired_and_desired_count_is_left_to_autoscaling(zurich: Harness) -> None:
    assert zurich.up().ok
    aas = zurich.client("application-autoscaling")
    aas.register_scalable_target(**NS, MinCapacity=2, MaxCapacity=9)
    cpu = copy.deepcopy(WANT_POLICIES["meet-jvb-cpu"])
    cpu["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] = 90.0
    aas.put_scaling_policy(**cpu)
    aas.delete_scheduled_action(**NS, ScheduledActionName="meet-morning")
    stale = {**WANT_ACTIONS["meet-evening"], "ScheduledActionName": "meet-lunch"}
    aas.put_scheduled_action(**stale)
    foreign = {**WANT_ACTIONS["meet-evening"], "ScheduledActionName": "ops-freeze"}
    aas.put_scheduled_action(**foreign)
    # Autoscaling has moved the pool meanwhile.
    zurich.client("ecs").update_service(cluster="meet", service="jvb", desiredCount=3)

    status = zurich.status()
    drift = {n: status.results[n].drift for n in SCALING_STEPS}
    assert {status.results[n].outcome for n in SCALING_STEPS} == {Outcome.DRIFTED}
    assert drift["scaling-target"] == ["min/max 2/9 (config 1/6)"]
    assert drift["scaling-policies"] == ["meet-jvb-cpu TargetValue 90.0 (want 65.0)"]
    assert sorted(drift["scaling-schedule"]) == ["meet-lunch not in config", "meet-morning missing"]

    fixed = zurich.up()
    assert {fixed.results[n].outcome for n in SCALING_STEPS} == {Outcome.UPDATED}
    writes = {k: v for k, v in zurich.writes().items() if k.startswith("application")}
    assert writes == {
        "application-autoscaling:RegisterScalableTarget": 1,
        "application-autoscaling:PutScalingPolicy": 1,
        "application-autoscaling:PutScheduledAction": 1,
        "application-autoscaling:DeleteScheduledAction": 1,
    }
    assert "ecs:UpdateService" not in zurich.writes()
    assert _desired(zurich) == 3
    assert (_target(zurich)["MinCapacity"], _target(zurich)["MaxCapacity"]) == (1, 6)
    have_cpu = _policies(zurich)["meet-jvb-cpu"]["TargetTrackingScalingPolicyConfiguration"]
    assert have_cpu["TargetValue"] == 65.0
    assert set(_actions(zurich)) == {"meet-evening", "meet-morning", "ops-freeze"}


def test_emptied_schedule_removes_only_pcls_actions(zurich: Harness) -> None:
    assert zurich.up().ok
    foreign = {**WANT_ACTIONS["meet-evening"], "ScheduledActionName": "ops-freeze"}
    zurich.client("application-autoscaling").put_scheduled_action(**foreign)
    zurich.write_config('timezone = "Europe/Zurich"\n[jvb]\nmax_count = 6\n')
    result = zurich.up()
    assert result.ok
    assert result.results["scaling-schedule"].outcome is Outcome.UPDATED
    assert result.results["scaling-schedule"].drift == [
        "meet-evening not in config",
        "meet-morning not in config",
    ]
    assert set(_actions(zurich)) == {"ops-freeze"}


def test_status_shows_scaling_details_and_accepts_scheduled_bounds(zurich: Harness) -> None:
    assert zurich.up().ok
    # The evening action has run: the target has its bounds, not the config's; no drift.
    zurich.client("application-autoscaling").register_scalable_target(
        **NS, MinCapacity=0, MaxCapacity=1
    )
    # Two running tasks in the cluster: moto cannot answer GetTaskProtection for them.
    ecs = zurich.client("ecs")
    ecs.register_task_definition(
        family="probe",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "probe", "image": "probe", "memory": 512}],
    )
    subnets = zurich.client("ec2").describe_subnets(
        Filters=[{"Name": "tag:pcls:step", "Values": ["subnet-1"]}]
    )["Subnets"]
    ecs.run_task(
        cluster="meet",
        taskDefinition="probe",
        launchType="FARGATE",
        count=2,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnets[0]["SubnetId"]], "securityGroups": []}
        },
    )

    status = zurich.status()
    assert not status.failures
    assert all(status.results[n].outcome is Outcome.IN_SYNC for n in SCALING_STEPS)
    target = status.results["scaling-target"].details
    assert (target["min"], target["desired"], target["max"]) == (0, 1, 1)
    assert target["protected"] == "unknown"
    policies = status.results["scaling-policies"].details["policies"]
    assert "jvb-load: StressLevel 0.6" in policies
    assert "jvb-cpu: ECSServiceAverageCPUUtilization 65.0" in policies
    assert status.results["scaling-schedule"].details == {
        "actions": 2,
        "timezone": "Europe/Zurich",
    }


def test_protection_lookup_is_one_quick_attempt_against_a_server(tmp_path: Path) -> None:
    """Through moto's server GetTaskProtection is an HTTP 500, which botocore would retry for a
    minute; status makes one attempt and reports 'unknown'."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        ec2 = boto3.client("ec2", region_name="eu-central-1", endpoint_url=url)
        ecs = boto3.client("ecs", region_name="eu-central-1", endpoint_url=url)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
        ecs.create_cluster(clusterName="meet")
        ecs.register_task_definition(
            family="meet-jvb",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "jvb", "image": "jvb", "memory": 512}],
        )
        ecs.run_task(
            cluster="meet",
            taskDefinition="meet-jvb",
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}
            },
        )
        cfg = config.parse({"stack": {"name": "meet", "domain": "meet.example.com"}})
        aws = Aws("eu-central-1", endpoint_url=url, sandbox=True)
        ctx = Context(cfg, aws, Ledger(tmp_path, "meet"), RecordingReporter())
        started = time.monotonic()
        assert protected_tasks(ctx, "meet", "jvb") == "unknown"
        assert time.monotonic() - started < 5
        assert aws.calls[("ecs", "GetTaskProtection")] == 1
    finally:
        server.stop()

"""The sharded signal plane on moto: shards, their names and routers, bridges in every AZ.

moto runs no task, registers no target and keeps no Cloud Map instance, so where the rollout
waits for a shard to be routed again the tasks, target health and instances are answered by a
small fake fleet (botocore after-call hooks on pcls's own clients), as ECS, the load balancer
and Cloud Map would report a shard task coming back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from pcls import router, runner
from pcls.engine import Collision
from pcls.jitsi import container_env
from pcls.steps.services import ShardServices
from pcls.ui import Outcome
from tests.harness import FAST, Harness
from tests.inventory import inventory, stack_only


@pytest.fixture
def deployed(harness: Harness) -> Iterator[Harness]:
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    yield harness


def ecs_services(h: Harness, *names: str) -> dict[str, dict[str, Any]]:
    out = h.client("ecs").describe_services(cluster="meet", services=list(names))["services"]
    return {s["serviceName"]: s for s in out if s["status"] == "ACTIVE"}


def latest(h: Harness, family: str) -> dict[str, Any]:
    ecs = h.client("ecs")
    arns = ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    if not arns:
        return {}
    newest = max(arns, key=lambda a: int(a.rsplit(":", 1)[1]))
    return dict(ecs.describe_task_definition(taskDefinition=newest)["taskDefinition"])


def cloud_map(h: Harness) -> dict[str, dict[str, Any]]:
    sd = h.client("servicediscovery")
    return {s["Name"]: s for s in sd.list_services()["Services"]}


def signal_alarms(h: Harness) -> list[str]:
    cw = h.client("cloudwatch")
    return sorted(
        a["AlarmName"]
        for a in cw.describe_alarms(AlarmNamePrefix="meet-signal-down")["MetricAlarms"]
    )


def ledger_id(h: Harness, step: str) -> str:
    return str(json.loads(h.ledger_path.read_text())["steps"][step]["id"])


def progress(s: runner.Session, step: str) -> list[str]:
    return [e[2] for e in s.ui.events if e[0] == "progress" and e[1] == step]  # type: ignore[attr-defined]


# -- building --------------------------------------------------------------------------------


def test_up_builds_two_shards_behind_the_routers_with_a_bridge_in_every_az(
    deployed: Harness,
) -> None:
    h = deployed
    subnets = {
        s["SubnetId"]: s["AvailabilityZone"]
        for s in h.client("ec2").describe_subnets()["Subnets"]
        if not s.get("DefaultForAz")
    }
    shards = ecs_services(h, "shard-a", "shard-b", "jvb")
    names = cloud_map(h)
    assert set(names) == {"shard-a", "shard-b"}
    tg = ledger_id(h, "target-group")
    zones = []
    for shard in ("shard-a", "shard-b"):
        svc = shards[shard]
        assert svc["desiredCount"] == 1 and svc["launchType"] == "FARGATE"
        (subnet,) = svc["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
        zones.append(subnets[subnet])
        assert svc["loadBalancers"] == [
            {"targetGroupArn": tg, "containerName": "router", "containerPort": 8080}
        ]
        (registry,) = svc["serviceRegistries"]
        assert registry["registryArn"] == names[shard]["Arn"]
        assert names[shard]["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]
        td = latest(h, f"meet-{shard}")
        assert svc["taskDefinition"] == td["taskDefinitionArn"]
        env = container_env(td)
        assert env["web"]["DEPLOYMENTINFO_SHARD"] == shard
        assert env["prosody"]["XMPP_MODULES"] == "jiconop"
        assert env["prosody"]["XMPP_CONFIGURATION"] == f'shard_name = "{shard}"'
        # Every shard shares the XMPP domains and secrets, and runs the same router config.
        assert env["prosody"]["XMPP_DOMAIN"] == "meet.jitsi"
        assert router.decoded(env["router"][router.CONFIG_ENV]) == router.config("meet.internal")
        (routers,) = [c for c in td["containerDefinitions"] if c["name"] == "router"]
        assert routers["image"] == router.IMAGE and routers["essential"] is True
    assert len(set(zones)) == 2  # one shard per AZ, round robin

    jvb = shards["jvb"]
    assert jvb["desiredCount"] == 2  # jvb.min_count defaults to one per AZ
    assert len(jvb["networkConfiguration"]["awsvpcConfiguration"]["subnets"]) == 2
    jvb_env = container_env(latest(h, "meet-jvb"))
    assert jvb_env["jvb"]["XMPP_SERVER"] == "shard-a.meet.internal,shard-b.meet.internal"
    assert jvb_env["bridge-guard"]["JICOFO_URLS"] == (
        "http://shard-a.meet.internal:8888,http://shard-b.meet.internal:8888"
    )

    elbv2 = h.client("elbv2")
    group = elbv2.describe_target_groups(TargetGroupArns=[tg])["TargetGroups"][0]
    assert group["Port"] == 8080 and group["HealthCheckPath"] == "/router-health"
    rules = elbv2.describe_rules(ListenerArn=ledger_id(h, "listener-http"))["Rules"]
    (forward,) = [r for r in rules if not r["IsDefault"]]
    assert forward["Actions"][0]["TargetGroupArn"] == tg

    sg = h.client("ec2").describe_security_groups(GroupIds=[ledger_id(h, "sg-signal")])
    perms = sg["SecurityGroups"][0]["IpPermissions"]
    ports = {(p["FromPort"], g["GroupId"]) for p in perms for g in p.get("UserIdGroupPairs", [])}
    assert (8000, ledger_id(h, "sg-signal")) in ports  # routers reach every shard's web
    assert (8080, ledger_id(h, "sg-alb")) in ports  # the load balancer reaches the routers


def test_a_second_up_writes_nothing_and_status_shows_each_shard(
    deployed: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    again = deployed.up()
    assert again.ok and deployed.writes() == {}
    seen = deployed.cli("status", "--json", capsys=capsys)
    assert seen.code == 0, seen.out
    by_step = {r["step"]: r for r in json.loads(seen.out)["resources"]}
    shards = by_step["service-signal"]["details"]
    assert set(shards) >= {"shard-a", "shard-b"}
    assert shards["shard-a"].startswith("eu-central-1a · 1/1 running")
    assert shards["shard-b"].startswith("eu-central-1b · 1/1 running")
    jvb = by_step["service-jvb"]["details"]
    assert jvb["running"] == 2 and "per_az" in jvb and jvb["xmpp"].startswith("no data")
    names = by_step["discovery-xmpp"]["details"]
    assert names["shard-a"].startswith("shard-a.meet.internal")
    assert by_step["listener-http"]["details"]["forward"] == "/router-health"


def test_the_shards_start_before_the_https_listener(harness: Harness) -> None:
    steps = harness.session().engine.steps
    shards = steps["service-signal"]
    assert "listener-https" not in shards.depends_on
    assert {"listener-http", "target-group", "discovery-xmpp"} <= set(shards.depends_on)


# -- rolling one shard at a time -----------------------------------------------------------


class Fleet:
    """What ECS, the target group and Cloud Map report about shard tasks during a rollout.

    After UpdateService of a shard its new task is listed at once; its router target reads
    `initial` for `slow` health reads, then healthy; Cloud Map holds its address from the
    start. `log` records, in order, each rollout's start and the first healthy answer.
    """

    def __init__(self, slow: int = 3) -> None:
        self.slow = slow
        self.tasks: dict[str, str] = {}  # shard -> ip of its current task
        self.reads: dict[str, int] = {}
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.ips = iter(f"10.42.0.{i}" for i in range(10, 250))

    def install(self, s: runner.Session) -> None:
        def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["fleet_params"] = dict(params)

        for service, ops in (
            ("ecs", ("UpdateService", "ListTasks", "DescribeTasks")),
            ("elbv2", ("DescribeTargetHealth",)),
            ("servicediscovery", ("ListInstances",)),
        ):
            events = s.aws.client(service).meta.events
            for op in ops:
                events.register(f"before-parameter-build.{service}.{op}", remember)
                events.register(f"after-call.{service}.{op}", getattr(self, f"_{op}"))

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return dict(kwargs.get("context", {}).get("fleet_params", {}))

    def _UpdateService(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        shard = self._params(kwargs)["service"]
        if shard.startswith("shard-"):
            with self.lock:
                self.tasks[shard] = next(self.ips)
                self.reads[shard] = 0
                self.log.append(("rolling", shard))

    def _ListTasks(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        shard = self._params(kwargs).get("serviceName", "")
        if shard in self.tasks:
            parsed["taskArns"] = [f"arn:aws:ecs:eu-central-1:123456789012:task/meet/{shard}"]

    def _DescribeTasks(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        tasks = []
        for arn in self._params(kwargs).get("tasks", []):
            shard = arn.rsplit("/", 1)[-1]
            ip = self.tasks.get(shard)
            if ip:
                details = [{"name": "privateIPv4Address", "value": ip}]
                tasks.append(
                    {
                        "taskArn": arn,
                        "lastStatus": "RUNNING",
                        "healthStatus": "HEALTHY",
                        "availabilityZone": "eu-central-1a",
                        "attachments": [{"type": "ElasticNetworkInterface", "details": details}],
                    }
                )
        parsed["tasks"] = tasks

    def _DescribeTargetHealth(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        out = []
        for target in self._params(kwargs).get("Targets", []):
            shard = next((s for s, ip in self.tasks.items() if ip == target["Id"]), None)
            if shard is None:
                continue
            with self.lock:
                self.reads[shard] += 1
                state = "healthy" if self.reads[shard] > self.slow else "initial"
                if state == "healthy" and ("healthy", shard) not in self.log:
                    self.log.append(("healthy", shard))
            out.append({"Target": target, "TargetHealth": {"State": state}})
        parsed["TargetHealthDescriptions"] = out

    def _ListInstances(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed["Instances"] = [
            {"Id": shard, "Attributes": {"AWS_INSTANCE_IPV4": ip}}
            for shard, ip in self.tasks.items()
        ]


def test_a_change_rolls_the_shards_one_at_a_time_each_routed_again_first(
    deployed: Harness,
) -> None:
    h = deployed
    h.write_config('[jitsi]\nimage_tag = "stable-11146-3"\n')
    s = h.session()
    fleet = Fleet()
    fleet.install(s)
    result = runner.do_up(s)
    assert result.ok, [r.detail for r in result.failures]
    # shard-a rolls, is healthy behind the load balancer, then shard-b rolls.
    assert fleet.log == [
        ("rolling", "shard-a"),
        ("healthy", "shard-a"),
        ("rolling", "shard-b"),
        ("healthy", "shard-b"),
    ]
    lines = progress(s, "service-signal")
    assert "rolling shard-a (1 of 2)" in lines and "rolling shard-b (2 of 2)" in lines
    assert any("shard-a to be routed again" in line for line in lines)
    assert any(line.startswith("shard-a is routed again;") for line in lines)
    drift = result.results["service-signal"].drift
    assert any(
        d.startswith("shard-a: task definition meet-shard-a:1 -> meet-shard-a:2") for d in drift
    )
    assert ecs_services(h, "shard-a")["shard-a"]["taskDefinition"].endswith("meet-shard-a:2")
    assert h.up().ok and h.writes() == {}


def test_a_bad_release_stops_at_the_first_shard_and_leaves_the_others_running(
    deployed: Harness,
) -> None:
    h = deployed
    h.write_config('[jitsi]\nimage_tag = "stable-11146-3"\n')
    s = h.session(patience=replace(FAST, service_stable=30.0))
    updated: list[str] = []
    ecs = s.aws.client("ecs")
    ecs.meta.events.register(
        "before-parameter-build.ecs.UpdateService",
        lambda params, **_: updated.append(params["service"]),
    )

    def circuit_breaker(parsed: dict[str, Any], **_: Any) -> None:
        # The new revision's tasks fail to start: ECS fails the deployment and rolls back.
        for svc in parsed.get("services", []):
            if svc["serviceName"] == "shard-a" and "shard-a" in updated:
                svc["deployments"][0]["rolloutState"] = "FAILED"
                svc["deployments"][0]["rolloutStateReason"] = (
                    "ECS deployment circuit breaker: tasks failed to start."
                )

    ecs.meta.events.register("after-call.ecs.DescribeServices", circuit_breaker)
    result = runner.do_up(s)
    failure = result.results["service-signal"]
    assert failure.outcome is Outcome.FAILED
    assert "circuit breaker: tasks failed to start" in failure.detail
    # shard-b was never touched: it serves every room meanwhile (jvb rolls on its own)
    assert [u for u in updated if u.startswith("shard-")] == ["shard-a"]
    assert ecs_services(h, "shard-b")["shard-b"]["taskDefinition"].endswith("meet-shard-b:1")


# -- adding and removing shards ------------------------------------------------------------


def test_adding_a_shard_leaves_the_running_ones_and_updates_the_bridge_pool(
    deployed: Harness,
) -> None:
    h = deployed
    h.write_config("[signal]\nshards = 3\n")
    s = h.session()
    updated: list[str] = []
    s.aws.client("ecs").meta.events.register(
        "before-parameter-build.ecs.UpdateService",
        lambda params, **_: updated.append(params["service"]),
    )
    result = runner.do_up(s)
    assert result.ok, [r.detail for r in result.failures]
    assert "shard-c missing" in result.results["service-signal"].drift
    # The routers' ring holds every slot already: shard-a and shard-b are not redeployed.
    assert "shard-a" not in updated and "shard-b" not in updated
    assert updated == ["jvb"]  # the pool moves to the revision that lists shard-c
    shards = ecs_services(h, "shard-a", "shard-b", "shard-c")
    assert set(shards) == {"shard-a", "shard-b", "shard-c"}
    assert set(cloud_map(h)) == {"shard-a", "shard-b", "shard-c"}
    jvb = container_env(latest(h, "meet-jvb"))["jvb"]
    assert jvb["XMPP_SERVER"].split(",") == [f"shard-{x}.meet.internal" for x in "abc"]
    (subnet,) = shards["shard-c"]["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
    assert subnet == ledger_id(h, "subnet-1")  # round robin: back to the first AZ
    # each shard has its own signal alarm; the new one comes with it
    assert "meet-signal-down-shard-c missing" in result.results["alarms"].drift
    assert signal_alarms(h) == [f"meet-signal-down-shard-{x}" for x in "abc"]
    assert h.up().ok and h.writes() == {}


def test_removing_a_shard_removes_its_service_name_and_task_definitions(
    deployed: Harness,
) -> None:
    h = deployed
    h.write_config("[signal]\nshards = 3\n")
    assert h.up().ok
    h.write_config("[signal]\nshards = 2\n")
    plan = h.plan()
    assert "shard-c not in config (2 shards): removing" in plan.results["service-signal"].drift
    result = h.up()
    assert result.ok, [r.detail for r in result.failures]
    assert set(ecs_services(h, "shard-a", "shard-b", "shard-c")) == {"shard-a", "shard-b"}
    assert set(cloud_map(h)) == {"shard-a", "shard-b"}
    assert latest(h, "meet-shard-c") == {}
    jvb = container_env(latest(h, "meet-jvb"))["jvb"]
    assert jvb["XMPP_SERVER"] == "shard-a.meet.internal,shard-b.meet.internal"
    assert "meet-signal-down-shard-c not in config" in result.results["alarms"].drift
    assert signal_alarms(h) == ["meet-signal-down-shard-a", "meet-signal-down-shard-b"]
    assert h.up().ok and h.writes() == {}
    down = h.teardown()
    assert down.ok and down.remaining == []
    assert stack_only(inventory(h.region)) == {}


def test_a_run_stopped_after_a_shard_service_went_finishes_its_name_and_family(
    deployed: Harness,
) -> None:
    h = deployed
    h.write_config("[signal]\nshards = 3\n")
    assert h.up().ok
    # As if the run that removed shard-c had stopped right after its service was deleted.
    h.client("ecs").update_service(cluster="meet", service="shard-c", desiredCount=0)
    h.client("ecs").delete_service(cluster="meet", service="shard-c", force=True)
    h.write_config("[signal]\nshards = 2\n")
    result = h.up()
    assert result.ok, [r.detail for r in result.failures]
    assert any("shard-c not in config" in d for d in result.results["discovery-xmpp"].drift)
    assert any("meet-shard-c not in config" in d for d in result.results["taskdef-signal"].drift)
    assert set(cloud_map(h)) == {"shard-a", "shard-b"} and latest(h, "meet-shard-c") == {}
    assert h.up().ok and h.writes() == {}


def test_v1s_single_signal_service_name_and_family_are_retired(deployed: Harness) -> None:
    h = deployed
    # What a v1 stack ran, tagged as its steps tagged it: service `signal`, name `xmpp`,
    # family meet-signal.
    ecs, sd = h.client("ecs"), h.client("servicediscovery")
    shard = latest(h, "meet-shard-a")
    keys = ("containerDefinitions", "cpu", "memory", "networkMode", "requiresCompatibilities")
    ecs.register_task_definition(
        family="meet-signal",
        **{k: shard[k] for k in keys},
        tags=[
            {"key": "pcls:stack", "value": "meet"},
            {"key": "pcls:step", "value": "taskdef-signal"},
        ],
    )
    sd.create_service(
        Name="xmpp",
        NamespaceId=ledger_id(h, "namespace"),
        DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
        Tags=[
            {"Key": "pcls:stack", "Value": "meet"},
            {"Key": "pcls:step", "Value": "discovery-xmpp"},
        ],
    )
    ecs.create_service(
        cluster="meet",
        serviceName="signal",
        taskDefinition="meet-signal",
        desiredCount=1,
        tags=[
            {"key": "pcls:stack", "value": "meet"},
            {"key": "pcls:step", "value": "service-signal"},
        ],
    )
    # and v1's one signal alarm, on the `signal` service, tagged by the alarms step
    h.client("cloudwatch").put_metric_alarm(
        AlarmName="meet-signal-down",
        Namespace="AWS/ECS",
        MetricName="CPUUtilization",
        Dimensions=[
            {"Name": "ClusterName", "Value": "meet"},
            {"Name": "ServiceName", "Value": "signal"},
        ],
        Statistic="SampleCount",
        Period=60,
        EvaluationPeriods=5,
        Threshold=1.0,
        ComparisonOperator="LessThanThreshold",
        Tags=[{"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": "alarms"}],
    )
    result = h.up()
    assert result.ok, [r.detail for r in result.failures]
    assert "signal not in config (2 shards): removing" in result.results["service-signal"].drift
    assert "signal" not in ecs_services(h, "signal")
    assert "xmpp" not in cloud_map(h)
    assert latest(h, "meet-signal") == {}
    assert result.results["alarms"].drift == ["meet-signal-down not in config"]
    assert signal_alarms(h) == ["meet-signal-down-shard-a", "meet-signal-down-shard-b"]
    assert h.up().ok and h.writes() == {}


def test_a_foreign_alarm_with_v1s_signal_alarm_name_is_left_alone(deployed: Harness) -> None:
    h = deployed
    cw = h.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="meet-signal-down",
        Namespace="AWS/ECS",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="LessThanThreshold",
        Tags=[{"Key": "team", "Value": "video"}],
    )
    # pcls writes that name no more: not in its way, and not its to remove
    result = h.up()
    assert result.ok, [r.detail for r in result.failures]
    assert h.writes() == {}
    assert "meet-signal-down" in [
        a["AlarmName"] for a in cw.describe_alarms(AlarmNames=["meet-signal-down"])["MetricAlarms"]
    ]
    down = h.teardown()
    assert down.ok
    (left,) = cw.describe_alarms()["MetricAlarms"]
    assert left["AlarmName"] == "meet-signal-down"


def test_a_foreign_service_with_a_shard_name_stops_up(deployed: Harness) -> None:
    h = deployed
    h.write_config("[signal]\nshards = 3\n")
    shard = latest(h, "meet-shard-a")
    h.client("ecs").create_service(
        cluster="meet", serviceName="shard-c", taskDefinition=shard["taskDefinitionArn"]
    )
    plan = h.session()
    with pytest.raises(Collision, match="ECS service shard-c in cluster meet"):
        plan.engine.plan()


def test_teardown_removes_every_shard(deployed: Harness) -> None:
    result = deployed.teardown()
    assert result.ok and result.remaining == []
    assert stack_only(inventory(deployed.region)) == {}
    assert result.results["service-signal"].outcome is Outcome.DELETED


def test_shards_spread_round_robin_over_the_azs() -> None:
    step = ShardServices(router.shard_names(5), ["subnet-1", "subnet-2", "subnet-3"])
    assert {s: p.subnets for s, p in step.parts.items()} == {
        "shard-a": ["subnet-1"],
        "shard-b": ["subnet-2"],
        "shard-c": ["subnet-3"],
        "shard-d": ["subnet-1"],
        "shard-e": ["subnet-2"],
    }


def _up_with_group_port(h: Harness, port: int) -> runner.Session:
    """`up` whose CreateTargetGroup asks for `port`, as an older pcls would have."""
    s = h.session()

    def older(params: dict[str, Any], **_: Any) -> None:
        if params.get("TargetType") != "lambda":  # the wake page's group has no port
            params["Port"] = port

    s.aws.client("elbv2").meta.events.register(
        "before-parameter-build.elastic-load-balancing-v2.CreateTargetGroup", older
    )
    result = runner.do_up(s)
    assert result.ok, [r.detail for r in result.failures]
    return s


def _group_port(h: Harness) -> int:
    elbv2 = h.client("elbv2")
    (tg,) = elbv2.describe_target_groups(Names=["meet-web"])["TargetGroups"]  # the routers'
    return int(tg["Port"])


def test_a_one_task_stacks_target_group_on_port_8000_serves_the_routers_as_it_is(
    harness: Harness,
) -> None:
    h = harness
    _up_with_group_port(h, router.WEB_PORT)
    assert _group_port(h) == 8000
    # ECS registers each router with its container port; the health check follows it
    lb = ecs_services(h, "shard-a")["shard-a"]["loadBalancers"][0]
    assert (lb["containerName"], lb["containerPort"]) == ("router", 8080)
    status = h.status()
    group = status.results["target-group"]
    assert group.drift == []
    assert group.details["port"].startswith("8000 (created by a one-task stack;")
    assert h.up().ok and h.writes() == {}


def test_a_target_group_on_another_port_is_immutable_drift(harness: Harness) -> None:
    h = harness
    _up_with_group_port(h, 9000)
    drift = h.status().results["target-group"].drift
    assert drift == ["Port 9000 (config 8080; immutable; delete it to recreate)"]
    assert h.up().ok and h.writes() == {}  # never recreated behind the operator's back

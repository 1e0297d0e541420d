"""The wake function (pcls/wakefn/handler.py) in-process against moto, on a deployed stack.

The function's own calls run on moto; where moto cannot show what AWS does (target health of
tasks that never run, a service removed between a read and a write, a run cut short) the exact
AWS answer is injected with a botocore event hook on that one operation.
"""

from __future__ import annotations

import ast
import dataclasses
import html.parser
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.awsrequest
import pytest
from moto import mock_aws

from pcls.wakefn import handler as fn
from tests.conftest import DOMAIN, REGION
from tests.harness import Harness

ZURICH = "Europe/Zurich"
AZ = "eu-central-1a"
WEEKDAYS_7_19 = [[0, 1, 2, 3, 4], 7 * 60, 19 * 60]
SLEEP_PAGE = "the sleep page (a fixed response)"
# Monday 2026-11-02 (CET, UTC+1)
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    """UTC instant of a Zurich wall-clock time on MONDAY + day (November: UTC+1)."""
    return MONDAY + timedelta(days=day, hours=hour - 1, minutes=minute)


# -- a deployed stack and the function's configuration for it ---------------------------------


class Deployed:
    """What `up` made, read back from AWS once per module (a deploy takes about 2 s)."""

    def __init__(self, harness: Harness) -> None:
        assert harness.up().ok
        c = harness.client
        ecs, elbv2, aas = c("ecs"), c("elbv2"), c("application-autoscaling")
        self.cluster_arn = ecs.describe_clusters(clusters=["meet"])["clusters"][0]["clusterArn"]
        arns = ecs.list_services(cluster="meet")["serviceArns"]
        described = ecs.describe_services(cluster="meet", services=arns)["services"]
        self.desired = {s["serviceName"]: s["desiredCount"] for s in described}
        target = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"][0]
        self.bounds = (target["MinCapacity"], target["MaxCapacity"])
        lb = elbv2.describe_load_balancers(Names=["meet-alb"])["LoadBalancers"][0]
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])
        https = next(li for li in listeners["Listeners"] if li["Port"] == 443)
        self.listener = https["ListenerArn"]
        self.app_tg = https["DefaultActions"][0]["TargetGroupArn"]
        made = elbv2.create_target_group(Name="fn-test-wake", TargetType="lambda")
        self.wake_tg = made["TargetGroups"][0]["TargetGroupArn"]
        alarms = c("cloudwatch").describe_alarms(AlarmNamePrefix="meet-")["MetricAlarms"]
        self.alarms = tuple(sorted(a["AlarmName"] for a in alarms))


class Stack:
    """The deployed stack, back as `up` left it, with fresh clients (hooks die with them)."""

    runs = 0

    def __init__(self, d: Deployed) -> None:
        self.__dict__.update(vars(d))
        Stack.runs += 1
        self.dimension = f"run-{Stack.runs}"  # metric data of one test is not seen by the next
        self.ecs, self.elbv2 = boto3.client("ecs"), boto3.client("elbv2")
        self.aas = boto3.client("application-autoscaling")
        self.cw = boto3.client("cloudwatch")
        self.clients = SimpleNamespace(
            ecs=self.ecs, elbv2=self.elbv2, autoscaling=self.aas, cloudwatch=self.cw
        )
        self.elbv2.modify_listener(
            ListenerArn=self.listener,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.app_tg}],
        )
        for name, count in self.desired.items():
            self.ecs.update_service(cluster="meet", service=name, desiredCount=count)
        self.aas.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId="service/meet/jvb",
            ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=self.bounds[0],
            MaxCapacity=self.bounds[1],
            SuspendedState={"ScheduledScalingSuspended": False},
        )
        self.ecs.untag_resource(
            resourceArn=self.cluster_arn, tagKeys=["pcls:sleep", "pcls:sleep-since"]
        )
        targets = self.elbv2.describe_target_health(TargetGroupArn=self.app_tg)
        if ids := [t["Target"] for t in targets["TargetHealthDescriptions"]]:
            self.elbv2.deregister_targets(TargetGroupArn=self.app_tg, Targets=ids)
        self.cw.enable_alarm_actions(AlarmNames=list(self.alarms))
        for name in self.alarms:
            self.cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test reset")

    def env(self, **kw: Any) -> fn.Env:
        base: dict[str, Any] = {
            "stack": "meet",
            "cluster": "meet",
            "state_arn": self.cluster_arn,
            "services": tuple(sorted(self.desired.items())),
            "scalable": {"resource_id": "service/meet/jvb", "min": 2, "max": 4},
            "listener_arn": self.listener,
            "app_tg_arn": self.app_tg,
            "wake_tg_arn": self.wake_tg,
            "idle_minutes": 30,
            "awake": (WEEKDAYS_7_19,),
            "timezone": ZURICH,
            "metric": {
                "namespace": "pcls/Jitsi",
                "name": "Conferences",
                "dimensions": [{"Name": "Stack", "Value": self.dimension}],
            },
            "ready_seconds": 150,
        }
        return fn.Env(**{**base, **kw})

    # what AWS holds

    def default(self) -> str:
        """The listener's default: the target group it forwards to, or SLEEP_PAGE."""
        li = self.elbv2.describe_listeners(ListenerArns=[self.listener])["Listeners"][0]
        (action,) = li["DefaultActions"]
        if action["Type"] == "fixed-response":
            assert action["FixedResponseConfig"] == {
                "StatusCode": "200",
                "ContentType": "text/html",
                "MessageBody": fn.sleep_page(150),
            }
            return SLEEP_PAGE
        return action["TargetGroupArn"]

    def counts(self) -> dict[str, int]:
        out = self.ecs.describe_services(cluster="meet", services=list(self.desired))
        return {s["serviceName"]: s["desiredCount"] for s in out["services"]}

    def target(self) -> dict[str, Any]:
        return self.aas.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=["service/meet/jvb"]
        )["ScalableTargets"][0]

    def tags(self) -> dict[str, str]:
        out = self.ecs.list_tags_for_resource(resourceArn=self.cluster_arn)["tags"]
        return {t["key"]: t["value"] for t in out}

    def alarm_state(self) -> dict[str, tuple[str, bool]]:
        """Each of the stack's alarms: (state, actions enabled)."""
        out = self.cw.describe_alarms(AlarmNames=list(self.alarms))["MetricAlarms"]
        return {a["AlarmName"]: (a["StateValue"], a["ActionsEnabled"]) for a in out}

    def routers_healthy(self, n: int) -> None:
        """n router targets registered; moto reports registered IP targets healthy."""
        targets = [{"Id": f"10.0.1.{10 + i}", "Port": 8080} for i in range(n)]
        self.elbv2.register_targets(TargetGroupArn=self.app_tg, Targets=targets)

    def conferences(self, values: dict[datetime, float]) -> None:
        self.cw.put_metric_data(
            Namespace="pcls/Jitsi",
            MetricData=[
                {
                    "MetricName": "Conferences",
                    "Dimensions": [{"Name": "Stack", "Value": self.dimension}],
                    "Value": v,
                    "Timestamp": t,
                }
                for t, v in values.items()
            ],
        )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with mock_aws(config={"iam": {"load_aws_managed_policies": False}}):
        h = Harness(tmp_path_factory.mktemp("stack"), region=REGION, domain=DOMAIN)
        h.make_zone("example.com")
        yield Deployed(h)


@pytest.fixture
def stack(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return Stack(deployed)


def answer(
    client: Any, operation: str, reply: Callable[[dict[str, Any]], Any]
) -> Callable[[], None]:
    """Answer one operation of this client with reply(params): (status, parsed), or None to let
    moto answer; reply may raise, as a run stopped there would. Returns the undo."""

    def hook(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body") or b"{}"  # the request as sent (ecs, autoscaling: JSON)
        got = reply(json.loads(body) if isinstance(body, bytes | str) else body)
        if not got:
            return None
        status, parsed = got
        return botocore.awsrequest.AWSResponse("https://aws.invalid", status, {}, None), parsed

    event = f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event, hook)
    return lambda: client.meta.events.unregister(event, hook)


def cut(_: dict[str, Any]) -> None:
    raise ConnectionError("the run stopped here")


def health(*states: str) -> tuple[int, dict[str, Any]]:
    """DescribeTargetHealth as AWS answers it for router targets in these states."""
    reasons = {
        "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
        "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
        "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    }
    out = []
    for i, st in enumerate(states):
        th: dict[str, Any] = {"State": st}
        if st in reasons:
            th["Reason"], th["Description"] = reasons[st]
        out.append(
            {
                "Target": {"Id": f"10.0.1.{10 + i}", "Port": 8080, "AvailabilityZone": AZ},
                "HealthCheckPort": "8080",
                "TargetHealth": th,
            }
        )
    return 200, {"TargetHealthDescriptions": out}


def aws_error(code: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"Error": {"Code": code, "Message": message}}


def alb_event(method: str, path: str = "/", accept: str = "text/html", **kw: Any) -> dict:
    """An ALB Lambda-target request (multi-value headers off), as the AWS documentation shows."""
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-central-1:123456789012:"
                "targetgroup/meet-wake/49e9d65c45c6791a"
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": kw.pop("query", {}),
        "headers": {
            "accept": accept,
            "host": "meet.example.com",
            "user-agent": kw.pop("agent", "Mozilla/5.0"),
            "x-forwarded-for": "192.0.2.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "body": kw.pop("body", ""),
        "isBase64Encoded": kw.pop("b64", False),
    }


@pytest.fixture
def lambda_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> fn.Env:
    """The function as Lambda runs it: configuration from the environment, its own clients."""
    env = stack.env()
    for key, value in env.to_environ().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(fn, "_CLIENTS", fn.Clients(**vars(stack.clients)))
    return env


# -- configuration ----------------------------------------------------------------------------


def test_env_round_trips_through_the_environment(stack: Stack) -> None:
    env = stack.env()
    environ = env.to_environ()
    assert set(environ) == {v for k, v in vars(fn).items() if k.startswith("ENV_")}
    assert fn.Env.from_environ(environ) == env
    assert fn.Env.from_environ(environ).to_environ() == environ  # deterministic text
    assert env.shards == ("shard-a", "shard-b")
    assert json.loads(environ[fn.ENV_AWAKE]) == [WEEKDAYS_7_19]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (fn.ENV_SERVICES, "{}", "PCLS_SERVICES: a JSON list of {name, desired} expected"),
        (fn.ENV_AWAKE, "[[1, 2]]", "PCLS_AWAKE: a JSON list of [[weekdays], start, end] expected"),
        (fn.ENV_TIMEZONE, "Mars/Olympus", "PCLS_TIMEZONE: 'Mars/Olympus' is no IANA time zone"),
        (fn.ENV_IDLE_MINUTES, "-5", "PCLS_IDLE_MINUTES must be a whole number of 0 or more"),
        (fn.ENV_CLUSTER, "", "PCLS_CLUSTER is not set"),
    ],
)
def test_bad_environment_names_the_variable(
    stack: Stack, key: str, value: str, message: str
) -> None:
    environ = {**stack.env().to_environ(), key: value}
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("{", r"\{")):
        fn.Env.from_environ(environ)


def test_the_file_runs_alone_with_the_standard_library_and_boto3(tmp_path: Path) -> None:
    tree = ast.parse(Path(fn.__file__).read_text())
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    assert tops - set(sys.stdlib_module_names) == {"boto3", "botocore"}
    shutil.copy(fn.__file__, tmp_path / "handler.py")
    probe = (
        "import sys; sys.modules['pcls'] = None\n"  # any `import pcls` now fails
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import handler\n"
        "print(handler.__file__, handler.handler.__name__, len(handler.page('asleep', 90)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    size = str(len(fn.page("asleep", 90)))
    assert done.stdout.split() == [str(tmp_path / "handler.py"), "handler", size]


# -- sleep and wake ---------------------------------------------------------------------------


def test_sleep_then_wake_restores_exact_counts_and_bounds(stack: Stack) -> None:
    env = stack.env()
    before = stack.counts()
    assert before == {"jvb": 2, "shard-a": 1, "shard-b": 1} and stack.bounds == (2, 4)
    assert fn.state(stack.clients, env) == "awake"  # no tag yet

    slept = fn.sleep(stack.clients, env, at(20))
    assert slept["state"] == "asleep" and slept["skipped"] == []
    assert stack.default() == SLEEP_PAGE
    assert stack.counts() == {"jvb": 0, "shard-a": 0, "shard-b": 0}
    t = stack.target()
    assert (t["MinCapacity"], t["MaxCapacity"]) == (0, 0)
    assert t["SuspendedState"]["ScheduledScalingSuspended"] is True
    assert stack.tags()["pcls:sleep"] == "asleep"
    assert stack.tags()["pcls:stack"] == "meet"  # the cluster's own tags untouched
    assert stack.tags()["pcls:sleep-since"] == "2026-11-02T19:00:00Z"
    assert fn.sleep(stack.clients, env, at(20, 5))["changed"] == []  # idempotent
    assert stack.tags()["pcls:sleep-since"] == "2026-11-02T19:00:00Z"

    woke = fn.wake(stack.clients, env, at(21))
    assert woke["state"] == "waking"
    assert stack.counts() == before
    t = stack.target()
    assert (t["MinCapacity"], t["MaxCapacity"]) == stack.bounds
    assert t["SuspendedState"]["ScheduledScalingSuspended"] is False
    assert stack.default() == SLEEP_PAGE  # until the routers are healthy
    assert fn.state(stack.clients, env) == "waking"
    assert fn.wake(stack.clients, env, at(21, 5))["changed"] == []  # already waking


def record_writes(stack: Stack) -> list[str]:
    """The write calls the function makes, in order (moto still answers them)."""
    seen: list[str] = []
    for client in (stack.ecs, stack.elbv2, stack.aas, stack.cw):
        service = client.meta.service_model.service_id.hyphenize()

        def note(model: Any, **_: Any) -> None:
            if not model.name.startswith(("Describe", "List", "Get")):
                seen.append(model.name)

        client.meta.events.register(f"before-call.{service}", note)
    return seen


def test_visitors_get_the_page_before_anything_stops_and_the_routers_after_all_runs(
    stack: Stack,
) -> None:
    env = stack.env()
    writes = record_writes(stack)
    fn.sleep(stack.clients, env, at(20))
    assert writes == [
        "ModifyListener",  # first: from now on visitors get the page, never a 502
        "RegisterScalableTarget",  # then autoscaling cannot start bridges
        "UpdateService",
        "UpdateService",
        "UpdateService",
        "TagResource",  # last: asleep only once all is down
    ]
    writes.clear()
    fn.wake(stack.clients, env, at(21))
    assert writes == ["TagResource", "RegisterScalableTarget", *["UpdateService"] * 3]
    stack.routers_healthy(2)
    writes.clear()
    fn.progress(stack.clients, env, at(21, 3))
    assert writes == ["ModifyListener", "TagResource"]
    writes.clear()
    assert fn.progress(stack.clients, env, at(21, 4))["state"] == "awake" and writes == []


def test_the_alarms_are_silent_from_before_any_task_stops_until_the_shards_serve(
    stack: Stack,
) -> None:
    env = stack.env(alarms=(*stack.alarms, "meet-gone"))  # a name the stack has no more
    signal = "meet-signal-down-shard-a"
    assert signal in stack.alarms
    writes = record_writes(stack)

    # No state change reaches an action while the function acts: every SetAlarmState it makes
    # finds the alarm's actions off (CloudWatch runs actions on state changes only).
    def actions_off(params: dict[str, Any], **_: Any) -> None:
        (alarm,) = stack.cw.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"]
        assert alarm["ActionsEnabled"] is False, params["AlarmName"]

    stack.cw.meta.events.register("provide-client-params.cloudwatch.SetAlarmState", actions_off)

    fn.sleep(stack.clients, env, at(20))
    assert writes[:3] == ["ModifyListener", "DisableAlarmActions", "RegisterScalableTarget"]
    assert {actions for _, actions in stack.alarm_state().values()} == {False}
    # What CloudWatch does meanwhile, silently: the shards' alarms breach (no data).
    stack.cw.meta.events.unregister("provide-client-params.cloudwatch.SetAlarmState", actions_off)
    stack.cw.set_alarm_state(AlarmName=signal, StateValue="ALARM", StateReason="no data")
    stack.cw.set_alarm_state(
        AlarmName="meet-jvb-xmpp", StateValue="INSUFFICIENT_DATA", StateReason="no data"
    )
    stack.cw.meta.events.register("provide-client-params.cloudwatch.SetAlarmState", actions_off)
    writes.clear()
    assert fn.sleep(stack.clients, env, at(20, 5))["changed"] == [] and writes == []

    fn.wake(stack.clients, env, at(21))
    assert "DisableAlarmActions" not in writes and "EnableAlarmActions" not in writes
    assert fn.progress(stack.clients, env, at(21, 1))["state"] == "waking"
    assert {actions for _, actions in stack.alarm_state().values()} == {False}

    stack.routers_healthy(2)
    writes.clear()
    assert fn.progress(stack.clients, env, at(21, 3))["state"] == "awake"
    # OK while still silent, then the actions: the stale ALARM mails neither ALARM nor OK.
    assert writes == [
        "SetAlarmState",
        "SetAlarmState",
        "EnableAlarmActions",
        "ModifyListener",
        "TagResource",
    ]
    assert set(stack.alarm_state().values()) == {("OK", True)}
    writes.clear()
    assert fn.progress(stack.clients, env, at(21, 4))["state"] == "awake" and writes == []


def test_a_stack_put_to_sleep_with_its_alarms_on_is_silenced_by_the_wake(stack: Stack) -> None:
    fn.sleep(stack.clients, stack.env(), at(20))  # a function deployed without alarm names
    assert {actions for _, actions in stack.alarm_state().values()} == {True}
    env = stack.env(alarms=stack.alarms)
    fn.wake(stack.clients, env, at(21))
    assert {actions for _, actions in stack.alarm_state().values()} == {False}


def test_the_listener_waits_for_every_shard_router(stack: Stack) -> None:
    env = stack.env()
    fn.sleep(stack.clients, env, at(20))
    fn.wake(stack.clients, env, at(21))
    replies = iter(
        [
            health("initial", "initial"),
            health("healthy", "unhealthy"),
            health("healthy", "draining"),
        ]
    )
    undo = answer(stack.elbv2, "DescribeTargetHealth", lambda _: next(replies))
    for _ in range(3):
        p = fn.progress(stack.clients, env, at(21, 1))
        assert p["state"] == "waking" and p["wanted"] == 2 and p["healthy"] < 2
        assert stack.default() == SLEEP_PAGE
    assert p["ready_in"] == 90  # 150 s estimate, 60 s gone
    undo()
    stack.routers_healthy(2)  # moto: registered targets are healthy
    p = fn.progress(stack.clients, env, at(21, 3))
    assert p == {"state": "awake", "healthy": 2, "wanted": 2, "ready_in": 0}
    assert stack.default() == stack.app_tg
    assert stack.tags()["pcls:sleep"] == "awake"
    assert stack.tags()["pcls:sleep-since"] == "2026-11-02T20:03:00Z"


def test_a_shard_that_never_comes_up_does_not_keep_the_page_for_ever(stack: Stack) -> None:
    env = stack.env()  # ready in about 150 s: patience 600 s
    fn.sleep(stack.clients, env, at(20))
    fn.wake(stack.clients, env, at(21))
    answer(stack.elbv2, "DescribeTargetHealth", lambda _: health("healthy", "unhealthy"))
    assert fn.progress(stack.clients, env, at(21, 9))["state"] == "waking"
    assert stack.default() == SLEEP_PAGE
    p = fn.progress(stack.clients, env, at(21, 10))
    assert p["state"] == "awake" and p["healthy"] == 1 and stack.default() == stack.app_tg


def test_wake_is_rate_limited_and_a_no_op_when_awake(stack: Stack) -> None:
    env = stack.env()
    assert fn.wake(stack.clients, env, at(20)) == {"state": "awake", "changed": [], "skipped": []}
    fn.sleep(stack.clients, env, at(20))
    early = fn.wake(stack.clients, env, at(20) + timedelta(seconds=20))
    assert early["changed"] == [] and early["retry_in"] == 40 and early["state"] == "asleep"
    assert stack.counts()["jvb"] == 0
    assert fn.wake(stack.clients, env, at(20) + timedelta(seconds=20), rate_limit=False)["changed"]
    assert stack.counts()["jvb"] == 2


def test_a_removed_service_is_skipped_and_said(stack: Stack) -> None:
    env = stack.env()
    # shard-c: in the configuration, gone from AWS (DescribeServices: failure MISSING)
    env = stack.env(services=(*env.services, ("shard-c", 1)))
    slept = fn.sleep(stack.clients, env, at(20))
    assert slept["skipped"] == ["shard-c"] and slept["state"] == "asleep"
    # removed between DescribeServices and UpdateService: AWS says ServiceNotActiveException
    answer(
        stack.ecs,
        "UpdateService",
        lambda p: (
            aws_error("ServiceNotActiveException", "Service was not ACTIVE.")
            if p["service"] == "shard-a"
            else None
        ),
    )
    woke = fn.wake(stack.clients, env, at(21))
    assert woke["skipped"] == ["shard-a", "shard-c"] and woke["changed"] == [
        "state",
        "scalable target",
        "jvb",
        "shard-b",
    ]
    assert stack.counts() == {"jvb": 2, "shard-a": 0, "shard-b": 1}


def test_a_sleep_cut_short_is_asleep_and_finished_by_the_next_tick(stack: Stack) -> None:
    env = stack.env()
    undo = answer(
        stack.ecs, "UpdateService", lambda p: cut(p) if p["service"] == "shard-a" else None
    )
    with pytest.raises(ConnectionError):
        fn.sleep(stack.clients, env, at(20))
    assert stack.default() == SLEEP_PAGE and "pcls:sleep" not in stack.tags()
    assert stack.counts() == {"jvb": 0, "shard-a": 1, "shard-b": 1}
    # Visitors already see the page: the stack says asleep, not awake.
    assert fn.state(stack.clients, env) == "asleep"
    undo()
    # The next tick finishes it
    assert fn.tick(stack.clients, env, at(20, 5))["action"] == "sleep (finishing one cut short)"
    assert stack.counts() == {"jvb": 0, "shard-a": 0, "shard-b": 0}
    assert stack.tags()["pcls:sleep"] == "asleep"


def test_a_wake_after_a_sleep_cut_short_completes(stack: Stack) -> None:
    env = stack.env()
    undo = answer(stack.ecs, "UpdateService", cut)
    with pytest.raises(ConnectionError):
        fn.sleep(stack.clients, env, at(20))
    undo()
    assert fn.wake(stack.clients, env, at(21))["state"] == "waking"
    stack.routers_healthy(2)
    assert fn.progress(stack.clients, env, at(21, 2))["state"] == "awake"
    assert stack.default() == stack.app_tg
    assert stack.counts() == {"jvb": 2, "shard-a": 1, "shard-b": 1}
    t = stack.target()
    assert (t["MinCapacity"], t["MaxCapacity"]) == (2, 4)


def test_a_wake_cut_short_is_finished_by_the_next_tick(stack: Stack) -> None:
    env = stack.env()
    fn.sleep(stack.clients, env, at(20))
    undo = answer(
        stack.aas, "RegisterScalableTarget", lambda p: cut(p) if p["MaxCapacity"] else None
    )
    with pytest.raises(ConnectionError):
        fn.wake(stack.clients, env, at(21))
    assert fn.state(stack.clients, env) == "waking" and stack.counts()["jvb"] == 0
    undo()
    out = fn.tick(stack.clients, env, at(21, 5))
    assert out["action"] == "progress" and out["state"] == "waking"
    assert set(out["changed"]) == {"scalable target", "jvb", "shard-a", "shard-b"}
    assert stack.counts() == {"jvb": 2, "shard-a": 1, "shard-b": 1}


# -- the schedule -----------------------------------------------------------------------------


def test_tick_wakes_at_the_window_start_and_sleeps_at_its_end(stack: Stack) -> None:
    env = stack.env()
    fn.sleep(stack.clients, env, at(20, day=-3))  # Friday evening
    assert fn.tick(stack.clients, env, at(6, 55))["action"] == "none"
    assert fn.tick(stack.clients, env, at(7, 2))["action"] == "wake (window start)"
    stack.routers_healthy(2)
    assert fn.tick(stack.clients, env, at(7, 7))["state"] == "awake"
    assert stack.default() == stack.app_tg
    assert fn.tick(stack.clients, env, at(12))["action"] == "none"
    assert fn.tick(stack.clients, env, at(19, 1))["action"] == "sleep (window end)"
    assert stack.default() == SLEEP_PAGE
    assert fn.tick(stack.clients, env, at(19, 6))["action"] == "none"


def test_a_missed_tick_still_acts_but_a_later_manual_change_stands(stack: Stack) -> None:
    env = stack.env()
    fn.sleep(stack.clients, env, at(20, day=-3))
    assert fn.tick(stack.clients, env, at(7, 13))["action"] == "wake (window start)"
    fn.sleep(stack.clients, env, at(9))  # an operator put it to sleep inside the window
    assert fn.tick(stack.clients, env, at(9, 5))["action"] == "none"


def test_the_window_end_waits_for_a_running_conference(stack: Stack) -> None:
    env = stack.env()
    stack.conferences({at(18, 56): 1.0})
    out = fn.tick(stack.clients, env, at(19, 1))
    assert out["action"] == "none" and "in use" in out["reason"]
    assert stack.default() == stack.app_tg
    stack.conferences({at(19, m): 0.0 for m in range(1, 15)})
    assert fn.tick(stack.clients, env, at(19, 11))["action"] == "sleep (window end)"


def test_idle_sleeps_only_outside_windows_after_n_minutes_without_a_conference(
    stack: Stack,
) -> None:
    env = stack.env()
    fn.sleep(stack.clients, env, at(20))
    fn.wake(stack.clients, env, at(20, 30), rate_limit=False)  # a visitor in the evening
    stack.routers_healthy(2)
    fn.progress(stack.clients, env, at(20, 33))  # awake since 20:33
    stack.conferences({at(20, m): 0.0 for m in range(33, 60)})
    assert fn.tick(stack.clients, env, at(20, 55))["action"] == "none"  # 22 min awake
    stack.conferences({at(20, 50): 3.0})
    assert fn.tick(stack.clients, env, at(21, 10))["action"] == "none"  # a conference 20 min ago
    stack.conferences({at(21, m): 0.0 for m in range(0, 30)})
    out = fn.tick(stack.clients, env, at(21, 25))
    assert out["action"] == "sleep (idle 30 min)" and stack.default() == SLEEP_PAGE


def test_idle_never_sleeps_inside_a_window_or_when_off(stack: Stack) -> None:
    fn.sleep(stack.clients, stack.env(), at(6, day=-1))
    stack.routers_healthy(2)
    fn.tick(stack.clients, stack.env(), at(7, 1))
    fn.progress(stack.clients, stack.env(), at(7, 3))
    assert fn.state(stack.clients, stack.env()) == "awake"
    assert fn.tick(stack.clients, stack.env(), at(11))["action"] == "none"  # inside, no metric
    off = stack.env(idle_minutes=0, awake=())
    assert fn.tick(stack.clients, off, at(23))["action"] == "none"


def test_window_edges_in_the_stack_time_zone() -> None:
    env = fn.Env(
        stack="s",
        cluster="c",
        state_arn="a",
        services=(),
        scalable=None,
        listener_arn="l",
        app_tg_arn="t",
        wake_tg_arn="w",
        idle_minutes=0,
        timezone=ZURICH,
        metric=None,
        ready_seconds=60,
        awake=([[0, 1, 2, 3, 4], 420, 720], [[0, 1, 2, 3, 4], 720, 1140], [[5], 0, 1440]),
    )
    # Monday after the switch to summer time (2026-03-29): 07:00 Zurich is 05:00 UTC
    monday = datetime(2026, 3, 30, 5, 10, tzinfo=UTC)
    assert fn.last_edge(env, monday) == (datetime(2026, 3, 30, 5, 0, tzinfo=UTC), True)
    # 12:00: one window ends, the next starts: no edge; the day's end is 19:00 local
    evening = datetime(2026, 3, 30, 17, 30, tzinfo=UTC)
    assert fn.last_edge(env, evening) == (datetime(2026, 3, 30, 17, 0, tzinfo=UTC), False)
    assert fn.inside(env, datetime(2026, 3, 30, 10, 0, tzinfo=UTC))
    # Saturday all day (0 to 24:00): awake from Friday 19:00's end... until Sunday 00:00
    assert fn.inside(env, datetime(2026, 4, 4, 21, 59, tzinfo=UTC))
    assert fn.last_edge(env, datetime(2026, 4, 5, 9, 0, tzinfo=UTC)) == (
        datetime(2026, 4, 4, 22, 0, tzinfo=UTC),
        False,
    )
    assert fn.last_edge(dataclasses.replace(env, awake=()), monday) is None
    # Sunday 02:30-05:00 on the night 02:00 jumps to 03:00: awake from the jump (01:00 UTC)
    gap = dataclasses.replace(env, awake=([[6], 150, 300],))
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert fn.last_edge(gap, jump + timedelta(minutes=10)) == (jump, True)
    assert fn.last_edge(gap, datetime(2026, 3, 29, 3, 1, tzinfo=UTC)) == (
        datetime(2026, 3, 29, 3, 0, tzinfo=UTC),  # 05:00 summer time
        False,
    )


# -- the HTTP face ----------------------------------------------------------------------------


def test_get_never_wakes_and_shows_the_page(stack: Stack, lambda_env: fn.Env) -> None:
    now = datetime.now(UTC)
    fn.sleep(stack.clients, lambda_env, now - timedelta(minutes=5))
    for method, path, agent in [
        ("GET", "/myroom", "Mozilla/5.0"),
        ("GET", "/", "Googlebot/2.1"),
        ("HEAD", "/", "ELB-HealthChecker/2.0"),
        ("GET", fn.WAKE_PATH, "curl/8.5"),
        ("GET", fn.STATUS_PATH, "curl/8.5"),
        ("HEAD", fn.STATUS_PATH, "curl/8.5"),
    ]:
        r = fn.handler(alb_event(method, path, agent=agent, query={"q": "1"}), None)
        assert r["statusCode"] == 200 and r["statusDescription"] == "200 OK", (method, path)
        assert r["isBase64Encoded"] is False and r["headers"]["Cache-Control"] == "no-store"
        assert (r["body"] == "") == (method == "HEAD")
    assert stack.counts() == {"jvb": 0, "shard-a": 0, "shard-b": 0}
    assert stack.tags()["pcls:sleep"] == "asleep"
    r = fn.handler(alb_event("GET", "/myroom"), None)
    assert r["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r["headers"]["Content-Security-Policy"]
    assert 'data-state="asleep"' in r["body"] and "ready in about 150 s" in r["body"]


def test_post_wakes_once_and_reports_progress(stack: Stack, lambda_env: fn.Env) -> None:
    fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
    r = fn.handler(alb_event("POST", fn.WAKE_PATH, accept="application/json"), None)
    assert r["statusCode"] == 200 and r["headers"]["Content-Type"] == "application/json"
    body = json.loads(r["body"])
    assert body["state"] == "waking" and body["wanted"] == 2 and body["ready_in"] > 0
    assert stack.counts() == {"jvb": 2, "shard-a": 1, "shard-b": 1}
    assert stack.default() == SLEEP_PAGE
    # a second visitor's press: nothing new (rate limit, and already waking)
    press = alb_event("POST", fn.WAKE_PATH, accept="application/json")
    again = json.loads(fn.handler(press)["body"])
    assert again["state"] == "waking" and again["retry_in"] > 0
    stack.routers_healthy(2)
    status = json.loads(fn.handler(alb_event("GET", fn.STATUS_PATH))["body"])
    assert status == {"state": "awake", "healthy": 2, "wanted": 2, "ready_in": 0}
    assert stack.default() == stack.app_tg


def test_the_sleep_page_form_post_answers_with_the_progress_page(
    stack: Stack, lambda_env: fn.Env
) -> None:
    import base64

    fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
    # what the sleep page's form sends, its hidden field filled from location (form-encoded)
    body = base64.b64encode(b"next=%2Fteam-call%3Flang%3Dde").decode()
    r = fn.handler(alb_event("POST", fn.WAKE_PATH, body=body, b64=True))
    assert r["statusCode"] == 200 and r["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert 'data-state="waking"' in r["body"] and 'data-next="/team-call?lang=de"' in r["body"]
    assert 'name="next" value="/team-call?lang=de"' in r["body"]
    assert fn.state(stack.clients, lambda_env) == "waking"
    # never a way off the site
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
        r = fn.handler(alb_event("POST", fn.WAKE_PATH, body="next=" + evil))
        assert 'data-next="/"' in r["body"], evil
    # a GET of the function's own paths opens the site once awake, not that path again
    page = fn.handler(alb_event("GET", fn.WAKE_PATH))["body"]
    assert 'data-next="/"' in page


class _Form(html.parser.HTMLParser):
    """The forms, inputs, buttons and scripts of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.buttons = 0
        self.scripts: list[str] = []
        self.in_script = False
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append(dict(attrs))
        elif tag == "input":
            self.inputs.append(dict(attrs))
        elif tag == "button":
            self.buttons += 1
        if tag not in ("meta", "input"):
            self.open.append(tag)
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open)
        self.open.pop()
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.scripts.append(data)


def test_the_sleep_page_fits_a_fixed_response_and_posts_the_visitors_path() -> None:
    seen = set()
    for n in [*range(0, fn.MAX_READY_SECONDS + 1), 10**9, -5]:
        body = fn.sleep_page(n)
        assert len(body) <= fn.PAGE_LIMIT == 1024, n
        assert body.isascii()  # a fixed response names no charset of its own
        seen.add(body)
    assert len(seen) == fn.MAX_READY_SECONDS + 1  # every estimate shown as it is, up to the cap
    body = fn.sleep_page(210)
    assert "ready in about 210 s" in body and "asleep" in body.lower()
    parsed = _Form()
    parsed.feed(body)
    parsed.close()
    assert parsed.open == []  # every element closed in order
    assert parsed.forms == [{"method": "post", "action": fn.WAKE_PATH}]
    assert parsed.inputs == [{"type": "hidden", "name": "next", "id": "n", "value": "/"}]
    assert parsed.buttons == 1
    (script,) = parsed.scripts
    assert "l.pathname+l.search" in script and 'getElementById("n")' in script
    for outside in ("http://", "https://", "src=", "href=", "@import", "url("):
        assert outside not in body, outside
    action = fn.sleep_action(210)
    assert action == {
        "Type": "fixed-response",
        "FixedResponseConfig": {
            "StatusCode": "200",
            "ContentType": "text/html",
            "MessageBody": body,
        },
    }


def test_a_get_while_asleep_is_the_load_balancers_and_a_post_the_functions(
    stack: Stack, lambda_env: fn.Env
) -> None:
    writes = record_writes(stack)
    fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
    assert stack.default() == SLEEP_PAGE
    # once asleep, a repeated sleep compares the page's body and writes nothing
    writes.clear()
    assert fn.sleep(stack.clients, lambda_env, datetime.now(UTC))["changed"] == []
    assert writes == []
    # another estimate (a new pcls) is another page: rewritten once
    other = dataclasses.replace(lambda_env, ready_seconds=90)
    assert fn.sleep(stack.clients, other, datetime.now(UTC))["changed"] == ["listener"]
    assert fn.sleep(stack.clients, other, datetime.now(UTC))["changed"] == []
    assert fn.state(stack.clients, other) == "asleep"


def test_other_methods_are_refused(stack: Stack, lambda_env: fn.Env) -> None:
    fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
    for method, path, allow in [
        ("POST", "/", "GET, HEAD"),
        ("PUT", fn.WAKE_PATH, "POST"),
        ("DELETE", "/room", "GET, HEAD"),
        ("OPTIONS", fn.WAKE_PATH, "POST"),
        ("POST", fn.STATUS_PATH, "GET, HEAD"),
    ]:
        r = fn.handler(alb_event(method, path))
        assert r["statusCode"] == 405 and r["statusDescription"] == "405 Method Not Allowed"
        assert r["headers"]["Allow"] == allow, (method, path)
    assert stack.tags()["pcls:sleep"] == "asleep"


def test_the_page_tells_the_state_and_nothing_else(stack: Stack, lambda_env: fn.Env) -> None:
    fn.sleep(stack.clients, lambda_env, datetime.now(UTC) - timedelta(minutes=5))
    answers = [
        fn.handler(alb_event("GET", "/x")),
        fn.handler(alb_event("POST", fn.WAKE_PATH, accept="application/json")),
        fn.handler(alb_event("GET", fn.STATUS_PATH)),
    ]
    text = json.dumps(answers)
    for secret in ("123456789012", "arn:", "meet-alb", "fn-test-wake", "shard-", "jvb", "service/"):
        assert secret not in text, secret
    page = answers[0]["body"]
    assert len(page.encode()) < 8_000  # ALB allows 1 MB; it is a few kB
    for outside in ("http://", "https://", "src=", "href=", "@import", "url("):
        assert outside not in page, outside


def test_aws_trouble_shows_a_503_page_not_a_502(stack: Stack, lambda_env: fn.Env) -> None:
    answer(
        stack.ecs,
        "ListTagsForResource",
        lambda _: aws_error(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/meet-wake/meet-wake is not authorized "
            "to perform: ecs:ListTagsForResource",
        ),
    )
    r = fn.handler(alb_event("GET", "/room"))
    assert r["statusCode"] == 503 and r["headers"]["Retry-After"] == "30"
    assert 'data-state="unknown"' in r["body"]
    r = fn.handler(alb_event("GET", fn.STATUS_PATH))
    assert r["statusCode"] == 503 and json.loads(r["body"]) == {"state": "unknown"}


def test_scheduler_events(stack: Stack, lambda_env: fn.Env) -> None:
    assert fn.handler({"pcls": "sleep"})["state"] == "asleep"
    assert fn.handler({"pcls": "tick"})["action"] == "none"  # just changed: no edge after it
    assert "must be one of sleep, wake, tick" in fn.handler({"pcls": "dance"})["error"]


# -- the page's script, run by a JavaScript engine ----------------------------------------------

NODE = shutil.which("node")
# A minimal browser: the elements the script uses, fetch answering from a list, timers run by hand.
BROWSER = """
const els = {h: {textContent: ""}, m: {textContent: ""}, g: {disabled: false},
  f: {hidden: false, on: {}, addEventListener(t, fn) { this.on[t] = fn; }},
  t: {textContent: TEXTS}};
globalThis.document = {body: {dataset: DATASET}, getElementById: (id) => els[id]};
const timers = [], log = [];
globalThis.setTimeout = (fn, ms) => { timers.push([fn, ms]); return timers.length; };
globalThis.clearTimeout = () => {};
globalThis.location = {replace(u) { log.push("open " + u); }};
const answers = ANSWERS;
globalThis.fetch = (url, opts) => {
  log.push((opts.method || "GET") + " " + url);
  const a = answers.shift();
  return Promise.resolve({status: a[0], headers: {get: () => a[1]},
    json: () => Promise.resolve(a[2])});
};
async function settle() { for (let i = 0; i < 20; i++) { await Promise.resolve(); } }
async function next() {
  const [fn, ms] = timers.pop();
  log.push("after " + ms + " ms");
  fn();
  await settle();
}
(async () => {
  SCRIPT
  await settle();
  log.push(els.m.textContent);
  els.f.on.submit({preventDefault() {}});
  await settle();
  log.push(els.m.textContent, "form hidden " + els.f.hidden);
  await next();
  log.push(els.m.textContent);
  await next();
  await next();
  console.log(JSON.stringify(log));
})();
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_page_script_starts_follows_and_opens_the_meeting(tmp_path: Path) -> None:
    page = fn.page("asleep", 150, 0, 2, "/team-call")
    script = re.search(r"<script>(.*)</script>", page, re.S)[1]
    texts = re.search(r'<script type="application/json" id="t">(.*?)</script>', page, re.S)[1]
    data = dict(re.findall(r'data-(\w+)="([^"]*)"', page))
    waking = {"state": "waking", "ready_in": 120, "healthy": 0, "wanted": 2}
    answers = [
        [200, "application/json", waking],  # the press
        [200, "application/json", {**waking, "ready_in": 60, "healthy": 1}],
        [502, "text/html", None],  # the load balancer, between two function runs
        [200, "text/html; charset=utf-8", None],  # the routers serve the status URL: awake
    ]
    program = (
        BROWSER.replace("TEXTS", json.dumps(texts))
        .replace("DATASET", json.dumps(data))
        .replace("ANSWERS", json.dumps(answers))
        .replace("SCRIPT", script)
    )
    (tmp_path / "page.js").write_text(program)
    done = subprocess.run([NODE, str(tmp_path / "page.js")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "This meeting service sleeps while nobody meets. Start it: ready in about 150 s.",
        "POST /_pcls/wake",
        "Ready in about 120 s (0 of 2 ready). The meeting opens by itself.",
        "form hidden true",
        "after 4000 ms",
        "GET /_pcls/status",
        "Ready in about 60 s (1 of 2 ready). The meeting opens by itself.",
        "after 4000 ms",
        "GET /_pcls/status",
        "after 4000 ms",
        "GET /_pcls/status",
        "open /team-call",
    ]

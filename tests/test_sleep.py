"""Sleep and wake, end to end on moto: by hand, on a visit, by schedule, on idle.

The stack is driven through the CLI (`pcls sleep`, `pcls wake`, `status`, `up`, `teardown`) and
the wake function through its own entry point, `handler.handler`, with the ALB and Scheduler
events AWS sends and the environment `up` gave the function. What ECS does on AWS and moto does
not (register a shard task's router in the target group once it runs) the tests do by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from pcls.aws import tags_of
from pcls.steps.platform import READY_SECONDS
from pcls.steps.wake import deployed_env
from pcls.wakefn import handler
from tests.conftest import REGION
from tests.harness import Harness
from tests.inventory import inventory, stack_only

CLUSTER = "meet"
SHARDS = ("shard-a", "shard-b")
SERVICES = (*SHARDS, "jvb")
SLEEP_PAGE = "the sleep page (a fixed response)"


# -- what AWS shows ------------------------------------------------------------------------------


def _cluster_tags(h: Harness) -> dict[str, str]:
    arn = h.client("ecs").describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    return tags_of(h.client("ecs").list_tags_for_resource(resourceArn=arn)["tags"])


def _desired(h: Harness) -> dict[str, int]:
    out = h.client("ecs").describe_services(cluster=CLUSTER, services=list(SERVICES))
    return {s["serviceName"]: s["desiredCount"] for s in out["services"]}


def _bounds(h: Harness) -> tuple[int, int, bool]:
    (t,) = h.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[f"service/{CLUSTER}/jvb"]
    )["ScalableTargets"]
    suspended = bool(t.get("SuspendedState", {}).get("ScheduledScalingSuspended"))
    return t["MinCapacity"], t["MaxCapacity"], suspended


def _group_arn(h: Harness, name: str) -> str:
    (tg,) = h.client("elbv2").describe_target_groups(Names=[name])["TargetGroups"]
    return str(tg["TargetGroupArn"])


def _https(h: Harness) -> dict[str, Any]:
    elbv2 = h.client("elbv2")
    (lb,) = elbv2.describe_load_balancers(Names=["meet-alb"])["LoadBalancers"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    (https,) = [li for li in listeners if li["Port"] == 443]
    return dict(https)


def _listener_target(h: Harness) -> str:
    """The HTTPS listener's default: the target group it forwards to, or SLEEP_PAGE."""
    (action,) = _https(h)["DefaultActions"]
    if action["Type"] == "fixed-response":
        return SLEEP_PAGE if action == handler.sleep_action(READY_SECONDS) else "another page"
    return str(action["TargetGroupArn"])


def _wake_rule(h: Harness) -> tuple[list[str], str, dict[str, str]]:
    """The HTTPS listener's own rule: its paths, the target group it forwards to, its tags."""
    elbv2 = h.client("elbv2")
    rules = elbv2.describe_rules(ListenerArn=_https(h)["ListenerArn"])["Rules"]
    (rule,) = [r for r in rules if not r["IsDefault"]]
    (cond,) = rule["Conditions"]
    (action,) = rule["Actions"]
    tags = elbv2.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
    return cond["PathPatternConfig"]["Values"], action["TargetGroupArn"], tags_of(tags)


def _the_rule_forwards_to_the_function(h: Harness) -> None:
    paths, target, tags = _wake_rule(h)
    assert paths == ["/_pcls/*"] and target == _group_arn(h, "meet-wake")
    assert tags["pcls:stack"] == "meet" and tags["pcls:step"] == "listener-https"


def _alarm_actions(h: Harness) -> set[bool]:
    """ActionsEnabled over the stack's alarms (every one of them, none missing)."""
    alarms = h.client("cloudwatch").describe_alarms(AlarmNamePrefix="meet-")["MetricAlarms"]
    named = json.loads(_function_env(h)[handler.ENV_ALARMS])
    assert sorted(a["AlarmName"] for a in alarms) == sorted(named)
    return {a["ActionsEnabled"] for a in alarms}


def _function_env(h: Harness) -> dict[str, str]:
    config = h.client("lambda").get_function(FunctionName="meet-wake")["Configuration"]
    return dict(config["Environment"]["Variables"])


def _routers_healthy(h: Harness) -> None:
    """What ECS does once a shard task runs: its router becomes a target of the web group."""
    targets = [{"Id": f"10.0.{i}.10", "Port": 8080} for i, _ in enumerate(SHARDS)]
    h.client("elbv2").register_targets(TargetGroupArn=_group_arn(h, "meet-web"), Targets=targets)


def _routers_gone(h: Harness) -> None:
    tg = _group_arn(h, "meet-web")
    health = h.client("elbv2").describe_target_health(TargetGroupArn=tg)
    targets = [t["Target"] for t in health["TargetHealthDescriptions"]]
    if targets:
        h.client("elbv2").deregister_targets(TargetGroupArn=tg, Targets=targets)


def _minutes_ago(h: Harness, minutes: float) -> None:
    """As if the last state change had happened `minutes` ago (the clock of the tags)."""
    arn = h.client("ecs").describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    stamp = when.strftime(handler.SINCE_FORMAT)
    h.client("ecs").tag_resource(resourceArn=arn, tags=[{"key": handler.SINCE_TAG, "value": stamp}])


# -- the function, as Lambda runs it -------------------------------------------------------------


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the handler with the environment Lambda gives it: the function's own variables."""

    def apply(h: Harness) -> None:
        for key, value in _function_env(h).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(handler, "_CLIENTS", None)  # the handler's clients for this moto

    return apply


def _request(method: str, path: str, accept: str = "text/html") -> dict[str, Any]:
    """An ALB request event (multi-value headers off), as the listener sends it."""
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:::tg"}},
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {},
        "headers": {"accept": accept, "host": "meet.example.com", "user-agent": "test"},
        "body": "",
        "isBase64Encoded": False,
    }


def _json(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["headers"]["Content-Type"] == "application/json", reply
    return dict(json.loads(reply["body"]))


def _asleep(h: Harness) -> None:
    assert _cluster_tags(h)[handler.STATE_TAG] == "asleep"
    assert _alarm_actions(h) == {False}
    assert _desired(h) == dict.fromkeys(SERVICES, 0)
    assert _bounds(h) == (0, 0, True)
    assert _listener_target(h) == SLEEP_PAGE
    _the_rule_forwards_to_the_function(h)


def _awake(h: Harness) -> None:
    assert _cluster_tags(h)[handler.STATE_TAG] == "awake"
    assert _alarm_actions(h) == {True}
    assert _desired(h) == {"shard-a": 1, "shard-b": 1, "jvb": 2}
    assert _bounds(h) == (2, 4, False)
    assert _listener_target(h) == _group_arn(h, "meet-web")
    _the_rule_forwards_to_the_function(h)  # a POST there while awake wakes nothing


# -- by hand, then a visit -----------------------------------------------------------------------


def test_sleep_by_hand_then_a_visit_wakes_it(
    harness: Harness, capsys: pytest.CaptureFixture[str], lambda_env: Any
) -> None:
    h = harness
    assert h.up().ok
    assert _cluster_tags(h)[handler.STATE_TAG] == "awake"  # marked when the function arrived

    slept = h.cli("sleep", capsys=capsys)
    assert slept.code == 0, slept.err
    assert "is asleep" in slept.out
    _asleep(h)

    # status: asleep is no drift.
    seen = h.cli("status", capsys=capsys)
    assert seen.code == 0, seen.out
    assert "stack asleep since" in seen.out
    doc = json.loads(h.cli("status", "--json", capsys=capsys).out)
    (fn,) = [r for r in doc["resources"] if r["step"] == "wake-function"]
    assert fn["details"]["sleep"] == "asleep" and doc["in_sync"]

    # up keeps it asleep and writes nothing.
    again = h.up()
    assert again.ok, [r.detail for r in again.failures]
    assert h.writes() == {}
    _asleep(h)

    # A visitor's GET (and every crawler's and probe's): the load balancer's own answer, the
    # sleep page; the function is not invoked, nothing wakes.
    (page,) = _https(h)["DefaultActions"]
    fixed = page["FixedResponseConfig"]
    assert (fixed["StatusCode"], fixed["ContentType"]) == ("200", "text/html")
    assert "ready in about 210 s" in fixed["MessageBody"]
    assert f'<form method="post" action="{handler.WAKE_PATH}">' in fixed["MessageBody"]
    _asleep(h)

    # The button: its form's POST reaches the function through the rule. Right after the sleep
    # it is rate-limited, a minute later it wakes and answers with the progress page.
    lambda_env(h)
    limited = _json(handler.handler(_request("POST", handler.WAKE_PATH, "application/json")))
    assert limited["state"] == "asleep" and limited["retry_in"] > 0
    _minutes_ago(h, 2)
    press = {**_request("POST", handler.WAKE_PATH), "body": "next=%2Fsome-room"}
    woken = handler.handler(press)
    assert woken["statusCode"] == 200 and "text/html" in woken["headers"]["Content-Type"]
    assert 'data-state="waking"' in woken["body"] and 'data-next="/some-room"' in woken["body"]
    assert _cluster_tags(h)[handler.STATE_TAG] == "waking"
    assert _desired(h) == {"shard-a": 1, "shard-b": 1, "jvb": 2}
    assert _bounds(h) == (2, 4, False)
    assert _listener_target(h) == SLEEP_PAGE  # until the shards serve
    assert _alarm_actions(h) == {False}  # silent until they do

    # Waking is no drift either, and up keeps the listener on the page.
    waking = h.cli("status", capsys=capsys)
    assert waking.code == 0, waking.out
    assert "stack waking" in waking.out
    assert h.up().ok and h.writes() == {}

    # The page follows /_pcls/status; once every shard's router is healthy it is awake.
    still = _json(handler.handler(_request("GET", handler.STATUS_PATH, "application/json")))
    assert still["state"] == "waking" and still["healthy"] == 0 and still["wanted"] == 2
    _routers_healthy(h)
    done = _json(handler.handler(_request("GET", handler.STATUS_PATH, "application/json")))
    assert done["state"] == "awake", done
    _awake(h)
    assert h.up().ok and h.writes() == {}
    assert h.cli("status", capsys=capsys).code == 0


def test_wake_by_hand_follows_until_awake_or_says_it_gave_up(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    assert h.up().ok
    assert h.cli("sleep", capsys=capsys).code == 0
    # Nobody registers the routers: the wait ends at its bound, the stack goes on waking.
    gave_up = h.cli("wake", "--timeout", "0.2", capsys=capsys)
    assert gave_up.code == 1, gave_up.err
    assert "gave up waiting for the shards to serve" in gave_up.err
    assert "goes on waking" in gave_up.err
    assert _cluster_tags(h)[handler.STATE_TAG] == "waking"
    # Again, with the routers serving: the operator is not rate-limited.
    _routers_healthy(h)
    woke = h.cli("wake", capsys=capsys)
    assert woke.code == 0, woke.err
    assert "is awake" in woke.out
    _awake(h)
    assert h.cli("wake", capsys=capsys).out.count("awake already") == 1
    # The run lock is released after each: an up can run.
    assert h.cli("up", capsys=capsys).code == 0


def test_sleep_and_wake_need_a_deployed_stack(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    for verb in ("sleep", "wake"):
        refused = harness.cli(verb, capsys=capsys)
        assert refused.code == 2, refused.err
        assert "has no wake function (wake-function); run pcls up first" in refused.err


# -- by schedule and on idle ---------------------------------------------------------------------


def _next_monday(hour: int, minute: int, zone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    today = dt.datetime.now(ZoneInfo(zone)).date()
    monday = today + dt.timedelta(days=7 - today.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, hour, minute, tzinfo=ZoneInfo(zone))


def _tick(h: Harness, lambda_env: Any, now: dt.datetime) -> dict[str, Any]:
    """One Scheduler invocation at `now` (the handler's own entry takes the real clock)."""
    lambda_env(h)
    env = deployed_env({"Environment": {"Variables": _function_env(h)}})
    return handler.tick(handler.Clients.default(), env, now)


def test_the_schedule_wakes_at_a_window_start_and_sleeps_at_its_end(
    harness: Harness, lambda_env: Any
) -> None:
    h = harness
    h.write_config('[schedule]\nawake = ["Mon-Fri 07:00-19:00"]\nidle_minutes = 0\n')
    assert h.up().ok
    schedule = h.client("scheduler").get_schedule(Name="tick", GroupName="pcls-meet")
    assert schedule["ScheduleExpression"] == "rate(5 minutes)" and schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert json.loads(target["Input"]) == {"pcls": "tick"}
    assert target["Arn"].endswith(":function:meet-wake")
    assert target["RoleArn"].endswith(":role/pcls/meet-wake-schedule")
    zone = h.last.cfg.stack.timezone if h.last else "UTC"

    # The Scheduler event goes through the same entry point as a visit.
    lambda_env(h)
    assert "error" in handler.handler({"pcls": "nonsense"})

    end = _next_monday(19, 2, zone)
    _tick(h, lambda_env, end)
    _asleep(h)
    _tick(h, lambda_env, end + dt.timedelta(minutes=5))  # the next tick: nothing more
    _asleep(h)
    start = end + dt.timedelta(hours=12)  # Tuesday 07:02
    _tick(h, lambda_env, start)
    assert _cluster_tags(h)[handler.STATE_TAG] == "waking"
    _routers_healthy(h)
    _tick(h, lambda_env, start + dt.timedelta(minutes=5))  # finishes the wake
    _awake(h)


def test_an_idle_stack_sleeps_after_idle_minutes(harness: Harness, lambda_env: Any) -> None:
    h = harness
    h.write_config("[schedule]\nidle_minutes = 10\n")
    assert h.up().ok
    now = dt.datetime.now(dt.UTC)
    # No conference metric at all (no bridge reported one): idle since the function arrived.
    _tick(h, lambda_env, now + dt.timedelta(minutes=5))
    assert _cluster_tags(h)[handler.STATE_TAG] == "awake"
    _tick(h, lambda_env, now + dt.timedelta(minutes=11))
    _asleep(h)


# -- teardown ------------------------------------------------------------------------------------


def test_teardown_of_a_sleeping_stack_leaves_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    assert h.up().ok
    made = stack_only(inventory(REGION))
    assert made[("function", "meet-wake")] == 1
    assert made[("schedule-group", "pcls-meet")] == 1 and made[("schedule", "pcls-meet/tick")] == 1
    assert made[("target-group", "meet-wake")] == 1
    assert made[("log-group", "/aws/lambda/meet-wake")] == 1
    assert made[("role", "meet-wake")] == 1 and made[("role", "meet-wake-schedule")] == 1
    assert h.cli("sleep", capsys=capsys).code == 0
    gone = h.cli("teardown", "--yes", capsys=capsys)
    assert gone.code == 0, gone.err
    assert not stack_only(inventory(REGION))


def test_scheduled_scaling_left_suspended_on_an_awake_stack_is_resumed(harness: Harness) -> None:
    """A sleep's suspension of [[scaling.schedule]] outliving the sleep would silence it."""
    h = harness
    assert h.up().ok
    aas = h.client("application-autoscaling")
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=f"service/{CLUSTER}/jvb",
        ScalableDimension="ecs:service:DesiredCount",
        SuspendedState={"ScheduledScalingSuspended": True},
    )
    plan = h.plan()
    assert plan.results["scaling-target"].drift == ["scheduled scaling suspended (awake: resumed)"]
    assert h.up().ok
    assert _bounds(h) == (2, 4, False)
    assert h.up().ok and h.writes() == {}


def test_a_change_rolled_out_while_asleep_keeps_the_stack_asleep(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """New task definitions reach the services at desired 0: the rollout waits end at once."""
    h = harness
    assert h.up().ok
    assert h.cli("sleep", capsys=capsys).code == 0
    h.write_config('[jitsi]\nimage_tag = "stable-11031"\n')
    rolled = h.up()
    assert rolled.ok, [r.detail for r in rolled.failures]
    assert rolled.results["service-signal"].outcome.value == "updated"
    revisions = h.client("ecs").describe_services(cluster=CLUSTER, services=list(SHARDS))
    assert all(s["taskDefinition"].endswith(":2") for s in revisions["services"]), revisions
    _asleep(h)
    assert h.cli("status", capsys=capsys).code == 0


def test_alarm_actions_follow_the_sleep_state_and_up_puts_them_back(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    assert h.up().ok
    assert h.cli("sleep", capsys=capsys).code == 0
    _asleep(h)
    # Turned on by hand while the stack sleeps: drift (the next sleep's no-data would mail).
    h.client("cloudwatch").enable_alarm_actions(AlarmNames=["meet-signal-down-shard-a"])
    seen = h.cli("status", "--json", capsys=capsys)
    assert seen.code == 3, seen.out
    (alarms,) = [r for r in json.loads(seen.out)["resources"] if r["step"] == "alarms"]
    assert "meet-signal-down-shard-a: ActionsEnabled True (want False)" in str(alarms), alarms
    assert h.up().ok
    _asleep(h)  # off again, and still asleep
    assert h.cli("status", capsys=capsys).code == 0

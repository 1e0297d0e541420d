"""Alarm topic, alarms and dashboard through the step API on moto: exact alarms, drift, teardown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pcls import config, runner
from pcls.steps.monitoring import marker_widget
from pcls.ui import Outcome
from tests.harness import Harness

ALARMS = {
    "meet-alb-5xx",
    "meet-alb-unhealthy",
    "meet-signal-down-shard-a",
    "meet-signal-down-shard-b",
    "meet-jvb-load-high",
    "meet-jvb-cpu-high",
    "meet-jvb-xmpp",
    "meet-jvb-restarting",
    "meet-jvb-at-max",
}
MONITORING_STEPS = ("alarm-topic", "alarms", "dashboard")
TOPIC = "arn:aws:sns:eu-central-1:123456789012:meet-alarms"
# Fields pcls sets on an alarm; the rest (state, timestamps, ARN) is AWS's.
SET_BY_PCLS = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "Namespace",
    "MetricName",
    "Statistic",
    "Dimensions",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "Metrics",
)


@pytest.fixture(autouse=True)
def tasks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto runs no tasks; the services wait for theirs, so say every service runs one."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")


def _alarms(h: Harness) -> dict[str, dict[str, Any]]:
    out = h.client("cloudwatch").describe_alarms(AlarmNamePrefix="meet-")["MetricAlarms"]
    return {a["AlarmName"]: a for a in out}


def _settings(alarm: dict[str, Any]) -> dict[str, Any]:
    return {k: alarm.get(k) for k in SET_BY_PCLS}


def _dims(alarm: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def _subscriptions(h: Harness) -> list[str]:
    subs = h.client("sns").list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    return sorted(s["Endpoint"] for s in subs)


def _suffixes(h: Harness) -> tuple[str, str]:
    elbv2 = h.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=["meet-alb"])["LoadBalancers"][0]
    tg = elbv2.describe_target_groups(Names=["meet-web"])["TargetGroups"][0]  # the routers'
    return lb["LoadBalancerArn"].split(":loadbalancer/")[1], tg["TargetGroupArn"].split(":")[5]


def test_up_creates_topic_subscription_alarms_and_dashboard_as_designed(harness: Harness) -> None:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    assert {result.results[n].outcome for n in MONITORING_STEPS} == {Outcome.CREATED}

    sns = harness.client("sns")
    tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=TOPIC)["Tags"]}
    assert (tags["pcls:stack"], tags["pcls:step"]) == ("meet", "alarm-topic")
    assert _subscriptions(harness) == ["ops@example.com"]

    alarms = _alarms(harness)
    assert set(alarms) == ALARMS
    cw = harness.client("cloudwatch")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [TOPIC] and alarm["OKActions"] == [TOPIC]
        tags = cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {"Key": "pcls:step", "Value": "alarms"} in tags

    lb, tg = _suffixes(harness)
    # one alarm per signal shard, each on its own ECS service (named after the shard)
    for shard in ("shard-a", "shard-b"):
        signal = alarms[f"meet-signal-down-{shard}"]
        assert (signal["Namespace"], signal["MetricName"], signal["Statistic"]) == (
            "AWS/ECS",
            "CPUUtilization",
            "SampleCount",
        )
        assert _dims(signal) == {"ClusterName": "meet", "ServiceName": shard}
        periods = (signal["Period"], signal["EvaluationPeriods"], signal["DatapointsToAlarm"])
        assert periods == (60, 5, 5)
        assert (signal["ComparisonOperator"], signal["Threshold"]) == ("LessThanThreshold", 1.0)
        assert signal["TreatMissingData"] == "breaching"
        assert shard in signal["AlarmDescription"]

    unhealthy = alarms["meet-alb-unhealthy"]
    assert unhealthy["MetricName"] == "UnHealthyHostCount"
    assert _dims(unhealthy) == {"TargetGroup": tg, "LoadBalancer": lb}
    assert (unhealthy["ComparisonOperator"], unhealthy["Threshold"]) == ("GreaterThanThreshold", 0)

    cpu = alarms["meet-jvb-cpu-high"]
    assert _dims(cpu) == {"ClusterName": "meet", "ServiceName": "jvb"}
    assert (cpu["Statistic"], cpu["Threshold"], cpu["EvaluationPeriods"]) == ("Average", 85.0, 10)

    load = alarms["meet-jvb-load-high"]
    assert (load["Namespace"], load["MetricName"], _dims(load)) == (
        "pcls/Jitsi",
        "Participants",
        {"Stack": "meet"},
    )
    # 1.5 x the participants target, by default 15 per bridge vCPU: 1.5 x 15 x 1 vCPU
    want = 1.5 * config.TARGET_PER_VCPU * config.JvbSection().cpu / 1024
    assert (load["Statistic"], load["Threshold"]) == ("Average", want)

    errors = {q["Id"]: q for q in alarms["meet-alb-5xx"]["Metrics"]}
    assert errors["errors"]["Expression"] == "FILL(elb, 0) + FILL(target, 0)"
    assert errors["elb"]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_ELB_5XX_Count"
    assert errors["target"]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert errors["elb"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": lb}
    ]
    assert alarms["meet-alb-5xx"]["Threshold"] == 10.0

    pool = {q["Id"]: q for q in alarms["meet-jvb-at-max"]["Metrics"]}
    assert pool["bridges"]["Expression"] == "lines * 15 / 900"
    assert pool["lines"]["MetricStat"]["Stat"] == "SampleCount"
    assert pool["lines"]["MetricStat"]["Metric"]["MetricName"] == "Conferences"
    assert alarms["meet-jvb-at-max"]["Threshold"] == 3.5  # max_count 4

    # a bridge short of an XMPP shard: the guard's connected share, least connected bridge
    xmpp = alarms["meet-jvb-xmpp"]
    assert (xmpp["Namespace"], xmpp["MetricName"], _dims(xmpp)) == (
        "pcls/Jitsi",
        "XmppConnected",
        {"Stack": "meet"},
    )
    assert (xmpp["Statistic"], xmpp["Period"], xmpp["EvaluationPeriods"]) == ("Minimum", 60, 5)
    assert (xmpp["ComparisonOperator"], xmpp["Threshold"]) == ("LessThanThreshold", 1.0)
    assert xmpp["TreatMissingData"] == "notBreaching"  # no bridge, no line: not this alarm's case
    # bridges replaced in a loop: early stops (under 15 minutes up) summed over 30 minutes
    stops = alarms["meet-jvb-restarting"]
    assert (stops["MetricName"], stops["Statistic"], stops["Period"]) == ("EarlyStops", "Sum", 1800)
    assert (stops["ComparisonOperator"], stops["Threshold"], stops["EvaluationPeriods"]) == (
        "GreaterThanOrEqualToThreshold",
        3.0,
        1,
    )

    body = json.loads(cw.get_dashboard(DashboardName="meet")["DashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert "Bridge participants" in titles and "Alarms" in titles
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        a["AlarmArn"] for a in alarms.values()
    )
    graphs = [w["properties"] for w in body["widgets"] if w["type"] == "metric"]
    assert {g["region"] for g in graphs} == {"eu-central-1"}
    (signal_graph,) = [g for g in graphs if g["title"].startswith("Signal shards")]
    assert [m[5] for m in signal_graph["metrics"]] == ["shard-a", "shard-b"]

    again = harness.up()
    assert harness.writes() == {}
    assert {again.results[n].outcome for n in MONITORING_STEPS} == {Outcome.UNCHANGED}
    assert harness.calls()["calls"]["cloudwatch:DescribeAlarms"] == 1


def test_drift_on_alarms_and_dashboard_is_shown_and_restored(
    harness: Harness,
) -> None:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    assert harness.up().ok
    before = {name: _settings(a) for name, a in _alarms(harness).items()}
    cw = harness.client("cloudwatch")
    body = cw.get_dashboard(DashboardName="meet")["DashboardBody"]
    cw.delete_alarms(AlarmNames=["meet-signal-down-shard-b"])
    changed = {k: v for k, v in before["meet-jvb-cpu-high"].items() if v is not None}
    cw.put_metric_alarm(AlarmName="meet-jvb-cpu-high", **{**changed, "Threshold": 99.0})
    edited = {"widgets": [marker_widget("meet")]}  # edited by hand, the claim kept
    cw.put_dashboard(DashboardName="meet", DashboardBody=json.dumps(edited))
    cw.set_alarm_state(AlarmName="meet-alb-5xx", StateValue="ALARM", StateReason="test")

    status = harness.status()
    details = status.results["alarms"].details
    assert details["alarms"] == 8 and details["in_alarm"] == "meet-alb-5xx"
    # moto starts alarms OK (AWS: INSUFFICIENT_DATA, shown as "no data yet")
    assert details["bridges_xmpp"] == "every bridge connected"
    assert details["bridge_stops"] == "normal"
    assert status.results["alarm-topic"].details == {"email": "confirmed"}
    assert status.results["alarms"].outcome is Outcome.DRIFTED
    assert status.results["alarms"].drift == [
        "meet-signal-down-shard-b missing",
        "meet-jvb-cpu-high: Threshold 99.0 (want 85.0)",
    ]
    assert status.results["dashboard"].drift == ["body differs from config (1 widgets, want 11)"]

    fixed = harness.up()
    assert fixed.results["alarms"].outcome is Outcome.UPDATED
    assert fixed.results["dashboard"].outcome is Outcome.UPDATED
    assert harness.writes() == {"cloudwatch:PutMetricAlarm": 2, "cloudwatch:PutDashboard": 1}
    assert {name: _settings(a) for name, a in _alarms(harness).items()} == before
    assert json.loads(cw.get_dashboard(DashboardName="meet")["DashboardBody"]) == json.loads(body)
    restored = _alarms(harness)["meet-signal-down-shard-b"]["AlarmArn"]
    tags = cw.list_tags_for_resource(ResourceARN=restored)["Tags"]
    assert {"Key": "pcls:stack", "Value": "meet"} in tags


def test_status_shows_bridge_health_from_its_alarms(harness: Harness) -> None:
    assert harness.up().ok
    cw = harness.client("cloudwatch")
    cw.set_alarm_state(AlarmName="meet-jvb-xmpp", StateValue="ALARM", StateReason="test")
    cw.set_alarm_state(AlarmName="meet-jvb-restarting", StateValue="OK", StateReason="test")
    details = harness.status().results["alarms"].details
    assert details["bridges_xmpp"].startswith("a bridge lacks a shard since ")
    assert details["bridges_xmpp"].endswith(" UTC")
    assert details["bridge_stops"] == "normal"
    assert details["in_alarm"] == "meet-jvb-xmpp"
    cw.set_alarm_state(AlarmName="meet-jvb-xmpp", StateValue="OK", StateReason="test")
    cw.set_alarm_state(AlarmName="meet-jvb-restarting", StateValue="ALARM", StateReason="test")
    details = harness.status().results["alarms"].details
    assert details["bridges_xmpp"] == "every bridge connected"
    assert details["bridge_stops"].startswith("bridges keep stopping since ")


def test_status_names_the_shards_without_a_running_task(harness: Harness) -> None:
    assert harness.up().ok
    cw = harness.client("cloudwatch")
    details = harness.status().results["alarms"].details
    assert details["signal_shards"] == "every shard running"
    cw.set_alarm_state(AlarmName="meet-signal-down-shard-b", StateValue="ALARM", StateReason="t")
    details = harness.status().results["alarms"].details
    assert details["signal_shards"].startswith("no task in shard-b since ")
    assert details["in_alarm"] == "meet-signal-down-shard-b"
    cw.set_alarm_state(AlarmName="meet-signal-down-shard-a", StateValue="ALARM", StateReason="t")
    details = harness.status().results["alarms"].details
    assert details["signal_shards"].startswith("no task in shard-a since ")
    assert ", shard-b since " in details["signal_shards"]


def test_config_changes_move_the_subscription_and_the_alarm_set(harness: Harness) -> None:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    assert harness.up().ok
    # A pool with min = max is always at its maximum: that alarm goes.
    pool = "[jvb]\nmin_count = 2\nmax_count = 2\n"
    harness.write_config('[alerts]\nemail = "oncall@example.com"\n' + pool)
    changed = harness.up()
    assert changed.ok
    assert changed.results["alarm-topic"].outcome is Outcome.UPDATED
    assert _subscriptions(harness) == ["oncall@example.com"]
    assert set(_alarms(harness)) == ALARMS - {"meet-jvb-at-max"}
    assert changed.results["alarms"].drift == ["meet-jvb-at-max not in config"]

    harness.write_config(pool)
    assert harness.up().ok
    assert _subscriptions(harness) == []
    assert harness.writes() == {"sns:Unsubscribe": 1}


def test_teardown_removes_monitoring_and_scaling_even_when_aws_got_there_first(
    harness: Harness,
) -> None:
    harness.write_config(
        '[alerts]\nemail = "ops@example.com"\n[[scaling.schedule]]\nname = "night"\n'
        'cron = "cron(0 20 * * ? *)"\nmin_count = 0\nmax_count = 1\n'
    )
    assert harness.up().ok
    s = harness.session()
    aas = harness.client("application-autoscaling")
    target = {
        "ServiceNamespace": "ecs",
        "ResourceId": "service/meet/jvb",
        "ScalableDimension": "ecs:service:DesiredCount",
    }

    def gone_already(**_: Any) -> None:
        # As when deleting the ECS service has taken the target with it.
        aas.deregister_scalable_target(**target)

    s.aws.client("application-autoscaling").meta.events.register(
        "before-call.application-autoscaling.DeregisterScalableTarget", gone_already
    )
    result = runner.do_teardown(s)
    assert result.ok, (result.remaining, [r.detail for r in result.failures])
    for step in (*MONITORING_STEPS, "scaling-target", "scaling-policies", "scaling-schedule"):
        assert result.results[step].outcome is Outcome.DELETED, step

    cw = harness.client("cloudwatch")
    assert cw.describe_alarms()["MetricAlarms"] == []  # target tracking alarms went too
    assert cw.list_dashboards()["DashboardEntries"] == []
    assert harness.client("sns").list_topics()["Topics"] == []
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []
    assert aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"] == []

"""The ownership rule on the ECS, secrets and monitoring side: names are never proof.

Each case puts a resource with the very name pcls would use into the account, untagged or
tagged for another stack, and runs the CLI: `plan` and `up` stop with exit 2 before any write
and name the resource and the ways out; `teardown` leaves it alone; the resource is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pcls.steps.monitoring import EMAIL_TAG, email_digest
from tests.harness import CliResult, Harness

ACCOUNT = "123456789012"


def writes(err: str) -> dict[str, int]:
    """The write calls `--api-calls` reported (the JSON document ends stderr)."""
    doc = json.loads(err[err.rindex("\n{") + 1 :] if "\n{" in err else err[err.index("{") :])
    from pcls.aws import is_read

    return {k: n for k, n in doc["calls"].items() if not is_read(k.split(":", 1)[1])}


def run(h: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    return h.cli(*args, "--api-calls", capsys=capsys)


def foreign_topic(h: Harness) -> str:
    sns = h.client("sns")
    arn = sns.create_topic(Name="meet-alarms")["TopicArn"]
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="someone@example.org")
    return str(arn)


def foreign_parameter(h: Harness) -> str:
    h.client("ssm").put_parameter(
        Name="/pcls/meet/JVB_AUTH_PASSWORD", Value="theirs", Type="SecureString"
    )
    return "/pcls/meet/JVB_AUTH_PASSWORD"


def foreign_family(h: Harness) -> str:
    td = h.client("ecs").register_task_definition(
        family="meet-shard-a",  # the family of the first signal shard
        containerDefinitions=[{"name": "app", "image": "busybox", "memory": 64}],
        tags=[{"key": "pcls:stack", "value": "other"}, {"key": "pcls:step", "value": "x"}],
    )
    return str(td["taskDefinition"]["taskDefinitionArn"])


def foreign_log_group(h: Harness) -> str:
    h.client("logs").create_log_group(logGroupName="/pcls/meet", tags={"team": "video"})
    return "/pcls/meet"


def foreign_cluster(h: Harness) -> str:
    return str(h.client("ecs").create_cluster(clusterName="meet")["cluster"]["clusterArn"])


def foreign_alarm(h: Harness) -> str:
    h.client("cloudwatch").put_metric_alarm(
        AlarmName="meet-signal-down-shard-a",
        MetricName="CPUUtilization",
        Namespace="AWS/ECS",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="LessThanThreshold",
    )
    return "meet-signal-down-shard-a"


def foreign_dashboard(h: Harness) -> str:
    h.client("cloudwatch").put_dashboard(
        DashboardName="meet", DashboardBody=json.dumps({"widgets": []})
    )
    return "meet"


CASES: dict[str, tuple[str, Callable[[Harness], str]]] = {
    "sns-topic": ("alarm-topic", foreign_topic),
    "ssm-parameter": ("secrets", foreign_parameter),
    "task-definition-family": ("taskdef-signal", foreign_family),
    "log-group": ("log-group", foreign_log_group),
    "ecs-cluster": ("cluster", foreign_cluster),
    "alarm": ("alarms", foreign_alarm),
    "dashboard": ("dashboard", foreign_dashboard),
}


def snapshot(h: Harness) -> dict[str, Any]:
    """What the foreign resources look like, read with plain describe calls."""
    sns, ssm, ecs, logs, cw = (h.client(s) for s in ("sns", "ssm", "ecs", "logs", "cloudwatch"))
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    out: dict[str, Any] = {
        "topics": {
            t: (
                sorted(
                    s["Endpoint"]
                    for s in sns.list_subscriptions_by_topic(TopicArn=t)["Subscriptions"]
                ),
                sns.list_tags_for_resource(ResourceArn=t)["Tags"],
            )
            for t in topics
        },
        "parameters": {
            p["Name"]: str(p["LastModifiedDate"]) for p in ssm.describe_parameters()["Parameters"]
        },
        "families": ecs.list_task_definitions()["taskDefinitionArns"],
        "clusters": ecs.list_clusters()["clusterArns"],
        "groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]],
        "alarms": {a["AlarmName"]: a["Threshold"] for a in cw.describe_alarms()["MetricAlarms"]},
        "dashboards": [d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]],
    }
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resource_with_pcls_s_name_stops_plan_and_up_before_any_write(
    harness: Harness, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    step, make = CASES[case]
    rid = make(harness)
    before = snapshot(harness)

    for command in ("plan", "up"):
        seen = run(harness, capsys, command)
        assert seen.code == 2, (command, seen.out, seen.err)
        assert writes(seen.err) == {}, command
        assert f"{step}: " in seen.err and rid in seen.err, seen.err
        assert "rename the stack" in seen.err, seen.err
        # Another stack's resource is never offered for adoption; an untagged one is.
        assert (f"pcls adopt {step} " in seen.err) == ("belongs to stack" not in seen.err)
    assert not harness.ledger_path.exists()  # a refused run leaves no ledger behind

    gone = run(harness, capsys, "teardown", "--yes")
    assert gone.code == 0, gone.err
    assert rid in gone.out + gone.err  # named as left alone
    assert snapshot(harness) == before


def test_teardown_of_a_deployed_stack_deletes_only_its_own_revisions_and_parameters(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.up().ok
    ecs, ssm, sns = harness.client("ecs"), harness.client("ssm"), harness.client("sns")
    # Somebody registers a revision into the stack's family by hand, keeps a parameter of
    # their own under the stack's path and subscribes to its alarm topic.
    theirs = ecs.register_task_definition(
        family="meet-jvb",
        containerDefinitions=[{"name": "debug", "image": "busybox", "memory": 64}],
    )["taskDefinition"]["taskDefinitionArn"]
    ssm.put_parameter(Name="/pcls/meet/NOTES", Value="hello", Type="String")
    topic = json.loads(harness.ledger_path.read_text())["steps"]["alarm-topic"]["id"]
    sub = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="watcher@example.org")

    status = harness.status()
    # Their revision is the family's newest now: drift, and pcls's own content goes on top.
    assert status.results["taskdef-jvb"].drift == [
        "newer revision meet-jvb:2 not pcls's: new revision"
    ]
    assert status.results["alarm-topic"].drift == []  # their subscription is not drift

    gone = harness.teardown()
    assert not gone.failures or all(r.step != "secrets" for r in gone.failures)
    assert ecs.describe_task_definition(taskDefinition=theirs)["taskDefinition"]["status"] == (
        "ACTIVE"
    )
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    assert names == ["/pcls/meet/NOTES"]
    del sub


def test_a_changed_address_drops_only_the_subscription_pcls_made(harness: Harness) -> None:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    assert harness.up().ok
    sns = harness.client("sns")
    topic = json.loads(harness.ledger_path.read_text())["steps"]["alarm-topic"]["id"]
    tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=topic)["Tags"]}
    assert tags[EMAIL_TAG] == email_digest("ops@example.com")
    for arn in [
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    ]:
        sns.confirm_subscription(TopicArn=topic, Token=arn.rsplit(":", 1)[-1])
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="watcher@example.org")

    harness.write_config('[alerts]\nemail = "oncall@example.com"\n')
    changed = harness.up()
    assert changed.ok
    endpoints = sorted(
        s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    )
    assert endpoints == ["oncall@example.com", "watcher@example.org"]
    assert harness.writes().get("sns:Unsubscribe") == 1

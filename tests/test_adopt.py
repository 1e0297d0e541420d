"""`pcls adopt STEP ID`: the one way a resource in the stack's way becomes the stack's."""

from __future__ import annotations

import json

import pytest

from tests.harness import Harness
from tests.test_ownership_platform import run, writes


def _topic_tags(h: Harness, arn: str) -> dict[str, str]:
    tags = h.client("sns").list_tags_for_resource(ResourceArn=arn)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def test_adopting_an_untagged_topic_tags_it_after_confirmation_and_up_then_uses_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    sns = harness.client("sns")
    arn = sns.create_topic(Name="meet-alarms", Tags=[{"Key": "team", "Value": "video"}])["TopicArn"]
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="someone@example.org")
    assert run(harness, capsys, "plan").code == 2

    adopted = run(harness, capsys, "adopt", "alarm-topic", arn, "--yes")
    assert adopted.code == 0, adopted.err
    assert "tag pcls:stack = 'meet' (new)" in adopted.out
    assert "tag pcls:step = 'alarm-topic' (new)" in adopted.out
    assert _topic_tags(harness, arn) == {
        "team": "video",
        "pcls:stack": "meet",
        "pcls:step": "alarm-topic",
    }
    done = writes(adopted.err)
    assert done.pop("sns:TagResource") == 1
    assert set(done) <= {"ssm:PutParameter", "ssm:DeleteParameter"}  # the run lock only

    planned = run(harness, capsys, "plan")
    assert planned.code == 0, planned.err
    assert harness.up().ok
    steps = json.loads(harness.ledger_path.read_text())["steps"]
    assert steps["alarm-topic"]["id"] == arn
    subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subs] == ["someone@example.org"]  # theirs, kept


def test_another_stacks_resource_is_never_adopted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = harness.client("sns").create_topic(
        Name="meet-alarms",
        Tags=[{"Key": "pcls:stack", "Value": "meet-2"}, {"Key": "pcls:step", "Value": "x"}],
    )["TopicArn"]
    refused = run(harness, capsys, "adopt", "alarm-topic", arn, "--yes")
    assert refused.code == 2
    assert "belongs to stack 'meet-2'" in refused.err
    assert "another stack's resource is never adopted" in refused.err
    assert writes(refused.err) == {}
    assert _topic_tags(harness, arn)["pcls:stack"] == "meet-2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no-such-step", "x"), "adopt: no step 'no-such-step' in this stack; expected one of"),
        (("alarm-topic", "arn:aws:sns:eu-central-1:123456789012:other"), "is not in the way"),
    ],
)
def test_adopt_refuses_what_is_not_a_collision(
    harness: Harness, capsys: pytest.CaptureFixture[str], args: tuple[str, str], message: str
) -> None:
    harness.client("sns").create_topic(Name="other")
    refused = run(harness, capsys, "adopt", *args, "--yes")
    assert refused.code == 2
    assert message in refused.err
    assert writes(refused.err) == {}
    assert not harness.ledger_path.exists()


def test_adopt_without_a_terminal_or_yes_changes_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = harness.client("sns").create_topic(Name="meet-alarms")["TopicArn"]
    refused = run(harness, capsys, "adopt", "alarm-topic", arn)
    assert refused.code == 2
    assert "not a terminal; pass --yes" in refused.err
    assert writes(refused.err) == {}
    assert "pcls:stack" not in _topic_tags(harness, arn)

"""The operator policy as reviewed: the statements of `pcls iam-policy` (one stack, every stack,
another partition) and the boundary, compared with tests/data/operator-policy.json; and the
helpers around it (the caller's account and partition, packing under IAM's size limit).

After a deliberate change of a statement or of the boundary, run
`python -m tests.test_permissions_contract` to rewrite the data file, review its diff and commit
it with the change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from pcls import aws, permissions
from pcls.errors import ConfigError
from pcls.permissions import Target

SNAPSHOT = Path(__file__).parent / "data" / "operator-policy.json"
ACCOUNT = "123456789012"
TARGETS = {
    "one stack": Target(ACCOUNT, "meet", "eu-central-1", "aws", "meet.example.com"),
    "one stack, no domain": Target(ACCOUNT, "meet", "eu-central-1", "aws"),
    "every stack": Target(ACCOUNT, "", "*", "aws"),
    "china": Target(ACCOUNT, "meet", "cn-north-1", "aws-cn", "meet.example.cn"),
}


def current() -> dict[str, Any]:
    out: dict[str, Any] = {name: permissions.operator_policies(t) for name, t in TARGETS.items()}
    out["boundary"] = permissions.boundary_document(TARGETS["one stack"])
    return out


def by_sid(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {st["Sid"]: st for doc in docs for st in doc["Statement"]}


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_reviewed_statement_is_unchanged(name: str) -> None:
    """Statements added since are not checked here (review them, then refresh the file);
    one of the reviewed ones changed or gone fails. The reads: only that none is gone."""
    want = by_sid(json.loads(SNAPSHOT.read_text())[name])
    have = by_sid(current()[name])
    assert set(want) <= set(have), f"statements gone: {sorted(set(want) - set(have))}"
    assert set(want.pop("Read")["Action"]) <= set(have["Read"]["Action"])
    for sid, st in want.items():
        assert have[sid] == st, f"{sid} changed; see this module's docstring"
    order = [sid for sid in have if sid in want]
    assert order == list(want), "the reviewed statements are packed in another order"


def test_the_boundary_is_the_reviewed_one() -> None:
    assert current()["boundary"] == json.loads(SNAPSHOT.read_text())["boundary"]


def test_one_document_holds_every_statement_for_analysis() -> None:
    t = TARGETS["one stack"]
    doc = permissions.operator_policy(t)
    assert list(doc) == ["Version", "Statement"] and doc["Version"] == "2012-10-17"
    assert doc["Statement"] == [
        st for d in permissions.operator_policies(t) for st in d["Statement"]
    ]


def test_partitions() -> None:
    assert [permissions.partition_of(r) for r in ("cn-north-1", "us-gov-west-1", "eu-west-1")] == [
        "aws-cn",
        "aws-us-gov",
        "aws",
    ]
    assert permissions.partition_of("us-east-1") == "aws"


def test_the_boundary_needs_a_stack_and_its_region() -> None:
    for t in (Target(ACCOUNT, "", "eu-west-1"), Target(ACCOUNT, "meet", "*"), Target(ACCOUNT)):
        with pytest.raises(ConfigError) as err:
            permissions.boundary_document(t)
        assert str(err.value) == (
            "--boundary: needs the stack's region (stack.region or AWS_REGION)"
        )


def test_allowed_actions() -> None:
    actions = permissions.allowed_actions()
    assert "iam:PassRole" in actions and "ec2:CreateVpc" in actions
    assert "iam:CreatePolicyVersion" not in actions  # only ever denied
    assert all(":" in a for a in actions)
    assert permissions.allowed_actions("meet") == actions


class Recorded:
    made: list[tuple[Any, ...]] = []
    answer: Any = {"account": "210987654321", "arn": "arn:aws-cn:sts::210987654321:user/x"}

    def __init__(self, region: Any, *, endpoint_url: Any = None, sandbox: Any = False) -> None:
        Recorded.made.append((region, endpoint_url, sandbox))

    def identity(self) -> dict[str, str]:
        if isinstance(Recorded.answer, Exception):
            raise Recorded.answer
        return Recorded.answer


def test_the_callers_account_and_partition_come_from_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "Aws", Recorded)
    Recorded.made = []
    Recorded.answer = {"account": "210987654321", "arn": "arn:aws-cn:sts::210987654321:user/x"}
    assert permissions.caller_account("cn-north-1", "http://127.0.0.1:1", True) == (
        "210987654321",
        "aws-cn",
    )
    monkeypatch.delenv("AWS_REGION", raising=False)
    permissions.caller_account("*", None, False)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    permissions.caller_account("*", None, False)
    assert Recorded.made == [
        ("cn-north-1", "http://127.0.0.1:1", True),
        ("us-east-1", None, False),
        ("ap-south-1", None, False),
    ]


def test_no_account_from_sts_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "Aws", Recorded)
    Recorded.answer = ConfigError("AWS credentials: none found")
    with pytest.raises(ConfigError) as err:
        permissions.caller_account("eu-west-1", None, False)
    assert str(err.value) == (
        "--account: not given, and STS cannot tell the account (AWS credentials: none found); "
        "pass --account 123456789012"
    )
    Recorded.answer = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "no sts"}}, "GetCallerIdentity"
    )
    with pytest.raises(ConfigError) as err:
        permissions.caller_account("eu-west-1", None, False)
    assert "(AccessDenied: no sts)" in str(err.value)


def test_statements_are_packed_in_order_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def st(sid: str, n: int) -> dict[str, Any]:
        return {"Sid": sid, "Effect": "Allow", "Action": ["x:" + "a" * n], "Resource": "*"}

    one = permissions.size({"Version": permissions.VERSION, "Statement": [st("A", 10)]})
    both = permissions.size({"Version": permissions.VERSION, "Statement": [st("A", 10)] * 2})
    monkeypatch.setattr(
        permissions, "statements", lambda t: [st("A", 10), st("B", 10), st("C", 10)]
    )
    monkeypatch.setattr(permissions, "MAX_POLICY_CHARS", both)  # two fit exactly, not three
    docs = permissions.operator_policies(TARGETS["one stack"])
    assert [[s["Sid"] for s in d["Statement"]] for d in docs] == [["A", "B"], ["C"]]
    assert all(d["Version"] == "2012-10-17" for d in docs)
    monkeypatch.setattr(permissions, "MAX_POLICY_CHARS", one)
    docs = permissions.operator_policies(TARGETS["one stack"])
    assert [[s["Sid"] for s in d["Statement"]] for d in docs] == [["A"], ["B"], ["C"]]
    monkeypatch.setattr(permissions, "MAX_POLICY_CHARS", one - 1)
    with pytest.raises(ValueError) as err:
        permissions.operator_policies(TARGETS["one stack"])
    assert str(err.value) == f"statement A alone exceeds {one - 1} characters"


if __name__ == "__main__":  # rewrite the snapshot after a reviewed change of the policy
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=False) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)


def test_iam_actions_of_calls() -> None:
    assert permissions.iam_action("elbv2", "CreateRule") == "elasticloadbalancing:CreateRule"
    assert permissions.iam_action("service-quotas", "GetServiceQuota") == (
        "servicequotas:GetServiceQuota"
    )
    assert permissions.iam_action("ecs", "CreateCluster") == "ecs:CreateCluster"
    for op in permissions.BUDGETS_VIEW:
        assert permissions.iam_action("budgets", op) == "budgets:ViewBudget"
    for op in permissions.BUDGETS_MODIFY:
        assert permissions.iam_action("budgets", op) == "budgets:ModifyBudget"
    assert permissions.iam_action("budgets", "TagResource") == "budgets:TagResource"

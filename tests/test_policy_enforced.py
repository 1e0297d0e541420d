"""The operator policy, enforced: a full lifecycle as an IAM user holding exactly that policy.

moto evaluates the user's policies for every request (tests/iam_enforcement.py makes it name
each request's resources, check iam:PassRole and use CloudWatch's IAM prefix). What moto does
not evaluate are conditions: the tag conditions, iam:PermissionsBoundary, iam:PassedToService
and the record-name condition are checked by shape in tests/test_permissions.py. Here: the
policy lets pcls plan, create, check, repair and tear down a stack (the boundary made once by
an administrator), and the same user is refused what belongs to no stack of its own.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import pytest
from moto.core.authorization import disable_iam_authentication, enable_iam_authentication

from pcls.engine import Engine
from pcls.permissions import Target, operator_policies, statements
from pcls.steps import iam
from tests.conftest import DOMAIN, REGION
from tests.harness import Harness
from tests.iam_enforcement import enforcing

ACCOUNT = "123456789012"
USER = "pcls-operator"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/pcls/meet-boundary"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
)
DENIED = ("AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation")


@dataclass
class Operator:
    harness: Harness
    key: dict[str, str]
    allowed: list[tuple[str, str]]  # (action, resource ARN) moto checked and allowed

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            aws_access_key_id=self.key["AccessKeyId"],
            aws_secret_access_key=self.key["SecretAccessKey"],
        )

    def admin(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _make_user(harness: Harness) -> dict[str, str]:
    client = harness.client("iam")
    client.create_user(UserName=USER)
    target = Target(ACCOUNT, "meet", REGION, domain=DOMAIN)
    for n, doc in enumerate(operator_policies(target), start=1):
        arn = client.create_policy(PolicyName=f"pcls-meet-{n}", PolicyDocument=json.dumps(doc))
        client.attach_user_policy(UserName=USER, PolicyArn=arn["Policy"]["Arn"])
    return client.create_access_key(UserName=USER)["AccessKey"]


def _administrator_makes_the_boundary(harness: Harness) -> None:
    session = harness.session()
    boundary = [s for s in session.engine.steps.values() if s.name == iam.BOUNDARY_STEP]
    result = Engine(session.ctx, boundary).up()
    assert result.ok, [r.detail for r in result.failures]


def _as_operator(monkeypatch: pytest.MonkeyPatch, key: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # an IAM user's keys have none


@pytest.fixture
def operator(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[Operator]:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    key = _make_user(harness)
    _administrator_makes_the_boundary(harness)
    _as_operator(monkeypatch, key)
    with enforcing(ACCOUNT, REGION) as allowed, enable_iam_authentication():
        yield Operator(harness, key, allowed)


def _refused(call: Any, **kwargs: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(**kwargs)
    code = str(exc.value.response.get("Error", {}).get("Code", ""))
    assert code in DENIED, exc.value
    return code


def _drift_behind_pcls(op: Operator) -> None:
    """An administrator changes two things; the operator's next up must repair them."""
    with disable_iam_authentication():
        ec2 = op.admin("ec2")
        sg = ec2.describe_security_groups(
            Filters=[{"Name": "tag:pcls:step", "Values": ["sg-jvb"]}]
        )["SecurityGroups"][0]
        ec2.revoke_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=sg["IpPermissions"])
        cw = op.admin("cloudwatch")
        cw.delete_alarms(AlarmNames=[a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]])
        role = op.admin("iam")
        role.delete_role_permissions_boundary(RoleName="meet-jvb-task")


def _lifecycle(op: Operator, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """plan, up, status, drift, status, repair, plan, status, sleep, status, wake, teardown: all
    through the CLI (so the run lock in SSM is taken and released too), all as the operator."""
    h = op.harness

    def cli(*args: str, code: int = 0) -> str:
        result = h.cli(*args, capsys=capsys)
        assert result.code == code, (args, result.out[-1500:], result.err[-1500:])
        return result.out

    cli("plan")
    cli("up")
    cli("status")
    _drift_behind_pcls(op)
    drifted = json.loads(cli("status", "--json", code=3))
    h.write_config('[jitsi]\nimage_tag = "stable-11031"\n')  # also drops the subscription
    cli("up")
    cli("plan")
    cli("status")
    cli("sleep")
    cli("status")
    _routers_serve(op)
    cli("wake")
    cli("teardown", "--yes")
    return {r["step"]: r for r in drifted["resources"]}


def _routers_serve(op: Operator) -> None:
    """What ECS does on AWS once the shards run again: their routers become targets."""
    with disable_iam_authentication():
        elbv2 = op.admin("elbv2")
        (tg,) = elbv2.describe_target_groups(Names=["meet-web"])["TargetGroups"]
        targets = [{"Id": f"10.0.{i}.10", "Port": 8080} for i in range(2)]
        elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=targets)


def test_a_full_lifecycle_needs_nothing_beyond_the_policy(
    operator: Operator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lifecycle runs as a user holding exactly the policy; then every scope of the policy
    is checked against what that lifecycle used (one lifecycle for both: it is the suite's
    slowest run)."""
    drifted = _lifecycle(operator, capsys)
    _every_scope_is_one_pcls_really_uses(operator)
    assert drifted["role-jvb"]["drift"] == ["permissions boundary missing"]
    with disable_iam_authentication():
        iam_client = operator.admin("iam")
        assert not iam_client.list_policies(Scope="Local", PathPrefix="/pcls/")["Policies"]
        assert not [r for r in iam_client.list_roles()["Roles"] if r["Path"] == "/pcls/"]
    writes = {a for a, _ in operator.allowed}
    assert {"iam:CreateRole", "iam:PassRole", "elasticloadbalancing:DeleteLoadBalancer"} <= writes
    assert "ssm:PutParameter" in writes and "ssm:DeleteParameter" in writes  # the run lock


def _other_stacks_load_balancer(op: Operator) -> str:
    with disable_iam_authentication():
        ec2 = op.admin("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
        subnets = []
        for n, zone in enumerate(zones[:2]):
            made = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=zone)
            subnets.append(made["Subnet"]["SubnetId"])
        tags = [{"Key": "pcls:stack", "Value": "other"}]
        lb = op.admin("elbv2").create_load_balancer(Name="other-alb", Subnets=subnets, Tags=tags)
        return str(lb["LoadBalancers"][0]["LoadBalancerArn"])


def test_the_same_user_is_refused_what_is_not_its_stacks(operator: Operator) -> None:
    h = operator.harness
    assert h.up().ok
    with disable_iam_authentication():
        admin = operator.admin("iam")
        admin.create_role(RoleName="other-execution", Path="/pcls/", AssumeRolePolicyDocument=TRUST)
        admin.create_role(RoleName="ci-deployer", AssumeRolePolicyDocument=TRUST)
        other = admin.get_role(RoleName="ci-deployer")["Role"]["Arn"]
    lb = _other_stacks_load_balancer(operator)
    client = operator.client("iam")
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    )

    # A role under another name, even under pcls's path and with the stack's boundary.
    for name, path in (("meet-admin", "/pcls/"), ("other-execution2", "/pcls/"), ("x", "/")):
        _refused(
            client.create_role,
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=TRUST,
            PermissionsBoundary=BOUNDARY,
        )
    # Inline policies, trust and managed policies of roles that are not the stack's.
    for role in ("other-execution", "ci-deployer"):
        _refused(client.put_role_policy, RoleName=role, PolicyName="x", PolicyDocument=document)
        _refused(client.update_assume_role_policy, RoleName=role, PolicyDocument=TRUST)
    # Nothing widens a role of the stack or its boundary.
    admin_policy = "arn:aws:iam::aws:policy/AdministratorAccess"
    _refused(client.attach_role_policy, RoleName="meet-execution", PolicyArn=admin_policy)
    _refused(client.delete_role_permissions_boundary, RoleName="meet-execution")
    _refused(client.create_policy_version, PolicyArn=BOUNDARY, PolicyDocument=document)
    _refused(client.set_default_policy_version, PolicyArn=BOUNDARY, VersionId="v1")
    _refused(client.create_policy, PolicyName="mine", PolicyDocument=document)
    _refused(client.create_access_key, UserName=USER)
    # Another stack's load balancer, and a task definition passing a role that is not the stack's.
    _refused(operator.client("elbv2").delete_load_balancer, LoadBalancerArn=lb)
    _refused(
        operator.client("ecs").register_task_definition,
        family="meet-jvb",
        taskRoleArn=other,
        containerDefinitions=[{"name": "x", "image": "busybox", "memory": 128}],
    )
    # ... while its own stack is still fully manageable.
    assert h.status().ok
    assert h.teardown().ok


def test_a_first_up_without_the_boundary_names_the_administrator(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _make_user(harness)
    _as_operator(monkeypatch, key)
    with enforcing(ACCOUNT, REGION), enable_iam_authentication():
        result = harness.up()
    failure = result.results[iam.BOUNDARY_STEP]
    assert failure.error is not None
    text = str(failure.error)
    assert "administrator" in text and BOUNDARY in text and "pcls iam-policy --boundary" in text
    assert {r.step for r in result.failures} == {iam.BOUNDARY_STEP}


# Statement resources no lifecycle touches (each must stay untouched), and why they are there.
R = f"{REGION}:{ACCOUNT}"
UNTOUCHED = {
    ("NetworkRules", f"arn:aws:ec2:{R}:security-group-rule/*"): "a rule EC2 names once made",
    ("ScalingCreate", f"arn:aws:application-autoscaling:{R}:scalable-target/*"): (
        "a scalable target's ARN carries an id only Application Auto Scaling knows"
    ),
    ("ScalingOwn", f"arn:aws:application-autoscaling:{R}:scalable-target/*"): "the same",
    ("LogGroupCreate", f"arn:aws:logs:{R}:log-group:/pcls/meet:*"): (
        "the form with :* that CloudWatch Logs authorizes some calls against"
    ),
    ("LogGroupOwn", f"arn:aws:logs:{R}:log-group:/pcls/meet:*"): "the same",
    ("LogGroupCreate", f"arn:aws:logs:{R}:log-group:/aws/lambda/meet-wake:*"): "the same",
    ("LogGroupOwn", f"arn:aws:logs:{R}:log-group:/aws/lambda/meet-wake:*"): "the same",
    ("ScalingAlarms", f"arn:aws:cloudwatch:{R}:alarm:TargetTracking-service/meet/*"): (
        "target tracking makes these alarms, not pcls"
    ),
    ("BoundaryTags", BOUNDARY): "only when the boundary's tags drift or it is adopted",
    ("Zones", "arn:aws:route53:::hostedzone/*"): "the zone exists (no dns.create_zone)",
    ("ServiceLinkedRoles", "*"): "moto makes no service-linked role through the caller",
    ("BridgeProtection", f"arn:aws:ecs:{R}:task/meet/*"): "moto runs no task to unprotect",
    ("EcsOwn", f"arn:aws:ecs:{R}:task-definition/meet-signal:*"): (
        "v1's single signal family, deleted only when an upgraded stack retires it"
    ),
    ("LoadBalancerOwn", f"arn:aws:elasticloadbalancing:{R}:listener-rule/app/meet-alb/*"): (
        "only when a listener's forward rule drifts (its create names the listener)"
    ),
    # The budget guard exists only with alerts.monthly_budget; the lifecycle runs the default.
    ("BudgetRead", f"arn:aws:budgets::{ACCOUNT}:budget/pcls-meet"): "no budget by default",
    ("BudgetWrite", f"arn:aws:budgets::{ACCOUNT}:budget/pcls-meet"): "the same",
    ("BudgetTags", f"arn:aws:budgets::{ACCOUNT}:budget/pcls-meet"): "the same",
}


def _every_scope_is_one_pcls_really_uses(operator: Operator) -> None:
    """Each (action, ARN) moto allowed in the lifecycle matches a statement naming that action;
    and each ARN pattern of a statement matches some ARN the lifecycle used, so a scope that
    points at the wrong name or path fails here even if nothing is denied."""
    used = operator.allowed
    assert len(used) > 80
    policy = statements(Target(ACCOUNT, "meet", REGION, domain=DOMAIN))
    for action, arn in used:
        assert any(
            action in s["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in _list(s["Resource"]))
            for s in policy
            if s["Effect"] == "Allow"
        ), (action, arn)
    unused = set()
    for s in policy:
        if s["Effect"] != "Allow":
            continue
        for pattern in _list(s["Resource"]):
            if pattern != "*" and not any(
                a in s["Action"] and fnmatch.fnmatchcase(arn, pattern) for a, arn in used
            ):
                unused.add((s["Sid"], "*" if s["Sid"] == "ServiceLinkedRoles" else pattern))
    assert unused == set(UNTOUCHED), sorted(unused ^ set(UNTOUCHED))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]

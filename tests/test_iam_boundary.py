"""The permissions boundary step and the roles under it: created, repaired, owned, torn down."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pcls.aws import tags_of
from pcls.engine import Resource
from pcls.steps import iam
from tests.harness import Harness

ACCOUNT = "123456789012"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/pcls/meet-boundary"
ROLES = ("meet-execution", "meet-signal-task", "meet-jvb-task")
TASKS = {"Service": "ecs-tasks.amazonaws.com"}
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": TASKS, "Action": "sts:AssumeRole"}],
    }
)
WIDE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _document(client: Any) -> Any:
    version = client.get_policy(PolicyArn=BOUNDARY)["Policy"]["DefaultVersionId"]
    return client.get_policy_version(PolicyArn=BOUNDARY, VersionId=version)["PolicyVersion"][
        "Document"
    ]


def test_up_makes_the_boundary_first_and_every_role_under_it(harness: Harness) -> None:
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    client = harness.client("iam")
    policy = client.get_policy(PolicyArn=BOUNDARY)["Policy"]
    assert policy["Path"] == "/pcls/"
    tags = tags_of(client.list_policy_tags(PolicyArn=BOUNDARY)["Tags"])
    assert tags["pcls:stack"] == "meet" and tags["pcls:step"] == iam.BOUNDARY_STEP
    scope = iam.stack_scope("aws", harness.region, ACCOUNT, "meet")
    assert iam.canonical(_document(client)) == iam.canonical(iam.boundary_policy(scope))
    for name in ROLES:
        role = client.get_role(RoleName=name)["Role"]
        assert role["Path"] == "/pcls/" and role["Arn"].endswith(f":role/pcls/{name}")
        assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    ledger = json.loads(harness.ledger_path.read_text())
    assert str(ledger["steps"][iam.BOUNDARY_STEP]["id"]) == BOUNDARY
    again = harness.up()
    assert again.ok and not harness.writes()  # nothing to do: not even the boundary


def test_a_changed_boundary_is_restored_and_old_versions_make_room(harness: Harness) -> None:
    assert harness.up().ok
    client = harness.client("iam")
    wide = WIDE
    for _ in range(4):  # five versions: IAM's maximum
        client.create_policy_version(
            PolicyArn=BOUNDARY, PolicyDocument=json.dumps(wide), SetAsDefault=True
        )
    assert harness.status().results[iam.BOUNDARY_STEP].drift == ["document differs"]
    repaired = harness.up()
    assert repaired.ok and repaired.results[iam.BOUNDARY_STEP].drift == ["document differs"]
    assert iam.canonical(_document(client)) != iam.canonical(wide)
    assert len(client.list_policy_versions(PolicyArn=BOUNDARY)["Versions"]) == 5
    down = harness.teardown()
    assert down.ok, ([r.detail for r in down.failures], down.remaining)
    assert not client.list_policies(Scope="Local", PathPrefix="/pcls/")["Policies"]


def test_a_role_that_lost_its_boundary_gets_it_back_before_its_policies(harness: Harness) -> None:
    assert harness.up().ok
    client = harness.client("iam")
    client.delete_role_permissions_boundary(RoleName="meet-execution")
    client.delete_role_policy(RoleName="meet-execution", PolicyName="logs-and-secrets")
    repaired = harness.up()
    assert repaired.results["role-execution"].drift == [
        "permissions boundary missing",
        "inline policy logs-and-secrets missing",
    ]
    assert harness.last is not None
    order = [op for _, op in harness.last.aws.call_order if op.startswith("Put")]
    assert order.index("PutRolePermissionsBoundary") < order.index("PutRolePolicy")
    role = client.get_role(RoleName="meet-execution")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY


@pytest.mark.parametrize(
    ("path", "tags", "expect"),
    [
        ("/pcls/", [], "IAM role meet-jvb-task (meet-jvb-task) carries no pcls:stack tag"),
        (
            "/",
            [{"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": "role-jvb"}],
            "IAM role meet-jvb-task at path / (pcls's are under /pcls/)",
        ),
        (
            "/pcls/",
            [{"Key": "pcls:stack", "Value": "other"}],
            "belongs to stack 'other'",
        ),
    ],
    ids=["untagged", "outside-the-path", "another-stack"],
)
def test_a_role_with_the_name_that_is_not_the_stacks_stops_plan_and_up(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    path: str,
    tags: list[dict[str, str]],
    expect: str,
) -> None:
    client = harness.client("iam")
    client.create_role(
        RoleName="meet-jvb-task", Path=path, AssumeRolePolicyDocument=TRUST, Tags=tags
    )
    for command in ("plan", "up"):
        result = harness.cli(command, capsys=capsys)
        assert result.code == 2, (command, result.err)
        assert expect in result.err and "role-jvb" in result.err
    assert client.list_role_policies(RoleName="meet-jvb-task")["PolicyNames"] == []
    assert "PermissionsBoundary" not in client.get_role(RoleName="meet-jvb-task")["Role"]


def test_an_untagged_policy_with_the_boundarys_name_is_a_collision(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    client = harness.client("iam")
    client.create_policy(
        PolicyName="meet-boundary",
        Path="/pcls/",
        PolicyDocument=json.dumps(WIDE),
    )
    result = harness.cli("plan", capsys=capsys)
    assert result.code == 2 and f"IAM policy meet-boundary ({BOUNDARY})" in result.err
    assert not [r for r in client.list_roles()["Roles"] if r["RoleName"] in ROLES]


def test_ids_have_the_documented_form_and_tag_writes_the_steps_tags(harness: Harness) -> None:
    assert harness.up().ok
    session = harness.session()
    steps = {s.name: s for s in session.engine.steps.values() if s.kind.startswith("iam")}
    roles = {"role-execution", "role-signal", "role-jvb", iam.WAKE_ROLE_STEP}
    assert set(steps) == {iam.BOUNDARY_STEP, iam.SCHEDULE_ROLE_STEP, *roles}
    client = harness.client("iam")
    for step in steps.values():
        res = step.find(session.ctx)
        assert res is not None and re.fullmatch(step.id_pattern, res.id), (step.name, res)
    # What `pcls adopt` does once the operator confirms: the step's tags, nothing else.
    client.untag_role(RoleName="meet-execution", TagKeys=["pcls:stack", "pcls:step"])
    client.untag_policy(PolicyArn=BOUNDARY, TagKeys=["pcls:step"])
    steps["role-execution"].tag(session.ctx, Resource("meet-execution"))
    steps[iam.BOUNDARY_STEP].tag(session.ctx, Resource(BOUNDARY))
    role_tags = tags_of(client.list_role_tags(RoleName="meet-execution")["Tags"])
    assert role_tags == session.ctx.tag_dict("role-execution")
    policy_tags = tags_of(client.list_policy_tags(PolicyArn=BOUNDARY)["Tags"])
    assert policy_tags == session.ctx.tag_dict(iam.BOUNDARY_STEP)


def test_an_untagged_role_named_for_the_stack_can_be_adopted_then_gets_its_boundary(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    client = harness.client("iam")
    client.create_role(RoleName="meet-jvb-task", Path="/pcls/", AssumeRolePolicyDocument=TRUST)
    client.create_role(RoleName="meet-execution", AssumeRolePolicyDocument=TRUST)
    assert harness.cli("plan", capsys=capsys).code == 2
    adopted = harness.cli("adopt", "role-jvb", "meet-jvb-task", "--yes", capsys=capsys)
    assert adopted.code == 0, adopted.err
    tags = tags_of(client.list_role_tags(RoleName="meet-jvb-task")["Tags"])
    assert tags["pcls:stack"] == "meet" and tags["pcls:step"] == "role-jvb"
    # A role outside pcls's path is never adopted: out of the operator policy's reach.
    refused = harness.cli("adopt", "role-execution", "meet-execution", "--yes", capsys=capsys)
    assert refused.code == 2 and "nothing changed" in refused.err, refused.err
    assert not client.list_role_tags(RoleName="meet-execution")["Tags"]
    client.delete_role(RoleName="meet-execution")
    up = harness.cli("up", capsys=capsys)
    assert up.code == 0, up.err
    role = client.get_role(RoleName="meet-jvb-task")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    assert client.list_role_policies(RoleName="meet-jvb-task")["PolicyNames"] == ["task-protection"]

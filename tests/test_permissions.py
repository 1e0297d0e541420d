"""Least privilege: policies pcls writes pass parliament; iam-policy covers every call."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name
from parliament import analyze_policy_string

from pcls.__main__ import run
from pcls.permissions import allowed_actions, iam_action, operator_policy
from pcls.steps import iam
from tests.faults import on_every_client
from tests.harness import Harness

SERVICES = [
    *("acm", "application-autoscaling", "cloudwatch", "ec2", "ecs", "elbv2", "iam", "logs"),
    *("route53", "servicediscovery", "sns", "ssm", "sts"),
]


def _scope(auth_params: int = 3) -> iam.Scope:
    arns = tuple(
        f"arn:aws:ssm:eu-central-2:123456789012:parameter/pcls/meet/{n}"
        for n in ("JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD", "JWT_APP_SECRET")[:auth_params]
    )
    return iam.Scope("aws", "eu-central-2", "123456789012", "meet", "/pcls/meet", "meet", arns)


@pytest.mark.parametrize("params", [2, 3])
def test_every_policy_pcls_writes_passes_parliament(params: int) -> None:
    docs = iam.documents(_scope(params))
    assert docs, "no policies found"
    for role, spec in docs.items():
        for name, doc in {"trust": spec["trust"], **spec["inline"]}.items():
            findings = analyze_policy_string(json.dumps(doc)).findings
            if name == "trust":
                # parliament lints identity policies; a trust policy has a Principal and, by
                # definition, no Resource. Every other finding still fails the test.
                findings = [
                    f
                    for f in findings
                    if f.issue != "UNKNOWN_PRINCIPAL"
                    and not (f.issue == "MALFORMED" and "Resource" in str(f.detail))
                ]
            assert not findings, (role, name, [(f.issue, f.detail) for f in findings])


def test_operator_policy_names_only_real_actions() -> None:
    findings = analyze_policy_string(json.dumps(operator_policy("meet"))).findings
    # Describe calls take "*" by design; anything else (an unknown action) is a mistake.
    real = [f for f in findings if f.issue not in ("RESOURCE_STAR",)]
    assert not real, [(f.issue, f.detail) for f in real]


def _record(harness: Harness) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()

    def register(client) -> None:  # type: ignore[no-untyped-def]
        svc = client.meta.service_model.service_name

        def hook(model, **_):  # type: ignore[no-untyped-def]
            seen.add((svc, model.name))

        client.meta.events.register("before-call", hook)

    with on_every_client(register):
        harness.write_config(
            '[alerts]\nemail = "ops@example.com"\n'
            '[[scaling.schedule]]\nname = "night"\ncron = "cron(0 20 ? * MON-FRI *)"\n'
            "min_count = 0\nmax_count = 1\n"
        )
        assert harness.plan().results
        assert harness.up().ok
        ec2 = harness.client("ec2")
        sg = ec2.describe_security_groups(
            Filters=[{"Name": "tag:pcls:step", "Values": ["sg-jvb"]}]
        )["SecurityGroups"][0]
        ec2.revoke_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=sg["IpPermissions"])
        harness.client("cloudwatch").delete_alarms(
            AlarmNames=[
                a["AlarmName"]
                for a in harness.client("cloudwatch").describe_alarms()["MetricAlarms"]
            ]
        )
        harness.write_config('[jitsi]\nimage_tag = "stable-11031"\n')
        assert harness.up().ok  # repairs, removes the schedule and subscription, rolls the tag
        harness.status()
        assert harness.teardown().ok
    return seen


def test_iam_policy_covers_every_call_of_a_full_lifecycle(harness: Harness) -> None:
    seen = _record(harness)
    allowed = allowed_actions("meet")
    missing = sorted(iam_action(s, op) for s, op in seen if iam_action(s, op) not in allowed)
    assert not missing, missing
    assert len(seen) > 60  # the lifecycle really ran through every layer


def test_iam_policy_covers_every_client_method_in_the_code() -> None:
    session = botocore.session.get_session()
    by_method: dict[str, set[str]] = {}
    for svc in SERVICES:
        for op in session.get_service_model(svc).operation_names:
            by_method.setdefault(xform_name(op), set()).add(iam_action(svc, op))
    allowed = allowed_actions()
    root = Path(__file__).resolve().parent.parent / "pcls"
    uncovered = []
    for path in root.rglob("*.py"):
        if "sidecar" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            if name in by_method and not (by_method[name] & allowed) and name != "tags":
                uncovered.append(f"{path.name}: {name} -> {sorted(by_method[name])}")
    assert not uncovered, uncovered


def test_iam_policy_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "pcls.toml"
    cfg.write_text('[stack]\nname = "video"\ndomain = "v.example.org"\nregion = "eu-central-1"\n')
    assert run(["--config", str(cfg), "iam-policy"]) == 0
    doc = json.loads(capsys.readouterr().out)
    roles = next(s for s in doc["Statement"] if s["Sid"] == "StackRoles")
    assert roles["Resource"] == "arn:aws:iam::*:role/video-*"
    params = next(s for s in doc["Statement"] if s["Sid"] == "StackParameters")
    assert params["Resource"] == "arn:aws:ssm:eu-central-1:*:parameter/pcls/video/*"
    assert run(["--config", str(cfg), "iam-policy", "--any-stack"]) == 0
    assert "role/*-*" in capsys.readouterr().out

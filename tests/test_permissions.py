"""Least privilege: policies pcls writes pass parliament; iam-policy covers every call.

The operator policy's shape is checked here against the Service Authorization Reference as
parliament ships it (iam_definition.json): every action exists, every condition key is one the
action (or the resource types the statement names) supports, every ARN has a form the action
accepts. tests/test_policy_enforced.py runs the lifecycle as a user holding exactly the policy.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any

import botocore.session
import parliament
import pytest
from botocore import xform_name
from parliament import analyze_policy_string

from pcls.__main__ import run
from pcls.permissions import (
    DOCUMENTED_EXTRAS,
    MAX_POLICY_CHARS,
    Target,
    allowed_actions,
    iam_action,
    operator_policies,
    operator_policy,
    size,
    statements,
)
from pcls.steps import iam
from tests.faults import on_every_client
from tests.harness import Harness

ACCOUNT = "123456789012"
SERVICES = [
    *("account", "acm", "application-autoscaling", "cloudwatch", "ec2", "ecs", "elbv2", "iam"),
    *("logs", "route53", "service-quotas", "servicediscovery", "sns", "ssm", "sts"),
    *("lambda", "scheduler"),
]
ONE = Target(ACCOUNT, "meet", "eu-central-2", domain="meet.example.com")
ANY = Target(ACCOUNT)
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/pcls/meet-boundary"
TASK_ROLES = {
    f"arn:aws:iam::{ACCOUNT}:role/pcls/meet-{s}" for s in ("execution", "signal-task", "jvb-task")
}
ROLES = TASK_ROLES | {
    f"arn:aws:iam::{ACCOUNT}:role/pcls/meet-{s}" for s in ("wake", "wake-schedule")
}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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
            findings = [f for f in findings if not _other_listener_type(f)]
            assert not findings, (role, name, [(f.issue, f.detail) for f in findings])
    boundary = iam.boundary_policy(_scope(params))
    findings = analyze_policy_string(json.dumps(boundary)).findings
    findings = [f for f in findings if not _other_listener_type(f)]
    assert not findings, [(f.issue, f.detail) for f in findings]


def _other_listener_type(finding: Any) -> bool:
    """parliament reads ModifyListener's two resource types (listener/app, listener/net) as
    both required; an ALB listener's ARN is the one the wake function's role names."""
    if finding.issue != "RESOURCE_MISMATCH":
        return False
    return all("listener/net/" in str(d.get("required_format")) for d in finding.detail)


@pytest.mark.parametrize("params", [2, 3])
def test_the_boundary_allows_everything_the_roles_are_given(params: int) -> None:
    """A role's inline policy beyond its boundary would silently not work on AWS."""
    boundary = iam.boundary_policy(_scope(params))["Statement"]
    for role, spec in iam.documents(_scope(params)).items():
        for doc in spec["inline"].values():
            for st in doc["Statement"]:
                for action in _list(st["Action"]):
                    for resource in _list(st["Resource"]):
                        assert any(
                            action in _list(b["Action"])
                            and any(fnmatch.fnmatchcase(resource, r) for r in _list(b["Resource"]))
                            for b in boundary
                        ), (role, action, resource)


@pytest.mark.parametrize("target", [ONE, ANY], ids=["one-stack", "any-stack"])
def test_operator_policy_names_only_real_actions(target: Target) -> None:
    for doc in operator_policies(target):
        findings = analyze_policy_string(json.dumps(doc)).findings
        # "*" is by design where AWS offers no resource-level permission. parliament reads an
        # action's alternative resource types (listener/app or listener/net, hostedzone or
        # healthcheck) as all required; the test of ARN forms below checks each statement
        # names one its actions take.
        real = [f for f in findings if f.issue not in ("RESOURCE_STAR", "RESOURCE_MISMATCH")]
        assert not real, [(f.issue, f.detail) for f in real]


@pytest.mark.parametrize("target", [ONE, ANY], ids=["one-stack", "any-stack"])
def test_operator_policy_fits_iams_size_limit(target: Target) -> None:
    docs = operator_policies(target)
    assert all(size(d) <= MAX_POLICY_CHARS for d in docs), [size(d) for d in docs]
    assert len(docs) <= 10  # IAM's default quota of managed policies per user or role
    # Packing keeps every statement exactly once, in order.
    assert [s for d in docs for s in d["Statement"]] == statements(target)
    sids = [s["Sid"] for s in statements(target)]
    assert len(sids) == len(set(sids))


# -- the Service Authorization Reference, as parliament ships it ---------------------------------

_SAR_PATH = Path(parliament.__file__).parent / "iam_definition.json"


def _sar() -> dict[str, dict[str, Any]]:
    return {s["prefix"]: s for s in json.loads(_SAR_PATH.read_text())}


def _arn_glob(arn_format: str) -> str:
    """A documented ARN format (arn:${Partition}:...:${Id}) as an fnmatch pattern."""
    out, i = "", 0
    while i < len(arn_format):
        if arn_format.startswith("${", i):
            i = arn_format.index("}", i) + 1
            out += "*"
        else:
            out += arn_format[i]
            i += 1
    return out


def _resource_types(sar: dict[str, Any], action: str) -> list[tuple[str, str, list[str]]]:
    """(resource type, ARN glob, condition keys) of every resource type the action takes."""
    prefix, name = action.split(":")
    svc = sar[prefix]
    priv = next(p for p in svc["privileges"] if p["privilege"] == name)
    by_name = {r["resource"]: r for r in svc["resources"]}
    out = []
    for rt in priv["resource_types"]:
        rname = rt["resource_type"].rstrip("*")
        if not rname:
            continue
        r = by_name[rname]
        out.append((rname, _arn_glob(r["arn"]), list(r["condition_keys"]) + rt["condition_keys"]))
    return out


def _action_keys(sar: dict[str, Any], action: str) -> list[str]:
    prefix, name = action.split(":")
    priv = next(p for p in sar[prefix]["privileges"] if p["privilege"] == name)
    return [
        k for rt in priv["resource_types"] if not rt["resource_type"] for k in rt["condition_keys"]
    ]


def _key_supported(key: str, supported: list[str]) -> bool:
    return any(
        key == k or (k.endswith("${TagKey}") and key.startswith(k[: -len("${TagKey}")]))
        for k in supported
    )


def _arn_overlaps(pattern: str, arn_glob: str) -> bool:
    """Could a real ARN match both? Compared service and resource part, globbing both ways."""
    p, a = pattern.split(":", 5), arn_glob.split(":", 5)
    if len(p) < 6 or len(a) < 6 or p[2] != a[2]:
        return False
    rp, ra = p[5], a[5]
    head_p, head_a = rp.split("*")[0], ra.split("*")[0]
    return head_p.startswith(head_a) or head_a.startswith(head_p)


# Statements whose Resource is "*" although the action takes a resource type: why.
STAR_BY_DESIGN = {
    # Cloud Map's CreateService names the namespace (the stack's) and a service that does not
    # exist yet; aws:RequestTag scopes it.
    ("CloudMapCreate", "servicediscovery:CreateService"),
}


@pytest.mark.parametrize("target", [ONE, ANY], ids=["one-stack", "any-stack"])
def test_conditions_and_arns_are_ones_the_actions_support(target: Target) -> None:
    """A condition key an action does not support is never present: the Allow never applies."""
    sar = _sar()
    problems = []
    for st in statements(target):
        resources = _list(st["Resource"])
        for action in _list(st["Action"]):
            types = _resource_types(sar, action)
            matched = [t for t in types if any(_arn_overlaps(r, t[1]) for r in resources)]
            if resources != ["*"] and not matched:
                problems.append(f"{st['Sid']}: {action} takes none of {resources}")
            star = resources == ["*"] and types and st["Effect"] == "Allow" and st["Sid"] != "Read"
            if star and (st["Sid"], action) not in STAR_BY_DESIGN:
                problems.append(f"{st['Sid']}: {action} on * but takes {types[0][0]}")
            supported = _action_keys(sar, action) + [
                k for t in (matched if resources != ["*"] else types) for k in t[2]
            ]
            for op in st.get("Condition", {}).values():
                for key in op:
                    if not _key_supported(key, supported):
                        problems.append(f"{st['Sid']}: {action} does not support {key}")
    assert not problems, problems


# -- what makes it impossible to escalate (shape; moto evaluates no condition) ------------------


def _allows(action: str, target: Target = ONE) -> list[dict[str, Any]]:
    return [
        s
        for s in statements(target)
        if s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in _list(s["Action"]))
    ]


def test_roles_are_made_and_changed_only_within_the_stacks_boundary() -> None:
    """Every statement allowing CreateRole, PutRolePolicy or PutRolePermissionsBoundary
    requires iam:PermissionsBoundary to be exactly the stack's boundary (moto does not evaluate
    conditions, so this is checked by shape), on exactly the stack's role ARNs."""
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"):
        granted = _allows(action)
        assert granted, action
        for st in granted:
            assert st["Condition"] == {"ArnEquals": {"iam:PermissionsBoundary": BOUNDARY}}
            assert set(_list(st["Resource"])) == ROLES
    for st in _allows("iam:CreateRole", ANY) + _allows("iam:PutRolePolicy", ANY):
        pattern = f"arn:aws:iam::{ACCOUNT}:policy/pcls/*-boundary"
        assert st["Condition"] == {"ArnLike": {"iam:PermissionsBoundary": pattern}}


def test_nothing_lets_the_holder_widen_a_role_or_a_boundary() -> None:
    for action in (
        "iam:AttachRolePolicy",
        "iam:AttachUserPolicy",
        "iam:PutUserPolicy",
        "iam:CreatePolicy",
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:DeleteRolePermissionsBoundary",
        "iam:CreateAccessKey",
        "iam:CreateUser",
        "sts:AssumeRole",
    ):
        for target in (ONE, ANY):
            assert not _allows(action, target), action
    for target in (ONE, ANY):
        denies = [s for s in statements(target) if s["Effect"] == "Deny"]
        assert len(denies) == 1 and "Condition" not in denies[0]
        assert {
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:SetDefaultPolicyVersion",
            "iam:DeleteRolePermissionsBoundary",
        } <= set(denies[0]["Action"])
        assert f"arn:aws:iam::{ACCOUNT}:policy/pcls/*" in denies[0]["Resource"]


def test_roles_are_passed_only_to_their_service_and_named_exactly() -> None:
    """The task roles to ECS tasks, the wake function's to Lambda, its schedule's to Scheduler."""
    role = f"arn:aws:iam::{ACCOUNT}:role/pcls/meet-"
    want = {
        "ecs-tasks.amazonaws.com": TASK_ROLES,
        "lambda.amazonaws.com": {role + "wake"},
        "scheduler.amazonaws.com": {role + "wake-schedule"},
    }
    passed = {}
    for st in _allows("iam:PassRole"):
        (service,) = st["Condition"]["StringEquals"].values()
        assert st["Condition"] == {"StringEquals": {"iam:PassedToService": service}}
        passed[service] = set(_list(st["Resource"]))
    assert passed == want
    for s in statements(ONE):
        for r in _list(s["Resource"]):
            if ":iam::" in r and s["Effect"] == "Allow":
                assert "*" not in r, (s["Sid"], r)  # no IAM wildcard for one stack


def _requires_stack_tag(st: dict[str, Any]) -> bool:
    return any(
        key.endswith("/pcls:stack") and value == "meet"
        for op in st.get("Condition", {}).values()
        for key, value in op.items()
    )


def test_writes_carry_the_stacks_tag_or_an_exact_name() -> None:
    """Every Allow of a write either names a resource of the stack or requires its tag."""
    loose = [
        st["Sid"]
        for st in statements(ONE)
        if st["Effect"] == "Allow"
        and st["Sid"] != "Read"
        and not _requires_stack_tag(st)
        and not all("meet" in r for r in _list(st["Resource"]))
        and st["Sid"] not in UNSCOPABLE
    ]
    assert not loose, loose


# Writes AWS lets no policy scope to one stack, and what limits them instead.
UNSCOPABLE = {
    "Records": "route53 records take no tag; names limited to the domain and _*.domain",
    "Zones": "hosted zones take no tag and have ids Route 53 makes; a zone with records "
    "cannot be deleted",
    "ZoneCreate": "CreateHostedZone has no resource type",
    "NetworkTagOnCreate": "only on creation (ec2:CreateAction), whose create needs the tag",
    "NetworkRules": "a rule joins a group, which must carry the stack's tag",
    "EcsDeregister": "DeregisterTaskDefinition has no resource type",
    "TopicUnsubscribe": "Unsubscribe has no resource type",
    "ServiceLinkedRoles": "three exact AWS service-linked roles",
    "ScalingAlarms": "the alarms target tracking makes for the stack's bridge service",
    "PassRolesToEcsTasks": "the stack's roles, named exactly",
}


# -- coverage: every call pcls makes is allowed --------------------------------------------------

# Calls only an administrator's run makes, by design (see pcls.permissions): writing the boundary.
ADMINISTRATOR_ONLY = {"iam:CreatePolicy", "iam:CreatePolicyVersion"}


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
    allowed = allowed_actions("meet") | ADMINISTRATOR_ONLY
    missing = sorted(iam_action(s, op) for s, op in seen if iam_action(s, op) not in allowed)
    assert not missing, missing
    assert len(seen) > 60  # the lifecycle really ran through every layer
    extras = {a for call in seen if call in DOCUMENTED_EXTRAS for a in DOCUMENTED_EXTRAS[call][1]}
    assert extras and not extras - allowed, sorted(extras - allowed)


def test_iam_policy_covers_what_the_aws_docs_list_for_each_call() -> None:
    """Per API pcls calls, the extra actions its AWS documentation page lists (URL kept)."""
    allowed = allowed_actions("meet")
    for (svc, op), (url, extra) in DOCUMENTED_EXTRAS.items():
        assert url.startswith("https://docs.aws.amazon.com/"), url
        assert iam_action(svc, op) in allowed, (svc, op)
        assert not set(extra) - allowed, (svc, op, sorted(set(extra) - allowed), url)


def test_iam_policy_covers_every_client_method_in_the_code() -> None:
    session = botocore.session.get_session()
    by_method: dict[str, set[str]] = {}
    for svc in SERVICES:
        for op in session.get_service_model(svc).operation_names:
            by_method.setdefault(xform_name(op), set()).add(iam_action(svc, op))
    allowed = allowed_actions() | ADMINISTRATOR_ONLY
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


# -- the command ------------------------------------------------------------------------------


def _config(tmp_path: Path, region: str = "eu-central-1") -> Path:
    cfg = tmp_path / "pcls.toml"
    cfg.write_text(f'[stack]\nname = "video"\ndomain = "v.example.org"\nregion = "{region}"\n')
    return cfg


def _statement(docs: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return next(s for d in docs for s in d["Statement"] if s["Sid"] == sid)


def test_iam_policy_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    assert run(["--config", str(cfg), "iam-policy", "--account", "111122223333"]) == 0
    out = capsys.readouterr()
    docs = json.loads(out.out)
    assert f"{len(docs)} policy documents" in out.err and len(docs) > 1
    roles = _statement(docs, "RolesOnlyWithinBoundary")
    assert roles["Resource"] == [
        f"arn:aws:iam::111122223333:role/pcls/video-{s}"
        for s in ("execution", "signal-task", "jvb-task", "wake", "wake-schedule")
    ]
    boundary = "arn:aws:iam::111122223333:policy/pcls/video-boundary"
    assert roles["Condition"]["ArnEquals"]["iam:PermissionsBoundary"] == boundary
    params = _statement(docs, "SecretsOwn")
    assert params["Resource"] == "arn:aws:ssm:eu-central-1:111122223333:parameter/pcls/video/*"
    for n, doc in enumerate(docs, start=1):
        argv = ["--config", str(cfg), "iam-policy", "--account", "111122223333"]
        assert run([*argv, "--part", str(n)]) == 0
        assert json.loads(capsys.readouterr().out) == doc
    argv = ["--config", str(cfg), "iam-policy", "--account", "111122223333", "--any-stack"]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "role/pcls/*-execution" in text and "role/*" not in text.replace("role/pcls/*", "")


def test_iam_policy_boundary_is_what_pcls_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    argv = ["--config", str(cfg), "iam-policy", "--account", "111122223333", "--boundary"]
    assert run(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    want = iam.boundary_policy(
        iam.Scope("aws", "eu-central-1", "111122223333", "video", "/pcls/video", "video", ())
    )
    assert doc == want


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--account", "12345"], "--account: '12345' is not allowed; expected 12 digits"),
        (["--account", "111122223333", "--part", "9"], "--part: 9 is not allowed; expected 1 to"),
        (["--any-stack", "--boundary", "--account", "111122223333"], "--boundary: a boundary"),
    ],
)
def test_iam_policy_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert run(["--config", str(_config(tmp_path)), "iam-policy", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_iam_policy_asks_sts_for_the_account(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    result = harness.cli("iam-policy", capsys=capsys)
    assert result.code == 0, result.err
    assert ":123456789012:" in result.out and '"*"' in result.out


def test_iam_policy_without_account_or_credentials_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert os.environ.get("AWS_ACCESS_KEY_ID") is None
    assert run(["--config", str(_config(tmp_path)), "iam-policy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --account: not given") and err.count("\n") == 1


def test_the_readme_states_the_policys_size_and_parts() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"the policy has\s+about ([\d,]+), so it comes as (\w+) documents", readme)
    assert stated, "README: the policy's size and number of documents"
    chars = int(stated.group(1).replace(",", ""))
    words = {"two": 2, "three": 3, "four": 4, "five": 5}
    assert abs(size(operator_policy(ONE)) - chars) <= 0.03 * chars
    assert len(operator_policies(ONE)) == words[stated.group(2)]

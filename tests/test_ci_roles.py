"""The CI roles (docs/deploy-from-ci.md): the trust policy `pcls iam-policy --trust` prints
trusts exactly the repository's named branch, environment or pull requests, and the plan
role's `--read-only` policy lets plan and status run and nothing else."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication
from parliament import analyze_policy_string

from pcls.__main__ import parser, run
from pcls.aws import READ_PREFIXES
from pcls.permissions import (
    MAX_POLICY_CHARS,
    SECRET_READS,
    Target,
    read_only_policy,
    size,
    statements,
    trust_policy,
)
from tests.conftest import DOMAIN, REGION
from tests.harness import Harness
from tests.iam_enforcement import enforcing

ACCOUNT = "111122223333"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def _trust(*extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(["iam-policy", "--trust", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("flags", "subjects"),
    [
        (["--branch", "main"], "repo:acme/meet-ops:ref:refs/heads/main"),
        (["--environment", "production"], "repo:acme/meet-ops:environment:production"),
        (
            ["--branch", "release/2.x", "--pull-requests"],
            ["repo:acme/meet-ops:ref:refs/heads/release/2.x", "repo:acme/meet-ops:pull_request"],
        ),
    ],
)
def test_trust_is_githubs_provider_for_exactly_the_named_subjects(
    capsys: pytest.CaptureFixture[str], flags: list[str], subjects: str | list[str]
) -> None:
    argv = ["--repo", "acme/meet-ops", "--account", ACCOUNT, *flags]
    code, out, err = _trust(*argv, capsys=capsys)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    (st,) = doc["Statement"]
    assert st["Effect"] == "Allow"
    assert st["Principal"] == {"Federated": PROVIDER}
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
    # Exact matches only: no StringLike, no wildcard, the audience the AWS action asks for.
    assert st["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subjects,
        }
    }
    assert "*" not in out and "?" not in out
    findings = analyze_policy_string(out).findings
    # parliament knows SAML providers as federation sources, not OIDC providers (whose ARN is
    # checked above); a trust policy has no Resource. Every other finding fails.
    findings = [
        f
        for f in findings
        if not (f.issue == "UNKNOWN_FEDERATION_SOURCE" and f.detail == PROVIDER)
        and not (f.issue == "MALFORMED" and "Resource" in str(f.detail))
    ]
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_trust_asks_sts_for_the_account_and_partition(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    res = harness.cli(
        "iam-policy", "--trust", "--repo", "acme/meet", "--branch", "main", capsys=capsys
    )
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc == trust_policy("123456789012", "acme/meet", branch="main")
    assert doc["Statement"][0]["Principal"]["Federated"].startswith("arn:aws:iam::123456789012:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repo", "acme/x"], "--repo: only with --trust"),
        (["--pull-requests"], "--pull-requests: only with --trust"),
        (["--read-only", "--boundary"], "--boundary: not with --read-only; pick one document"),
    ],
)
def test_trust_flags_without_trust_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(["iam-policy", "--account", ACCOUNT, *argv]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"error: {message}\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--repo", "acme/meet"], "--trust: trusts nothing; expected --branch NAME"),
        (["--branch", "main"], "--trust: needs --repo OWNER/NAME"),
        (
            ["--repo", "acme", "--branch", "main"],
            "--repo: 'acme' is not allowed; expected OWNER/NAME",
        ),
        (["--repo", "ac me/x", "--branch", "main"], "--repo: 'ac me/x' is not allowed"),
        (["--repo=-acme/x", "--branch", "main"], "--repo: '-acme/x' is not allowed"),
        (["--repo", "acme/..", "--branch", "main"], "--repo: 'acme/..' is not allowed"),
        (["--repo", "acme/*", "--branch", "main"], "--repo: 'acme/*' is not allowed"),
        (["--repo", "acme/x", "--branch", "*"], "--branch: '*' is not allowed; expected a branch"),
        (["--repo", "acme/x", "--branch", "a:b"], "--branch: 'a:b' is not allowed"),
        (["--repo", "acme/x", "--branch", "a/../b"], "--branch: 'a/../b' is not allowed"),
        (["--repo", "acme/x", "--environment", "prod*"], "--environment: 'prod*' is not allowed"),
        (["--repo", "acme/x", "--branch", "main", "--account", "1"], "--account: '1' is not"),
        (["--repo", "acme/x", "--branch", "main", "--boundary"], "--boundary: not with --trust"),
        (["--repo", "acme/x", "--branch", "main", "--part", "1"], "--trust: not with --part"),
        (["--repo", "acme/x", "--branch", "main", "--any-stack"], "--any-stack: not with --trust"),
    ],
)
def test_trust_bad_input_is_one_line_exit_2_before_any_call(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    message: str,
) -> None:
    # No credentials at all: a check that came after the STS call would fail differently.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    code, out, err = _trust(*flags, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


# -- the plan role: read-only ------------------------------------------------------------------

ONE = Target(ACCOUNT, "meet", REGION, domain=DOMAIN)


def _actions(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for st in doc["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        out += [(a, st["Resource"]) for a in acts]
    return out


@pytest.mark.parametrize("target", [ONE, Target(ACCOUNT)], ids=["one-stack", "any-stack"])
def test_read_only_policy_reads_what_the_operator_reads_and_writes_nothing(target: Target) -> None:
    doc = read_only_policy(target)
    assert size(doc) <= MAX_POLICY_CHARS  # one managed policy
    acts = _actions(doc)
    assert acts
    for action, resource in acts:
        verb = action.split(":", 1)[1]
        assert verb.startswith((*READ_PREFIXES, "View")), action
        if action in SECRET_READS:  # the run lock's parameter, no secret
            assert resource.endswith(f":parameter/pcls/{target.stack or '*'}/run/lock"), action
    # Every read the operator has on a resource, the plan role has on the same one.
    operator = {
        (a, json.dumps(r))
        for a, r in _actions(
            {"Statement": [s for s in statements(target) if s["Effect"] == "Allow"]}
        )
        if a.split(":", 1)[1].startswith(("Describe", "Get", "List", "View"))
    }
    assert operator == {(a, json.dumps(r)) for a, r in acts}
    findings = analyze_policy_string(json.dumps(doc)).findings
    real = [f for f in findings if f.issue not in ("RESOURCE_STAR", "RESOURCE_MISMATCH")]
    assert not real, [(f.issue, f.detail) for f in real]


def test_the_plan_role_plans_and_checks_a_running_stack_and_can_change_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert harness.cli("up", capsys=capsys).code == 0  # the deploy role's run
    iam = harness.client("iam")
    iam.create_user(UserName="ci-plan")
    res = harness.cli("iam-policy", "--read-only", capsys=capsys)
    assert res.code == 0, res.err
    arn = iam.create_policy(PolicyName="pcls-meet-read-only", PolicyDocument=res.out)
    iam.attach_user_policy(UserName="ci-plan", PolicyArn=arn["Policy"]["Arn"])
    key = iam.create_access_key(UserName="ci-plan")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with enforcing("123456789012", REGION), enable_iam_authentication():
        plan = harness.cli("plan", capsys=capsys)
        assert plan.code == 0, plan.err
        assert "Plan: 0 to create, 0 to update" in plan.out
        status = harness.cli("status", "--json", capsys=capsys)
        assert status.code == 0, status.err
        assert json.loads(status.out)["in_sync"] is True
        up = harness.cli("up", capsys=capsys)  # even the run lock is a write it may not make
        assert up.code != 0
        assert "AccessDenied" in up.err or "not authorized" in up.err, up.err
        ssm = boto3.client(
            "ssm",
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
        secret = next(n for n in names if not n.endswith("/run/lock"))
        with pytest.raises(ssm.exceptions.ClientError, match=r"AccessDenied|not authorized"):
            ssm.get_parameter(Name=secret, WithDecryption=True)


def test_the_setup_guide_uses_only_flags_the_cli_has() -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "deploy-from-ci.md"
    lines = re.findall(r"(?:^|\$\()\s*(pcls [^|>)\n]+)", doc.read_text(encoding="utf-8"), re.M)
    argvs = [shlex.split(line.replace('"$i"', "1")) for line in lines]
    assert {"--trust", "--read-only", "--boundary", "--part"} <= {a for v in argvs for a in v}
    for argv in argvs:
        parser().parse_args(argv[1:])  # SystemExit on a flag the CLI does not have

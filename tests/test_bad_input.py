"""Bad input beyond the config keys (tests/test_config.py) and the ledger basics
(tests/test_ledger_and_cli.py): credentials, profiles, ledgers of another stack or schema, a
domain without a zone, an unset region, an unreadable config, the teardown prompt.

For every case: the exit code, exactly one line on stderr, nothing created (or deleted) in AWS,
no write call even attempted, and no file beside the config changed. docs/bad-input.md lists
every case tried, with the message pcls prints.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pcls.aws import is_read
from tests.faults import client_error, on_every_client
from tests.harness import CliResult, Harness
from tests.inventory import inventory

COMMANDS = [
    pytest.param(("up",), id="up"),
    pytest.param(("plan",), id="plan"),
    pytest.param(("teardown", "--yes"), id="teardown"),
]
WITH_STATUS = [*COMMANDS, pytest.param(("status",), id="status")]


# -- helpers -----------------------------------------------------------------------------------


def files(root: Path) -> dict[str, str]:
    """Every file under root (config, ledger, backups, lock) with the hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def aws(h: Harness) -> Counter[tuple[str, str]]:
    return inventory(h.region)


def one_line(res: CliResult) -> str:
    lines = res.err.splitlines()
    assert len(lines) == 1 and res.err.endswith("\n"), res.err
    return lines[0]


class Recorder:
    """Every AWS operation pcls attempts in a run, in order (reads and writes)."""

    def __init__(self, error: tuple[str, str] | None = None) -> None:
        self.error = error  # (code, message) every call fails with, as AWS would answer
        self.ops: list[str] = []
        self._lock = threading.Lock()

    def register(self, client: Any) -> None:
        client.meta.events.register("before-call", self._hook)

    def _hook(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.ops.append(model.name)
        if self.error:
            raise client_error(*self.error, model.name)

    @property
    def writes(self) -> list[str]:
        return [op for op in self.ops if not is_read(op)]


def refused(
    h: Harness,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    error: tuple[str, str] | None = None,
) -> tuple[CliResult, Recorder]:
    """Run the CLI and prove the run changed nothing: not in AWS, not on disk."""
    before_aws, before_files = aws(h), files(h.root)
    rec = Recorder(error)
    with on_every_client(rec.register):
        res = h.cli(*args, capsys=capsys)
    assert rec.writes == [], rec.writes
    assert aws(h) == before_aws
    assert files(h.root) == before_files
    return res, rec


class Terminal(io.StringIO):
    """Standard input as a person at a terminal types it."""

    def isatty(self) -> bool:
        return True


class InterruptedTerminal(Terminal):
    def readline(self, *_: Any) -> str:
        raise KeyboardInterrupt


# -- credentials -------------------------------------------------------------------------------


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no AWS credentials anywhere botocore would look."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # A guard, not part of the case: were credentials found after all, every call would
        # go to a closed local port instead of AWS.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


@pytest.mark.parametrize("args", WITH_STATUS)
def test_no_credentials_anywhere_exits_2(
    tmp_path: Path, clean_env: dict[str, str], args: tuple[str, ...]
) -> None:
    config = tmp_path / "pcls.toml"
    config.write_text(
        '[stack]\nname = "meet"\nregion = "eu-central-1"\ndomain = "meet.example.com"\n'
    )
    before = files(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pcls", "--config", str(config), *args],
        env=clean_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "error: AWS credentials: none found; set AWS_PROFILE or AWS_ACCESS_KEY_ID, or use --sandbox"
    ]
    assert files(tmp_path) == before


EXPIRED = ("ExpiredToken", "The security token included in the request is expired")


@pytest.mark.parametrize("args", WITH_STATUS)
def test_expired_credentials_exit_2_before_any_other_call(
    harness: Harness, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    # Real AWS refuses every call of an expired session, starting with GetCallerIdentity.
    res, rec = refused(harness, capsys, *args, error=EXPIRED)
    assert res.code == 2
    assert one_line(res) == (
        "error: AWS credentials: ExpiredToken; refresh them (e.g. aws sso login) and retry"
    )
    assert rec.ops == ["GetCallerIdentity"]


@pytest.mark.parametrize("args", [*COMMANDS, pytest.param(("status",), id="status")])
def test_unknown_profile_exits_2_naming_it(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: tuple[str, ...],
) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[profile ops]\nregion = eu-central-1\n")
    before_aws, before_files = aws(harness), files(harness.root)
    with monkeypatch.context() as m:
        m.setenv("AWS_CONFIG_FILE", str(config))
        m.setenv("AWS_PROFILE", "no-such-profile")
        res = harness.cli(*args, capsys=capsys)
    assert aws(harness) == before_aws
    assert files(harness.root) == before_files
    assert res.code == 2, res.err
    line = one_line(res)
    assert line.startswith("error: AWS_PROFILE:") and "no-such-profile" in line


# -- ledgers -----------------------------------------------------------------------------------


def write_ledger(h: Harness, doc: dict[str, Any]) -> None:
    h.state_dir.mkdir(exist_ok=True)
    h.ledger_path.write_text(json.dumps(doc))


def test_ledger_of_another_stack_exits_2_and_is_kept(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ledger(
        harness,
        {"schema": 1, "stack": "video", "account": "", "region": "", "steps": {}},
    )
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.ledger_path}: ledger is for stack 'video', config says 'meet'"
    )
    assert rec.ops == []  # refused before any AWS call


FUTURE = {"schema": 2, "stack": "meet", "account": "", "region": "", "steps": {}}
FUTURE_LAYOUT = {"schema": 2, "stack": "meet", "resources": [{"step": "vpc", "id": "vpc-1"}]}


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(FUTURE, id="same-layout"),
        pytest.param(FUTURE_LAYOUT, id="new-layout"),
    ],
)
def test_ledger_of_a_newer_schema_exits_2_and_stays_in_place(
    harness: Harness, capsys: pytest.CaptureFixture[str], doc: dict[str, Any]
) -> None:
    write_ledger(harness, doc)
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    assert (
        one_line(res) == f"error: {harness.ledger_path}: ledger schema 2; this pcls reads schema 1"
    )
    assert rec.ops == []


@pytest.mark.parametrize(("key", "value"), [("account", "999999999999"), ("region", "us-west-2")])
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("plan",), id="plan"),
        pytest.param(("teardown", "--yes"), id="teardown"),
        pytest.param(("status",), id="status"),
    ],
)
def test_ledger_of_another_target_is_refused_by_every_command(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    key: str,
    value: str,
) -> None:
    # `up` is covered in tests/test_ledger_and_cli.py. Teardown runs on a deployed stack: the
    # refusal must keep every resource.
    if args[0] == "teardown":
        assert harness.up().ok
        doc = json.loads(harness.ledger_path.read_text())
        doc[key] = value
    else:
        doc = {"schema": 1, "stack": "meet", "account": "", "region": "", "steps": {}, key: value}
    write_ledger(harness, doc)
    res, _ = refused(harness, capsys, *args)
    assert res.code == 2, res.out + res.err
    line = one_line(res)
    assert f"ledger is for {key} {value}" in line and f"switch {key}" in line


# -- the account and the region ----------------------------------------------------------------


def drop_zone(h: Harness) -> None:
    r53 = h.client("route53")
    for zone in r53.list_hosted_zones()["HostedZones"]:
        r53.delete_hosted_zone(Id=zone["Id"])


@pytest.mark.parametrize("args", [("up",), ("plan",)], ids=["up", "plan"])
def test_domain_without_a_zone_exits_2_naming_it(
    harness: Harness, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    drop_zone(harness)
    before_aws, before_files = aws(harness), files(harness.root)
    rec = Recorder()
    with on_every_client(rec.register):
        res = harness.cli(*args, capsys=capsys)
    assert res.code == 2
    assert one_line(res) == (
        "error: no public hosted zone holds meet.example.com; "
        "create one or set dns.create_zone = true"
    )
    assert rec.writes == []
    assert aws(harness) == before_aws
    after = files(harness.root)
    assert {k: after.get(k) for k in before_files} == before_files  # the config is untouched


def test_refused_up_leaves_no_ledger_behind(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    drop_zone(harness)
    assert harness.cli("up", capsys=capsys).code == 2
    assert not harness.ledger_path.exists()


def test_zone_named_in_config_but_absent_exits_2(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.write_config('[dns]\nzone = "meet.example.com"\n')
    res, _ = refused(harness, capsys, "plan")
    assert res.code == 2
    assert one_line(res) == (
        "error: dns.zone: no public hosted zone named meet.example.com in this account; "
        "create it, clear dns.zone, or set dns.create_zone = true"
    )


def test_region_set_nowhere_exits_2(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    harness.config_path.write_text('[stack]\nname = "meet"\ndomain = "meet.example.com"\n')
    before_aws = aws(harness)
    with monkeypatch.context() as m:
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            m.delenv(var, raising=False)
        m.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
        before_files = files(harness.root)
        res = harness.cli("up", capsys=capsys)
        assert files(harness.root) == before_files
    assert res.code == 2
    assert one_line(res) == "error: stack.region: not set; set it in pcls.toml or AWS_REGION"
    assert aws(harness) == before_aws


# -- the config file ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "not-utf-8"])
def test_unreadable_config_exits_2(
    harness: Harness, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    harness.config_path.unlink()
    if kind == "directory":
        harness.config_path.mkdir()
        reason = "Is a directory"
    else:
        harness.config_path.write_bytes(b'[stack]\nname = "m\xffeet"\n')
        reason = "'utf-8' codec can't decode byte 0xff"
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    line = one_line(res)
    assert line.startswith(f"error: {harness.config_path}: cannot read config (") and reason in line
    assert rec.ops == []


# -- the teardown prompt -----------------------------------------------------------------------


NOT_CONFIRMED = "error: teardown: confirmation did not match; nothing was deleted"


@pytest.mark.parametrize(
    ("terminal", "typed", "code", "message"),
    [
        pytest.param(Terminal, "video\n", 2, NOT_CONFIRMED, id="wrong-name"),
        pytest.param(Terminal, "MEET\n", 2, NOT_CONFIRMED, id="wrong-case"),
        pytest.param(Terminal, "", 2, NOT_CONFIRMED, id="end-of-input"),
        pytest.param(
            InterruptedTerminal,
            "",
            130,
            "interrupted; run the command again to resume",
            id="ctrl-c",
        ),
    ],
)
def test_teardown_prompt_not_confirmed_deletes_nothing(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    terminal: type[Terminal],
    typed: str,
    code: int,
    message: str,
) -> None:
    assert harness.up().ok
    monkeypatch.setattr(sys, "stdin", terminal(typed))
    res, _ = refused(harness, capsys, "teardown")
    assert "Type the stack name to confirm:" in res.out
    assert res.code == code
    assert one_line(res) == message

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
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert one_line(res) == (
        "error: no public hosted zone holds meet.example.com; "
        "create one or set dns.create_zone = true"
    )
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
        reason = "a directory, not a regular file); pass --config PATH of a TOML file"
    else:
        harness.config_path.write_bytes(b'[stack]\nname = "m\xffeet"\n')
        reason = "'utf-8' codec can't decode byte 0xff"
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    line = one_line(res)
    assert line.startswith(f"error: {harness.config_path}: cannot read config (") and reason in line
    assert rec.ops == []


def test_a_fifo_as_config_is_refused_without_blocking(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.config_path.unlink()
    os.mkfifo(harness.config_path)

    def unblock() -> None:  # were the FIFO opened, this writer would end the wait (and the test)
        if not done.wait(10):
            with open(harness.config_path, "w") as fh:
                fh.write("")

    done = threading.Event()
    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    try:
        res, rec = refused(harness, capsys, "plan")
    finally:
        done.set()
        watchdog.join()
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.config_path}: cannot read config (a named pipe (FIFO), not a regular "
        "file); pass --config PATH of a TOML file"
    )
    assert rec.ops == []


def test_a_device_as_config_is_refused(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.config_path.unlink()
    harness.config_path.symlink_to("/dev/zero")  # would never end if it were read
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.config_path}: cannot read config (a character device, not a regular "
        "file); pass --config PATH of a TOML file"
    )
    assert rec.ops == []


NESTED = [
    pytest.param(
        "[tags]\nowner = " + "[" * 5000 + "]" * 5000 + "\n",
        "a value nested deeper than 8 tables or arrays",
        id="inline-array-5000-deep",
    ),
    pytest.param(
        "[tags]\nowner = " + "{ a = " * 3000 + "1" + " }" * 3000 + "\n",
        "a value nested deeper than 8 tables or arrays",
        id="inline-table-3000-deep",
    ),
    pytest.param(
        "[tags]\nowner = " + "[" * 9 + "]" * 9 + "\n",
        "tags.owner[0][0][0][0][0][0][0] nested deeper than 8 tables or arrays",
        id="inline-array-9-deep",
    ),
    pytest.param(
        "[jvb.a.b.c.d.e.f.g.h]\nx = 1\n",
        "jvb.a.b.c.d.e.f.g.h nested deeper than 8 tables or arrays",
        id="table-headers-9-deep",
    ),
]


@pytest.mark.parametrize(("extra", "what"), NESTED)
def test_config_nested_too_deep_exits_2(
    harness: Harness, capsys: pytest.CaptureFixture[str], extra: str, what: str
) -> None:
    harness.write_config(extra)
    res, rec = refused(harness, capsys, "up")
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.config_path}: {what}; expected the flat layout of README.md#configuration"
    )
    assert rec.ops == []


def test_config_over_1_mib_exits_2(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.write_config("# " + "x" * (1 << 20) + "\n")
    size = harness.config_path.stat().st_size
    res, rec = refused(harness, capsys, "plan")
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.config_path}: cannot read config ({size} bytes); expected at most 1 MiB"
    )
    assert rec.ops == []


def test_config_number_beyond_python_limits_exits_2(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.write_config("[jvb]\nmax_count = " + "9" * 5000 + "\n")
    res, _ = refused(harness, capsys, "plan")
    assert res.code == 2
    assert one_line(res) == (
        f"error: {harness.config_path}: not valid TOML: Exceeds the limit (4300 digits) for "
        "integer string conversion: value has 5000 digits"
    )


# -- what AWS would refuse mid-run, refused up front -------------------------------------------

_VPC = "a range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /23"
_DOW = "1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5"
_RATE = (
    "rate(value unit): a whole number from 1, then minute, hour or day for 1 and minutes, "
    "hours or days above, e.g. rate(1 hour), rate(30 minutes)"
)
_RESERVED_TAG = "keys other than Name and not starting with aws: or pcls: in any case"
_TAG_CHARS = "keys and values of letters, digits, spaces and _ . : / = + - @"
_JWT = "1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
_LONG_CRON = "cron(0 20 ? * " + "MON," * 400 + "MON *)"  # 1620 characters
_LONG_EMAIL = f"ops@{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 55}.com"  # 255 characters
_NINE_TAGS = "".join(f'team{i} = "video"\n' for i in range(9))


def _schedule(expr: str) -> str:
    return f'[[scaling.schedule]]\nname = "night"\ncron = "{expr}"\nmin_count = 0\nmax_count = 1\n'


def _domain(domain: str) -> str:
    return f'[stack]\nname = "meet"\nregion = "eu-central-1"\ndomain = "{domain}"\n'


# (config: extra tables after the base [stack], or a whole file starting with [stack]; message)
AWS_WOULD_REFUSE = [
    # VPC ranges
    pytest.param(
        '[network]\ncidr = "127.0.0.0/16"\n',
        f"network.cidr: '127.0.0.0/16' is not allowed; expected {_VPC} (127.0.0.0/8 is "
        "loopback; AWS refuses it for a VPC)",
        id="cidr-loopback",
    ),
    pytest.param(
        '[network]\ncidr = "0.0.0.0/16"\n',
        f"network.cidr: '0.0.0.0/16' is not allowed; expected {_VPC} (0.0.0.0/8 is "
        "'this network'; AWS refuses it for a VPC)",
        id="cidr-this-network",
    ),
    pytest.param(
        '[network]\ncidr = "169.254.0.0/16"\n',
        f"network.cidr: '169.254.0.0/16' is not allowed; expected {_VPC} (169.254.0.0/16 is "
        "link-local; AWS refuses it for a VPC)",
        id="cidr-link-local",
    ),
    pytest.param(
        '[network]\ncidr = "224.0.0.0/16"\n',
        f"network.cidr: '224.0.0.0/16' is not allowed; expected {_VPC} (224.0.0.0/4 is "
        "multicast; AWS refuses it for a VPC)",
        id="cidr-multicast",
    ),
    pytest.param(
        '[network]\ncidr = "255.255.0.0/16"\n',
        f"network.cidr: '255.255.0.0/16' is not allowed; expected {_VPC} (240.0.0.0/4 is "
        "reserved (with the broadcast address); AWS refuses it for a VPC)",
        id="cidr-reserved-broadcast",
    ),
    pytest.param(
        '[network]\ncidr = "8.8.0.0/16"\n',
        f"network.cidr: '8.8.0.0/16' is not allowed; expected {_VPC} (8.8.0.0/16 is not a "
        "private RFC 1918 range)",
        id="cidr-public",
    ),
    pytest.param(
        '[network]\ncidr = "10.0.0.0/8"\n',
        f"network.cidr: '10.0.0.0/8' is not allowed; expected {_VPC} (AWS makes no VPC larger "
        "than a /16)",
        id="cidr-larger-than-16",
    ),
    pytest.param(
        '[network]\ncidr = "10.42.0.0/24"\nazs = 2\n',
        f"network.cidr: '10.42.0.0/24' is not allowed; expected {_VPC} (a /24 leaves each "
        "availability zone a /28 subnet; the load balancer needs at least a /27 with 8 free "
        "addresses in every subnet, beside the tasks)",
        id="cidr-subnets-below-27",
    ),
    pytest.param(
        '[network]\ncidr = "10.42.0.0/28"\n',
        f"network.cidr: '10.42.0.0/28' is not allowed; expected {_VPC} (a /28 leaves each "
        "availability zone a /32 subnet; the load balancer needs at least a /27 with 8 free "
        "addresses in every subnet, beside the tasks)",
        id="cidr-smallest-aws-vpc",
    ),
    # schedule expressions
    pytest.param(
        _schedule("cron(0 20 * * * *)"),
        "scaling.schedule[0].cron: 'cron(0 20 * * * *)' is not allowed; expected cron() with ? "
        "in exactly one of day-of-month and day-of-week (got '*' and '*')",
        id="cron-no-question-mark",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * ? *)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * ? *)' is not allowed; expected cron() with ? "
        "in exactly one of day-of-month and day-of-week (got '?' and '?')",
        id="cron-two-question-marks",
    ),
    pytest.param(
        _schedule("cron(0 20 * * ?)"),
        "scaling.schedule[0].cron: 'cron(0 20 * * ?)' is not allowed; expected cron() with 6 "
        "fields separated by single spaces: minutes hours day-of-month month day-of-week year "
        "(got 5)",
        id="cron-five-fields",
    ),
    pytest.param(
        _schedule("cron(60 20 ? * MON-FRI *)"),
        "scaling.schedule[0].cron: 'cron(60 20 ? * MON-FRI *)' is not allowed; expected cron() "
        "minutes of 0-59 with , - * / (got '60')",
        id="cron-minute-60",
    ),
    pytest.param(
        _schedule("cron(0 24 ? * MON-FRI *)"),
        "scaling.schedule[0].cron: 'cron(0 24 ? * MON-FRI *)' is not allowed; expected cron() "
        "hours of 0-23 with , - * / (got '24')",
        id="cron-hour-24",
    ),
    pytest.param(
        _schedule("cron(0 0 32 * ? *)"),
        "scaling.schedule[0].cron: 'cron(0 0 32 * ? *)' is not allowed; expected cron() "
        "day-of-month of 1-31 with , - * /, or ?, L, LW, nW (got '32')",
        id="cron-day-32",
    ),
    pytest.param(
        _schedule("cron(0 0 1 13 ? *)"),
        "scaling.schedule[0].cron: 'cron(0 0 1 13 ? *)' is not allowed; expected cron() month "
        "of 1-12 or JAN-DEC with , - * / (got '13')",
        id="cron-month-13",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * MON-FRX *)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * MON-FRX *)' is not allowed; expected cron() "
        f"day-of-week of {_DOW} (got 'MON-FRX')",
        id="cron-day-name",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * FRI-MON *)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * FRI-MON *)' is not allowed; expected cron() "
        f"day-of-week of {_DOW} (got 'FRI-MON')",
        id="cron-range-wraps",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * 1/2 *)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * 1/2 *)' is not allowed; expected cron() "
        f"day-of-week of {_DOW} (got '1/2')",
        id="cron-day-of-week-increment",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * 6#6 *)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * 6#6 *)' is not allowed; expected cron() "
        f"day-of-week of {_DOW} (got '6#6')",
        id="cron-sixth-friday",
    ),
    pytest.param(
        _schedule("cron(0 0 L,15 * ? *)"),
        "scaling.schedule[0].cron: 'cron(0 0 L,15 * ? *)' is not allowed; expected cron() "
        "day-of-month of 1-31 with , - * /, or ?, L, LW, nW (got 'L,15')",
        id="cron-L-in-a-list",
    ),
    pytest.param(
        _schedule("cron(0/0 20 ? * MON-FRI *)"),
        "scaling.schedule[0].cron: 'cron(0/0 20 ? * MON-FRI *)' is not allowed; expected "
        "cron() minutes of 0-59 with , - * / (got '0/0')",
        id="cron-increment-0",
    ),
    pytest.param(
        _schedule("cron(0 20 ? * MON-FRI 1969)"),
        "scaling.schedule[0].cron: 'cron(0 20 ? * MON-FRI 1969)' is not allowed; expected "
        "cron() year of 1970-2199 with , - * / (got '1969')",
        id="cron-year-1969",
    ),
    pytest.param(
        _schedule("at(2026-02-30T18:00:00)"),
        "scaling.schedule[0].cron: 'at(2026-02-30T18:00:00)' is not allowed; expected "
        "at(yyyy-mm-ddThh:mm:ss) with a real date and time, e.g. at(2026-12-24T18:00:00)",
        id="at-february-30",
    ),
    pytest.param(
        _schedule("at(2026-12-24 18:00)"),
        "scaling.schedule[0].cron: 'at(2026-12-24 18:00)' is not allowed; expected "
        "at(yyyy-mm-ddThh:mm:ss) with a real date and time, e.g. at(2026-12-24T18:00:00)",
        id="at-format",
    ),
    pytest.param(
        _schedule("rate(1 hours)"),
        f"scaling.schedule[0].cron: 'rate(1 hours)' is not allowed; expected {_RATE}",
        id="rate-plural-for-1",
    ),
    pytest.param(
        _schedule("rate(5 minute)"),
        f"scaling.schedule[0].cron: 'rate(5 minute)' is not allowed; expected {_RATE}",
        id="rate-singular-above-1",
    ),
    pytest.param(
        _schedule("rate(0 minutes)"),
        f"scaling.schedule[0].cron: 'rate(0 minutes)' is not allowed; expected {_RATE}",
        id="rate-0",
    ),
    pytest.param(
        _schedule("rate(2 weeks)"),
        f"scaling.schedule[0].cron: 'rate(2 weeks)' is not allowed; expected {_RATE}",
        id="rate-weeks",
    ),
    pytest.param(
        _schedule("0 20 * * *"),
        "scaling.schedule[0].cron: '0 20 * * *' is not allowed; expected at(yyyy-mm-ddThh:mm:ss), "
        "rate(value unit) or cron(minutes hours day-of-month month day-of-week year)",
        id="schedule-bare-crontab",
    ),
    pytest.param(
        _schedule(_LONG_CRON),
        f"scaling.schedule[0].cron: {_LONG_CRON[:80]!r}"[:-1] + "…' (1620 characters) is not "
        "allowed; expected at most 1600 characters (got 1620)",
        id="schedule-over-1600",
    ),
    # e-mail
    pytest.param(
        '[alerts]\nemail = "nobody"\n',
        "alerts.email: 'nobody' is not allowed; expected an e-mail address of the form "
        "local-part@domain, e.g. ops@example.com",
        id="email-no-at",
    ),
    pytest.param(
        '[alerts]\nemail = "ops team@example.com"\n',
        "alerts.email: 'ops team@example.com' is not allowed; expected an e-mail address "
        "without spaces or control characters",
        id="email-space",
    ),
    pytest.param(
        '[alerts]\nemail = "ops\\u0007@example.com"\n',
        "alerts.email: 'ops\\x07@example.com' is not allowed; expected an e-mail address "
        "without spaces or control characters",
        id="email-control-character",
    ),
    pytest.param(
        f'[alerts]\nemail = "{"o" * 65}@example.com"\n',
        f"alerts.email: '{'o' * 65}@example.com' is not allowed; expected a local part "
        "(before the @) of 1-64 characters (got 65)",
        id="email-local-part-65",
    ),
    pytest.param(
        f'[alerts]\nemail = "{_LONG_EMAIL}"\n',
        f"alerts.email: {_LONG_EMAIL[:80]!r}"[:-1] + "…' (255 characters) is not allowed; "
        "expected an e-mail address of at most 254 characters (got 255)",
        id="email-over-254",
    ),
    pytest.param(
        '[alerts]\nemail = "ops..team@example.com"\n',
        "alerts.email: 'ops..team@example.com' is not allowed; expected a local part (before "
        "the @) of ASCII letters, digits and !#$%&'*+/=?^_`{|}~- with single dots between them",
        id="email-double-dot",
    ),
    pytest.param(
        '[alerts]\nemail = "ops@localhost"\n',
        "alerts.email: 'ops@localhost' is not allowed; expected a domain after the @: a "
        "lowercase DNS name with at least two labels, e.g. meet.example.com",
        id="email-domain-without-dot",
    ),
    pytest.param(
        '[alerts]\nemail = "ops@192.0.2.10"\n',
        "alerts.email: 'ops@192.0.2.10' is not allowed; expected a domain after the @: a DNS "
        "name, not an IP address, e.g. meet.example.com",
        id="email-ip-domain",
    ),
    # tags
    pytest.param(
        "[tags]\n" + _NINE_TAGS,
        "[tags]: expected at most 8 tags (got 9): pcls adds pcls:stack and pcls:step, and a "
        "Route 53 hosted zone holds at most 10",
        id="tags-nine",
    ),
    pytest.param(
        '[tags]\nName = "video"\n',
        f"[tags]: expected {_RESERVED_TAG} (got 'Name'; AWS and pcls set those)",
        id="tags-Name",
    ),
    pytest.param(
        '[tags]\n"AWS:owner" = "video"\n',
        f"[tags]: expected {_RESERVED_TAG} (got 'AWS:owner'; AWS and pcls set those)",
        id="tags-aws-any-case",
    ),
    pytest.param(
        '[tags]\n"Pcls:step" = "video"\n',
        f"[tags]: expected {_RESERVED_TAG} (got 'Pcls:step'; AWS and pcls set those)",
        id="tags-pcls-any-case",
    ),
    pytest.param(
        f'[tags]\n{"k" * 129} = "video"\n',
        f"[tags]: expected keys of 1-128 characters (got '{'k' * 40}…' (129 characters))",
        id="tags-key-129",
    ),
    pytest.param(
        f'[tags]\nowner = "{"v" * 257}"\n',
        "[tags]: expected values of at most 256 characters (tag 'owner' has 257)",
        id="tags-value-257",
    ),
    pytest.param(
        '[tags]\nowner = "video#1"\n',
        f"[tags]: expected {_TAG_CHARS} (tag 'owner' has '#')",
        id="tags-value-character",
    ),
    pytest.param(
        '[tags]\n"cost*center" = "video"\n',
        f"[tags]: expected {_TAG_CHARS} (tag 'cost*center' has '*')",
        id="tags-key-character",
    ),
    pytest.param(
        '[tags]\nOwner = "video"\nowner = "audio"\n',
        "[tags]: expected keys that differ in more than case (IAM takes 'Owner' and 'owner' as "
        "one key)",
        id="tags-case-duplicates",
    ),
    # the domain
    pytest.param(
        _domain("192.0.2.10"),
        "stack.domain: '192.0.2.10' is not allowed; expected a DNS name, not an IP address, "
        "e.g. meet.example.com",
        id="domain-ipv4",
    ),
    pytest.param(
        _domain("2001:db8::10"),
        "stack.domain: '2001:db8::10' is not allowed; expected a DNS name, not an IP address, "
        "e.g. meet.example.com",
        id="domain-ipv6",
    ),
    pytest.param(
        _domain("meet.example.123"),
        "stack.domain: 'meet.example.123' is not allowed; expected a DNS name whose last label "
        "is not all digits, e.g. meet.example.com",
        id="domain-numeric-tld",
    ),
    pytest.param(
        _domain("xn--abc.example.com"),
        "stack.domain: 'xn--abc.example.com' is not allowed; expected xn-- labels in valid "
        "punycode (xn--abc decodes to characters that are not letters, marks, digits or '-')",
        id="domain-punycode-control",
    ),
    pytest.param(
        _domain("xn--0.example.com"),
        "stack.domain: 'xn--0.example.com' is not allowed; expected xn-- labels in valid "
        "punycode (xn--0 does not decode)",
        id="domain-punycode-undecodable",
    ),
    pytest.param(
        _domain("xn--meet-.example.com"),
        "stack.domain: 'xn--meet-.example.com' is not allowed; expected labels of a-z, 0-9 and "
        "'-' (1-63 characters, no leading or trailing '-')",
        id="domain-punycode-trailing-hyphen",
    ),
    pytest.param(
        _domain("xn--n3h.example.com"),  # a snowman: IDNA 2008 allows no symbols
        "stack.domain: 'xn--n3h.example.com' is not allowed; expected xn-- labels in valid "
        "punycode (xn--n3h decodes to characters that are not letters, marks, digits or '-')",
        id="domain-punycode-symbol",
    ),
    # the JWT application id
    pytest.param(
        '[jitsi]\nauth = "jwt"\njwt_app_id = "my app"\n',
        f"jitsi.jwt_app_id: 'my app' is not allowed; expected {_JWT}",
        id="jwt-app-id-space",
    ),
    pytest.param(
        '[jitsi]\nauth = "jwt"\njwt_app_id = \'my"app\'\n',
        f"jitsi.jwt_app_id: 'my\"app' is not allowed; expected {_JWT}",
        id="jwt-app-id-quote",
    ),
    pytest.param(
        f'[jitsi]\nauth = "jwt"\njwt_app_id = "{"a" * 65}"\n',
        f"jitsi.jwt_app_id: '{'a' * 65}' is not allowed; expected {_JWT}",
        id="jwt-app-id-65",
    ),
    pytest.param(
        '[jitsi]\nauth = "jwt"\njwt_app_id = "-app"\n',
        f"jitsi.jwt_app_id: '-app' is not allowed; expected {_JWT}",
        id="jwt-app-id-leading-hyphen",
    ),
]


@pytest.mark.parametrize("args", [("plan",), ("up",)], ids=["plan", "up"])
@pytest.mark.parametrize(("toml", "message"), AWS_WOULD_REFUSE)
def test_what_aws_would_refuse_mid_run_is_refused_up_front(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    toml: str,
    message: str,
) -> None:
    if toml.startswith("[stack]"):
        harness.config_path.write_text(toml)
    else:
        harness.write_config(toml)
    res, rec = refused(harness, capsys, *args)
    assert res.code == 2, res.out + res.err
    assert one_line(res) == f"error: {message}"
    assert rec.ops == []  # refused before the first AWS call, read or write
    assert not harness.state_dir.exists()  # no ledger, no lock


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

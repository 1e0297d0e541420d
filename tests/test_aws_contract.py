"""The AWS layer's contract: the helpers' documented results, the read-only guard, call
accounting, the per-run cache and the retry through eventual consistency (moto in-process)."""

from __future__ import annotations

import threading
from typing import Any

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from pcls import __version__, aws
from pcls.aws import Aws
from pcls.errors import ConfigError, WriteInReadOnlyRun

REGION = "eu-central-1"


def err(code: str, message: str = "boom", op: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


def test_what_counts_as_a_read() -> None:
    for op in ("DescribeVpcs", "ListTags", "GetRole", "HeadObject", "SearchThings",
               "LookupEvents", "BatchGetX", "ValidateTemplate"):  # fmt: skip
        assert aws.is_read(op), op
    for op in ("CreateVpc", "PutParameter", "TagResource", "DeleteRole", "describe", "Gets"[:2]):
        assert not aws.is_read(op), op


def test_error_code_message_and_description() -> None:
    e = err("NoSuchEntity", "role x not found")
    assert (aws.error_code(e), aws.error_message(e)) == ("NoSuchEntity", "role x not found")
    assert aws.describe_error(e) == "NoSuchEntity: role x not found"
    bare = ClientError({}, "Op")
    assert (aws.error_code(bare), aws.error_message(bare)) == ("", "")
    other = ValueError("plain")
    assert (aws.error_code(other), aws.error_message(other)) == ("", "plain")
    assert aws.describe_error(other) == "plain"


@pytest.mark.parametrize(
    "code",
    [
        "InvalidVpcID.NotFound",
        "NoSuchEntity",
        "NoSuchHostedZone",
        "ResourceNotFoundException",
        "ServiceNotFoundException",
        "InvalidGroup.NotFound",
        "ParameterNotFound",
        "ClusterNotFoundException",
        "ObjectNotFoundException",
    ],
)
def test_not_found_codes(code: str) -> None:
    assert aws.is_not_found(err(code))


@pytest.mark.parametrize("code", ["AccessDenied", "Throttling", "", "NotFoundish"[:3], "Nosuch"])
def test_other_codes_are_not_not_found(code: str) -> None:
    assert not aws.is_not_found(err(code))
    assert not aws.is_not_found(KeyError("NotFound"))


def test_ignore_missing() -> None:
    assert aws.ignore_missing(lambda: 7) == 7

    def raising(e: Exception) -> Any:
        def fn() -> None:
            raise e

        return fn

    assert aws.ignore_missing(raising(err("NoSuchEntity"))) is None
    assert (
        aws.ignore_missing(raising(err("DependencyViolation")), also=("Dep", "DependencyViolation"))
        is None
    )
    gone = err("InvalidChangeBatch", "Tried to delete resource record set but it was not found")
    assert aws.ignore_missing(raising(gone), messages=("Tried to delete",)) is None
    with pytest.raises(ClientError):
        aws.ignore_missing(raising(gone), messages=("it was not found",))  # a start, not a part
    with pytest.raises(ClientError):
        aws.ignore_missing(raising(gone))
    with pytest.raises(ClientError):
        aws.ignore_missing(raising(err("AccessDenied")), also=("Throttling",))
    with pytest.raises(ValueError):
        aws.ignore_missing(raising(ValueError("x")))


def test_tags() -> None:
    assert aws.tag_list("s", "vpc") == [
        {"Key": "pcls:stack", "Value": "s"},
        {"Key": "pcls:step", "Value": "vpc"},
    ]
    assert aws.tag_list("s", "vpc", {"team": "v", "a": "1"}) == [
        {"Key": "a", "Value": "1"},
        {"Key": "pcls:stack", "Value": "s"},
        {"Key": "pcls:step", "Value": "vpc"},
        {"Key": "team", "Value": "v"},
    ]
    assert aws.tags_of(None) == {}
    assert aws.tags_of([{"Key": "a", "Value": "1"}, {"key": "b", "value": "2"}, {"Key": "c"},
                        {"Value": "orphan"}]) == {"a": "1", "b": "2", "c": ""}  # fmt: skip
    assert aws.tag_drift({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "x", "z": "9"}) == [
        "tag b: 'x' -> '2'",
        "tag c missing",
    ]
    assert aws.tag_drift({"a": "1"}, {"a": "1", "aws:x": "y"}) == []
    assert aws.stack_filter("meet") == [{"Name": "tag:pcls:stack", "Values": ["meet"]}]


def test_a_session_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ConfigError) as e:
        Aws(None)
    assert str(e.value) == "stack.region: not set; set it in pcls.toml or AWS_REGION"
    assert Aws("us-west-2").region == "us-west-2"


def test_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        Aws(REGION, profile="no-such-profile-here")
    assert str(e.value).startswith("AWS_PROFILE: ")
    assert "no-such-profile-here" in str(e.value)


def test_sandbox_credentials_and_client_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "real-looking")
    a = Aws(REGION, sandbox=True, endpoint_url="http://127.0.0.1:1")
    creds = a.session.get_credentials()
    assert (creds.access_key, creds.secret_key) == ("testing", "testing")
    assert (a.sandbox, a.endpoint_url, a.read_only) == (True, "http://127.0.0.1:1", False)
    assert a.config.retries == {"mode": "standard", "max_attempts": aws.RETRY_ATTEMPTS}
    assert aws.RETRY_ATTEMPTS == 10
    assert a.config.user_agent_extra == f"pcls/{__version__}"
    assert a.config.max_pool_connections == 32
    ec2 = a.client("ec2")
    assert a.client("ec2") is ec2
    assert ec2.meta.endpoint_url == "http://127.0.0.1:1"
    probe = a.probe_client("ec2")
    assert probe is a.probe_client("ec2") and probe is not ec2
    assert probe.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert ec2.meta.config.retries == {"mode": "standard", "total_max_attempts": 11}
    assert (probe.meta.config.connect_timeout, probe.meta.config.read_timeout) == (3, 5)
    assert probe.meta.endpoint_url == "http://127.0.0.1:1"
    assert a.endpoint == "http://127.0.0.1:1" and a.custom_endpoint
    plain = Aws(REGION)
    creds = plain.session.get_credentials()
    assert creds.access_key == "real-looking"
    assert plain.endpoint == f"https://sts.{REGION}.amazonaws.com"
    assert not plain.custom_endpoint
    for host, custom in (("x.amazonaws.com.cn", False), ("x.api.aws", False), ("evil.com", True)):
        other = Aws(REGION, endpoint_url=f"https://{host}")
        assert other.custom_endpoint is custom, host


def test_read_only_refuses_writes_and_every_call_is_counted(aws_mock: None) -> None:
    a = Aws(REGION)
    ec2 = a.client("ec2")
    a.current_step = "vpc"
    ec2.describe_vpcs()
    ec2.create_vpc(CidrBlock="10.1.0.0/16")
    a.read_only = True
    with pytest.raises(WriteInReadOnlyRun) as e:
        ec2.create_vpc(CidrBlock="10.2.0.0/16")
    assert str(e.value) == "ec2:CreateVpc refused: this run only reads"
    probe = a.probe_client("ec2")
    with pytest.raises(WriteInReadOnlyRun):
        probe.create_vpc(CidrBlock="10.3.0.0/16")
    a.current_step = ""
    probe.describe_vpcs()
    assert a.call_order == [("ec2", "DescribeVpcs"), ("ec2", "CreateVpc"), ("ec2", "DescribeVpcs")]
    assert a.step_calls == {("vpc", "ec2", "DescribeVpcs"): 1, ("vpc", "ec2", "CreateVpc"): 1,
                            ("", "ec2", "DescribeVpcs"): 1}  # fmt: skip
    assert a.call_summary() == {
        "reads": 2,
        "writes": 1,
        "total": 3,
        "calls": {"ec2:CreateVpc": 1, "ec2:DescribeVpcs": 2},
    }


def test_the_current_step_is_per_thread() -> None:
    a = Aws(REGION)
    assert a.current_step == ""
    a.current_step = "main"
    seen: list[str] = []
    t = threading.Thread(target=lambda: seen.append(a.current_step))
    t.start()
    t.join()
    assert seen == [""] and a.current_step == "main"


def test_identity_is_asked_once(aws_mock: None) -> None:
    a = Aws(REGION)
    assert a.identity() == {
        "account": "123456789012",
        "arn": "arn:aws:sts::123456789012:user/moto",
    }
    a.identity()
    assert a.calls == {("sts", "GetCallerIdentity"): 1}


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"])
def test_expired_credentials_are_a_config_error(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a = Aws(REGION)
    sts = a.client("sts")
    monkeypatch.setattr(sts, "get_caller_identity", lambda: (_ for _ in ()).throw(err(code)))
    with pytest.raises(ConfigError) as e:
        a.identity()
    assert str(e.value) == f"AWS credentials: {code}; refresh them (e.g. aws sso login) and retry"


def test_missing_credentials_and_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    a = Aws(REGION)
    sts = a.client("sts")

    def none() -> None:
        raise botocore.exceptions.NoCredentialsError()

    monkeypatch.setattr(sts, "get_caller_identity", none)
    with pytest.raises(ConfigError) as e:
        a.identity()
    assert str(e.value) == (
        "AWS credentials: none found; set AWS_PROFILE or AWS_ACCESS_KEY_ID, or use --sandbox"
    )
    monkeypatch.setattr(sts, "get_caller_identity", lambda: (_ for _ in ()).throw(err("Nope")))
    with pytest.raises(ClientError):
        a.identity()


def test_cached_reads_one_call_per_question_until_a_write(aws_mock: None) -> None:
    a = Aws(REGION)
    ec2 = a.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    a.calls.clear()
    f1 = [{"Name": "vpc-id", "Values": [vpc]}]
    first = a.all("ec2", "describe_vpcs", "Vpcs", Filters=f1)
    assert [v["VpcId"] for v in first] == [vpc]
    assert a.all("ec2", "describe_vpcs", "Vpcs", Filters=[{"Values": [vpc], "Name": "vpc-id"}])
    assert a.calls == {("ec2", "DescribeVpcs"): 1}  # the same question, however it is written
    a.all("ec2", "describe_vpcs", "Vpcs")  # another question
    assert a.calls[("ec2", "DescribeVpcs")] == 2
    a.all("logs", "describe_log_groups", "logGroups")
    a.client("logs").create_log_group(logGroupName="x")  # a write to logs: logs forgotten only
    a.all("ec2", "describe_vpcs", "Vpcs", Filters=f1)
    a.all("logs", "describe_log_groups", "logGroups")
    assert a.calls[("ec2", "DescribeVpcs")] == 2
    assert a.calls[("logs", "DescribeLogGroups")] == 2
    ec2.create_vpc(CidrBlock="10.2.0.0/16")
    assert len(a.all("ec2", "describe_vpcs", "Vpcs")) == len(first) + 2  # the default VPC too
    a.forget_cache()
    a.all("ec2", "describe_vpcs", "Vpcs")
    assert a.calls[("ec2", "DescribeVpcs")] == 4
    assert a.all("ec2", "describe_vpcs", "NoSuchKey") == []
    # not paginated: the call itself
    assert a.cached("sts", "get_caller_identity")["Account"] == "123456789012"


def test_concurrent_questions_share_one_call(aws_mock: None) -> None:
    a = Aws(REGION)
    a.client("ec2")
    start = threading.Barrier(6)

    def ask() -> None:
        start.wait()
        a.all("ec2", "describe_vpcs", "Vpcs")

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.calls == {("ec2", "DescribeVpcs"): 1}


def test_eventually_retries_what_it_is_told_and_nothing_else() -> None:
    sleeps: list[float] = []
    notes: list[str] = []
    answers = [err("InvalidParameterValueException", "role cannot be assumed")] * 5 + ["ok"]

    def fn() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    got = aws.eventually(fn, messages=("cannot be assumed",), timeout=8, on_retry=notes.append,
                         sleep=sleeps.append)  # fmt: skip
    assert got == "ok"
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubling from 0.5 s, at most timeout / 4
    assert notes == ["retrying (InvalidParameterValueException: role cannot be assumed)"] * 5
    calls = [0]

    def denied() -> None:
        calls[0] += 1
        raise err("AccessDenied")

    with pytest.raises(ClientError):
        aws.eventually(denied, codes=("Throttling",), messages=("x",), sleep=sleeps.append)
    assert calls == [1]

    def bad() -> None:
        calls[0] += 1
        raise ValueError("not a client error")

    with pytest.raises(ValueError):
        aws.eventually(bad, codes=("ValueError",), sleep=sleeps.append)
    assert calls == [2]


def test_eventually_gives_up_after_its_timeout_with_the_last_error() -> None:
    calls = [0]
    sleeps: list[float] = []

    def busy() -> None:
        calls[0] += 1
        raise err("Busy", f"try {calls[0]}")

    with pytest.raises(ClientError) as e:
        aws.eventually(busy, codes=("Busy",), timeout=0, sleep=sleeps.append)
    assert calls == [1] and sleeps == []
    assert aws.error_message(e.value) == "try 1"
    slow = aws.eventually(lambda: "done", codes=("Busy",), timeout=0)
    assert slow == "done"
    long_wait: list[float] = []
    answers = [err("Busy")] * 6 + ["ok"]

    def later() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert aws.eventually(later, codes=("Busy",), timeout=600, sleep=long_wait.append) == "ok"
    assert long_wait == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0]  # at most 15 s between tries


def test_a_client_in_another_region_is_its_own(aws_mock: None) -> None:
    a = Aws(REGION)
    home = a.client("sns", region="us-east-1")
    assert home.meta.region_name == "us-east-1"
    assert a.client("sns", region="us-east-1") is home
    assert a.client("sns") is not home
    assert a.client("sns").meta.region_name == REGION
    assert a.client("ec2", region=REGION) is a.client("ec2")
    home.list_topics()
    assert a.calls == {("sns", "ListTopics"): 1}  # counted like any other


@pytest.mark.parametrize(
    "code", ["InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure"]
)
def test_refused_credentials_are_explained_when_the_session_can(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = Aws(REGION)
    monkeypatch.setattr(
        a.client("sts"), "get_caller_identity", lambda: (_ for _ in ()).throw(err(code))
    )
    a.explain_rejection = lambda s: f"region {s.region} is not enabled"
    with pytest.raises(ConfigError) as e:
        a.identity()
    assert str(e.value) == f"region {REGION} is not enabled"
    a.explain_rejection = lambda s: ""
    if code == "InvalidClientTokenId":
        with pytest.raises(ConfigError) as e:
            a.identity()
        assert str(e.value).startswith("AWS credentials: InvalidClientTokenId; refresh them")
    else:
        with pytest.raises(ClientError):
            a.identity()


def test_questions_that_differ_deep_inside_are_not_confused(aws_mock: None) -> None:
    a = Aws(REGION)
    ec2 = a.client("ec2")
    one = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    two = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    for vpc in (one, two, one):
        got = a.all("ec2", "describe_vpcs", "Vpcs", Filters=[{"Name": "vpc-id", "Values": [vpc]}])
        assert [v["VpcId"] for v in got] == [vpc]
    got = a.all("ec2", "describe_vpcs", "Vpcs", VpcIds=[two])
    assert [v["VpcId"] for v in got] == [two]
    a.current_step = "s"
    a.all("ec2", "describe_vpcs", "Vpcs", VpcIds=[one])
    a.all("ec2", "describe_vpcs", "Vpcs", VpcIds=[two, one])
    assert a.step_calls[("s", "ec2", "DescribeVpcs")] == 2


def test_sessions_share_one_parse_of_the_service_models() -> None:
    first, second = Aws(REGION), Aws("us-west-2")
    loader = first.session._session.get_component("data_loader")
    assert loader is aws._LOADER
    assert second.session._session.get_component("data_loader") is loader


def test_the_wait_between_tries_is_at_least_a_fifth_of_a_second() -> None:
    sleeps: list[float] = []
    answers = [err("Busy"), "ok"]

    def fn() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert aws.eventually(fn, codes=("Busy",), timeout=0.4, sleep=sleeps.append) == "ok"
    assert sleeps == [0.2]  # at most timeout / 4 (0.1), but never under 0.2


def test_each_service_has_its_own_probe_client() -> None:
    a = Aws(REGION)
    ec2, logs = a.probe_client("ec2"), a.probe_client("logs")
    assert ec2 is not logs
    assert (ec2.meta.service_model.service_name, logs.meta.service_model.service_name) == (
        "ec2",
        "logs",
    )

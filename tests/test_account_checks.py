"""Account checks before any write: an opt-in region not enabled, AZs without Fargate, quotas.

moto knows which regions are opt-in (DescribeRegions says eu-central-2 is `not-opted-in`, as a
fresh account would), has no Account API (GetRegionOptStatus answers 404) and no Service Quotas
values (NoSuchResourceException, then NotImplementedError for the default). The answers AWS
gives where moto has none are injected before the emulator sees the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pcls.errors import ConfigError
from pcls.steps import account
from tests.faults import client_error, on_every_client
from tests.harness import Harness
from tests.test_aws_errors import ok, other, session, up

DOMAIN = "meet.example.com"
NETWORK = ("route-table", "sg-signal")
ANSWERED = SimpleNamespace(status_code=200, headers={})
Reply = Callable[[dict[str, Any]], dict[str, Any]]


@contextmanager
def answering(replies: dict[str, Reply], asked: list[str] | None = None) -> Iterator[None]:
    """Answer `service-id:Operation` on every client made meanwhile, as AWS would: with the
    reply's parsed answer, or the ClientError it raises. `asked` records every such call."""

    def register(client: Any) -> None:
        sid = client.meta.service_model.service_id.hyphenize()
        for key, reply in replies.items():
            service, operation = key.split(":")
            if service != sid:
                continue

            def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
                context["answer_params"] = dict(params)  # the call's own parameters

            def answer(
                context: dict[str, Any], key: str = key, reply: Reply = reply, **_: Any
            ) -> tuple[Any, dict[str, Any]]:
                if asked is not None:
                    asked.append(key)
                return ANSWERED, reply(context.get("answer_params", {}))

            client.meta.events.register(f"before-parameter-build.{sid}.{operation}", remember)
            client.meta.events.register(f"before-call.{sid}.{operation}", answer)

    with on_every_client(register):
        yield


def counting(keys: list[str], asked: list[str]) -> Callable[[Any], None]:
    def register(client: Any) -> None:
        sid = client.meta.service_model.service_id.hyphenize()
        for key in keys:
            service, operation = key.split(":")
            if service == sid:
                client.meta.events.register(
                    f"before-call.{sid}.{operation}", lambda key=key, **_: asked.append(key)
                )

    return register


def denied(operation: str, code: str = "AccessDeniedException") -> Reply:
    def reply(_: dict[str, Any]) -> dict[str, Any]:
        action = {"GetRegionOptStatus": "account", "DescribeRegions": "ec2"}.get(operation, "x")
        raise client_error(
            code,
            f"User: arn:aws:iam::123456789012:user/ops is not authorized to perform: "
            f"{action}:{operation}",
            operation,
        )

    return reply


def opt_status(status: str) -> Reply:
    return lambda p: {"RegionName": p.get("RegionName", ""), "RegionOptStatus": status}


def quota(value: float) -> Reply:
    return lambda p: {
        "Quota": {"ServiceCode": p["ServiceCode"], "QuotaCode": p["QuotaCode"], "Value": value}
    }


def in_region(tmp_path: Path, region: str) -> Harness:
    h = Harness(tmp_path, region=region, domain=DOMAIN)
    h.make_zone("example.com")
    return h


@pytest.fixture
def zurich(tmp_path: Path, aws_mock: None) -> Harness:
    return in_region(tmp_path, "eu-central-2")


@pytest.fixture
def virginia(tmp_path: Path, aws_mock: None) -> Harness:
    return in_region(tmp_path, "us-east-1")


def built_anything(h: Harness) -> bool:
    ec2 = other(h, "ec2")
    vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    params = other(h, "ssm").describe_parameters()["Parameters"]
    return bool(vpcs or params)


def warnings(s: Any) -> list[str]:
    return [e[1] for e in s.ui.events if e[0] == "info" and e[1].startswith("warning: ")]


# -- regions -----------------------------------------------------------------------------------

ENABLE = "`aws account enable-region --region-name eu-central-2`"


@pytest.mark.parametrize("command", ["plan", "up"])
def test_an_opt_in_region_not_enabled_stops_before_any_write_saying_how_to_enable_it(
    zurich: Harness, command: str, capsys: Any
) -> None:
    res = zurich.cli(command, capsys=capsys)
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert lines == [
        "error: stack.region: eu-central-2 is an opt-in region that is not enabled for this "
        f"account; enable it with {ENABLE} (or in the console: account menu, Account, AWS "
        "Regions, Enable), wait until it shows Enabled, then run again"
    ]
    assert "credentials" not in res.err
    assert not built_anything(zurich)


def test_the_account_api_answers_first_and_describe_regions_is_not_asked(
    zurich: Harness,
) -> None:
    asked: list[str] = []
    replies = {"account:GetRegionOptStatus": opt_status("ENABLED")}
    with answering(replies, asked), on_every_client(counting(["ec2:DescribeRegions"], asked)):
        ok(up(session(zurich, *NETWORK)))
    assert asked == ["account:GetRegionOptStatus"]


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("DISABLED", f"is an opt-in region that is not enabled for this account; enable it with "
                     f"{ENABLE}"),
        ("DISABLING", "is an opt-in region that is not enabled"),
        ("ENABLING", "is still being enabled for this account (this takes minutes, sometimes "
                     "hours); run again once `aws account get-region-opt-status --region-name "
                     "eu-central-2` says ENABLED"),
    ],
)  # fmt: skip
def test_what_the_account_api_says_is_what_stops_the_run(
    zurich: Harness, status: str, says: str, capsys: Any
) -> None:
    with answering({"account:GetRegionOptStatus": opt_status(status)}):
        res = zurich.cli("up", capsys=capsys)
    assert res.code == 2 and says in res.err, res.err
    assert not built_anything(zurich)


def test_access_denied_on_the_account_api_falls_back_to_describe_regions(
    zurich: Harness, capsys: Any
) -> None:
    asked: list[str] = []
    replies = {"account:GetRegionOptStatus": denied("GetRegionOptStatus")}
    with answering(replies, asked), on_every_client(counting(["ec2:DescribeRegions"], asked)):
        res = zurich.cli("plan", capsys=capsys)
    assert asked == ["account:GetRegionOptStatus", "ec2:DescribeRegions"]
    assert res.code == 2 and ENABLE in res.err
    assert "warning" not in res.out + res.err


def test_describe_regions_is_asked_in_the_partitions_home_region(zurich: Harness) -> None:
    """A region not enabled refuses the credentials themselves; us-east-1 never does."""
    regions: list[str] = []

    def register(client: Any) -> None:
        if client.meta.service_model.service_name == "ec2":
            client.meta.events.register(
                "before-call.ec2.DescribeRegions",
                lambda **_: regions.append(client.meta.region_name),
            )

    with on_every_client(register), pytest.raises(ConfigError):
        account.check_region(session(zurich).ctx)
    assert regions == ["us-east-1"]


def test_when_neither_call_is_allowed_a_warning_says_so_and_up_goes_on(
    harness: Harness,
) -> None:
    s = session(harness, *NETWORK)
    replies = {
        "account:GetRegionOptStatus": denied("GetRegionOptStatus"),
        "ec2:DescribeRegions": denied("DescribeRegions", "UnauthorizedOperation"),
    }
    with answering(replies):
        ok(up(s))
    (line,) = warnings(s)
    assert line.startswith(
        "warning: could not check that eu-central-1 is enabled for this account "
        "(account:GetRegionOptStatus: AccessDeniedException: User: "
    )
    assert "ec2:DescribeRegions: UnauthorizedOperation: " in line
    assert line.endswith(
        "if it is an opt-in region, enable it first "
        "(aws account enable-region --region-name eu-central-1)"
    )


def test_a_region_enabled_by_default_passes_quietly(harness: Harness) -> None:
    s = session(harness, *NETWORK)
    ok(up(s))
    assert warnings(s) == []


def test_region_refusal_is_there_for_a_caller_before_sts(zurich: Harness) -> None:
    """GetCallerIdentity in a region not enabled fails as InvalidClientTokenId; a caller
    that meets it can ask region_refusal what it really is."""
    s = session(zurich)
    assert ENABLE in account.region_refusal(s.aws)
    frankfurt = zurich.root / "frankfurt"
    frankfurt.mkdir()
    assert account.region_refusal(session(in_region(frankfurt, "eu-central-1")).aws) == ""


# -- Fargate by AZ id --------------------------------------------------------------------------


def test_an_az_without_fargate_is_left_out_and_too_few_left_is_refused(
    virginia: Harness, capsys: Any
) -> None:
    virginia.write_config("[network]\nazs = 6\n")
    res = virginia.cli("plan", capsys=capsys)
    assert res.code == 2
    (line,) = res.err.strip().splitlines()
    assert line.startswith("error: network.azs: 6 asked, but us-east-1 offers 5 (us-east-1a, ")
    assert "us-east-1e (use1-az3) is left out: us-east-1's constrained zone" in line
    assert account.FARGATE_REGIONS_PAGE in line and "at most 5" in line
    assert not built_anything(virginia)

    virginia.write_config("[network]\nazs = 5\n")
    built = ok(up(session(virginia, *NETWORK)))
    subnets = other(virginia, "ec2").describe_subnets(
        SubnetIds=[built.results[f"subnet-{i}"].id for i in range(1, 6)]
    )["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == [
        "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f",
    ]  # fmt: skip
    assert "use1-az3" not in {s["AvailabilityZoneId"] for s in subnets}


def test_a_subnet_already_in_an_az_without_fargate_is_reported(virginia: Harness) -> None:
    built = ok(up(session(virginia, *NETWORK)))
    virginia.write_config("[network]\nazs = 3\n")
    other(virginia, "ec2").create_subnet(
        VpcId=built.results["vpc"].id,
        CidrBlock="10.42.32.0/20",
        AvailabilityZone="us-east-1e",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [
            {"Key": "pcls:stack", "Value": "meet"}, {"Key": "pcls:step", "Value": "subnet-3"},
        ]}],
    )  # fmt: skip
    status = session(virginia, "subnet-3").engine.status()
    assert status.results["subnet-3"].drift[0] == (
        "in us-east-1e (use1-az3): us-east-1's constrained zone, where Fargate places no task "
        "(tear down and up again to move it)"
    )


@pytest.mark.parametrize(
    ("region", "zone_id", "refused"),
    [
        ("us-west-1", "usw1-az1", False),
        ("us-west-1", "usw1-az2", True),
        ("ap-northeast-1", "apne1-az3", True),
        ("ap-northeast-1", "apne1-az4", False),
        ("cn-north-1", "cnn1-az4", True),
        ("us-east-1", "use1-az3", True),
        ("us-east-1", "use1-az6", False),
        ("eu-central-2", "euc2-az1", False),
    ],
)
def test_fargate_is_decided_by_az_id(region: str, zone_id: str, refused: bool) -> None:
    zones = [{"ZoneName": f"{region}x", "ZoneId": zone_id}]
    usable, left_out = account.fargate_zones(region, zones)
    assert (not usable, bool(left_out)) == (refused, refused)
    if refused and region != "us-east-1":
        assert "only in" in left_out[0][1]


# -- quotas ------------------------------------------------------------------------------------

ON_DEMAND = "service-quotas:GetServiceQuota"
# Sizes the quota figures below are worked out for (not the defaults, which may change).
SIZES = "[signal]\ncpu = 1024\nmemory = 2048\n[jvb]\ncpu = 2048\nmemory = 4096\n"


def plan_lines(h: Harness, capsys: Any, replies: dict[str, Reply]) -> list[str]:
    with answering(replies):
        res = h.cli("plan", capsys=capsys)
    assert res.code == 0, (res.out, res.err)
    return [line for line in (res.out + res.err).splitlines() if line.startswith("warning: ")]


def by_code(values: dict[str, float]) -> Reply:
    def reply(p: dict[str, Any]) -> dict[str, Any]:
        if p["QuotaCode"] not in values:
            raise client_error("NoSuchResourceException", "no such quota", "GetServiceQuota")
        return quota(values[p["QuotaCode"]])(p)

    return reply


def test_plan_warns_when_the_maximum_would_pass_the_fargate_quotas(
    harness: Harness, capsys: Any
) -> None:
    # 2 signal shards of 1 vCPU; 4 bridges of 2 vCPU, 1 On-Demand base, then 1:1 Spot:
    # On-Demand 2 + 3 bridges = 8 vCPU at most, Spot 2 bridges = 4 vCPU at most.
    harness.write_config(SIZES)
    lines = plan_lines(
        harness, capsys, {ON_DEMAND: by_code({"L-3032A538": 6, "L-36FBB829": 2, "L-53DA6B97": 50})}
    )
    fargate = [line for line in lines if "Fargate" in line]
    assert fargate == [
        "warning: Fargate On-Demand vCPU resource count (L-3032A538) is 6 in eu-central-1, but "
        "the signal shards and the On-Demand bridges at 4 bridges (jvb.max_count) need 8 (shared "
        "with every other Fargate task of the account in the region); tasks beyond it never "
        "start: ask for more (aws service-quotas request-service-quota-increase --service-code "
        "fargate --quota-code L-3032A538 --desired-value 8) or lower jvb.max_count",
        "warning: Fargate Spot vCPU resource count (L-36FBB829) is 2 in eu-central-1, but the "
        "Spot bridges at 4 bridges (jvb.max_count) need 4 (shared with every other Fargate task "
        "of the account in the region); tasks beyond it never start: ask for more (aws "
        "service-quotas request-service-quota-increase --service-code fargate --quota-code "
        "L-36FBB829 --desired-value 4) or lower jvb.max_count",
    ]


def test_within_the_quotas_nothing_is_said(harness: Harness, capsys: Any) -> None:
    lines = plan_lines(harness, capsys, {ON_DEMAND: quota(4000)})
    assert [line for line in lines if "quota" in line.lower() or "Fargate" in line] == []


def test_an_account_without_its_own_value_is_held_to_the_aws_default(
    harness: Harness, capsys: Any
) -> None:
    """GetServiceQuota answers NoSuchResourceException (as moto does) until the account has
    a value of its own: the AWS default applies."""
    asked: list[str] = []
    harness.write_config(SIZES)
    with on_every_client(counting([ON_DEMAND], asked)):
        lines = plan_lines(
            harness,
            capsys,
            {"service-quotas:GetAWSDefaultServiceQuota": by_code({"L-3032A538": 6})},
        )
    assert asked.count(ON_DEMAND) == 3  # moto's own NoSuchResourceException, for each quota
    assert any(line.startswith("warning: Fargate On-Demand vCPU resource count (L-3032A538) is 6")
               for line in lines), lines  # fmt: skip
    assert not any("Spot vCPU" in line for line in lines)  # no default known: nothing said


def test_quotas_that_cannot_be_read_are_not_a_failure(harness: Harness, capsys: Any) -> None:
    denial = denied("GetServiceQuota")
    lines = plan_lines(harness, capsys, {ON_DEMAND: denial})
    assert not [line for line in lines if "quota" in line.lower()]
    # And with moto's own answers (no value, no default call): the same.
    assert not [line for line in plan_lines(harness, capsys, {}) if "quota" in line.lower()]


def test_plan_warns_when_no_load_balancer_is_left_in_the_quota(
    harness: Harness, capsys: Any
) -> None:
    ec2 = other(harness, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    zones = ["eu-central-1a", "eu-central-1b"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=z)["Subnet"][
            "SubnetId"
        ]
        for n, z in enumerate(zones)
    ]
    other(harness, "elbv2").create_load_balancer(Name="theirs", Subnets=subnets)
    lines = plan_lines(harness, capsys, {ON_DEMAND: by_code({"L-53DA6B97": 1})})
    assert (
        "warning: Application Load Balancers per Region (L-53DA6B97) is 1 in eu-central-1 and "
        "1 exist: creating the stack's load balancer will be refused; ask for more or delete "
        "an unused one"
    ) in lines


def test_plan_states_the_cost_of_the_public_ipv4_addresses_and_up_does_not(
    harness: Harness, capsys: Any
) -> None:
    lines = plan_lines(harness, capsys, {})
    assert (
        "warning: public IPv4 addresses are billed at $0.005 per hour each, in use or not: the "
        "stack holds up to 8 (2 for the load balancer, one per task: 2 signal shards, up to 4 "
        "bridges), about $29.20/month at the maximum"
    ) in lines
    s = session(harness, *NETWORK)
    ok(up(s))
    assert not [w for w in warnings(s) if "IPv4" in w]


def test_a_scheduled_maximum_above_jvb_max_count_counts(harness: Harness, capsys: Any) -> None:
    harness.write_config(
        SIZES + '[[scaling.schedule]]\nname = "class"\ncron = "cron(0 8 ? * MON-FRI *)"\n'
        "min_count = 2\nmax_count = 10\n"
    )
    lines = plan_lines(harness, capsys, {ON_DEMAND: by_code({"L-3032A538": 6})})
    # 2 shards of 1 vCPU + 1 base + 5 of the other 9 bridges On-Demand, 2 vCPU each
    assert any("at 10 bridges (jvb.max_count) need 14" in line for line in lines), lines


# -- dual stack on Fargate ---------------------------------------------------------------------


def test_dual_stack_without_the_ecs_account_setting_is_warned_about(
    harness: Harness, capsys: Any
) -> None:
    harness.write_config("[network]\ndual_stack = true\n")
    lines = plan_lines(harness, capsys, {})  # moto: no setting, so the default (disabled)
    assert any(
        "network.dual_stack: the ECS account setting dualStackIPv6 is not enabled" in line
        and "aws ecs put-account-setting-default --name dualStackIPv6 --value enabled" in line
        for line in lines
    ), lines
    enabled = {
        "ecs:ListAccountSettings": lambda p: {
            "settings": [{"name": "dualStackIPv6", "value": "enabled", "principalArn": "x"}]
        }
    }
    assert not [line for line in plan_lines(harness, capsys, enabled) if "dualStack" in line]


@pytest.mark.parametrize("command", ["plan", "up", "status", "teardown"])
def test_sts_refusing_the_credentials_in_a_region_not_enabled_says_what_it_is(
    zurich: Harness, command: str, capsys: Any
) -> None:
    """On AWS, STS of a region that is not enabled answers InvalidClientTokenId: the one-line
    error names the region and how to enable it, not the credentials."""

    def refused(_: dict[str, Any]) -> dict[str, Any]:
        raise client_error(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            "GetCallerIdentity",
        )

    replies = {
        "sts:GetCallerIdentity": refused,
        "account:GetRegionOptStatus": opt_status("DISABLED"),
    }
    with answering(replies):
        args = [command, "--yes"] if command == "teardown" else [command]
        res = zurich.cli(*args, capsys=capsys)
    assert res.code == 2, (res.out, res.err)
    assert res.err.strip().splitlines() == [
        "error: stack.region: eu-central-2 is an opt-in region that is not enabled for this "
        f"account; enable it with {ENABLE} (or in the console: account menu, Account, AWS "
        "Regions, Enable), wait until it shows Enabled, then run again"
    ]
    assert not built_anything(zurich)


def test_sts_refusing_the_credentials_in_an_enabled_region_is_a_credentials_error(
    zurich: Harness, capsys: Any
) -> None:
    def refused(_: dict[str, Any]) -> dict[str, Any]:
        raise client_error("InvalidClientTokenId", "The security token is invalid.", "x")

    replies = {
        "sts:GetCallerIdentity": refused,
        "account:GetRegionOptStatus": opt_status("ENABLED"),
    }
    with answering(replies):
        res = zurich.cli("plan", capsys=capsys)
    assert res.code == 2
    assert res.err.startswith("error: AWS credentials: InvalidClientTokenId;"), res.err

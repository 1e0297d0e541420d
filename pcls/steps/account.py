"""Account checks before any write: the region is enabled, its AZs run Fargate, quotas fit.

`preflight(ctx)` runs first of all preflight checks (from the vpc step's), in `plan` and `up`:

- Region: an opt-in region (eu-central-2, the README's example, is one) that the account has
  not enabled answers every regional call with a credentials error. pcls asks the Account API
  (`account:GetRegionOptStatus`), falling back to `ec2:DescribeRegions` (AllRegions, asked in
  the partition's home region, which is always enabled); a region that is not enabled stops
  the run with exit 2 and the command that enables it. If neither call is allowed, a warning
  says so and the run goes on.
- Availability zones: Fargate does not run in every AZ of every region, and which ones is
  decided by AZ id (use1-az3), never by name (us-east-1e in one account is another zone in the
  next). `fargate_zones` leaves those out of the stack's AZs; too few left is refused.
- Quotas a new account meets: Fargate On-Demand and Spot vCPUs and load balancers per region
  (Service Quotas, falling back to the AWS default when the account has no value of its own).
  A configured maximum above a quota is a warning, never a failure: the quota is the account's
  and may be raised while the stack runs. `plan` also states what the public IPv4 addresses
  the stack holds cost, as they are billed by the hour whether used or not.

Warnings are `warning: ...` lines through the reporter (and kept in `ctx.warnings` when the
context has that list). Against a custom endpoint (the sandbox) none of this is asked: the
emulator serves every region and has no quotas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from pcls.aws import Aws, describe_error, error_code
from pcls.engine import Context
from pcls.errors import ConfigError

# -- regions -----------------------------------------------------------------------------------

# A region's opt-in state can be read from a region that is always enabled: its partition's
# first one. (A regional endpoint of a region not enabled refuses the credentials themselves.)
HOME_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
ENABLED = "enabled"
ENABLING = "enabling"
DISABLED = "disabled"
NO_SUCH_REGION = "no such region"
# account:GetRegionOptStatus RegionOptStatus, and ec2:DescribeRegions OptInStatus.
OPT_STATUS = {
    "ENABLED": ENABLED,
    "ENABLED_BY_DEFAULT": ENABLED,
    "ENABLING": ENABLING,
    "DISABLING": DISABLED,
    "DISABLED": DISABLED,
    "opt-in-not-required": ENABLED,
    "opted-in": ENABLED,
    "not-opted-in": DISABLED,
}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


# -- Fargate by AZ id --------------------------------------------------------------------------

FARGATE_REGIONS_PAGE = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AWS_Fargate-Regions.html"
)
# Regions where Linux tasks on Fargate run only in some AZs, by AZ id, as the table "Linux
# containers on AWS Fargate" of FARGATE_REGIONS_PAGE lists them ("... only"; read 2025).
FARGATE_ONLY_IN: dict[str, frozenset[str]] = {
    "us-west-1": frozenset({"usw1-az1", "usw1-az3"}),
    "ap-northeast-1": frozenset({"apne1-az1", "apne1-az2", "apne1-az4"}),
    "cn-north-1": frozenset({"cnn1-az1", "cnn1-az2"}),
}
# AZ ids without Fargate in a region the page lists without exceptions. use1-az3 is us-east-1's
# constrained zone: it offers no current-generation capacity (new accounts often do not see it
# at all) and Fargate places no task there; operators exclude it by id for that reason.
FARGATE_NEVER_IN: dict[str, str] = {
    "use1-az3": "us-east-1's constrained zone, where Fargate places no task",
}


def fargate_refusal(region: str, zone_id: str) -> str:
    """Why Fargate does not run in AZ `zone_id` of `region`, or '' when it does."""
    if zone_id in FARGATE_NEVER_IN:
        return FARGATE_NEVER_IN[zone_id]
    only = FARGATE_ONLY_IN.get(region)
    if only is not None and zone_id and zone_id not in only:
        return f"Fargate runs in {region} only in {', '.join(sorted(only))}"
    return ""


def fargate_zones(
    region: str, zones: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """(zones Fargate runs in, [(zone, why not)]), each list sorted by zone name."""
    usable, left_out = [], []
    for zone in sorted(zones, key=lambda z: str(z["ZoneName"])):
        why = fargate_refusal(region, str(zone.get("ZoneId", "")))
        if why:
            left_out.append((zone, why))
        else:
            usable.append(zone)
    return usable, left_out


# -- quotas ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    service: str
    code: str
    name: str


# Quota codes as Service Quotas names them (aws service-quotas list-aws-default-service-quotas).
FARGATE_ON_DEMAND = Quota("fargate", "L-3032A538", "Fargate On-Demand vCPU resource count")
FARGATE_SPOT = Quota("fargate", "L-36FBB829", "Fargate Spot vCPU resource count")
ALBS_PER_REGION = Quota(
    "elasticloadbalancing", "L-53DA6B97", "Application Load Balancers per Region"
)
PUBLIC_IPV4_HOUR = 0.005  # USD per public IPv4 address-hour, every commercial region (2024-02)
HOURS_PER_MONTH = 730


def warn(ctx: Context, text: str) -> None:
    """A `warning: ...` line on the reporter; kept in ctx.warnings when the context has one."""
    kept = getattr(ctx, "warnings", None)
    if isinstance(kept, list):
        kept.append(text)
    ctx.ui.info(f"warning: {text}")


def _home_client(aws: Aws, service: str) -> Any:
    """A client in the partition's home region, counted and write-guarded like the others."""
    return aws.client(service, region=HOME_REGION[partition_of(aws.region)])


def region_status(aws: Aws) -> tuple[str, list[str]]:
    """(enabled | enabling | disabled | no such region | '' when unknown, the errors met)."""
    region = aws.region
    errors: list[str] = []
    try:
        resp = aws.client("account").get_region_opt_status(RegionName=region)
        status = OPT_STATUS.get(str(resp.get("RegionOptStatus", "")), "")
        if status:
            return status, errors
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        errors.append(f"account:GetRegionOptStatus: {describe_error(exc)}")
    try:
        regions = _home_client(aws, "ec2").describe_regions(AllRegions=True)["Regions"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        errors.append(f"ec2:DescribeRegions: {describe_error(exc)}")
        return "", errors
    mine = [r for r in regions if r.get("RegionName") == region]
    if not mine:
        return NO_SUCH_REGION, errors
    return OPT_STATUS.get(str(mine[0].get("OptInStatus", "")), ""), errors


def refusal(region: str, status: str) -> str:
    """The one-line reason a region in `status` cannot be used, or ''."""
    if status == DISABLED:
        return (
            f"stack.region: {region} is an opt-in region that is not enabled for this account; "
            f"enable it with `aws account enable-region --region-name {region}` (or in the "
            "console: account menu, Account, AWS Regions, Enable), wait until it shows "
            "Enabled, then run again"
        )
    if status == ENABLING:
        return (
            f"stack.region: {region} is still being enabled for this account (this takes "
            "minutes, sometimes hours); run again once `aws account get-region-opt-status "
            f"--region-name {region}` says ENABLED"
        )
    if status == NO_SUCH_REGION:
        return f"stack.region: {region} is not a region of this AWS partition"
    return ""


def region_refusal(aws: Aws) -> str:
    """Why the configured region cannot be used, or '' (also when that cannot be told).

    For callers outside the engine: a region not enabled fails STS's GetCallerIdentity with
    InvalidClientTokenId, which reads as a credentials problem; this says what it is.
    """
    return refusal(aws.region, region_status(aws)[0])


def check_region(ctx: Context) -> None:
    region = ctx.aws.region
    status, errors = region_status(ctx.aws)
    why = refusal(region, status)
    if why:
        raise ConfigError(why)
    if not status and errors:
        warn(
            ctx,
            f"could not check that {region} is enabled for this account "
            f"({'; '.join(errors)}); if it is an opt-in region, enable it first "
            f"(aws account enable-region --region-name {region})",
        )


def _quota_value(ctx: Context, quota: Quota) -> float | None:
    """The account's value of a quota, else AWS's default; None when neither can be read."""
    client = ctx.aws.probe_client("service-quotas")  # optional: one try, short timeouts
    try:
        resp = client.get_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)
        return float(resp["Quota"]["Value"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        if error_code(exc) != "NoSuchResourceException":
            return None  # not allowed to read it (or throttled): nothing to say
    try:
        resp = client.get_aws_default_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)
        return float(resp["Quota"]["Value"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None
    except NotImplementedError:  # an emulator without the call
        return None


def bridge_maximum(ctx: Context) -> int:
    """The most bridges autoscaling or a scheduled action may run."""
    scheduled = [e.max_count for e in ctx.cfg.scaling.schedule]
    return max([ctx.cfg.jvb.max_count, *scheduled])


def vcpu_at_maximum(ctx: Context) -> tuple[float, float]:
    """(On-Demand, Spot) vCPUs with the signal task and the most bridges running.

    The first `jvb.ondemand_base` bridges are regular FARGATE; ECS splits the rest by weight,
    FARGATE_SPOT `jvb.spot_weight` against FARGATE 1. Both shares are rounded up, so each
    figure is the most that kind can need.
    """
    jvb = ctx.cfg.jvb
    bridges = bridge_maximum(ctx)
    base = min(bridges, jvb.ondemand_base)
    rest = bridges - base
    weight = jvb.spot_weight
    spot = math.ceil(rest * weight / (weight + 1)) if weight else 0
    on_demand = base + (math.ceil(rest / (weight + 1)) if weight else rest)
    per_bridge = jvb.cpu / 1024
    signal = ctx.cfg.signal.shards * ctx.cfg.signal.cpu / 1024  # one task per shard
    return signal + on_demand * per_bridge, spot * per_bridge


def check_quotas(ctx: Context) -> None:
    region = ctx.aws.region
    on_demand, spot = vcpu_at_maximum(ctx)
    bridges = bridge_maximum(ctx)
    shared = "shared with every other Fargate task of the account in the region"
    for quota, need, what in (
        (FARGATE_ON_DEMAND, on_demand, "the signal shards and the On-Demand bridges"),
        (FARGATE_SPOT, spot, "the Spot bridges"),
    ):
        if need <= 0:
            continue
        value = _quota_value(ctx, quota)
        if value is not None and need > value:
            warn(
                ctx,
                f"{quota.name} ({quota.code}) is {value:g} in {region}, but {what} at "
                f"{bridges} bridges (jvb.max_count) need {need:g} ({shared}); tasks beyond it "
                f"never start: ask for more (aws service-quotas request-service-quota-increase "
                f"--service-code {quota.service} --quota-code {quota.code} --desired-value "
                f"{math.ceil(need)}) or lower jvb.max_count",
            )
    from pcls.steps.loadbalancer import alb_name  # it imports the network steps, which need us

    lbs = ctx.aws.all("elbv2", "describe_load_balancers", "LoadBalancers")
    albs = [lb for lb in lbs if lb.get("Type", "application") == "application"]
    if not any(lb.get("LoadBalancerName") == alb_name(ctx) for lb in albs):
        value = _quota_value(ctx, ALBS_PER_REGION)
        if value is not None and len(albs) + 1 > value:
            warn(
                ctx,
                f"{ALBS_PER_REGION.name} ({ALBS_PER_REGION.code}) is {value:g} in {region} and "
                f"{len(albs)} exist: creating the stack's load balancer will be refused; ask for "
                "more or delete an unused one",
            )


def note_public_ipv4(ctx: Context) -> None:
    """Public IPv4 addresses have no quota to meet, but each is billed by the hour."""
    bridges = bridge_maximum(ctx)
    azs = ctx.cfg.network.azs
    shards = ctx.cfg.signal.shards
    most = azs + shards + bridges
    rate = PUBLIC_IPV4_HOUR
    try:
        from pcls.cost import load_prices

        rate = float(load_prices()["regions"][ctx.aws.region]["public_ipv4_hour"]["value"])
    except (KeyError, TypeError, ValueError):
        pass
    warn(
        ctx,
        f"public IPv4 addresses are billed at ${rate:g} per hour each, in use or not: the "
        f"stack holds up to {most} ({azs} for the load balancer, one per task: "
        f"{shards} signal shards, up to {bridges} bridges), about "
        f"${most * rate * HOURS_PER_MONTH:,.2f}/month at the maximum",
    )


def check_dual_stack(ctx: Context) -> None:
    """Fargate gives a task an IPv6 address only with the account setting dualStackIPv6."""
    if not ctx.cfg.network.dual_stack:
        return
    try:
        resp = ctx.aws.probe_client("ecs").list_account_settings(
            name="dualStackIPv6", effectiveSettings=True
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return
    values = {s.get("value") for s in resp.get("settings", [])}
    if "enabled" not in values:
        warn(
            ctx,
            "network.dual_stack: the ECS account setting dualStackIPv6 is not enabled in "
            f"{ctx.aws.region}, so the bridges get no IPv6 address (the load balancer still "
            "answers over IPv6); enable it with `aws ecs put-account-setting-default --name "
            "dualStackIPv6 --value enabled`, then redeploy the services",
        )


def preflight(ctx: Context) -> None:
    """Every account check, before any write (plan and up). Skipped against an emulator."""
    if ctx.aws.custom_endpoint:
        return
    check_region(ctx)
    check_quotas(ctx)
    check_dual_stack(ctx)
    if ctx.mode == "plan":
        note_public_ipv4(ctx)

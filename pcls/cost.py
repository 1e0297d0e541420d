"""Monthly cost model behind `pcls cost` and the cost line of `pcls plan`.

Pure arithmetic over the packaged price table (`pcls/data/prices.json`): no AWS calls. Every
figure in that table carries its source and date; figures derived rather than read (most of
eu-central-2) carry `estimate: true`, and every line or comparison that reads one is flagged.

Conventions, applied everywhere:
- 730 hours per month; on-demand Linux/x86 list prices in USD before tax.
- "idle" = every service at its minimum task count all month; "max" = the JVB pool at its
  maximum all month (an upper bound for the fixed part of the bill).
- Perpetual, account-wide free tiers (CloudWatch: 10 metrics, 10 alarms, 3 dashboards, 5 GB logs)
  are applied as if this stack were the account's only user; the amount they save is reported so
  a busy account can add it back. 12-month new-account free tiers (ALB 750 h) are not applied.
- Internet egress is usage: it appears as a rate per 100 participant-hours at the full
  $/GB, without the account's free 100 GB/month (which other workloads may already use).
- Money stays unrounded internally; `to_dict` and `render_lines` round to cents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

BANDS = ("low", "central", "high")
# CloudWatch list prices are lowest in us-east-1, so its rate is a floor for a region the table
# has no figure for (the Frankfurt/Zurich Logs ingestion price was not found).
_FLOOR_REGION = "us-east-1"


@dataclass(frozen=True)
class CostInputs:
    """What the bill depends on. Defaults match the default pcls config."""

    region: str
    azs: int = 2  # public subnets / AZs; the ALB holds one public IPv4 per AZ
    signal_cpu: int = 1024  # Fargate CPU units (1024 = 1 vCPU); signal tasks always on-demand
    signal_memory: int = 2048  # MiB
    signal_count: int = 2  # signal shards, one task each (web + prosody + jicofo + router)
    jvb_cpu: int = 2048
    jvb_memory: int = 4096
    jvb_min: int = 2  # one bridge per AZ
    jvb_max: int = 4
    jvb_ondemand_base: int = 1  # FARGATE base tasks
    jvb_spot_weight: int = 1  # FARGATE_SPOT weight against FARGATE weight 1 (0 = no Spot)
    alarms: int = 6
    dashboards: int = 1
    custom_metrics: int = 2  # bridge metrics published by the sidecar
    log_gb_month: float = 1.0
    hosted_zone_created: bool = False  # True only when pcls creates (and pays for) the zone
    container_insights: bool = False


@dataclass(frozen=True)
class Line:
    """One itemized monthly charge."""

    name: str
    idle_usd: float
    max_usd: float
    estimate: bool
    note: str = ""
    figures: tuple[str, ...] = ()  # price-table keys the amount reads


@dataclass(frozen=True)
class ParticipantHours:
    """Usage cost of 100 participant-hours for one bandwidth band."""

    band: str
    gb_per_participant_hour: float
    egress_gb: float
    egress_usd: float
    jvb_task_hours: float
    jvb_usd: float  # Fargate (with the Spot share) plus the task's public IPv4

    @property
    def total_usd(self) -> float:
        return self.egress_usd + self.jvb_usd


@dataclass(frozen=True)
class Comparison:
    """An alternative design priced for the same month."""

    key: str
    name: str
    idle_usd: float
    max_usd: float
    estimate: bool
    note: str
    figures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    region: str
    as_of: str  # compiled date of the price table
    currency: str
    hours_per_month: int
    inputs: CostInputs
    lines: tuple[Line, ...]
    per_100_participant_hours: tuple[ParticipantHours, ...]
    capacity_basis: str
    comparisons: tuple[Comparison, ...]
    estimated_figures: tuple[str, ...]  # "key: derivation" for each estimated figure used
    assumptions: tuple[str, ...]
    free_tier_saving_usd: float  # CloudWatch cost the free tier absorbs at idle

    @property
    def total_idle(self) -> float:
        return sum(line.idle_usd for line in self.lines)

    @property
    def total_max(self) -> float:
        return sum(line.max_usd for line in self.lines)

    @property
    def estimate(self) -> bool:
        return any(line.estimate for line in self.lines)

    def comparison(self, key: str) -> Comparison:
        for comp in self.comparisons:
            if comp.key == key:
                return comp
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; money rounded to cents."""

        return {
            "region": self.region,
            "prices_as_of": self.as_of,
            "currency": self.currency,
            "hours_per_month": self.hours_per_month,
            "inputs": asdict(self.inputs),
            "lines": [
                {
                    "name": line.name,
                    "idle": _cents(line.idle_usd),
                    "max": _cents(line.max_usd),
                    "estimate": line.estimate,
                    "note": line.note,
                    "figures": list(line.figures),
                }
                for line in self.lines
            ],
            "total": {"idle": _cents(self.total_idle), "max": _cents(self.total_max)},
            "estimate": self.estimate,
            "per_100_participant_hours": {
                p.band: {
                    "gb_per_participant_hour": p.gb_per_participant_hour,
                    "egress_gb": round(p.egress_gb, 3),
                    "egress": _cents(p.egress_usd),
                    "jvb_task_hours": round(p.jvb_task_hours, 3),
                    "jvb": _cents(p.jvb_usd),
                    "total": _cents(p.total_usd),
                }
                for p in self.per_100_participant_hours
            },
            "capacity_basis": self.capacity_basis,
            "comparisons": {
                c.key: {
                    "name": c.name,
                    "idle": _cents(c.idle_usd),
                    "max": _cents(c.max_usd),
                    "vs_stack_idle": _cents(c.idle_usd - self.total_idle),
                    "estimate": c.estimate,
                    "note": c.note,
                    "figures": list(c.figures),
                }
                for c in self.comparisons
            },
            "estimated_figures": list(self.estimated_figures),
            "assumptions": list(self.assumptions),
            "cloudwatch_free_tier_saving": _cents(self.free_tier_saving_usd),
        }


@lru_cache(maxsize=1)
def _packaged_text() -> str:
    return resources.files("pcls").joinpath("data/prices.json").read_text(encoding="utf-8")


def load_prices() -> dict[str, Any]:
    """The packaged price table (a fresh copy each call, so callers may modify it)."""
    return json.loads(_packaged_text())


def supported_regions(prices: dict[str, Any] | None = None) -> tuple[str, ...]:
    return tuple((prices or load_prices())["regions"])


def spot_split(tasks: float, base: int, weight: int) -> tuple[float, float]:
    """Expected (on-demand, Spot) task counts for a FARGATE base + FARGATE_SPOT weight strategy.

    The first `base` tasks run on FARGATE; ECS spreads the rest by weight, FARGATE_SPOT `weight`
    against FARGATE 1. Counts are expectations (fractional), not ECS's integer placement.
    """
    on_demand_base = min(tasks, base)
    rest = tasks - on_demand_base
    spot = rest * weight / (weight + 1)
    return on_demand_base + rest - spot, spot


class _Table:
    """One region's figures, remembering which are estimates."""

    def __init__(self, prices: dict[str, Any], region: str) -> None:
        regions = prices["regions"]
        if region not in regions:
            raise ValueError(
                f"no prices for region {region!r}; supported regions: {', '.join(regions)}"
            )
        self.prices = prices
        self.region = region
        self.figures: dict[str, dict[str, Any]] = regions[region]
        self.planning: dict[str, dict[str, Any]] = prices["planning"]
        self.used: set[str] = set()
        self.floored: set[str] = set()

    def rate(self, key: str) -> float:
        self.used.add(key)
        return float(self.figures[key]["value"])

    def rate_or_floor(self, key: str) -> tuple[float, bool]:
        """The region's rate, else the floor region's (flagged)."""
        self.used.add(key)
        value = self.figures[key]["value"]
        if value is not None:
            return float(value), False
        self.floored.add(key)
        return float(self.prices["regions"][_FLOOR_REGION][key]["value"]), True

    def plan(self, key: str) -> Any:
        return self.planning[key]["value"]

    def is_estimate(self, keys: tuple[str, ...]) -> bool:
        return any(self.figures[k].get("estimate", False) for k in keys)


def _validate(inputs: CostInputs) -> None:
    counts = {
        "azs": inputs.azs,
        "signal_count": inputs.signal_count,
        "jvb_min": inputs.jvb_min,
        "jvb_ondemand_base": inputs.jvb_ondemand_base,
        "jvb_spot_weight": inputs.jvb_spot_weight,
        "alarms": inputs.alarms,
        "dashboards": inputs.dashboards,
        "custom_metrics": inputs.custom_metrics,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative (got {value})")
    if inputs.azs < 1:
        raise ValueError("azs must be at least 1")
    if inputs.jvb_max < inputs.jvb_min:
        raise ValueError(f"jvb_max {inputs.jvb_max} is below jvb_min {inputs.jvb_min}")
    for name in ("signal_cpu", "signal_memory", "jvb_cpu", "jvb_memory"):
        if getattr(inputs, name) <= 0:
            raise ValueError(f"{name} must be positive")
    if inputs.log_gb_month < 0:
        raise ValueError("log_gb_month must not be negative")


def _cents(value: float) -> float:
    # Half-up on the decimal text, so 10.125 shows as 10.13 as on an invoice, not 10.12.
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _usd(value: float) -> str:
    return f"${_cents(value):,.2f}"


def _per(value: float) -> str:
    """A unit rate, shown with all its digits ($0.40, $0.0572)."""
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


def estimate(inputs: CostInputs, prices: dict[str, Any] | None = None) -> Estimate:
    """Itemized monthly cost of the stack described by `inputs`, plus usage rates and comparisons.

    Raises ValueError for a region the price table does not cover, or for impossible inputs.
    """
    prices = prices if prices is not None else load_prices()
    t = _Table(prices, inputs.region)
    _validate(inputs)
    hours = int(prices["hours_per_month"])
    lines: list[Line] = []

    def add(
        name: str, idle: float, peak: float, note: str, keys: tuple[str, ...], extra: bool = False
    ) -> None:
        lines.append(Line(name, idle, peak, t.is_estimate(keys) or extra, note, keys))

    # Fargate: (vCPU x rate + GB x rate) per task-hour; Spot at on-demand x (1 - discount).
    fargate_keys = ("fargate_vcpu_hour", "fargate_gb_hour")

    def task_hour(cpu: int, memory: int) -> float:
        return cpu / 1024 * t.rate("fargate_vcpu_hour") + memory / 1024 * t.rate("fargate_gb_hour")

    discount = t.rate("fargate_spot_discount")
    signal_hour = task_hour(inputs.signal_cpu, inputs.signal_memory)
    signal = signal_hour * hours * inputs.signal_count
    add(
        "Fargate: signal shards (web + prosody + jicofo + router)",
        signal,
        signal,
        f"{inputs.signal_count} shard(s), each one on-demand task of "
        f"{inputs.signal_cpu / 1024:g} vCPU / {inputs.signal_memory / 1024:g} GB, spread over "
        f"the {inputs.azs} AZs",
        fargate_keys,
    )
    add(
        "Routers (HAProxy, room-sticky)",
        0.0,
        0.0,
        f"one container in each of the {inputs.signal_count} shard tasks (a 64 MiB reservation "
        "inside the task's size): no task or public IPv4 of their own; see the comparison "
        "with a separate router service",
        (),
    )

    jvb_hour = task_hour(inputs.jvb_cpu, inputs.jvb_memory)
    base, weight = inputs.jvb_ondemand_base, inputs.jvb_spot_weight

    def jvb_month(tasks: int) -> tuple[float, str]:
        od, spot = spot_split(tasks, base, weight)
        text = f"{od:g} on-demand + {spot:g} Spot" if spot else f"{od:g} on-demand"
        return jvb_hour * hours * (od + spot * (1 - discount)), text

    jvb_idle, idle_text = jvb_month(inputs.jvb_min)
    jvb_max, max_text = jvb_month(inputs.jvb_max)
    per_az = " (one per AZ)" if inputs.jvb_min == inputs.azs else ""
    add(
        "Fargate: JVB bridges",
        jvb_idle,
        jvb_max,
        f"{inputs.jvb_cpu / 1024:g} vCPU / {inputs.jvb_memory / 1024:g} GB per task; "
        f"min {inputs.jvb_min}{per_az} = {idle_text}; max {inputs.jvb_max} = {max_text}; "
        f"Spot at {discount:.0%} off",
        (*fargate_keys, "fargate_spot_discount"),
    )

    lcu = t.plan("alb_average_lcu")
    alb = hours * (t.rate("alb_hour") + lcu * t.rate("alb_lcu_hour"))
    add(
        "Application Load Balancer",
        alb,
        alb,
        f"{hours} h + {lcu:g} LCU average (signalling only; media bypasses the ALB); "
        "12-month free tier not applied",
        ("alb_hour", "alb_lcu_hour"),
    )

    ipv4 = t.rate("public_ipv4_hour")
    addr_idle = inputs.signal_count + inputs.jvb_min + inputs.azs
    addr_max = inputs.signal_count + inputs.jvb_max + inputs.azs
    add(
        "Public IPv4 addresses",
        addr_idle * hours * ipv4,
        addr_max * hours * ipv4,
        f"one per task ({inputs.signal_count} shards + the bridges) + one per AZ for the ALB: "
        f"{addr_idle} at min, {addr_max} at max",
        ("public_ipv4_hour",),
    )

    if inputs.hosted_zone_created:
        zone = t.rate("route53_hosted_zone_month")
        add("Route 53 hosted zone", zone, zone, "created by pcls", ("route53_hosted_zone_month",))
    alias = t.rate("route53_alias_queries_to_elb")
    standard = t.rate("route53_standard_queries_per_million")
    add(
        "Route 53 queries",
        alias,
        alias,
        "alias A/AAAA records to the ALB: alias queries to AWS resources are free "
        f"(unverified in the sources; otherwise {_per(standard)} per million)",
        ("route53_alias_queries_to_elb",),
    )

    # CloudWatch: the account-wide perpetual free tier is applied once, custom metrics first.
    free = t.figures["cloudwatch_free_tier"]["value"]
    t.used.add("cloudwatch_free_tier")
    alarm_rate = t.rate("cloudwatch_alarm_month")
    dash_rate = t.rate("cloudwatch_dashboard_month")
    metric_rate = t.rate("cloudwatch_custom_metric_month")
    log_rate, log_floored = t.rate_or_floor("cloudwatch_logs_ingest_gb")

    def billable(count: float, allowance: float) -> float:
        return max(0.0, count - allowance)

    alarms = billable(inputs.alarms, free["alarms"]) * alarm_rate
    add(
        "CloudWatch alarms",
        alarms,
        alarms,
        f"{inputs.alarms} standard alarms, first {free['alarms']} free",
        ("cloudwatch_alarm_month", "cloudwatch_free_tier"),
    )
    dashboards = billable(inputs.dashboards, free["dashboards"]) * dash_rate
    add(
        "CloudWatch dashboards",
        dashboards,
        dashboards,
        f"{inputs.dashboards} dashboard(s), first {free['dashboards']} free",
        ("cloudwatch_dashboard_month", "cloudwatch_free_tier"),
    )
    metrics = billable(inputs.custom_metrics, free["metrics"]) * metric_rate
    add(
        "CloudWatch custom metrics",
        metrics,
        metrics,
        f"{inputs.custom_metrics} bridge metric(s), first {free['metrics']} free",
        ("cloudwatch_custom_metric_month", "cloudwatch_free_tier"),
    )
    ci_metrics = t.plan("container_insights_metrics") if inputs.container_insights else 0
    if inputs.container_insights:
        free_left = max(0, free["metrics"] - inputs.custom_metrics)
        insights = billable(ci_metrics, free_left) * metric_rate
        add(
            "CloudWatch Container Insights",
            insights,
            insights,
            f"~{ci_metrics} metrics billed as custom metrics (estimate), {free_left} left in the "
            "free tier; performance log events not counted",
            ("cloudwatch_custom_metric_month", "cloudwatch_free_tier"),
            extra=True,
        )
    log_gb = billable(inputs.log_gb_month, free["logs_gb"])
    logs = log_gb * log_rate
    log_note = f"{inputs.log_gb_month:g} GB/month ingested, first {free['logs_gb']} GB free"
    if log_floored and log_gb > 0:
        log_note += f"; {_FLOOR_REGION} rate {_per(log_rate)}/GB used as a floor (regional unknown)"
    add(
        "CloudWatch Logs",
        logs,
        logs,
        log_note + "; storage at 14-day retention negligible",
        ("cloudwatch_logs_ingest_gb", "cloudwatch_free_tier"),
        extra=log_floored and log_gb > 0,
    )

    ssm = t.rate("ssm_parameter_standard_month")
    add(
        "SSM Parameter Store",
        ssm,
        ssm,
        "standard parameters (secrets as SecureString) are free",
        ("ssm_parameter_standard_month",),
    )
    acm = t.rate("acm_public_certificate")
    add(
        "ACM certificate",
        acm,
        acm,
        "public certificate on the ALB (non-exportable) is free",
        ("acm_public_certificate",),
    )
    egress_rate = t.rate("data_transfer_out_gb_first_10tb")
    free_egress = t.rate("data_transfer_out_free_gb_month")
    add(
        "Data transfer out",
        0.0,
        0.0,
        f"usage-based: {_per(egress_rate)}/GB after the account's free {free_egress:g} GB/month; "
        "see the per-100-participant-hours rates",
        ("data_transfer_out_gb_first_10tb", "data_transfer_out_free_gb_month"),
    )

    # Usage: bridge egress plus the JVB task-hours that load needs. Tasks added for load sit
    # above the on-demand base, so they follow the Spot weight.
    per_vcpu = t.plan("jvb_participants_per_vcpu")
    jvb_vcpu = inputs.jvb_cpu / 1024
    spot_share = weight / (weight + 1)
    marginal_task_hour = jvb_hour * (1 - spot_share * discount) + ipv4
    gb_per_hour = t.plan("egress_gb_per_participant_hour")
    usage = []
    for band in BANDS:
        egress_gb = 100 * gb_per_hour[band]
        task_hours = 100 / (per_vcpu * jvb_vcpu)
        usage.append(
            ParticipantHours(
                band=band,
                gb_per_participant_hour=gb_per_hour[band],
                egress_gb=egress_gb,
                egress_usd=egress_gb * egress_rate,
                jvb_task_hours=task_hours,
                jvb_usd=task_hours * marginal_task_hour,
            )
        )
    capacity_basis = (
        f"{per_vcpu:g} heavy (720p) participants per JVB vCPU (HPI load tests, as in the pricing "
        f"notes), so {100 / (per_vcpu * jvb_vcpu):g} task-hours of {jvb_vcpu:g} vCPU / "
        f"{inputs.jvb_memory / 1024:g} GB per 100 participant-hours, {spot_share:.0%} of them on "
        f"Spot, each with its public IPv4; egress at {_per(egress_rate)}/GB without the free "
        f"{free_egress:g} GB/month; one figure for all bands (conservative for 'low')"
    )

    total_idle = sum(line.idle_usd for line in lines)
    total_max = sum(line.max_usd for line in lines)
    stack_estimate = any(line.estimate for line in lines)
    comparisons = (
        _single_ec2(t, inputs, hours),
        _with_nat(t, inputs, hours, total_idle, total_max, stack_estimate),
        _router_service(t, inputs, hours, total_idle, total_max, stack_estimate),
    )

    without_free = (
        inputs.alarms * alarm_rate
        + inputs.dashboards * dash_rate
        + (inputs.custom_metrics + ci_metrics) * metric_rate
        + inputs.log_gb_month * log_rate
    )
    cloudwatch = sum(line.idle_usd for line in lines if line.name.startswith("CloudWatch"))
    free_tier_saving = without_free - cloudwatch

    estimated = [
        f"{k} = {t.figures[k]['value']}: {t.figures[k].get('derivation', 'derived')}"
        for k in sorted(t.used)
        if t.figures[k].get("estimate")
    ]
    estimated += [
        f"{k}: no {inputs.region} figure; {_FLOOR_REGION} rate used as a floor"
        for k in sorted(t.floored)
    ]
    estimated += [
        f"planning.{k} = {json.dumps(t.planning[k]['value'])}: "
        f"{t.planning[k].get('derivation', t.planning[k]['source'])}"
        for k in ("egress_gb_per_participant_hour", "jvb_participants_per_vcpu", "alb_average_lcu")
    ]

    assumptions = (
        f"{hours} hours/month; {prices['price_type']}",
        "idle = every service at its minimum task count all month; max = the JVB pool at its "
        "maximum all month",
        f"Fargate Spot = on-demand x (1 - {discount:g}): regions.{inputs.region}."
        f"fargate_spot_discount ({t.figures['fargate_spot_discount']['unit']}); "
        "real Spot prices move",
        f"JVB tasks above the on-demand base of {base} split {weight}:1 Spot:on-demand "
        "(expected, fractional counts)",
        "CloudWatch perpetual free tier applied as if this stack were the account's only user; "
        f"without it CloudWatch adds {_usd(free_tier_saving)}/month",
        "12-month new-account free tiers (ALB 750 h + 15 LCU) not applied",
        "internet egress priced per use (per 100 participant-hours); inter-AZ traffic, "
        "log storage and ALB processing beyond the LCU average are negligible and left out",
    )

    return Estimate(
        region=inputs.region,
        as_of=prices["as_of"],
        currency=prices["currency"],
        hours_per_month=hours,
        inputs=inputs,
        lines=tuple(lines),
        per_100_participant_hours=tuple(usage),
        capacity_basis=capacity_basis,
        comparisons=comparisons,
        estimated_figures=tuple(estimated),
        assumptions=assumptions,
        free_tier_saving_usd=free_tier_saving,
    )


def _single_ec2(t: _Table, inputs: CostInputs, hours: int) -> Comparison:
    """One always-on t3.large all-in-one server, as the simplest Jitsi templates build."""
    spec = t.plan("t3_large")
    keys = ["ec2_t3_large_hour", "ebs_gp3_gb_month", "public_ipv4_hour"]
    idle = (
        hours * t.rate("ec2_t3_large_hour")
        + spec["gp3_gb"] * t.rate("ebs_gp3_gb_month")
        + spec["elastic_ips"] * hours * t.rate("public_ipv4_hour")
    )
    zone_note = "no hosted zone (same basis as the stack, which reuses an existing zone)"
    if inputs.hosted_zone_created:
        idle += t.rate("route53_hosted_zone_month")
        keys.append("route53_hosted_zone_month")
        zone_note = "one Route 53 zone"
    # Pinned CPU in unlimited mode pays surplus credits above the baseline.
    surplus = spec["vcpu"] * (1 - spec["baseline_cpu_per_vcpu"])
    peak = idle + surplus * hours * t.rate("ec2_t3_surplus_credit_vcpu_hour")
    keys.append("ec2_t3_surplus_credit_vcpu_hour")
    return Comparison(
        key="single_ec2",
        name="Single always-on EC2 t3.large",
        idle_usd=idle,
        max_usd=peak,
        estimate=t.is_estimate(tuple(keys)),
        note=(
            f"{spec['gp3_gb']} GB gp3, {spec['elastic_ips']} Elastic IP, {zone_note}; "
            f"max = CPU pinned at 100% in unlimited mode ({spec['baseline_cpu_per_vcpu']:.0%} "
            "baseline); one AZ, no HA; same egress per participant-hour"
        ),
        figures=tuple(keys),
    )


def _with_nat(
    t: _Table,
    inputs: CostInputs,
    hours: int,
    total_idle: float,
    total_max: float,
    stack_estimate: bool,
) -> Comparison:
    """The same stack with a NAT gateway in every AZ: gateway hours only."""
    nat = inputs.azs * hours * t.rate("nat_gateway_hour")
    ipv4_month = hours * t.rate("public_ipv4_hour")
    # The JVB keeps its public IP (clients send UDP to it); only the signal side moves behind NAT.
    address_change = (inputs.azs - inputs.signal_count) * ipv4_month
    return Comparison(
        key="with_nat",
        name=f"Same stack with NAT gateways in {inputs.azs} AZs",
        idle_usd=total_idle + nat,
        max_usd=total_max + nat,
        estimate=stack_estimate or t.is_estimate(("nat_gateway_hour",)),
        note=(
            f"adds {inputs.azs} x {hours} h x {_per(t.rate('nat_gateway_hour'))}/h only; "
            f"excluded: NAT processing at {_per(t.rate('nat_gateway_gb'))}/GB (usage) and the "
            f"address change ({inputs.azs} NAT IPs - {inputs.signal_count} signal task IPs = "
            f"{_usd(address_change)}/month)"
        ),
        figures=("nat_gateway_hour",),
    )


# The alternative router layout: a service of its own, two small tasks in two AZs.
ROUTER_SERVICE_TASKS = 2
ROUTER_SERVICE_CPU, ROUTER_SERVICE_MEMORY = 256, 512


def _router_service(
    t: _Table,
    inputs: CostInputs,
    hours: int,
    total_idle: float,
    total_max: float,
    stack_estimate: bool,
) -> Comparison:
    """The routers as a separate ECS service instead of a container in every shard task."""
    task = ROUTER_SERVICE_CPU / 1024 * t.rate("fargate_vcpu_hour")
    task += ROUTER_SERVICE_MEMORY / 1024 * t.rate("fargate_gb_hour")
    extra = ROUTER_SERVICE_TASKS * hours * (task + t.rate("public_ipv4_hour"))
    keys = ("fargate_vcpu_hour", "fargate_gb_hour", "public_ipv4_hour")
    return Comparison(
        key="router_service",
        name="Same stack, routers as a separate service",
        idle_usd=total_idle + extra,
        max_usd=total_max + extra,
        estimate=stack_estimate or t.is_estimate(keys),
        note=(
            f"adds {ROUTER_SERVICE_TASKS} on-demand tasks of {ROUTER_SERVICE_CPU / 1024:g} vCPU "
            f"/ {ROUTER_SERVICE_MEMORY / 1024:g} GB in two AZs, each with the public IPv4 it "
            "needs to pull its image without NAT; see docs/ha.md for the failure behaviour"
        ),
        figures=keys,
    )


def monthly_delta(
    before: CostInputs | None, after: CostInputs | None, prices: dict[str, Any] | None = None
) -> float:
    """Change of the idle monthly total from `before` to `after` (None = nothing deployed).

    Unrounded; format with cents for display.
    """
    prices = prices if prices is not None else load_prices()

    def idle(inputs: CostInputs | None) -> float:
        return estimate(inputs, prices).total_idle if inputs is not None else 0.0

    return idle(after) - idle(before)


def render_lines(est: Estimate) -> list[tuple[str, str, str, str, str]]:
    """Rows (item, idle, max, 'E' when estimated, note) plus a closing total row."""
    rows = [
        (
            line.name,
            _usd(line.idle_usd),
            _usd(line.max_usd),
            "E" if line.estimate else "",
            line.note,
        )
        for line in est.lines
    ]
    rows.append(
        (
            "Total per month",
            _usd(est.total_idle),
            _usd(est.total_max),
            "E" if est.estimate else "",
            f"prices as of {est.as_of}",
        )
    )
    return rows

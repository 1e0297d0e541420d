"""Monthly cost model behind `pcls cost` and the cost line of `pcls plan`.

Pure arithmetic over the packaged price table (`pcls/data/prices.json`): no AWS calls. Every
figure in that table carries its source and date; figures derived rather than read (most of
eu-central-2) carry `estimate: true`, and every line or comparison that reads one is flagged.

Conventions, applied everywhere:
- 730 hours per month; on-demand Linux list prices in USD before tax.
- "asleep" = no task runs all month (the stack's sleep: the load balancer, its addresses, DNS,
  alarms and the wake function remain); "idle" (always-on) = every service at its minimum task
  count all month; "max" = the JVB pool at its maximum all month. An awake hour is what one hour
  at the minimum adds to the asleep month, so a month with A awake hours costs
  asleep + A x awake hour.
- Fargate is priced at the rates of the configured CPU architecture (ecs.cpu_architecture):
  Linux/ARM for ARM64, Linux/x86 for X86_64, each with its own Spot discount.
- Perpetual, account-wide free tiers (CloudWatch: 10 metrics, 10 alarms, 3 dashboards, 5 GB logs)
  are applied as if this stack were the account's only user; the amount they save is reported so
  a busy account can add it back. The wake function's Lambda and EventBridge Scheduler free tiers
  are not applied (their full price is cents). 12-month new-account free tiers (ALB 750 h) are
  not applied.
- Internet egress is usage: it appears as a rate per 100 participant-hours at the full
  $/GB, without the account's free 100 GB/month (which other workloads may already use).
- Money stays unrounded internally; `to_dict` and `render_lines` round to cents.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from pcls.config import ScheduleSection

BANDS = ("low", "central", "high")
# CloudWatch list prices are lowest in us-east-1, so its rate is a floor for a region the table
# has no figure for (the Frankfurt/Zurich Logs ingestion price was not found).
_FLOOR_REGION = "us-east-1"


ARCHITECTURES = ("ARM64", "X86_64")
# Fargate rate keys per CPU architecture (runtimePlatform.cpuArchitecture).
_FARGATE_KEYS = {
    "ARM64": ("fargate_arm_vcpu_hour", "fargate_arm_gb_hour", "fargate_arm_spot_discount"),
    "X86_64": ("fargate_vcpu_hour", "fargate_gb_hour", "fargate_spot_discount"),
}
_HOURS_PER_WEEK = 7 * 24


@dataclass(frozen=True)
class CostInputs:
    """What the bill depends on. Defaults match the default pcls config."""

    region: str
    azs: int = 2  # public subnets / AZs; the ALB holds one public IPv4 per AZ
    signal_cpu: int = 512  # Fargate CPU units (1024 = 1 vCPU); signal tasks always on-demand
    signal_memory: int = 2048  # MiB
    signal_count: int = 2  # signal shards, one task each (web + prosody + jicofo + router)
    jvb_cpu: int = 1024
    jvb_memory: int = 2048
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
    cpu_architecture: str = "ARM64"  # ecs.cpu_architecture: the Fargate rates that apply
    # Hours a week inside [schedule] awake windows; None: none configured, priced by the example.
    awake_hours_week: float | None = None
    awake_windows: tuple[str, ...] = ()  # the [schedule] awake entries, for the labels
    monthly_budget: float = 0.0  # [alerts] monthly_budget (0: no budget guard)


# The month shown when [schedule] has no awake windows: labelled as an example wherever shown.
EXAMPLE_AWAKE = "Mon-Fri 07:00-19:00"
EXAMPLE_AWAKE_HOURS_WEEK = ScheduleSection(awake=(EXAMPLE_AWAKE,)).awake_hours_per_week()


@dataclass(frozen=True)
class Line:
    """One itemized monthly charge: asleep all month, awake at the minimum, awake at the maximum."""

    name: str
    idle_usd: float
    max_usd: float
    estimate: bool
    note: str = ""
    figures: tuple[str, ...] = ()  # price-table keys the amount reads
    asleep_usd: float = 0.0

    @property
    def awake_month_usd(self) -> float:
        """What being awake all month at the minimum adds to asleep (per hour: / hours)."""
        return self.idle_usd - self.asleep_usd


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
    asleep_usd: float | None = None  # None: the design cannot sleep
    awake_hour_usd: float | None = None


@dataclass(frozen=True)
class Decisions:
    """The figures a user decides on, each with the inputs it is made of."""

    awake_hour_usd: float
    asleep_month_usd: float
    awake_hours_month: float
    month_usd: float  # asleep month + awake hours x awake hour
    month_basis: str  # which awake hours: the configured windows, or the labelled example
    month_is_example: bool
    always_on_usd: float  # awake all month at the minimum (= the idle total)
    worst_case_compute_usd: float  # awake all month with jvb_max bridges (= the max total)
    worst_case_egress_gb: float
    worst_case_egress_usd: float
    worst_case_basis: str
    inputs: dict[str, str]  # figure -> what it is made of

    @property
    def worst_case_usd(self) -> float:
        return self.worst_case_compute_usd + self.worst_case_egress_usd


@dataclass(frozen=True)
class Variant:
    """The same stack with another CPU architecture and/or Spot setting."""

    key: str
    name: str
    cpu_architecture: str
    jvb_spot_weight: int
    awake_hour_usd: float
    asleep_month_usd: float
    month_usd: float
    always_on_usd: float
    estimate: bool
    configured: bool


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
    decisions: Decisions
    variants: tuple[Variant, ...]
    budget_guard: str  # what the [alerts] monthly_budget guard does with these figures

    @property
    def total_idle(self) -> float:
        return sum(line.idle_usd for line in self.lines)

    @property
    def total_max(self) -> float:
        return sum(line.max_usd for line in self.lines)

    @property
    def total_asleep(self) -> float:
        return sum(line.asleep_usd for line in self.lines)

    @property
    def estimate(self) -> bool:
        return any(line.estimate for line in self.lines)

    def comparison(self, key: str) -> Comparison:
        for comp in self.comparisons:
            if comp.key == key:
                return comp
        raise KeyError(key)

    def variant(self, key: str) -> Variant:
        for var in self.variants:
            if var.key == key:
                return var
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; money rounded to cents (hourly rates to 1/10,000 of a dollar)."""

        d = self.decisions
        return {
            "region": self.region,
            "prices_as_of": self.as_of,
            "currency": self.currency,
            "hours_per_month": self.hours_per_month,
            "inputs": {**asdict(self.inputs), "awake_windows": list(self.inputs.awake_windows)},
            "lines": [
                {
                    "name": line.name,
                    "asleep": _cents(line.asleep_usd),
                    "idle": _cents(line.idle_usd),
                    "max": _cents(line.max_usd),
                    "awake_hour": _rate(line.awake_month_usd / self.hours_per_month),
                    "estimate": line.estimate,
                    "note": line.note,
                    "figures": list(line.figures),
                }
                for line in self.lines
            ],
            "total": {
                "asleep": _cents(self.total_asleep),
                "idle": _cents(self.total_idle),
                "max": _cents(self.total_max),
            },
            "estimate": self.estimate,
            "decisions": {
                "awake_hour": _rate(d.awake_hour_usd),
                "asleep_month": _cents(d.asleep_month_usd),
                "month": {
                    "awake_hours": round(d.awake_hours_month, 2),
                    "total": _cents(d.month_usd),
                    "basis": d.month_basis,
                    "example": d.month_is_example,
                },
                "always_on": _cents(d.always_on_usd),
                "worst_case": {
                    "compute": _cents(d.worst_case_compute_usd),
                    "egress_gb": round(d.worst_case_egress_gb, 1),
                    "egress": _cents(d.worst_case_egress_usd),
                    "total": _cents(d.worst_case_usd),
                    "basis": d.worst_case_basis,
                },
                "inputs": dict(d.inputs),
            },
            "variants": {
                v.key: {
                    "name": v.name,
                    "cpu_architecture": v.cpu_architecture,
                    "jvb_spot_weight": v.jvb_spot_weight,
                    "awake_hour": _rate(v.awake_hour_usd),
                    "asleep_month": _cents(v.asleep_month_usd),
                    "month": _cents(v.month_usd),
                    "always_on": _cents(v.always_on_usd),
                    "estimate": v.estimate,
                    "configured": v.configured,
                }
                for v in self.variants
            },
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
                    "asleep": None if c.asleep_usd is None else _cents(c.asleep_usd),
                    "awake_hour": None if c.awake_hour_usd is None else _rate(c.awake_hour_usd),
                    "estimate": c.estimate,
                    "note": c.note,
                    "figures": list(c.figures),
                }
                for c in self.comparisons
            },
            "estimated_figures": list(self.estimated_figures),
            "assumptions": list(self.assumptions),
            "cloudwatch_free_tier_saving": _cents(self.free_tier_saving_usd),
            "budget_guard": self.budget_guard,
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
    if inputs.cpu_architecture not in ARCHITECTURES:
        raise ValueError(
            f"cpu_architecture {inputs.cpu_architecture!r} is not one of {', '.join(ARCHITECTURES)}"
        )
    if inputs.awake_hours_week is not None and not 0 <= inputs.awake_hours_week <= _HOURS_PER_WEEK:
        raise ValueError(f"awake_hours_week must be 0 to {_HOURS_PER_WEEK}")


def _cents(value: float) -> float:
    # Half-up on the decimal text, so 10.125 shows as 10.13 as on an invoice, not 10.12.
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _usd(value: float) -> str:
    return f"${_cents(value):,.2f}"


def _rate(value: float) -> float:
    """An hourly rate for JSON: to 1/10,000 of a dollar, half-up."""
    return float(Decimal(repr(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def usd_hour(value: float) -> str:
    """$0.1234: an hourly rate to 1/10,000 of a dollar (-$0.0002 below zero)."""
    rate = _rate(value)
    return f"{'-' if rate < 0 else ''}${abs(rate):.4f}"


def _per(value: float) -> str:
    """A unit rate, shown with all its digits ($0.40, $0.0572)."""
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


def estimate(inputs: CostInputs, prices: dict[str, Any] | None = None) -> Estimate:
    """Itemized monthly cost of the stack described by `inputs`, the figures a user decides on
    (awake hour, asleep month, a month of awake hours, always-on, worst case, architecture and
    Spot variants), usage rates and comparisons.

    Raises ValueError for a region the price table does not cover, or for impossible inputs.
    """
    prices = prices if prices is not None else load_prices()
    t = _Table(prices, inputs.region)
    _validate(inputs)
    hours = int(prices["hours_per_month"])
    lines = _lines(t, inputs, hours)

    vcpu_key, gb_key, discount_key = _FARGATE_KEYS[inputs.cpu_architecture]
    discount = t.rate(discount_key)
    ipv4 = t.rate("public_ipv4_hour")
    jvb_hour = _task_hour(t, inputs.cpu_architecture, inputs.jvb_cpu, inputs.jvb_memory)
    base, weight = inputs.jvb_ondemand_base, inputs.jvb_spot_weight

    # Usage: bridge egress plus the JVB task-hours that load needs. Tasks added for load sit
    # above the on-demand base, so they follow the Spot weight.
    per_vcpu = t.plan("jvb_participants_per_vcpu")
    jvb_vcpu = inputs.jvb_cpu / 1024
    spot_share = weight / (weight + 1)
    marginal_task_hour = jvb_hour * (1 - spot_share * discount) + ipv4
    gb_per_hour = t.plan("egress_gb_per_participant_hour")
    egress_rate = t.rate("data_transfer_out_gb_first_10tb")
    free_egress = t.rate("data_transfer_out_free_gb_month")
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
        f"{inputs.jvb_memory / 1024:g} GB ({inputs.cpu_architecture}) per 100 participant-hours, "
        f"{spot_share:.0%} of them on Spot, each with its public IPv4; egress at "
        f"{_per(egress_rate)}/GB without the free {free_egress:g} GB/month; one figure for all "
        "bands (conservative for 'low')"
    )

    decisions = _decisions(t, inputs, hours, lines)
    variants = _variants(prices, inputs)
    total_idle = sum(line.idle_usd for line in lines)
    total_max = sum(line.max_usd for line in lines)
    stack_estimate = any(line.estimate for line in lines)
    comparisons = (
        _single_ec2(t, inputs, hours),
        _with_nat(t, inputs, hours, total_idle, total_max, stack_estimate, decisions),
        _router_service(t, inputs, hours, total_idle, total_max, stack_estimate, decisions),
        *_bridge_sizes(prices, inputs),
        _ec2_ha(t, inputs, hours, lines),
        _ecs_on_ec2(t, inputs, hours, lines, decisions),
        _savings_plan(t, inputs, hours, total_idle, total_max, stack_estimate, decisions),
    )

    ci_metrics = t.plan("container_insights_metrics") if inputs.container_insights else 0
    log_rate, _ = t.rate_or_floor("cloudwatch_logs_ingest_gb")
    without_free = (
        inputs.alarms * t.rate("cloudwatch_alarm_month")
        + inputs.dashboards * t.rate("cloudwatch_dashboard_month")
        + (inputs.custom_metrics + ci_metrics) * t.rate("cloudwatch_custom_metric_month")
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
        for k in (
            "egress_gb_per_participant_hour",
            "jvb_participants_per_vcpu",
            "alb_average_lcu",
            "alb_lcu",
            "alb_asleep_requests_per_hour",
            "wake_function",
        )
    ]

    assumptions = (
        f"{hours} hours/month; {prices['price_type']}",
        "asleep = no task runs all month; idle (always-on) = every service at its minimum task "
        "count all month; max = the JVB pool at its maximum all month; an awake hour = "
        "(idle - asleep) / "
        f"{hours}",
        f"Fargate at the {inputs.cpu_architecture} rates (ecs.cpu_architecture): "
        f"regions.{inputs.region}.{vcpu_key} and .{gb_key}",
        f"Fargate Spot = on-demand x (1 - {discount:g}): regions.{inputs.region}.{discount_key} "
        f"({t.figures[discount_key]['unit']}); real Spot prices move",
        f"JVB tasks above the on-demand base of {base} split {weight}:1 Spot:on-demand "
        "(expected, fractional counts)",
        "CloudWatch perpetual free tier applied as if this stack were the account's only user; "
        f"without it CloudWatch adds {_usd(free_tier_saving)}/month",
        "12-month new-account free tiers (ALB 750 h + 15 LCU) and the Lambda and EventBridge "
        "Scheduler free tiers not applied",
        "a visit that wakes the stack outside the awake hours adds awake hours at the awake-hour "
        "rate until the idle sleep ([schedule] idle_minutes) stops it again",
        "internet egress priced per use (per 100 participant-hours, and the worst case); "
        "inter-AZ traffic, log storage, Route 53 queries inside the VPC, the wake function's "
        "metric reads and ALB processing beyond the LCU figures are negligible and left out",
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
        decisions=decisions,
        variants=variants,
        budget_guard=_budget_guard(t, inputs, decisions),
    )


def _task_hour(t: _Table, architecture: str, cpu: int, memory: int) -> float:
    """On-demand price of one task-hour of this size and CPU architecture."""
    vcpu_key, gb_key, _ = _FARGATE_KEYS[architecture]
    return cpu / 1024 * t.rate(vcpu_key) + memory / 1024 * t.rate(gb_key)


def _lines(t: _Table, inputs: CostInputs, hours: int) -> list[Line]:
    """The itemized month: asleep, awake at the minimum (idle), awake at the maximum."""
    lines: list[Line] = []

    def add(
        name: str,
        idle: float,
        peak: float,
        note: str,
        keys: tuple[str, ...],
        extra: bool = False,
        asleep: float | None = None,
    ) -> None:
        """`asleep` None: the charge does not depend on tasks running (asleep = idle)."""
        lines.append(
            Line(
                name,
                idle,
                peak,
                t.is_estimate(keys) or extra,
                note,
                keys,
                idle if asleep is None else asleep,
            )
        )

    arch = inputs.cpu_architecture
    vcpu_key, gb_key, discount_key = _FARGATE_KEYS[arch]
    fargate_keys = (vcpu_key, gb_key)
    discount = t.rate(discount_key)
    signal_hour = _task_hour(t, arch, inputs.signal_cpu, inputs.signal_memory)
    signal = signal_hour * hours * inputs.signal_count
    add(
        "Fargate: signal shards (web + prosody + jicofo + router)",
        signal,
        signal,
        f"{inputs.signal_count} shard(s), each one on-demand {arch} task of "
        f"{inputs.signal_cpu / 1024:g} vCPU / {inputs.signal_memory / 1024:g} GB "
        f"({_per(signal_hour)}/h), spread over the {inputs.azs} AZs; none while asleep",
        fargate_keys,
        asleep=0.0,
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

    jvb_hour = _task_hour(t, arch, inputs.jvb_cpu, inputs.jvb_memory)
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
        f"{inputs.jvb_cpu / 1024:g} vCPU / {inputs.jvb_memory / 1024:g} GB {arch} per task "
        f"({_per(jvb_hour)}/h on-demand); min {inputs.jvb_min}{per_az} = {idle_text}; "
        f"max {inputs.jvb_max} = {max_text}; Spot at {discount:.0%} off; none while asleep",
        (*fargate_keys, discount_key),
        asleep=0.0,
    )

    # The ALB runs all month; its LCUs follow the traffic: signalling while awake, the requests
    # it answers itself with the sleep page while asleep.
    lcu = t.plan("alb_average_lcu")
    asleep_lcu = _asleep_lcu(t)
    asleep_requests = t.plan("alb_asleep_requests_per_hour")
    alb_hour, lcu_rate = t.rate("alb_hour"), t.rate("alb_lcu_hour")
    add(
        "Application Load Balancer",
        hours * (alb_hour + lcu * lcu_rate),
        hours * (alb_hour + lcu * lcu_rate),
        f"{hours} h + {lcu:g} LCU average awake (signalling only; media bypasses the ALB), "
        f"{asleep_lcu:.4f} LCU asleep ({asleep_requests:g} requests/h answered with the sleep "
        "page, a fixed response); "
        "12-month free tier not applied",
        ("alb_hour", "alb_lcu_hour"),
        asleep=hours * (alb_hour + asleep_lcu * lcu_rate),
    )

    ipv4 = t.rate("public_ipv4_hour")
    addr_idle = inputs.signal_count + inputs.jvb_min + inputs.azs
    addr_max = inputs.signal_count + inputs.jvb_max + inputs.azs
    add(
        "Public IPv4 addresses",
        addr_idle * hours * ipv4,
        addr_max * hours * ipv4,
        f"one per task ({inputs.signal_count} shards + the bridges) + one per AZ for the ALB: "
        f"{addr_idle} at min, {addr_max} at max, {inputs.azs} (the ALB's) asleep",
        ("public_ipv4_hour",),
        asleep=inputs.azs * hours * ipv4,
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

    # Cloud Map: the private DNS namespace is a Route 53 private hosted zone (all month); each
    # shard task registers one instance while it runs.
    zone_rate = t.rate("route53_hosted_zone_month")
    instance_rate = t.rate("cloudmap_instance_month")
    add(
        "Cloud Map (namespace <stack>.internal)",
        zone_rate + inputs.signal_count * instance_rate,
        zone_rate + inputs.signal_count * instance_rate,
        f"the namespace's private hosted zone {_per(zone_rate)}/month + "
        f"{inputs.signal_count} registered shard instance(s) at {_per(instance_rate)}/month "
        "while awake",
        ("route53_hosted_zone_month", "cloudmap_instance_month"),
        asleep=zone_rate,
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
        f"{inputs.alarms} standard alarm metrics, first {free['alarms']} free; kept while asleep",
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
    if inputs.container_insights:
        ci_metrics = t.plan("container_insights_metrics")
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

    # The wake function: its idle check every 5 minutes all month (an upper bound: it needs to
    # run only while awake) and, while asleep, the visitors' presses and status polls (the
    # crawlers' GETs get the ALB's fixed sleep page, never the function).
    wake = t.plan("wake_function")
    checks = wake["idle_checks_per_hour"] * hours
    visits = wake["wake_invocations_per_month"]
    request_rate = t.rate("lambda_requests_per_million") / 1e6
    gb_second = t.rate("lambda_arm_gb_second")
    per_invocation = (
        request_rate + wake["memory_mb"] / 1024 * wake["seconds_per_invocation"] * gb_second
    )
    scheduled = t.rate("scheduler_invocations_per_million") / 1e6
    function = checks * (per_invocation + scheduled)
    add(
        "Wake function (Lambda arm64 + EventBridge Scheduler)",
        function,
        function,
        f"{checks:,.0f} scheduled idle checks (rate(5 minutes), {_per(scheduled * 1e6)}/M) a "
        f"month; asleep also {visits:,.0f} wake presses and status polls; each "
        f"{wake['memory_mb']} MB x "
        f"{wake['seconds_per_invocation']:g} s ({_per(gb_second)}/GB-s) + "
        f"{_per(request_rate * 1e6)}/M requests; free tiers not applied",
        (
            "lambda_requests_per_million",
            "lambda_arm_gb_second",
            "scheduler_invocations_per_million",
        ),
        asleep=function + visits * per_invocation,
    )
    if inputs.monthly_budget > 0:
        day = t.rate("budgets_budget_day")
        add(
            "AWS Budgets (budget guard)",
            0.0,
            0.0,
            f"one budget; the first {t.rate('budgets_free_budgets'):g} of the account are free, "
            f"then {_per(day)}/day",
            ("budgets_budget_day", "budgets_free_budgets"),
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
        "see the per-100-participant-hours rates and the worst case",
        ("data_transfer_out_gb_first_10tb", "data_transfer_out_free_gb_month"),
    )
    return lines


def _asleep_lcu(t: _Table) -> float:
    """LCUs of the asleep traffic: its busiest dimension, new connections or bytes processed
    (the sleep page is the listener's fixed response: no Lambda target involved)."""
    unit = t.plan("alb_lcu")
    requests = t.plan("alb_asleep_requests_per_hour")
    page_gb = t.plan("wake_function")["sleep_page_kb"] / 1024**2
    return max(
        requests / 3600 / unit["new_connections_per_second"],
        requests * page_gb / unit["gb_per_hour"],
    )


def _awake_hours(inputs: CostInputs, hours: int) -> tuple[float, str, bool]:
    """Awake hours a month: from the configured windows, else the labelled example."""
    if inputs.awake_hours_week is not None:
        per_week = inputs.awake_hours_week
        basis = f"[schedule] awake = {json.dumps(list(inputs.awake_windows))}: {per_week:g} h/week"
        example = False
    else:
        per_week = EXAMPLE_AWAKE_HOURS_WEEK
        basis = (
            f"example, no [schedule] awake set: {EXAMPLE_AWAKE} = {per_week:g} h/week (stack "
            "time zone)"
        )
        example = True
    return per_week * hours / _HOURS_PER_WEEK, basis, example


def _decisions(t: _Table, inputs: CostInputs, hours: int, lines: list[Line]) -> Decisions:
    asleep = sum(line.asleep_usd for line in lines)
    idle = sum(line.idle_usd for line in lines)
    peak = sum(line.max_usd for line in lines)
    awake_hour = (idle - asleep) / hours
    awake_hours, basis, example = _awake_hours(inputs, hours)
    # Worst case: every bridge the pool may run, full (as many heavy participants as its vCPUs
    # carry, each at the high band) all month, every GB at the first-10-TB rate.
    per_vcpu = t.plan("jvb_participants_per_vcpu")
    high = t.plan("egress_gb_per_participant_hour")["high"]
    egress_rate = t.rate("data_transfer_out_gb_first_10tb")
    participants = per_vcpu * inputs.jvb_cpu / 1024
    egress_gb = inputs.jvb_max * participants * high * hours
    worst_basis = (
        f"{inputs.jvb_max} bridges (jvb.max_count) x {participants:g} participants "
        f"({per_vcpu:g}/vCPU x {inputs.jvb_cpu / 1024:g} vCPU) x {high:g} GB/participant-hour "
        f"(high band) x {hours} h = {egress_gb:,.0f} GB at {_per(egress_rate)}/GB (an upper "
        "bound: AWS charges less per GB above 10 TB a month), plus the max column"
    )
    terms = [
        (line.name, _rate(line.awake_month_usd / hours))
        for line in lines
        if _rate(line.awake_month_usd / hours)
    ]
    moving = "".join(
        f"{(' - ' if rate < 0 else ' + ') if i else ''}{name} {usd_hour(abs(rate) if i else rate)}"
        for i, (name, rate) in enumerate(terms)
    )
    inputs_text = {
        "awake_hour": f"(always on - asleep) / {hours} h: {moving}",
        "asleep_month": "no task runs: "
        + " + ".join(
            f"{line.name} {_usd(line.asleep_usd)}" for line in lines if _cents(line.asleep_usd)
        ),
        "month": f"asleep month {_usd(asleep)} + {awake_hours:.1f} awake h x awake hour "
        f"{usd_hour(awake_hour)} ({basis})",
        "always_on": f"asleep month {_usd(asleep)} + {hours} h x awake hour "
        f"{usd_hour(awake_hour)} (every service at its minimum all month)",
        "worst_case": worst_basis,
    }
    return Decisions(
        awake_hour_usd=awake_hour,
        asleep_month_usd=asleep,
        awake_hours_month=awake_hours,
        month_usd=asleep + awake_hours * awake_hour,
        month_basis=basis,
        month_is_example=example,
        always_on_usd=idle,
        worst_case_compute_usd=peak,
        worst_case_egress_gb=egress_gb,
        worst_case_egress_usd=egress_gb * egress_rate,
        worst_case_basis=worst_basis,
        inputs=inputs_text,
    )


def _summary(prices: dict[str, Any], inputs: CostInputs) -> tuple[Decisions, bool]:
    """The decision figures of another input set, priced on its own table."""
    t = _Table(prices, inputs.region)
    _validate(inputs)
    hours = int(prices["hours_per_month"])
    lines = _lines(t, inputs, hours)
    return _decisions(t, inputs, hours, lines), any(line.estimate for line in lines)


def _variants(prices: dict[str, Any], inputs: CostInputs) -> tuple[Variant, ...]:
    """Each CPU architecture with the configured Spot share and with none."""
    weights = tuple(dict.fromkeys((inputs.jvb_spot_weight or 1, 0)))
    out = []
    for arch in ARCHITECTURES:
        for weight in weights:
            spot = f"Spot weight {weight}" if weight else "no Spot"
            other = replace(inputs, cpu_architecture=arch, jvb_spot_weight=weight)
            d, flagged = _summary(prices, other)
            out.append(
                Variant(
                    key=f"{arch.lower()}_{'spot' if weight else 'no_spot'}",
                    name=f"{arch}, bridges with {spot}",
                    cpu_architecture=arch,
                    jvb_spot_weight=weight,
                    awake_hour_usd=d.awake_hour_usd,
                    asleep_month_usd=d.asleep_month_usd,
                    month_usd=d.month_usd,
                    always_on_usd=d.always_on_usd,
                    estimate=flagged,
                    configured=other == inputs,
                )
            )
    return tuple(out)


# Bridge sizes offered in the comparison: (cpu, memory) as docs/ecs.md argues them.
BRIDGE_SIZES = ((1024, 2048), (2048, 4096), (4096, 8192))


def _bridge_sizes(prices: dict[str, Any], inputs: CostInputs) -> tuple[Comparison, ...]:
    """The same stack with each other bridge size of docs/ecs.md (bigger rooms cost more)."""
    per_vcpu = prices["planning"]["jvb_participants_per_vcpu"]["value"]
    out = []
    for cpu, memory in BRIDGE_SIZES:
        if (cpu, memory) == (inputs.jvb_cpu, inputs.jvb_memory):
            continue
        other = replace(inputs, jvb_cpu=cpu, jvb_memory=memory)
        d, flagged = _summary(prices, other)
        out.append(
            Comparison(
                key=f"bridges_{cpu}_{memory}",
                name=f"Same stack, bridges of {cpu / 1024:g} vCPU / {memory / 1024:g} GB",
                idle_usd=d.always_on_usd,
                max_usd=d.worst_case_compute_usd,
                estimate=flagged,
                note=(
                    f"jvb.cpu = {cpu}, jvb.memory = {memory}: {per_vcpu * cpu / 1024:g} heavy "
                    "participants per bridge (planning.jvb_participants_per_vcpu; docs/ecs.md, "
                    "right-sizing), the largest conference it holds; awake hour "
                    f"{usd_hour(d.awake_hour_usd)}, month {_usd(d.month_usd)}"
                ),
                figures=_FARGATE_KEYS[inputs.cpu_architecture],
                asleep_usd=d.asleep_month_usd,
                awake_hour_usd=d.awake_hour_usd,
            )
        )
    return tuple(out)


def _budget_guard(t: _Table, inputs: CostInputs, d: Decisions) -> str:
    if inputs.monthly_budget > 0:
        return (
            f"[alerts] monthly_budget = {inputs.monthly_budget:g} USD: AWS Budgets e-mails "
            "alerts.email when the month's forecast passes 100 % or the actual spend 80 % "
            f"(pcls/steps/budget.py); this estimate's month is {_usd(d.month_usd)}, always-on "
            f"{_usd(d.always_on_usd)}"
        )
    return (
        "no budget guard: set [alerts] monthly_budget (USD) and alerts.email to get AWS Budgets "
        "e-mails at 100 % forecast and 80 % actual (pcls/steps/budget.py); e.g. the month "
        f"above, {_usd(d.month_usd)}"
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
    d: Decisions,
) -> Comparison:
    """The same stack with a NAT gateway in every AZ: gateway hours only (all month)."""
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
        asleep_usd=d.asleep_month_usd + nat,
        awake_hour_usd=d.awake_hour_usd,
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
    d: Decisions,
) -> Comparison:
    """The routers as a separate ECS service instead of a container in every shard task."""
    arch = inputs.cpu_architecture
    task = _task_hour(t, arch, ROUTER_SERVICE_CPU, ROUTER_SERVICE_MEMORY)
    extra = ROUTER_SERVICE_TASKS * hours * (task + t.rate("public_ipv4_hour"))
    keys = (*_FARGATE_KEYS[arch][:2], "public_ipv4_hour")
    return Comparison(
        key="router_service",
        name="Same stack, routers as a separate service",
        idle_usd=total_idle + extra,
        max_usd=total_max + extra,
        estimate=stack_estimate or t.is_estimate(keys),
        note=(
            f"adds {ROUTER_SERVICE_TASKS} on-demand {arch} tasks of "
            f"{ROUTER_SERVICE_CPU / 1024:g} vCPU / {ROUTER_SERVICE_MEMORY / 1024:g} GB in two "
            "AZs while awake, each with the public IPv4 it needs to pull its image without "
            "NAT; see docs/ha.md for the failure behaviour"
        ),
        figures=keys,
        asleep_usd=d.asleep_month_usd,
        awake_hour_usd=d.awake_hour_usd + extra / hours,
    )


def _ec2_key(instance_type: str) -> str:
    return f"ec2_{instance_type.replace('.', '_')}_hour"


def _capacity(spec: dict[str, Any], memory_share: float) -> tuple[float, float]:
    """CPU units and usable MiB of one instance type."""
    return spec["vcpu"] * 1024, spec["memory_gib"] * 1024 * memory_share


def _holding(
    t: _Table,
    cpu: int,
    memory: int,
    memory_share: float,
    family: str | None,
    burstable: bool | None,
) -> list[str]:
    """Candidates (planning.ec2_instance_types) holding the load, cheapest first; `burstable`
    None takes both kinds."""
    types = t.plan("ec2_instance_types")
    fits = [
        name
        for name, spec in types.items()
        if burstable in (None, spec["burstable"])
        and (family is None or name.split(".")[0] == family)
        and _capacity(spec, memory_share)[0] >= cpu
        and _capacity(spec, memory_share)[1] >= memory
    ]
    return sorted(fits, key=lambda n: (t.figures[_ec2_key(n)]["value"], n))


def _instance_for(
    t: _Table,
    cpu: int,
    memory: int,
    family: str | None = None,
    memory_share: float = 1.0,
    burstable_ok: bool = False,
) -> tuple[str, int]:
    """The cheapest candidate holding `cpu` units and `memory` MiB, of which `memory_share` is
    usable, and how many of it that takes: 1, unless no candidate holds it alone (then the
    largest steady one, as many as the load needs). Burstable types only with `burstable_ok`:
    a bridge holds its CPU for a whole call."""
    holding = _holding(t, cpu, memory, memory_share, family, None if burstable_ok else False)
    if holding:
        return holding[0], 1
    types = t.plan("ec2_instance_types")
    steady = [
        n
        for n, spec in types.items()
        if not spec["burstable"] and (family is None or n.split(".")[0] == family)
    ]
    largest = max(steady, key=lambda n: (types[n]["vcpu"], types[n]["memory_gib"]))
    cpu_cap, memory_cap = _capacity(types[largest], memory_share)
    return largest, math.ceil(max(cpu / cpu_cap, memory / memory_cap))


def _without_tasks(
    t: _Table, inputs: CostInputs, hours: int, lines: list[Line]
) -> tuple[float, float]:
    """The stack's always-on and max months without its Fargate tasks and their public IPv4s: what
    an EC2 design behind the same ALB, DNS and alarms keeps."""
    ipv4_month = hours * t.rate("public_ipv4_hour")
    fargate = [line for line in lines if line.name.startswith("Fargate:")]
    idle = sum(line.idle_usd for line in lines) - sum(line.idle_usd for line in fargate)
    peak = sum(line.max_usd for line in lines) - sum(line.max_usd for line in fargate)
    return (
        idle - (inputs.signal_count + inputs.jvb_min) * ipv4_month,
        peak - (inputs.signal_count + inputs.jvb_max) * ipv4_month,
    )


def _per_az(count: int, azs: int) -> list[int]:
    """`count` tasks spread evenly over `azs` AZs (as ECS's AZ spread places them)."""
    return [count // azs + (1 if i < count % azs else 0) for i in range(azs)]


def _ec2_ha(t: _Table, inputs: CostInputs, hours: int, lines: list[Line]) -> Comparison:
    """The HA layout on always-on EC2: a signal server per shard, a bridge server per bridge,
    spread over the AZs behind the same ALB."""
    spec = t.plan("ec2_ha")
    # Signalling is bursty: a burstable type may hold a shard.
    signal_type, per_shard = _instance_for(
        t, inputs.signal_cpu, inputs.signal_memory, burstable_ok=spec["signal_burstable"]
    )
    bridge_type, per_bridge = _instance_for(
        t, inputs.jvb_cpu, inputs.jvb_memory, family=spec["bridge_family"]
    )
    signal_hour, bridge_hour = t.rate(_ec2_key(signal_type)), t.rate(_ec2_key(bridge_type))
    ipv4, gp3 = t.rate("public_ipv4_hour"), t.rate("ebs_gp3_gb_month")
    shared_idle, shared_max = _without_tasks(t, inputs, hours, lines)
    # Always on: no sleep, so no wake function either.
    wake = sum(line.idle_usd for line in lines if line.name.startswith("Wake function"))

    def month(bridges: int) -> float:
        servers = inputs.signal_count * per_shard + bridges * per_bridge
        compute = inputs.signal_count * per_shard * signal_hour + bridges * per_bridge * bridge_hour
        return hours * (compute + servers * ipv4) + servers * spec["gp3_gb"] * gp3

    keys = (
        _ec2_key(signal_type),
        _ec2_key(bridge_type),
        "ebs_gp3_gb_month",
        "public_ipv4_hour",
    )
    each = f"{per_bridge} x " if per_bridge > 1 else ""
    each_shard = f"{per_shard} x " if per_shard > 1 else ""
    return Comparison(
        key="ec2_ha",
        name=f"HA EC2: {inputs.signal_count * per_shard} signal + "
        f"{inputs.jvb_min * per_bridge} bridge servers, {inputs.azs} AZs",
        idle_usd=shared_idle - wake + month(inputs.jvb_min),
        max_usd=shared_max - wake + month(inputs.jvb_max),
        estimate=True,  # planning.ec2_ha sizing, beside any estimated rate
        note=(
            f"a signal server per shard ({each_shard}{signal_type}, {_per(signal_hour)}/h, the "
            f"shard with its HAProxy) + a bridge server per bridge ({each}{bridge_type}, "
            f"{_per(bridge_hour)}/h; {inputs.jvb_min} at min, {inputs.jvb_max} at max) over "
            f"{inputs.azs} AZs behind the "
            "same ALB, a shard and a bridge per AZ as the Jitsi handbook's scalable setup lays "
            "it out (planning.ec2_ha): survives a server or AZ loss as this stack does; each "
            f"{spec['gp3_gb']} GB gp3 + a public IPv4; always on, no wake function; same egress"
        ),
        figures=keys,
    )


def _ecs_on_ec2(
    t: _Table, inputs: CostInputs, hours: int, lines: list[Line], d: Decisions
) -> Comparison:
    """The same ECS services on a capacity-provider Auto Scaling group of Graviton instances."""
    unit = t.plan("ecs_container_instance")
    shards = math.ceil(inputs.signal_count / inputs.azs)
    # Each instance holds at most one bridge: it needs the instance's public address and its
    # fixed UDP port (host network mode; awsvpc tasks on EC2 get no public IP). The first in each
    # AZ also holds that AZ's shard tasks.
    cpu = shards * inputs.signal_cpu + inputs.jvb_cpu
    memory = shards * inputs.signal_memory + inputs.jvb_memory
    share = unit["registered_memory_fraction"]
    itype, per_unit = _instance_for(t, cpu, memory, memory_share=share)
    skipped = [
        f"{name} ({_per(t.figures[_ec2_key(name)]['value'])}/h)"
        for name in _holding(t, cpu, memory, share, None, burstable=True)
        if t.figures[_ec2_key(name)]["value"] < t.figures[_ec2_key(itype)]["value"]
    ]
    burst = f"; cheaper but burstable, skipped: {', '.join(skipped)}" if skipped else ""
    hour, ipv4, gp3 = (
        t.rate(_ec2_key(itype)),
        t.rate("public_ipv4_hour"),
        t.rate("ebs_gp3_gb_month"),
    )

    def instances(bridges: int) -> int:
        """Per AZ: an instance per bridge, or one for the AZ's shards when it has no bridge."""
        bridges_az = _per_az(bridges, inputs.azs)
        per_az = zip(bridges_az, _per_az(inputs.signal_count, inputs.azs), strict=True)
        return sum(per_unit * max(b, 1 if s else 0) for b, s in per_az)

    def month(count: int) -> float:
        return count * (hours * (hour + ipv4) + unit["gp3_gb"] * gp3)

    low, high = instances(inputs.jvb_min), instances(inputs.jvb_max)
    shared_idle, shared_max = _without_tasks(t, inputs, hours, lines)
    idle = shared_idle + month(low)
    keys = (_ec2_key(itype), "ebs_gp3_gb_month", "public_ipv4_hour")
    return Comparison(
        key="ecs_on_ec2",
        name=f"ECS on an EC2 Auto Scaling group of {itype}",
        idle_usd=idle,
        max_usd=shared_max + month(high),
        estimate=True,  # planning.ecs_container_instance, beside any estimated rate
        note=(
            f"capacity-provider ASG of on-demand {itype} ({_per(hour)}/h): the cheapest steady "
            "Graviton holding an AZ's shard and bridge in the "
            f"{unit['registered_memory_fraction']:.1%} of memory ECS registers "
            f"(planning.ecs_container_instance){burst}; a bridge per instance (host network: "
            f"its UDP port, the instance's IPv4): {low} at min, {high} at max, each "
            f"{unit['gp3_gb']} GB gp3 + a public IPv4; asleep the ASG is at 0 (waking adds an "
            "instance boot); no Spot; same egress"
        ),
        figures=keys,
        asleep_usd=d.asleep_month_usd,
        awake_hour_usd=(idle - d.asleep_month_usd) / hours,
    )


def _savings_plan(
    t: _Table,
    inputs: CostInputs,
    hours: int,
    total_idle: float,
    total_max: float,
    stack_estimate: bool,
    d: Decisions,
) -> Comparison:
    """The stack with a 1-year No Upfront Compute Savings Plan sized to its always-on Fargate."""
    arch = inputs.cpu_architecture
    discount = t.rate("savings_plan_fargate_1yr_no_upfront_discount")
    on_demand_bridges, _ = spot_split(
        inputs.jvb_min, inputs.jvb_ondemand_base, inputs.jvb_spot_weight
    )
    # What the plan covers: on-demand Fargate at the minimum (Spot usage is not discounted).
    covered = inputs.signal_count * _task_hour(
        t, arch, inputs.signal_cpu, inputs.signal_memory
    ) + on_demand_bridges * _task_hour(t, arch, inputs.jvb_cpu, inputs.jvb_memory)
    commitment = covered * (1 - discount)
    saved = (covered - commitment) * hours
    asleep = d.asleep_month_usd + commitment * hours
    awake_hour = d.awake_hour_usd - covered
    month = asleep + d.awake_hours_month * awake_hour
    # The commitment is owed every hour; without it an awake hour pays `covered` on demand.
    break_even = commitment * hours / covered if covered else float(hours)
    keys = ("savings_plan_fargate_1yr_no_upfront_discount", *_FARGATE_KEYS[arch][:2])
    return Comparison(
        key="savings_plan",
        name="Same stack, 1-year Compute Savings Plan",
        idle_usd=total_idle - saved,
        max_usd=total_max - saved,
        estimate=stack_estimate or t.is_estimate(keys),
        note=(
            f"No Upfront, {discount:.0%} off Fargate: commits {usd_hour(commitment)}/h, the plan "
            f"price of the minimum's on-demand Fargate ({inputs.signal_count} shards + "
            f"{on_demand_bridges:g} bridges, {usd_hour(covered)}/h; Spot not covered); always on "
            f"it saves {_usd(saved)}/month, but the commitment is owed asleep too: it pays off "
            f"above {break_even:.0f} awake hours a month ({break_even / hours:.0%}); the "
            f"{d.awake_hours_month:.1f}-hour month costs {_usd(month)} with it, "
            f"{_usd(d.month_usd)} without"
        ),
        figures=keys,
        asleep_usd=asleep,
        awake_hour_usd=awake_hour,
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


def render_lines(est: Estimate) -> list[tuple[str, str, str, str, str, str]]:
    """Rows (item, asleep, idle, max, 'E' when estimated, note) plus a closing total row."""
    rows = [
        (
            line.name,
            _usd(line.asleep_usd),
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
            _usd(est.total_asleep),
            _usd(est.total_idle),
            _usd(est.total_max),
            "E" if est.estimate else "",
            f"prices as of {est.as_of}",
        )
    )
    return rows

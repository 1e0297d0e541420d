"""Cost model: totals recomputed by hand from the packaged price table."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pcls import config
from pcls.cost import (
    CostInputs,
    estimate,
    load_prices,
    monthly_delta,
    render_lines,
    spot_split,
)
from pcls.cost_report import inputs_from_config

PRICES = load_prices()
H = PRICES["hours_per_month"]
PLAN = PRICES["planning"]
WAKE = PLAN["wake_function"]["value"]
ASLEEP_REQUESTS = PLAN["alb_asleep_requests_per_hour"]["value"]

# Default config: 2 AZs, 2 signal shards of 0.5 vCPU / 2 GB (each with its router), JVB 1 vCPU /
# 2 GB min 2 (one per AZ) max 4, base 1, Spot weight 1, ARM64, 6 alarms, 1 dashboard, 2 custom
# metrics, 1 GB logs, no zone, no Insights, no awake windows.
DEFAULT_FRANKFURT = CostInputs(region="eu-central-1")

# Bigger Zurich layout on x86 that leaves the CloudWatch free tier and uses the floor logs rate.
BIG_ZURICH = CostInputs(
    region="eu-central-2",
    azs=3,
    signal_cpu=1024,
    signal_memory=2048,
    signal_count=1,
    jvb_cpu=4096,
    jvb_memory=8192,
    jvb_min=2,
    jvb_max=6,
    jvb_ondemand_base=1,
    jvb_spot_weight=3,
    alarms=12,
    dashboards=1,
    custom_metrics=4,
    log_gb_month=8.0,
    hosted_zone_created=True,
    container_insights=True,
    cpu_architecture="X86_64",
    awake_hours_week=40.0,
    awake_windows=("Mon-Fri 08:00-16:00",),
)


def v(region: str, key: str) -> float:
    return PRICES["regions"][region][key]["value"]


def fargate(region: str, arch: str) -> tuple[float, float, float]:
    """(vCPU-hour, GB-hour, Spot price factor) of one architecture, from the table."""
    if arch == "ARM64":
        keys = ("fargate_arm_vcpu_hour", "fargate_arm_gb_hour", "fargate_arm_spot_discount")
    else:
        keys = ("fargate_vcpu_hour", "fargate_gb_hour", "fargate_spot_discount")
    vcpu, gb, discount = (v(region, k) for k in keys)
    return vcpu, gb, 1 - discount


def lcu_asleep() -> float:
    """The busier LCU dimension of the asleep requests: new connections, or bytes processed
    (the ALB answers them itself with the fixed sleep page)."""
    lcu = PLAN["alb_lcu"]["value"]
    connections = ASLEEP_REQUESTS / 3600 / lcu["new_connections_per_second"]
    gb = ASLEEP_REQUESTS * WAKE["sleep_page_kb"] / 1024**2 / lcu["gb_per_hour"]
    return max(connections, gb)


def wake_invocation(region: str) -> float:
    seconds = WAKE["memory_mb"] / 1024 * WAKE["seconds_per_invocation"]
    return v(region, "lambda_requests_per_million") / 1e6 + seconds * v(
        region, "lambda_arm_gb_second"
    )


def wake_month(region: str, asleep: bool) -> float:
    checks = WAKE["idle_checks_per_hour"] * H
    month = checks * (
        wake_invocation(region) + v(region, "scheduler_invocations_per_million") / 1e6
    )
    # asleep: the visitors' presses and status polls only; the crawlers get the ALB's page
    visits = WAKE["wake_invocations_per_month"]
    return month + (visits * wake_invocation(region) if asleep else 0.0)


def cloud_map(region: str, shards: int) -> float:
    return v(region, "route53_hosted_zone_month") + shards * v(region, "cloudmap_instance_month")


def test_default_frankfurt_totals_by_hand() -> None:
    r = "eu-central-1"
    vcpu, gb, spot = fargate(r, "ARM64")
    ip = v(r, "public_ipv4_hour")

    signal = 2 * (0.5 * vcpu + 2 * gb) * H  # two shards; the routers live inside their tasks
    jvb_task = 1 * vcpu + 2 * gb
    # 2 tasks, one per AZ: base 1, the other split 1:1 -> 1.5 on-demand + 0.5 Spot
    jvb_at_min = jvb_task * H * (1.5 + 0.5 * spot)
    # 4 tasks: base 1, the other 3 split 1:1 -> 2.5 on-demand + 1.5 Spot
    jvb_at_max = jvb_task * H * (2.5 + 1.5 * spot)
    alb = H * v(r, "alb_hour") + H * PLAN["alb_average_lcu"]["value"] * v(r, "alb_lcu_hour")
    ipv4_min = (2 + 2 + 2) * H * ip  # 2 shards + 2 JVB + 2 ALB nodes
    ipv4_max = (2 + 4 + 2) * H * ip
    fixed = alb + cloud_map(r, 2) + wake_month(r, asleep=False)
    # 6 alarms, 1 dashboard, 2 metrics, 1 GB logs: all inside the free tier; no zone; SSM/ACM $0.

    est = estimate(DEFAULT_FRANKFURT)
    assert est.total_idle == pytest.approx(signal + jvb_at_min + ipv4_min + fixed)
    assert est.total_max == pytest.approx(signal + jvb_at_max + ipv4_max + fixed)
    assert est.as_of == PRICES["as_of"]
    assert not any(line.name == "Route 53 hosted zone" for line in est.lines)
    routers = next(line for line in est.lines if line.name.startswith("Routers"))
    assert (routers.idle_usd, routers.max_usd) == (0.0, 0.0)
    # The routers as a service of their own: 2 ARM64 tasks of 0.25 vCPU / 0.5 GB, each with an
    # IPv4, only while awake.
    separate = est.comparison("router_service")
    router_tasks = 2 * H * (0.25 * vcpu + 0.5 * gb + ip)
    assert separate.idle_usd - est.total_idle == pytest.approx(router_tasks)
    assert separate.asleep_usd == pytest.approx(est.total_asleep)

    # Single t3.large: instance + 30 GB gp3 + one Elastic IP, no zone (the stack creates none).
    t3 = H * v(r, "ec2_t3_large_hour") + 30 * v(r, "ebs_gp3_gb_month") + H * ip
    ec2 = est.comparison("single_ec2")
    assert ec2.idle_usd == pytest.approx(t3) and ec2.asleep_usd is None
    # Pinned CPU: 2 vCPU x 70% above baseline x surplus credit rate.
    assert ec2.max_usd == pytest.approx(t3 + 2 * 0.7 * H * v(r, "ec2_t3_surplus_credit_vcpu_hour"))

    # 100 participant-hours, central band: egress + 20 task-hours (5 participants per vCPU,
    # 1 vCPU per task), half of them on Spot, each with a public IPv4.
    central = {p.band: p for p in est.per_100_participant_hours}["central"]
    egress = 100 * 1.125 * v(r, "data_transfer_out_gb_first_10tb")
    jvb = 20 * (jvb_task * (0.5 + 0.5 * spot) + ip)
    assert central.egress_usd == pytest.approx(egress)
    assert central.jvb_usd == pytest.approx(jvb)
    assert central.total_usd == pytest.approx(egress + jvb)


def test_big_zurich_totals_by_hand() -> None:
    r = "eu-central-2"
    vcpu, gb, spot = fargate(r, "X86_64")
    ip = v(r, "public_ipv4_hour")

    signal = (1 * vcpu + 2 * gb) * H
    jvb_task = 4 * vcpu + 8 * gb
    # 2 tasks: base 1 + 1 split 3:1 -> 1.25 on-demand + 0.75 Spot
    jvb_at_min = jvb_task * H * (1.25 + 0.75 * spot)
    # 6 tasks: base 1 + 5 split 3:1 -> 2.25 on-demand + 3.75 Spot
    jvb_at_max = jvb_task * H * (2.25 + 3.75 * spot)
    alb = H * v(r, "alb_hour") + H * PLAN["alb_average_lcu"]["value"] * v(r, "alb_lcu_hour")
    ipv4_min = (1 + 2 + 3) * H * ip
    ipv4_max = (1 + 6 + 3) * H * ip
    zone = v(r, "route53_hosted_zone_month")
    alarms = (12 - 10) * v(r, "cloudwatch_alarm_month")
    # 4 custom metrics use 4 of the 10 free; Container Insights gets the other 6.
    insights = (PLAN["container_insights_metrics"]["value"] - 6) * v(
        r, "cloudwatch_custom_metric_month"
    )
    # Zurich has no Logs ingestion price: the us-east-1 rate stands in as a floor.
    assert PRICES["regions"][r]["cloudwatch_logs_ingest_gb"]["value"] is None
    logs = (8 - 5) * v("us-east-1", "cloudwatch_logs_ingest_gb")
    fixed = signal + alb + zone + alarms + insights + logs + cloud_map(r, 1)
    fixed += wake_month(r, asleep=False)

    est = estimate(BIG_ZURICH)
    assert est.total_idle == pytest.approx(fixed + jvb_at_min + ipv4_min)
    assert est.total_max == pytest.approx(fixed + jvb_at_max + ipv4_max)
    logs_line = next(line for line in est.lines if line.name == "CloudWatch Logs")
    assert logs_line.estimate and logs_line.idle_usd == pytest.approx(logs)

    # 100 participant-hours, high band: 5 task-hours of a 4-vCPU JVB, 3/4 of them on Spot.
    high = {p.band: p for p in est.per_100_participant_hours}["high"]
    assert high.egress_usd == pytest.approx(100 * 2.475 * v(r, "data_transfer_out_gb_first_10tb"))
    assert high.jvb_usd == pytest.approx(5 * (jvb_task * (0.25 + 0.75 * spot) + ip))


def test_asleep_month_is_what_stays_without_tasks() -> None:
    r = "eu-central-2"
    ip = v(r, "public_ipv4_hour")
    alb = H * (v(r, "alb_hour") + lcu_asleep() * v(r, "alb_lcu_hour"))
    alarms = (13 - 10) * v(r, "cloudwatch_alarm_month")  # 13 alarm metrics, 10 free
    want = alb + 2 * H * ip + v(r, "route53_hosted_zone_month") + alarms + wake_month(r, True)
    est = estimate(CostInputs(region=r, alarms=13))
    assert est.decisions.asleep_month_usd == pytest.approx(want)
    assert est.total_asleep == pytest.approx(want)
    # No task runs: both Fargate lines are 0 asleep.
    for line in est.lines:
        if line.name.startswith("Fargate"):
            assert line.asleep_usd == 0.0 < line.idle_usd
    # A zone pcls creates stays all month too.
    zoned = estimate(CostInputs(region=r, alarms=13, hosted_zone_created=True))
    assert zoned.total_asleep - est.total_asleep == pytest.approx(v(r, "route53_hosted_zone_month"))


def test_awake_hour_and_the_example_month_by_hand() -> None:
    r = "eu-central-2"
    vcpu, gb, spot = fargate(r, "ARM64")
    ip = v(r, "public_ipv4_hour")
    hour = (
        2 * (0.5 * vcpu + 2 * gb)  # two shards
        + (vcpu + 2 * gb) * (1.5 + 0.5 * spot)  # two bridges, one on the base, one split 1:1
        + 4 * ip  # the four tasks' addresses
        + (PLAN["alb_average_lcu"]["value"] - lcu_asleep()) * v(r, "alb_lcu_hour")
        + 2 * v(r, "cloudmap_instance_month") / H  # the shards' Cloud Map instances
        # the visitors' presses and polls happen only while asleep
        - WAKE["wake_invocations_per_month"] / H * wake_invocation(r)
    )
    est = estimate(CostInputs(region=r))
    d = est.decisions
    assert d.awake_hour_usd == pytest.approx(hour)
    # No awake windows configured: the month is the labelled weekday example, 5 x 12 h a week.
    assert (
        d.month_is_example and "example" in d.month_basis and "Mon-Fri 07:00-19:00" in d.month_basis
    )
    hours = 5 * 12 * H / (7 * 24)
    assert d.awake_hours_month == pytest.approx(hours)
    assert d.month_usd == pytest.approx(d.asleep_month_usd + hours * hour)
    # Always on is the asleep month plus every hour awake: the idle total.
    assert d.always_on_usd == pytest.approx(d.asleep_month_usd + H * hour)
    assert d.always_on_usd == pytest.approx(est.total_idle)


def test_configured_awake_hours_price_the_month() -> None:
    est = estimate(BIG_ZURICH)
    d = est.decisions
    assert not d.month_is_example and '["Mon-Fri 08:00-16:00"]' in d.month_basis
    assert d.awake_hours_month == pytest.approx(40 * H / (7 * 24))
    assert d.month_usd == pytest.approx(d.asleep_month_usd + d.awake_hours_month * d.awake_hour_usd)
    always = estimate(replace(BIG_ZURICH, awake_hours_week=7 * 24)).decisions
    assert always.month_usd == pytest.approx(always.always_on_usd)
    with pytest.raises(ValueError, match="awake_hours_week"):
        estimate(replace(BIG_ZURICH, awake_hours_week=169))


def test_worst_case_is_every_bridge_full_all_month() -> None:
    r = "eu-central-2"
    est = estimate(CostInputs(region=r, jvb_max=6))
    d = est.decisions
    participants = PLAN["jvb_participants_per_vcpu"]["value"] * 1  # 1 vCPU bridges
    gb = 6 * participants * PLAN["egress_gb_per_participant_hour"]["value"]["high"] * H
    assert d.worst_case_egress_gb == pytest.approx(gb)
    assert d.worst_case_egress_usd == pytest.approx(gb * v(r, "data_transfer_out_gb_first_10tb"))
    assert d.worst_case_compute_usd == pytest.approx(est.total_max)
    assert d.worst_case_usd == pytest.approx(est.total_max + d.worst_case_egress_usd)


def test_architecture_and_spot_variants_use_their_own_rates() -> None:
    r = "eu-central-2"
    inputs = CostInputs(region=r)
    est = estimate(inputs)
    assert [x.key for x in est.variants] == [
        "arm64_spot",
        "arm64_no_spot",
        "x86_64_spot",
        "x86_64_no_spot",
    ]
    assert [x.configured for x in est.variants] == [True, False, False, False]
    arm, x86 = fargate(r, "ARM64"), fargate(r, "X86_64")

    def tasks_hour(rates: tuple[float, float, float], spot_weight: int) -> float:
        vcpu, gb, spot = rates
        second = 0.5 + 0.5 * spot if spot_weight else 1.0  # the bridge above the base
        return 2 * (0.5 * vcpu + 2 * gb) + (vcpu + 2 * gb) * (1 + second)

    base = est.variant("arm64_spot")
    assert base.always_on_usd == pytest.approx(est.total_idle)
    for key, rates, weight in (
        ("arm64_no_spot", arm, 0),
        ("x86_64_spot", x86, 1),
        ("x86_64_no_spot", x86, 0),
    ):
        other = est.variant(key)
        delta = tasks_hour(rates, weight) - tasks_hour(arm, 1)
        assert other.awake_hour_usd - base.awake_hour_usd == pytest.approx(delta), key
        assert other.always_on_usd - base.always_on_usd == pytest.approx(H * delta), key
        assert other.asleep_month_usd == pytest.approx(base.asleep_month_usd), key
    # x86 costs more than ARM, and Spot less than none.
    assert est.variant("x86_64_spot").awake_hour_usd > base.awake_hour_usd
    assert est.variant("arm64_no_spot").awake_hour_usd > base.awake_hour_usd
    # The x86 stack itself reads the x86 keys.
    x86_est = estimate(replace(inputs, cpu_architecture="X86_64"))
    assert x86_est.total_idle == pytest.approx(est.variant("x86_64_spot").always_on_usd)
    signal = next(line for line in x86_est.lines if line.name.startswith("Fargate: signal"))
    assert signal.figures == ("fargate_vcpu_hour", "fargate_gb_hour")
    with pytest.raises(ValueError, match="cpu_architecture"):
        estimate(replace(inputs, cpu_architecture="arm64"))


def test_bridge_size_comparisons() -> None:
    r = "eu-central-1"
    est = estimate(CostInputs(region=r))
    vcpu, gb, spot = fargate(r, "ARM64")
    assert {c.key for c in est.comparisons} >= {"bridges_2048_4096", "bridges_4096_8192"}
    assert "bridges_1024_2048" not in {c.key for c in est.comparisons}  # the configured size
    bigger = est.comparison("bridges_2048_4096")
    # One more vCPU and 2 GB per bridge, at min 1.5 on-demand + 0.5 Spot bridges.
    extra = (vcpu + 2 * gb) * (1.5 + 0.5 * spot)
    assert bigger.awake_hour_usd - est.decisions.awake_hour_usd == pytest.approx(extra)
    assert bigger.idle_usd - est.total_idle == pytest.approx(H * extra)


def test_budget_guard_is_named_and_priced() -> None:
    r = "eu-central-2"
    none = estimate(CostInputs(region=r))
    assert "no budget guard" in none.budget_guard and "monthly_budget" in none.budget_guard
    assert not any(line.name.startswith("AWS Budgets") for line in none.lines)
    guarded = estimate(CostInputs(region=r, monthly_budget=100))
    assert "monthly_budget = 100" in guarded.budget_guard
    line = next(line for line in guarded.lines if line.name.startswith("AWS Budgets"))
    assert line.idle_usd == 0.0 and "budgets_free_budgets" in line.figures


def default_zurich_stack() -> CostInputs:
    """What `pcls init meet.example.com --region eu-central-2` configures."""
    cfg = config.parse(
        {"stack": {"name": "meet", "domain": "meet.example.com", "region": "eu-central-2"}}
    )
    return inputs_from_config(cfg)


def test_the_default_stack_meets_the_cost_targets_in_zurich() -> None:
    """docs/ecs.md#cost-targets: the default HA stack in eu-central-2 at list prices."""
    est = estimate(default_zurich_stack())
    d = est.decisions
    assert d.asleep_month_usd <= 30
    assert d.awake_hour_usd <= 0.25
    assert d.month_is_example and d.month_usd <= 90
    assert d.always_on_usd <= 160


@pytest.mark.parametrize("inputs", [DEFAULT_FRANKFURT, BIG_ZURICH])
def test_nat_comparison_adds_exactly_gateway_hours(inputs: CostInputs) -> None:
    est = estimate(inputs)
    nat = est.comparison("with_nat")
    gateway_hours = H * v(inputs.region, "nat_gateway_hour") * inputs.azs
    assert nat.idle_usd - est.total_idle == pytest.approx(gateway_hours)
    assert nat.max_usd - est.total_max == pytest.approx(gateway_hours)


def test_unknown_region_names_supported_ones() -> None:
    with pytest.raises(ValueError) as err:
        estimate(CostInputs(region="ap-south-2"))
    for region in ("eu-central-2", "eu-central-1", "us-east-1"):
        assert region in str(err.value)


def test_zurich_lines_flagged_where_table_says_estimate() -> None:
    table = PRICES["regions"]["eu-central-2"]
    est = estimate(BIG_ZURICH)
    flagged_by_table = 0
    for item in (*est.lines, *est.comparisons):
        if any(table[key].get("estimate") for key in item.figures):
            flagged_by_table += 1
            assert item.estimate, item.name
    # Fargate (2), ALB, t3.large and NAT at least: the check above is not vacuous.
    assert flagged_by_table >= 5
    assert est.estimate
    assert any(f.startswith("fargate_vcpu_hour") for f in est.estimated_figures)


def test_us_east_1_default_has_no_estimated_price_lines() -> None:
    est = estimate(CostInputs(region="us-east-1"))
    # Only the scheduler's rate is an estimate there (an upper bound; its amount is cents).
    flagged = [line.name for line in est.lines if line.estimate]
    assert flagged == ["Wake function (Lambda arm64 + EventBridge Scheduler)"]


def test_monthly_delta() -> None:
    est = estimate(DEFAULT_FRANKFURT)
    assert monthly_delta(None, DEFAULT_FRANKFURT) == est.total_idle
    assert monthly_delta(DEFAULT_FRANKFURT, None) == -est.total_idle
    assert monthly_delta(None, None) == 0.0
    assert monthly_delta(DEFAULT_FRANKFURT, DEFAULT_FRANKFURT) == 0.0

    r = "eu-central-1"
    two_min = CostInputs(region=r, jvb_min=3)
    # The third minimum task sits above the base: half on Spot, plus its public IPv4.
    vcpu, gb, spot = fargate(r, "ARM64")
    jvb_task = vcpu + 2 * gb
    extra = jvb_task * H * (0.5 + 0.5 * spot)
    extra += H * v(r, "public_ipv4_hour")
    assert monthly_delta(DEFAULT_FRANKFURT, two_min) == pytest.approx(extra)


def test_spot_split() -> None:
    assert spot_split(4, base=1, weight=1) == (2.5, 1.5)
    assert spot_split(1, base=1, weight=1) == (1, 0)
    assert spot_split(3, base=1, weight=0) == (3, 0)
    assert spot_split(0, base=1, weight=3) == (0, 0)


def test_bad_inputs_rejected() -> None:
    with pytest.raises(ValueError, match="jvb_max"):
        estimate(CostInputs(region="eu-central-1", jvb_min=3, jvb_max=2))
    with pytest.raises(ValueError, match="azs"):
        estimate(CostInputs(region="eu-central-1", azs=0))


def test_to_dict_is_json_and_rounded_to_cents() -> None:
    est = estimate(BIG_ZURICH)
    data = json.loads(json.dumps(est.to_dict()))
    assert data["prices_as_of"] == PRICES["as_of"]
    assert data["total"]["idle"] == round(est.total_idle, 2)
    assert set(data["comparisons"]) == {
        "single_ec2",
        "with_nat",
        "router_service",
        "bridges_1024_2048",
        "bridges_2048_4096",
        "ec2_ha",
        "ecs_on_ec2",
        "savings_plan",
    }
    assert set(data["per_100_participant_hours"]) == {"low", "central", "high"}
    for line in data["lines"]:
        for key in ("asleep", "idle", "max"):
            assert line[key] == round(line[key], 2)
    d = est.decisions
    assert data["decisions"]["awake_hour"] == round(d.awake_hour_usd, 4)
    assert data["decisions"]["asleep_month"] == round(d.asleep_month_usd, 2)
    assert data["decisions"]["month"]["total"] == round(d.month_usd, 2)
    assert data["decisions"]["month"]["example"] is False
    assert data["decisions"]["always_on"] == round(est.total_idle, 2)
    assert data["decisions"]["worst_case"]["total"] == round(d.worst_case_usd, 2)
    assert set(data["decisions"]["inputs"]) == {
        "awake_hour",
        "asleep_month",
        "month",
        "always_on",
        "worst_case",
    }
    assert set(data["variants"]) == {"arm64_spot", "arm64_no_spot", "x86_64_spot", "x86_64_no_spot"}
    assert data["total"]["asleep"] == round(est.total_asleep, 2)
    assert data["inputs"]["awake_windows"] == ["Mon-Fri 08:00-16:00"]
    # 112.5 GB x $0.09 = 10.125 shows as 10.13 (half-up), not float-rounded 10.12.
    assert data["per_100_participant_hours"]["central"]["egress"] == 10.13

    rows = render_lines(est)
    assert len(rows) == len(est.lines) + 1
    assert rows[-1][0].startswith("Total") and len(rows[-1]) == 6


def test_packaged_table_keeps_provenance() -> None:
    assert set(PRICES["regions"]) == {"eu-central-2", "eu-central-1", "us-east-1"}
    for region, figures in PRICES["regions"].items():
        for key, fig in figures.items():
            for field in ("value", "unit", "source", "source_date"):
                assert field in fig, f"{region}.{key} lacks {field}"
            if fig.get("estimate"):
                assert fig.get("derivation"), f"{region}.{key} estimate without derivation"
    bands = PLAN["egress_gb_per_participant_hour"]["value"]
    assert set(bands) == {"low", "central", "high"}


def test_docs_cost_targets_are_the_models_figures() -> None:
    """docs/ecs.md's table of the default stack's figures is what the model computes."""
    text = (Path(__file__).parents[1] / "docs" / "ecs.md").read_text(encoding="utf-8")
    section = text.split("## Cost targets", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip(): line.split("|")[3].strip()
        for line in section.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    d = estimate(default_zurich_stack()).decisions
    assert rows["asleep, a month"] == f"${d.asleep_month_usd:.2f}"
    assert rows["awake, an hour"] == f"${d.awake_hour_usd:.4f}"
    assert rows["a month awake Mon-Fri 07:00-19:00"] == f"${d.month_usd:.2f}"
    assert rows["always on"] == f"${d.always_on_usd:.2f}"

"""Cost model: totals recomputed by hand from the packaged price table."""

import json

import pytest

from pcls.cost import (
    CostInputs,
    estimate,
    load_prices,
    monthly_delta,
    render_lines,
    spot_split,
)

PRICES = load_prices()
H = PRICES["hours_per_month"]
PLAN = PRICES["planning"]

# Default config: 2 AZs, 2 signal shards of 1 vCPU / 2 GB (each with its router), JVB 2 vCPU /
# 4 GB min 2 (one per AZ) max 4, base 1, Spot weight 1, 6 alarms, 1 dashboard, 2 custom metrics,
# 1 GB logs, no zone, no Insights.
DEFAULT_FRANKFURT = CostInputs(region="eu-central-1")

# Bigger Zurich layout that leaves the CloudWatch free tier and uses the floor logs rate.
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
)


def v(region: str, key: str) -> float:
    return PRICES["regions"][region][key]["value"]


def test_default_frankfurt_totals_by_hand() -> None:
    r = "eu-central-1"
    vcpu, gb = v(r, "fargate_vcpu_hour"), v(r, "fargate_gb_hour")
    spot = 1 - v(r, "fargate_spot_discount")
    ip = v(r, "public_ipv4_hour")

    signal = 2 * (1 * vcpu + 2 * gb) * H  # two shards; the routers live inside their tasks
    jvb_task = 2 * vcpu + 4 * gb
    # 2 tasks, one per AZ: base 1, the other split 1:1 -> 1.5 on-demand + 0.5 Spot
    jvb_at_min = jvb_task * H * (1.5 + 0.5 * spot)
    # 4 tasks: base 1, the other 3 split 1:1 -> 2.5 on-demand + 1.5 Spot
    jvb_at_max = jvb_task * H * (2.5 + 1.5 * spot)
    alb = H * v(r, "alb_hour") + H * PLAN["alb_average_lcu"]["value"] * v(r, "alb_lcu_hour")
    ipv4_min = (2 + 2 + 2) * H * ip  # 2 shards + 2 JVB + 2 ALB nodes
    ipv4_max = (2 + 4 + 2) * H * ip
    # 6 alarms, 1 dashboard, 2 metrics, 1 GB logs: all inside the free tier; no zone; SSM/ACM $0.

    est = estimate(DEFAULT_FRANKFURT)
    assert est.total_idle == pytest.approx(signal + jvb_at_min + alb + ipv4_min)
    assert est.total_max == pytest.approx(signal + jvb_at_max + alb + ipv4_max)
    assert est.as_of == PRICES["as_of"]
    assert not any(line.name == "Route 53 hosted zone" for line in est.lines)
    routers = next(line for line in est.lines if line.name.startswith("Routers"))
    assert (routers.idle_usd, routers.max_usd) == (0.0, 0.0)
    # The routers as a service of their own: 2 tasks of 0.25 vCPU / 0.5 GB, each with an IPv4.
    separate = est.comparison("router_service")
    router_tasks = 2 * H * (0.25 * vcpu + 0.5 * gb + ip)
    assert separate.idle_usd - est.total_idle == pytest.approx(router_tasks)

    # Single t3.large: instance + 30 GB gp3 + one Elastic IP, no zone (the stack creates none).
    t3 = H * v(r, "ec2_t3_large_hour") + 30 * v(r, "ebs_gp3_gb_month") + H * ip
    ec2 = est.comparison("single_ec2")
    assert ec2.idle_usd == pytest.approx(t3)
    # Pinned CPU: 2 vCPU x 70% above baseline x surplus credit rate.
    assert ec2.max_usd == pytest.approx(t3 + 2 * 0.7 * H * v(r, "ec2_t3_surplus_credit_vcpu_hour"))

    # 100 participant-hours, central band: egress + 10 task-hours (5 participants per vCPU,
    # 2 vCPU per task), half of them on Spot, each with a public IPv4.
    central = {p.band: p for p in est.per_100_participant_hours}["central"]
    egress = 100 * 1.125 * v(r, "data_transfer_out_gb_first_10tb")
    jvb = 10 * (jvb_task * (0.5 + 0.5 * spot) + ip)
    assert central.egress_usd == pytest.approx(egress)
    assert central.jvb_usd == pytest.approx(jvb)
    assert central.total_usd == pytest.approx(egress + jvb)


def test_big_zurich_totals_by_hand() -> None:
    r = "eu-central-2"
    vcpu, gb = v(r, "fargate_vcpu_hour"), v(r, "fargate_gb_hour")
    spot = 1 - v(r, "fargate_spot_discount")
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
    fixed = signal + alb + zone + alarms + insights + logs

    est = estimate(BIG_ZURICH)
    assert est.total_idle == pytest.approx(fixed + jvb_at_min + ipv4_min)
    assert est.total_max == pytest.approx(fixed + jvb_at_max + ipv4_max)
    logs_line = next(line for line in est.lines if line.name == "CloudWatch Logs")
    assert logs_line.estimate and logs_line.idle_usd == pytest.approx(logs)

    # 100 participant-hours, high band: 5 task-hours of a 4-vCPU JVB, 3/4 of them on Spot.
    high = {p.band: p for p in est.per_100_participant_hours}["high"]
    assert high.egress_usd == pytest.approx(100 * 2.475 * v(r, "data_transfer_out_gb_first_10tb"))
    assert high.jvb_usd == pytest.approx(5 * (jvb_task * (0.25 + 0.75 * spot) + ip))


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
    assert not any(line.estimate for line in est.lines)


def test_monthly_delta() -> None:
    est = estimate(DEFAULT_FRANKFURT)
    assert monthly_delta(None, DEFAULT_FRANKFURT) == est.total_idle
    assert monthly_delta(DEFAULT_FRANKFURT, None) == -est.total_idle
    assert monthly_delta(None, None) == 0.0
    assert monthly_delta(DEFAULT_FRANKFURT, DEFAULT_FRANKFURT) == 0.0

    r = "eu-central-1"
    two_min = CostInputs(region=r, jvb_min=3)
    # The third minimum task sits above the base: half on Spot, plus its public IPv4.
    jvb_task = 2 * v(r, "fargate_vcpu_hour") + 4 * v(r, "fargate_gb_hour")
    extra = jvb_task * H * (0.5 + 0.5 * (1 - v(r, "fargate_spot_discount")))
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
    assert set(data["comparisons"]) == {"single_ec2", "with_nat", "router_service"}
    assert set(data["per_100_participant_hours"]) == {"low", "central", "high"}
    for line in data["lines"]:
        assert line["idle"] == round(line["idle"], 2)
    # 112.5 GB x $0.09 = 10.125 shows as 10.13 (half-up), not float-rounded 10.12.
    assert data["per_100_participant_hours"]["central"]["egress"] == 10.13

    rows = render_lines(est)
    assert len(rows) == len(est.lines) + 1
    assert rows[-1][0].startswith("Total")


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

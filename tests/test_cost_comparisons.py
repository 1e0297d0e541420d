"""The fair comparisons of `pcls cost`: HA EC2, ECS on an EC2 Auto Scaling group and a Compute
Savings Plan, each recomputed by hand from the packaged price table."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from pcls.cost import CostInputs, estimate
from tests.test_cost import (
    BIG_ZURICH,
    DEFAULT_FRANKFURT,
    PLAN,
    PRICES,
    H,
    default_zurich_stack,
    fargate,
    v,
    wake_month,
)

TYPES = PLAN["ec2_instance_types"]["value"]
ECS_INSTANCE = PLAN["ecs_container_instance"]["value"]
EC2_HA = PLAN["ec2_ha"]["value"]


def is_estimate(region: str, key: str) -> bool:
    return bool(PRICES["regions"][region][key].get("estimate"))


def hour(region: str, instance_type: str) -> float:
    return v(region, f"ec2_{instance_type.replace('.', '_')}_hour")


def task_hour(region: str, inputs: CostInputs, cpu: int, memory: int) -> float:
    vcpu, gb, _ = fargate(region, inputs.cpu_architecture)
    return cpu / 1024 * vcpu + memory / 1024 * gb


def stack_without_tasks(inputs: CostInputs, bridges: int, on_demand: float, spot: float) -> float:
    """The stack's month with `bridges` bridges, less its Fargate tasks and their addresses."""
    r = inputs.region
    est = estimate(inputs)
    _, _, spot_factor = fargate(r, inputs.cpu_architecture)
    signal = inputs.signal_count * task_hour(r, inputs, inputs.signal_cpu, inputs.signal_memory)
    jvb = task_hour(r, inputs, inputs.jvb_cpu, inputs.jvb_memory) * (on_demand + spot * spot_factor)
    total = est.total_idle if bridges == inputs.jvb_min else est.total_max
    ip = (inputs.signal_count + bridges) * v(r, "public_ipv4_hour")
    return total - H * (signal + jvb + ip)


def server_month(region: str, instance_type: str, gp3_gb: int) -> float:
    ip = v(region, "public_ipv4_hour")
    return H * (hour(region, instance_type) + ip) + gp3_gb * v(region, "ebs_gp3_gb_month")


@pytest.mark.parametrize("inputs", [default_zurich_stack(), DEFAULT_FRANKFURT])
def test_ec2_ha_is_a_signal_server_per_shard_and_a_bridge_server_per_bridge(
    inputs: CostInputs,
) -> None:
    r = inputs.region
    gp3 = EC2_HA["gp3_gb"]
    # Default: 2 shards, 2 bridges at min (1.5 on-demand + 0.5 Spot), 4 at max (2.5 + 1.5).
    shared_idle = stack_without_tasks(inputs, 2, 1.5, 0.5) - wake_month(r, asleep=False)
    shared_max = stack_without_tasks(inputs, 4, 2.5, 1.5) - wake_month(r, asleep=False)
    signal = 2 * server_month(r, "t4g.medium", gp3)
    # A 1 vCPU / 2 GB bridge gets the c7g of its size: c7g.medium.
    assert (TYPES["c7g.medium"]["vcpu"], TYPES["c7g.medium"]["memory_gib"]) == (1, 2)
    bridge = server_month(r, "c7g.medium", gp3)

    ha = estimate(inputs).comparison("ec2_ha")
    assert ha.idle_usd == pytest.approx(shared_idle + signal + 2 * bridge)
    assert ha.max_usd == pytest.approx(shared_max + signal + 4 * bridge)
    assert ha.asleep_usd is None and ha.awake_hour_usd is None  # always on
    assert ha.estimate
    assert {"ec2_t4g_medium_hour", "ec2_c7g_medium_hour"} <= set(ha.figures)


@pytest.mark.parametrize(
    ("cpu", "memory", "servers"),
    [
        (2048, 4096, "c7g.large"),
        (4096, 8192, "c7g.xlarge"),
        (16384, 32768, "c7g.4xlarge"),
        (16384, 65536, "2 x c7g.4xlarge"),  # no candidate holds it alone
    ],
)
def test_ec2_ha_bridge_servers_follow_the_bridge_size(cpu: int, memory: int, servers: str) -> None:
    inputs = replace(DEFAULT_FRANKFURT, jvb_cpu=cpu, jvb_memory=memory)
    ha = estimate(inputs).comparison("ec2_ha")
    assert f"a bridge server per bridge ({servers}," in ha.note
    count, _, itype = servers.rpartition(" ")
    per_bridge = int(count.split()[0]) if count else 1
    r = inputs.region
    base = estimate(replace(inputs, jvb_cpu=1024, jvb_memory=2048)).comparison("ec2_ha")
    extra = 2 * per_bridge * server_month(r, itype, EC2_HA["gp3_gb"])
    small = 2 * server_month(r, "c7g.medium", EC2_HA["gp3_gb"])
    # Only the bridge servers differ from the 1 vCPU layout (the shared part has no task in it).
    assert ha.idle_usd - base.idle_usd == pytest.approx(extra - small)


def test_ecs_on_ec2_packs_a_shard_and_a_bridge_per_az_on_the_cheapest_steady_graviton() -> None:
    inputs = default_zurich_stack()
    r = inputs.region
    share = ECS_INSTANCE["registered_memory_fraction"]
    need_cpu, need_memory = 512 + 1024, 2048 + 2048  # one shard task + one bridge per AZ
    # c7g.large has the CPU but not the memory once the agent registers its share; t4g bursts.
    large = TYPES["c7g.large"]
    assert large["vcpu"] * 1024 >= need_cpu and large["memory_gib"] * 1024 * share < need_memory
    fitting = [
        name
        for name, spec in TYPES.items()
        if not spec["burstable"]
        and spec["vcpu"] * 1024 >= need_cpu
        and spec["memory_gib"] * 1024 * share >= need_memory
    ]
    cheapest = min(fitting, key=lambda name: hour(r, name))
    assert cheapest == "m7g.large"
    # t4g.large would hold them for less, but it bursts: named as skipped, not priced.
    burst = TYPES["t4g.large"]
    assert burst["burstable"] and burst["memory_gib"] * 1024 * share >= need_memory
    assert hour(r, "t4g.large") < hour(r, cheapest)

    est = estimate(inputs)
    ecs = est.comparison("ecs_on_ec2")
    instance = server_month(r, cheapest, ECS_INSTANCE["gp3_gb"])
    # One bridge per instance: 2 instances at min (one per AZ), 4 at max.
    assert ecs.idle_usd == pytest.approx(stack_without_tasks(inputs, 2, 1.5, 0.5) + 2 * instance)
    assert ecs.max_usd == pytest.approx(stack_without_tasks(inputs, 4, 2.5, 1.5) + 4 * instance)
    # Asleep the group is at 0: the stack's own asleep month; an awake hour adds the rest.
    assert ecs.asleep_usd == pytest.approx(est.total_asleep)
    assert ecs.asleep_usd + H * ecs.awake_hour_usd == pytest.approx(ecs.idle_usd)
    assert ecs.name.endswith("m7g.large") and ecs.estimate
    assert f"skipped: t4g.large (${hour(r, 't4g.large'):g}/h)" in ecs.note


def test_ecs_on_ec2_big_layout_takes_an_instance_per_bridge() -> None:
    # 3 AZs, 1 shard of 1 vCPU / 2 GB, bridges of 4 vCPU / 8 GB, min 2, max 6, x86 Fargate.
    inputs = BIG_ZURICH
    r = inputs.region
    share = ECS_INSTANCE["registered_memory_fraction"]
    need_cpu, need_memory = 1024 + 4096, 2048 + 8192
    fitting = [
        n
        for n, s in TYPES.items()
        if not s["burstable"]
        and s["vcpu"] * 1024 >= need_cpu
        and s["memory_gib"] * 1024 * share >= need_memory
    ]
    cheapest = min(fitting, key=lambda name: hour(r, name))
    instance = server_month(r, cheapest, ECS_INSTANCE["gp3_gb"])
    # min 2 bridges over 3 AZs: 1 + 1 + 0, the one shard beside the first bridge: 2 instances;
    # max 6: 2 + 2 + 2.
    on_demand_min, spot_min = 1 + 1 * 1 / 4, 1 * 3 / 4  # base 1, weight 3
    on_demand_max, spot_max = 1 + 5 / 4, 5 * 3 / 4
    ecs = estimate(inputs).comparison("ecs_on_ec2")
    assert ecs.idle_usd == pytest.approx(
        stack_without_tasks(inputs, 2, on_demand_min, spot_min) + 2 * instance
    )
    assert ecs.max_usd == pytest.approx(
        stack_without_tasks(inputs, 6, on_demand_max, spot_max) + 6 * instance
    )
    assert cheapest in ecs.name


@pytest.mark.parametrize("inputs", [default_zurich_stack(), DEFAULT_FRANKFURT, BIG_ZURICH])
def test_savings_plan_commits_the_on_demand_fargate_of_the_minimum(inputs: CostInputs) -> None:
    r = inputs.region
    discount = v(r, "savings_plan_fargate_1yr_no_upfront_discount")
    base, weight = inputs.jvb_ondemand_base, inputs.jvb_spot_weight
    on_demand = base + (inputs.jvb_min - base) / (weight + 1)  # Spot is not covered
    covered = inputs.signal_count * task_hour(
        r, inputs, inputs.signal_cpu, inputs.signal_memory
    ) + on_demand * task_hour(r, inputs, inputs.jvb_cpu, inputs.jvb_memory)
    commitment = (1 - discount) * covered

    est = estimate(inputs)
    d = est.decisions
    plan = est.comparison("savings_plan")
    assert plan.idle_usd == pytest.approx(est.total_idle - discount * covered * H)
    assert plan.max_usd == pytest.approx(est.total_max - discount * covered * H)
    # The commitment is owed asleep too; an awake hour no longer pays the covered usage.
    assert plan.asleep_usd == pytest.approx(d.asleep_month_usd + commitment * H)
    assert plan.awake_hour_usd == pytest.approx(d.awake_hour_usd - covered)

    # Break-even: with and without the plan cost the same at (1 - discount) x 730 awake hours.
    even = (1 - discount) * H
    with_plan = plan.asleep_usd + even * plan.awake_hour_usd
    assert with_plan == pytest.approx(d.asleep_month_usd + even * d.awake_hour_usd)
    assert f"pays off above {even:.0f} awake hours a month" in plan.note
    # Below it (the awake-hours month here), the plan costs more than it saves.
    assert d.awake_hours_month < even
    month = plan.asleep_usd + d.awake_hours_month * plan.awake_hour_usd
    assert month > d.month_usd
    assert f"month costs ${month:,.2f} with it, ${d.month_usd:,.2f} without" in plan.note


def test_savings_plan_covers_every_bridge_without_spot() -> None:
    no_spot = replace(DEFAULT_FRANKFURT, jvb_spot_weight=0)
    r = no_spot.region
    discount = v(r, "savings_plan_fargate_1yr_no_upfront_discount")
    covered = 2 * task_hour(r, no_spot, 512, 2048) + 2 * task_hour(r, no_spot, 1024, 2048)
    est = estimate(no_spot)
    saved = est.total_idle - est.comparison("savings_plan").idle_usd
    assert saved == pytest.approx(discount * covered * H)


def test_the_three_comparisons_in_cost_json() -> None:
    for inputs in (default_zurich_stack(), CostInputs(region="us-east-1")):
        est = estimate(inputs)
        doc = json.loads(json.dumps(est.to_dict()))
        for key in ("ec2_ha", "ecs_on_ec2", "savings_plan"):
            c = doc["comparisons"][key]
            assert set(c) == {
                "name",
                "idle",
                "max",
                "vs_stack_idle",
                "asleep",
                "awake_hour",
                "estimate",
                "note",
                "figures",
            }
            comp = est.comparison(key)
            assert c["idle"] == round(comp.idle_usd, 2)
            assert c["vs_stack_idle"] == pytest.approx(c["idle"] - doc["total"]["idle"], abs=0.011)
            # The discount and the sizing are estimates in every region, so is each comparison.
            assert c["estimate"] is True
        assert doc["comparisons"]["ec2_ha"]["asleep"] is None
        assert doc["comparisons"]["ecs_on_ec2"]["asleep"] == doc["total"]["asleep"]


def test_new_prices_keep_provenance_and_zurich_derives_from_frankfurt() -> None:
    ratio = 1.10  # ratios.zurich_over_frankfurt, as the table's other Zurich estimates
    for name in (
        "c7g.medium",
        "c7g.large",
        "c7g.2xlarge",
        "c7g.4xlarge",
        "m7g.large",
        "t4g.medium",
    ):
        key = f"ec2_{name.replace('.', '_')}_hour"
        assert not is_estimate("us-east-1", key)
        assert is_estimate("eu-central-1", key) and is_estimate("eu-central-2", key)
        assert v("eu-central-2", key) == pytest.approx(v("eu-central-1", key) * ratio, abs=1e-4)
    for region in ("eu-central-2", "eu-central-1", "us-east-1"):
        assert is_estimate(region, "savings_plan_fargate_1yr_no_upfront_discount")
    assert math.isclose(ECS_INSTANCE["registered_memory_fraction"], 7985 / 8192, abs_tol=1e-4)


def test_docs_comparison_table_is_the_models_figures() -> None:
    """docs/ecs.md's table of the three designs is what `pcls cost` prices for the default."""
    text = (Path(__file__).parents[1] / "docs" / "ecs.md").read_text(encoding="utf-8")
    section = text.split("### Against the designs it replaces", 1)[1].split("\n## ", 1)[0]
    rows = {
        cells[0]: cells[1:5]
        for line in section.splitlines()
        if line.startswith("| ") and "---" not in line
        for cells in [[c.strip() for c in line.split("|")[1:-1]]]
    }
    est = estimate(default_zurich_stack())
    names = {
        "HA EC2": "ec2_ha",
        "ECS on an EC2 Auto Scaling group": "ecs_on_ec2",
        "1-year Compute Savings Plan": "savings_plan",
    }
    for label, key in names.items():
        c = est.comparison(key)
        asleep = "cannot sleep" if c.asleep_usd is None else f"${c.asleep_usd:.2f}"
        hour_ = "-" if c.awake_hour_usd is None else f"${c.awake_hour_usd:.4f}"
        assert rows[label] == [asleep, hour_, f"${c.idle_usd:.2f}", f"${c.max_usd:.2f}"], label
    plan = est.comparison("savings_plan")
    even = (1 - v("eu-central-2", "savings_plan_fargate_1yr_no_upfront_discount")) * H
    assert f"above {even:.0f} awake hours a month" in section
    assert f"saves ${est.total_idle - plan.idle_usd:.2f}" in section


def test_ec2_ha_signal_server_holds_the_shard_task() -> None:
    # A 4 vCPU / 8 GB shard: no t4g candidate has 4 vCPUs; c7g.xlarge has 4 vCPUs and 8 GiB.
    big = replace(DEFAULT_FRANKFURT, signal_cpu=4096, signal_memory=8192)
    holding = [
        n for n, s in TYPES.items() if s["vcpu"] * 1024 >= 4096 and s["memory_gib"] * 1024 >= 8192
    ]
    cheapest = min(holding, key=lambda n: hour("eu-central-1", n))
    assert cheapest == "c7g.xlarge"
    r = big.region
    small = estimate(DEFAULT_FRANKFURT).comparison("ec2_ha")
    ha = estimate(big).comparison("ec2_ha")
    assert f"a signal server per shard ({cheapest}," in ha.note
    # The shared part (ALB, DNS, alarms) has no task in it: only the two signal servers differ.
    gp3 = EC2_HA["gp3_gb"]
    want = 2 * (server_month(r, cheapest, gp3) - server_month(r, "t4g.medium", gp3))
    assert ha.idle_usd - small.idle_usd == pytest.approx(want)


def test_ecs_on_ec2_keeps_an_instance_for_shards_in_an_az_without_a_bridge() -> None:
    # 2 shards and no bridge at the minimum: one instance per AZ for its shard.
    inputs = replace(DEFAULT_FRANKFURT, jvb_min=0)
    r = inputs.region
    ecs = estimate(inputs).comparison("ecs_on_ec2")
    instance = server_month(r, "m7g.large", ECS_INSTANCE["gp3_gb"])
    assert ecs.idle_usd == pytest.approx(stack_without_tasks(inputs, 0, 0, 0) + 2 * instance)
    assert "2 at min, 4 at max" in ecs.note

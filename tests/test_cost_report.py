"""`pcls cost` inputs, rendering and JSON; the plan's cost line; counts checked against moto."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from pcls import config
from pcls.cost import CostInputs, estimate
from pcls.cost_report import as_json, inputs_from_config, plan_cost_line, render
from pcls.sidecar_container import METRIC_UNITS
from pcls.steps import monitoring, scaling
from tests.harness import Harness

BASE = {"stack": {"name": "meet", "domain": "meet.example.com", "region": "eu-central-1"}}


def _cfg(**sections: dict) -> config.Config:
    data = {**BASE, **sections}
    data["stack"] = {**BASE["stack"], **sections.get("stack", {})}
    return config.parse(data)


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def test_inputs_follow_the_config() -> None:
    cfg = _cfg(
        stack={"region": "eu-central-2"},
        network={"azs": 3},
        signal={"cpu": 2048, "memory": 4096, "shards": 3},
        jvb={
            "cpu": 4096,
            "memory": 8192,
            "min_count": 2,
            "max_count": 8,
            "ondemand_base": 2,
            "spot_weight": 3,
        },
        dns={"create_zone": True},
        ecs={"container_insights": True, "cpu_architecture": "X86_64"},
        schedule={"awake": ["Mon-Fri 07:00-19:00", "Sat 09:00-12:00"]},
        alerts={"monthly_budget": 120, "email": "ops@example.com"},
    )
    inputs = inputs_from_config(cfg)
    assert (inputs.region, inputs.azs) == ("eu-central-2", 3)
    assert (inputs.signal_cpu, inputs.signal_memory, inputs.signal_count) == (2048, 4096, 3)
    assert (inputs.jvb_cpu, inputs.jvb_memory) == (4096, 8192)
    assert (inputs.jvb_min, inputs.jvb_max) == (2, 8)
    assert (inputs.jvb_ondemand_base, inputs.jvb_spot_weight) == (2, 3)
    assert inputs.hosted_zone_created and inputs.container_insights
    assert inputs.cpu_architecture == "X86_64"
    assert inputs.awake_hours_week == cfg.schedule.awake_hours_per_week() == 5 * 12 + 3
    assert inputs.awake_windows == ("Mon-Fri 07:00-19:00", "Sat 09:00-12:00")
    assert inputs.monthly_budget == 120
    # The defaults: ARM64, no awake windows (the estimate shows its labelled example month).
    plain = inputs_from_config(_cfg())
    assert (plain.cpu_architecture, plain.awake_hours_week, plain.monthly_budget) == (
        "ARM64",
        None,
        0.0,
    )
    assert inputs.dashboards == 1
    assert inputs.custom_metrics == len(METRIC_UNITS)
    # The monitoring and scaling modules are the source of the alarm count.
    assert inputs.alarms == monitoring.billed_alarm_metrics(cfg) + (
        scaling.target_tracking_alarm_count(cfg)
    )
    # A pool that cannot grow has no "at max" alarm: one metric fewer to pay for.
    fixed = _cfg(jvb={"min_count": 2, "max_count": 2})
    assert inputs_from_config(fixed).alarms == inputs_from_config(_cfg()).alarms - 1


def test_region_comes_from_the_caller_when_the_config_has_none() -> None:
    cfg = config.parse({"stack": {"name": "meet", "domain": "meet.example.com"}})
    assert inputs_from_config(cfg, region="us-east-1").region == "us-east-1"
    with pytest.raises(ValueError, match=r"stack\.region"):
        inputs_from_config(cfg)


def test_alarm_count_matches_what_up_creates(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every alarm metric CloudWatch would bill after `up`, target tracking's alarms included."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # moto runs no tasks by itself
    assert harness.up().ok
    cw = harness.client("cloudwatch")
    billed = 0
    for alarm in cw.describe_alarms()["MetricAlarms"]:
        queries = alarm.get("Metrics") or []
        billed += sum(1 for q in queries if "MetricStat" in q) if queries else 1
    cfg = config.load(harness.config_path)
    inputs = inputs_from_config(cfg)
    assert billed == inputs.alarms
    assert len(cw.list_dashboards()["DashboardEntries"]) == inputs.dashboards


def test_render_shows_totals_usage_comparisons_and_estimates() -> None:
    cfg = _cfg(stack={"region": "eu-central-2"}, scaling={"schedule": []})
    est = estimate(inputs_from_config(cfg))
    out = io.StringIO()
    render(est, Console(file=out, width=240, color_system=None), cfg)
    text = out.getvalue()
    doc = est.to_dict()
    asleep, idle, peak = (re.escape(_usd(doc["total"][k])) for k in ("asleep", "idle", "max"))
    assert re.search(rf"Total per month\s+│\s+{asleep}\s+│\s+{idle}\s+│\s+{peak}\s+│\s+E", text)
    assert f"prices as of {est.as_of}" in text
    # The figures users decide on, each with what it is made of.
    d = doc["decisions"]
    assert re.search(rf"Per awake hour\s+│\s+\${d['awake_hour']:.4f}/h", text)
    assert re.search(rf"Per asleep month\s+│\s+{re.escape(_usd(d['asleep_month']))}", text)
    assert re.search(rf"A month, example hours\s+│\s+{re.escape(_usd(d['month']['total']))}", text)
    assert "example, no [schedule] awake set: Mon-Fri 07:00-19:00" in text
    assert re.search(rf"Always on\s+│\s+{re.escape(_usd(d['always_on']))}", text)
    assert re.search(
        rf"Worst case, egress included\s+│\s+{re.escape(_usd(d['worst_case']['total']))}", text
    )
    assert "Budget guard: no budget guard: set [alerts] monthly_budget" in text
    for var in doc["variants"].values():
        assert var["name"] in text and _usd(var["always_on"]) in text
    for band, row in doc["per_100_participant_hours"].items():
        assert re.search(rf"│ {band}\s.*{re.escape(_usd(row['total']))}", text)
    for comp in doc["comparisons"].values():
        assert comp["name"] in text and _usd(comp["idle"]) in text
    # Zurich figures are estimates: the marker, its legend and each estimated figure appear.
    assert est.estimate
    assert "E = the amount uses at least one estimated figure" in text
    for line in est.estimated_figures:
        assert line.split(":")[0] in text


def test_json_is_the_rounded_estimate_with_a_schema() -> None:
    est = estimate(inputs_from_config(_cfg()))
    doc = json.loads(json.dumps(as_json(est)))
    assert doc["schema"] == 1
    assert doc["prices_as_of"] == est.as_of and doc["region"] == "eu-central-1"
    assert len(doc["lines"]) == len(est.lines)
    assert doc["total"]["idle"] == round(est.total_idle, 2)
    assert set(doc["per_100_participant_hours"]) == {"low", "central", "high"}
    assert {"single_ec2", "with_nat", "router_service"} <= set(doc["comparisons"])
    assert all(isinstance(line["estimate"], bool) for line in doc["lines"])
    assert doc["decisions"]["always_on"] == doc["total"]["idle"]
    assert doc["inputs"]["cpu_architecture"] == "ARM64"


def test_render_labels_the_configured_awake_hours() -> None:
    cfg = _cfg(
        schedule={"awake": ["Mon-Fri 07:00-19:00"]},
        alerts={"monthly_budget": 90, "email": "a@example.com"},
    )
    est = estimate(inputs_from_config(cfg))
    out = io.StringIO()
    render(est, Console(file=out, width=240, color_system=None), cfg)
    text = out.getvalue()
    assert "A month, awake hours" in text and "example" not in est.decisions.month_basis
    assert '[schedule] awake = ["Mon-Fri 07:00-19:00"]: 60 h/week' in text
    assert "Budget guard: [alerts] monthly_budget = 90 USD" in text


def test_plan_cost_line() -> None:
    cfg = _cfg()
    idle = estimate(inputs_from_config(cfg)).total_idle
    assert plan_cost_line(cfg, deployed=False) == (
        f"Cost: +{_usd(idle)}/month at idle (now $0.00 → {_usd(idle)})"
    )
    assert plan_cost_line(cfg, deployed=True) == (
        f"Cost: +$0.00/month at idle (now {_usd(idle)} → {_usd(idle)})"
    )
    # Three bridges at idle instead of one per AZ: the third half on Spot at the default weight.
    bigger = _cfg(jvb={"min_count": 3})
    was = inputs_from_config(cfg)
    more = estimate(inputs_from_config(bigger)).total_idle
    line = plan_cost_line(bigger, deployed=True, before=was)
    assert line == f"Cost: +{_usd(more - idle)}/month at idle (now {_usd(idle)} → {_usd(more)})"
    assert plan_cost_line(cfg, deployed=True, before=inputs_from_config(bigger)).startswith(
        f"Cost: -{_usd(more - idle)}/month"
    )
    nowhere = config.parse({"stack": {"name": "meet", "domain": "meet.example.com"}})
    assert plan_cost_line(nowhere, deployed=False, region="ap-south-2").startswith(
        "Cost: not estimated (no prices for region 'ap-south-2'"
    )
    assert isinstance(was, CostInputs)


def test_cost_json_through_the_cli(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """`pcls cost --json --region eu-central-2`: the whole estimate, the decisions included."""
    harness.write_config(
        '[schedule]\nawake = ["Mon-Fri 07:00-19:00"]\n[ecs]\ncpu_architecture = "X86_64"\n'
    )
    res = harness.cli("cost", "--json", "--region", "eu-central-2", capsys=capsys)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    cfg = config.load(harness.config_path)
    want = as_json(estimate(inputs_from_config(cfg, "eu-central-2")))
    assert doc == json.loads(json.dumps(want))
    assert doc["schema"] == 1 and doc["region"] == "eu-central-2"
    assert doc["inputs"]["cpu_architecture"] == "X86_64"
    month = doc["decisions"]["month"]
    assert month["example"] is False and month["awake_hours"] == round(60 * 730 / 168, 2)
    assert doc["variants"]["x86_64_spot"]["configured"] is True
    for key in ("awake_hour", "asleep_month", "month", "always_on", "worst_case", "inputs"):
        assert key in doc["decisions"], key

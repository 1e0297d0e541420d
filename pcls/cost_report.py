"""`pcls cost` and the cost line of `pcls plan`: the cost model applied to a config. No AWS calls.

The counts the bill depends on (alarm metrics, dashboards, custom metrics) come from the modules
that create those resources, so the estimate prices exactly what `up` builds.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pcls.config import Config
from pcls.cost import CostInputs, Estimate, estimate, monthly_delta, render_lines, usd_hour
from pcls.sidecar_container import METRIC_UNITS
from pcls.steps import monitoring, scaling

DASHBOARDS = 1
JSON_SCHEMA = 1  # additions keep the schema; a renamed or removed key would bump it


def inputs_from_config(cfg: Config, region: str | None = None) -> CostInputs:
    """What the configured stack bills for. `region` overrides an empty stack.region."""
    where = region or cfg.stack.region
    if not where:
        raise ValueError("stack.region: not set; set it in pcls.toml or pass the region")
    return CostInputs(
        region=where,
        azs=cfg.network.azs,
        signal_cpu=cfg.signal.cpu,
        signal_memory=cfg.signal.memory,
        signal_count=cfg.signal.shards,  # one task per shard (web, prosody, jicofo, router)
        jvb_cpu=cfg.jvb.cpu,
        jvb_memory=cfg.jvb.memory,
        jvb_min=cfg.jvb.min_count,
        jvb_max=cfg.jvb.max_count,
        jvb_ondemand_base=cfg.jvb.ondemand_base,
        jvb_spot_weight=cfg.jvb.spot_weight,
        # pcls's alarms (a metric-math alarm bills each metric it reads) plus the AlarmHigh and
        # AlarmLow that Application Auto Scaling makes for each target tracking policy.
        alarms=monitoring.billed_alarm_metrics(cfg) + scaling.target_tracking_alarm_count(cfg),
        dashboards=DASHBOARDS,
        custom_metrics=len(METRIC_UNITS),  # the bridge guard's EMF metrics, one dimension set
        hosted_zone_created=cfg.dns.create_zone,
        container_insights=cfg.ecs.container_insights,
        cpu_architecture=cfg.ecs.cpu_architecture,
        # None: no awake windows configured; the estimate then shows a labelled example month
        awake_hours_week=cfg.schedule.awake_hours_per_week() if cfg.schedule.awake else None,
        awake_windows=cfg.schedule.awake,
        monthly_budget=cfg.alerts.monthly_budget,
    )


def _cents(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def money(value: float) -> str:
    """$1,234.56 (half-up to the cent, as an invoice rounds)."""
    return f"${_cents(value):,.2f}"


def signed_money(value: float) -> str:
    cents = _cents(value)
    return f"{'-' if cents < 0 else '+'}${abs(cents):,.2f}"


def plan_cost_line(
    cfg: Config,
    deployed: bool,
    before: CostInputs | None = None,
    region: str | None = None,
) -> str:
    """The monthly idle cost change a plan would make.

    `deployed`: the stack exists, assumed as the config describes it unless `before` says what
    is deployed. Never raises for a region the price table lacks: a plan must still print.
    """
    try:
        after = inputs_from_config(cfg, region)
        was = before if before is not None else (after if deployed else None)
        delta = monthly_delta(was, after)
        now = estimate(was).total_idle if was is not None else 0.0
    except ValueError as exc:
        return f"Cost: not estimated ({exc})"
    return f"Cost: {signed_money(delta)}/month at idle (now {money(now)} → {money(now + delta)})"


def as_json(est: Estimate) -> dict[str, Any]:
    """The estimate for `pcls cost --json`: money rounded to cents, every figure's provenance."""
    return {"schema": JSON_SCHEMA, **est.to_dict()}


def render(est: Estimate, console: Console, cfg: Config | None = None) -> None:
    """What users decide on, the itemized month, architecture and Spot, usage, comparisons,
    footnotes."""
    marker = "E"
    d = est.decisions
    flag = marker if est.estimate else ""
    decide = Table(
        title=f"What it costs in {est.region} ({est.currency}, prices as of {est.as_of})",
        title_justify="left",
    )
    decide.add_column("figure")
    decide.add_column("amount", justify="right")
    decide.add_column(marker, justify="center")
    decide.add_column("made of", overflow="fold")
    month_name = "A month, example hours" if d.month_is_example else "A month, awake hours"
    rows = (
        ("Per awake hour", f"{usd_hour(d.awake_hour_usd)}/h", d.inputs["awake_hour"]),
        ("Per asleep month", money(d.asleep_month_usd), d.inputs["asleep_month"]),
        (month_name, money(d.month_usd), d.inputs["month"]),
        ("Always on", money(d.always_on_usd), d.inputs["always_on"]),
        ("Worst case, egress included", money(d.worst_case_usd), d.inputs["worst_case"]),
    )
    for name, amount, made_of in rows:
        # Text: the inputs hold brackets ([schedule]) that are not markup
        decide.add_row(name, amount, flag, Text(made_of))
    console.print(decide)
    console.print(Text(f"Budget guard: {est.budget_guard}", style="dim"))

    items = Table(title="Itemized month", title_justify="left")
    items.add_column("item")
    items.add_column("asleep", justify="right")
    items.add_column("always on", justify="right")
    items.add_column("max", justify="right")
    items.add_column(marker, justify="center")
    items.add_column("note", overflow="fold")
    lines = render_lines(est)
    for i, (name, asleep, idle, peak, estimated, note) in enumerate(lines):
        total = i == len(lines) - 1
        items.add_row(
            name,
            asleep,
            idle,
            peak,
            estimated,
            Text(note),
            style="bold" if total else None,
            end_section=i == len(lines) - 2,
        )
    console.print(items)

    arch = Table(title="CPU architecture and Spot (the same stack)", title_justify="left")
    for col in ("design", "awake hour", "asleep month", "month", "always on", marker):
        arch.add_column(col, justify="left" if col == "design" else "right")
    for v in est.variants:
        arch.add_row(
            v.name + (" (configured)" if v.configured else ""),
            f"{usd_hour(v.awake_hour_usd)}/h",
            money(v.asleep_month_usd),
            money(v.month_usd),
            money(v.always_on_usd),
            marker if v.estimate else "",
            style="bold" if v.configured else None,
        )
    console.print(arch)

    usage = Table(title="Usage: per 100 participant-hours", title_justify="left")
    for col in ("band", "GB/participant-h", "egress GB", "egress", "JVB task-h", "JVB", "total"):
        usage.add_column(col, justify="left" if col == "band" else "right")
    for p in est.per_100_participant_hours:
        usage.add_row(
            p.band,
            f"{p.gb_per_participant_hour:g}",
            f"{p.egress_gb:,.1f}",
            money(p.egress_usd),
            f"{p.jvb_task_hours:g}",
            money(p.jvb_usd),
            money(p.total_usd),
        )
    console.print(usage)
    console.print(Text(est.capacity_basis, style="dim"))

    compare = Table(title="The same month, other designs", title_justify="left")
    compare.add_column("design")
    compare.add_column("asleep", justify="right")
    compare.add_column("awake hour", justify="right")
    compare.add_column("always on", justify="right")
    compare.add_column("max", justify="right")
    compare.add_column("vs this stack (always on)", justify="right")
    compare.add_column(marker, justify="center")
    compare.add_column("note", overflow="fold")
    compare.add_row(
        "This stack (pcls)",
        money(est.total_asleep),
        f"{usd_hour(d.awake_hour_usd)}/h",
        money(est.total_idle),
        money(est.total_max),
        "",
        flag,
        "as itemized above",
    )
    for c in est.comparisons:
        compare.add_row(
            c.name,
            "cannot sleep" if c.asleep_usd is None else money(c.asleep_usd),
            "" if c.awake_hour_usd is None else f"{usd_hour(c.awake_hour_usd)}/h",
            money(c.idle_usd),
            money(c.max_usd),
            signed_money(c.idle_usd - est.total_idle),
            marker if c.estimate else "",
            Text(c.note),
        )
    console.print(compare)

    console.print(f"{marker} = the amount uses at least one estimated figure:")
    for line in est.estimated_figures:
        _item(console, line)
    console.print("Assumptions:")
    for line in est.assumptions:
        _item(console, line)
    if cfg is not None:
        own = monitoring.billed_alarm_metrics(cfg)
        tracking = scaling.target_tracking_alarm_count(cfg)
        _item(
            console,
            f"CloudWatch alarms counts alarm metrics: {own} for pcls's alarms (a metric-math "
            f"alarm bills each metric it reads) + {tracking} that target tracking creates",
        )
        if cfg.scaling.schedule:
            _item(
                console,
                f"the {len(cfg.scaling.schedule)} scheduled scaling action(s) are not priced: "
                "awake hours assume jvb.min_count",
            )


def _item(console: Console, text: str) -> None:
    # Figures and notes hold brackets and numbers: print them as plain text.
    console.print(f"  - {text}", markup=False, highlight=False)

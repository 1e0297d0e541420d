"""The projector view of `status` and `cost` (`--compact`): at most 80 columns and 24 lines.

status: one line per step group (the module that defines the steps), naming only what is not
in sync, then one line per signal shard and one for the bridge pool, which is where a stopped
task and its replacement show. cost: the items that cost something, the total, the usage rates
and the other designs, from the same figures `pcls cost --json` prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text

from pcls.engine import RunResult, Step
from pcls.steps.scaling import ScalingTarget
from pcls.steps.services import Service, ShardServices
from pcls.ui import STYLE, Outcome

WIDTH = 80
LABEL = 14
NAMES = {"loadbalancer": "load balancer"}


def _fit(text: Text, width: int = WIDTH) -> Text:
    if len(text.plain) > width:
        text.truncate(width - 1)
        text.append("…")
    return text


def _line(label: str, body: str, style: str = "") -> Text:
    text = Text(f"{label[: LABEL - 1]:<{LABEL}}", style="bold")
    text.append(body, style=style)
    return _fit(text)


def _group(step: Step) -> str:
    module = type(step).__module__.rsplit(".", 1)[-1]
    return NAMES.get(module, module)


def status_lines(
    result: RunResult, steps: Mapping[str, Step], stack: str, region: str
) -> list[Text]:
    rows = result.results
    counts: dict[Outcome, int] = {}
    for r in rows.values():
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    summary = ", ".join(f"{n} {o.value}" for o, n in sorted(counts.items(), key=lambda i: i[0]))
    lines = [_fit(Text(f"{stack} · {region} · {len(rows)} resources: {summary}", style="bold"))]

    groups: dict[str, list[str]] = {}
    for name in steps:
        if name in rows:
            groups.setdefault(_group(steps[name]), []).append(name)
    for group, names in groups.items():
        bad = [rows[n] for n in names if rows[n].outcome is not Outcome.IN_SYNC]
        same = len(names) - len(bad)
        parts = [f"{same} in sync"] if same else []
        missing = [r.step for r in bad if r.outcome is Outcome.MISSING and not r.error]
        if missing:
            parts.append("missing: " + ", ".join(missing))
        for r in bad:
            if r.step in missing:
                continue
            why = "; ".join(r.drift) or (str(r.error) if r.error else "")
            parts.append(f"{r.step} {r.outcome.value}" + (f" ({why})" if why else ""))
        style = STYLE[bad[0].outcome] if bad else STYLE[Outcome.IN_SYNC]
        lines.append(_line(group, " · ".join(parts), style))

    for name, step in steps.items():
        r = rows.get(name)
        if r is None or r.outcome is Outcome.MISSING:
            continue
        if isinstance(step, ShardServices):
            for shard in [*step.shards, *(k for k in r.details if k not in step.shards)]:
                if shard in r.details and shard != "state":
                    lines.append(_line(shard, str(r.details[shard])))
        elif isinstance(step, Service) and not step.shard:
            lines.append(_line("bridges", _bridges(r.details, _scaling(result, steps))))
    return lines


def _scaling(result: RunResult, steps: Mapping[str, Step]) -> dict[str, Any]:
    for name, step in steps.items():
        if isinstance(step, ScalingTarget) and name in result.results:
            return result.results[name].details
    return {}


def _bridges(d: Mapping[str, Any], scaling: Mapping[str, Any]) -> str:
    parts = [f"{d.get('running', '?')}/{d.get('desired', '?')} running"]
    if scaling.get("min") is not None:
        parts[0] += f" (min {scaling['min']}, max {scaling['max']})"
    if d.get("pending"):
        parts.append(f"{d['pending']} pending")
    if d.get("rollout") not in (None, "COMPLETED", "-"):
        parts.append(f"rollout {d['rollout']}")
    if d.get("draining"):
        parts.append(f"draining {d['draining']}")
    if d.get("per_az"):
        parts.append(str(d["per_az"]))
    if d.get("xmpp"):
        parts.append(f"xmpp {d['xmpp']}")
    return " · ".join(parts)


# -- cost -------------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _amounts(label: str, idle: float, top: float, estimate: bool) -> Text:
    name = label if len(label) <= 52 else label[:51] + "…"
    return Text(f"{name:<52} {'E' if estimate else ' '} {_money(idle):>11} {_money(top):>11}")


def cost_lines(doc: Mapping[str, Any], small: float = 1.0) -> list[Text]:
    """`doc` is what `pcls cost --json` prints; items under `small` a month share one line."""
    head = f"Monthly cost, {doc['region']} ({doc['currency']}, prices of {doc['prices_as_of']})"
    lines = [_fit(Text(f"{head:<54} {'idle':>11} {'max':>11}", style="bold"))]
    minor: list[Mapping[str, Any]] = []
    for item in doc["lines"]:
        if item["idle"] < small and item["max"] < small:
            minor.append(item)
            continue
        lines.append(_amounts(item["name"], item["idle"], item["max"], item["estimate"]))
    if minor:
        label = f"{len(minor)} more items (each under {_money(small)})"
        idle, top = sum(i["idle"] for i in minor), sum(i["max"] for i in minor)
        lines.append(_amounts(label, idle, top, any(i["estimate"] for i in minor)))
    total = _amounts("Total per month", doc["total"]["idle"], doc["total"]["max"], doc["estimate"])
    total.stylize("bold")
    lines.append(total)
    rates = doc.get("per_100_participant_hours") or {}
    if rates:
        text = " · ".join(f"{band} {_money(v['total'])}" for band, v in rates.items())
        lines.append(_fit(Text(f"usage, per 100 participant-hours: {text}")))
    others = [c for c in (doc.get("comparisons") or {}).values() if "idle" in c]
    if others:
        lines.append(Text("The same month, other designs", style="bold"))
        for c in others:
            lines.append(_amounts(c["name"], c["idle"], c["max"], c.get("estimate", False)))
    if _any_estimate(doc["lines"], others) or doc["estimate"]:
        lines.append(Text("E = uses an estimated figure (pcls cost names each)", style="dim"))
    return lines


def _any_estimate(*groups: Iterable[Mapping[str, Any]]) -> bool:
    return any(i.get("estimate") for g in groups for i in g)

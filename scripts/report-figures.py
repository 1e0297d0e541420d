"""Write the measured figures into the docs, so they regenerate instead of going stale.

python scripts/report-figures.py                    # rewrite every figures block
python scripts/report-figures.py --check            # exit 1 naming each block out of date
python scripts/report-figures.py --take-benchmarks  # first copy benchmarks/results/*.json
                                                    # (a fresh run) to benchmarks/measured/

A block is `<!-- figures:NAME -->` ... `<!-- /figures -->` in docs/report/bericht.md (German:
decimal commas), README.md, benchmarks/README.md or docs/ha.md (decimal points). Every table
ends with the command that produced its numbers.

Cost figures are the output of `python -m pcls cost --json` for a config made by
`python -m pcls init` in a temporary directory, with the keys of each variant set in it, so the
real program reads and checks every config. Benchmark figures come from the JSON the benchmarks
write (benchmarks/results/, git-ignored), kept as measured in benchmarks/measured/.

Designs `pcls cost` does not price yet are rows that name the JSON key they wait for
(PENDING_DESIGNS, under "comparisons"); the script names the missing keys on stderr and in the
block, never fills in a number itself, and the row fills itself once the key exists.
"""

# ruff: noqa: RUF001  (typeset text: the multiplication sign and dashes are meant)
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "report" / "bericht.md"
README = ROOT / "README.md"
BENCH_README = ROOT / "benchmarks" / "README.md"
HA_DOC = ROOT / "docs" / "ha.md"
MEASURED = ROOT / "benchmarks" / "measured"
RESULTS = ROOT / "benchmarks" / "results"
# <!-- figures:NAME --> or <!-- figures:NAME | table caption --> ... <!-- /figures -->
BLOCK = re.compile(
    r"(<!-- figures:([\w-]+)(?: \| (.*?))? -->\n)(.*?)([ \t]*<!-- /figures -->)", re.S
)
DOMAIN = "meet.example.com"
REGIONS = ("eu-central-2", "eu-central-1", "us-east-1")
HOME = "eu-central-2"
AWAKE = ["Mon-Fri 07:00-19:00"]
# Zurich prices are Frankfurt x 1.10; prices.json gives x1.20 as the top of the plausible range.
ZURICH_HIGH = 1.20

# The cost targets the defaults are sized for (docs/ecs.md, "Cost targets"): decisions key, USD.
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("asleep_month", "a month asleep", "ein Monat schlafend", 30.0),
    ("awake_hour", "an awake hour", "eine wache Stunde", 0.25),
    ("month", "a month awake Mon-Fri 07:00-19:00", "ein Monat wach Mo–Fr 07–19 Uhr", 90.0),
    ("always_on", "always on (awake all month)", "durchgehend wach (ganzer Monat)", 160.0),
)
# Designs `pcls cost` compares under "comparisons" once its model has them; until then a row
# says which key it waits for, and fills itself when the key exists.
PENDING_DESIGNS: tuple[tuple[str, str, str], ...] = (
    (
        "HA-gleichwertiges EC2 (2 AZs, Auto Scaling Group)",
        "HA-equivalent EC2 (2 AZs, ASG)",
        "ec2_ha",
    ),
    ("ECS auf einer EC2 Auto Scaling Group", "ECS on an EC2 Auto Scaling group", "ecs_on_ec2"),
    ("Compute Savings Plan (1 Jahr)", "Compute Savings Plan (1 year)", "savings_plan"),
)

missing: set[str] = set()


# -- number formats ---------------------------------------------------------------------------


def num(value: float, digits: int = 2, lang: str = "en") -> str:
    """1,234.56 in English; 1 234,56 in German (a narrow no-break space groups thousands)."""
    text = f"{value:,.{digits}f}"
    if lang == "de":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def usd(value: float, lang: str) -> str:
    return num(value, 2, lang)


def sep(*widths: int | str) -> str:
    """A pipe table's rule: the dashes set the relative column widths when pandoc wraps.

    A number is a right-aligned column of that width, "l<width>" a left-aligned one; the first
    column is always left-aligned.
    """
    cells = []
    for i, w in enumerate(widths):
        left = isinstance(w, str) or i == 0
        n = int(w[1:]) if isinstance(w, str) else w
        cells.append(":" + "-" * n if left else "-" * n + ":")
    return "|" + "|".join(cells) + "|"


def with_caption(text: str, caption: str | None) -> str:
    """`Table: caption` right after the block's first table (pandoc numbers it)."""
    if not caption:
        return text
    lines = text.split("\n")
    end = next(i for i, line in enumerate(lines) if line.startswith("|"))
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:end], "", f"Table: {caption}", *lines[end:]])


def command_line(cmd: str, lang: str) -> str:
    word = "Befehl" if lang == "de" else "Command"
    return f"\n{word}: `{cmd}`\n"


# -- pcls cost --------------------------------------------------------------------------------


def _with_keys(text: str, keys: dict[str, dict[str, Any]]) -> str:
    """Set keys in the generated pcls.toml, right below their table's header."""
    for table, values in keys.items():
        header = f"[{table}]\n"
        if header not in text:
            raise SystemExit(f"pcls init wrote no [{table}] table; the figures script needs one")
        lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        text = text.replace(header, header + lines, 1)
    return text


@cache
def cost(region: str = HOME, variant: str = "") -> dict[str, Any]:
    """`pcls cost --json` of the default config in `region`, with a variant's keys set."""
    keys = VARIANTS[variant]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryDirectory() as tmp:
        init = [sys.executable, "-m", "pcls", "init", DOMAIN, "--region", region]
        subprocess.run(init, cwd=tmp, env=env, check=True, capture_output=True)
        cfg = Path(tmp) / "pcls.toml"
        cfg.write_text(_with_keys(cfg.read_text(), keys))
        done = subprocess.run(
            [sys.executable, "-m", "pcls", "cost", "--json"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise SystemExit(f"pcls cost ({region}, {variant or 'default'}): {done.stderr.strip()}")
    return json.loads(done.stdout)


VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "": {},
    "single": {"signal": {"shards": 1}, "jvb": {"min_count": 1}},
}


def variant_command(region: str, variant: str) -> str:
    """The command, or for a variant only the keys it sets in the generated pcls.toml."""
    keys = VARIANTS[variant]
    if not keys:
        return f"pcls init {DOMAIN} --region {region} && pcls cost --json"
    return "; ".join(
        f"[{t}] {k} = {json.dumps(v)}" for t, vals in keys.items() for k, v in vals.items()
    )


def variants_command(variants: tuple[str, ...], lang: str) -> str:
    base = variant_command(HOME, "")
    sets = " | ".join(variant_command(HOME, v) for v in variants)
    word = "mit" if lang == "de" else "with"
    return f"{base}, {word} {sets}" if variants else base


def decided(data: dict[str, Any]) -> dict[str, float]:
    """The decision figures of one `pcls cost --json`, by the keys of TARGETS."""
    d = data["decisions"]
    return {
        "asleep_month": d["asleep_month"],
        "awake_hour": d["awake_hour"],
        "month": d["month"]["total"],
        "always_on": d["always_on"],
    }


def zurich_high() -> dict[str, float]:
    """The figures with every estimated Zurich price at Frankfurt x 1.20 (pcls.cost.estimate)."""
    sys.path.insert(0, str(ROOT))
    from pcls import config, cost_report
    from pcls.cost import estimate, load_prices

    prices = json.loads(json.dumps(load_prices()))
    zurich, frankfurt = prices["regions"]["eu-central-2"], prices["regions"]["eu-central-1"]
    for key, fig in zurich.items():
        base = frankfurt.get(key, {}).get("value")
        if (
            fig.get("estimate")
            and isinstance(base, int | float)
            and "eu-central-1" in str(fig.get("derivation", ""))
        ):
            fig["value"] = base * ZURICH_HIGH
    cfg = config.parse({"stack": {"name": "meet", "domain": DOMAIN, "region": HOME}})
    est = estimate(cost_report.inputs_from_config(cfg, HOME), prices)
    d = est.decisions
    return {
        "idle": est.total_idle,
        "max": est.total_max,
        "asleep_month": d.asleep_month_usd,
        "awake_hour": d.awake_hour_usd,
        "month": d.month_usd,
        "always_on": d.always_on_usd,
    }


# -- cost blocks ------------------------------------------------------------------------------

# German names of `pcls cost`'s lines and designs; a name not here stays as pcls prints it.
DE_NAMES = {
    "Fargate: signal shards (web + prosody + jicofo + router)": "Fargate: Signal-Shards (web, "
    "prosody, jicofo, Router)",
    "Routers (HAProxy, room-sticky)": "Router (HAProxy, raumtreu) im Shard-Task",
    "Fargate: JVB bridges": "Fargate: Bridges (JVB)",
    "Application Load Balancer": "Application Load Balancer",
    "Public IPv4 addresses": "öffentliche IPv4-Adressen",
    "Cloud Map (namespace <stack>.internal)": "Cloud Map (Namespace meet.internal)",
    "CloudWatch alarms": "CloudWatch-Alarme",
    "Wake function (Lambda arm64 + EventBridge Scheduler)": "Weck-Funktion (Lambda arm64, "
    "EventBridge Scheduler)",
    "Route 53 queries": "Route 53",
    "CloudWatch dashboards": "Dashboard",
    "CloudWatch custom metrics": "Metriken",
    "CloudWatch Logs": "Logs",
    "SSM Parameter Store": "SSM",
    "ACM certificate": "ACM",
    "Data transfer out": "Egress (@tbl-nutzung)",
    "Single always-on EC2 t3.large": "eine EC2-Instanz t3.large, immer an (ohne HA)",
    "Same stack with NAT gateways in 2 AZs": "derselbe Stack mit NAT-Gateways in 2 AZs",
    "Same stack, routers as a separate service": "derselbe Stack, Router als eigener Service",
    "Same stack, bridges of 2 vCPU / 4 GB": "derselbe Stack, Bridges mit 2 vCPU / 4 GB",
    "Same stack, bridges of 4 vCPU / 8 GB": "derselbe Stack, Bridges mit 4 vCPU / 8 GB",
    "ARM64, bridges with Spot weight 1": "ARM64, Bridges mit Spot",
    "ARM64, bridges with no Spot": "ARM64, Bridges ohne Spot",
    "X86_64, bridges with Spot weight 1": "X86_64, Bridges mit Spot",
    "X86_64, bridges with no Spot": "X86_64, Bridges ohne Spot",
}


def name_in(name: str, lang: str) -> str:
    return DE_NAMES.get(name, name) if lang == "de" else name


# Short names for the sums of the cost targets table (a cell, not a table of its own).
SHORT = {
    "Fargate: signal shards (web + prosody + jicofo + router)": ("Shards", "shards"),
    "Fargate: JVB bridges": ("Bridges", "bridges"),
    "Application Load Balancer": ("ALB", "ALB"),
    "Public IPv4 addresses": ("IPv4", "IPv4"),
    "Cloud Map (namespace <stack>.internal)": ("Cloud Map", "Cloud Map"),
    "CloudWatch alarms": ("Alarme", "alarms"),
    "Wake function (Lambda arm64 + EventBridge Scheduler)": ("Weck-Funktion", "wake function"),
}


def short(name: str, lang: str) -> str:
    de, en = SHORT.get(name, (name_in(name, "de"), name))
    return de if lang == "de" else en


def signed(value: float, lang: str) -> str:
    return f"{'+' if value >= 0 else '−' if lang == 'de' else '-'}{usd(abs(value), lang)}"


def dash(lang: str) -> str:
    return "–" if lang == "de" else "-"


def block_cost_regions(lang: str) -> str:
    """Each line asleep, awake (idle) and at most in Zurich, awake and at most elsewhere."""
    data = {r: cost(r) for r in REGIONS}
    de = lang == "de"
    if de:
        head = (
            "| Posten (USD pro Monat) | eu-central-2 schlafend | eu-central-2 Leerlauf "
            "| eu-central-2 Maximum | eu-central-1 Leerlauf | eu-central-1 Maximum "
            "| us-east-1 Leerlauf |"
        )
    else:
        head = (
            "| USD per month | eu-central-2 asleep | eu-central-2 idle | eu-central-2 max "
            "| eu-central-1 idle | eu-central-1 max | us-east-1 idle |"
        )
    rows = [head, sep(40, 9, 9, 9, 9, 9, 9)]
    zero = []
    for name in (line["name"] for line in data[HOME]["lines"]):
        by = {r: next(x for x in data[r]["lines"] if x["name"] == name) for r in REGIONS}
        z, f, u = by["eu-central-2"], by["eu-central-1"], by["us-east-1"]
        values = [(z["asleep"], z), (z["idle"], z), (z["max"], z)]
        values += [(f["idle"], f), (f["max"], f), (u["idle"], u)]
        if all(v == 0 for v, _ in values) and "Router" not in name:
            zero.append(name_in(name, lang))
            continue
        cells = [usd(v, lang) + (" E" if line["estimate"] and v else "") for v, line in values]
        rows.append(f"| {name_in(name, lang)} | " + " | ".join(cells) + " |")
    rest = "übrige Posten" if de else "the rest"
    rows.append(f"| {rest} ({', '.join(zero)}) | " + " | ".join([usd(0, lang)] * 6) + " |")
    tot = []
    z = data[HOME]
    e = lambda d: " E" if d["estimate"] else ""  # noqa: E731
    tot = [
        f"**{usd(z['total']['asleep'], lang)}{e(z)}**",
        f"**{usd(z['total']['idle'], lang)}{e(z)}**",
        f"**{usd(z['total']['max'], lang)}{e(z)}**",
    ]
    for r, key in (("eu-central-1", "idle"), ("eu-central-1", "max"), ("us-east-1", "idle")):
        tot.append(f"**{usd(data[r]['total'][key], lang)}{e(data[r])}**")
    word = "Summe" if de else "total"
    rows.append(f"| **{word}** | " + " | ".join(tot) + " |")
    asof = data[HOME]["prices_as_of"]
    note = (
        f"\nE = enthält geschätzte Preise (Zürich: Frankfurt × 1,10). Schlafend: kein Task "
        f"läuft; Leerlauf: jeder Service mit minimaler Taskzahl; Maximum: `jvb.max_count` "
        f"Bridges; je den ganzen Monat ({data[HOME]['hours_per_month']} Stunden), ohne Egress. "
        f"Preisstand {asof}, USD vor Steuern."
        if de
        else f"\nE = includes estimated prices (Zurich: Frankfurt × 1.10). Asleep: no task runs; "
        f"idle: every service at its minimum; max: `jvb.max_count` bridges; each for the whole "
        f"month ({data[HOME]['hours_per_month']} hours), egress excluded. Prices as of {asof}, "
        f"USD before tax."
    )
    return (
        "\n".join(rows)
        + "\n"
        + note
        + "\n"
        + command_line(
            f"pcls init {DOMAIN} --region R && pcls cost --json  (R: {' / '.join(REGIONS)})",
            lang,
        )
    )


def block_cost_decisions(lang: str) -> str:
    """The cost targets against `pcls cost`'s decision figures, each with what it is made of."""
    data = cost()
    de = lang == "de"
    got = decided(data)
    d = data["decisions"]
    hours = data["hours_per_month"]
    lines = {line["name"]: line for line in data["lines"]}

    def parts(key: str) -> str:
        if key == "asleep_month":
            items = [(n, x["asleep"]) for n, x in lines.items() if x["asleep"]]
        elif key == "awake_hour":
            items = [(n, (x["idle"] - x["asleep"]) / hours) for n, x in lines.items()]
            items = [(n, v) for n, v in items if round(v, 4)]
        else:
            return ""
        digits = 4 if key == "awake_hour" else 2
        text = ""
        for i, (n, v) in enumerate(items):
            sign = ("− " if de else "- ") if v < 0 else ("+ " if i else "")
            text += f"{' ' if i else ''}{sign}{short(n, lang)} {num(abs(v), digits, lang)}"
        return text

    basis = {
        "asleep_month": parts("asleep_month"),
        "awake_hour": parts("awake_hour"),
        "month": (
            f"schlafender Monat + {num(d['month']['awake_hours'], 1, lang)} wache Stunden "
            f"(60 h pro Woche × {hours} / 168) × wache Stunde"
            if de
            else f"asleep month + {num(d['month']['awake_hours'], 1, lang)} awake hours "
            f"(60 h a week × {hours} / 168) × the awake hour"
        ),
        "always_on": (
            f"schlafender Monat + {hours} h × wache Stunde (= Leerlauf in @tbl-kosten)"
            if de
            else f"asleep month + {hours} h × the awake hour (= the idle total)"
        ),
    }
    rows = [
        "| Grösse (eu-central-2) | Ziel | `pcls cost` | | zusammengesetzt aus (USD) |"
        if de
        else "| figure (eu-central-2) | target | `pcls cost` | | made of (USD) |",
        sep(22, 8, 9, 3, "l44"),
    ]
    for key, en, german, target in TARGETS:
        digits = 4 if key == "awake_hour" else 2
        ok = "✓" if got[key] <= target else "✗"
        rows.append(
            f"| {german if de else en} | ≤ {num(target, 2, lang)} "
            f"| **{num(got[key], digits, lang)}** | {ok} | {basis[key]} |"
        )
    w = d["worst_case"]
    rows.append(
        f"| {'ungünstigster Monat: volle Bridges, Egress' if de else 'worst month: full bridges'}"
        f" | {dash(lang)} | **{usd(w['total'], lang)}** | | "
        + (
            f"Rechenzeit {usd(w['compute'], lang)} (Maximum) + {num(w['egress_gb'], 0, lang)} GB "
            f"Egress {usd(w['egress'], lang)}: {data['inputs']['jvb_max']} Bridges × "
            f"{num(data['inputs']['jvb_cpu'] / 1024 * 5, 0, lang)} Teilnehmende × 2,475 GB "
            f"pro Stunde × {hours} h"
            if de
            else f"compute {usd(w['compute'], lang)} (max) + {num(w['egress_gb'], 0, lang)} GB "
            f"egress {usd(w['egress'], lang)}: {w['basis']}"
        )
        + " |"
    )
    hi = zurich_high()
    note = (
        ""  # the report has the range in its comparison of designs
        if de
        else f"\nWith the Zurich estimates at the top of their range (Frankfurt × "
        f"{ZURICH_HIGH:.2f}): {usd(hi['asleep_month'], lang)} asleep, "
        f"{num(hi['awake_hour'], 4, lang)} an awake hour, {usd(hi['month'], lang)} for the "
        f"weekday month, {usd(hi['always_on'], lang)} always on."
    )
    return (
        "\n".join(rows)
        + "\n"
        + note
        + "\n"
        + command_line(
            variant_command(HOME, "")
            + "  (decisions; "
            + ("Teile: lines)" if de else "parts: lines; range: pcls.cost.estimate)"),
            lang,
        )
    )


def block_cost_variants(lang: str) -> str:
    """ARM64 / x86_64 with and without Spot: `pcls cost`'s variants of the same stack."""
    data = cost()
    de = lang == "de"
    rows = [
        "| Architektur, Bridges | wache Stunde | Monat schlafend | Monat Mo–Fr 07–19 "
        "| durchgehend wach | gegenüber Standard |"
        if de
        else "| architecture, bridges | awake hour | month asleep | month Mon-Fri 07-19 "
        "| always on | vs default |",
        sep(30, 9, 9, 9, 9, 10),
    ]
    base = next(v for v in data["variants"].values() if v["configured"])
    for v in data["variants"].values():
        name = name_in(v["name"], lang)
        if v["configured"]:
            name = f"**{name}; {'Standard' if de else 'the default'}**"
        diff = dash(lang) if v["configured"] else signed(v["always_on"] - base["always_on"], lang)
        rows.append(
            f"| {name} | {num(v['awake_hour'], 4, lang)} | {usd(v['asleep_month'], lang)} "
            f"| {usd(v['month'], lang)} | {usd(v['always_on'], lang)} | {diff} |"
        )
    return "\n".join(rows) + "\n" + command_line(variant_command(HOME, "") + "  (variants)", lang)


def block_cost_usage(lang: str) -> str:
    data = {r: cost(r) for r in REGIONS}
    bands = {"low": "niedrig", "central": "typisch", "high": "hoch"}
    if lang == "de":
        head = (
            "| pro 100 Teilnehmenden-Stunden | GB pro Teilnehmenden-Stunde | Egress "
            "| Bridge-Taskstunden | " + " | ".join(REGIONS) + " |"
        )
    else:
        head = (
            "| per 100 participant-hours | GB per participant-hour | egress | bridge task-hours | "
            + " | ".join(REGIONS)
            + " |"
        )
    rows = [head, sep(16, 14, 10, 12, 10, 10, 10)]
    for band, de in bands.items():
        p = data[HOME]["per_100_participant_hours"][band]
        label = de if lang == "de" else band
        cells = [
            num(p["gb_per_participant_hour"], 3, lang).rstrip("0").rstrip(",."),
            f"{num(p['egress_gb'], 1, lang)} GB",
            num(p["jvb_task_hours"], 0, lang),
            *(usd(data[r]["per_100_participant_hours"][band]["total"], lang) for r in REGIONS),
        ]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return (
        "\n".join(rows)
        + "\n"
        + command_line(
            "pcls cost --json  (per_100_participant_hours, je Region)"
            if lang == "de"
            else "pcls cost --json  (per_100_participant_hours, each region)",
            lang,
        )
    )


def block_cost_compare(lang: str) -> str:
    """The same stack against other designs: asleep, per awake hour, always on, at most."""
    base = cost()
    de = lang == "de"
    rows = [
        "| Entwurf | schlafend | wache Stunde | durchgehend wach | Maximum "
        "| gegenüber pcls (durchgehend) |"
        if de
        else "| design | asleep | awake hour | always on | max | vs pcls (always on) |",
        sep(34, 9, 9, 10, 9, 12),
    ]
    mine = decided(base)

    def row(
        name: str,
        asleep: float | None,
        hour: float | None,
        on: float,
        top: float,
        vs: float | None = None,
    ) -> str:
        a = usd(asleep, lang) if asleep is not None else dash(lang)
        h = num(hour, 4, lang) if hour is not None else dash(lang)
        vs = on - mine["always_on"] if vs is None else vs
        diff = signed(vs, lang) if name != me else dash(lang)
        return f"| {name} | {a} | {h} | {usd(on, lang)} | {usd(top, lang)} | {diff} |"

    me = "**dieser Stack, Standardkonfiguration**" if de else "**this stack, default config**"
    rows.append(
        row(me, mine["asleep_month"], mine["awake_hour"], mine["always_on"], base["total"]["max"])
    )
    german = {key: de_label for de_label, _, key in PENDING_DESIGNS}
    for key, c in base["comparisons"].items():
        name = german[key] if de and key in german else name_in(c["name"], lang)
        rows.append(
            row(name, c["asleep"], c["awake_hour"], c["idle"], c["max"], c["vs_stack_idle"])
        )
    single = cost(HOME, "single")
    s = decided(single)
    rows.append(
        row(
            "ohne HA: 1 Shard, 1 Bridge (`signal.shards = 1`, `jvb.min_count = 1`)"
            if de
            else "no HA: 1 shard, 1 bridge (`signal.shards = 1`, `jvb.min_count = 1`)",
            s["asleep_month"],
            s["awake_hour"],
            s["always_on"],
            single["total"]["max"],
        )
    )
    hi = zurich_high()
    rows.append(
        row(
            f"Zürcher Schätzpreise am oberen Rand (Frankfurt × {num(ZURICH_HIGH, 2, lang)})"
            if de
            else f"Zurich estimates at the top of their range (Frankfurt × {ZURICH_HIGH:.2f})",
            hi["asleep_month"],
            hi["awake_hour"],
            hi["always_on"],
            hi["max"],
        )
    )
    for german, english, key in PENDING_DESIGNS:
        if key in base["comparisons"]:
            continue  # priced by pcls cost: a row of the loop above
        missing.add(f"comparisons.{key}")
        label = german if de else english
        wait = f"folgt: `comparisons.{key}`" if de else f"to come: `comparisons.{key}`"
        rows.append(
            f"| {label} | {dash(lang)} | {dash(lang)} | {dash(lang)} | {dash(lang)} | {wait} |"
        )
    where = (
        "; Zürcher Rand: pcls.cost.estimate mit angepasster Preistabelle (dieses Skript)"
        if de
        else "; Zurich range: pcls.cost.estimate with the price table adjusted (this script)"
    )
    return (
        "\n".join(rows)
        + "\n"
        + command_line(variants_command(("single",), lang) + "  (comparisons)" + where, lang)
    )


def block_cost_verdict(lang: str) -> str:
    """The report's sentence on the cost targets: which are met, the closest or the missed."""
    data = cost()
    got = decided(data)
    labels = {key: german for key, _, german, _ in TARGETS}
    over = [(key, got[key] - target) for key, _, _, target in TARGETS if got[key] > target]
    if not over:
        key, margin = min(
            ((key, target - got[key]) for key, _, _, target in TARGETS),
            key=lambda kv: kv[1] / next(t for k, _, _, t in TARGETS if k == kv[0]),
        )
        return (
            f"Alle {len(TARGETS)} Ziele erreicht der Stack, am knappsten „{labels[key]}“ "
            f"(USD {usd(margin, 'de')} darunter).\n"
        )
    met = len(TARGETS) - len(over)
    missed = "; ".join(
        f"„{labels[key]}“ liegt mit USD {num(got[key], 2, 'de')} um USD {usd(d, 'de')} darüber"
        for key, d in over
    )
    return f"{met} der {len(TARGETS)} Ziele erreicht der Stack; {missed}.\n"


def block_savings_plan(lang: str) -> str:
    """The Savings Plan against sleep, from `pcls cost`'s comparison (German, the report)."""
    data = cost()
    sp = data["comparisons"].get("savings_plan")
    if sp is None:
        missing.add("comparisons.savings_plan")
        return "Seine Zeile in @tbl-vergleich füllt sich, sobald das Kostenmodell ihn bepreist.\n"
    mine = decided(data)
    hours = data["decisions"]["month"]["awake_hours"]
    month = sp["asleep"] + hours * sp["awake_hour"]
    even = (sp["asleep"] - mine["asleep_month"]) / (mine["awake_hour"] - sp["awake_hour"])
    return (
        f"Durchgehend wach spart er USD {usd(-sp['vs_stack_idle'], 'de')} im Monat, doch die "
        f"Zusage ist auch schlafend geschuldet (USD {usd(sp['asleep'], 'de')} statt "
        f"{usd(mine['asleep_month'], 'de')}): Er lohnt sich erst ab {num(even, 0, 'de')} wachen "
        f"Stunden im Monat, und der Werktagsmonat kostet mit ihm rund USD {num(month, 0, 'de')} "
        f"statt {usd(mine['month'], 'de')} (`pcls cost --json`, comparisons.savings_plan).\n"
    )


def block_cost_open(lang: str) -> str:
    """One sentence for the report's conclusion: which designs `pcls cost` does not price yet."""
    have = cost()["comparisons"]
    waiting = [german for german, _, key in PENDING_DESIGNS if key not in have]
    for key in (key for _, _, key in PENDING_DESIGNS if key not in have):
        missing.add(f"comparisons.{key}")
    if not waiting:
        return (
            "Auch die Entwürfe mit EC2 und Auto Scaling Group, ECS auf EC2 und der Savings "
            "Plan sind bepreist (@tbl-vergleich).\n"
        )
    if len(waiting) == 1:
        return f"Offen ist ein Vergleich, den das Kostenmodell noch nicht bepreist: {waiting[0]}.\n"
    count = {2: "zwei", 3: "drei"}[len(waiting)]
    return (
        f"Offen sind {count} Vergleiche, die das Kostenmodell noch nicht bepreist: "
        f"{', '.join(waiting)} (@tbl-vergleich).\n"
    )


def block_cost_headline(lang: str) -> str:
    z, f = cost("eu-central-2"), cost("eu-central-1")
    m = decided(z)
    return (
        f"Default stack in eu-central-2 (estimated prices): **${num(m['asleep_month'])} a month "
        f"asleep, ${num(m['awake_hour'], 4)} an awake hour, ${num(m['month'])} for a month awake "
        f"Mon-Fri 07:00-19:00, ${num(m['always_on'])} always on**; in eu-central-1 "
        f"${num(f['decisions']['always_on'])} always on. At most ${num(z['total']['max'])} "
        f"before egress (`pcls cost --json`, decisions; prices as of {z['prices_as_of']}).\n"
    )


def block_abstract_cost(lang: str) -> str:
    """Two sentences for the report's abstract (YAML, indented by two spaces)."""
    m, f, single = decided(cost("eu-central-2")), cost("eu-central-1"), cost(HOME, "single")
    return (
        f"  Nach `pcls cost` kostet der Stack in eu-central-2 (Schätzpreise) schlafend\n"
        f"  USD {usd(m['asleep_month'], 'de')} pro Monat und wach USD "
        f"{num(m['awake_hour'], 4, 'de')} pro Stunde; ein Monat mit\n  Wachzeiten werktags "
        f"07–19 Uhr kostet USD {usd(m['month'], 'de')}, durchgehend wach USD "
        f"{usd(m['always_on'], 'de')}\n  (eu-central-1: USD "
        f"{usd(f['decisions']['always_on'], 'de')}; ohne Hochverfügbarkeit USD "
        f"{usd(single['decisions']['always_on'], 'de')}).\n"
    )


def block_region_choice(lang: str) -> str:
    data = {r: cost(r)["total"]["idle"] for r in REGIONS}
    home = data[HOME]
    parts = [
        f"{r} ist durchgehend wach {num((1 - data[r] / home) * 100, 0, 'de')} % billiger"
        for r in REGIONS
        if r != HOME
    ]
    return (
        " und ".join(parts) + " (siehe @tbl-kosten); der Egress kostet überall gleich viel "
        "(`pcls cost --json`, total.idle je Region).\n"
    )


def block_plan_sample(lang: str) -> str:
    """README's sample `pcls plan`: the step count and the cost line come from pcls."""
    sys.path.insert(0, str(ROOT))
    from pcls import config, cost_report, steps

    cfg = config.parse({"stack": {"name": "meet", "domain": DOMAIN, "region": HOME}})
    count = len(steps.build(cfg))
    return (
        "```\n"
        "Target: account 123456789012 · region eu-central-2 · endpoint http://127.0.0.1:36533 "
        "· SANDBOX · stack meet (plan: read-only)\n"
        "+ would create vpc                      (0.0s)\n"
        "+ would create subnet-1                 after vpc (0.0s)\n"
        "…\n"
        "+ would create scaling-schedule         after scaling-target, scaling-policies (0.0s)\n"
        f"Plan: {count - 1} to create, 0 to update, 1 unchanged.\n"
        f"{cost_report.plan_cost_line(cfg, deployed=False)}\n"
        "```\n"
    )


# -- capacity ---------------------------------------------------------------------------------

# jicofo's max-bridge-participants default (jicofo-selector reference.conf): one conference on
# one bridge holds at most this many; pcls sets ENABLE_OCTO=0, so one conference is one bridge.
JICOFO_MAX_BRIDGE_PARTICIPANTS = 80
JVB_MAX = 100  # the highest jvb.max_count pcls.config accepts


def block_capacity(lang: str) -> str:
    sys.path.insert(0, str(ROOT))
    from pcls import config
    from pcls.cost import load_prices

    minimal = {"stack": {"name": "meet", "domain": DOMAIN, "region": HOME}}
    cfg = config.parse(minimal)
    per_vcpu = load_prices()["planning"]["jvb_participants_per_vcpu"]["value"]
    per_vcpu_target = config.TARGET_PER_VCPU
    vcpu = cfg.jvb.cpu / 1024
    heavy = per_vcpu * vcpu
    target = cfg.scaling.target
    big = {"jvb": {"cpu": 4096, "memory": 8192}}
    big_cfg = config.parse({**minimal, **big})  # still allowed, and its target follows jvb.cpu
    big_vcpu = big_cfg.jvb.cpu / 1024
    max_bridges = JVB_MAX
    config.parse({**minimal, "jvb": {"max_count": JVB_MAX}})  # still allowed?
    shard_vcpu = cfg.signal.cpu / 1024
    de = lang == "de"
    if not de:
        raise SystemExit("the capacity block is written in German only (docs/report/bericht.md)")
    n = lambda v, d=0: num(v, d, lang)  # noqa: E731
    rows = [
        "| Grösse | Wert | Herleitung |",
        sep(30, 12, "l40"),
        f"| Teilnehmende pro Bridge, ungünstiger Fall (720p, alle Kameras an) | {n(heavy)} | "
        f"{n(per_vcpu)} pro vCPU (HPI-Lasttests [J5]) × {n(vcpu)} vCPU "
        f"(`jvb.cpu = {cfg.jvb.cpu}`) |",
        f"| Teilnehmende pro Bridge, Skalierungsziel (typisch) | {n(target)} | `scaling.target` "
        f"ungesetzt: {n(per_vcpu_target)} pro Bridge-vCPU (typisch 10–20, Schätzung in "
        f"docs/ecs.md); bei schwerer Last zuerst `scaling.cpu_target = "
        f"{n(cfg.scaling.cpu_target)} %` |",
        f"| grösste Konferenz, Standard-Bridge | {n(target)} (ungünstig: {n(heavy)}) | "
        f"eine Konferenz liegt auf einer Bridge (kein Octo) |",
        f"| grösste Konferenz, grösste Bridge | {n(big_cfg.scaling.target)} (ungünstig: "
        f"{n(per_vcpu * big_vcpu)}) | `jvb.cpu = {big_cfg.jvb.cpu}`, `jvb.memory = "
        f"{big_cfg.jvb.memory}`; jicofo setzt höchstens {n(JICOFO_MAX_BRIDGE_PARTICIPANTS)} "
        f"auf eine Bridge (`max-bridge-participants` [J10]) |",
        f"| Bridges Standard (min. / max.) | {cfg.jvb.min_count} / {cfg.jvb.max_count} "
        f"| eine pro AZ (`network.azs = {cfg.network.azs}`) / `jvb.max_count` |",
        f"| Teilnehmende gleichzeitig, Standard (typisch / ungünstig) | "
        f"{n(cfg.jvb.max_count * target)} / {n(cfg.jvb.max_count * heavy)} | "
        f"{cfg.jvb.max_count} Bridges × {n(target)} bzw. × {n(heavy)} |",
        f"| Teilnehmende gleichzeitig, Maximum (typisch / ungünstig) | "
        f"{n(max_bridges * target)} / {n(max_bridges * heavy)} | `jvb.max_count` höchstens "
        f"{max_bridges}; dazu die Fargate-Quote (vCPU) des Kontos |",
        f"| Signal-Shards Standard / Maximum | {cfg.signal.shards} / 8 | `signal.shards` |",
        f"| Teilnehmende pro Shard (Schätzung) | ≈ {n(250 * shard_vcpu)} | ≈ 250 pro vCPU "
        f"(eine Konferenz auf einem Shard, Meetrix [J15]) × {n(shard_vcpu, 1)} vCPU "
        f"(`signal.cpu = {cfg.signal.cpu}`), linear gerechnet, nicht gemessen |",
        f"| Reaktionszeit Scale-out | ≈ {n(15 + 3 * 60 + 120)} s | EMF alle 15 s, 3 Datenpunkte "
        f"à 60 s (Target-Tracking-Alarm), Start einer Bridge ≈ 120 s (Zeitmodell) |",
    ]
    return (
        "\n".join(rows)
        + "\n"
        + command_line(
            "python scripts/report-figures.py (Werte aus pcls.config und "
            "pcls/data/prices.json planning.jvb_participants_per_vcpu)",
            lang,
        )
    )


# -- lines of code ----------------------------------------------------------------------------


def loc(pattern: str) -> int:
    files = subprocess.run(
        ["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return sum(len((ROOT / f).read_text(encoding="utf-8").splitlines()) for f in files)


def thousands(value: int) -> int:
    # rounded, so that an ordinary change elsewhere does not make the figure stale
    return round(value / 1000) * 1000


def block_loc(lang: str) -> str:
    rows = [
        "| Teil | Zeilen (gerundet auf 1 000) |",
        sep(30, 14),
        f"| Werkzeug `pcls/` (Python) | {num(thousands(loc('pcls/*.py')), 0, lang)} |",
        f"| davon Schritte `pcls/steps/` | {num(thousands(loc('pcls/steps/*.py')), 0, lang)} |",
        f"| Tests `tests/` | {num(thousands(loc('tests/*.py')), 0, lang)} |",
    ]
    return (
        "\n".join(rows)
        + "\n"
        + command_line(
            "git ls-files 'pcls/*.py' | xargs cat | wc -l  (ebenso pcls/steps/, tests/)", lang
        )
    )


# -- benchmarks -------------------------------------------------------------------------------


def measured(name: str) -> dict[str, Any]:
    path = MEASURED / f"{name}.json"
    if not path.exists():
        raise SystemExit(
            f"{path.relative_to(ROOT)} missing: run the benchmark, then --take-benchmarks"
        )
    return json.loads(path.read_text())


def block_latency(lang: str) -> str:
    d = measured("latency")
    scale = d["scale"]
    de = lang == "de"
    rows = [
        "| | Schranke (kritischer Pfad) | parallel 4 | Verhältnis "
        "| sequentiell (`--parallel 1`) | Verhältnis | API-Aufrufe |"
        if de
        else "| | critical-path bound | parallel 4 | ratio | parallel 1 | ratio "
        "| API calls (parallel 4) |",
        sep(10, 16, 16, 9, 16, 9, 9),
    ]
    for command in ("up", "teardown"):
        r = d["results"][command]
        label = ("kalter `up`" if de else "cold `up`") if command == "up" else "`teardown`"

        def t(s: float) -> str:
            minutes = s * scale / 60
            return f"{num(s, 2, lang)} s (≈ {num(minutes, 1, lang)} min)"

        rows.append(
            f"| {label} | {t(r['bound_s'])} | {t(r['wall_parallel_s'])} "
            f"| **{num(r['ratio_parallel'], 2, lang)}** | {t(r['wall_sequential_s'])} "
            f"| {num(r['ratio_sequential'], 2, lang)} | {r['calls_parallel']} |"
        )
    load = d["load_average"]["before"][0]
    rounds = d["repeat"]
    note = (
        f"\nZeitmodell: AWS-Dauern / {num(scale, 0, lang)}, Minuten in Klammern auf AWS "
        f"umgerechnet; {rounds} Runde(n), Load Average vorher {num(load, 1, lang)}."
        if de
        else f"\nTime model: AWS durations / {scale:g}, minutes in brackets scaled back to AWS; "
        f"{rounds} round(s), load average before {load:.1f}."
    )
    return (
        "\n".join(rows)
        + "\n"
        + note
        + "\n"
        + command_line(f"python benchmarks/latency.py --repeat {rounds}", lang)
    )


def block_latency_chains(lang: str) -> str:
    """Per command, the chain that finished last in the measured run and what it lost."""
    d = measured("latency")
    scale = d["scale"]
    worst = {
        command: max(d["rounds"], key=lambda r: r["results"][command]["ratio_parallel"])
        for command in ("up", "teardown")
    }
    lines = []
    for command, rnd in worst.items():
        chain = rnd["chains"][command]["parallel"]
        queued = sum(c["queued"] for c in chain)
        overshoot = sum(c["overshoot"] for c in chain)
        other = sum(c["took"] - c["bound_took"] - c["overshoot"] for c in chain)
        lost = queued + overshoot + other
        steps = " → ".join(c["step"] for c in chain)
        refused = rnd["results"][command].get("refused_parallel") or {}
        line = (
            f"- {'cold `up`' if command == 'up' else '`teardown`'}: the chain that finished last "
            f"is {steps}. It lost {lost:.2f} s (≈ {lost * scale:.0f} s on AWS): "
            f"{overshoot:.2f} s polling overshoot, {other:.2f} s slower calls, "
            f"{queued:.2f} s queued."
        )
        if refused:
            ops = ", ".join(f"`{k.split(':')[1]}` {v}" for k, v in sorted(refused.items()))
            line += (
                f" Deletes refused while network interfaces were held: "
                f"{sum(refused.values())} ({ops})."
            )
        lines.append(line)
    return (
        "\n".join(lines)
        + "\n"
        + command_line(
            f"python benchmarks/latency.py --repeat {d['repeat']}  (the chain tables it prints)",
            lang,
        )
    )


def block_latency_line(lang: str) -> str:
    """One line of today's cold up and teardown, for docs/ha.md."""
    d = measured("latency")
    up, down = d["results"]["up"], d["results"]["teardown"]
    scale = d["scale"]

    def pair(r: dict[str, Any]) -> str:
        return (
            f"bound {r['bound_s']:.2f} s ({r['bound_s'] * scale / 60:.1f} min), wall "
            f"{r['wall_parallel_s']:.2f} s ({r['wall_parallel_s'] * scale / 60:.1f} min)"
        )

    return (
        f"cold `up` {pair(up)}; teardown {pair(down)} "
        f"(`python benchmarks/latency.py --repeat {d['repeat']}`).\n"
    )


def block_api_calls(lang: str) -> str:
    d = measured("api_calls")
    de = lang == "de"
    names = {
        "plan": ("`plan` (nichts aufgebaut)", "`plan` (nothing deployed)"),
        "up": ("kalter `up`", "cold `up`"),
        "up (no-op)": ("`up` ohne Änderung", "no-op `up`"),
        "status": ("`status`", "`status`"),
        "teardown": ("`teardown`", "`teardown`"),
    }
    rows = [
        "| Phase | Schritte | lesend | schreibend | gesamt | Laufzeit (Emulation) |"
        if de
        else "| phase | steps | reads | writes | total | wall (emulation) |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for phase, (gde, gen) in names.items():
        p = d[phase]
        w = f"**{p['writes']}**" if phase == "up (no-op)" else str(p["writes"])
        rows.append(
            f"| {gde if de else gen} | {p['resources']} | {p['reads']} | {w} | {p['total']} "
            f"| {num(p['seconds'], 2, lang)} s |"
        )
    return "\n".join(rows) + "\n" + command_line("python benchmarks/api_calls.py", lang)


def block_growth(lang: str) -> str:
    d = measured("growth")
    rows = [
        "| stack | resources | status calls | status s | no-op up calls | writes | no-op up s |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in d["sizes"]:
        st, up = r["status"], r["noop_up"]
        rows.append(
            f"| {r['size']} | {r['resources']} | {st['total']} | {st['seconds']:.2f} "
            f"| {up['total']} | {up['writes']} | {up['seconds']:.2f} |"
        )
    return (
        "\n".join(rows)
        + "\n"
        + command_line(
            f"python benchmarks/growth.py  ({d['region']}, round trip / {d['scale']:g}, "
            f"fastest of {d['repeat']})",
            lang,
        )
    )


def block_memory(lang: str) -> str:
    d = measured("memory")
    rows = ["| process | peak RSS | wall |", "|:---|---:|---:|"]
    # memory.py's order (the JSON's keys are sorted): import, up, status, no-op up, teardown
    order = ["import", "up (cold)", "status", "up (no-op)", "teardown", "sandbox"]
    rank = {
        label: next((i for i, o in enumerate(order) if label.startswith(o)), 9)
        for label in d["processes"]
    }
    for label, r in sorted(d["processes"].items(), key=lambda kv: rank[kv[0]]):
        wall = f"{r['seconds']:.2f} s" if r["seconds"] else "-"
        rows.append(f"| {label} | {r['peak_rss_mb']:.1f} MB | {wall} |")
    return (
        "\n".join(rows)
        + "\n"
        + command_line(
            f"python benchmarks/memory.py  (target: pcls under {d['limit_mb']} MB)", lang
        )
    )


# -- sequence figures (Typst, drawn from pcls's own constants) ---------------------------------

SEQ_WIDTH_CM = 16.0
SEQ_ROW_PT = 14
SEQ_HEAD_PT = 24


def _typst_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("#", "\\#")


def sequence(
    parties: list[str], steps: list[tuple[int, int, str, str]], caption: str, label: str
) -> str:
    """A sequence diagram as raw Typst: a lifeline per party, one row per step.

    A step is (from, to, text, kind): kind "call" (solid), "reply" (dashed), "note" (a box on
    the lifeline of `from`), "fail" (red).
    """
    n = len(parties)
    col = SEQ_WIDTH_CM / n
    x = [col * (i + 0.5) for i in range(n)]
    height = SEQ_HEAD_PT + SEQ_ROW_PT * (len(steps) + 1)
    out = [
        "```{=typst}",
        f"#figure(kind: image, caption: [{_typst_text(caption)}], box(width: {SEQ_WIDTH_CM}cm, "
        f"height: {height}pt, {{",
        "  set par(justify: false)",
    ]
    for i, name in enumerate(parties):
        out.append(
            f"  place(top + left, dx: {x[i] - col / 2 + 0.1:.2f}cm, box(width: {col - 0.2:.2f}cm, "
            f'inset: 3pt, radius: 2pt, fill: rgb("#e8eef5"), stroke: 0.5pt + rgb("#1f4e79"), '
            f'align(center, text(size: 7.5pt, weight: "bold")[{_typst_text(name)}])))'
        )
        out.append(
            f"  place(top + left, line(start: ({x[i]:.2f}cm, {SEQ_HEAD_PT - 4}pt), "
            f"end: ({x[i]:.2f}cm, {height}pt), stroke: (paint: luma(170), thickness: 0.5pt, "
            f'dash: "dashed")))'
        )
    for row, (a, b, text, kind) in enumerate(steps):
        y = SEQ_HEAD_PT + SEQ_ROW_PT * (row + 1)
        words = f"{row + 1}\\. " + _typst_text(text)  # "1." alone would start a Typst list
        if kind == "note":
            width = min(3 * col, SEQ_WIDTH_CM)
            left = min(max(x[a] - width / 2, 0), SEQ_WIDTH_CM - width)
            out.append(
                f"  place(top + left, dx: {left:.2f}cm, dy: {y - 11}pt, box(width: {width:.2f}cm, "
                f'inset: (x: 3pt, y: 2pt), fill: rgb("#fff3e0"), stroke: 0.4pt + rgb("#d84315"), '
                f"align(center, text(size: 6.8pt)[{words}])))"
            )
            continue
        colour = {"fail": 'rgb("#c62828")', "reply": "luma(60)"}.get(kind, "black")
        dash = ', dash: "densely-dashed"' if kind == "reply" else ""
        x1, x2 = x[a], x[b]
        d = 1 if x2 > x1 else -1
        out.append(
            f"  place(top + left, line(start: ({x1:.2f}cm, {y}pt), end: ({x2:.2f}cm, {y}pt), "
            f"stroke: (paint: {colour}, thickness: 0.7pt{dash})))"
        )
        out.append(
            f"  place(top + left, polygon(fill: {colour}, ({x2:.2f}cm, {y}pt), "
            f"({x2:.2f}cm - {d * 4.5}pt, {y - 2.2}pt), ({x2:.2f}cm - {d * 4.5}pt, {y + 2.2}pt)))"
        )
        # the label is centred on the arrow and may be wider than it (neighbouring lifelines)
        width = min(max(abs(x2 - x1), 3 * col), SEQ_WIDTH_CM)
        left = min(max((x1 + x2) / 2 - width / 2, 0), SEQ_WIDTH_CM - width)
        out.append(
            f"  place(top + left, dx: {left:.2f}cm, dy: {y - 10}pt, box(width: "
            f"{width:.2f}cm, align(center, text(size: 6.8pt)[{words}])))"
        )
    out += [f"}})) <{label}>", "```"]
    return "\n".join(out) + "\n"


def block_seq_join(lang: str) -> str:
    sys.path.insert(0, str(ROOT))
    from pcls import jitsi, router

    parties = ["Browser", "Route 53", "ALB", "Router", "Shard (web, prosody)", "jicofo", "Bridge"]
    steps = [
        (0, 1, "A/AAAA meet.example.com", "call"),
        (1, 0, "Alias auf den ALB", "reply"),
        (0, 2, "HTTPS GET /raum", "call"),
        (2, 3, f"HTTP :{router.ROUTER_PORT}, irgendein Router", "call"),
        (3, 4, f"hash(raum) → Shard, :{router.WEB_PORT}", "call"),
        (4, 0, "Seite mit config.deploymentInfo.shard", "reply"),
        (0, 4, "WebSocket /xmpp-websocket?room=raum (ALB, Router)", "call"),
        (4, 5, "MUC-Raum angelegt", "call"),
        (5, 6, "Colibri2: Konferenz auf der leichtesten Bridge", "call"),
        (5, 0, "Jingle-Angebot mit den ICE-Kandidaten der Bridge", "reply"),
        (0, 6, f"Medien UDP {jitsi.JVB_MEDIA_PORT} direkt (ICE, DTLS-SRTP)", "fail"),
    ]
    return sequence(
        parties,
        steps,
        "Beitritt zu einem Raum: Seite und Signalisierung laufen über ALB und Router zum Shard "
        "des Raums, die Medien direkt zur öffentlichen IP der Bridge (rot: UDP, am ALB "
        "vorbei). Erzeugt von scripts/report-figures.py aus pcls.router und pcls.jitsi.",
        "fig-join",
    )


def block_seq_failover(lang: str) -> str:
    sys.path.insert(0, str(ROOT))
    from pcls import router
    from pcls.steps import platform, services

    down = router.INTERVAL_S * router.FALL
    parties = ["Browser", "Router", "Shard A (fällt aus)", "Shard B", "ECS", "Cloud Map"]
    steps = [
        (2, 2, "Task von Shard A endet (Absturz, AZ weg)", "note"),
        (
            1,
            2,
            f"GET {router.CHECK_PATH}: {router.FALL} Fehler, {router.INTERVAL_S} s Abstand",
            "fail",
        ),
        (1, 1, f"nach ≈ {down} s: Shard A down, seine Sitzungen getrennt", "note"),
        (0, 1, "neue Verbindung, Wiederaufnahme scheitert: Neuladen", "call"),
        (1, 3, "Ring ohne A: der Raum liegt jetzt auf Shard B", "call"),
        (3, 0, "Raum neu auf Shard B (≈ 10–20 s nach dem Ausfall)", "reply"),
        (4, 2, "ECS startet den Ersatz-Task (≈ 2–3 min)", "call"),
        (4, 5, "A-Record shard-a neu", "call"),
        (
            1,
            5,
            f"Router fragt den Namen nach (TTL {platform.XMPP_TTL} s, hold {router.HOLD_S} s)",
            "call",
        ),
        (1, 2, f"{router.RISE} Checks gut: Shard A wieder im Ring", "call"),
        (0, 3, "Keepalive (60–120 s): Shard-Name anders", "call"),
        (0, 2, "einmal Neuladen: zurück im Raum auf Shard A", "call"),
    ]
    return sequence(
        parties,
        steps,
        f"Ausfall eines Shards: Die Router nehmen ihn nach {router.FALL} fehlgeschlagenen "
        f"Checks aus dem Ring, seine Räume laden auf dem nächsten Shard neu; nach dem Ersatz "
        f"(Gnadenfrist {services.SIGNAL_GRACE_SECONDS} s) kehren sie mit einem weiteren Neuladen "
        f"zurück. Zeiten aus pcls.router und docs/ha.md; auf AWS nicht gemessen.",
        "fig-failover",
    )


# -- files and blocks -------------------------------------------------------------------------

BLOCKS: dict[str, Callable[[str], str]] = {
    "cost-regions": block_cost_regions,
    "cost-usage": block_cost_usage,
    "cost-compare": block_cost_compare,
    "cost-decisions": block_cost_decisions,
    "cost-variants": block_cost_variants,
    "cost-headline": block_cost_headline,
    "cost-open": block_cost_open,
    "cost-verdict": block_cost_verdict,
    "savings-plan": block_savings_plan,
    "abstract-cost": block_abstract_cost,
    "plan-sample": block_plan_sample,
    "region-choice": block_region_choice,
    "capacity": block_capacity,
    "loc": block_loc,
    "latency": block_latency,
    "latency-chains": block_latency_chains,
    "latency-line": block_latency_line,
    "api-calls": block_api_calls,
    "growth": block_growth,
    "memory": block_memory,
    "seq-join": block_seq_join,
    "seq-failover": block_seq_failover,
}
FILES = {REPORT: "de", README: "en", BENCH_README: "en", HA_DOC: "en"}
COST_BLOCKS = {
    "cost-regions",
    "cost-usage",
    "cost-compare",
    "cost-decisions",
    "cost-variants",
    "cost-open",
    "cost-verdict",
    "savings-plan",
    "cost-headline",
    "abstract-cost",
    "region-choice",
}
VARIANT_BLOCKS = {"cost-compare", "abstract-cost"}
# Written on every regeneration but not held by --check: they move with every code change, and
# a commit that only adds code must not fail the suite over the report's size figure.
VOLATILE = {"loc"}


def render(text: str, lang: str, where: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"{where}: unknown figures block {name!r}; known: {', '.join(BLOCKS)}")
        return f"{m.group(1)}{with_caption(BLOCKS[name](lang), m.group(3))}{m.group(5)}"

    return BLOCK.sub(one, text)


def take_benchmarks() -> None:
    MEASURED.mkdir(exist_ok=True)
    for name in ("latency", "api_calls", "growth", "memory"):
        src = RESULTS / f"{name}.json"
        if src.exists():
            shutil.copyfile(src, MEASURED / src.name)
            print(f"took {src.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    check = "--check" in argv
    # the `pcls cost` runs the blocks read, at once (each is two short subprocesses)
    names = {m.group(2) for path in FILES for m in BLOCK.finditer(path.read_text("utf-8"))}
    runs = [(r, "") for r in REGIONS] if names & COST_BLOCKS else []
    if names & VARIANT_BLOCKS:
        runs += [(HOME, v) for v in VARIANTS if v]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda rv: cost(*rv), runs))
    if "--take-benchmarks" in argv:
        take_benchmarks()
    stale = []
    for path, lang in FILES.items():
        text = path.read_text(encoding="utf-8")
        new = render(text, lang, path.name)
        if new == text:
            continue
        if check:
            old = {m.group(2): m.group(4) for m in BLOCK.finditer(text)}
            stale += [
                f"{path.relative_to(ROOT)}: {m.group(2)}"
                for m in BLOCK.finditer(new)
                if old.get(m.group(2)) != m.group(4) and m.group(2) not in VOLATILE
            ]
        else:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if missing:
        print(
            "waiting for keys pcls cost --json does not have yet: " + ", ".join(sorted(missing)),
            file=sys.stderr,
        )
    if stale:
        print("figures out of date (run python scripts/report-figures.py): " + "; ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

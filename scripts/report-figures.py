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

Figures `pcls cost` does not price yet are listed by the JSON key they wait for (PENDING); the
script names the missing keys on stderr and in the block and never fills in a number itself.
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
from collections.abc import Callable, Iterator
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

# Figures issue 15's cost model adds: (label, JSON key searched anywhere in `pcls cost --json`).
PENDING: tuple[tuple[str, str, str], ...] = (
    ("per awake hour", "pro wache Stunde", "awake_hour"),
    ("a month asleep", "ein Monat schlafend", "asleep_month"),
    ("a month with the awake hours", "ein Monat mit den Wachzeiten", "awake_hours_month"),
    ("always on", "durchgehend wach", "always_on"),
    (
        "worst-case egress (max_count bridges full all month)",
        "Egress im ungünstigsten Fall",
        "worst_case_egress",
    ),
)
# Designs `pcls cost` compares today live under "comparisons"; these are the ones it lacks.
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
    "x86": {"ecs": {"cpu_architecture": "X86_64"}},
    "arm": {"ecs": {"cpu_architecture": "ARM64"}},
    "no-spot": {"jvb": {"spot_weight": 0}},
    "single": {"signal": {"shards": 1}, "jvb": {"min_count": 1}},
    "awake": {"schedule": {"awake": AWAKE}},
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


def find_key(data: Any, key: str) -> Any:
    """The value of `key` anywhere in the JSON, else None."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            if (found := find_key(value, key)) is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            if (found := find_key(value, key)) is not None:
                return found
    return None


def amount(value: Any) -> float | None:
    """A money figure from the JSON: a number, or an object's idle/total/usd."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        for k in ("usd", "total", "idle", "value"):
            if isinstance(value.get(k), int | float):
                return float(value[k])
    return None


def zurich_high() -> dict[str, float]:
    """Totals with every estimated Zurich price at Frankfurt x 1.20 (pcls.cost.estimate)."""
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
    return {"idle": est.total_idle, "max": est.total_max}


# -- cost blocks ------------------------------------------------------------------------------

# German names of `pcls cost`'s lines and designs; a name not here stays as pcls prints it.
DE_NAMES = {
    "Fargate: signal shards (web + prosody + jicofo + router)": "Fargate: Signal-Shards (web, "
    "prosody, jicofo, Router)",
    "Routers (HAProxy, room-sticky)": "Router (HAProxy, raumtreu) im Shard-Task",
    "Fargate: JVB bridges": "Fargate: Bridges (JVB)",
    "Application Load Balancer": "Application Load Balancer",
    "Public IPv4 addresses": "öffentliche IPv4-Adressen",
    "CloudWatch alarms": "CloudWatch-Alarme",
    "Single always-on EC2 t3.large": "eine EC2-Instanz t3.large, immer an (ohne HA)",
    "Same stack with NAT gateways in 2 AZs": "derselbe Stack mit NAT-Gateways in 2 AZs",
    "Same stack, routers as a separate service": "derselbe Stack, Router als eigener Service",
}


def name_in(name: str, lang: str) -> str:
    return DE_NAMES.get(name, name) if lang == "de" else name


ZERO_ITEMS = "übrige Posten (Route 53, ACM, SSM, CloudWatch-Dashboard, -Metriken, -Logs)"


def _line_rows() -> Iterator[tuple[str, list[float]]]:
    """Each non-zero line: idle and max in the first two regions, idle in the third."""
    data = {r: cost(r) for r in REGIONS}
    for name in (line["name"] for line in data[HOME]["lines"]):
        row = []
        for r in REGIONS:
            line = next(x for x in data[r]["lines"] if x["name"] == name)
            row += [line["idle"], line["max"]] if r != "us-east-1" else [line["idle"]]
        if all(v == 0 for v in row) and "Router" not in name:
            continue
        yield name, row


def block_cost_regions(lang: str) -> str:
    data = {r: cost(r) for r in REGIONS}
    if lang == "de":
        head = (
            "| Posten (USD pro Monat) | eu-central-2 Leerlauf | eu-central-2 Maximum "
            "| eu-central-1 Leerlauf | eu-central-1 Maximum | us-east-1 Leerlauf |"
        )
    else:
        head = (
            "| USD per month | eu-central-2 idle | eu-central-2 max | eu-central-1 idle "
            "| eu-central-1 max | us-east-1 idle |"
        )
    rows = [head, sep(34, 10, 10, 10, 10, 10)]
    for name, values in _line_rows():
        flags = []
        for r in REGIONS:
            line = next(x for x in data[r]["lines"] if x["name"] == name)
            flags.append(" E" if line["estimate"] else "")
        cells = []
        for i, v in enumerate(values):
            region = REGIONS[min(i // 2, 2)] if i < 4 else "us-east-1"
            flag = flags[REGIONS.index(region)]
            cells.append(usd(v, lang) + flag)
        rows.append(f"| {name_in(name, lang)} | " + " | ".join(cells) + " |")
    zero = "the rest (Route 53, ACM, SSM, dashboard, custom metrics, logs)"
    rows.append(
        f"| {ZERO_ITEMS if lang == 'de' else zero} | "
        + " | ".join(["0" + (",00" if lang == "de" else ".00")] * 5)
        + " |"
    )
    tot = []
    for r in REGIONS:
        t = data[r]["total"]
        e = " E" if data[r]["estimate"] else ""
        tot += [f"**{usd(t['idle'], lang)}{e}**", f"**{usd(t['max'], lang)}{e}**"]
    word = "Summe" if lang == "de" else "total"
    rows.append(f"| **{word}** | " + " | ".join(tot[:5]) + " |")
    asof = data[HOME]["prices_as_of"]
    note = (
        f"\nE = enthält geschätzte Preise (Zürich: Frankfurt × 1,10). Preisstand {asof}, "
        f"{data[HOME]['hours_per_month']} Stunden pro Monat, USD vor Steuern."
        if lang == "de"
        else f"\nE = includes estimated prices (Zurich: Frankfurt × 1.10). Prices as of {asof}, "
        f"{data[HOME]['hours_per_month']} hours a month, USD before tax."
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
    base = cost()
    rows = (
        ["| Variante | Leerlauf | Maximum | gegenüber pcls (Leerlauf) | Quelle |"]
        if lang == "de"
        else ["| design | idle | max | vs pcls (idle) | source |"]
    )
    rows.append(sep(34, 9, 9, 12, "l24"))
    t = base["total"]
    me = "dieser Stack, Standardkonfiguration" if lang == "de" else "this stack, default config"
    rows.append(
        f"| **{me}** | **{usd(t['idle'], lang)}** | **{usd(t['max'], lang)}** | – | `pcls cost` |"
    )
    for c in base["comparisons"].values():
        rows.append(
            f"| {name_in(c['name'], lang)} | {usd(c['idle'], lang)} | {usd(c['max'], lang)} "
            f"| {'+' if c['vs_stack_idle'] >= 0 else '−'}{usd(abs(c['vs_stack_idle']), lang)} "
            f"| `pcls cost` (comparisons) |"
        )
    labels = {
        "no-spot": ("ohne Spot (`jvb.spot_weight = 0`)", "no Spot (`jvb.spot_weight = 0`)"),
        "single": (
            "ohne HA: 1 Shard, 1 Bridge (`signal.shards = 1`, `jvb.min_count = 1`)",
            "no HA: 1 shard, 1 bridge (`signal.shards = 1`, `jvb.min_count = 1`)",
        ),
    }
    for variant, (de, en) in labels.items():
        v = cost(HOME, variant)["total"]
        d = v["idle"] - t["idle"]
        rows.append(
            f"| {de if lang == 'de' else en} | {usd(v['idle'], lang)} | {usd(v['max'], lang)} "
            f"| {'+' if d >= 0 else '−'}{usd(abs(d), lang)} "
            "| `pcls cost` mit geänderter `pcls.toml` |"
            if lang == "de"
            else f"| {en} | {usd(v['idle'], lang)} | {usd(v['max'], lang)} "
            f"| {'+' if d >= 0 else '-'}{usd(abs(d), lang)} | `pcls cost`, edited `pcls.toml` |"
        )
    hi = zurich_high()
    d = hi["idle"] - t["idle"]
    rows.append(
        f"| Zürcher Schätzpreise am oberen Rand (Frankfurt × {num(ZURICH_HIGH, 2, lang)}) "
        f"| {usd(hi['idle'], lang)} | {usd(hi['max'], lang)} | +{usd(d, lang)} "
        f"| `pcls.cost.estimate` mit angepasster Preistabelle (dieses Skript) |"
        if lang == "de"
        else f"| Zurich estimates at the top of their range (Frankfurt × {ZURICH_HIGH:.2f}) "
        f"| {usd(hi['idle'], lang)} | {usd(hi['max'], lang)} | +{usd(d, lang)} "
        f"| `pcls.cost.estimate` with the price table adjusted (this script) |"
    )
    for german, english, key in PENDING_DESIGNS:
        if key in base["comparisons"]:
            continue
        label = german if lang == "de" else english
        missing.add(f"comparisons.{key}")
        rows.append(
            f"| {label} | – | – | – | folgt: `pcls cost --json` hat noch kein `comparisons.{key}` |"
            if lang == "de"
            else f"| {label} | - | - | - | to come: `pcls cost --json` has no "
            f"`comparisons.{key}` yet |"
        )
    return (
        "\n".join(rows) + "\n" + command_line(variants_command(("no-spot", "single"), lang), lang)
    )


def block_cost_pending(lang: str) -> str:
    """ARM64 vs x86_64, sleep/wake and worst-case egress: shown once `pcls cost` has them."""
    x86, arm, awake = cost(HOME, "x86"), cost(HOME, "arm"), cost(HOME, "awake")
    de = lang == "de"
    rows = (
        ["| Grösse (eu-central-2) | USD | Stand |"]
        if de
        else ["| figure (eu-central-2) | USD | state |"]
    )
    rows.append(sep(30, 8, "l40"))
    if "cpu_architecture" in x86["inputs"]:
        for label, d in (("X86_64", x86), ("ARM64", arm)):
            rows.append(
                f"| {'Leerlauf' if de else 'idle'}, {label} | {usd(d['total']['idle'], lang)} "
                f"| `pcls cost` |"
            )
    else:
        missing.add("inputs.cpu_architecture")
        same = x86["total"] == arm["total"]
        why_de = "; beide kosten heute gleich viel: gerechnet wird mit x86-Preisen" if same else ""
        why_en = "; both cost the same today: x86 prices are used" if same else ""
        rows.append(
            "| Leerlauf ARM64 gegenüber X86_64 | – | folgt: `pcls cost --json` hat noch kein "
            f"`inputs.cpu_architecture`{why_de} |"
            if de
            else "| idle ARM64 vs X86_64 | - | to come: `pcls cost --json` has no "
            f"`inputs.cpu_architecture` yet{why_en} |"
        )
    for en, german, key in PENDING:
        value = amount(find_key(awake, key))
        label = german if de else en
        if value is None:
            missing.add(key)
            rows.append(
                f"| {label} | – | folgt: `{key}` |" if de else f"| {label} | - | to come: `{key}` |"
            )
        else:
            rows.append(f"| {label} | {usd(value, lang)} | `pcls cost` |")
    return (
        "\n".join(rows) + "\n" + command_line(variants_command(("x86", "arm", "awake"), lang), lang)
    )


def block_cost_headline(lang: str) -> str:
    z, f = cost("eu-central-2")["total"], cost("eu-central-1")["total"]
    return (
        f"Default stack, idle: **${num(z['idle'])}/month in eu-central-2 (estimate), "
        f"${num(f['idle'])} in eu-central-1**, at most ${num(z['max'])} / ${num(f['max'])} "
        f"(`pcls cost --json`, prices as of {cost()['prices_as_of']}).\n"
    )


def block_abstract_cost(lang: str) -> str:
    """Two sentences for the report's abstract (YAML, indented by two spaces)."""
    z, f, single = cost("eu-central-2"), cost("eu-central-1"), cost(HOME, "single")
    return (
        f"  Der Leerlauf kostet nach `pcls cost` USD {usd(z['total']['idle'], 'de')} pro Monat "
        f"in eu-central-2\n  (Schätzpreise) und USD {usd(f['total']['idle'], 'de')} in "
        f"eu-central-1; ohne Hochverfügbarkeit wären es\n  USD "
        f"{usd(single['total']['idle'], 'de')}.\n"
    )


def block_region_choice(lang: str) -> str:
    data = {r: cost(r)["total"]["idle"] for r in REGIONS}
    home = data[HOME]
    parts = [
        f"{r} ist im Leerlauf {num((1 - data[r] / home) * 100, 0, 'de')} % billiger"
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
    vcpu = cfg.jvb.cpu / 1024
    heavy = per_vcpu * vcpu
    target = cfg.scaling.target
    max_bridges = JVB_MAX
    config.parse({**minimal, "jvb": {"max_count": JVB_MAX}})  # still allowed?
    de = lang == "de"
    if not de:
        raise SystemExit("the capacity block is written in German only (docs/report/bericht.md)")
    n = lambda v, d=0: num(v, d, lang)  # noqa: E731
    rows = [
        "| Grösse | Wert | Herleitung |" if de else "| figure | value | basis |",
        sep(30, 12, "l40"),
        f"| Teilnehmende pro Bridge, ungünstiger Fall (720p, alle Kameras an) | {n(heavy)} | "
        f"{n(per_vcpu)} pro vCPU (HPI-Lasttests [J5]) × {n(vcpu)} vCPU "
        f"(`jvb.cpu = {cfg.jvb.cpu}`) |",
        f"| Teilnehmende pro Bridge, Skalierungsziel (typisch) | {n(target)} | `scaling.target`; "
        f"greift die CPU früher (`scaling.cpu_target = {n(cfg.scaling.cpu_target)} %`), skaliert "
        f"diese Policy zuerst |",
        f"| grösste Konferenz | {n(JICOFO_MAX_BRIDGE_PARTICIPANTS)} (ungünstig: {n(heavy)}) | "
        f"eine Bridge, kein Octo; jicofo `max-bridge-participants` [J10] |",
        f"| Bridges Standard (min. / max.) | {cfg.jvb.min_count} / {cfg.jvb.max_count} "
        "| eine pro AZ "
        f"(`network.azs = {cfg.network.azs}`) / `jvb.max_count` |",
        f"| Teilnehmende gleichzeitig, Standard (typisch / ungünstig) | "
        f"{n(cfg.jvb.max_count * target)} / {n(cfg.jvb.max_count * heavy)} | "
        f"{cfg.jvb.max_count} Bridges × {n(target)} bzw. × {n(heavy)} |",
        f"| Teilnehmende gleichzeitig, Maximum (typisch / ungünstig) | "
        f"{n(max_bridges * target)} / {n(max_bridges * heavy)} | `jvb.max_count` höchstens "
        f"{max_bridges}; dazu die Fargate-Quote (vCPU) des Kontos |",
        f"| Signal-Shards Standard / Maximum | {cfg.signal.shards} / 8 | `signal.shards` |",
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
SEQ_ROW_PT = 17
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
    "cost-pending": block_cost_pending,
    "cost-headline": block_cost_headline,
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
    "cost-pending",
    "cost-headline",
    "abstract-cost",
    "region-choice",
}
VARIANT_BLOCKS = {"cost-compare", "cost-pending", "abstract-cost"}


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
                if old.get(m.group(2)) != m.group(4)
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

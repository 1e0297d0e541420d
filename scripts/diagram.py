"""Architecture diagram of the stack pcls builds, generated from the pcls code itself.

Writes Graphviz DOT source (docs/architecture.dot) and renders it with the `dot` binary
(docs/architecture.png). Names, ports, sizes, counts and limits are read from pcls: the config
defaults (or a given pcls.toml), the Jitsi task definition module, the sidecar, and the step
modules' naming functions. So the picture changes when the code does.

    python scripts/diagram.py                      # default config, stack "meet"
    python scripts/diagram.py --config pcls.toml   # a real stack's names and sizes
    python scripts/diagram.py --dot-only           # write the .dot, do not render

Exit codes: 0 written and rendered; 2 usage or config error; 3 `dot` missing (the .dot is
still written).
"""

from __future__ import annotations

import argparse
import html
import importlib
import ipaddress
import itertools
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pcls import __version__, jitsi, router  # noqa: E402
from pcls import config as config_mod  # noqa: E402
from pcls import sidecar_container as guard  # noqa: E402

DEFAULT_STACK = {"name": "meet", "domain": "meet.example.com", "region": "eu-central-2"}
INSTALL_HINT = (
    "Graphviz 'dot' was not found on PATH. Install Graphviz and run again:\n"
    "  Debian/Ubuntu: apt-get install -y graphviz\n"
    "  Fedora:        dnf install graphviz\n"
    "  macOS:         brew install graphviz\n"
    "The DOT source was written anyway; any Graphviz can render it: dot -Tpng FILE.dot -o FILE.png"
)

# Fallbacks are used only while a step module is not in the tree yet; each use is reported.
_fallbacks: list[str] = []


def _from(module: str, attr: str, default: Any) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        _fallbacks.append(f"{module}.{attr}")
        return default


def _short_image(image: str) -> str:
    """'public.ecr.aws/…/python@sha256:b68d7164…' for a long image reference."""
    parts = image.split("/")
    short = image if len(parts) <= 3 else f"{parts[0]}/…/{parts[-1]}"
    name, at, digest = short.partition("@sha256:")
    return f"{name}{at}{digest[:8]}…" if at else short


# -- the facts the picture shows ---------------------------------------------------------------


def facts(cfg: config_mod.Config) -> dict[str, Any]:
    """Everything the diagram prints, taken from pcls for this config."""
    stack = cfg.stack.name
    ctx = SimpleNamespace(stack=stack, cfg=cfg)  # what the naming functions read

    def name(module: str, attr: str, default: Callable[..., Any], *args: Any) -> Any:
        return _from(module, attr, default)(*args)

    net = ipaddress.IPv4Network(cfg.network.cidr)
    subnets = [str(s) for s in list(net.subnets(prefixlen_diff=4))[: cfg.network.azs]]
    region = cfg.stack.region or "<Region>"
    secret_names = name(
        "pcls.steps.secrets",
        "names",
        lambda c: ["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"],
        ctx,
    )
    secret_path = name("pcls.steps.secrets", "path", lambda c: f"/pcls/{c.stack}/", ctx)
    policies = _from("pcls.steps.iam", "POLICIES", None)
    roles = (
        [f"{stack}-{spec.suffix}" for spec in policies.values()]
        if policies
        else [f"{stack}-execution", f"{stack}-signal-task", f"{stack}-jvb-task"]
    )
    try:
        from pcls.steps import monitoring

        alarms = monitoring.alarm_names(cfg)
    except (ImportError, AttributeError):
        _fallbacks.append("pcls.steps.monitoring.alarm_names")
        alarms = [f"{stack}-alarm"] * 6
    redirect = _from(
        "pcls.steps.loadbalancer", "HTTPS_REDIRECT", {"RedirectConfig": {"StatusCode": "HTTP_301"}}
    )
    metric_names = {"participants": guard.METRIC_PARTICIPANTS, "stress": guard.METRIC_STRESS_LEVEL}
    return {
        "version": __version__,
        "stack": stack,
        "domain": cfg.stack.domain,
        "region": region,
        "azs": [f"{region}{chr(ord('a') + i)}" for i in range(cfg.network.azs)],
        "vpc_cidr": cfg.network.cidr,
        "subnets": subnets,
        "dual_stack": cfg.network.dual_stack,
        "alb": f"{stack}-alb",
        "tls_policy": cfg.loadbalancer.tls_policy,
        "idle_timeout": cfg.loadbalancer.idle_timeout,
        "redirect_code": redirect["RedirectConfig"]["StatusCode"].removeprefix("HTTP_"),
        "target_group": name(
            "pcls.steps.loadbalancer", "web_group_name", lambda c: f"{c.stack}-web", ctx
        ),
        "web_port": jitsi.SIGNAL_CONTAINER_PORT,
        "xmpp_port": jitsi.XMPP_PORT,
        "bosh_port": jitsi.PROSODY_HTTP_PORT,
        "media_port": jitsi.JVB_MEDIA_PORT,
        "image": f"{jitsi.IMAGE_REPO}/*:{cfg.jitsi.image_tag}",
        "guard_image": _short_image(guard.GUARD_IMAGE),
        "stun": ", ".join(cfg.jitsi.stun_servers),
        "signal_size": (cfg.signal.cpu, cfg.signal.memory),
        "jvb_size": (cfg.jvb.cpu, cfg.jvb.memory),
        "jvb_min": cfg.jvb.min_count,
        "jvb_max": cfg.jvb.max_count,
        "jvb_base": cfg.jvb.ondemand_base,
        "spot_weight": cfg.jvb.spot_weight,
        "cluster": name("pcls.steps.platform", "cluster_name", lambda c: c.stack, ctx),
        "namespace": name(
            "pcls.steps.platform", "namespace_name", lambda c: f"{c.stack}.internal", ctx
        ),
        "xmpp_service": _from("pcls.steps.platform", "XMPP_SERVICE", "xmpp"),
        "xmpp_ttl": _from("pcls.steps.platform", "XMPP_TTL", 10),
        "log_group": name(
            "pcls.steps.platform", "log_group_name", lambda c: f"/pcls/{c.stack}", ctx
        ),
        "retention": cfg.logs.retention_days,
        "secrets": [f"{secret_path}{n}" for n in secret_names],
        "roles": roles,
        "alarm_count": len(alarms),
        "dashboard": name("pcls.steps.monitoring", "dashboard_name", lambda s: s, stack),
        "topic": name("pcls.steps.monitoring", "topic_name", lambda s: f"{s}-alarms", stack),
        "email": bool(cfg.alerts.email),
        "metric_ns": guard.METRIC_NAMESPACE,
        "scale_metric": metric_names[cfg.scaling.metric],
        "scale_target": cfg.scaling.target,
        "cpu_target": cfg.scaling.cpu_target,
        "schedules": len(cfg.scaling.schedule),
        "guard": guard.GUARD_CONTAINER_NAME,
        "stats_url": guard.DEFAULT_BRIDGE_URL,
        "shards": router.shard_names(cfg.signal.shards),
        "router_port": router.ROUTER_PORT,
        "router_check": f"{router.CHECK_PATH} alle {router.INTERVAL_S} s",
        "health_path": router.HEALTH_PATH,
        "architecture": cfg.ecs.cpu_architecture,
        "budget": cfg.alerts.monthly_budget,
        "awake": list(cfg.schedule.awake),
        "idle_minutes": cfg.schedule.idle_minutes,
        # the wake function ships as pcls/wakefn/ once sleep and wake exist
        "wake_function": (ROOT / "pcls" / "wakefn").is_dir(),
    }


# -- DOT ---------------------------------------------------------------------------------------

FONT = "DejaVu Sans"
TITLE_PT = 13
DETAIL_PT = 11
# Light fills per service family, close to the AWS icon colours.
COLOURS = {
    "net": ("#ede7f6", "#5e35b1"),  # networking and content delivery: purple
    "compute": ("#fff3e0", "#d84315"),  # containers and compute: orange
    "security": ("#ffebee", "#c62828"),  # security, identity, compliance: red
    "mgmt": ("#fce4ec", "#ad1457"),  # management and governance: pink
    "app": ("#e8f5e9", "#2e7d32"),  # application integration: green
    "ext": ("#f5f5f5", "#616161"),  # outside AWS
}


def e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def box(title: str, lines: list[str], family: str, *, dashed: bool = False) -> str:
    """A node with a bold title and smaller detail lines (HTML-like label)."""
    fill, line = COLOURS[family]
    rows = [f'<TR><TD ALIGN="CENTER"><B>{e(title)}</B></TD></TR>']
    rows += [
        f'<TR><TD ALIGN="CENTER"><FONT POINT-SIZE="{DETAIL_PT}">{e(x)}</FONT></TD></TR>'
        for x in lines
    ]
    style = "rounded,filled,dashed" if dashed else "rounded,filled"
    return (
        f'[shape=box style="{style}" fillcolor="{fill}" color="{line}" penwidth=1.3 '
        f'label=<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        f"{''.join(rows)}</TABLE>>]"
    )


def task(title: str, subtitle: str, containers: list[tuple[str, str, str]]) -> str:
    """A Fargate task: a header, then one row per container; each row is a port for edges."""
    fill, line = COLOURS["compute"]
    rows = [
        f'<TR><TD COLSPAN="2" BGCOLOR="{line}"><FONT COLOR="white"><B>{e(title)}</B></FONT>'
        "</TD></TR>",
        f'<TR><TD COLSPAN="2"><FONT POINT-SIZE="{DETAIL_PT}">{e(subtitle)}</FONT></TD></TR>',
    ]
    for port, cname, detail in containers:
        rows.append(
            f'<TR><TD PORT="{port}" BGCOLOR="white" ALIGN="LEFT"><B>{e(cname)}</B></TD>'
            f'<TD BGCOLOR="white" ALIGN="LEFT"><FONT POINT-SIZE="{DETAIL_PT}">{e(detail)}</FONT>'
            "</TD></TR>"
        )
    return (
        f'[shape=plain label=<<TABLE BORDER="1" COLOR="{line}" BGCOLOR="{fill}" CELLBORDER="0" '
        f'CELLSPACING="2" CELLPADDING="2">{"".join(rows)}</TABLE>>]'
    )


def cluster(
    name: str, label: str, body: list[str], *, style: str, colour: str, fill: str
) -> list[str]:
    return [
        f"subgraph cluster_{name} {{",
        (f"  label=<<B>{e(label)}</B>>; " if label else '  label=""; ')
        + f'labeljust=l; style="{style}"; color="{colour}"; '
        f'fillcolor="{fill}"; fontsize=14; margin=7;',
        *["  " + line for line in body],
        "}",
    ]


def dot_source(f: dict[str, Any]) -> str:
    """The DOT text. Rows are pinned with rank groups and invisible edges; visible edges do
    not move nodes (constraint=false), so the layout stays a readable grid:

        Internet (top row)
        global | regional security | VPC (IGW, ALB, target group, AZs) | ECS and operations
    """
    cpu = lambda units: f"{units / 1024:g} vCPU"  # noqa: E731
    gb = lambda mib: f"{mib / 1024:g} GB"  # noqa: E731
    ns = f["namespace"]
    azs = f["azs"]
    spot = f["spot_weight"] > 0 and f["jvb_max"] > f["jvb_base"]

    # Per AZ: the shards pinned there (shard i in AZ i mod azs) and one bridge (jvb.min_count
    # is one per AZ; the service spreads its tasks over the subnets).
    jvb_nodes: list[str] = []
    shard_nodes: list[str] = []
    az_blocks: list[str] = []
    arch = "ARM64" if f["architecture"] == "ARM64" else "x86_64"
    for i, (az, cidr) in enumerate(zip(azs, f["subnets"], strict=True)):
        body = []
        for k, shard in enumerate(f["shards"]):
            if k % len(azs) != i:
                continue
            node = f"shard{k}"
            shard_nodes.append(node)
            body.append(
                f"{node} "
                + task(
                    f"Service {shard} · 1 Task",
                    f"FARGATE {arch}, {cpu(f['signal_size'][0])} / {gb(f['signal_size'][1])}, "
                    "öffentl. IP",
                    [
                        ("router", "router", f"HAProxy :{f['router_port']}, hash(Raum)"),
                        ("web", "web", f"nginx :{f['web_port']}"),
                        ("prosody", "prosody", f"XMPP :{f['xmpp_port']}, BOSH :{f['bosh_port']}"),
                        ("jicofo", "jicofo", "Fokus → 127.0.0.1"),
                    ],
                )
            )
        node = f"jvb{i}"
        jvb_nodes.append(node)
        capacity = "FARGATE (Basis)" if i < max(f["jvb_base"], 1) or not spot else "FARGATE_SPOT"
        body.append(
            f"{node} "
            + task(
                f"Service jvb · Bridge {i + 1}",
                f"{capacity} {arch}, {cpu(f['jvb_size'][0])} / {gb(f['jvb_size'][1])}, öffentl. IP",
                [
                    ("jvb", "jvb", f"UDP :{f['media_port']}, IP per STUN"),
                    ("guard", f["guard"], "EMF-Metrik, Task-Schutz, Drain"),
                ],
            )
        )
        az_blocks += cluster(
            f"az{i}",
            f"{az} · Subnetz {cidr}",
            body,
            style="rounded,filled",
            colour="#7e57c2",
            fill="#f6f2fc",
        )

    vpc_body = [
        "igw " + box("Internet Gateway", ["0.0.0.0/0 → IGW, kein NAT"], "net"),
        "alb "
        + box(
            f"Application Load Balancer {f['alb']}",
            [
                f"HTTPS :443, {f['tls_policy']}",
                f"HTTP :80 → {f['redirect_code']} · {len(azs)} AZs · Idle {f['idle_timeout']} s",
            ],
            "net",
        ),
        "tg "
        + box(
            f"Target Group {f['target_group']}",
            [f"Typ ip, die Router :{f['router_port']}", f"Check {f['health_path']}"],
            "net",
        ),
        "cloudmap "
        + box(
            f"Cloud Map {ns}",
            [f"{', '.join(f['shards'])}: A, TTL {f['xmpp_ttl']} s", "Router und Bridges lösen auf"],
            "net",
        ),
        *az_blocks,
    ]
    vpc = cluster(
        "vpc",
        f"VPC {f['vpc_cidr']} · je AZ ein öffentliches Subnetz",
        vpc_body,
        style="rounded",
        colour="#5e35b1",
        fill="white",
    )

    scaling_lines = [
        f"jvb: {f['jvb_min']} … {f['jvb_max']} Tasks, Target Tracking",
        f"{f['scale_metric']} Ø {f['scale_target']:g}/Bridge + CPU {f['cpu_target']:g} %",
    ]
    if f["schedules"]:
        scaling_lines.append(f"{f['schedules']} zeitgesteuerte Aktion(en)")
    security_col = [
        "acm " + box("ACM-Zertifikat", [f["domain"], "DNS-validiert"], "security"),
        "ssm "
        + box(
            "SSM Parameter Store",
            [*f["secrets"], "SecureString → secrets: valueFrom"],
            "security",
        ),
    ]
    ops_col = [
        "ecs "
        + box(
            f"ECS-Cluster {f['cluster']}",
            [
                "FARGATE + FARGATE_SPOT",
                f"jvb: Basis {f['jvb_base']} on-demand, dann {f['spot_weight']}:1 Spot",
            ],
            "compute",
        ),
        "aas " + box("Application Auto Scaling", scaling_lines, "mgmt"),
        "logs "
        + box(
            f"CloudWatch Logs {f['log_group']}",
            [f"awslogs, {f['retention']} Tage", f"EMF → Metriken {f['metric_ns']}"],
            "mgmt",
        ),
        "alarms "
        + box(
            "CloudWatch Alarme + Dashboard",
            [f"{f['alarm_count']} Alarme, Dashboard {f['dashboard']}"],
            "mgmt",
        ),
        "sns "
        + box(
            f"SNS-Topic {f['topic']}",
            ["→ E-Mail" if f["email"] else "→ E-Mail (alerts.email)"],
            "app",
        ),
        "wake "
        + box(
            "Weck-Funktion (Lambda, arm64)" + ("" if f["wake_function"] else " · folgt"),
            [
                "schlafend: ALB antwortet mit Weckseite, /_pcls/* → Funktion",
                "EventBridge Scheduler: tick alle 5 min",
                "Wachzeiten: "
                + (", ".join(f["awake"]) if f["awake"] else "[schedule] awake")
                + f", sonst nach {f['idle_minutes']} min ohne Konferenz",
                "Zustand: Tag pcls:sleep am Cluster",
            ],
            "compute",
            dashed=not f["wake_function"],
        ),
    ]
    hidden = {"style": "invis", "colour": "white", "fill": "white"}
    region = cluster(
        "region",
        f"AWS-Region {f['region']}",
        [
            *cluster("sec", "", security_col, **hidden),
            *vpc,
            *cluster("ops", "", ops_col, **hidden),
        ],
        style="rounded,filled",
        colour="#ff9900",
        fill="#fffcf5",
    )
    global_box = cluster(
        "global",
        "AWS global",
        [
            "r53 "
            + box(
                "Route 53 (Hosted Zone)", [f"Alias {f['domain']} → ALB", "+ CNAME für ACM"], "net"
            ),
            "iam " + box("IAM-Rollen", f["roles"], "security"),
        ],
        style="rounded",
        colour="#424242",
        fill="white",
    )
    internet = cluster(
        "internet",
        "Internet",
        [
            "users " + box("Teilnehmende", ["Browser / Jitsi-App"], "ext"),
            "stun "
            + box("STUN-Server", [f["stun"], "Bridges ermitteln ihre öffentliche IP"], "ext"),
            "registry " + box("Image-Registries", [f["image"], f["guard_image"]], "ext"),
        ],
        style="rounded,dashed",
        colour="#9e9e9e",
        fill="white",
    )

    last = len(azs) - 1
    # Rows: each list is one rank, left to right.
    rows = [
        ["stun", "users", "registry", "r53", "iam"],
        ["igw", "ecs"],
        ["acm", "alb", "aas"],
        ["tg", "cloudmap", "logs"],
        [*shard_nodes, "alarms"],
        [*jvb_nodes, "ssm", "sns"],
        ["wake"],
    ]
    layout = []
    for row in rows:
        layout.append("{ rank=same; " + "; ".join(row) + "; }")
        layout += [f"{a} -> {b} [style=invis]" for a, b in itertools.pairwise(row)]
    # Vertical order of each column.
    for column in (
        ["users", "igw", "alb", "tg", shard_nodes[0], "jvb0"],
        ["acm", "ssm"],
        ["ecs", "aas", "logs", "alarms", "sns", "wake"],
        *[["cloudmap", f"jvb{i}"] for i in range(1, len(azs))],
    ):
        layout += [f"{a} -> {b} [style=invis weight=8]" for a, b in itertools.pairwise(column)]

    media = f"UDP {f['media_port']} Medien"
    data = "penwidth=1.8 constraint=false"
    ctrl = 'style=dashed color="#757575" constraint=false'
    edges = [
        f'users -> igw [{data} label="HTTPS 443 / HTTP 80\\n{media}"]',
        f"igw -> alb [{data}]",
        f"alb -> tg [{data}]",
        *[
            f"tg -> {n}:router [{data}"
            + (f' label="HTTP {f["router_port"]}"' if k == 0 else "")
            + "]"
            for k, n in enumerate(shard_nodes)
        ],
        *[f'igw -> {n} [{data} color="#d84315"]' for n in jvb_nodes],
        # every bridge holds one XMPP connection per shard
        *[
            f'{j}:jvb -> {n}:prosody [color="#5e35b1" constraint=false'
            + (f' label="XMPP {f["xmpp_port"]}"' if i == last and k == 0 else "")
            + "]"
            for i, j in enumerate(jvb_nodes)
            for k, n in enumerate(shard_nodes)
        ],
        *[
            f'cloudmap -> {n}:prosody [color="#5e35b1" style=dashed constraint=false]'
            for n in shard_nodes
        ],
        f'alb -> wake [{ctrl} label="schläft"]',
        f'wake -> aas [{ctrl} label="schläft / weckt"]',
        f'r53 -> alb [{ctrl} label="Alias"]',
        f'acm -> alb [{ctrl} label="TLS"]',
        f'ssm:w -> {jvb_nodes[last]}:e [{ctrl} label="valueFrom"]',
        f"iam -> ecs [{ctrl}]",
        f'registry -> ecs [{ctrl} label="Pull"]',
        f'ecs -> cloudmap [{ctrl} label="registriert"]',
        f'{jvb_nodes[0]}:guard:w -> logs [{ctrl} label="EMF"]',
        f'logs -> aas [{ctrl} label="{f["scale_metric"]}"]',
        f'aas -> ecs [{ctrl} label="DesiredCount"]',
        f"logs -> alarms [{ctrl}]",
        f"alarms -> sns [{ctrl}]",
    ]

    out = [
        f"// Generated by scripts/diagram.py from pcls {f['version']}; do not edit by hand.",
        "digraph pcls {",
        f'  graph [rankdir=TB fontname="{FONT}" newrank=true nodesep=0.22 ranksep=0.32 '
        'splines=true pad=0.15 bgcolor="white"];',
        f'  node [fontname="{FONT}" fontsize={TITLE_PT} margin="0.10,0.05"];',
        f'  edge [fontname="{FONT}" fontsize={DETAIL_PT} color="#424242" arrowsize=0.7];',
        *["  " + line for line in internet],
        *["  " + line for line in global_box],
        *["  " + line for line in region],
        *["  " + line for line in layout],
        *["  " + line + ";" for line in edges],
        "}",
    ]
    return "\n".join(out) + "\n"


# -- main --------------------------------------------------------------------------------------


def load_config(path: Path | None) -> config_mod.Config:
    if path is None:
        return config_mod.parse({"stack": dict(DEFAULT_STACK)})
    return config_mod.load(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="pcls.toml to draw (default: config defaults)")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "architecture",
        help="output path without extension (default: docs/architecture)",
    )
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    p.add_argument("--dot-only", action="store_true", help="write the .dot, do not render")
    ns = p.parse_args(argv)
    try:
        cfg = load_config(ns.config)
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source = dot_source(facts(cfg))
    dot_path = ns.out.with_suffix(".dot")
    dot_path.parent.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(source, encoding="utf-8")
    print(f"wrote {dot_path}")
    if _fallbacks:
        print(
            "note: not in pcls yet, drawn from the architecture doc: " + ", ".join(_fallbacks),
            file=sys.stderr,
        )
    if ns.dot_only:
        return 0
    dot = shutil.which("dot")
    if dot is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 3
    png_path = ns.out.with_suffix(".png")
    subprocess.run(
        [dot, "-Tpng", f"-Gdpi={ns.dpi}", "-o", str(png_path), str(dot_path)], check=True
    )
    print(f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the API calls and time of `status` and a no-op `up` grow as the stack grows.

    python benchmarks/growth.py

One stack on in-process moto (us-east-1: six availability zones, five of them where Fargate
runs, so network.azs up to 5) is grown step by step: more availability zones (a subnet each, and
wider ALB and service network configurations), more scheduled scaling actions, a bigger bridge
pool (min/max, which also adds the pool alarm). After each `up` that applies a size, `status`
and a second `up` (a no-op) are measured with the AWS round trip of timemodel.py (transitions
all done, so only the calls cost time). pcls's config has one bridge service and two shards, so
the service count itself cannot grow; the bridge count only moves tasks, which moto does not
run.

What should hold: reads are batched per resource type (one DescribeSubnets for all subnets, one
DescribeScheduledActions for all actions, one DescribeAlarms for all alarms), so the calls stay
flat while the resources grow, and a no-op `up` writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from common import Project, frozen_heap, project, write_json
from rich.console import Console
from rich.table import Table
from timemodel import Durations, TimeModel

from pcls import runner
from pcls.engine import Patience
from pcls.ui import Outcome

REGION = "us-east-1"
SCHEDULE = (
    '[[scaling.schedule]]\nname = "s{i}"\ncron = "{cron}"\nmin_count = {low}\nmax_count = {high}\n'
)


def config(azs: int, actions: int, jvb_min: int, jvb_max: int) -> str:
    text = f"[network]\nazs = {azs}\n\n[jvb]\nmin_count = {jvb_min}\nmax_count = {jvb_max}\n\n"
    for i in range(actions):
        cron = f"cron({i % 60} {i // 60 % 24} ? * MON-FRI *)"
        text += SCHEDULE.format(i=i, cron=cron, low=min(i % 3, jvb_max), high=jvb_max) + "\n"
    return text


SIZES: list[tuple[str, dict[str, int]]] = [
    ("base: 2 AZs, 1 bridge", {"azs": 2, "actions": 0, "jvb_min": 1, "jvb_max": 1}),
    ("pool 1-4 (+1 alarm)", {"azs": 2, "actions": 0, "jvb_min": 1, "jvb_max": 4}),
    ("3 AZs", {"azs": 3, "actions": 0, "jvb_min": 1, "jvb_max": 4}),
    ("5 AZs", {"azs": 5, "actions": 0, "jvb_min": 1, "jvb_max": 4}),
    ("5 AZs, 4 actions", {"azs": 5, "actions": 4, "jvb_min": 1, "jvb_max": 4}),
    ("5 AZs, 16 actions", {"azs": 5, "actions": 16, "jvb_min": 1, "jvb_max": 4}),
    ("5 AZs, 48 actions, pool 8-50", {"azs": 5, "actions": 48, "jvb_min": 8, "jvb_max": 50}),
    ("5 AZs, 120 actions, pool 8-50", {"azs": 5, "actions": 120, "jvb_min": 8, "jvb_max": 50}),
]


def resources(sz: dict[str, int], steps: int) -> int:
    """AWS resources behind the steps: steps count families (alarms, actions) once."""
    alarms = 6 if sz["jvb_max"] > sz["jvb_min"] else 5
    return steps + (alarms - 1) + max(sz["actions"] - 1, 0)


def measure(p: Project, model: TimeModel, command: str, repeat: int) -> dict[str, Any]:
    """Calls of one run, and the fastest of `repeat` runs (the machine may be shared)."""
    times = []
    for _ in range(repeat):
        model.new_phase()
        s = p.session(parallel=4, patience=Patience(sleep=model.sleep))
        with frozen_heap():
            began = time.perf_counter()
            result = runner.do_up(s) if command == "up" else s.engine.status()
            times.append(time.perf_counter() - began)
    seconds = min(times)
    summary = s.aws.call_summary()
    bad = [r.step for r in result.results.values() if r.outcome is not _expected(command)]
    return {
        "seconds": round(seconds, 3),
        "reads": summary["reads"],
        "writes": summary["writes"],
        "total": summary["total"],
        "calls": summary["calls"],
        "steps": len(result.results),
        "not_in_sync": bad,
    }


def _expected(command: str) -> Outcome:
    return Outcome.UNCHANGED if command == "up" else Outcome.IN_SYNC


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=50.0, help="divide the round trip by this")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (fastest wins)")
    args = ap.parse_args()
    console = Console(width=None if Console().is_terminal else 130)
    durations = Durations().without_transitions()
    rows = []
    with project(config(**SIZES[0][1]), region=REGION) as p:
        p.warm_up()
        for label, size in SIZES:
            p.config.write_text(p.config.read_text().split("[network]")[0] + config(**size))
            applied, _, _ = p.run("up")
            with TimeModel(durations, args.scale).installed() as model:
                status = measure(p, model, "status", args.repeat)
                noop = measure(p, model, "up", args.repeat)
            steps = len(applied.results)
            rows.append(
                {
                    "size": label,
                    **size,
                    "steps": steps,
                    "resources": resources(size, steps),
                    "status": status,
                    "noop_up": noop,
                }
            )
            console.print(f"{label}: measured")

    table = Table(
        title=f"Growth: status and no-op up (round trip {Durations().round_trip:g} s / "
        f"{args.scale:g}; parallel 4)"
    )
    cols = ("size", "resources", "status calls", "status s", "no-op up calls", "writes", "up s")
    for col in cols:
        table.add_column(col, justify="left" if col == "size" else "right")
    for r in rows:
        st, up = r["status"], r["noop_up"]
        table.add_row(
            r["size"],
            str(r["resources"]),
            str(st["total"]),
            f"{st['seconds']:.2f}",
            str(up["total"]),
            ("[red]" if up["writes"] else "[green]") + str(up["writes"]),
            f"{up['seconds']:.2f}",
        )
    console.print(table)

    # Every operation whose count changed between the smallest and the largest stack.
    first, last = rows[0], rows[-1]
    ops = Table(title="Operations whose count changed from the smallest to the largest stack")
    for col in ("command", "operation", "smallest", "largest"):
        ops.add_column(col, justify="right" if col in ("smallest", "largest") else "left")
    changed = 0
    for command in ("status", "noop_up"):
        a, b = first[command]["calls"], last[command]["calls"]
        for op in sorted(set(a) | set(b)):
            if a.get(op, 0) != b.get(op, 0):
                ops.add_row(command, op, str(a.get(op, 0)), str(b.get(op, 0)))
                changed += 1
    if changed:
        console.print(ops)
    else:
        console.print("No operation's call count changed from the smallest to the largest stack.")
    for command, what in (("status", "in sync"), ("noop_up", "unchanged")):
        off = {r["size"]: r[command]["not_in_sync"] for r in rows if r[command]["not_in_sync"]}
        if off:
            console.print(f"[red]{command}: not {what}: {off}")
    data = {"region": REGION, "scale": args.scale, "repeat": args.repeat, "sizes": rows}
    data["load_average"] = os.getloadavg()
    console.print(f"wrote {write_json('growth', data)}")


if __name__ == "__main__":
    main()

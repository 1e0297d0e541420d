"""API calls of cold up, no-op up, status, plan and teardown of the full default stack.

    python benchmarks/api_calls.py          # table on stdout, JSON in benchmarks/results/

Counts come from pcls's own call accounting (a botocore before-call hook on every client),
split by service and operation, read or write.
"""

from __future__ import annotations

from common import project, write_json
from rich.console import Console
from rich.table import Table

from pcls.aws import is_read

PHASES = ("plan", "up", "up (no-op)", "status", "teardown")
# Reads a no-op up repeats, and why AWS offers no batched form that fits.
REPEATED = {
    "ec2:DescribeVpcAttribute": "one attribute per call (DNS support, DNS hostnames)",
    "ecs:ListTaskDefinitions": "familyPrefix is one exact family on AWS: one call per family",
    "ecs:DescribeTaskDefinition": "takes one task definition",
    "iam:GetRole": "IAM reads one role per call",
    "iam:ListRolePolicies": "per role",
    "iam:ListAttachedRolePolicies": "per role",
    "iam:GetRolePolicy": "one inline policy per call",
    "servicediscovery:ListTagsForResource": "one ARN per call (namespace, service)",
}


def main() -> None:
    data: dict[str, dict] = {}
    with project() as p:
        p.warm_up()  # moto's backends load now, not inside the first timed phase
        for phase in PHASES:
            command = phase.split()[0]
            result, s, elapsed = p.run(command)
            summary = s.aws.call_summary()
            summary["seconds"] = round(elapsed, 3)
            summary["resources"] = len(result.results)
            data[phase] = summary
    table = Table(title="AWS API calls, full default stack (in-process moto)")
    for col in ("phase", "reads", "writes", "total", "steps", "calls per step", "wall s"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for phase, d in data.items():
        table.add_row(
            phase,
            str(d["reads"]),
            str(d["writes"]),
            str(d["total"]),
            str(d["resources"]),
            f"{d['total'] / max(d['resources'], 1):.2f}",
            f"{d['seconds']:.2f}",
        )
    console = Console()
    console.print(table)
    ops = Table(title="by operation (no-op up)")
    ops.add_column("operation")
    ops.add_column("kind")
    ops.add_column("calls", justify="right")
    for op, n in sorted(data["up (no-op)"]["calls"].items()):
        ops.add_row(op, "read" if is_read(op.split(":")[1]) else "write", str(n))
    console.print(ops)
    repeated = Table(title="reads a no-op up makes more than once (per resource, not per type)")
    for col in ("operation", "calls", "why"):
        repeated.add_column(col, justify="right" if col == "calls" else "left")
    for op, n in sorted(data["up (no-op)"]["calls"].items()):
        if n > 1:
            repeated.add_row(op, str(n), REPEATED.get(op, "[red]unexplained: batch it"))
    console.print(repeated)
    print(f"wrote {write_json('api_calls', data)}")


if __name__ == "__main__":
    main()

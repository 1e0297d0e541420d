"""Peak memory (maximum resident set size) of the pcls process for a full `up` of the stack.

    python benchmarks/memory.py

Runs the real command line against the sandbox, in a temporary directory:
`pcls init`, `pcls sandbox start`, then `python -m pcls up --sandbox`, `status`, a no-op `up`
and `teardown --yes`, each as its own child process whose peak RSS the kernel reports on exit
(os.wait4). The sandbox (a moto server) is a separate process started beforehand, so its memory
is not counted; its own peak is shown for comparison. For reference, the same interpreter
importing pcls and creating no client. The same figure by hand:

    /usr/bin/time -v python -m pcls up --sandbox     # "Maximum resident set size"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import write_json
from rich.console import Console
from rich.table import Table

LIMIT_MB = 200
# No credentials or endpoint from this shell: the sandbox supplies its own.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
STEPS = (
    ("import pcls (no client)", ["-c", "import pcls.runner, pcls.steps, pcls.__main__"]),
    ("up (cold)", ["-m", "pcls", "up", "--sandbox"]),
    ("status", ["-m", "pcls", "status", "--sandbox"]),
    ("up (no-op)", ["-m", "pcls", "up", "--sandbox"]),
    ("teardown", ["-m", "pcls", "teardown", "--sandbox", "--yes"]),
)


def run(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run one pcls process; its peak RSS in MB (ru_maxrss is in KiB on Linux)."""
    began = time.perf_counter()
    with open(cwd / "out.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - began, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def peak_of(pid: int) -> float:
    """VmHWM (peak RSS) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    console = Console()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        init = ["-m", "pcls", "init", "meet.example.com", "--name", "meet"]
        for prep in ([*init, "--region", "eu-central-2"], ["-m", "pcls", "sandbox", "start"]):
            if run(prep, cwd)["exit"] != 0:
                raise SystemExit(f"{' '.join(prep)} failed:\n{(cwd / 'out.log').read_text()}")
        try:
            for label, args in STEPS:
                rows[label] = run(args, cwd)
                if rows[label]["exit"] != 0:
                    raise SystemExit(f"{label} failed:\n{(cwd / 'out.log').read_text()[-3000:]}")
            state = (cwd / ".pcls" / "sandbox.json").read_text()
            sandbox_pid = int(json.loads(state)["pid"])
            rows["sandbox server (not pcls)"] = {
                "exit": 0,
                "seconds": 0.0,
                "peak_rss_mb": peak_of(sandbox_pid),
            }
        finally:
            run(["-m", "pcls", "sandbox", "stop"], cwd)

    table = Table(title=f"Peak RSS per process (target: pcls under {LIMIT_MB} MB for a full up)")
    for col in ("process", "peak RSS MB", "wall s"):
        table.add_column(col, justify="left" if col == "process" else "right")
    for label, r in rows.items():
        colour = "" if "sandbox" in label else ("green" if r["peak_rss_mb"] < LIMIT_MB else "red")
        table.add_row(
            label,
            f"[{colour}]{r['peak_rss_mb']:.1f}[/]" if colour else f"{r['peak_rss_mb']:.1f}",
            f"{r['seconds']:.2f}" if r["seconds"] else "-",
        )
    console.print(table)
    console.print(f"wrote {write_json('memory', {'limit_mb': LIMIT_MB, 'processes': rows})}")


if __name__ == "__main__":
    main()

"""Mutation check of pcls's core: mutmut 3, one module at a time, against the tests that cover it.

Run it through scripts/mutation (which installs mutmut, the `mutation` extra, when missing).
Each module gets its own copy of the working tree under mutants/<module>/, with a pyproject.toml
whose [tool.mutmut] section is the repository's plus the module to mutate and its tests; mutmut
then runs, for each mutant, only the tests of that list that reach the mutated function, fastest
first, stopping at the first failure. The summary (killed, survived, rate, wall time) is printed
and kept in mutants/summary.txt; survivors are listed in mutants/<module>/survivors.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "mutants"


@dataclass(frozen=True)
class Module:
    source: str
    tests: tuple[str, ...]
    # node ids that cannot pass on a mutated copy (they read the module's own source text)
    deselect: tuple[str, ...] = field(default=())
    env: tuple[tuple[str, str], ...] = field(default=())  # for the module's test run


MODULES: dict[str, Module] = {
    "engine": Module(
        "pcls/engine.py",
        (
            "tests/test_engine.py",
            "tests/test_engine_contract.py",
            "tests/test_mutation_gaps.py::test_pick_takes_the_one_the_ledger_names_among_two_tagged",
            "tests/test_mutation_gaps.py::test_pick_without_a_ledger_id_refuses_to_guess_between_two_tagged",
            "tests/test_mutation_gaps.py::test_pick_never_takes_what_the_ledger_names_when_it_is_not_the_stacks",
            "tests/test_mutation_gaps.py::test_pick_records_an_item_of_our_name_that_is_not_ours",
        ),
        # mutmut owns SIGINT in its test runs: a simulated Ctrl-C never reaches the walk
        deselect=(
            "tests/test_engine_contract.py::test_an_interrupt_stops_the_walk_and_cancels_what_did_not_start",
        ),
    ),
    "ledger": Module(
        "pcls/ledger.py",
        (
            "tests/test_ledger_contract.py",
            "tests/test_mutation_gaps.py::test_a_crash_while_the_new_ledger_is_written_leaves_the_previous_one",
            "tests/test_mutation_gaps.py::test_every_save_is_a_new_file_renamed_over_the_old",
        ),
    ),
    "config": Module(
        "pcls/config.py",
        ("tests/test_config.py", "tests/test_config_contract.py"),
    ),
    "aws": Module(
        "pcls/aws.py",
        ("tests/test_aws_contract.py", "tests/test_engine.py"),
    ),
    "permissions": Module(
        "pcls/permissions.py",
        (
            "tests/test_permissions.py",
            "tests/test_permissions_contract.py",
            "tests/test_mutation_gaps.py::test_iam_policy_log_group_scope_is_the_stacks_log_group",
        ),
        # a whole `up` on moto per surviving mutant: the rest covers what it checks, faster
        deselect=(
            "tests/test_permissions.py::test_iam_policy_covers_every_call_of_a_full_lifecycle",
        ),
    ),
    "bridge_guard": Module(
        "pcls/sidecar/bridge_guard.py",
        (
            "tests/test_bridge_guard_units.py",
            "tests/test_bridge_guard.py",
            "tests/test_bridge_guard_drain.py",
        ),
        # The mutated copy imports mutmut and is too big for the container's environment
        # variable: the shipped script's size, imports and run as a command are left out. The
        # drain cases that wait in real time for seconds are too: test_bridge_guard_units.py
        # makes the same decisions on an injected clock.
        deselect=(
            "tests/test_bridge_guard.py::test_script_is_small_and_stdlib_only",
            "tests/test_bridge_guard.py::test_shipped_command_protects_and_exits_cleanly",
            "tests/test_bridge_guard.py::test_shipped_command_survives_dead_endpoints",
            "tests/test_bridge_guard_drain.py::test_drain_sequence_on_sigterm",
            "tests/test_bridge_guard_drain.py::test_second_sigterm_does_not_cut_the_drain_short",
            "tests/test_bridge_guard_drain.py::test_no_other_bridge_keeps_the_participants_until_the_time_is_up",
            "tests/test_bridge_guard_drain.py::test_a_bridge_that_appears_takes_the_participants",
            "tests/test_bridge_guard_drain.py::test_without_jicofo_bridge_list_it_moves_after_one_presence_interval",
            "tests/test_bridge_guard_drain.py::test_move_is_asked_again_while_participants_remain",
            "tests/test_bridge_guard_drain.py::test_unreachable_jicofo_leaves_a_plain_drain",
            "tests/test_bridge_guard_drain.py::test_bridge_unknown_to_jicofo_is_not_moved",
        ),
        # the remaining drain cases wait in real time, scaled: a quarter of their default
        env=(("PCLS_DRAIN_SCALE", "0.05"),),
    ),
}

DETECTED = ("killed", "timeout", "caught by type check", "segfault")


def toml_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def project_files() -> list[Path]:
    """The working tree as git sees it: tracked and untracked files, ignored ones left out."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [Path(p) for p in out.split("\0") if p and (ROOT / p).is_file()]


def prepare(name: str, mod: Module, keep: bool) -> Path:
    work = BASE / name
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        if rel.parts[0] == "mutants":
            continue
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    base = tomllib.loads(text).get("tool", {}).get("mutmut", {})
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text).rstrip() + "\n"
    settings = {k: v for k, v in base.items() if k not in ("only_mutate",)}
    selection = [t for t in mod.tests if (work / t.split("::")[0]).exists()]
    if not selection:
        raise SystemExit(f"{name}: none of its tests exist ({', '.join(mod.tests)})")
    for node in mod.deselect:
        selection += ["--deselect", node]
    settings["only_mutate"] = [mod.source]
    settings["pytest_add_cli_args_test_selection"] = selection
    lines = ["", "[tool.mutmut]"]
    for key, value in settings.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value}")
        elif isinstance(value, str):
            lines.append(f"{key} = {toml_list([value])[1:-1]}")
        else:
            lines.append(f"{key} = {toml_list(value)}")
    (work / "pyproject.toml").write_text(text + "\n".join(lines) + "\n", encoding="utf-8")
    return work


def last_status(log: Path) -> str:
    try:
        tail = log.read_bytes()[-4000:].decode(errors="replace")
    except OSError:
        return ""
    parts = [p.strip() for p in re.split(r"[\r\n]", tail) if "/" in p and p.strip()]
    return re.sub(r"^\W+", "", parts[-1]) if parts else ""


def run_mutmut(work: Path, jobs: int, extra: dict[str, str]) -> tuple[int, float]:
    log = work / "mutmut.log"
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["mutmut", "run", "--max-children", str(jobs)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        shown = 0.0
        try:
            while proc.poll() is None:
                time.sleep(1)
                elapsed = time.monotonic() - started
                if elapsed - shown >= 60:
                    shown = elapsed
                    print(f"    {elapsed / 60:4.0f} min  {last_status(log)}", flush=True)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    return proc.returncode, time.monotonic() - started


def results(work: Path) -> dict[str, str]:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status
    return found


def summarize(name: str, found: dict[str, str], seconds: float) -> tuple[str, float]:
    total = len([s for s in found.values() if s != "skipped"])
    detected = len([s for s in found.values() if s in DETECTED])
    rate = 100.0 * detected / total if total else 0.0
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    line = f"{name:13} {detected:5}/{total:<5} {rate:5.1f} %  {seconds / 60:5.1f} min  ({shown})"
    return line, rate


def show(mutant: str) -> int:
    for work in sorted(BASE.iterdir()) if BASE.is_dir() else ():
        meta = work / "mutants"
        if not meta.is_dir():
            continue
        found = results(work)
        if mutant in found:
            return subprocess.run(["mutmut", "show", mutant], cwd=work).returncode
    print(f"{mutant}: not in any run under {BASE}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__.split("\n")[0])
    p.add_argument("modules", nargs="*", metavar="module", help=", ".join(MODULES))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants at once")
    p.add_argument("--keep", action="store_true", help="reuse the last run's results")
    p.add_argument("--min", type=float, default=90.0, help="lowest acceptable kill rate (%%)")
    p.add_argument("--list", action="store_true", help="the modules and their tests")
    p.add_argument("--show", metavar="MUTANT", help="the diff of one mutant of the last run")
    args = p.parse_args(argv)
    if args.show:
        return show(args.show)
    if args.list:
        for name, mod in MODULES.items():
            print(f"{name}: {mod.source}")
            for t in mod.tests:
                print(f"    {t}")
            for t in mod.deselect:
                print(f"    not {t}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        p.error(f"unknown module {unknown[0]!r}; one of {', '.join(MODULES)}")
    chosen = args.modules or list(MODULES)
    lines: list[str] = []
    worst = 100.0
    started = time.monotonic()
    for name in chosen:
        mod = MODULES[name]
        print(f"{name}: mutating {mod.source} against {len(mod.tests)} test files", flush=True)
        work = prepare(name, mod, args.keep)
        code, seconds = run_mutmut(work, args.jobs, dict(mod.env))
        if code != 0:
            print(f"{name}: mutmut exited {code}; see {work / 'mutmut.log'}", file=sys.stderr)
            print(last_status(work / "mutmut.log"), file=sys.stderr)
            return 2
        found = results(work)
        line, rate = summarize(name, found, seconds)
        worst = min(worst, rate)
        survivors = sorted(n for n, s in found.items() if s not in DETECTED and s != "skipped")
        (work / "survivors.txt").write_text("".join(f"{n}: {found[n]}\n" for n in survivors))
        print(line, flush=True)
        lines.append(line)
    total = time.monotonic() - started
    summary = "\n".join(
        [
            f"mutation check, {args.jobs} jobs, {total / 60:.1f} min in all",
            "module         killed/total  rate   wall time",
            *lines,
        ]
    )
    BASE.mkdir(exist_ok=True)
    (BASE / "summary.txt").write_text(summary + "\n")
    print()
    print(summary)
    print(f"survivors: {BASE}/<module>/survivors.txt; a diff: scripts/mutation --show NAME")
    return 0 if worst >= args.min else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

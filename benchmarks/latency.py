"""Cold `up` and `teardown` of the full default stack under a time model of AWS.

    python benchmarks/latency.py                # AWS durations / 50, parallel 4 and parallel 1
    python benchmarks/latency.py --scale 100    # faster; pcls's CPU time then weighs double
    python benchmarks/latency.py --faults       # what AWS's errors right after writes add to up

moto gets AWS's round trip and the state transitions that take time on AWS (timemodel.py; the
durations and their sources are in benchmarks/README.md), all divided by one scale factor, and
pcls runs with its default Patience whose sleeps are divided by the same factor. Three runs, each
on a fresh moto:

1. calibration: every transition takes 0 s, parallel 1. Gives each step's own time (its calls,
   round trips included, and its CPU), which transitions it starts, which roles it waits for and
   which network-interface owners block its deletes.
2. parallel (default 4) with the full model: the measured wall time of `up` and `teardown`.
3. parallel 1 with the full model: the strictly sequential run.

The critical-path bound replays the step graph with unlimited parallelism: a step starts when its
dependencies have finished, and takes its own time plus the transitions it waits for; a create
that uses new roles cannot start before they propagated; a delete blocked by network interfaces
finishes no earlier than the owner's end plus the release time. Printed: a table of the bound, the
walls and the ratios; for each command, the chain that finished last in its slowest round, with
what each step lost: queued (no worker free when its dependencies were done), overshoot (AWS was
done before pcls looked again) and other (its calls took longer than in calibration). JSON goes
to benchmarks/results/latency.json; benchmarks/README.md explains how to read it.

With --faults the script times a cold `up` twice on the full model, without and with the errors
AWS sends in the windows right after a write (`Faults`: each once, at its first chance, for a
realistic time), and prints what they add (JSON: benchmarks/results/latency-faults.json).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from common import WARM_UP, Project, TimedReporter, frozen_heap, project, write_json
from rich.console import Console
from rich.table import Table
from timemodel import Durations, TimeModel, on_every_client

from pcls import runner
from pcls.engine import Patience, RunResult

TARGET = 1.15
# Step.typical_seconds as the steps could declare them (AWS seconds, the waits of
# timemodel.Durations; one value serves both walks, as in the engine); every other step keeps
# pcls's default of 1. Applied only with --typical-seconds, to show the effect of the engine's
# longest-chain-first priority when it knows the waits. Deletes that wait for network interfaces
# are left at 1 on purpose: ranked high, they take the workers and sit in their retry loops.
TYPICAL = {
    "certificate": 310.0,
    "alb": 180.0,
    "service-signal": 180.0,
    "service-jvb": 120.0,
    "namespace": 60.0,
}
CLIENTS = ("sts", "route53", *(service for service, *_ in WARM_UP))


@dataclass
class Phase:
    """One timed `up` or `teardown`."""

    command: str
    parallel: int
    wall: float
    walk_start: float  # seconds after the command began
    started: dict[str, float]
    finished: dict[str, float]
    own: dict[str, float]  # StepResult.elapsed
    calls: dict[str, int]  # per step ("" = outside any step: identity, preflight, final check)
    reads: int
    writes: int
    refused: dict[str, int]
    transitions: list[dict[str, Any]] = field(default_factory=list)
    iam_waits: dict[str, list[str]] = field(default_factory=dict)
    eni_waits: dict[str, list[str]] = field(default_factory=dict)
    overhead: float = 0.0  # wall time outside the step walk
    deps: dict[str, list[str]] = field(default_factory=dict)  # step -> depends_on (up order)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_phase(
    p: Project,
    model: TimeModel,
    command: str,
    parallel: int,
    prewarm: bool = False,
    typical: bool = False,
) -> Phase:
    model.new_phase()
    ui = TimedReporter()
    s = p.session(parallel=parallel, patience=Patience(sleep=model.sleep), ui=ui)
    model.step_of = lambda: s.aws.current_step
    if typical:
        for name, seconds in TYPICAL.items():
            if name in s.engine.steps:
                s.engine.steps[name].typical_seconds = seconds
    if prewarm:
        for service in CLIENTS:
            s.aws.client(service)
    with frozen_heap():
        began = time.monotonic()  # the clock of the reporter and of the model
        result: RunResult = runner.do_up(s) if command == "up" else runner.do_teardown(s)
        wall = time.monotonic() - began
    if not result.ok:
        details = [r.detail for r in result.failures] or result.remaining
        raise SystemExit(f"{command} (parallel {parallel}) failed: {details}")
    calls: dict[str, int] = {}
    for (step, _, _), n in s.aws.step_calls.items():
        calls[step] = calls.get(step, 0) + n
    summary = s.aws.call_summary()
    walk_start = min(ui.started.values()) - began
    walk_end = max(ui.finished.values()) - began
    return Phase(
        command=command,
        parallel=parallel,
        wall=wall,
        walk_start=walk_start,
        started={n: t - began for n, t in ui.started.items()},
        finished={n: t - began for n, t in ui.finished.items()},
        own={n: r.elapsed for n, r in result.results.items()},
        calls=calls,
        reads=summary["reads"],
        writes=summary["writes"],
        refused=dict(model.refused),
        transitions=[_relative(t.to_dict(), began) for t in model.transitions],
        iam_waits={k: sorted(v) for k, v in model.iam_waits.items()},
        eni_waits={k: sorted(v) for k, v in model.eni_waits.items()},
        overhead=wall - (walk_end - walk_start),
        deps={n: sorted(step.depends_on) for n, step in s.engine.steps.items()},
    )


def _relative(t: dict[str, Any], began: float) -> dict[str, Any]:
    for key in ("ends", "seen"):
        if t[key] is not None:
            t[key] = round(t[key] - began, 4)
    return t


def run_stack(
    durations: Durations,
    scale: float,
    parallel: int,
    args: argparse.Namespace,
    commands: Sequence[str] = ("up", "teardown"),
    faults: Sequence[str] = (),
) -> dict[str, Phase]:
    options = {"prewarm": args.prewarm_clients, "typical": args.typical_seconds}
    with project() as p:
        p.warm_up()
        with (
            TimeModel(durations, scale, args.fresh_account).installed() as model,
            Faults(model, faults).installed() as injected,
        ):
            phases = {}
            for command in commands:
                phases[command] = run_phase(p, model, command, parallel, **options)
                phases[command].refused.update(
                    {f"fault {k}": n for k, n in injected.take_refused().items()}
                )
            return phases


# -- faults right after writes (--faults) --------------------------------------------------------

# The steps each fault hits (their own time shows what it cost them).
FAULT_STEPS = {
    "certificate": ("listener-https",),
    "listener": ("service-signal",),
    "role": ("taskdef-signal", "taskdef-jvb"),
    "concurrent": ("scaling-policies",),
}
# How long (real AWS seconds) each fault holds at its first occurrence; benchmarks/README.md.
FAULTS = {
    # CreateListener (HTTPS): CertificateNotFound until this long after the certificate is ISSUED
    "certificate": 60.0,
    # CreateService (a shard): no associated load balancer until this long after the first
    # forward to the target group (the HTTP listener's rule)
    "listener": 10.0,
    # RegisterTaskDefinition: Role is not valid for this long from the first attempt
    "role": 10.0,
    # PutScalingPolicy: ConcurrentUpdateException, once
    "concurrent": 0.0,
}


def certificate_fault_handled() -> bool:
    """pcls retries CertificateNotFound on CreateListener (the load balancer step's own work)."""
    from pcls.steps import loadbalancer

    return '"CertificateNotFound"' in inspect.getsource(loadbalancer)


class Faults:
    """The errors AWS sends in the windows right after a write, each at its first chance.

    Installed over the time model (its clock, scale and certificate times), with a `before-call`
    handler registered after pcls's call counter, as the model's own refusals are. A fault's
    window opens at its trigger (the certificate ISSUED, the forwarding listener created, the
    first RegisterTaskDefinition) and refuses every matching call until it has passed; then that
    fault never comes back.
    """

    def __init__(self, model: TimeModel, names: Sequence[str]) -> None:
        unknown = set(names) - set(FAULTS)
        if unknown:
            raise SystemExit(f"--faults: unknown {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.model = model
        self.names = set(names)
        self.since: dict[str, float] = {}
        self.over: set[str] = set()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Faults]:
        if not self.names:
            yield self
            return
        with on_every_client(self.register):
            yield self

    def take_refused(self) -> Counter[str]:
        with self._lock:
            out, self.refused = self.refused, Counter()
        return out

    def register(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build", self._keep_params)
        events.register_last("before-call", lambda **kw: self._refuse(client, **kw))
        events.register("after-call", self._after)

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["faults_params"] = params

    def _after(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response is None or http_response.status_code >= 300:
            return
        params = context.get("faults_params") or {}
        # The target group's first forward: a listener's default action, or a listener rule.
        actions = params.get("DefaultActions", []) + params.get("Actions", [])
        if model.name in ("CreateListener", "CreateRule") and any(
            a.get("Type") == "forward" for a in actions
        ):
            with self._lock:
                self.since.setdefault("listener", self.model.clock())

    def _holds(self, name: str, start: float | None) -> bool:
        """True while fault `name`, whose window opened at `start`, still refuses."""
        if name not in self.names or name in self.over or start is None:
            return False
        if self.model.clock() < start + self.model.scaled(FAULTS[name]):
            return True
        self.over.add(name)
        return False

    def _refuse(self, client: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        op, params = model.name, context.get("faults_params") or {}
        error: tuple[str, str, str] | None = None
        with self._lock:
            if op == "CreateListener" and params.get("Protocol") == "HTTPS":
                arn = params["Certificates"][0]["CertificateArn"]
                requested = self.model.certs.get(arn)
                issued = (
                    None
                    if requested is None
                    else requested + self.model.scaled(self.model.durations.acm_issued)
                )
                if self._holds("certificate", issued):
                    error = ("certificate", "CertificateNotFound", f"Certificate '{arn}' not found")
            elif op == "CreateService" and params.get("loadBalancers"):
                if self._holds("listener", self.since.get("listener")):
                    tg = params["loadBalancers"][0]["targetGroupArn"]
                    error = (
                        "listener",
                        "InvalidParameterException",
                        f"The target group with targetGroupArn {tg} does not have an associated "
                        "load balancer.",
                    )
            elif op == "RegisterTaskDefinition":
                start = self.since.setdefault("role", self.model.clock())
                if self._holds("role", start):
                    error = ("role", "ClientException", "Role is not valid")
            elif op == "PutScalingPolicy" and {"concurrent"} <= self.names - self.over:
                self.over.add("concurrent")
                error = (
                    "concurrent",
                    "ConcurrentUpdateException",
                    "You already have a pending update to an Auto Scaling resource.",
                )
            if error is not None:
                self.refused[error[0]] += 1
        if error is not None:
            _, code, message = error
            raise client.exceptions.from_code(code)(
                {"Error": {"Code": code, "Message": message}}, op
            )


def fault_names(value: str) -> tuple[list[str], str]:
    """(faults to inject, a note on one left out) from --faults."""
    if value != "default":
        return [v.strip() for v in value.split(",") if v.strip()], ""
    if certificate_fault_handled():
        return list(FAULTS), ""
    note = "certificate left out: the load balancer step does not retry CertificateNotFound yet"
    return [n for n in FAULTS if n != "certificate"], note


def fault_main(args: argparse.Namespace, durations: Durations, console: Console) -> None:
    names, note = fault_names(args.faults)
    scale = args.scale
    began = time.perf_counter()
    load_before = os.getloadavg()
    rounds = []
    for i in range(args.repeat):
        label = f"round {i + 1}/{args.repeat}: " if args.repeat > 1 else ""
        console.print(f"{label}cold up, parallel {args.parallel}, the full model, no faults")
        clean = run_stack(durations, scale, args.parallel, args, ("up",))["up"]
        console.print(f"{label}cold up, parallel {args.parallel}, faults: {', '.join(names)}")
        faulty = run_stack(durations, scale, args.parallel, args, ("up",), names)["up"]
        steps = {st for n in names for st in FAULT_STEPS[n]}
        rounds.append(
            {
                "clean_s": round(clean.wall, 3),
                "faults_s": round(faulty.wall, 3),
                "added_s": round(faulty.wall - clean.wall, 3),
                "refused": {k: v for k, v in faulty.refused.items() if k.startswith("fault ")},
                "calls": [clean.reads + clean.writes, faulty.reads + faulty.writes],
                # step -> [took without, took with, finished without, finished with]
                "steps": {
                    st: [
                        round(clean.finished[st] - clean.started[st], 3),
                        round(faulty.finished[st] - faulty.started[st], 3),
                        round(clean.finished[st], 3),
                        round(faulty.finished[st], 3),
                    ]
                    for st in sorted(steps)
                },
            }
        )
    med = {k: statistics.median(r[k] for r in rounds) for k in ("clean_s", "faults_s", "added_s")}
    title = f"Cold up with AWS's errors right after writes, AWS durations / {scale:g}"
    if args.repeat > 1:
        title += f" (median of {args.repeat})"
    table = Table(title=title)
    for col in ("run", "wall s", "AWS-equivalent", "API calls"):
        table.add_column(col, justify="left" if col == "run" else "right")
    table.add_row(
        "no faults",
        f"{med['clean_s']:.2f}",
        f"{med['clean_s'] * scale / 60:.1f} min",
        str(rounds[-1]["calls"][0]),
    )
    table.add_row(
        f"faults: {', '.join(names)}",
        f"{med['faults_s']:.2f}",
        f"{med['faults_s'] * scale / 60:.1f} min",
        str(rounds[-1]["calls"][1]),
    )
    table.add_row(
        "[b]added by the faults",
        f"[b]{med['added_s']:+.2f}",
        f"[b]{med['added_s'] * scale:+.0f} s",
        "",
    )
    console.print(table)
    faults_table = Table(
        title="The faults at their first occurrence: the step each hits, its own time "
        "(AWS seconds, medians)"
    )
    cols = ("fault", "holds", "refused calls", "step", "took", "with the fault", "added")
    for col in cols:
        faults_table.add_column(col, justify="left" if col in ("fault", "step") else "right")
    for name in names:
        for st in FAULT_STEPS[name]:
            took = [statistics.median(r["steps"][st][i] for r in rounds) * scale for i in (0, 1)]
            faults_table.add_row(
                name,
                f"{FAULTS[name]:g} s",
                str(rounds[-1]["refused"].get(f"fault {name}", 0)),
                st,
                f"{took[0]:.0f} s",
                f"{took[1]:.0f} s",
                f"{took[1] - took[0]:+.0f} s",
            )
    console.print(faults_table)
    if note:
        console.print(note)
    data = {
        "scale": scale,
        "durations": durations.as_dict(),
        "faults": {n: FAULTS[n] for n in names},
        "left_out": note,
        "parallel": args.parallel,
        "repeat": args.repeat,
        "median": med,
        "rounds": rounds,
    }
    finish(console, "latency-faults", data, load_before, began)


def finish(
    console: Console, name: str, data: dict[str, Any], load_before: tuple[float, ...], began: float
) -> None:
    """Add the machine's load and the benchmark's own time to `data`; write and name the file."""
    data["load_average"] = {"before": load_before, "after": os.getloadavg()}
    data["benchmark_seconds"] = round(time.perf_counter() - began, 1)
    console.print(
        f"load average before/after: {load_before[0]:.2f}/{os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    console.print(f"wrote {write_json(name, data)} ({data['benchmark_seconds']} s)")


# -- the critical-path bound ---------------------------------------------------------------------


@dataclass
class Bound:
    total: float
    start: dict[str, float]
    finish: dict[str, float]
    waits: dict[str, float]  # transitions each step waits for
    work: dict[str, float]  # own time plus those waits


def graph_of(phase: Phase) -> dict[str, tuple[str, ...]]:
    """Step -> the steps it waits for in this walk (teardown reverses the edges)."""
    reverse = phase.command == "teardown"
    deps: dict[str, list[str]] = {name: [] for name in phase.deps}
    for name, depends_on in phase.deps.items():
        for dep in depends_on:
            if reverse:
                deps[dep].append(name)
            else:
                deps[name].append(dep)
    return {k: tuple(sorted(v)) for k, v in deps.items()}


def critical_path(
    cal: Phase, deps: dict[str, tuple[str, ...]], d: Durations, scale: float
) -> Bound:
    """Earliest finish of every step with unlimited parallelism, in scaled seconds."""
    # Transitions of one kind that a step starts together run at once (every shard's first
    # rollout, every shard draining at teardown): the longest counts, not their sum.
    kinds: dict[tuple[str, str], float] = {}
    for t in cal.transitions:
        if t["blocking"] and t["step"]:
            key = (t["step"], t["key"])
            kinds[key] = max(kinds.get(key, 0.0), getattr(d, t["key"]) / scale)
    waits: dict[str, float] = {}
    for (step, _), seconds in kinds.items():
        waits[step] = waits.get(step, 0.0) + seconds
    per_call = sum(cal.own.values()) / max(sum(n for s, n in cal.calls.items() if s), 1)
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    todo = set(deps)
    while todo:
        progressed = False
        for n in sorted(todo):
            needs = set(deps[n]) | set(cal.iam_waits.get(n, ())) | set(cal.eni_waits.get(n, ()))
            needs.discard(n)
            if needs - set(finish):
                continue
            begin = max((finish[x] for x in deps[n]), default=0.0)
            ready = begin
            for role in cal.iam_waits.get(n, ()):
                ready = max(ready, finish[role] + d.iam / scale)
            end = ready + cal.own.get(n, 0.0) + waits.get(n, 0.0)
            for owner in cal.eni_waits.get(n, ()):
                if owner != n:
                    end = max(end, finish[owner] + d.eni_release / scale + per_call)
            start[n], finish[n] = begin, end
            todo.discard(n)
            progressed = True
        if not progressed:
            raise SystemExit(f"cycle in the step graph among {sorted(todo)}")
    total = cal.overhead + max(finish.values(), default=0.0)
    work = {n: cal.own.get(n, 0.0) + waits.get(n, 0.0) for n in deps}
    return Bound(total, start, finish, waits, work)


# -- where a run lost time -----------------------------------------------------------------------


def measured_chain(
    run: Phase, bound: Bound, deps: dict[str, tuple[str, ...]]
) -> list[dict[str, Any]]:
    """The chain that ended last, traced back through the dependency that finished last."""
    fin, sta = run.finished, run.started
    late: dict[str, float] = {}
    released: dict[str, float] = {}  # step -> when what it was refused for was released
    for t in run.transitions:
        if t["overshoot"] is not None and (t["blocking"] or t["refusal"]):
            late[t["step"]] = late.get(t["step"], 0.0) + t["overshoot"]
        if t["refusal"]:
            released[t["step"]] = max(released.get(t["step"], 0.0), t["ends"])
    name = max(fin, key=lambda n: fin[n])
    chain: list[dict[str, Any]] = []
    then = ""
    while name:
        before = [x for x in deps[name] if x in fin]
        ready = max((fin[x] for x in before), default=run.walk_start)
        release = released.get(name)
        if release is None:
            queued, expected = sta[name] - ready, bound.work[name]
        else:
            # Refused until a release: waiting for a worker cost only what ran past it.
            queued = max(0.0, sta[name] - max(ready, release))
            expected = max(bound.work[name], release - sta[name])
        chain.append(
            {
                "step": name,
                "then": then,  # how the next step in the chain waited for this one
                "ready": round(ready, 3),
                "start": round(sta[name], 3),
                "finish": round(fin[name], 3),
                "queued": round(queued, 3),
                "took": round(fin[name] - sta[name], 3),
                # its own time and waits in the bound, or, when it was refused until a release
                # in this run, the time from its start to that release
                "bound_took": round(expected, 3),
                "bound_finish": round(bound.finish[name] + run.walk_start, 3),
                "wait": round(bound.waits.get(name, 0.0), 3),
                "overshoot": round(late.get(name, 0.0), 3),
            }
        )
        holders = [
            o
            for o in (*run.eni_waits.get(name, ()), *run.iam_waits.get(name, ()))
            if o in fin and o != name
        ]
        if holders and released.get(name, 0.0) > max(ready, sta[name]):
            # It was refused until what these steps deleted or created was released.
            name, then = max(holders, key=lambda x: fin[x]), "release"
        else:
            name, then = (max(before, key=lambda x: fin[x]), "") if before else ("", "")
    return list(reversed(chain))


def chain_table(title: str, chain: list[dict[str, Any]]) -> Table:
    """Where the chain lost time.

    "(+ release)": the next step waited for what this one deleted (network interfaces) or created
    (a role) to be released or to propagate, not for the step itself.
    queued: ready, but no worker was free (or a higher-ranked step got it), counted only where it
    delayed the step; expected: the step's own time and waits in the bound, or the time until the
    release it was refused for; overshoot: AWS was done before pcls looked again (poll interval,
    retry backoff); other: its calls and CPU took longer than in the calibration run (contention
    from the other threads and the emulator).
    """
    table = Table(title=title)
    cols = ("step", "start", "queued", "took", "expected", "waits", "overshoot", "other", "finish")
    for col in cols:
        table.add_column(col, justify="left" if col == "step" else "right")
    for c in chain:
        other = c["took"] - c["bound_took"] - c["overshoot"]
        table.add_row(
            c["step"] + (" (+ release)" if c["then"] == "release" else ""),
            f"{c['start']:.2f}",
            _mark(c["queued"], 0.05) + f"{c['queued']:.2f}",
            f"{c['took']:.2f}",
            f"{c['bound_took']:.2f}",
            f"{c['wait']:.2f}",
            _mark(c["overshoot"], 0.05) + f"{c['overshoot']:.2f}",
            _mark(other, 0.05) + f"{other:.2f}",
            f"{c['finish']:.2f}",
        )
    queued = sum(c["queued"] for c in chain)
    overshoot = sum(c["overshoot"] for c in chain)
    other = sum(c["took"] - c["bound_took"] - c["overshoot"] for c in chain)
    table.add_row(
        "[b]lost on the chain",
        "",
        f"[b]{queued:.2f}",
        "",
        "",
        "",
        f"[b]{overshoot:.2f}",
        f"[b]{other:.2f}",
        f"[b]{queued + overshoot + other:.2f}",
    )
    return table


def _mark(value: float, limit: float) -> str:
    return "[red]" if value > limit else ""


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=50.0, help="divide AWS durations by this")
    ap.add_argument("--parallel", type=int, default=4, help="parallelism of the measured run")
    ap.add_argument("--fresh-account", action="store_true", help="model a new ECS linked role")
    ap.add_argument(
        "--duration",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="override one AWS duration, e.g. eni_release=1200 (repeatable)",
    )
    ap.add_argument(
        "--prewarm-clients",
        action="store_true",
        help="create pcls's botocore clients before each timed command (shows their cost)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    ap.add_argument(
        "--typical-seconds",
        action="store_true",
        help="give the steps that wait their typical AWS duration (the TYPICAL table)",
    )
    ap.add_argument(
        "--faults",
        nargs="?",
        const="default",
        default=None,
        metavar="NAMES",
        help="time a cold up without and with AWS's errors right after writes (comma list of "
        f"{', '.join(FAULTS)}; default: all that pcls handles)",
    )
    args = ap.parse_args()
    durations = Durations()
    for item in args.duration:
        name, _, value = item.partition("=")
        if name not in durations.as_dict():
            ap.error(f"--duration: {name!r} is none of {', '.join(durations.as_dict())}")
        durations = replace(durations, **{name: float(value)})
    scale = args.scale
    console = Console(width=None if Console().is_terminal else 120)
    if args.faults is not None:
        fault_main(args, durations, console)
        return
    began = time.perf_counter()
    load_before = os.getloadavg()
    rounds = []
    for i in range(args.repeat):
        label = f"round {i + 1}/{args.repeat}: " if args.repeat > 1 else ""
        rounds.append(one_round(durations, scale, args, console, label))
    rows = {
        command: _median_row([r["results"][command] for r in rounds])
        for command in ("up", "teardown")
    }

    title = f"Cold up and teardown, full default stack, AWS durations / {scale:g}"
    if args.repeat > 1:
        title += f" (median of {args.repeat})"
    table = Table(title=title)
    cols = ("phase", "bound s", f"parallel {args.parallel} s", "ratio", "parallel 1 s", "ratio")
    for col in (*cols, "calls", "AWS-equivalent"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for command, r in rows.items():
        ok = "green" if r["ratio_parallel"] <= TARGET else "red"
        table.add_row(
            command,
            f"{r['bound_s']:.2f}",
            f"{r['wall_parallel_s']:.2f}",
            f"[{ok}]{r['ratio_parallel']:.2f}[/]",
            f"{r['wall_sequential_s']:.2f}",
            f"{r['ratio_sequential']:.2f}",
            str(r["calls_parallel"]),
            f"{r['aws_equivalent_parallel_min']:.1f} min (bound {r['aws_equivalent_bound_min']})",
        )
    console.print(table)

    model_table = Table(title="The model (real AWS seconds; scaled in the run)")
    model_table.add_column("transition")
    model_table.add_column("AWS s", justify="right")
    model_table.add_column("run s", justify="right")
    for key, value in durations.as_dict().items():
        model_table.add_row(key, f"{value:g}", f"{value / scale:.4f}")
    console.print(model_table)

    for command in ("up", "teardown"):
        r = rows[command]
        worst = max(rounds, key=lambda x: x["results"][command]["ratio_parallel"])
        w = worst["results"][command]
        console.print(
            f"{command}: bound {r['bound_s']:.2f} s = own work {r['own_time_s']:.2f} s "
            f"(calibration, all steps) on a waits-only path of {r['bound_waits_only_s']:.2f} s; "
            f"refused by the model: {w['refused_parallel'] or 'nothing'}"
        )
        console.print(
            chain_table(
                f"{command}, parallel {args.parallel}: the chain that finished last "
                f"(seconds; ratio {w['ratio_parallel']:.2f}, target {TARGET}"
                + (", the slowest round)" if args.repeat > 1 else ")"),
                worst["chains"][command]["parallel"],
            )
        )

    data = {
        "scale": scale,
        "durations": durations.as_dict(),
        "target": TARGET,
        "parallel": args.parallel,
        "repeat": args.repeat,
        "typical_seconds": TYPICAL if args.typical_seconds else None,
        "prewarm_clients": args.prewarm_clients,
        "results": rows,
        "rounds": rounds,
    }
    finish(console, "latency", data, load_before, began)


def one_round(
    durations: Durations, scale: float, args: argparse.Namespace, console: Console, label: str
) -> dict[str, Any]:
    """Calibration, parallel and sequential runs; the bound and the ratios."""
    console.print(f"{label}calibration (transitions 0 s, parallel 1)")
    cal = run_stack(durations.without_transitions(), scale, 1, args)
    console.print(f"{label}parallel {args.parallel}, the full model")
    par = run_stack(durations, scale, args.parallel, args)
    console.print(f"{label}parallel 1, the full model")
    seq = run_stack(durations, scale, 1, args)
    rows: dict[str, dict[str, Any]] = {}
    chains: dict[str, Any] = {}
    for command in ("up", "teardown"):
        deps = graph_of(cal[command])
        bound = critical_path(cal[command], deps, durations, scale)
        waits_only = critical_path(_without_own(cal[command]), deps, durations, scale).total
        p, s = par[command], seq[command]
        rows[command] = {
            "bound_s": round(bound.total, 3),
            "bound_waits_only_s": round(waits_only, 3),
            "own_time_s": round(sum(cal[command].own.values()) + cal[command].overhead, 3),
            "wall_parallel_s": round(p.wall, 3),
            "ratio_parallel": round(p.wall / bound.total, 3),
            "wall_sequential_s": round(s.wall, 3),
            "ratio_sequential": round(s.wall / bound.total, 3),
            "calls_parallel": p.reads + p.writes,
            "writes_parallel": p.writes,
            "calls_sequential": s.reads + s.writes,
            "calls_calibration": cal[command].reads + cal[command].writes,
            "refused_parallel": p.refused,
            "aws_equivalent_parallel_min": round(p.wall * scale / 60, 1),
            "aws_equivalent_sequential_min": round(s.wall * scale / 60, 1),
            "aws_equivalent_bound_min": round(bound.total * scale / 60, 1),
        }
        chains[command] = {
            "parallel": measured_chain(p, bound, deps),
            "sequential": measured_chain(s, bound, deps),
            "bound": {
                n: [round(bound.start[n], 3), round(bound.finish[n], 3)] for n in bound.finish
            },
        }
    return {
        "results": rows,
        "chains": chains,
        "runs": {
            "calibration": {k: v.to_dict() for k, v in cal.items()},
            "parallel": {k: v.to_dict() for k, v in par.items()},
            "sequential": {k: v.to_dict() for k, v in seq.items()},
        },
    }


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[-1])
    for key, value in rows[0].items():
        if isinstance(value, int | float):
            out[key] = round(statistics.median(r[key] for r in rows), 3)
    return out


def _without_own(cal: Phase) -> Phase:
    """The calibration with no own time: the bound from waits alone."""
    return Phase(**{**cal.__dict__, "own": dict.fromkeys(cal.own, 0.0), "overhead": 0.0})


if __name__ == "__main__":
    main()

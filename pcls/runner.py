"""Wires config, AWS, ledger, reporter and engine together for one command."""

from __future__ import annotations

import _thread
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pcls import config as config_mod
from pcls import sandbox, steps
from pcls.aws import Aws, is_read
from pcls.engine import DEFAULT_PARALLEL, Context, Engine, Patience, RunResult
from pcls.errors import (
    EXIT_AWS,
    EXIT_DRIFT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    PclsError,
)
from pcls.ledger import Ledger
from pcls.lock import STEP as LOCK_STEP
from pcls.lock import LockHeld, LockLost, RunLock, parameter
from pcls.steps.account import region_refusal
from pcls.ui import ConsoleReporter, Outcome, Reporter, confirm_stack_name, stderr_console

SANDBOX_PATIENCE = Patience(poll_min=0.2, poll_max=1.0)
# How a run waits for AWS when its caller names no patience. Module level so the test suite,
# whose in-process moto answers at once, can have its CLI runs poll at moto's pace.
AWS_PATIENCE = Patience()


@dataclass
class Options:
    config: Path
    sandbox: bool = False
    debug: bool = False
    parallel: int = DEFAULT_PARALLEL
    api_calls: bool = False


@dataclass
class Session:
    cfg: config_mod.Config
    aws: Aws
    ledger: Ledger
    ui: Reporter
    ctx: Context
    engine: Engine
    console: Console
    debug: bool = False


def sandbox_endpoint(state_dir: Path, domain: str, console: Console) -> str:
    """Start the sandbox when needed and make sure the registered domain's zone exists."""
    state, started = sandbox.start(state_dir)
    if started:
        console.print(f"[cyan]SANDBOX[/] started at {state['url']} (pid {state['pid']})")
    aws = Aws("us-east-1", endpoint_url=state["url"], sandbox=True)
    sandbox.ensure_zone(aws.client("route53"), domain)
    return str(state["url"])


def open_session(
    opts: Options,
    console: Console,
    ui: Reporter | None = None,
    patience: Patience | None = None,
    quiet: bool = False,
    hide: frozenset[Outcome] = frozenset(),
) -> Session:
    cfg = config_mod.load(opts.config)
    endpoint = None
    if opts.sandbox:
        endpoint = sandbox_endpoint(cfg.state_dir, cfg.stack.domain, console)
        patience = patience or SANDBOX_PATIENCE
    patience = patience or AWS_PATIENCE
    region = cfg.stack.region or ("us-east-1" if opts.sandbox else None)
    aws = Aws(region, endpoint_url=endpoint, sandbox=opts.sandbox)
    aws.explain_rejection = region_refusal
    ledger = Ledger(cfg.state_dir, cfg.stack.name)
    reporter = ui or ConsoleReporter(stderr_console() if quiet else console, quiet, hide)
    ctx = Context(cfg, aws, ledger, reporter, patience)
    engine = Engine(ctx, steps.build(cfg), parallel=opts.parallel)
    return Session(cfg, aws, ledger, reporter, ctx, engine, console, opts.debug)


def target_line(s: Session) -> str:
    ident = s.aws.identity()
    parts = [f"account {ident['account']}", f"region {s.aws.region}"]
    if s.aws.custom_endpoint:
        parts.append(f"endpoint {s.aws.endpoint}")
    if s.aws.sandbox:
        parts.append("SANDBOX")
    return "Target: " + " · ".join(parts) + f" · stack {s.cfg.stack.name}"


def bind(s: Session) -> None:
    """Before any write: check the ledger belongs to these credentials, then say where we go."""
    ident = s.aws.identity()
    s.ledger.check_target(ident["account"], s.aws.region)
    s.console.print(f"[bold]{target_line(s)}[/]")


def summary_line(result: RunResult) -> str:
    counts: dict[str, int] = {}
    for r in result.results.values():
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def finish(s: Session, result: RunResult, verb: str) -> int:
    s.ui.close()
    if result.interrupted:
        print(f"interrupted: the ledger is saved; run {verb} again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.failures:
        first = result.failures[0]
        if s.debug:
            print(first.trace, file=sys.stderr)
        print(f"error: {first.error}", file=sys.stderr)
        return getattr(first.error, "exit_code", EXIT_AWS)
    if result.remaining:
        print(
            "error: teardown finished but AWS still reports: " + ", ".join(result.remaining),
            file=sys.stderr,
        )
        return EXIT_AWS
    s.console.print(f"{verb}: {summary_line(result)}")
    return EXIT_OK


def do_up(s: Session, shared: RunLock | None = None) -> RunResult:
    """`up` under the local lock, and under `shared` (the stack's lock in AWS) when given:
    taken once every read-only check has passed, released however the run ends."""
    with s.ledger.locked():
        s.ledger.bind_target(s.aws.identity()["account"], s.aws.region)
        try:
            return s.engine.up(ready=shared.acquire if shared else None)
        finally:
            if shared:
                shared.release()


def do_teardown(s: Session, shared: RunLock | None = None) -> RunResult:
    with s.ledger.locked():
        s.ledger.check_target(s.aws.identity()["account"], s.aws.region)
        try:
            return s.engine.teardown(ready=shared.acquire if shared else None)
        finally:
            if shared:
                shared.release()


def run_lock(s: Session, verb: str) -> RunLock:
    """The stack's lock in AWS for one `up` or `teardown`; refuses now, with a read only, when
    another run holds it."""

    def stop_run(_why: str) -> None:
        # No longer ours: stop as Ctrl-C does (calls in flight finish, nothing new starts).
        s.ctx.cancel.set()
        _thread.interrupt_main()

    shared = RunLock(
        s.aws,
        s.cfg.stack.name,
        verb,
        on_lost=stop_run,
        notice=lambda text: print(f"note: {text}", file=sys.stderr),
    )
    shared.check()
    return shared


def locked_run(s: Session, shared: RunLock, verb: str, run: Callable[[], RunResult]) -> RunResult:
    """Run; when the lock was lost meanwhile, say so instead of reporting the run."""

    def lost() -> LockLost:
        s.ui.close()
        return LockLost(
            f"{shared.lost}; {verb} stopped at a safe point (the ledger is saved); run {verb} again"
        )

    try:
        result = run()
    except KeyboardInterrupt:
        if shared.lost:
            raise lost() from None
        raise
    if shared.lost:
        raise lost()
    return result


def note_lock(s: Session) -> None:
    """plan and status take no lock; they mention one that is held (a read, never fatal)."""
    try:
        held = RunLock(s.aws, s.cfg.stack.name, "status").read()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return
    if held is not None:
        print(
            f"note: stack {s.cfg.stack.name!r} is locked by {held.describe()} ({held.state()})",
            file=sys.stderr,
        )


def call_summary(s: Session) -> dict[str, Any]:
    """The run's AWS calls as --api-calls prints them; the run lock's own listed apart."""
    summary = s.aws.call_summary()
    own: Counter[str] = Counter()
    for (step, service, op), n in list(s.aws.step_calls.items()):
        if step == LOCK_STEP:
            own[f"{service}:{op}"] += n
    if not own:
        return summary
    calls = Counter(summary["calls"])
    calls.subtract(own)
    reads = sum(n for key, n in own.items() if is_read(key.split(":", 1)[1]))
    writes = sum(own.values()) - reads
    return {
        "reads": summary["reads"] - reads,
        "writes": summary["writes"] - writes,
        "total": summary["total"] - reads - writes,
        "calls": {k: n for k, n in sorted(calls.items()) if n > 0},
        "run_lock": {
            "parameter": parameter(s.cfg.stack.name),
            "reads": reads,
            "writes": writes,
            "calls": dict(sorted(own.items())),
        },
    }


def cmd_up(s: Session) -> int:
    bind(s)
    shared = run_lock(s, "up")
    return finish(s, locked_run(s, shared, "up", lambda: do_up(s, shared)), "up")


def cmd_plan(s: Session) -> int:
    ident = s.aws.identity()
    s.ledger.check_target(ident["account"], s.aws.region)
    s.console.print(f"[bold]{target_line(s)}[/] (plan: read-only)")
    note_lock(s)
    result = s.engine.plan()
    s.ui.close()
    if result.interrupted:
        return read_only_interrupted("plan")
    if result.failures:
        return finish(s, result, "plan")
    create = result.count(Outcome.WOULD_CREATE)
    update = result.count(Outcome.WOULD_UPDATE)
    same = result.count(Outcome.UNCHANGED)
    s.console.print(f"Plan: {create} to create, {update} to update, {same} unchanged.")
    from pcls.cost_report import plan_cost_line

    # Deployed: something pcls owns exists (a zone it merely uses does not count).
    found = s.ctx.outputs
    deployed = any(not res.retained for res in found.values())
    s.console.print(plan_cost_line(s.cfg, deployed, region=s.aws.region))
    return EXIT_OK


def read_only_interrupted(verb: str) -> int:
    print(
        f"interrupted: {verb} did not finish and shows nothing; run {verb} again", file=sys.stderr
    )
    return EXIT_INTERRUPTED


def status_table(result: RunResult) -> Table:
    table = Table(title="pcls status", show_lines=False)
    for col in ("step", "kind", "id", "state", "sync", "difference"):
        table.add_column(col, overflow="fold")
    style = {Outcome.IN_SYNC: "green", Outcome.DRIFTED: "yellow", Outcome.MISSING: "red"}
    for r in sorted(result.results.values(), key=lambda r: r.step):
        state = ", ".join(f"{k}={v}" for k, v in r.details.items() if not isinstance(v, list))
        table.add_row(
            r.step,
            r.kind,
            r.id or "-",
            state or "-",
            f"[{style.get(r.outcome, 'red')}]{r.outcome.value}[/]",
            escape("; ".join(r.drift) or (str(r.error) if r.error else "")),
        )
    return table


def cmd_status(s: Session, as_json: bool, compact: bool = False) -> int:
    ident = s.aws.identity()
    s.ledger.check_target(ident["account"], s.aws.region)
    note_lock(s)
    result = s.engine.status()
    s.ui.close()
    if result.interrupted:  # a partial walk is neither "in sync" nor drift
        return read_only_interrupted("status")
    ok = all(r.outcome is Outcome.IN_SYNC for r in result.results.values())
    if as_json:
        doc = {
            "stack": s.cfg.stack.name,
            "region": s.aws.region,
            "in_sync": ok,
            "resources": [r.to_dict() for r in result.results.values()],
        }
        print(json.dumps(doc, indent=2, default=str))
    elif compact:
        from pcls.compact import status_lines

        for line in status_lines(result, s.engine.steps, s.cfg.stack.name, s.aws.region):
            s.console.print(line, no_wrap=True)
    else:
        s.console.print(status_table(result))
        if line := sleep_line(result):
            s.console.print(line)
    if result.failures:
        if not as_json:
            print(f"error: {result.failures[0].error}", file=sys.stderr)
        return EXIT_AWS
    return EXIT_OK if ok else EXIT_DRIFT


def sleep_line(result: RunResult) -> str:
    """'asleep since …' when the stack sleeps or wakes (the wake function's status), else ''."""
    from pcls.steps.wake import STEP as WAKE_STEP

    r = result.results.get(WAKE_STEP)
    state = str(r.details.get("sleep", "")) if r else ""
    if state not in ("asleep", "waking"):
        return ""
    since = r.details.get("since") if r else ""
    line = f"stack {state}" + (f" since {since}" if since else "")
    if state == "asleep":
        return line + ": its services run no task; `pcls wake` or a visitor's click starts it"
    return line + ": its shards are starting; `pcls wake` follows the progress"


def confirm_teardown(s: Session, yes: bool) -> None:
    name = s.cfg.stack.name
    question = f"Delete every resource of stack {name!r}? Type the stack name to confirm: "
    confirm_stack_name(name, yes, "teardown", question, "deleting the stack", "nothing was deleted")


def cmd_teardown(s: Session, yes: bool) -> int:
    bind(s)
    shared = run_lock(s, "teardown")  # refused before the question when another run holds it
    confirm_teardown(s, yes)
    result = locked_run(s, shared, "teardown", lambda: do_teardown(s, shared))
    code = finish(s, result, "teardown")
    for line in result.left_alone:
        s.console.print(f"left alone (not this stack's): {escape(line)}")
    if code == EXIT_OK:
        s.console.print("verified: AWS reports no resource of the stack")
    return code


def confirm_unlock(s: Session, yes: bool) -> None:
    name = s.cfg.stack.name
    question = f"Remove the run lock of stack {name!r}? Type the stack name to confirm: "
    confirm_stack_name(name, yes, "unlock", question, "removing the run lock", "the lock was kept")


def cmd_adopt(s: Session, step: str, rid: str, yes: bool) -> int:
    """Claim a resource in a step's way (see pcls/adopt.py), under both locks."""
    from pcls.adopt import cmd_adopt as adopt

    bind(s)
    shared = run_lock(s, "adopt")
    with s.ledger.locked():
        s.ledger.bind_target(s.aws.identity()["account"], s.aws.region)
        try:
            return adopt(s, step, rid, yes, ready=shared.acquire)
        finally:
            shared.release()


def cmd_unlock(s: Session, yes: bool) -> int:
    """Show the stack's run lock in AWS and, once confirmed, remove it."""
    bind(s)
    shared = RunLock(s.aws, s.cfg.stack.name, "unlock")
    held = shared.read()
    if held is None:
        s.console.print(f"stack {s.cfg.stack.name} has no run lock ({shared.name})")
        return EXIT_OK
    s.console.print(f"run lock {shared.name}: {escape(held.describe())}; {held.state()}")
    if not held.expired() and not held.abandoned():
        s.console.print(
            "that run may still be going: once the lock is gone it stops at its next renewal"
        )
    confirm_unlock(s, yes)
    if not shared.remove(held):
        raise LockHeld(
            f"unlock: the run lock {shared.name} changed meanwhile; nothing was removed; "
            "run pcls unlock again to see it"
        )
    s.console.print(f"removed the run lock of stack {s.cfg.stack.name}")
    return EXIT_OK


# -- sleep and wake (docs/sleep.md) -----------------------------------------------------------


def _wake_function(s: Session) -> Any:
    """(clients, Env) of the stack's deployed wake function: what sleep and wake act on."""
    from types import SimpleNamespace

    from pcls.steps.wake import STEP as WAKE_STEP
    from pcls.steps.wake import deployed_env

    res = s.engine.steps[WAKE_STEP].find(s.ctx)
    conflicts = s.ctx.conflicts_of(WAKE_STEP)
    if conflicts:
        raise ConfigError(conflicts[0].message(s.cfg.stack.name))
    if res is None:
        raise ConfigError(
            f"stack {s.cfg.stack.name!r} has no wake function ({WAKE_STEP}); run pcls up first"
        )
    clients = SimpleNamespace(
        ecs=s.aws.client("ecs"),
        elbv2=s.aws.client("elbv2"),
        autoscaling=s.aws.client("application-autoscaling"),
        cloudwatch=s.aws.client("cloudwatch"),
    )
    try:
        env = deployed_env(res.attrs["config"])
    except ValueError as exc:
        raise PclsError(f"{WAKE_STEP}: its environment is damaged ({exc}); run pcls up") from None
    return clients, env


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _locked_sleep_run(s: Session, verb: str, run: Callable[[], int]) -> int:
    """Under both locks, as up: a sleep or wake never crosses an up or teardown."""
    bind(s)
    shared = run_lock(s, verb)
    with s.ledger.locked():
        shared.acquire()
        try:
            return run()
        finally:
            shared.release()
            s.ui.close()


def cmd_sleep(s: Session) -> int:
    """Put the stack to sleep now: visitors get the wake page, no task runs."""
    from pcls.wakefn import handler

    def run() -> int:
        clients, env = _wake_function(s)
        done = handler.sleep(clients, env, _now())
        changed = ", ".join(done["changed"]) or "nothing (it was asleep)"
        s.console.print(f"sleep: stack {s.cfg.stack.name} is asleep; changed: {changed}")
        if done.get("skipped"):
            s.console.print(f"not found (left alone): {', '.join(done['skipped'])}")
        return EXIT_OK

    return _locked_sleep_run(s, "sleep", run)


def cmd_wake(s: Session, timeout: float | None) -> int:
    """Wake the stack and follow it until the shards serve (or `timeout` seconds pass)."""
    from pcls.wakefn import handler

    step = "wake"
    bound = s.ctx.patience.service_stable if timeout is None else timeout

    def run() -> int:
        clients, env = _wake_function(s)
        done = handler.wake(clients, env, _now(), rate_limit=False)
        if done["state"] == handler.AWAKE:
            s.console.print(f"wake: stack {s.cfg.stack.name} is awake already")
            return EXIT_OK
        last: dict[str, Any] = {}

        def probe() -> tuple[bool, str]:
            p = handler.progress(clients, env, _now())
            last.update(p)
            routed = f"{p.get('healthy') or 0} of {p.get('wanted')} shards routed"
            return p["state"] == handler.AWAKE, f"{routed}, ready in about {p['ready_in']}s"

        s.ui.start(step, "waking")
        s.ctx.wait_for(
            step,
            "the shards to serve behind the routers",
            probe,
            timeout=bound,
            hint="the stack goes on waking by itself; `pcls status` shows it, `pcls wake` "
            "follows it again",
        )
        s.ui.finish(step, Outcome.UPDATED, f"awake: {last.get('healthy')} shards routed")
        s.console.print(f"wake: stack {s.cfg.stack.name} is awake")
        return EXIT_OK

    return _locked_sleep_run(s, "wake", run)

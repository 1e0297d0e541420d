"""The step engine: one dependency graph, four walks (up, plan, status, teardown).

A step finds its resource, creates it when missing, and reconciles drift. A resource is a
step's only when AWS shows it tagged pcls:stack=<stack> and pcls:step=<step>: the ledger id says
where to look first, never whose it is. A resource in the way (the name pcls would use, or the
ledger's id, but not this stack's) is a collision, and `up`/`plan` stop before any write.
`plan` and `status` walk the same graph with the AWS layer in read-only mode, so a write
there is impossible rather than merely avoided. Independent steps run
concurrently through graphlib's get_ready()/done() pair.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

import botocore.exceptions

from pcls.aws import STACK_TAG, STEP_TAG, Aws, describe_error, eventually, tag_list, tags_of
from pcls.config import Config
from pcls.errors import EXIT_USAGE, PclsError, StepError, WaitTimeout
from pcls.ledger import Ledger
from pcls.ui import Outcome, Reporter

DEFAULT_PARALLEL = 4


class Cancelled(Exception):
    """The run was interrupted; the step stopped at a safe point."""


class Collision(PclsError):
    """A resource pcls would use is not this stack's own: nothing is written."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Conflict:
    """A resource in a step's way: it has the step's name, or the ledger names it."""

    step: str
    id: str
    what: str  # e.g. "sns topic meet-alarms"
    owner: str  # "" untagged, else the pcls:stack it carries
    owner_step: str  # the pcls:step it carries ("" when untagged)
    from_ledger: bool
    tags: tuple[tuple[str, str], ...] = ()  # every tag it carries, as AWS showed them

    @property
    def foreign(self) -> bool:
        """Tagged for another stack: never ours, whatever the ledger says."""
        return bool(self.owner)

    def describe(self, stack: str) -> str:
        if not self.owner:
            tags = f"carries no {STACK_TAG} tag"
        elif self.owner == stack:
            tags = f"carries {STACK_TAG}={stack} but {STEP_TAG}={self.owner_step or '(none)'}"
        else:
            tags = f"belongs to stack {self.owner!r} ({STACK_TAG}={self.owner})"
        return f"{self.what} ({self.id}) {tags}"

    def message(self, stack: str) -> str:
        why = "the ledger names it" if self.from_ledger else "it has the name pcls would use"
        if self.foreign and self.owner != stack:
            way_out = "another stack's resource is never adopted: rename the stack (stack.name)"
        else:
            way_out = (
                "rename the stack (stack.name), remove that resource, or claim it with "
                f"`pcls adopt {self.step} {self.id}`"
            )
        return f"{self.step}: {self.describe(stack)}; {why}: {way_out}"


@dataclass
class Resource:
    """What a step found or made. Only `id` and `ledger` are written to the ledger."""

    id: str
    attrs: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    state: str = ""
    retained: str = ""  # why teardown must leave it alone (e.g. a zone pcls did not create)


@dataclass
class Patience:
    """How long to wait for AWS, and how often to look. Tests and the sandbox shrink these."""

    poll_min: float = 2.0
    poll_max: float = 10.0  # overshoot past a state change stays a small share of the wait
    dependency_release: float = 1200.0  # ENIs linger 5-20 min after Fargate/ALB owners go
    iam_propagation: float = 120.0
    service_stable: float = 900.0
    resource_gone: float = 600.0
    # A scalable target with an update pending (ConcurrentUpdateException): seconds on AWS.
    concurrent_update: float = 60.0
    # Reads lag behind writes: a role just deleted is still answered by GetRole, a parameter
    # just put is not yet in DescribeParameters. None: as long as iam_propagation (IAM is the
    # slowest to catch up), so whatever shrinks that bound shrinks this one too.
    read_lag: float | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    @property
    def read_settle(self) -> float:
        """The bound for a read to catch up with a write (`read_lag`, else iam_propagation)."""
        return self.iam_propagation if self.read_lag is None else self.read_lag


class Step:
    """One resource (or a tight family). Subclasses set name/kind/depends_on and override."""

    name: str = ""
    kind: str = ""
    depends_on: tuple[str, ...] = ()
    # Rough duration on real AWS: lets the engine start the longest chains first.
    typical_seconds: float = 1.0
    # What a ledger id of this step looks like (fullmatch); anything else is a damaged ledger.
    id_pattern: str = ""

    def preflight(self, ctx: Context) -> None:
        """Read-only checks that must pass before anything is written."""

    def find(self, ctx: Context) -> Resource | None:
        """Locate the resource by ledger id or tags. Must not rely on dependencies' outputs."""
        raise NotImplementedError

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        """Differences between desired and actual, as short human-readable lines."""
        return []

    def create(self, ctx: Context) -> Resource:
        raise NotImplementedError

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        """Repair what drift() reported."""

    def delete(self, ctx: Context, res: Resource) -> None:
        raise NotImplementedError

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        """Live health for `status` (read-only)."""
        return {}

    def tag(self, ctx: Context, res: Resource) -> None:
        """Write this step's tags onto `res` (what `pcls adopt` does once confirmed)."""
        raise PclsError(f"{self.name}: a {self.kind} cannot be adopted", EXIT_USAGE)

    def strays(self, ctx: Context) -> dict[str, str]:
        """id -> description of every resource of this step's kind that carries the stack's tag.

        Asked only after a teardown, when nothing should remain: catches what no step of the
        current config owns any more (e.g. a subnet of an AZ since dropped from the config).
        """
        return {}


class Context:
    """What steps see: config, AWS, ledger, reporter, and the outputs of finished steps."""

    def __init__(
        self,
        cfg: Config,
        aws: Aws,
        ledger: Ledger,
        ui: Reporter,
        patience: Patience | None = None,
    ) -> None:
        self.cfg = cfg
        self.aws = aws
        self.ledger = ledger
        self.ui = ui
        self.patience = patience or Patience()
        self.outputs: dict[str, Resource] = {}
        self.cancel = threading.Event()
        self.mode = ""
        # step -> the id `pcls adopt` claims for it (tags not yet written)
        self.adopting: dict[str, str] = {}
        self.conflicts: dict[tuple[str, str], Conflict] = {}
        self._conflict_lock = threading.Lock()

    @property
    def stack(self) -> str:
        return self.cfg.stack.name

    def out(self, step: str) -> Resource:
        try:
            return self.outputs[step]
        except KeyError:
            raise PclsError(f"{step}: not available (it has not been found or created)") from None

    def tags(self, step: str) -> list[dict[str, str]]:
        return tag_list(self.stack, step, self.cfg.tags)

    def tag_dict(self, step: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.tags(step)}

    def progress(self, step: str, text: str) -> None:
        self.ui.progress(step, text)

    def owns(self, step: str, tags: Any) -> bool:
        """True when the tags (list or dict) say this stack's `step` made the resource."""
        have = tags if isinstance(tags, dict) else tags_of(tags)
        return have.get(STACK_TAG) == self.stack and have.get(STEP_TAG) == step

    def claims(self, step: str, rid: str, tags: Any) -> bool:
        """The ownership rule: tagged for this stack and step, or being adopted by the operator.

        Anything else with the step's name, or the ledger's id, is recorded as a collision.
        """
        if self.owns(step, tags):
            return True
        have = tags if isinstance(tags, dict) else tags_of(tags)
        other = have.get(STACK_TAG)
        return self.adopting.get(step) == rid and other in (None, self.stack)

    def collision(self, step: str, rid: str, what: str, tags: Any) -> None:
        """Record that `rid` is in `step`'s way (a name pcls would use, or the ledger's id)."""
        have = tags if isinstance(tags, dict) else tags_of(tags)
        conflict = Conflict(
            step,
            str(rid),
            what,
            owner=have.get(STACK_TAG, ""),
            owner_step=have.get(STEP_TAG, ""),
            from_ledger=self.ledger.id(step) == rid,
            tags=tuple(sorted(have.items())),
        )
        with self._conflict_lock:
            self.conflicts[(step, conflict.id)] = conflict

    def conflicts_of(self, step: str) -> list[Conflict]:
        with self._conflict_lock:
            return [c for (s, _), c in sorted(self.conflicts.items()) if s == step]

    def pick(
        self,
        step: str,
        items: Iterable[dict[str, Any]],
        id_key: str,
        tags_key: str = "Tags",
        *,
        what: str = "",
        name: Callable[[dict[str, Any]], str | None] | None = None,
        want: str | None = None,
    ) -> dict[str, Any] | None:
        """The item this step owns, by tags; the ledger id only breaks a tie.

        An untagged or foreign item the ledger names, or whose `name(item)` equals `want` (the
        name pcls would create), is recorded as a collision and never returned.
        """
        items = list(items)
        ledger_id = self.ledger.id(step)
        mine = [i for i in items if self.claims(step, str(i.get(id_key)), i.get(tags_key))]
        for item in items:
            if item in mine:
                continue
            named = want is not None and name is not None and name(item) == want
            if named or item.get(id_key) == ledger_id:
                label = what or step
                self.collision(step, str(item.get(id_key)), label, item.get(tags_key))
        hinted = [i for i in mine if ledger_id and i.get(id_key) == ledger_id]
        return hinted[0] if hinted else self.unique(step, mine, id_key)

    def unique(self, step: str, matches: Sequence[dict[str, Any]], id_key: str) -> Any:
        if len(matches) > 1:
            ids = ", ".join(str(m.get(id_key)) for m in matches)
            raise PclsError(
                f"{step}: {len(matches)} resources carry pcls:stack={self.stack} "
                f"pcls:step={step} ({ids}); delete the extra one, then run again"
            )
        return matches[0] if matches else None

    def wait_for(
        self,
        step: str,
        what: str,
        probe: Callable[[], tuple[bool, str]],
        timeout: float,
        hint: str = "",
    ) -> None:
        """Poll the AWS state `probe` reads, backing off, showing what it waits for."""
        clock = self.patience.clock
        start = clock()
        delay = self.patience.poll_min
        while True:
            if self.cancel.is_set():
                raise Cancelled(step)
            done, state = probe()
            if done:
                return
            elapsed = clock() - start
            if elapsed >= timeout:
                raise WaitTimeout(
                    f"{step}: gave up waiting for {what} after {timeout:.0f}s"
                    + (f" (last state: {state})" if state else "")
                    + (f"; {hint}" if hint else "")
                )
            self.progress(step, f"waiting for {what}" + (f": {state}" if state else ""))
            self.patience.sleep(min(delay, max(timeout - elapsed, 0.01)))
            delay = min(delay * 1.5, self.patience.poll_max)

    def retry_while(
        self,
        step: str,
        fn: Callable[[], Any],
        *,
        codes: Sequence[str] = (),
        messages: Sequence[str] = (),
        timeout: float,
        why: str,
        blocker: Callable[[], str] | None = None,
    ) -> Any:
        """Retry one call while AWS says it is blocked; name the blocker; fail clearly after."""

        def on_retry(text: str) -> None:
            if self.cancel.is_set():
                raise Cancelled(step)
            extra = blocker() if blocker else ""
            self.progress(step, f"{why}: {text}" + (f"; blocked by {extra}" if extra else ""))

        try:
            return eventually(
                fn,
                codes=codes,
                messages=messages,
                timeout=timeout,
                on_retry=on_retry,
                sleep=self.patience.sleep,
            )
        except botocore.exceptions.ClientError as exc:
            from pcls.aws import error_code, error_message

            if error_code(exc) in codes or any(m in error_message(exc) for m in messages):
                extra = blocker() if blocker else ""
                raise StepError(
                    step,
                    exc.operation_name,
                    f"{describe_error(exc)} (still {why} after {timeout:.0f}s"
                    + (f"; blocked by {extra}" if extra else "")
                    + "); run again once it is released",
                ) from exc
            raise


@dataclass
class StepResult:
    step: str
    kind: str
    outcome: Outcome
    id: str = ""
    detail: str = ""
    drift: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    trace: str = ""
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "outcome": self.outcome.value,
            "id": self.id,
            "drift": self.drift,
            "details": self.details,
            "error": str(self.error) if self.error else None,
        }


@dataclass
class RunResult:
    mode: str
    results: dict[str, StepResult] = field(default_factory=dict)
    remaining: list[str] = field(default_factory=list)
    interrupted: bool = False
    # Resources in the stack's way that teardown left alone (not this stack's).
    left_alone: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[StepResult]:
        return [r for r in self.results.values() if r.outcome is Outcome.FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.remaining and not self.interrupted

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for r in self.results.values() if r.outcome in outcomes)


class Engine:
    def __init__(
        self, ctx: Context, steps: Sequence[Step], parallel: int = DEFAULT_PARALLEL
    ) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate step names in {names}")
        known = set(names)
        for s in steps:
            unknown = set(s.depends_on) - known
            if unknown:
                raise ValueError(f"{s.name} depends on unknown steps {sorted(unknown)}")
        self.ctx = ctx
        self.steps = {s.name: s for s in steps}
        self.parallel = max(1, parallel)

    # -- public walks ------------------------------------------------------------------------

    def up(self, ready: Callable[[], None] | None = None) -> RunResult:
        """`ready` runs once every check has passed, before the first write (the run lock)."""
        self.ctx.mode = "up"
        self._preflight()
        self.survey()
        if ready:
            ready()
        return self._walk("up", self._up_one)

    def plan(self) -> RunResult:
        self.ctx.mode = "plan"
        self.ctx.aws.read_only = True
        self._preflight()
        self.survey()
        return self._walk("plan", self._plan_one)

    def status(self) -> RunResult:
        self.ctx.mode = "status"
        self.ctx.aws.read_only = True
        self.survey(names_fatal=False)
        return self._walk("status", self._status_one)

    def teardown(self, ready: Callable[[], None] | None = None) -> RunResult:
        self.ctx.mode = "teardown"
        conflicts = self.survey(names_fatal=False)
        if ready:
            ready()
        result = self._walk("teardown", self._teardown_one, reverse=True)
        result.left_alone = [c.message(self.ctx.stack) for c in conflicts]
        if result.ok:
            deleted = {n for n, r in result.results.items() if r.outcome is Outcome.DELETED}
            result.remaining = self.leftovers(deleted)
        return result

    def survey(self, names_fatal: bool = True) -> list[Conflict]:
        """Find every step's resource before anything is written; stop on what is in the way.

        A damaged ledger id, or one naming another stack's resource, is refused in every
        command. A resource with a name pcls would use that is not this stack's stops up and
        plan (`names_fatal`); status shows it and teardown leaves it alone.
        """
        ctx = self.ctx
        self._check_ledger_ids()
        read_only = ctx.aws.read_only
        ctx.aws.read_only = True  # finding never writes, whatever the mode
        try:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="pcls-find") as pool:
                errors = [e for e in pool.map(self._find_quietly, self.steps.values()) if e]
        finally:
            ctx.aws.read_only = read_only
        if errors and ctx.mode == "up":
            # Ownership unknown is no ground to write on; plan and status report it per step.
            raise errors[0]
        found = list(ctx.conflicts.values())
        foreign = [c for c in found if c.from_ledger and c.foreign and c.owner != ctx.stack]
        if foreign:
            c = foreign[0]
            ctx.ledger.reject(c.step, f"{c.describe(ctx.stack)}, not this stack's: refused")
        if names_fatal and found:
            raise Collision("\n".join(c.message(ctx.stack) for c in found))
        return found

    def _find_quietly(self, step: Step) -> BaseException | None:
        """step.find for the survey; a failure comes back as the error the walk would show."""
        ctx = self.ctx
        ctx.aws.current_step = step.name
        try:
            step.find(ctx)
        except Exception as exc:
            return self._failure(step, exc).error
        finally:
            ctx.aws.current_step = ""
        return None

    def _check_ledger_ids(self) -> None:
        import re

        for step in self.steps.values():
            rid = self.ctx.ledger.id(step.name)
            if rid is None or not step.id_pattern:
                continue
            if not isinstance(rid, str) or not re.fullmatch(step.id_pattern, rid):
                self.ctx.ledger.reject(
                    step.name, f"id {rid!r} is not a {step.kind} id ({step.id_pattern})"
                )

    def _found(self, step: Step) -> Resource | None:
        """step.find, then stop if what it met on the way is not this stack's."""
        res = step.find(self.ctx)
        conflicts = self.ctx.conflicts_of(step.name)
        if conflicts and self.ctx.mode in ("up", "plan"):
            raise Collision(conflicts[0].message(self.ctx.stack))
        return res

    def leftovers(self, deleted: set[str] | None = None) -> list[str]:
        """Every resource of the stack AWS still reports, by fresh per-service describes.

        Reads right after deletes lag on AWS (IAM GetRole, SSM DescribeParameters, SNS
        ListTopics still show what is gone for a while), so the steps that deleted something
        in this run (`deleted`; None: every step) and still show something are asked again,
        backing off, for up to `patience.read_settle`; only what is still there then is
        reported. What a step did not delete (a stray it leaves alone) cannot lag: reported at
        once.
        """
        ctx = self.ctx
        todo = list(self.steps.values())
        found: dict[str, dict[str, str]] = {}
        strays: dict[str, dict[str, str]] = {}
        first = [True]

        def look() -> tuple[bool, str]:
            ctx.aws.forget_cache()
            for step in todo:
                res = step.find(ctx)
                found[step.name] = {}
                if res is not None and not res.retained:
                    found[step.name][res.id] = f"{step.name} ({step.kind} {res.id})"
                strays[step.name] = step.strays(ctx)
            todo[:] = [
                s
                for s in todo
                if (found[s.name] or strays[s.name]) and (deleted is None or s.name in deleted)
            ]
            names = ", ".join(s.name for s in todo)
            if todo and first[0]:
                ctx.ui.info(
                    f"teardown: AWS still lists {names}; reads lag behind deletes, looking "
                    f"again for up to {ctx.patience.read_settle:.0f}s"
                )
            first[0] = False
            return not todo, f"still listed: {names}" if todo else ""

        with contextlib.suppress(WaitTimeout):  # still there after the bound: reported
            ctx.wait_for(
                "teardown",
                "AWS to stop listing what was deleted",
                look,
                timeout=ctx.patience.read_settle,
            )
        left: dict[str, str] = {}
        for step in self.steps.values():
            left.update(found.get(step.name, {}))
        for step in self.steps.values():
            for rid, text in strays.get(step.name, {}).items():
                left.setdefault(rid, text)
        return list(left.values())

    # -- per-step actions --------------------------------------------------------------------

    def _preflight(self) -> None:
        for step in self.steps.values():
            step.preflight(self.ctx)

    def _record(self, step: Step, res: Resource) -> None:
        self.ctx.ledger.record(step.name, {"id": res.id, **res.ledger})

    def _up_one(self, step: Step) -> StepResult:
        ctx = self.ctx
        ctx.ui.start(step.name, "checking")
        res = self._found(step)
        created = res is None
        if res is None:
            ctx.progress(step.name, "creating")
            res = step.create(ctx)
        if not res.retained:
            self._record(step, res)
        ctx.outputs[step.name] = res
        drift = step.drift(ctx, res)
        if drift:
            if not created:
                ctx.progress(step.name, "repairing: " + "; ".join(drift))
            step.update(ctx, res, drift)
            if not res.retained:
                self._record(step, res)
        if created:
            return StepResult(step.name, step.kind, Outcome.CREATED, res.id, res.id)
        if drift:
            detail = f"{res.id}: " + "; ".join(drift)
            return StepResult(step.name, step.kind, Outcome.UPDATED, res.id, detail, drift)
        return StepResult(step.name, step.kind, Outcome.UNCHANGED, res.id, res.id)

    def _read_one(self, step: Step) -> tuple[Resource | None, list[str], list[str]]:
        """(resource, drift, missing dependencies) without writing anything."""
        ctx = self.ctx
        ctx.ui.start(step.name, "checking")
        res = self._found(step)
        missing = [d for d in step.depends_on if d not in ctx.outputs]
        if res is None:
            return None, [], missing
        ctx.outputs[step.name] = res
        if missing:
            return res, [f"depends on missing {', '.join(missing)}"], missing
        return res, step.drift(ctx, res), missing

    def _plan_one(self, step: Step) -> StepResult:
        res, drift, missing = self._read_one(step)
        if res is None:
            detail = f"after {', '.join(missing)}" if missing else ""
            return StepResult(step.name, step.kind, Outcome.WOULD_CREATE, "", detail)
        if drift:
            detail = f"{res.id}: " + "; ".join(drift)
            return StepResult(step.name, step.kind, Outcome.WOULD_UPDATE, res.id, detail, drift)
        return StepResult(step.name, step.kind, Outcome.UNCHANGED, res.id, res.id)

    def _status_one(self, step: Step) -> StepResult:
        res, drift, _ = self._read_one(step)
        if res is None:
            conflicts = self.ctx.conflicts_of(step.name)
            detail = conflicts[0].message(self.ctx.stack) if conflicts else "not found"
            return StepResult(step.name, step.kind, Outcome.MISSING, "", detail)
        details = step.details(self.ctx, res)
        if res.state and res.state not in details.values():
            details.setdefault("state", res.state)
        outcome = Outcome.DRIFTED if drift else Outcome.IN_SYNC
        detail = f"{res.id}: " + "; ".join(drift) if drift else res.id
        return StepResult(step.name, step.kind, outcome, res.id, detail, drift, details)

    def _teardown_one(self, step: Step) -> StepResult:
        ctx = self.ctx
        ctx.ui.start(step.name, "checking")
        res = step.find(ctx)
        if res is None:
            ctx.ledger.forget(step.name)
            return StepResult(step.name, step.kind, Outcome.ABSENT, "", "")
        if res.retained:
            ctx.ledger.forget(step.name)
            return StepResult(step.name, step.kind, Outcome.KEPT, res.id, res.retained)
        ctx.progress(step.name, "deleting")
        step.delete(ctx, res)
        ctx.ledger.forget(step.name)
        return StepResult(step.name, step.kind, Outcome.DELETED, res.id, res.id)

    # -- graph walk --------------------------------------------------------------------------

    def _walk(
        self, mode: str, action: Callable[[Step], StepResult], reverse: bool = False
    ) -> RunResult:
        ctx = self.ctx
        graph: dict[str, set[str]] = {name: set() for name in self.steps}
        for name, step in self.steps.items():
            for dep in step.depends_on:
                if reverse:
                    graph[dep].add(name)
                else:
                    graph[name].add(dep)
        sorter = TopologicalSorter(graph)
        sorter.prepare()
        rank = self._ranks(graph)
        ready: list[tuple[float, str]] = []
        result = RunResult(mode)
        blocked: set[str] = set()
        stop = False
        running: dict[Future[StepResult], tuple[str, float]] = {}

        def run(name: str) -> StepResult:
            started = time.monotonic()
            step = self.steps[name]
            ctx.aws.current_step = name
            try:
                res = action(step)
            except BaseException as exc:
                res = self._failure(step, exc)
            finally:
                ctx.aws.current_step = ""
            res.elapsed = time.monotonic() - started
            ctx.ui.finish(name, res.outcome, res.detail)
            return res

        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="pcls-step")
        try:
            while sorter.is_active():
                skipped = False
                if not stop:
                    for name in sorter.get_ready():
                        if graph[name] & blocked:
                            dep = sorted(graph[name] & blocked)[0]
                            r = StepResult(name, self.steps[name].kind, Outcome.SKIPPED)
                            r.detail = f"{dep} did not finish"
                            result.results[name] = r
                            ctx.ui.finish(name, r.outcome, r.detail)
                            blocked.add(name)
                            sorter.done(name)
                            skipped = True
                            continue
                        heapq.heappush(ready, (-rank[name], name))
                    # Fill free workers with the steps that head the longest remaining chains.
                    while ready and len(running) < self.parallel:
                        _, name = heapq.heappop(ready)
                        running[pool.submit(run, name)] = (name, time.monotonic())
                if not running:
                    if stop or not (ready or skipped):
                        break
                    continue
                try:
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Let in-flight calls finish; start nothing new; the ledger stays current.
                    stop = True
                    result.interrupted = True
                    ctx.cancel.set()
                    continue
                for fut in done:
                    name, _ = running.pop(fut)
                    r = fut.result()
                    result.results[name] = r
                    if r.outcome in (Outcome.FAILED, Outcome.CANCELLED):
                        blocked.add(name)
                        if r.outcome is Outcome.CANCELLED or mode in ("up", "teardown"):
                            stop = True
                    sorter.done(name)
        except KeyboardInterrupt:
            # Interrupted outside the wait (e.g. while a worker starts): steps in flight stop at
            # their next safe point rather than wait out their timeouts.
            ctx.cancel.set()
            raise
        finally:
            pool.shutdown(wait=True)
        for name, step in self.steps.items():
            if name not in result.results:
                outcome = Outcome.CANCELLED if result.interrupted else Outcome.SKIPPED
                detail = "interrupted" if result.interrupted else "not started after a failure"
                result.results[name] = StepResult(name, step.kind, outcome, detail=detail)
        return result

    def _ranks(self, graph: dict[str, set[str]]) -> dict[str, float]:
        """Expected time from a step's start to the end of the longest chain behind it."""
        after: dict[str, set[str]] = {n: set() for n in graph}
        for name, before in graph.items():
            for b in before:
                after[b].add(name)
        rank: dict[str, float] = {}
        for name in reversed(list(TopologicalSorter(graph).static_order())):
            tail = max((rank[a] for a in after[name]), default=0.0)
            rank[name] = self.steps[name].typical_seconds + tail
        return rank

    def _failure(self, step: Step, exc: BaseException) -> StepResult:
        if isinstance(exc, Cancelled | KeyboardInterrupt):
            return StepResult(step.name, step.kind, Outcome.CANCELLED, detail="interrupted")
        if isinstance(exc, botocore.exceptions.ClientError):
            err: BaseException = StepError(step.name, exc.operation_name, describe_error(exc))
        elif isinstance(exc, StepError | WaitTimeout):
            err = exc
        elif isinstance(exc, PclsError):
            text = str(exc)
            err = exc if text.startswith(step.name + ":") else PclsError(f"{step.name}: {text}")
            err.exit_code = exc.exit_code  # type: ignore[attr-defined]
        elif isinstance(exc, botocore.exceptions.BotoCoreError):
            err = StepError(step.name, "call", str(exc))
        else:
            err = StepError(step.name, "run", f"{type(exc).__name__}: {exc}")
        r = StepResult(step.name, step.kind, Outcome.FAILED, detail=str(err), error=err)
        r.trace = "".join(traceback.format_exception(exc))
        return r

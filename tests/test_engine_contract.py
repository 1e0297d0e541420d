"""The engine's contract through the step API, with steps that hold no AWS resource: what each
walk reports per step, what it writes to the ledger, how it stops, and the Context helpers steps
rely on (ownership, collisions, waits, retries)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from pcls import config
from pcls.aws import STACK_TAG, STEP_TAG, Aws
from pcls.engine import (
    Cancelled,
    Collision,
    Conflict,
    Context,
    Engine,
    Patience,
    Resource,
    RunResult,
    Step,
    StepResult,
)
from pcls.errors import ConfigError, PclsError, StepError, WaitTimeout
from pcls.ledger import Ledger
from pcls.ui import Outcome, RecordingReporter

CFG = config.loads(
    '[stack]\nname = "tt"\ndomain = "t.example.com"\nregion = "eu-central-1"\n'
    '[tags]\nteam = "video"\n'
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 4))
        self.now += s

    def __call__(self) -> float:
        return self.now


class Thing(Step):
    """A step whose resource lives in a dict: `world[name]` is its Resource or absent."""

    kind = "test thing"

    def __init__(self, name: str, world: dict[str, Resource], deps: tuple[str, ...] = (),
                 *, drift: list[str] | None = None, fail: BaseException | None = None,
                 where: str = "create") -> None:  # fmt: skip
        self.name = name
        self.depends_on = deps
        self.world = world
        self.drifts = drift or []
        self.fail = fail
        self.where = where
        self.calls: list[str] = []

    def _maybe_fail(self, where: str) -> None:
        self.calls.append(where)
        if self.fail is not None and self.where == where:
            raise self.fail

    def preflight(self, ctx: Context) -> None:
        self._maybe_fail("preflight")

    def find(self, ctx: Context) -> Resource | None:
        self._maybe_fail("find")
        return self.world.get(self.name)

    def create(self, ctx: Context) -> Resource:
        self._maybe_fail("create")
        res = Resource(f"id-{self.name}", ledger={"extra": 1})
        self.world[self.name] = res
        return res

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        self._maybe_fail("drift")
        return list(self.drifts)

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        self._maybe_fail("update")
        self.drifts = []

    def delete(self, ctx: Context, res: Resource) -> None:
        self._maybe_fail("delete")
        del self.world[self.name]

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"size": 3}


@pytest.fixture
def env(tmp_path: Path):
    def build(steps: list[Step], parallel: int = 4, patience: Patience | None = None) -> Engine:
        ctx = Context(CFG, Aws("eu-central-1"), Ledger(tmp_path, "tt"), RecordingReporter(),
                      patience)  # fmt: skip
        return Engine(ctx, steps, parallel=parallel)

    return build


def outcomes(result: RunResult) -> dict[str, tuple[str, str, str]]:
    return {n: (r.outcome.value, r.id, r.detail) for n, r in sorted(result.results.items())}


# -- the walks -------------------------------------------------------------------------------


def test_up_creates_records_repairs_and_leaves_alone(env, tmp_path: Path) -> None:
    world = {"b": Resource("id-b"), "c": Resource("id-c")}
    steps = [Thing("a", world), Thing("b", world, drift=["size 2 -> 3"]), Thing("c", world)]
    engine = env(steps)
    order: list[str] = []
    result = engine.up(ready=lambda: order.append("ready"))
    assert order == ["ready"]
    assert engine.ctx.mode == "up"
    assert outcomes(result) == {
        "a": ("created", "id-a", "id-a"),
        "b": ("updated", "id-b", "id-b: size 2 -> 3"),
        "c": ("unchanged", "id-c", "id-c"),
    }
    assert result.results["b"].drift == ["size 2 -> 3"]
    assert result.ok and result.count(Outcome.CREATED, Outcome.UPDATED) == 2
    assert Ledger(tmp_path, "tt").steps == {
        "a": {"id": "id-a", "extra": 1},
        "b": {"id": "id-b"},
        "c": {"id": "id-c"},
    }
    assert steps[0].calls == ["preflight", "find", "find", "create", "drift"]
    assert engine.ctx.outputs["a"] is world["a"]
    events = engine.ctx.ui.events
    assert ("progress", "b", "repairing: size 2 -> 3") in events
    assert ("progress", "a", "creating") in events
    assert ("finish", "a", "created", "id-a") in events


def test_a_retained_resource_is_never_recorded(env, tmp_path: Path) -> None:
    world = {"z": Resource("Z1", retained="not made by pcls")}
    result = env([Thing("z", world, drift=["x"])]).up()
    assert result.results["z"].outcome is Outcome.UPDATED
    assert not (tmp_path / "tt.json").exists()
    result = env([Thing("z", world)]).teardown()
    assert outcomes(result) == {"z": ("kept", "Z1", "not made by pcls")}
    assert "z" in world


def test_plan_and_status_say_what_up_would_do_and_write_nothing(env, tmp_path: Path) -> None:
    world = {"b": Resource("id-b", state="active"), "c": Resource("id-c")}
    steps = [Thing("a", world), Thing("b", world, ("a",), drift=["port 80"]), Thing("c", world),
             Thing("d", world, ("a", "c"))]  # fmt: skip
    engine = env(steps)
    result = engine.plan()
    assert engine.ctx.aws.read_only and engine.ctx.mode == "plan"
    assert outcomes(result) == {
        "a": ("would create", "", ""),
        "b": ("would update", "id-b", "id-b: depends on missing a"),
        "c": ("unchanged", "id-c", "id-c"),
        "d": ("would create", "", "after a"),
    }
    assert result.results["b"].drift == ["depends on missing a"]
    world["a"] = Resource("id-a")
    result = env(steps).status()
    assert outcomes(result) == {
        "a": ("in sync", "id-a", "id-a"),
        "b": ("drifted", "id-b", "id-b: port 80"),
        "c": ("in sync", "id-c", "id-c"),
        "d": ("missing", "", "not found"),
    }
    assert result.results["b"].details == {"size": 3, "state": "active"}
    assert result.results["a"].details == {"size": 3}
    assert result.results["b"].to_dict() == {
        "step": "b",
        "kind": "test thing",
        "outcome": "drifted",
        "id": "id-b",
        "drift": ["port 80"],
        "details": {"size": 3, "state": "active"},
        "error": None,
    }
    plan = env(steps).plan()
    assert outcomes(plan)["b"] == ("would update", "id-b", "id-b: port 80")
    assert not (tmp_path / "tt.json").exists()
    assert [c for s in steps for c in s.calls if c in ("create", "update", "delete")] == []


def test_teardown_deletes_in_reverse_forgets_and_reports(env, tmp_path: Path) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world), Thing("b", world, ("a",))]
    assert env(steps).up().ok
    order: list[str] = []

    class Recording(Thing):
        def delete(self, ctx: Context, res: Resource) -> None:
            order.append(self.name)
            super().delete(ctx, res)

    steps = [Recording("a", world), Recording("b", world, ("a",))]
    engine = env(steps)
    result = engine.teardown(ready=lambda: order.append("ready"))
    assert order == ["ready", "b", "a"]
    assert outcomes(result) == {"a": ("deleted", "id-a", "id-a"), "b": ("deleted", "id-b", "id-b")}
    assert result.ok and result.remaining == [] and result.left_alone == []
    assert Ledger(tmp_path, "tt").steps == {}
    assert outcomes(env(steps).teardown()) == {"a": ("absent", "", ""), "b": ("absent", "", "")}


def test_teardown_reports_what_aws_still_lists(env) -> None:
    clock = Clock()
    patience = Patience(iam_propagation=1.0, poll_min=0.25, poll_max=0.5, sleep=clock.sleep,
                        clock=clock)  # fmt: skip
    world: dict[str, Resource] = {"a": Resource("id-a")}

    class Stuck(Thing):
        def delete(self, ctx: Context, res: Resource) -> None:
            pass  # the delete is lost: AWS still lists it

        def strays(self, ctx: Context) -> dict[str, str]:
            return {"id-x": "a (test thing id-x, of no step now)", "id-a": "dup"}

    engine = env([Stuck("a", world), Thing("b", world)], patience=patience)
    result = engine.teardown()
    assert result.remaining == ["a (test thing id-a)", "a (test thing id-x, of no step now)"]
    assert not result.ok
    infos = [e for e in engine.ctx.ui.events if e[0] == "info"]
    assert infos == [("info", "teardown: AWS still lists a; reads lag behind deletes, looking "
                      "again for up to 1s")]  # fmt: skip
    assert clock.sleeps == [0.25, 0.375, 0.375]


def test_leftovers_settle_once_aws_stops_listing(env) -> None:
    clock = Clock()
    patience = Patience(read_lag=5.0, poll_min=1.0, sleep=clock.sleep, clock=clock)
    assert patience.read_settle == 5.0
    assert Patience(iam_propagation=7.0).read_settle == 7.0
    world: dict[str, Resource] = {"a": Resource("id-a")}
    seen = [0]

    class Lagging(Thing):
        def delete(self, ctx: Context, res: Resource) -> None:
            pass

        def find(self, ctx: Context) -> Resource | None:
            if ctx.mode == "teardown" and "a" in self.world:
                seen[0] += 1
                if seen[0] > 3:  # survey, the walk, then the first look after: gone after that
                    del self.world["a"]
            return super().find(ctx)

    result = env([Lagging("a", world)], patience=patience).teardown()
    assert result.ok and result.remaining == []
    assert clock.sleeps == [1.0]


def test_failures_skip_dependants_and_stop_up_but_not_plan(env) -> None:
    world: dict[str, Resource] = {}
    boom = RuntimeError("broke")
    steps = [Thing("a", world, fail=boom), Thing("b", world, ("a",)), Thing("c", world, ("b",)),
             Thing("d", world)]  # fmt: skip
    result = env(steps, parallel=1).up()
    assert outcomes(result)["a"] == ("failed", "", "a: run failed: RuntimeError: broke")
    assert outcomes(result)["b"] == ("skipped", "", "not started after a failure")
    assert outcomes(result)["c"] == ("skipped", "", "not started after a failure")
    assert result.failures == [result.results["a"]]
    assert "RuntimeError: broke" in result.results["a"].trace
    assert not result.ok
    steps = [Thing("a", world, fail=boom, where="find"), Thing("b", world, ("a",)),
             Thing("d", world)]  # fmt: skip
    result = env(steps, parallel=1).status()
    assert outcomes(result)["a"][0] == "failed"
    assert outcomes(result)["b"] == ("skipped", "", "a did not finish")
    assert outcomes(result)["d"] == ("missing", "", "not found")


def test_after_a_failure_up_starts_nothing_new(env) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world, fail=RuntimeError("x")), Thing("b", world)]
    for s in steps:
        s.typical_seconds = 10.0 if s.name == "a" else 1.0
    result = env(steps, parallel=1).up()
    assert outcomes(result)["b"] == ("skipped", "", "not started after a failure")
    assert "b" not in world


def test_an_interrupted_walk_cancels_what_has_not_run(env) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world, fail=Cancelled("a")), Thing("b", world)]
    steps[0].typical_seconds = 5.0
    result = env(steps, parallel=1).up()
    assert outcomes(result)["a"] == ("cancelled", "", "interrupted")
    assert outcomes(result)["b"] == ("skipped", "", "not started after a failure")
    assert not result.failures


@pytest.mark.parametrize(
    ("exc", "detail", "code"),
    [
        (ClientError({"Error": {"Code": "Nope", "Message": "no"}}, "CreateThing"),
         "a: CreateThing failed: Nope: no", 1),
        (StepError("a", "Wait", "slow"), "a: Wait failed: slow", 1),
        (WaitTimeout("a: gave up"), "a: gave up", 1),
        (PclsError("bad thing", 2), "a: bad thing", 2),
        (ConfigError("a: already named"), "a: already named", 2),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
         'a: call failed: Could not connect to the endpoint URL: "http://x"', 1),
        (KeyError("k"), "a: run failed: KeyError: 'k'", 1),
    ],
)  # fmt: skip
def test_a_failure_is_one_line_naming_the_step(
    env, exc: BaseException, detail: str, code: int
) -> None:
    result = env([Thing("a", {}, fail=exc)]).up()
    r = result.results["a"]
    assert (r.outcome, r.detail, str(r.error)) == (Outcome.FAILED, detail, detail)
    assert r.error.exit_code == code  # type: ignore[union-attr]
    assert r.to_dict()["error"] == detail


def test_a_failing_find_stops_up_before_any_write(env) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world), Thing("b", world, fail=RuntimeError("no"), where="find")]
    with pytest.raises(PclsError, match=r"^b: run failed: RuntimeError: no$"):
        env(steps).up()
    assert world == {}


def test_engine_refuses_a_bad_graph(env) -> None:
    with pytest.raises(ValueError, match=r"duplicate step names in \['a', 'a'\]"):
        env([Thing("a", {}), Thing("a", {})])
    with pytest.raises(ValueError, match=r"^b depends on unknown steps \['x', 'y'\]$"):
        env([Thing("b", {}, ("y", "x"))])
    assert env([Thing("a", {})], parallel=0).parallel == 1


def test_parallel_bounds_the_steps_at_once(env) -> None:
    active, peak = [0], [0]
    lock = threading.Lock()
    gate = threading.Barrier(3, timeout=5)

    class Slow(Thing):
        def create(self, ctx: Context) -> Resource:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            if self.name in ("s0", "s1", "s2"):
                gate.wait()
            with lock:
                active[0] -= 1
            return super().create(ctx)

    world: dict[str, Resource] = {}
    assert env([Slow(f"s{i}", world) for i in range(5)], parallel=3).up().ok
    assert peak[0] == 3


# -- ownership and collisions ----------------------------------------------------------------


def tagged(stack: str | None, step: str | None) -> list[dict[str, str]]:
    out = []
    if stack is not None:
        out.append({"Key": STACK_TAG, "Value": stack})
    if step is not None:
        out.append({"Key": STEP_TAG, "Value": step})
    return out


def test_owns_and_claims(env) -> None:
    ctx = env([]).ctx
    assert ctx.stack == "tt"
    assert ctx.tags("vpc") == [
        {"Key": "pcls:stack", "Value": "tt"},
        {"Key": "pcls:step", "Value": "vpc"},
        {"Key": "team", "Value": "video"},
    ]
    assert ctx.tag_dict("vpc") == {"pcls:stack": "tt", "pcls:step": "vpc", "team": "video"}
    assert ctx.owns("vpc", tagged("tt", "vpc"))
    assert ctx.owns("vpc", {STACK_TAG: "tt", STEP_TAG: "vpc"})
    assert not ctx.owns("vpc", tagged("tt", "subnet"))
    assert not ctx.owns("vpc", tagged("other", "vpc"))
    assert not ctx.claims("vpc", "v-1", [])
    ctx.adopting["vpc"] = "v-1"
    assert ctx.claims("vpc", "v-1", [])
    assert ctx.claims("vpc", "v-1", {STACK_TAG: "tt"})
    assert not ctx.claims("vpc", "v-2", [])
    assert not ctx.claims("vpc", "v-1", tagged("other", "vpc"))
    with pytest.raises(PclsError) as e:
        ctx.out("vpc")
    assert str(e.value) == "vpc: not available (it has not been found or created)"


def test_conflict_messages() -> None:
    untagged = Conflict("vpc", "v-1", "VPC", "", "", from_ledger=False)
    assert not untagged.foreign
    assert untagged.describe("tt") == "VPC (v-1) carries no pcls:stack tag"
    assert untagged.message("tt") == (
        "vpc: VPC (v-1) carries no pcls:stack tag; it has the name pcls would use: rename the "
        "stack (stack.name), remove that resource, or claim it with `pcls adopt vpc v-1`"
    )
    other_step = Conflict("vpc", "v-1", "VPC", "tt", "subnet", from_ledger=True)
    assert other_step.foreign
    assert other_step.describe("tt") == "VPC (v-1) carries pcls:stack=tt but pcls:step=subnet"
    assert other_step.message("tt").endswith(
        "; the ledger names it: rename the stack (stack.name), remove that resource, or claim "
        "it with `pcls adopt vpc v-1`"
    )
    no_step = Conflict("vpc", "v-1", "VPC", "tt", "", from_ledger=False)
    assert no_step.describe("tt") == "VPC (v-1) carries pcls:stack=tt but pcls:step=(none)"
    foreign = Conflict("vpc", "v-1", "VPC", "zz", "vpc", from_ledger=True)
    assert foreign.describe("tt") == "VPC (v-1) belongs to stack 'zz' (pcls:stack=zz)"
    assert foreign.message("tt") == (
        "vpc: VPC (v-1) belongs to stack 'zz' (pcls:stack=zz); the ledger names it: another "
        "stack's resource is never adopted: rename the stack (stack.name)"
    )


def test_collisions_are_kept_per_step_in_order(env) -> None:
    ctx = env([]).ctx
    ctx.ledger.record("vpc", {"id": "v-9"})
    ctx.collision("vpc", "v-9", "VPC", tagged("zz", "vpc"))
    ctx.collision("vpc", "v-1", "VPC", {"Name": "x"})
    ctx.collision("sg", "g-1", "group", [])
    assert [c.id for c in ctx.conflicts_of("vpc")] == ["v-1", "v-9"]
    first, second = ctx.conflicts_of("vpc")
    assert (first.owner, first.owner_step, first.from_ledger, first.tags) == (
        "",
        "",
        False,
        (("Name", "x"),),
    )
    assert (second.owner, second.owner_step, second.from_ledger) == ("zz", "vpc", True)
    assert second.tags == (("pcls:stack", "zz"), ("pcls:step", "vpc"))
    assert [c.id for c in ctx.conflicts_of("sg")] == ["g-1"]
    assert ctx.unique("vpc", [], "Id") is None
    assert ctx.unique("vpc", [{"Id": "a"}], "Id") == {"Id": "a"}


class Colliding(Thing):
    def __init__(self, name: str, owner: str, ledger_named: bool = False) -> None:
        super().__init__(name, {})
        self.owner = owner
        self.ledger_named = ledger_named

    def find(self, ctx: Context) -> Resource | None:
        ctx.collision(self.name, "x-1", "thing", tagged(self.owner or None, "other"))
        return None


def test_a_collision_stops_up_and_plan_before_any_write(env) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world), Colliding("b", ""), Colliding("c", "zz")]
    with pytest.raises(Collision) as e:
        env(steps).up()
    assert str(e.value) == (
        "b: thing (x-1) carries no pcls:stack tag; it has the name pcls would use: rename the "
        "stack (stack.name), remove that resource, or claim it with `pcls adopt b x-1`\n"
        "c: thing (x-1) belongs to stack 'zz' (pcls:stack=zz); it has the name pcls would use: "
        "another stack's resource is never adopted: rename the stack (stack.name)"
    )
    assert e.value.exit_code == 2
    with pytest.raises(Collision):
        env(steps).plan()
    assert world == {}
    status = env(steps).status()
    assert outcomes(status)["b"] == ("missing", "", str(e.value).splitlines()[0])
    assert outcomes(status)["a"] == ("missing", "", "not found")
    result = env(steps).teardown()
    assert result.left_alone == str(e.value).splitlines()[::-1] or result.left_alone == (
        str(e.value).splitlines()
    )


def test_a_ledger_id_of_another_stacks_resource_is_refused_in_every_walk(env, tmp_path) -> None:
    for walk in ("status", "teardown", "plan", "up"):
        ledger = Ledger(tmp_path, "tt")
        ledger.record("c", {"id": "x-1"})
        with pytest.raises(ConfigError) as e:
            getattr(env([Colliding("c", "zz")]), walk)()
        assert str(e.value).startswith(
            f"{tmp_path / 'tt.json'}: ledger entry c: thing (x-1) belongs to stack 'zz' "
            "(pcls:stack=zz), not this stack's: refused; kept as tt.json.corrupt-"
        ), walk
        for p in tmp_path.glob("tt.json.corrupt-*"):
            p.unlink()


def test_a_ledger_id_of_the_wrong_form_is_refused_before_any_find(env, tmp_path) -> None:
    step = Thing("a", {})
    step.id_pattern = r"id-[a-z]+"
    Ledger(tmp_path, "tt").record("a", {"id": "id-ok"})
    assert env([step]).status().results["a"].outcome is Outcome.MISSING
    Ledger(tmp_path, "tt").record("a", {"id": "vpc-1"})
    step.calls.clear()
    with pytest.raises(ConfigError) as e:
        env([step]).status()
    assert "ledger entry a: id 'vpc-1' is not a test thing id (id-[a-z]+)" in str(e.value)
    assert step.calls == []
    other = Thing("b", {})  # no pattern: any id is taken
    Ledger(tmp_path, "tt").record("b", {"id": "whatever"})
    assert env([other]).status().results["b"].outcome is Outcome.MISSING


# -- waiting and retrying --------------------------------------------------------------------


def test_wait_for_polls_backing_off_and_names_what_it_waits_for(env) -> None:
    clock = Clock()
    ctx = env([], patience=Patience(poll_min=1.0, poll_max=2.0, sleep=clock.sleep,
                                    clock=clock)).ctx  # fmt: skip
    states = iter([(False, "pending"), (False, ""), (False, "pending"), (True, "ok")])
    ctx.wait_for("a", "the thing", lambda: next(states), timeout=100)
    assert clock.sleeps == [1.0, 1.5, 2.0]
    progress = [e[2] for e in ctx.ui.events if e[0] == "progress"]
    assert progress == ["waiting for the thing: pending", "waiting for the thing",
                        "waiting for the thing: pending"]  # fmt: skip
    clock.sleeps.clear()
    with pytest.raises(WaitTimeout) as e:
        ctx.wait_for("a", "the thing", lambda: (False, "stuck"), timeout=3, hint="look at x")
    assert str(e.value) == (
        "a: gave up waiting for the thing after 3s (last state: stuck); look at x"
    )
    assert clock.sleeps == [1.0, 1.5, 0.5]  # never past the timeout
    with pytest.raises(WaitTimeout) as e:
        ctx.wait_for("a", "it", lambda: (False, ""), timeout=0)
    assert str(e.value) == "a: gave up waiting for it after 0s"
    ctx.cancel.set()
    with pytest.raises(Cancelled):
        ctx.wait_for("a", "it", lambda: (True, ""), timeout=10)


def test_retry_while_retries_the_blocked_call_then_names_the_blocker(env) -> None:
    sleeps: list[float] = []
    ctx = env([], patience=Patience(sleep=sleeps.append)).ctx
    in_use = ClientError(
        {"Error": {"Code": "DependencyViolation", "Message": "in use"}}, "DeleteThing"
    )
    answers: list[Any] = [in_use, in_use, "done"]

    def call() -> Any:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    got = ctx.retry_while("a", call, codes=("DependencyViolation",), timeout=60,
                          why="waiting for the users", blocker=lambda: "eni-1")  # fmt: skip
    assert got == "done" and len(sleeps) == 2
    progress = [e[2] for e in ctx.ui.events if e[0] == "progress"]
    assert (
        progress
        == ["waiting for the users: retrying (DependencyViolation: in use); blocked by eni-1"] * 2
    )

    def blocked() -> None:
        raise ClientError({"Error": {"Code": "Busy", "Message": "still in use"}}, "DeleteThing")

    with pytest.raises(StepError) as e:
        ctx.retry_while("a", blocked, messages=("in use",), timeout=0, why="waiting",
                        blocker=lambda: "eni-2")  # fmt: skip
    assert str(e.value) == (
        "a: DeleteThing failed: Busy: still in use (still waiting after 0s; blocked by eni-2); "
        "run again once it is released"
    )
    with pytest.raises(StepError) as e:
        ctx.retry_while("a", blocked, codes=("Busy",), timeout=0, why="waiting")
    assert str(e.value) == (
        "a: DeleteThing failed: Busy: still in use (still waiting after 0s); "
        "run again once it is released"
    )

    def denied() -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteThing")

    with pytest.raises(ClientError):
        ctx.retry_while("a", denied, codes=("Busy",), timeout=10, why="waiting")
    ctx.cancel.set()
    with pytest.raises(Cancelled):
        ctx.retry_while("a", blocked, codes=("Busy",), timeout=60, why="waiting")


def test_run_result_counts() -> None:
    r = RunResult("up")
    r.results = {
        "a": StepResult("a", "k", Outcome.FAILED),
        "b": StepResult("b", "k", Outcome.CREATED),
        "c": StepResult("c", "k", Outcome.CREATED),
    }
    assert [x.step for x in r.failures] == ["a"]
    assert (r.count(Outcome.CREATED), r.count(Outcome.FAILED, Outcome.CREATED)) == (2, 3)
    assert not r.ok
    ok = RunResult("up", {"b": StepResult("b", "k", Outcome.CREATED)})
    assert ok.ok
    assert not RunResult("up", {}, remaining=["x"]).ok
    assert not RunResult("up", {}, interrupted=True).ok
    p = Patience()
    assert (p.poll_min, p.poll_max, p.iam_propagation, p.read_settle) == (2.0, 10.0, 120.0, 120.0)


# -- what each walk shows, step by step --------------------------------------------------------


class Watched(Thing):
    """A Thing that checks what the engine hands it and where it runs."""

    seen: list[tuple[str, str, str, str]]

    def _check(self, where: str, ctx: Context, res: Resource | None = None) -> None:
        assert isinstance(ctx, Context), where
        if res is not None or where in ("drift", "update", "delete", "details"):
            assert res is self.world[self.name], where
        thread = threading.current_thread().name
        Watched.seen.append((self.name, where, ctx.aws.current_step, thread.split("_")[0]))

    def find(self, ctx: Context) -> Resource | None:
        self._check("find", ctx)
        return super().find(ctx)

    def create(self, ctx: Context) -> Resource:
        self._check("create", ctx)
        return super().create(ctx)

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        self._check("drift", ctx, res)
        return super().drift(ctx, res)

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        self._check("update", ctx, res)
        assert drift == self.drifts
        super().update(ctx, res, drift)

    def delete(self, ctx: Context, res: Resource) -> None:
        self._check("delete", ctx, res)
        super().delete(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        self._check("details", ctx, res)
        return super().details(ctx, res)

    def preflight(self, ctx: Context) -> None:
        assert isinstance(ctx, Context)


def full(result: RunResult, engine: Engine) -> list[tuple[str, str, str, str, str]]:
    out = []
    for name, r in sorted(result.results.items()):
        assert r.step == name and r.kind == engine.steps[name].kind, name
        assert 0 <= r.elapsed < 5
        out.append((name, r.kind, r.outcome.value, r.id, r.detail))
    return out


def events(engine: Engine, kind: str) -> list[tuple[str, ...]]:
    return sorted(e for e in engine.ctx.ui.events if e[0] == kind)


def test_each_walk_names_its_steps_and_hands_them_the_context(env) -> None:
    Watched.seen = []
    world: dict[str, Resource] = {"b": Resource("id-b")}
    steps = [Watched("a", world), Watched("b", world, drift=["size 2 -> 3", "port 80"])]
    engine = env(steps)
    result = engine.up()
    assert result.mode == "up"
    assert full(result, engine) == [
        ("a", "test thing", "created", "id-a", "id-a"),
        ("b", "test thing", "updated", "id-b", "id-b: size 2 -> 3; port 80"),
    ]
    assert result.results["b"].drift == ["size 2 -> 3", "port 80"]
    assert events(engine, "start") == [("start", "a", "checking"), ("start", "b", "checking")]
    assert events(engine, "progress") == [
        ("progress", "a", "creating"),
        ("progress", "b", "repairing: size 2 -> 3; port 80"),
    ]
    assert events(engine, "finish") == [
        ("finish", "a", "created", "id-a"),
        ("finish", "b", "updated", "id-b: size 2 -> 3; port 80"),
    ]
    walked = [s for s in Watched.seen if s[3] == "pcls-step"]
    assert {(n, w, cur) for n, w, cur, _ in walked} >= {
        ("a", "find", "a"),
        ("a", "create", "a"),
        ("b", "drift", "b"),
        ("b", "update", "b"),
    }
    assert all(cur == n for n, _, cur, _ in walked)
    surveyed = [s for s in Watched.seen if s[3] == "pcls-find"]
    assert {(n, w) for n, w, _, _ in surveyed} == {("a", "find"), ("b", "find")}
    assert engine.ctx.aws.current_step == ""

    Watched.seen = []
    steps[1].drifts = ["x", "y"]
    engine = env(steps)
    result = engine.status()
    assert (result.mode, engine.ctx.mode) == ("status", "status")
    assert full(result, engine) == [
        ("a", "test thing", "in sync", "id-a", "id-a"),
        ("b", "test thing", "drifted", "id-b", "id-b: x; y"),
    ]
    assert ("b", "details", "b", "pcls-step") in Watched.seen
    assert events(engine, "start") == [("start", "a", "checking"), ("start", "b", "checking")]
    engine = env(steps)
    result = engine.plan()
    assert result.mode == "plan"
    assert full(result, engine)[1] == ("b", "test thing", "would update", "id-b", "id-b: x; y")

    Watched.seen = []
    engine = env(steps)
    result = engine.teardown()
    assert result.mode == "teardown"
    assert full(result, engine) == [
        ("a", "test thing", "deleted", "id-a", "id-a"),
        ("b", "test thing", "deleted", "id-b", "id-b"),
    ]
    assert events(engine, "progress") == [("progress", "a", "deleting"),
                                          ("progress", "b", "deleting")]  # fmt: skip
    engine = env(steps)
    result = engine.teardown()
    assert full(result, engine) == [("a", "test thing", "absent", "", ""),
                                    ("b", "test thing", "absent", "", "")]  # fmt: skip
    assert events(engine, "start") == [("start", "a", "checking"), ("start", "b", "checking")]


def test_missing_dependencies_are_all_named(env) -> None:
    world: dict[str, Resource] = {"c": Resource("id-c")}
    steps = [Thing("a", world), Thing("b", world), Thing("c", world, ("a", "b")),
             Thing("d", world, ("a", "b"))]  # fmt: skip
    engine = env(steps)
    result = engine.plan()
    assert full(result, engine)[2:] == [
        ("c", "test thing", "would update", "id-c", "id-c: depends on missing a, b"),
        ("d", "test thing", "would create", "", "after a, b"),
    ]
    kept = {"k": Resource("Z", retained="used, not made")}
    engine = env([Thing("k", kept)])
    assert full(engine.teardown(), engine) == [("k", "test thing", "kept", "Z", "used, not made")]


def test_a_walk_skips_every_dependant_of_a_failure_and_runs_the_rest(env) -> None:
    world: dict[str, Resource] = {}
    boom = RuntimeError("no")
    steps = [Thing("a", world, fail=boom, where="find"), Thing("b", world, ("a",)),
             Thing("c", world, ("a",)), Thing("d", world, ("b",)), Thing("e", world),
             Thing("f", world, ("e",))]  # fmt: skip
    for s in steps:
        s.typical_seconds = {"a": 50.0, "b": 10.0, "c": 10.0}.get(s.name, 1.0)
    engine = env(steps, parallel=1)
    result = engine.status()
    assert full(result, engine) == [
        ("a", "test thing", "failed", "", "a: run failed: RuntimeError: no"),
        ("b", "test thing", "skipped", "", "a did not finish"),
        ("c", "test thing", "skipped", "", "a did not finish"),
        ("d", "test thing", "skipped", "", "b did not finish"),
        ("e", "test thing", "missing", "", "not found"),
        ("f", "test thing", "missing", "", "not found"),
    ]
    assert ("finish", "b", "skipped", "a did not finish") in engine.ctx.ui.events
    assert result.results["a"].trace.startswith("Traceback (most recent call last):")


def test_teardown_starts_nothing_new_after_a_failure(env) -> None:
    world: dict[str, Resource] = {"a": Resource("id-a"), "b": Resource("id-b")}
    steps = [Thing("a", world, fail=RuntimeError("stuck"), where="delete"), Thing("b", world)]
    steps[0].typical_seconds = 10.0
    engine = env(steps, parallel=1)
    result = engine.teardown()
    assert full(result, engine) == [
        ("a", "test thing", "failed", "", "a: run failed: RuntimeError: stuck"),
        ("b", "test thing", "skipped", "", "not started after a failure"),
    ]
    assert "b" in world and result.remaining == []  # no after-check when the walk failed


def test_an_interrupt_stops_the_walk_and_cancels_what_did_not_start(env) -> None:
    import _thread
    import time

    world: dict[str, Resource] = {}

    class Interrupting(Thing):
        def create(self, ctx: Context) -> Resource:
            time.sleep(0.2)  # the walk is waiting for its steps by now
            _thread.interrupt_main()  # Ctrl-C while this step works
            time.sleep(0.3)
            return super().create(ctx)

    steps = [Interrupting("a", world), Thing("b", world), Thing("c", world, ("a",))]
    steps[0].typical_seconds = 10.0
    engine = env(steps, parallel=1)
    try:
        result = engine.up()
    except KeyboardInterrupt:  # pragma: no cover - must not reach pytest itself
        pytest.fail("the interrupt escaped the walk's wait")
    assert result.interrupted and not result.ok
    assert engine.ctx.cancel.is_set()
    assert full(result, engine) == [
        ("a", "test thing", "created", "id-a", "id-a"),  # the step in flight finished
        ("b", "test thing", "cancelled", "", "interrupted"),
        ("c", "test thing", "cancelled", "", "interrupted"),
    ]


def test_a_collision_met_during_the_walk_fails_that_step_in_up_and_plan(env) -> None:
    class Late(Thing):
        """Meets a resource in its way only on its second look (after the survey)."""

        looks = 0

        def find(self, ctx: Context) -> Resource | None:
            Late.looks += 1
            if Late.looks % 2 == 0:
                ctx.collision(self.name, "x-2", "thing", tagged("zz", "late"))
            return super().find(ctx)

    for walk in ("up", "plan", "status"):
        Late.looks = 0
        engine = env([Late("late", {}), Thing("free", {})])
        result = getattr(engine, walk)()
        late = result.results["late"]
        if walk == "status":
            assert late.outcome is Outcome.MISSING
            assert late.detail.startswith("late: thing (x-2) belongs to stack 'zz'")
            continue
        assert (late.outcome, late.detail) == (Outcome.FAILED, (
            "late: thing (x-2) belongs to stack 'zz' (pcls:stack=zz); it has the name pcls "
            "would use: another stack's resource is never adopted: rename the stack (stack.name)"
        )), walk  # fmt: skip
        assert late.error.exit_code == 2  # type: ignore[union-attr]


def test_the_longest_remaining_chain_goes_first(env) -> None:
    order: list[str] = []

    class Timed(Thing):
        def create(self, ctx: Context) -> Resource:
            order.append(self.name)
            return super().create(ctx)

    world: dict[str, Resource] = {}
    steps = [Timed("w", world), Timed("x", world), Timed("y", world, ("x",)),
             Timed("z", world, ("y",))]  # fmt: skip
    for s, t in zip(steps, (25.0, 10.0, 10.0, 10.0), strict=True):
        s.typical_seconds = t
    assert env(steps, parallel=1).up().ok
    assert order == ["x", "w", "y", "z"]  # x heads 30 s of work, w only 25 s


def test_context_details(env) -> None:
    ctx = env([]).ctx
    assert ctx.mode == "" and ctx.adopting == {} and ctx.outputs == {}
    assert ctx.claims("vpc", "v-1", tagged("tt", "vpc"))
    assert not ctx.claims("vpc", "v-1", tagged("tt", "subnet"))
    same = Conflict("vpc", "v-1", "VPC", "tt", "subnet", from_ledger=True)
    assert same.message("tt") == (
        "vpc: VPC (v-1) carries pcls:stack=tt but pcls:step=subnet; the ledger names it: rename "
        "the stack (stack.name), remove that resource, or claim it with `pcls adopt vpc v-1`"
    )
    with pytest.raises(Cancelled) as e:
        ctx.cancel.set()
        ctx.wait_for("vpc", "it", lambda: (False, ""), timeout=5)
    assert str(e.value) == "vpc"


def test_wait_and_retry_name_their_step(env) -> None:
    clock = Clock()
    ctx = env([], patience=Patience(poll_min=1.0, sleep=clock.sleep, clock=clock)).ctx
    states = iter([(False, ""), (True, "")])
    ctx.wait_for("sg", "the group", lambda: next(states), timeout=10)
    answers: list[Any] = [ClientError({"Error": {"Code": "Busy", "Message": "m"}}, "Op"), 1]

    def call() -> Any:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert ctx.retry_while("sg", call, codes=("Busy",), timeout=30, why="waiting") == 1
    assert [e for e in ctx.ui.events if e[0] == "progress"] == [
        ("progress", "sg", "waiting for the group"),
        ("progress", "sg", "waiting: retrying (Busy: m)"),
    ]
    ctx.cancel.set()
    answers[:] = [ClientError({"Error": {"Code": "Busy", "Message": "m"}}, "Op")] * 3
    with pytest.raises(Cancelled) as e:
        ctx.retry_while("sg", call, codes=("Busy",), timeout=30, why="waiting")
    assert str(e.value) == "sg"


def test_teardown_names_each_step_aws_still_lists(env) -> None:
    clock = Clock()
    patience = Patience(iam_propagation=1.0, poll_min=0.5, poll_max=0.5, sleep=clock.sleep,
                        clock=clock)  # fmt: skip

    class Stuck(Thing):
        def delete(self, ctx: Context, res: Resource) -> None:
            pass

        def strays(self, ctx: Context) -> dict[str, str]:
            assert isinstance(ctx, Context)
            return {}

    world = {"a": Resource("id-a"), "b": Resource("id-b")}
    engine = env([Stuck("a", world), Stuck("b", world)], patience=patience)
    result = engine.teardown()
    assert result.remaining == ["a (test thing id-a)", "b (test thing id-b)"]
    waits = {e[2] for e in engine.ctx.ui.events if e[0] == "progress" and e[1] == "teardown"}
    assert waits == {"waiting for AWS to stop listing what was deleted: still listed: a, b"}
    infos = [e[1] for e in engine.ctx.ui.events if e[0] == "info"]
    assert infos == ["teardown: AWS still lists a, b; reads lag behind deletes, looking again "
                     "for up to 1s"]  # fmt: skip


def test_a_resource_of_the_stack_but_another_step_is_named_as_such(env) -> None:
    class OwnStack(Thing):
        def find(self, ctx: Context) -> Resource | None:
            ctx.collision(self.name, "x-3", "thing", tagged("tt", "other"))
            return None

    line = (
        "b: thing (x-3) carries pcls:stack=tt but pcls:step=other; it has the name pcls would "
        "use: rename the stack (stack.name), remove that resource, or claim it with "
        "`pcls adopt b x-3`"
    )
    with pytest.raises(Collision) as e:
        env([OwnStack("b", {})]).up()
    assert str(e.value) == line
    assert env([OwnStack("b", {})]).status().results["b"].detail == line
    assert env([OwnStack("b", {})]).teardown().left_alone == [line]


def test_pick_claims_what_is_being_adopted_and_ignores_names_without_a_getter(env) -> None:
    ctx = env([]).ctx
    items = [{"Id": "u-1", "Tags": []}, {"Id": "u-2", "Tags": []}]
    assert ctx.pick("topic", items, "Id", want="tt-alarms") is None
    assert ctx.conflicts_of("topic") == []  # no name getter: nothing is "of our name"
    ctx.adopting["topic"] = "u-2"
    assert ctx.pick("topic", items, "Id")["Id"] == "u-2"


def test_a_step_that_cannot_be_adopted_says_so() -> None:
    step = Thing("a", {})
    with pytest.raises(PclsError) as e:
        Step.tag(step, None, Resource("x"))  # type: ignore[arg-type]
    assert (str(e.value), e.value.exit_code) == ("a: a test thing cannot be adopted", 2)
    assert Step.strays(step, None) == {}  # type: ignore[arg-type]
    assert Step.details(step, None, Resource("x")) == {}  # type: ignore[arg-type]
    assert Step.drift(step, None, Resource("x")) == []  # type: ignore[arg-type]


def test_results_of_unchanged_and_cancelled_steps_name_their_step(env) -> None:
    world = {"a": Resource("id-a")}
    engine = env([Thing("a", world), Thing("c", {}, fail=Cancelled("c"))])
    result = engine.up()
    assert full(result, engine) == [
        ("a", "test thing", "unchanged", "id-a", "id-a"),
        ("c", "test thing", "cancelled", "", "interrupted"),
    ]
    failed = env([Thing("f", {}, fail=RuntimeError("boom"))]).up().results["f"]
    assert failed.trace.startswith("Traceback (most recent call last):\n  File ")


def test_teardown_forgets_absent_and_kept_resources(env, tmp_path: Path) -> None:
    Ledger(tmp_path, "tt").record("gone", {"id": "id-gone"})
    Ledger(tmp_path, "tt").record("kept", {"id": "Z1"})
    world = {"kept": Resource("Z1", retained="not made by pcls")}
    assert env([Thing("gone", world), Thing("kept", world)]).teardown().ok
    assert Ledger(tmp_path, "tt").steps == {}


def test_every_ledger_id_is_checked(env, tmp_path: Path) -> None:
    first, second = Thing("a", {}), Thing("b", {})
    first.id_pattern = second.id_pattern = r"id-[a-z]+"
    Ledger(tmp_path, "tt").record("b", {"id": "bad"})
    with pytest.raises(ConfigError, match="ledger entry b: id 'bad' is not a test thing id"):
        env([first, second]).status()


def test_read_only_walks_hand_dependants_what_they_found(env) -> None:
    seen: list[str] = []

    class Reader(Thing):
        def drift(self, ctx: Context, res: Resource) -> list[str]:
            seen.append(ctx.out("a").id)
            return []

    world = {"a": Resource("id-a"), "b": Resource("id-b")}
    env([Thing("a", world), Reader("b", world, ("a",))]).status()
    assert seen == ["id-a"]


def test_a_blocked_call_is_retried_on_its_message(env) -> None:
    sleeps: list[float] = []
    ctx = env([], patience=Patience(sleep=sleeps.append)).ctx
    answers: list[Any] = [ClientError({"Error": {"Code": "X", "Message": "role cannot be assumed"}},
                                      "Op"), "ok"]  # fmt: skip

    def call() -> Any:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert ctx.retry_while("r", call, messages=("cannot be assumed",), timeout=30, why="w") == "ok"
    assert len(sleeps) == 1


def test_the_survey_looks_for_each_step_as_that_step(env) -> None:
    Watched.seen = []
    world: dict[str, Resource] = {}
    env([Watched("a", world), Watched("b", world)]).status()
    surveyed = [(n, cur) for n, w, cur, thread in Watched.seen if thread == "pcls-find"]
    assert sorted(surveyed) == [("a", "a"), ("b", "b")]


def test_strays_of_several_ids_are_all_reported(env) -> None:
    clock = Clock()
    patience = Patience(iam_propagation=0.0, sleep=clock.sleep, clock=clock)

    class Leaky(Thing):
        def strays(self, ctx: Context) -> dict[str, str]:
            return {"s-1": "a (stray s-1)", "s-2": "a (stray s-2)"}

    result = env([Leaky("a", {})], patience=patience).teardown()
    assert result.remaining == ["a (stray s-1)", "a (stray s-2)"]


def test_a_chain_behind_a_failure_is_skipped_link_by_link(env) -> None:
    world: dict[str, Resource] = {}
    steps = [Thing("a", world, fail=RuntimeError("no"), where="find"), Thing("b", world, ("a",)),
             Thing("c", world, ("b",)), Thing("d", world, ("c",))]  # fmt: skip
    engine = env(steps, parallel=1)
    result = engine.status()
    assert full(result, engine)[1:] == [
        ("b", "test thing", "skipped", "", "a did not finish"),
        ("c", "test thing", "skipped", "", "b did not finish"),
        ("d", "test thing", "skipped", "", "c did not finish"),
    ]

"""The engine's graph walk through the step API, with steps that hold no AWS resource."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pcls import config
from pcls.aws import Aws
from pcls.engine import Context, Engine, Resource, Step
from pcls.ledger import Ledger
from pcls.ui import Outcome, RecordingReporter


class Probe(Step):
    """Records when it ran; 'exists' decides whether find() sees a resource."""

    kind = "test probe"
    log: list[tuple[str, str]]
    active = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, name: str, deps: tuple[str, ...] = (), *, fail: bool = False,
                 seconds: float = 0.02, typical: float = 1.0) -> None:  # fmt: skip
        self.name = name
        self.depends_on = deps
        self.fail = fail
        self.seconds = seconds
        self.typical_seconds = typical
        self.exists = False

    def _work(self, what: str) -> None:
        with Probe.lock:
            Probe.active += 1
            Probe.peak = max(Probe.peak, Probe.active)
            Probe.log.append((what, self.name))
        time.sleep(self.seconds)
        with Probe.lock:
            Probe.active -= 1
        if self.fail:
            raise RuntimeError(f"{self.name} broke")

    def find(self, ctx: Context) -> Resource | None:
        return Resource(f"id-{self.name}") if self.exists else None

    def create(self, ctx: Context) -> Resource:
        self._work("create")
        self.exists = True
        return Resource(f"id-{self.name}")

    def delete(self, ctx: Context, res: Resource) -> None:
        self._work("delete")
        self.exists = False


@pytest.fixture
def make(tmp_path: Path, aws_mock: None):
    Probe.log, Probe.active, Probe.peak = [], 0, 0
    cfg = config.loads('[stack]\nname = "tt"\ndomain = "t.example.com"\nregion = "eu-central-1"\n')

    def build(steps: list[Step], parallel: int = 4) -> Engine:
        ctx = Context(cfg, Aws("eu-central-1"), Ledger(tmp_path, "tt"), RecordingReporter())
        return Engine(ctx, steps, parallel=parallel)

    return build


def test_dependencies_run_first_and_teardown_reverses(make) -> None:
    steps = [Probe("a"), Probe("b", ("a",)), Probe("c", ("b",))]
    assert make(steps).up().ok
    assert [n for _, n in Probe.log] == ["a", "b", "c"]
    Probe.log.clear()
    assert make(steps).teardown().ok
    assert [n for _, n in Probe.log] == ["c", "b", "a"]


def test_independent_steps_run_concurrently_within_the_bound(make) -> None:
    steps = [Probe(f"s{i}", seconds=0.1) for i in range(8)]
    started = time.monotonic()
    assert make(steps, parallel=4).up().ok
    assert Probe.peak == 4
    assert time.monotonic() - started < 0.5  # two waves of four, not eight in a row
    Probe.peak = 0
    for s in steps:
        s.exists = False
    assert make(steps, parallel=1).up().ok
    assert Probe.peak == 1


def test_failure_skips_dependants_and_reports_one_error(make) -> None:
    steps = [Probe("a", fail=True), Probe("b", ("a",)), Probe("c")]
    result = make(steps, parallel=1).up()
    assert result.results["a"].outcome is Outcome.FAILED
    assert "a: run failed: RuntimeError: a broke" in str(result.results["a"].error)
    assert result.results["b"].outcome is Outcome.SKIPPED
    assert not result.ok


def test_longest_chain_starts_first(make) -> None:
    # One worker: the step heading the long chain must go before the quick leaves.
    steps = [
        Probe("leaf1", typical=1),
        Probe("leaf2", typical=1),
        Probe("slow", typical=100),
        Probe("after-slow", ("slow",), typical=50),
    ]
    assert make(steps, parallel=1).up().ok
    assert Probe.log[0] == ("create", "slow")


def test_ledger_is_written_after_each_create(make, tmp_path: Path) -> None:
    seen: list[set[str]] = []

    class Spy(Probe):
        def create(self, ctx: Context) -> Resource:
            seen.append(set(Ledger(tmp_path, "tt").steps))  # what is on disk, not in memory
            return super().create(ctx)

    steps = [Probe("a"), Spy("b", ("a",))]
    assert make(steps).up().ok
    assert seen == [{"a"}]  # a's id was on disk before b began
    assert Ledger(tmp_path, "tt").id("b") == "id-b"


def test_unknown_dependency_is_a_programming_error(make) -> None:
    with pytest.raises(ValueError, match="unknown"):
        make([Probe("a", ("nope",))])


class Writer(Probe):
    """A step that (wrongly) writes to AWS while it only should look: in find or in drift."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(name)
        self.where = where
        self.exists = True

    def _write(self, ctx: Context) -> None:
        ctx.aws.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")

    def find(self, ctx: Context) -> Resource | None:
        if self.where == "find":
            self._write(ctx)
        return Resource(f"id-{self.name}")

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        if self.where == "drift":
            self._write(ctx)
        return []


def _vpcs() -> int:
    import boto3

    return len(boto3.client("ec2", region_name="eu-central-1").describe_vpcs()["Vpcs"])


@pytest.mark.parametrize("walk", ["plan", "status"])
@pytest.mark.parametrize("where", ["find", "drift"])
def test_plan_and_status_cannot_write_even_when_a_step_tries(make, walk: str, where: str) -> None:
    before = _vpcs()
    engine = make([Probe("a"), Writer("w", where)])
    result = getattr(engine, walk)()
    failed = result.results["w"]
    assert failed.outcome is Outcome.FAILED
    assert "ec2:CreateVpc refused: this run only reads" in str(failed.error)
    assert type(failed.error).__name__ in ("WriteInReadOnlyRun", "PclsError")
    assert _vpcs() == before
    assert engine.ctx.aws.call_summary()["writes"] == 0


def test_up_finds_every_resource_read_only_before_its_first_write(make) -> None:
    """The survey before up is read-only too: a write in find is refused, nothing created."""
    before = _vpcs()
    engine = make([Probe("a"), Writer("w", "find")])
    with pytest.raises(Exception, match="ec2:CreateVpc refused: this run only reads"):
        engine.up()
    assert _vpcs() == before
    assert Probe.log == []  # not even step a was created

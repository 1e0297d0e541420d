"""The wake function's resources under what AWS does and moto does not: eventual consistency,
refusals, and a run stopped at any of their writes.

The errors are AWS's own (code and message as AWS sends them), injected at the botocore layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from moto import mock_aws

from pcls.engine import Collision
from tests.conftest import DOMAIN, REGION
from tests.faults import FailNth, WriteCounter, client_error, on_every_client
from tests.harness import Harness
from tests.inventory import inventory, stack_only

ROLE_NOT_YET = "The role defined for the function cannot be assumed by Lambda."
SCHEDULER_ROLE_NOT_YET = (
    "The execution role you provide must allow AWS EventBridge Scheduler to assume the role."
)
# The writes of the wake function's steps (and of nothing else), in a sequential run.
WAKE_WRITES = {
    "lambda:CreateFunction",
    "lambda:PutFunctionConcurrency",
    "lambda:AddPermission",
    "elbv2:RegisterTargets",
    "ecs:TagResource",
    "scheduler:CreateScheduleGroup",
    "scheduler:CreateSchedule",
    "logs:CreateLogGroup",
}


def test_a_new_role_lambda_cannot_assume_yet_is_waited_for(harness: Harness) -> None:
    fail = FailNth(
        "CreateFunction", times=2, code="InvalidParameterValueException", message=ROLE_NOT_YET
    )
    with on_every_client(fail.register):
        result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    assert fail.raised == 2
    assert harness.calls()["calls"]["lambda:CreateFunction"] == 1  # the one AWS accepted


def test_a_new_schedule_role_scheduler_cannot_assume_yet_is_waited_for(harness: Harness) -> None:
    fail = FailNth(
        "CreateSchedule", times=2, code="ValidationException", message=SCHEDULER_ROLE_NOT_YET
    )
    with on_every_client(fail.register):
        result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    assert fail.raised == 2


def test_other_create_function_errors_are_not_retried(harness: Harness) -> None:
    fail = FailNth(
        "CreateFunction",
        times=1,
        code="InvalidParameterValueException",
        message="Unzipped size must be smaller than 262144000 bytes",
    )
    with on_every_client(fail.register):
        result = harness.up()
    (failed,) = result.failures
    assert failed.step == "wake-function" and "Unzipped size" in failed.detail
    assert fail.raised == 1


def test_an_account_without_room_for_reserved_concurrency_still_gets_its_function(
    harness: Harness,
) -> None:
    fail = FailNth(
        "PutFunctionConcurrency",
        times=1,
        code="InvalidParameterValueException",
        message="Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [10].",
    )
    with on_every_client(fail.register):
        result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    assert harness.last is not None
    infos = [e[1] for e in harness.last.ui.events if e[0] == "info"]  # type: ignore[attr-defined]
    assert any("no reserved concurrency" in line for line in infos), infos


def test_a_function_in_the_way_is_a_collision_until_adopted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.up().ok
    lam = harness.client("lambda")
    lam.untag_resource(
        Resource=lam.get_function(FunctionName="meet-wake")["Configuration"]["FunctionArn"],
        TagKeys=["pcls:step"],
    )
    with pytest.raises(Collision) as refused:
        harness.plan()
    assert "wake-function: Lambda function meet-wake" in str(refused.value)
    assert "pcls adopt wake-function meet-wake" in str(refused.value)
    adopted = harness.cli("adopt", "wake-function", "meet-wake", "--yes", capsys=capsys)
    assert adopted.code == 0, adopted.err
    assert harness.up().ok and harness.writes() == {}


def _sequential_writes(root: Path) -> tuple[list[str], object]:
    root.mkdir(parents=True)
    with mock_aws():
        h = Harness(root, region=REGION, domain=DOMAIN)
        h.make_zone("example.com")
        counter = WriteCounter()
        with on_every_client(counter.register):
            assert h.up(parallel=1).ok
        return counter.writes, stack_only(inventory(REGION))


class AfterCall:
    """The k-th write reaches AWS, then the run fails before pcls sees the answer."""

    def __init__(self, k: int) -> None:
        self.counter = WriteCounter()
        self.k = k

    def register(self, client: object) -> None:
        self.counter.register(client)
        client.meta.events.register("after-call", self._after)  # type: ignore[attr-defined]

    def _after(self, model: object, **_: object) -> None:
        if len(self.counter.writes) == self.k and not getattr(self, "done", False):
            self.done = True
            raise client_error("RequestTimeout", "connection lost after the call", "call")


def test_up_converges_after_a_stop_at_each_wake_write(tmp_path: Path) -> None:
    """Each write of the wake steps once: refused by AWS (before) or done by AWS with the
    answer lost (after), in turn; a plain re-run converges to a clean run's resources."""
    writes, base = _sequential_writes(tmp_path / "base")
    ks = [k for k, w in enumerate(writes, start=1) if w in WAKE_WRITES]
    assert len(ks) >= 7, writes
    for n, k in enumerate(ks):
        mode = ("before", "after")[n % 2]
        (tmp_path / f"{mode}-{k}").mkdir()
        with mock_aws():
            h = Harness(tmp_path / f"{mode}-{k}", region=REGION, domain=DOMAIN)
            h.make_zone("example.com")
            fault = WriteCounter(k, "error") if mode == "before" else AfterCall(k)
            with on_every_client(fault.register):
                first = h.up(parallel=1)
            assert not first.ok, (k, writes[k - 1])
            second = h.up()
            assert second.ok, (k, writes[k - 1], [f.detail for f in second.failures])
            assert stack_only(inventory(REGION)) == base, (k, writes[k - 1])
            assert h.up().ok and h.writes() == {}, (k, writes[k - 1], h.writes())

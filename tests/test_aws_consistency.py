"""AWS's own inconsistencies in the windows right after a write, injected into whole runs.

Each test sends the error (or the stale answer, or the clock) real AWS gives in that window, at
the botocore layer of the run's own clients, into a full `up` or `teardown` (or the steps a case
needs and their dependencies) that must then finish in one run:

- CreateService right after CreateListener: the target group has no associated load balancer yet;
- RegisterTaskDefinition right after CreateRole: `Role is not valid`, or a PassRole denial;
- a role ECS cannot assume yet, reported as a service event and a failed rollout;
- PutScalingPolicy beside PutScheduledAction on one scalable target: ConcurrentUpdateException;
- reads right after deletes (GetRole, ListTopics, DescribeParameters) that still show them;
- AWS's clock off from this machine's (the secrets' dates against the deployments');
- bridges in calls, protected from scale-in, during a jvb rollout and at teardown.

docs/aws-errors.md has the table these belong to.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import threading
import time
from dataclasses import replace
from typing import Any

from botocore.awsrequest import AWSResponse
from rich.console import Console

from pcls import runner
from pcls.steps.services import IAM_REDEPLOYS
from pcls.ui import Outcome
from tests.faults import client_error
from tests.harness import FAST, Harness
from tests.test_aws_errors import (
    ACCOUNT,
    REGION,
    ROOMY,
    SHORT,
    nothing_left,
    ok,
    one_line_failure,
    other,
    progress,
    refuse,
    session,
    teardown,
    up,
)

# -- helpers -----------------------------------------------------------------------------------


def answer(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    """What a `before-call` handler returns to answer a call itself, as AWS would."""
    return AWSResponse("https://aws.invalid/", 200, {}, None), parsed


def sent(s: runner.Session, service: str, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call the run makes, as sent."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(json.loads(json.dumps(params, default=str)))

    s.aws.client(service).meta.events.register(
        f"before-parameter-build.{service}.{operation}", record
    )
    return seen


def order(s: runner.Session) -> list[str]:
    return [f"{service}:{op}" for service, op in s.aws.call_order]


# -- 3. CreateService just after CreateListener ------------------------------------------------


def no_lb_yet(h: Harness, s: runner.Session, **kw: Any) -> list[dict[str, Any]]:
    """ECS does not see the new listener yet: the target group has no load balancer for it."""
    elbv2 = other(h, "elbv2")

    def listener_just_created(params: dict[str, Any]) -> bool:
        groups = [lb["targetGroupArn"] for lb in params.get("loadBalancers") or []]
        if not groups:
            return False
        (tg,) = elbv2.describe_target_groups(TargetGroupArns=groups)["TargetGroups"]
        return bool(tg["LoadBalancerArns"])  # the listener exists: AWS has it, ECS not yet

    return refuse(
        s.aws.client("ecs"),
        "CreateService",
        "InvalidParameterException",
        lambda p: (
            f"The target group with targetGroupArn {p['loadBalancers'][0]['targetGroupArn']} "
            "does not have an associated load balancer."
        ),
        holds=listener_just_created,
        **kw,
    )


def test_service_created_before_ecs_sees_the_new_listener_is_retried(harness: Harness) -> None:
    s = session(harness, patience=ROOMY)
    refused = no_lb_yet(harness, s, times=2)
    asked: list[tuple[str, str]] = []  # (what, which), in the order the engine's threads asked
    s.aws.client("ecs").meta.events.register(
        "before-parameter-build.ecs.CreateService",
        lambda params, **_: asked.append(("service", params["serviceName"])),
    )
    s.aws.client("elbv2").meta.events.register(
        "before-parameter-build.elastic-load-balancing-v2.CreateRule",
        lambda params, **_: asked.append(("rule", params["ListenerArn"])),
    )
    result = ok(up(s))
    assert len(refused) == 2 and {p["serviceName"] for p in refused} == {"shard-a"}
    assert result.results["service-signal"].outcome is Outcome.CREATED
    # The HTTP listener's forward rule attaches the target group: the shards need no more. (The
    # bridges' service uses no target group and may come first.)
    http_rule = asked.index(("rule", result.results["listener-http"].id))
    assert http_rule < asked.index(("service", "shard-a"))
    shown = progress(s, "service-signal")
    tg = result.results["target-group"].id
    assert "waiting for ECS to see the target group's new listener: retrying " in shown
    assert f"(InvalidParameterException: The target group with targetGroupArn {tg} " in shown
    assert f"blocked by {tg.rsplit(':', 1)[-1]} (listener-http arn:" in shown
    (svc,) = other(harness, "ecs").describe_services(cluster="meet", services=["shard-a"])[
        "services"
    ]
    assert svc["status"] == "ACTIVE" and svc["loadBalancers"][0]["targetGroupArn"] == tg


def test_listener_never_seen_by_ecs_fails_after_the_bound_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "service-signal", patience=SHORT)
    refused = no_lb_yet(harness, s)
    result = up(s)
    detail = one_line_failure(s, result, "service-signal", capsys)
    assert detail.startswith("service-signal: CreateService failed: InvalidParameterException: ")
    assert "does not have an associated load balancer." in detail
    assert "still waiting for ECS to see the target group's new listener after 1s" in detail
    assert len(refused) >= 2

    rerun = ok(up(session(harness, "service-signal")))
    assert rerun.results["service-signal"].outcome is Outcome.CREATED


# -- 4. RegisterTaskDefinition seconds after CreateRole ----------------------------------------

PASS_ROLE = (
    "User: arn:aws:sts::{account}:assumed-role/pcls-operator/deploy is not authorized to perform: "
    "iam:PassRole on resource: {role} because no identity-based policy allows the iam:PassRole "
    "action"
)


def role_not_yet_valid(s: runner.Session, times: int | None) -> dict[str, list[dict[str, Any]]]:
    """The signal family meets `Role is not valid`, the bridges a PassRole denial."""
    ecs = s.aws.client("ecs")
    return {
        "signal": refuse(
            ecs,
            "RegisterTaskDefinition",
            "ClientException",
            "Role is not valid",
            holds=lambda p: p.get("family") == "meet-shard-a",
            times=times,
        ),
        "jvb": refuse(
            ecs,
            "RegisterTaskDefinition",
            "AccessDeniedException",
            lambda p: PASS_ROLE.format(account=ACCOUNT, role=p["taskRoleArn"]),
            holds=lambda p: p.get("family") == "meet-jvb",
            times=times,
        ),
    }


def test_task_definitions_registered_before_their_roles_propagate_are_retried(
    harness: Harness,
) -> None:
    s = session(harness, patience=ROOMY)
    refused = role_not_yet_valid(s, times=2)
    result = ok(up(s))
    assert {k: len(v) for k, v in refused.items()} == {"signal": 2, "jvb": 2}
    for task in ("signal", "jvb"):
        assert result.results[f"taskdef-{task}"].outcome is Outcome.CREATED
        assert result.results[f"service-{task}"].outcome is Outcome.CREATED
    shown = progress(s, "taskdef-signal")
    assert "waiting for IAM to propagate the task roles: retrying (ClientException: Role is " in (
        shown
    )
    assert "blocked by meet-execution, meet-signal-task" in shown
    assert "iam:PassRole on resource: arn:aws:iam::" in progress(s, "taskdef-jvb")
    ecs = other(harness, "ecs")
    for family in ("meet-shard-a", "meet-jvb"):  # one revision each: a refusal registers nothing
        arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        assert [a.rsplit("/", 1)[-1] for a in arns] == [f"{family}:1"]


def test_pass_role_denied_past_the_iam_window_fails_naming_it_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "taskdef-jvb", patience=SHORT)
    role_not_yet_valid(s, times=None)
    result = up(s)
    detail = one_line_failure(s, result, "taskdef-jvb", capsys)
    assert detail.startswith("taskdef-jvb: RegisterTaskDefinition failed: AccessDeniedException: ")
    assert "is not authorized to perform: iam:PassRole on resource: arn:aws:iam::" in detail
    assert "still waiting for IAM to propagate the task roles after 1s" in detail
    assert "blocked by meet-execution, meet-jvb-task" in detail

    rerun = ok(up(session(harness, "taskdef-jvb")))
    assert rerun.results["taskdef-jvb"].outcome is Outcome.CREATED


# -- 4. ECS cannot assume the role: a service event, not an API error --------------------------

ROLE_EVENT = (
    "(service jvb) failed to launch a task with (error ECS was unable to assume the role "
    "'arn:aws:iam::{account}:role/pcls/meet-jvb-task' that was provided for this task. Please "
    "verify that the role being passed has the proper trust relationship and permissions and "
    "that your IAM user has permissions to pass this role.)."
)


def rollouts_fail_on_the_role(s: runner.Session, failing: int) -> list[str]:
    """The first `failing` jvb deployments fail on the circuit breaker: ECS could not assume the
    task role. Returns the ids of the deployments made to fail."""
    failed: list[str] = []
    lock = threading.Lock()

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for svc in parsed.get("services", []):
            if svc["serviceName"] != "jvb" or not svc.get("deployments"):
                continue
            dep = svc["deployments"][0]
            with lock:
                if dep["id"] not in failed and len(failed) < failing:
                    failed.append(dep["id"])
                if dep["id"] not in failed:
                    continue
            dep["rolloutState"] = "FAILED"
            dep["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
            dep["runningCount"] = 0
            svc["runningCount"] = 0
            svc["events"] = [
                {
                    "id": f"ev-{dep['id'][-6:]}",
                    "createdAt": dep["createdAt"] + dt.timedelta(seconds=1),
                    "message": ROLE_EVENT.format(account=ACCOUNT),
                }
            ]

    s.aws.client("ecs").meta.events.register("after-call.ecs.DescribeServices", rewrite)
    return failed


def forced(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [u for u in updates if u.get("forceNewDeployment")]


def test_role_ecs_cannot_assume_yet_fails_the_rollout_once_and_up_redeploys(
    harness: Harness,
) -> None:
    s = session(harness, patience=ROOMY)
    failed = rollouts_fail_on_the_role(s, failing=1)
    updates = sent(s, "ecs", "UpdateService")
    result = ok(up(s))
    assert len(failed) == 1
    assert result.results["service-jvb"].outcome is Outcome.CREATED
    (again,) = forced(updates)
    taskdef = result.results["taskdef-jvb"].id
    assert again == {
        "cluster": "meet",
        "service": "jvb",
        "taskDefinition": taskdef,  # the wanted revision, never a rollback's
        "forceNewDeployment": True,
    }
    shown = progress(s, "service-jvb")
    assert "waiting for IAM to propagate the task roles: (service jvb) failed to launch" in shown
    assert f"starting a new deployment (1 of at most {IAM_REDEPLOYS})" in shown


def test_role_never_assumable_in_the_rollout_fails_after_bounded_redeploys(
    harness: Harness,
) -> None:
    s = session(harness, "service-jvb", patience=ROOMY)
    rollouts_fail_on_the_role(s, failing=100)
    updates = sent(s, "ecs", "UpdateService")
    result = up(s)
    failure = result.results["service-jvb"]
    assert failure.outcome is Outcome.FAILED
    assert len(forced(updates)) == IAM_REDEPLOYS
    assert "ECS deployment circuit breaker: tasks failed to start." in failure.detail
    assert "last events: (service jvb) failed to launch a task with (error ECS was unable" in (
        failure.detail
    )


def test_role_event_after_the_iam_window_fails_the_rollout_at_once(harness: Harness) -> None:
    s = session(harness, "service-jvb", patience=replace(ROOMY, iam_propagation=0.0))
    rollouts_fail_on_the_role(s, failing=100)
    updates = sent(s, "ecs", "UpdateService")
    result = up(s)
    assert result.results["service-jvb"].outcome is Outcome.FAILED
    assert forced(updates) == []


# -- 5. two writes to one scalable target at once ----------------------------------------------

SCHEDULE = """[jvb]
min_count = 1
max_count = 4
[[scaling.schedule]]
name = "evening"
cron = "cron(0 19 ? * MON-FRI *)"
min_count = 1
max_count = 1
[[scaling.schedule]]
name = "morning"
cron = "cron(0 7 ? * MON-FRI *)"
min_count = 1
max_count = 4
"""
PENDING = "You already have a pending update to an Auto Scaling resource."


class OneWriteAtATime:
    """Application Auto Scaling as AWS runs it: a write to a scalable target while another is in
    flight is refused with ConcurrentUpdateException. Each write takes `seconds`, so two steps
    writing at once would overlap."""

    WRITES = ("PutScalingPolicy", "PutScheduledAction", "RegisterScalableTarget")

    def __init__(self, client: Any, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []
        self.lock = threading.Lock()
        client.meta.events.register("before-parameter-build", self.remember)
        # Last: a refusal raised by an earlier handler never reaches AWS, so it is not a write.
        client.meta.events.register_last("before-call", self.begin)
        client.meta.events.register("after-call", self.end)

    def remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["target"] = params.get("ResourceId", "")

    def begin(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in self.WRITES:
            return
        target = context.get("target", "")
        with self.lock:
            busy = self.in_flight.get(target, 0)
            if busy:
                self.overlaps.append(model.name)
            self.in_flight[target] = busy + 1
            context["counted"] = True
        time.sleep(self.seconds)
        if busy:
            self.end(model, context)
            raise client_error("ConcurrentUpdateException", PENDING, model.name)

    def end(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.pop("counted", False):
            with self.lock:
                self.in_flight[context.get("target", "")] -= 1


def test_policies_and_schedule_never_write_the_target_at_once_and_a_pending_update_is_retried(
    harness: Harness,
) -> None:
    harness.write_config(SCHEDULE)
    s = session(
        harness,
        "scaling-policies",
        "scaling-schedule",
        patience=replace(ROOMY, concurrent_update=3.0),
    )
    assert "scaling-policies" in s.engine.steps["scaling-schedule"].depends_on
    aas = s.aws.client("application-autoscaling")
    target = OneWriteAtATime(aas)
    # And once AWS's own: a scaling activity on the target holds the first scheduled action.
    pending = refuse(aas, "PutScheduledAction", "ConcurrentUpdateException", PENDING, times=1)
    result = ok(up(s))
    assert target.overlaps == [] and len(pending) == 1
    calls = order(s)
    last_policy = max(i for i, c in enumerate(calls) if c.endswith(":PutScalingPolicy"))
    assert last_policy < calls.index("application-autoscaling:PutScheduledAction")
    assert calls.count("application-autoscaling:PutScheduledAction") == 3  # 2 actions, 1 retry
    assert result.results["scaling-schedule"].outcome is Outcome.UPDATED
    assert "waiting for another update of the scalable target to finish: retrying " in progress(
        s, "scaling-schedule"
    )
    actions = other(harness, "application-autoscaling").describe_scheduled_actions(
        ServiceNamespace="ecs"
    )["ScheduledActions"]
    assert sorted(a["ScheduledActionName"] for a in actions) == ["meet-evening", "meet-morning"]


def test_a_pending_update_past_the_bound_fails_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "scaling-policies", patience=replace(SHORT, concurrent_update=1.0))
    refuse(
        s.aws.client("application-autoscaling"),
        "PutScalingPolicy",
        "ConcurrentUpdateException",
        PENDING,
    )
    result = up(s)
    detail = one_line_failure(s, result, "scaling-policies", capsys)
    assert detail.startswith(
        "scaling-policies: PutScalingPolicy failed: ConcurrentUpdateException: "
    )
    assert "still waiting for another update of the scalable target to finish after 1s" in detail

    rerun = ok(up(session(harness, "scaling-policies")))
    assert rerun.results["scaling-policies"].outcome is Outcome.CREATED


# -- 6. reads right after deletes --------------------------------------------------------------


class StaleReads:
    """Reads that still show what was just deleted, as IAM, SNS and SSM do for a while.

    After DeleteRole, DeleteTopic or DeleteParameters, the next `times` GetRole of that role,
    ListTopics and DescribeParameters (`None`: every one) answer what they answered before the
    delete. A topic still listed keeps its tags.
    """

    def __init__(self, s: runner.Session, times: int | None) -> None:
        self.times = times
        self.before: dict[str, dict[str, Any]] = {}  # request -> last answer before the delete
        self.deleted: set[str] = set()
        self.answered: list[str] = []
        self.lock = threading.Lock()
        for service in ("iam", "sns", "ssm"):
            client = s.aws.client(service)
            client.meta.events.register("before-parameter-build", self.remember_params)
            client.meta.events.register("before-call", self.stale)
            # First: the answer as AWS sent it, before botocore decodes IAM's policy documents
            # in place (a stale answer goes through that decoding again).
            client.meta.events.register_first(f"after-call.{service}", self.remember)

    @staticmethod
    def key(model: Any, params: dict[str, Any]) -> str:
        return f"{model.name} {json.dumps(params, sort_keys=True, default=str)}"

    def remember_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["stale_params"] = dict(params)

    def gone(self, model: Any, params: dict[str, Any]) -> str:
        """The deleted resource this read would show, or ''."""
        if model.name == "GetRole" and params.get("RoleName") in self.deleted:
            return f"role {params['RoleName']}"
        if model.name in ("ListTopics", "ListTagsForResource") and "topic" in self.deleted:
            return "topic"
        if model.name == "DescribeParameters" and "parameters" in self.deleted:
            return "parameters"
        return ""

    def stale(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("stale_params", {})
        what = self.gone(model, params)
        old = self.before.get(self.key(model, params))
        if not what or old is None:
            return None
        with self.lock:
            if model.name != "ListTagsForResource":
                if self.times is not None and self.answered.count(what) >= self.times:
                    return None
                self.answered.append(what)
        return answer(copy.deepcopy(old))

    def remember(
        self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        params = context.get("stale_params", {})
        if "Error" in parsed:
            return
        if model.name == "DeleteRole":
            self.deleted.add(params["RoleName"])
        elif model.name == "DeleteTopic":
            self.deleted.add("topic")
        elif model.name == "DeleteParameters":
            self.deleted.add("parameters")
        elif model.name.startswith(("Get", "List", "Describe")) and not self.gone(model, params):
            self.before[self.key(model, params)] = copy.deepcopy(parsed)


def test_reads_that_still_show_deleted_resources_are_looked_at_again_before_reporting(
    harness: Harness,
) -> None:
    ok(harness.up())
    s = session(harness, patience=replace(FAST, read_lag=3.0))
    stale = StaleReads(s, times=2)
    result = ok(teardown(s))
    assert result.remaining == []
    roles = [f"role meet-{r}" for r in ("execution", "jvb-task", "signal-task", "wake")]
    roles.append("role meet-wake-schedule")
    assert sorted(set(stale.answered)) == sorted([*roles, "parameters", "topic"])
    assert all(stale.answered.count(w) == 2 for w in stale.answered)  # then AWS caught up
    infos = [e[1] for e in s.ui.events if e[0] == "info"]  # type: ignore[attr-defined]
    (note,) = [i for i in infos if i.startswith("teardown: AWS still lists ")]
    for step in ("role-execution", "alarm-topic", "secrets"):
        assert step in note
    assert "reads lag behind deletes, looking again for up to 3s" in note
    nothing_left(harness)


def test_a_resource_still_listed_after_the_bound_is_reported(harness: Harness, capsys: Any) -> None:
    ok(harness.up())
    s = session(harness, patience=replace(FAST, read_lag=0.3))
    stale = StaleReads(s, times=None)
    result = teardown(s)
    assert not result.failures
    assert "role-jvb (iam role meet-jvb-task)" in result.remaining
    assert any(r.startswith("alarm-topic (sns topic arn:aws:sns:") for r in result.remaining)
    assert stale.answered.count("role meet-jvb-task") >= 3  # looked at again, backing off
    capsys.readouterr()
    assert runner.finish(s, result, "teardown") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: teardown finished but AWS still reports: ")


# -- 8. the secrets' dates against the deployments', with AWS's clock off ----------------------


def aws_clock(s: runner.Session, skew: dt.timedelta) -> None:
    """AWS's clock `skew` away from this machine's: every date the run reads is AWS's."""

    def shift(item: dict[str, Any], *keys: str) -> None:
        for key in keys:
            if isinstance(item.get(key), dt.datetime):
                item[key] += skew

    def parameters(parsed: dict[str, Any], **_: Any) -> None:
        for p in parsed.get("Parameters", []):
            shift(p, "LastModifiedDate")

    def services(parsed: dict[str, Any], **_: Any) -> None:
        for svc in [*parsed.get("services", []), *filter(None, [parsed.get("service")])]:
            shift(svc, "createdAt")
            for d in svc.get("deployments") or []:
                shift(d, "createdAt", "updatedAt")
            for e in svc.get("events") or []:
                shift(e, "createdAt")

    s.aws.client("ssm").meta.events.register("after-call.ssm.DescribeParameters", parameters)
    ecs = s.aws.client("ecs").meta.events
    for op in ("DescribeServices", "CreateService", "UpdateService"):
        ecs.register(f"after-call.ecs.{op}", services)


TEN_MINUTES = dt.timedelta(minutes=10)


def test_cold_up_with_the_local_clock_ahead_of_aws_redeploys_nothing(harness: Harness) -> None:
    s = session(harness)
    aws_clock(s, -TEN_MINUTES)  # AWS's dates are earlier than this machine's now
    updates = sent(s, "ecs", "UpdateService")
    result = ok(up(s))
    assert forced(updates) == []
    for task in ("signal", "jvb"):
        assert result.results[f"service-{task}"].outcome is Outcome.CREATED
    # The dates compared are AWS's, read back after PutParameter.
    modified = s.ctx.outputs["secrets"].attrs["modified"]
    described = other(harness, "ssm").describe_parameters()["Parameters"]
    assert modified == {
        p["Name"].rsplit("/", 1)[-1]: p["LastModifiedDate"] - TEN_MINUTES for p in described
    }


def test_secret_recreated_with_the_local_clock_behind_aws_redeploys_its_readers(
    harness: Harness,
) -> None:
    first = session(harness)
    aws_clock(first, TEN_MINUTES)
    ok(up(first))
    other(harness, "ssm").delete_parameter(Name="/pcls/meet/JVB_AUTH_PASSWORD")
    s = session(harness)
    aws_clock(s, TEN_MINUTES)  # AWS's dates are later than this machine's now
    updates = sent(s, "ecs", "UpdateService")
    result = ok(up(s))
    assert result.results["secrets"].outcome is Outcome.UPDATED
    assert sorted(u["service"] for u in forced(updates)) == ["jvb", "shard-a", "shard-b"]
    assert result.results["service-jvb"].drift == [
        "JVB_AUTH_PASSWORD changed after the current deployment started"
    ]
    assert result.results["service-signal"].drift == [
        f"{shard}: JVB_AUTH_PASSWORD changed after the current deployment started"
        for shard in ("shard-a", "shard-b")
    ]


# -- 11. bridges in calls: a jvb rollout, status, teardown -------------------------------------


def old_bridges_in_calls(s: runner.Session, busy: int, starting: int = 0) -> None:
    """After a new jvb revision, `busy` bridges of the old one keep running: the bridge guard
    protects them from scale-in while they host conferences, so the rollout never completes.
    The new bridge is pending for the first `starting` answers."""
    seen: list[int] = []

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for svc in parsed.get("services", []):
            if svc["serviceName"] != "jvb" or svc["taskDefinition"].endswith(":1"):
                continue
            seen.append(1)
            up = len(seen) > starting
            new = dict(svc["deployments"][0])
            new.update(status="PRIMARY", rolloutState="IN_PROGRESS", desiredCount=1)
            new.update(runningCount=int(up), pendingCount=int(not up))
            old = {
                "id": "ecs-svc/0123456789012345678",
                "status": "ACTIVE",
                "taskDefinition": svc["taskDefinition"].rsplit(":", 1)[0] + ":1",
                "desiredCount": 0,
                "runningCount": busy,
                "pendingCount": 0,
                "rolloutState": "COMPLETED",
            }
            svc["deployments"] = [new, old]
            svc["runningCount"] = int(up) + busy

    s.aws.client("ecs").meta.events.register("after-call.ecs.DescribeServices", rewrite)


def test_jvb_rollout_finishes_when_the_new_bridges_run_and_reports_the_old_ones_draining(
    harness: Harness,
) -> None:
    ok(harness.up())
    harness.write_config('[jitsi]\nimage_tag = "stable-99999"\n')
    s = session(harness, patience=replace(FAST, service_stable=3.0))
    old_bridges_in_calls(s, busy=2, starting=2)
    result = ok(up(s))  # no timeout: the old bridges are not waited for
    jvb = result.results["service-jvb"]
    assert jvb.outcome is Outcome.UPDATED
    assert jvb.detail.endswith(
        "2 old bridges draining (scale-in protected while they host calls; each stops when its "
        "calls end)"
    )
    assert jvb.elapsed < 3.0
    shown = progress(s, "service-jvb")
    assert "jvb 0/1 running (1 pending) · 2 old bridges draining" in shown  # the new ones' counts
    assert "new bridges run; 2 old bridges draining" in shown

    st = session(harness)
    old_bridges_in_calls(st, busy=2)
    status = st.engine.status()
    assert status.results["service-jvb"].details["draining"] == 2
    table = io.StringIO()
    Console(file=table, width=400).print(runner.status_table(status))
    (row,) = [line for line in table.getvalue().splitlines() if "service-jvb" in line]
    assert "draining=2" in row


def bridges_running(s: runner.Session, tasks: int) -> list[str]:
    """ECS lists `tasks` running bridges (moto starts no task for a service)."""
    arns = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/meet/{i:032x}" for i in range(1, tasks + 1)]

    def listed(model: Any, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("bridges_params", {})
        if params.get("serviceName") == "jvb" and params.get("desiredStatus") == "RUNNING":
            return answer({"taskArns": list(arns)})
        return None

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bridges_params"] = dict(params)

    events = s.aws.client("ecs").meta.events
    events.register("before-parameter-build.ecs.ListTasks", remember)
    events.register("before-call.ecs.ListTasks", listed)
    return arns


def protection(
    s: runner.Session, refuse_with: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Answer UpdateTaskProtection as ECS does (moto lacks it); returns the requests."""
    calls: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    def reply(model: Any, **_: Any) -> Any:
        if refuse_with:
            raise client_error(*refuse_with, model.name)
        tasks = calls[-1]["tasks"]
        return answer(
            {
                "protectedTasks": [{"taskArn": t, "protectionEnabled": False} for t in tasks],
                "failures": [],
            }
        )

    events = s.aws.client("ecs").meta.events
    events.register("before-parameter-build.ecs.UpdateTaskProtection", remember)
    events.register("before-call.ecs.UpdateTaskProtection", reply)
    return calls


def ecs_writes(s: runner.Session) -> list[str]:
    """'<Operation> <service>' of every ECS write naming a service or a cluster, in order."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if not model.name.startswith(("Describe", "List")):
            with lock:
                seen.append(f"{model.name} {params.get('service') or params.get('cluster')}")

    s.aws.client("ecs").meta.events.register("before-parameter-build.ecs", record)
    return seen


def test_teardown_clears_the_bridges_scale_in_protection_before_scaling_them_to_0(
    harness: Harness,
) -> None:
    ok(harness.up())
    s = session(harness)
    arns = bridges_running(s, tasks=12)
    calls = protection(s)
    writes = ecs_writes(s)
    result = ok(teardown(s))
    assert (
        [(c["cluster"], c["tasks"], c["protectionEnabled"]) for c in calls]
        == [
            ("meet", arns[:10], False),  # at most 10 tasks per call
            ("meet", arns[10:], False),
        ]
    )
    jvb = [w for w in writes if w.endswith((" jvb", " meet")) and "Cluster" not in w]
    assert jvb[:4] == [
        "UpdateTaskProtection meet",
        "UpdateTaskProtection meet",
        "UpdateService jvb",  # scaled to 0 only once no bridge is protected
        "DeleteService jvb",
    ]
    shown = progress(s, "service-jvb")
    assert "cleared the scale-in protection of 12 of 12 bridges: their calls end now" in shown
    assert result.results["service-jvb"].outcome is Outcome.DELETED
    nothing_left(harness)


DENIED = (
    "AccessDeniedException",
    f"User: arn:aws:sts::{ACCOUNT}:assumed-role/pcls-operator/deploy is not authorized to "
    f"perform: ecs:UpdateTaskProtection on resource: arn:aws:ecs:{REGION}:{ACCOUNT}:task/meet/"
    "00000000000000000000000000000001",
)


def still_draining(s: runner.Session, running: int) -> None:
    """After DeleteService the jvb service stays DRAINING: protected bridges keep running."""
    deleted: list[bool] = []

    def mark(**_: Any) -> None:
        deleted.append(True)

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for svc in parsed.get("services", []):
            if deleted and svc["serviceName"] == "jvb":
                svc["status"] = "DRAINING"
                svc["runningCount"] = running

    def on_delete(params: dict[str, Any], **_: Any) -> None:
        if params.get("service") == "jvb":
            mark()

    events = s.aws.client("ecs").meta.events
    events.register("before-parameter-build.ecs.DeleteService", on_delete)
    events.register("after-call.ecs.DescribeServices", rewrite)


def test_protection_that_cannot_be_cleared_is_reported_and_teardown_waits_bounded(
    harness: Harness, capsys: Any
) -> None:
    ok(harness.up())
    s = session(harness, patience=replace(FAST, resource_gone=1.0))
    bridges_running(s, tasks=2)
    calls = protection(s, refuse_with=DENIED)
    still_draining(s, running=2)
    result = teardown(s)
    assert len(calls) == 1
    infos = [e[1] for e in s.ui.events if e[0] == "info"]  # type: ignore[attr-defined]
    (note,) = [i for i in infos if "could not clear the bridges' scale-in protection" in i]
    assert note.startswith("service-jvb: could not clear the bridges' scale-in protection ")
    assert "AccessDeniedException: User: " in note and "ecs:UpdateTaskProtection" in note
    assert "teardown waits up to 1s for the service to go" in note
    detail = one_line_failure(s, result, "service-jvb", capsys)
    assert detail == (
        "service-jvb: gave up waiting for jvb to become INACTIVE after 1s "
        "(last state: DRAINING, 2 running)"
    )

    rerun = ok(teardown(session(harness)))  # the bridges' calls ended: AWS let go
    assert rerun.results["service-jvb"].outcome is Outcome.ABSENT
    nothing_left(harness)

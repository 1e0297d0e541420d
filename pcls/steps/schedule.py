"""EventBridge Scheduler: the schedule group `pcls-<stack>` and its one schedule, `tick`.

`tick` invokes the wake function every 5 minutes with {"pcls": "tick"}: the function wakes the
stack at an awake window's start, puts it to sleep at its end or after `schedule.idle_minutes`
with no conference, and finishes a wake in progress. One rate schedule rather than one per window
edge: the windows live in the function's environment, so a change of `[schedule]` changes one
variable, and a tick missed (Scheduler retries for a day) is made good by the next.

- Ownership: a schedule carries no tags on AWS; its group does (CreateScheduleGroup Tags). The
  group is the step's resource; every schedule in it is pcls's, and one pcls did not make there
  is removed.
- Scheduler checks at CreateSchedule that it can assume the execution role; a role made moments
  ago answers ValidationException until IAM has propagated it: retried for
  `patience.iam_propagation`.
- Deleting the group deletes its schedules; the group is DELETING for a while, and a group of
  that name cannot be created until it is gone: teardown waits for it.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions

from pcls.aws import ignore_missing, is_not_found, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.steps.iam import SCHEDULE_ROLE_STEP
from pcls.steps.platform import schedule_group_name
from pcls.steps.wake import STEP as FUNCTION_STEP

STEP = "wake-schedule"
TICK = "tick"
TICK_EVERY = "rate(5 minutes)"
TICK_INPUT = {"pcls": "tick"}
# A failed tick is not retried: the next one comes in 5 minutes and every call is idempotent.
RETRY = {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}
ROLE_NOT_YET = ("assume the role", "must allow AWS EventBridge Scheduler")


def _scheduler(ctx: Context) -> Any:
    return ctx.aws.client("scheduler")


def tick_request(function_arn: str, role_arn: str) -> dict[str, Any]:
    """CreateSchedule / UpdateSchedule arguments other than the name and group."""
    return {
        "ScheduleExpression": TICK_EVERY,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": "pcls: the wake function's tick (schedule, idle, wake progress)",
        "Target": {
            "Arn": function_arn,
            "RoleArn": role_arn,
            "Input": json.dumps(TICK_INPUT),
            "RetryPolicy": RETRY,
        },
    }


class WakeSchedule(Step):
    name = STEP
    kind = "scheduler schedule-group"
    id_pattern = r"pcls-[a-z0-9-]+"
    depends_on = (FUNCTION_STEP, SCHEDULE_ROLE_STEP)

    def find(self, ctx: Context) -> Resource | None:
        name = schedule_group_name(ctx.stack)
        client = _scheduler(ctx)
        try:
            group = client.get_schedule_group(Name=name)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        if group.get("State") == "DELETING":
            return None  # on its way out (a teardown still finishing)
        tags = client.list_tags_for_resource(ResourceArn=group["Arn"]).get("Tags", [])
        if not ctx.claims(self.name, name, tags):
            ctx.collision(self.name, name, f"schedule group {name}", tags)
            return None
        listed = ctx.aws.all("scheduler", "list_schedules", "Schedules", GroupName=name)
        schedules = {s["Name"]: s for s in listed}
        tick = None
        if TICK in schedules:
            tick = client.get_schedule(Name=TICK, GroupName=name)
        return Resource(
            name,
            attrs={
                "arn": group["Arn"],
                "tags": tags_of(tags),
                "names": sorted(schedules),
                "tick": tick,
            },
        )

    def tag(self, ctx: Context, res: Resource) -> None:
        _scheduler(ctx).tag_resource(ResourceArn=res.attrs["arn"], Tags=ctx.tags(self.name))

    def create(self, ctx: Context) -> Resource:
        name = schedule_group_name(ctx.stack)
        reply = _scheduler(ctx).create_schedule_group(Name=name, Tags=ctx.tags(self.name))
        attrs = {"arn": reply["ScheduleGroupArn"], "tags": ctx.tag_dict(self.name)}
        return Resource(name, attrs={**attrs, "names": [], "tick": None})

    def _want(self, ctx: Context) -> dict[str, Any]:
        return tick_request(
            ctx.out(FUNCTION_STEP).attrs["arn"], ctx.out(SCHEDULE_ROLE_STEP).attrs["arn"]
        )

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        out = []
        tick = res.attrs["tick"]
        want = self._want(ctx)
        if tick is None:
            out.append(f"schedule {TICK} missing")
        else:
            for key in ("ScheduleExpression", "State", "FlexibleTimeWindow", "Description"):
                if tick.get(key) != want[key]:
                    out.append(f"schedule {TICK} {key} {tick.get(key)!r} -> {want[key]!r}")
            target = tick.get("Target") or {}
            for key in ("Arn", "RoleArn", "Input", "RetryPolicy"):
                if target.get(key) != want["Target"][key]:
                    out.append(f"schedule {TICK} target {key} differs")
        out += [f"schedule {n} not pcls's: removing" for n in res.attrs["names"] if n != TICK]
        return out + tag_drift(ctx.tag_dict(self.name), res.attrs["tags"])

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        client = _scheduler(ctx)
        if any(d.startswith(f"schedule {TICK} ") for d in drift):
            call = client.create_schedule if res.attrs["tick"] is None else client.update_schedule
            ctx.retry_while(
                self.name,
                lambda: call(Name=TICK, GroupName=res.id, **self._want(ctx)),
                codes=(),
                messages=ROLE_NOT_YET,
                timeout=ctx.patience.iam_propagation,
                why="waiting for IAM to propagate the schedule's role",
            )
        for d in drift:
            if d.endswith(" not pcls's: removing"):
                extra = d[len("schedule ") : -len(" not pcls's: removing")]
                ignore_missing(lambda n=extra: client.delete_schedule(Name=n, GroupName=res.id))
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        tick = res.attrs["tick"] or {}
        return {"tick": f"{tick.get('ScheduleExpression', 'missing')} {tick.get('State', '')}"}

    def delete(self, ctx: Context, res: Resource) -> None:
        client = _scheduler(ctx)
        ignore_missing(lambda: client.delete_schedule_group(Name=res.id))

        def gone() -> tuple[bool, str]:
            try:
                state = client.get_schedule_group(Name=res.id).get("State", "")
            except botocore.exceptions.ClientError as exc:
                if is_not_found(exc):
                    return True, "deleted"
                raise
            return False, str(state)

        ctx.wait_for(
            self.name,
            "the schedule group to be deleted",
            gone,
            timeout=ctx.patience.resource_gone,
            hint="run teardown again to resume",
        )


def steps(cfg: Config) -> list[Step]:
    return [WakeSchedule()]

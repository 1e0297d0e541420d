"""Scaling of the JVB service: scalable target, target-tracking policies, scheduled actions.

Application Auto Scaling owns the service's desired count once the target exists: pcls only sets
the target's min/max, the policies and the schedule, and never writes a desired count, so a re-run
cannot undo a scale-out in progress. Scale-in waits for idle bridges because the bridge-guard
sidecar holds ECS task scale-in protection while a bridge hosts conferences
(docs/bridge-guard.md).

Application Auto Scaling refuses a write to a scalable target while another write to it is in
flight (`ConcurrentUpdateException`; PutScalingPolicy beside PutScheduledAction,
hashicorp/terraform-provider-aws#17915). pcls's own writes never overlap (the schedule step
runs after the policies step), and every write is retried on that code for
`patience.concurrent_update`, for what others (or AWS itself) have in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import botocore.config
import botocore.exceptions

from pcls.aws import ignore_missing
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.sidecar_container import (
    METRIC_DIMENSION,
    METRIC_NAMESPACE,
    METRIC_PARTICIPANTS,
    METRIC_STRESS_LEVEL,
)
from pcls.steps.platform import ASLEEP, cluster_name, sleep_state
from pcls.steps.services import describe_all

SERVICE = "application-autoscaling"
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
CPU_METRIC_TYPE = "ECSServiceAverageCPUUtilization"
SCALING_METRICS = {"participants": METRIC_PARTICIPANTS, "stress": METRIC_STRESS_LEVEL}
# Application Auto Scaling creates an AlarmHigh and an AlarmLow for every target tracking policy;
# CloudWatch bills them like any alarm, so the cost model counts them.
ALARMS_PER_TARGET_TRACKING_POLICY = 2
JVB_SERVICE_STEP = "service-jvb"
JVB_SERVICE = "jvb"  # the services step names each ECS service after its task
CONCURRENT = "ConcurrentUpdateException"
SUSPENDED = "scheduled scaling suspended (awake: resumed)"


# -- names -----------------------------------------------------------------------------------


def resource_id(cluster: str, service: str) -> str:
    """Application Auto Scaling's id of an ECS service."""
    return f"service/{cluster}/{service}"


def split_resource_id(rid: str) -> tuple[str, str]:
    """(cluster, service) of a `service/<cluster>/<service>` id."""
    _, cluster, service = rid.split("/", 2)
    return cluster, service


def short_name(value: str) -> str:
    """A cluster or service name from its name or ARN."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def policy_names(stack: str) -> tuple[str, str]:
    """(bridge load policy, CPU guard policy)."""
    return f"{stack}-jvb-load", f"{stack}-jvb-cpu"


def action_name(stack: str, entry_name: str) -> str:
    return f"{stack}-{entry_name}"


def capacity_pairs(cfg: Config) -> set[tuple[int, int]]:
    """(min, max) pairs the target may show: the config's, or one a scheduled action set.

    Scheduled actions change the target's min/max at their times; treating those values as
    drift would make every `up` undo the schedule until its next run.
    """
    pairs = {(cfg.jvb.min_count, cfg.jvb.max_count)}
    pairs |= {(e.min_count, e.max_count) for e in cfg.scaling.schedule}
    return pairs


def policy_requests(cfg: Config, rid: str) -> list[dict[str, Any]]:
    """PutScalingPolicy requests: bridge load target tracking plus the CPU guard.

    With two target tracking policies, Application Auto Scaling scales out when either asks and
    scales in only when both agree, so CPU can only add bridges, never hold the load metric back.
    """
    load_name, cpu_name = policy_names(cfg.stack.name)
    sc = cfg.scaling
    cooldowns = {
        "ScaleOutCooldown": sc.scale_out_cooldown,
        "ScaleInCooldown": sc.scale_in_cooldown,
        "DisableScaleIn": False,
    }
    base = {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION}
    return [
        {
            **base,
            "PolicyName": load_name,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": sc.target,
                "CustomizedMetricSpecification": {
                    "MetricName": SCALING_METRICS[sc.metric],
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [{"Name": METRIC_DIMENSION, "Value": cfg.stack.name}],
                    # every bridge reports under one Stack dimension: Average = load per bridge
                    "Statistic": "Average",
                },
                **cooldowns,
            },
        },
        {
            **base,
            "PolicyName": cpu_name,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": sc.cpu_target,
                "PredefinedMetricSpecification": {"PredefinedMetricType": CPU_METRIC_TYPE},
                **cooldowns,
            },
        },
    ]


def schedule_requests(cfg: Config, rid: str) -> list[dict[str, Any]]:
    """PutScheduledAction requests, one per [[scaling.schedule]] entry, in the stack's zone."""
    return [
        {
            "ServiceNamespace": NAMESPACE,
            "ScheduledActionName": action_name(cfg.stack.name, e.name),
            "ResourceId": rid,
            "ScalableDimension": DIMENSION,
            "Schedule": e.cron,
            "Timezone": cfg.stack.timezone,
            "ScalableTargetAction": {"MinCapacity": e.min_count, "MaxCapacity": e.max_count},
        }
        for e in cfg.scaling.schedule
    ]


def target_tracking_alarm_count(cfg: Config) -> int:
    """CloudWatch alarms Application Auto Scaling makes for pcls's policies."""
    return len(policy_requests(cfg, "service/-/-")) * ALARMS_PER_TARGET_TRACKING_POLICY


# -- lookups ---------------------------------------------------------------------------------


def _client(ctx: Context) -> Any:
    return ctx.aws.client(SERVICE)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def expected_resource_id(ctx: Context) -> str:
    """The bridge service's id from the config: the stack's cluster, the service named jvb."""
    return resource_id(cluster_name(ctx), JVB_SERVICE)


def find_target(ctx: Context) -> dict[str, Any] | None:
    """The bridge service's scalable target, by its resource id.

    DescribeScalableTargets shows no tags, but the id is fixed by the config: the stack's
    cluster and its service named jvb. The claim reaches no further than the stack's own
    bridge service: without that (tagged) service there is no target of this stack.
    """
    svc = describe_all(ctx).get(JVB_SERVICE)
    if svc is None or not ctx.owns(JVB_SERVICE_STEP, svc.get("tags")):
        return None
    rid = expected_resource_id(ctx)
    for target in ctx.aws.all(SERVICE, "describe_scalable_targets", "ScalableTargets", **_ns()):
        if target.get("ResourceId") == rid and target.get("ScalableDimension") == DIMENSION:
            return dict(target)
    return None


def _gone_ok(fn: Any) -> None:
    """Deletes treat not-found as done; moto says ValidationException "No ... found"."""
    ignore_missing(fn, messages=("No scalable target found", "No scaling policy found"))


def _serial(ctx: Context, step: str, fn: Callable[[], Any]) -> Any:
    """One write to the bridge target, retried while another update of it is pending."""
    return ctx.retry_while(
        step,
        fn,
        codes=(CONCURRENT,),
        timeout=ctx.patience.concurrent_update,
        why="waiting for another update of the scalable target to finish",
    )


def _ns() -> dict[str, str]:
    return {"ServiceNamespace": NAMESPACE}


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


# -- status helpers --------------------------------------------------------------------------


def protected_tasks(ctx: Context, cluster: str, service: str) -> str:
    """'<protected> of <running>' bridges with scale-in protection, or 'unknown'."""
    try:
        arns = ctx.aws.all(
            "ecs",
            "list_tasks",
            "taskArns",
            cluster=cluster,
            serviceName=service,
            desiredStatus="RUNNING",
        )
    except botocore.exceptions.ClientError:
        return "unknown"
    if not arns:
        return "0 of 0"
    ecs = ctx.aws.probe_client("ecs")
    protected = 0
    try:
        for chunk in _chunks(arns, 10):  # GetTaskProtection takes at most 10 tasks
            reply = ecs.get_task_protection(cluster=cluster, tasks=chunk)
            protected += sum(
                1 for t in reply.get("protectedTasks", []) if t.get("protectionEnabled")
            )
    except Exception:  # optional detail: never fail status over it (moto lacks this call)
        return "unknown"
    return f"{protected} of {len(arns)}"


# -- steps -----------------------------------------------------------------------------------


class ScalingTarget(Step):
    """The scalable target; drift covers min/max only, never the desired count."""

    name = "scaling-target"
    kind = "appautoscaling target"
    depends_on = (JVB_SERVICE_STEP,)

    def find(self, ctx: Context) -> Resource | None:
        target = find_target(ctx)
        if target is None:
            return None
        return Resource(target["ResourceId"], attrs={"target": target})

    def create(self, ctx: Context) -> Resource:
        rid = expected_resource_id(ctx)
        low, high = self._want(ctx)
        _serial(
            ctx,
            self.name,
            lambda: _client(ctx).register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
                MinCapacity=low,
                MaxCapacity=high,
                Tags=ctx.tag_dict(self.name),
            ),
        )
        target = {"ResourceId": rid, "MinCapacity": low, "MaxCapacity": high}
        return Resource(rid, attrs={"target": target})

    @staticmethod
    def _want(ctx: Context) -> tuple[int, int]:
        """The bounds to restore: 0/0 while the stack sleeps (no bridge may start), else the
        config's."""
        if sleep_state(ctx) == ASLEEP:
            return 0, 0
        return ctx.cfg.jvb.min_count, ctx.cfg.jvb.max_count

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        target = res.attrs["target"]
        have = (target.get("MinCapacity"), target.get("MaxCapacity"))
        want = self._want(ctx)
        asleep = want == (0, 0)
        suspended = bool((target.get("SuspendedState") or {}).get("ScheduledScalingSuspended"))
        # The wake function suspends scheduled scaling while asleep ([[scaling.schedule]] sets
        # min/max itself); awake, a suspension left behind would silence the schedule.
        out = [SUSPENDED] if suspended and not asleep else []
        if asleep:
            return out + ([] if have == want else [f"min/max {have[0]}/{have[1]} (asleep: 0/0)"])
        if have in capacity_pairs(ctx.cfg):
            return out
        return [*out, f"min/max {have[0]}/{have[1]} (config {want[0]}/{want[1]})"]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        # Min/max only: RegisterScalableTarget on an existing target leaves the desired count to
        # Application Auto Scaling (it moves it only to stay inside the new bounds).
        low, high = self._want(ctx)
        resume = {"SuspendedState": {"ScheduledScalingSuspended": False}}
        _serial(
            ctx,
            self.name,
            lambda: _client(ctx).register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=res.id,
                ScalableDimension=DIMENSION,
                MinCapacity=low,
                MaxCapacity=high,
                **(resume if SUSPENDED in drift else {}),
            ),
        )

    def delete(self, ctx: Context, res: Resource) -> None:
        # Deleting the ECS service removes its target too; then this is a not-found.
        _serial(
            ctx,
            self.name,
            lambda: _gone_ok(
                lambda: _client(ctx).deregister_scalable_target(
                    ServiceNamespace=NAMESPACE, ResourceId=res.id, ScalableDimension=DIMENSION
                )
            ),
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        target = res.attrs["target"]
        cluster, service = split_resource_id(res.id)
        out: dict[str, Any] = {
            "min": target.get("MinCapacity"),
            "desired": "unknown",
            "max": target.get("MaxCapacity"),
        }
        # The service steps' own DescribeServices call: shared, so status pays nothing extra.
        svc = describe_all(ctx).get(service) if cluster == cluster_name(ctx) else None
        if svc is not None:
            out["desired"] = svc.get("desiredCount")
            out["running"] = svc.get("runningCount")
        out["protected"] = protected_tasks(ctx, cluster, service)
        return out


class ScalingPolicies(Step):
    """Target tracking on the bridge load metric, plus a CPU guard; parameters reconciled."""

    name = "scaling-policies"
    kind = "appautoscaling policies"
    depends_on = ("scaling-target",)

    def find(self, ctx: Context) -> Resource | None:
        # Only on this stack's target: a same-named policy elsewhere is none of pcls's business.
        if find_target(ctx) is None:
            return None
        rid = expected_resource_id(ctx)
        names = set(policy_names(ctx.stack))
        policies = {
            p["PolicyName"]: p
            for p in ctx.aws.all(SERVICE, "describe_scaling_policies", "ScalingPolicies", **_ns())
            if p.get("PolicyName") in names
            and p.get("ResourceId") == rid
            and p.get("ScalableDimension") == DIMENSION
        }
        return Resource(rid, attrs={"policies": policies}) if policies else None

    def create(self, ctx: Context) -> Resource:
        rid = ctx.out("scaling-target").id
        client = _client(ctx)
        policies = {}
        for request in policy_requests(ctx.cfg, rid):
            _serial(ctx, self.name, lambda r=request: client.put_scaling_policy(**r))
            policies[request["PolicyName"]] = request
        return Resource(rid, attrs={"policies": policies})

    def _diffs(self, ctx: Context, res: Resource) -> dict[str, list[str]]:
        """Per policy name: what differs from the config (empty list = in sync)."""
        out: dict[str, list[str]] = {}
        for want in policy_requests(ctx.cfg, res.id):
            have = res.attrs["policies"].get(want["PolicyName"])
            out[want["PolicyName"]] = ["missing"] if have is None else _policy_diff(want, have)
        return out

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        return [f"{name} {d}" for name, diffs in self._diffs(ctx, res).items() for d in diffs]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        client = _client(ctx)
        diffs = self._diffs(ctx, res)
        for request in policy_requests(ctx.cfg, res.id):
            if diffs[request["PolicyName"]]:
                _serial(ctx, self.name, lambda r=request: client.put_scaling_policy(**r))

    def delete(self, ctx: Context, res: Resource) -> None:
        client = _client(ctx)
        for name in res.attrs["policies"]:
            _serial(
                ctx,
                self.name,
                lambda name=name: _gone_ok(
                    lambda: client.delete_scaling_policy(
                        PolicyName=name,
                        ServiceNamespace=NAMESPACE,
                        ResourceId=res.id,
                        ScalableDimension=DIMENSION,
                    )
                ),
            )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        parts = []
        for name, policy in sorted(res.attrs["policies"].items()):
            conf = policy.get("TargetTrackingScalingPolicyConfiguration", {})
            custom = conf.get("CustomizedMetricSpecification") or {}
            predefined = conf.get("PredefinedMetricSpecification") or {}
            metric = custom.get("MetricName") or predefined.get("PredefinedMetricType", "?")
            short = name.removeprefix(ctx.stack + "-")
            parts.append(f"{short}: {metric} {conf.get('TargetValue')}")
        return {"policies": "; ".join(parts)}


def _policy_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """Fields pcls sets that differ. Absent DisableScaleIn means False, as AWS defines it."""
    if have.get("PolicyType") != want["PolicyType"]:
        return [f"type {have.get('PolicyType')} (want {want['PolicyType']})"]
    w = want["TargetTrackingScalingPolicyConfiguration"]
    h = have.get("TargetTrackingScalingPolicyConfiguration") or {}
    out = []
    if _num(h.get("TargetValue")) != _num(w["TargetValue"]):
        out.append(f"TargetValue {h.get('TargetValue')} (want {w['TargetValue']})")
    for key in ("ScaleOutCooldown", "ScaleInCooldown"):
        if h.get(key) != w[key]:
            out.append(f"{key} {h.get(key)} (want {w[key]})")
    if bool(h.get("DisableScaleIn", False)) != w["DisableScaleIn"]:
        out.append(f"DisableScaleIn {h.get('DisableScaleIn')} (want {w['DisableScaleIn']})")
    if "PredefinedMetricSpecification" in w:
        want_type = w["PredefinedMetricSpecification"]["PredefinedMetricType"]
        have_type = (h.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        if have_type != want_type:
            out.append(f"metric {have_type} (want {want_type})")
    else:
        wm = w["CustomizedMetricSpecification"]
        hm = h.get("CustomizedMetricSpecification") or {}
        for key in ("MetricName", "Namespace", "Statistic"):
            if hm.get(key) != wm[key]:
                out.append(f"metric {key} {hm.get(key)} (want {wm[key]})")
        have_dims, want_dims = _dims(hm.get("Dimensions")), _dims(wm["Dimensions"])
        if have_dims != want_dims:
            out.append(f"metric dimensions {have_dims} (want {want_dims})")
        if hm.get("Unit"):
            out.append(f"metric unit {hm['Unit']} (want none)")
    return out


def _dims(dims: list[dict[str, str]] | None) -> list[tuple[str, str]]:
    return sorted((d["Name"], d["Value"]) for d in dims or ())


class ScalingSchedule(Step):
    """The scheduled actions of the bridge target.

    The resource is the target's schedule: it exists whenever the target does, with zero or
    more actions. An empty [[scaling.schedule]] is then simply "no pcls actions" (in sync, or
    drift that deletes what an earlier config made) instead of a step that would look new on
    every run. AWS deletes a target's actions with the target.
    """

    name = "scaling-schedule"
    kind = "appautoscaling schedule"
    # After the policies: two writes to one scalable target at once are refused
    # (ConcurrentUpdateException), so the policies' and the schedule's never overlap.
    depends_on = ("scaling-target", "scaling-policies")

    def find(self, ctx: Context) -> Resource | None:
        target = find_target(ctx)
        if target is None:
            return None
        return Resource(
            target["ResourceId"], attrs={"actions": _actions(ctx, target["ResourceId"])}
        )

    def create(self, ctx: Context) -> Resource:
        # Reached only when the target was not there at find time: the actions come as drift.
        return Resource(ctx.out("scaling-target").id, attrs={"actions": {}})

    def _plan(
        self, ctx: Context, res: Resource
    ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """(requests to put, their drift lines, names of actions to delete)."""
        put, lines = [], []
        actions = res.attrs["actions"]
        wanted = schedule_requests(ctx.cfg, res.id)
        for want in wanted:
            name = want["ScheduledActionName"]
            have = actions.get(name)
            diffs = ["missing"] if have is None else _action_diff(want, have)
            if diffs:
                put.append(want)
                lines += [f"{name} {d}" for d in diffs]
        names = {w["ScheduledActionName"] for w in wanted}
        extra = sorted(n for n in actions if n not in names)
        lines += [f"{n} not in config" for n in extra]
        return put, lines, extra

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        return self._plan(ctx, res)[1]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        client = _client(ctx)
        put, _, extra = self._plan(ctx, res)
        for request in put:
            _serial(ctx, self.name, lambda r=request: client.put_scheduled_action(**r))
        for name in extra:
            _delete_action(ctx, self.name, res.id, name)

    def delete(self, ctx: Context, res: Resource) -> None:
        for name in res.attrs["actions"]:
            _delete_action(ctx, self.name, res.id, name)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        actions = res.attrs["actions"]
        return {"actions": len(actions), "timezone": ctx.cfg.stack.timezone}


def _actions(ctx: Context, rid: str) -> dict[str, dict[str, Any]]:
    """pcls's scheduled actions (named <stack>-...) on the target: one call per target."""
    items = ctx.aws.all(
        SERVICE,
        "describe_scheduled_actions",
        "ScheduledActions",
        ServiceNamespace=NAMESPACE,
        ResourceId=rid,
        ScalableDimension=DIMENSION,
    )
    prefix = f"{ctx.stack}-"
    return {
        a["ScheduledActionName"]: a
        for a in items
        if a["ScheduledActionName"].startswith(prefix) and a.get("ResourceId") == rid
    }


def _action_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    out = []
    if have.get("Schedule") != want["Schedule"]:
        out.append(f"schedule {have.get('Schedule')} (want {want['Schedule']})")
    # Compared only when AWS reports a zone: an endpoint that drops the field would otherwise
    # show drift that no write can repair.
    if have.get("Timezone") and have["Timezone"] != want["Timezone"]:
        out.append(f"timezone {have['Timezone']} (want {want['Timezone']})")
    w = want["ScalableTargetAction"]
    h = have.get("ScalableTargetAction") or {}
    if (h.get("MinCapacity"), h.get("MaxCapacity")) != (w["MinCapacity"], w["MaxCapacity"]):
        out.append(
            f"min/max {h.get('MinCapacity')}/{h.get('MaxCapacity')} "
            f"(want {w['MinCapacity']}/{w['MaxCapacity']})"
        )
    return out


def _delete_action(ctx: Context, step: str, rid: str, name: str) -> None:
    client = _client(ctx)
    _serial(
        ctx,
        step,
        lambda: _gone_ok(
            lambda: client.delete_scheduled_action(
                ServiceNamespace=NAMESPACE,
                ScheduledActionName=name,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
            )
        ),
    )


def steps(cfg: Config) -> list[Step]:
    return [ScalingTarget(), ScalingPolicies(), ScalingSchedule()]

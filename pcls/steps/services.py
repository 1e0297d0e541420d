"""Services: one ECS service per signal shard (step service-signal) and `jvb` (the bridges).

All run in the public subnets with a public IP (no NAT gateway: the bridges need public
addresses for media anyway), with the deployment circuit breaker rolling back a failed rollout.

- shards (`shard-a`, `shard-b`, ...): regular FARGATE, desired 1, minimumHealthyPercent 0 /
  maximumPercent 100. A shard has exactly one prosody; two at once under one shard name would
  split its rooms and the bridges' brewery between two tasks, so the old task stops before the
  new one starts. Each shard is pinned to the subnet of one AZ, round robin over the AZs, and
  registered in its own Cloud Map name (discovery-xmpp) and in the target group: the ALB's
  target is the shard task's router (pcls/router.py), which hashes each room to its shard.
- jvb: one pool for all shards (XMPP_SERVER lists every shard). FARGATE base
  `jvb.ondemand_base`, then FARGATE_SPOT at `jvb.spot_weight` against FARGATE weight 1. Its
  subnets are those of every AZ and ECS spreads a Fargate service's tasks across AZs by default
  (the service scheduler balances them over the subnets' AZs), so `jvb.min_count`, one bridge
  per AZ by default, keeps a bridge in every AZ. The desired count is set once at create; after
  that autoscaling owns it and no re-run touches it.

Changes roll safely. A cold create starts every shard at once (no one is connected yet). A
change to running shards (a new task definition revision, a secret rewritten, the network) is
rolled one shard at a time, in name order: update, wait until the shard is steady (one
deployment, its task running), then until it is routed again (its task's router is a healthy
target of the load balancer and its Cloud Map name answers with the new task's address), then
ROUTER_CATCH_UP seconds for every router's DNS and health checks and every bridge's reconnect,
and only then the next shard. The progress line names the shard that is rolling. A shard no
longer in the config (signal.shards lowered, or v1's single `signal` service) is removed after
the configured ones are up: its ECS service first, then its Cloud Map name and its task
definitions (their steps' `retire`).

After a create or an update the step waits (bounded by `patience.service_stable`) until the
rollout is done, showing `shard-a 1/1 running · <latest event>`. On timeout the error carries
the last service events and the stopped tasks' reasons, as AWS Copilot shows them. A secret
recreated after the current deployment started forces a new deployment (both dates as AWS
reports them).

- a shard is done when it is steady and routed.
- jvb is done when the new (PRIMARY) deployment's tasks run. Bridges of older deployments that
  host conferences are protected from scale-in by the bridge guard (docs/bridge-guard.md) and
  stop only when their calls end, which may be hours: they are reported as draining (progress
  line, step result, `status` `draining=N`), never waited for. Teardown clears that protection
  (UpdateTaskProtection) before scaling the bridges to 0, so they stop at once.

A new task role ECS cannot assume yet shows as a service event (`ECS was unable to assume the
role …`) and a rollout the circuit breaker fails; within `patience.iam_propagation` of the
step's start that is IAM propagating, and the step starts one new deployment (at most
`IAM_REDEPLOYS` times) instead of failing.

moto keeps no capacity provider strategy, deployment configuration or grace period from
create_service, so each of those is compared only when DescribeServices returns it; it lists
no tasks either, so there the routed check has no task to look at.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import botocore.exceptions

from pcls import jitsi, router
from pcls.aws import describe_error, error_code, error_message, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Cancelled, Context, Patience, Resource, Step
from pcls.errors import StepError, WaitTimeout
from pcls.sidecar_container import METRIC_DIMENSION, METRIC_NAMESPACE, METRIC_XMPP
from pcls.steps.platform import (
    ASLEEP,
    XMPP_SERVICE,
    DiscoveryService,
    cluster_name,
    shard_resource,
    sleep_state,
)
from pcls.steps.tasks import SignalTaskDefinitions

JVB = "jvb"
LEGACY_SIGNAL = "signal"  # v1's one signal service, removed once the shards run
# Every service name the stack may hold: the shard slots, v1's signal, the bridges (10 names:
# DescribeServices takes at most 10 per call).
SERVICES = (*router.slots(), LEGACY_SIGNAL, JVB)
SHARD_STEP = "service-signal"
IAM_MESSAGES = ("unable to assume the role", "Unable to assume the service linked role")
DRAINING_MESSAGES = ("still Draining",)
SCALED_MESSAGES = ("scaled above 0",)
# CreateService right after CreateListener: ECS does not see the listener yet.
NO_LB_MESSAGES = ("does not have an associated load balancer",)
ROLE_EVENT = "unable to assume the role"  # in a service event, as ECS reports a task launch
IAM_REDEPLOYS = 3
PROTECTION_BATCH = 10  # UpdateTaskProtection takes at most 10 tasks per call
DRAINING_WHY = "scale-in protected while they host calls; each stops when its calls end"
SIGNAL_GRACE_SECONDS = 180  # prosody healthy, then web; ALB checks start after this
# After a shard is routed again, before the next one rolls: every router re-resolves its name
# (Cloud Map TTL 10 s, HAProxy's hold 10 s) and marks it up (3 checks 2 s apart), and every
# bridge reconnects to it (TTL plus the JVM's 30 s DNS cache). On AWS seconds; scaled like the
# polls when tests and the sandbox shrink them.
ROUTER_CATCH_UP = 60.0
AWAIT = "waiting for the rollout"
EVENTS_SHOWN = 3
STOPPED_SHOWN = 5


def describe_all(ctx: Context) -> dict[str, dict[str, Any]]:
    """Every service of the stack (shards, bridges), from one DescribeServices call shared by
    the steps."""
    try:
        out = ctx.aws.cached(
            "ecs",
            "describe_services",
            cluster=cluster_name(ctx),
            services=list(SERVICES),
            include=["TAGS"],
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return {}
        raise
    return {s["serviceName"]: s for s in out.get("services", [])}


def _counts(svc: dict[str, Any]) -> str:
    """'jvb 1/2 running (1 pending)': the new deployment's counts while old tasks drain."""
    counts = svc
    primary = _primary(svc)
    if primary is not None and draining(svc):
        counts = primary
    running, desired = counts.get("runningCount", 0), counts.get("desiredCount", 0)
    pending = counts.get("pendingCount", 0)
    text = f"{svc['serviceName']} {running}/{desired} running"
    return text + (f" ({pending} pending)" if pending else "")


def steady(svc: dict[str, Any]) -> bool:
    """One deployment, finished, with as many tasks running as desired.

    A service scaled to 0 is steady once its rollout is done: tasks still stopping there (or
    moto's fixed running count) are nothing an `up` needs to wait for.
    """
    deployments = svc.get("deployments") or []
    if len(deployments) != 1:
        return False
    rollout = deployments[0].get("rolloutState")
    if svc.get("desiredCount") == 0:
        return rollout in (None, "COMPLETED")
    return rollout in (None, "COMPLETED") and svc.get("runningCount") == svc.get("desiredCount")


def _primary(svc: dict[str, Any]) -> dict[str, Any] | None:
    return next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), None)


def draining(svc: dict[str, Any]) -> int:
    """Tasks of older deployments still running (bridges kept while they host calls)."""
    return sum(
        int(d.get("runningCount") or 0)
        for d in svc.get("deployments") or []
        if d.get("status") != "PRIMARY"
    )


def rolled_out(svc: dict[str, Any]) -> bool:
    """The new deployment's tasks run; tasks of older deployments may still be draining."""
    primary = _primary(svc)
    if primary is None:
        return steady(svc)
    if primary.get("rolloutState") == "FAILED":
        return False
    desired = primary.get("desiredCount", svc.get("desiredCount", 0))
    return int(primary.get("runningCount") or 0) >= int(desired or 0)


def _short(task_definition_arn: str) -> str:
    return task_definition_arn.rsplit("/", 1)[-1]


SERVICE_ARN = r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:service/[A-Za-z0-9_-]+/[a-z-]+"


def service_of_registry(name: str) -> str:
    """The ECS service registered in a Cloud Map service of this name (v1's xmpp: signal)."""
    return LEGACY_SIGNAL if name == XMPP_SERVICE else name


class Service(Step):
    """One ECS service: the bridges (a step of its own) or one signal shard (a part of the
    service-signal step, whose name it carries in its tags and progress lines)."""

    kind = "ecs service"
    id_pattern = SERVICE_ARN

    def __init__(self, task: str, subnets: list[str], *, step: str = "") -> None:
        self.task = task  # the ECS service name: "jvb", or a shard ("shard-a")
        self.shard = task != JVB
        self.name = step or f"service-{task}"
        self.subnets = subnets
        # First tasks pulling images and passing health checks.
        self.typical_seconds = 180 if self.shard else 120
        # route-table: tasks in public subnets pull images only once the default route exists.
        if self.shard:
            # listener-http, not listener-https: its forward rule attaches the target group to
            # the load balancer, which is all CreateService needs, so the shards start while
            # ACM is still validating the certificate.
            deps = ["cluster", "taskdef-signal", "sg-signal", *subnets, "route-table", "secrets"]
            deps += ["target-group", "listener-http", "discovery-xmpp"]
        else:
            deps = ["cluster", "taskdef-jvb", "sg-jvb", *subnets, "route-table", "secrets"]
        self.depends_on = tuple(deps)

    def _taskdef(self, ctx: Context) -> str:
        if self.shard:
            return str(ctx.out("taskdef-signal").attrs["arns"].get(self.task, ""))
        return ctx.out("taskdef-jvb").id

    # -- desired state -----------------------------------------------------------------------

    def _network(self, ctx: Context) -> dict[str, Any]:
        return {
            "awsvpcConfiguration": {
                "subnets": [ctx.out(s).id for s in self.subnets],
                "securityGroups": [ctx.out("sg-signal" if self.shard else "sg-jvb").id],
                "assignPublicIp": "ENABLED",  # public subnets, no NAT: pulls go out directly
            }
        }

    def _strategy(self, ctx: Context) -> list[dict[str, Any]]:
        jvb = ctx.cfg.jvb
        out = [{"capacityProvider": "FARGATE", "base": jvb.ondemand_base, "weight": 1}]
        if jvb.spot_weight:
            out.append({"capacityProvider": "FARGATE_SPOT", "base": 0, "weight": jvb.spot_weight})
        return out

    def _deployment(self) -> dict[str, Any]:
        low, high = (0, 100) if self.shard else (100, 200)
        return {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "minimumHealthyPercent": low,
            "maximumPercent": high,
        }

    def spec(self, ctx: Context) -> dict[str, Any]:
        """create_service arguments other than name, cluster, count and tags."""
        spec: dict[str, Any] = {
            "taskDefinition": self._taskdef(ctx),
            "platformVersion": "LATEST",
            "networkConfiguration": self._network(ctx),
            "deploymentConfiguration": self._deployment(),
            "propagateTags": "SERVICE",
            "enableECSManagedTags": True,
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
        }
        if self.shard:
            spec["launchType"] = "FARGATE"
            spec["loadBalancers"] = [
                {
                    "targetGroupArn": ctx.out("target-group").id,
                    "containerName": router.CONTAINER_NAME,
                    "containerPort": router.ROUTER_PORT,
                }
            ]
            registry = ctx.out("discovery-xmpp").attrs["arns"].get(self.task, "")
            spec["serviceRegistries"] = [{"registryArn": registry}]
            spec["healthCheckGracePeriodSeconds"] = SIGNAL_GRACE_SECONDS
        else:
            spec["capacityProviderStrategy"] = self._strategy(ctx)
        return spec

    # -- find / create -----------------------------------------------------------------------

    def find(self, ctx: Context) -> Resource | None:
        svc = describe_all(ctx).get(self.task)
        if svc is None or svc.get("status") != "ACTIVE":
            return None  # DRAINING and INACTIVE services are on their way out
        if not ctx.claims(self.name, svc["serviceArn"], svc.get("tags")):
            what = f"ECS service {self.task} in cluster {cluster_name(ctx)}"
            ctx.collision(self.name, svc["serviceArn"], what, svc.get("tags"))
            return None
        return self._resource(ctx, svc)

    def tag(self, ctx: Context, res: Resource) -> None:
        tags = [{"key": t["Key"], "value": t["Value"]} for t in ctx.tags(self.name)]
        ctx.aws.client("ecs").tag_resource(resourceArn=res.id, tags=tags)

    def _resource(self, ctx: Context, svc: dict[str, Any]) -> Resource:
        return Resource(
            svc["serviceArn"],
            attrs={"name": self.task, "cluster": cluster_name(ctx), "service": svc},
            state=svc.get("status", ""),
        )

    def create(self, ctx: Context) -> Resource:
        ecs = ctx.aws.client("ecs")
        desired = 1 if self.shard else ctx.cfg.jvb.min_count
        if sleep_state(ctx) == ASLEEP:
            desired = 0  # recreated while the stack sleeps: it stays asleep
        kwargs = {
            "cluster": cluster_name(ctx),
            "serviceName": self.task,
            "desiredCount": desired,
            "tags": [{"key": t["Key"], "value": t["Value"]} for t in ctx.tags(self.name)],
            **self.spec(ctx),
        }
        began = ctx.patience.clock()
        svc = self._retrying(ctx, lambda: ecs.create_service(**kwargs))["service"]
        res = self._resource(ctx, svc)
        res.attrs["await"] = True  # drift() asks update() to wait for the first rollout
        res.attrs["began"] = began
        return res

    def _retrying(self, ctx: Context, call: Any) -> Any:
        """A create or update that may meet new roles, a listener ECS does not see yet, and a
        draining predecessor."""

        def listener_known() -> Any:
            return ctx.retry_while(
                self.name,
                call,
                messages=NO_LB_MESSAGES,
                timeout=ctx.patience.iam_propagation,
                why="waiting for ECS to see the target group's new listener",
                blocker=lambda: self._target_group(ctx),
            )

        def iam_ready() -> Any:
            return ctx.retry_while(
                self.name,
                listener_known,
                messages=IAM_MESSAGES,
                timeout=ctx.patience.iam_propagation,
                why="waiting for IAM to propagate the task roles",
            )

        return ctx.retry_while(
            self.name,
            iam_ready,
            messages=DRAINING_MESSAGES,
            timeout=ctx.patience.resource_gone,
            why=f"waiting for the previous {self.task} service to finish draining",
        )

    def _target_group(self, ctx: Context) -> str:
        if "target-group" not in self.depends_on:
            return ""
        name = ctx.out("target-group").id.rsplit(":", 1)[-1]
        listener = ctx.outputs.get("listener-http")
        return name + (f" (listener-http {listener.id})" if listener else "")

    # -- drift / update ----------------------------------------------------------------------

    def _changes(self, ctx: Context, svc: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """(drift lines, update_service arguments that repair them)."""
        spec = self.spec(ctx)
        lines: list[str] = []
        fix: dict[str, Any] = {}
        if svc.get("taskDefinition") != spec["taskDefinition"]:
            lines.append(
                f"task definition {_short(svc.get('taskDefinition', '-'))} -> "
                f"{_short(spec['taskDefinition'])}"
            )
            fix["taskDefinition"] = spec["taskDefinition"]
        net = (svc.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        want_net = spec["networkConfiguration"]["awsvpcConfiguration"]
        if net is not None and (
            sorted(net.get("subnets", [])) != sorted(want_net["subnets"])
            or sorted(net.get("securityGroups", [])) != sorted(want_net["securityGroups"])
            or net.get("assignPublicIp") != want_net["assignPublicIp"]
        ):
            lines.append("network configuration differs")
            fix["networkConfiguration"] = spec["networkConfiguration"]
        if "capacityProviderStrategy" in spec and svc.get("capacityProviderStrategy"):
            have = _strategy_key(svc["capacityProviderStrategy"])
            if have != _strategy_key(spec["capacityProviderStrategy"]):
                lines.append("capacity provider strategy differs")
                fix["capacityProviderStrategy"] = spec["capacityProviderStrategy"]
                fix["forceNewDeployment"] = True  # a new strategy applies to new tasks only
        dc = svc.get("deploymentConfiguration")
        if dc is not None and not _deployment_ok(dc, spec["deploymentConfiguration"]):
            lines.append("deployment configuration differs (circuit breaker, percentages)")
            fix["deploymentConfiguration"] = spec["deploymentConfiguration"]
        if "loadBalancers" in spec and _lb_key(svc.get("loadBalancers")) != _lb_key(
            spec["loadBalancers"]
        ):
            lines.append("load balancer target differs")
            fix["loadBalancers"] = spec["loadBalancers"]
        if "serviceRegistries" in spec and sorted(
            r.get("registryArn") for r in svc.get("serviceRegistries") or []
        ) != [r["registryArn"] for r in spec["serviceRegistries"]]:
            lines.append("service registry differs")
            fix["serviceRegistries"] = spec["serviceRegistries"]
        for key in ("healthCheckGracePeriodSeconds", "propagateTags", "enableECSManagedTags"):
            if key in spec and key in svc and svc[key] != spec[key]:
                lines.append(f"{key} {svc[key]} -> {spec[key]}")
                fix[key] = spec[key]
        # A sleeping stack's shards run nothing (the wake function starts them again).
        want = 0 if sleep_state(ctx) == ASLEEP else 1
        if self.shard and svc.get("desiredCount") != want:
            lines.append(f"desired count {svc.get('desiredCount')} -> {want}")
            fix["desiredCount"] = want
        # jvb: desiredCount belongs to autoscaling after create (0/0 while asleep); never compared.
        stale = self._stale_secrets(ctx, svc)
        if stale:
            lines.append(f"{', '.join(stale)} changed after the current deployment started")
            fix["forceNewDeployment"] = True
        return lines, fix

    def _stale_secrets(self, ctx: Context, svc: dict[str, Any]) -> list[str]:
        """Secrets this task reads that were (re)written after its deployment began."""
        deployments = svc.get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        started = (primary or {}).get("createdAt")
        if not isinstance(started, dt.datetime):
            return []
        readers = {n for n, r in jitsi.SECRET_READERS.items() if set(r) & self._containers()}
        modified = ctx.out("secrets").attrs.get("modified", {})
        return sorted(
            n
            for n, when in modified.items()
            if n in readers and isinstance(when, dt.datetime) and when > started
        )

    def _containers(self) -> set[str]:
        return set(jitsi.SIGNAL_CONTAINER_NAMES) if self.shard else {JVB}

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        svc = res.attrs["service"]
        lines, _ = self._changes(ctx, svc)
        want_tags = ctx.tag_dict(self.name)
        lines += tag_drift(want_tags, tags_of(svc.get("tags")))
        if res.attrs.get("await"):
            lines.append(AWAIT)
        return lines

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ecs = ctx.aws.client("ecs")
        _, fix = self._changes(ctx, res.attrs["service"])
        wait = bool(res.attrs.pop("await", False))
        began = res.attrs.pop("began", ctx.patience.clock())
        if fix:
            out = self._retrying(
                ctx,
                lambda: ecs.update_service(cluster=cluster_name(ctx), service=self.task, **fix),
            )
            res.attrs["service"] = out["service"]
            wait = True
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)
        if wait:
            old = self.wait_steady(ctx, began)
            if old:
                # The engine shows these lines as the step's result.
                drift.append(f"{old} old {_bridges(old)} draining ({DRAINING_WHY})")

    # -- waiting -----------------------------------------------------------------------------

    def wait_steady(self, ctx: Context, began: float) -> int:
        """Wait for the rollout; returns how many tasks of older deployments still run.

        For jvb "steady" means the new deployment's tasks run (`rolled_out`): old bridges in
        calls are protected and may run for hours, so they are reported, not waited for.
        """
        ecs = ctx.aws.client("ecs")
        last: dict[str, Any] = {}
        replaced: set[str] = set()  # failed deployments replaced while IAM propagates
        done = steady if self.shard else rolled_out

        def probe() -> tuple[bool, str]:
            out = ecs.describe_services(cluster=cluster_name(ctx), services=[self.task])
            by_name = {s["serviceName"]: s for s in out["services"] if s["status"] == "ACTIVE"}
            svc = by_name.get(self.task)
            if svc is None:
                raise StepError(self.name, "wait", f"service {self.task} is no longer ACTIVE")
            last["svc"] = svc
            failed = [
                d
                for d in svc.get("deployments") or []
                if d.get("rolloutState") == "FAILED" and str(d.get("id")) not in replaced
            ]
            if failed:
                if self._redeploy_for_iam(ctx, svc, failed[0], began, replaced):
                    return False, "started a new deployment: ECS could not assume a new role yet"
                reason = failed[0].get("rolloutStateReason") or "rollout failed"
                raise StepError(self.name, "deployment", f"{reason}; {self._evidence(ctx, svc)}")
            parts = [_counts(svc)]
            old = 0 if self.shard else draining(svc)
            if old:
                parts.append(f"{old} old {_bridges(old)} draining")
            events = svc.get("events") or []
            if events:
                parts.append(events[0].get("message", ""))
            return done(svc), " · ".join(parts)

        try:
            ctx.wait_for(
                self.name,
                f"{self.task} to reach a steady state",
                probe,
                timeout=ctx.patience.service_stable,
            )
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; {self._evidence(ctx, last.get('svc'))}") from None
        old = 0 if self.shard else draining(last["svc"])
        if old:
            ctx.progress(
                self.name,
                f"new bridges run; {old} old {_bridges(old)} draining ({DRAINING_WHY})",
            )
        return old

    def _redeploy_for_iam(
        self,
        ctx: Context,
        svc: dict[str, Any],
        failed: dict[str, Any],
        began: float,
        replaced: set[str],
    ) -> bool:
        """Replace a rollout that failed because ECS could not assume a new role yet.

        ECS reports that as a service event, not as an API error, and the circuit breaker then
        fails the deployment. Within `patience.iam_propagation` of the step's start it is IAM
        propagating: one new deployment of the wanted revision, at most IAM_REDEPLOYS times.
        """
        if len(replaced) >= IAM_REDEPLOYS:
            return False
        if ctx.patience.clock() - began > ctx.patience.iam_propagation:
            return False
        event = _role_event(svc, failed)
        if not event:
            return False
        replaced.add(str(failed.get("id")))
        ctx.progress(
            self.name,
            f"waiting for IAM to propagate the task roles: {event[:160]}; "
            f"starting a new deployment ({len(replaced)} of at most {IAM_REDEPLOYS})",
        )
        ctx.aws.client("ecs").update_service(
            cluster=cluster_name(ctx),
            service=self.task,
            taskDefinition=self._taskdef(ctx),  # not a rollback's revision
            forceNewDeployment=True,
        )
        return True

    def _evidence(self, ctx: Context, svc: dict[str, Any] | None) -> str:
        """The last service events and why recent tasks stopped (what to look at next)."""
        events = [e.get("message", "") for e in (svc or {}).get("events", [])[:EVENTS_SHOWN]]
        reasons: list[str] = []
        ecs = ctx.aws.client("ecs")
        try:
            arns = ecs.list_tasks(
                cluster=cluster_name(ctx), serviceName=self.task, desiredStatus="STOPPED"
            )["taskArns"][:STOPPED_SHOWN]
            if arns:
                for task in ecs.describe_tasks(cluster=cluster_name(ctx), tasks=arns)["tasks"]:
                    why = task.get("stoppedReason") or task.get("stopCode") or "unknown"
                    containers = [
                        f"{c['name']}: {c['reason']}"
                        for c in task.get("containers", [])
                        if c.get("reason")
                    ]
                    detail = f" ({'; '.join(containers)})" if containers else ""
                    reasons.append(f"{task['taskArn'].rsplit('/', 1)[-1]}: {why}{detail}")
        except botocore.exceptions.ClientError as exc:
            reasons.append(f"(could not list stopped tasks: {error_message(exc)})")
        return (
            f"last events: {' | '.join(events) or 'none'}; "
            f"stopped tasks: {' | '.join(reasons) or 'none'}"
        )

    # -- status / teardown -------------------------------------------------------------------

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        svc = res.attrs["service"]
        deployments = svc.get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        events = svc.get("events") or []
        return {
            "running": svc.get("runningCount", 0),
            "desired": svc.get("desiredCount", 0),
            "pending": svc.get("pendingCount", 0),
            "rollout": primary.get("rolloutState", "-"),
            "deployments": len(deployments),
            **({} if self.shard else {"draining": draining(svc)}),
            **({} if self.shard else self._bridges_detail(ctx)),
            "last_event": (events[0].get("message", "")[:120] if events else "-"),
        }

    def _bridges_detail(self, ctx: Context) -> dict[str, Any]:
        """Bridges per AZ (their tasks) and their XMPP connections to the shards (the guard's
        XmppConnected: the pool's lowest share of shards connected, in the newest minute; the
        guard publishes one Stack-wide series, so which shard a short bridge misses is in its
        log, not here)."""
        zones = sorted(str(t.get("availabilityZone", "?")) for t in self.tasks(ctx))
        per_az = " ".join(f"{z}={zones.count(z)}" for z in sorted(set(zones)))
        return {"per_az": per_az or "no task listed", "xmpp": _xmpp_share(ctx)}

    def _unprotect(self, ctx: Context) -> None:
        """Clear the bridges' scale-in protection, so that scaling to 0 stops them now.

        The bridge guard protects a bridge while it hosts conferences; ECS would keep such a
        bridge, and the service DRAINING, until its calls end or the protection expires (up to
        the guard's PROTECTION_MINUTES). A refusal is reported and teardown goes on to its
        bounded wait for INACTIVE (`patience.resource_gone`).
        """
        cluster = cluster_name(ctx)
        try:
            arns = ctx.aws.all(
                "ecs",
                "list_tasks",
                "taskArns",
                cluster=cluster,
                serviceName=self.task,
                desiredStatus="RUNNING",
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("ClusterNotFoundException", "ServiceNotFoundException"):
                return
            raise
        if not arns:
            return
        ecs = ctx.aws.client("ecs")
        cleared, refused = 0, []
        for i in range(0, len(arns), PROTECTION_BATCH):
            try:
                reply = ecs.update_task_protection(
                    cluster=cluster, tasks=arns[i : i + PROTECTION_BATCH], protectionEnabled=False
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                text = (
                    f"{self.name}: could not clear the bridges' scale-in protection "
                    f"(UpdateTaskProtection: {describe_error(exc)}); bridges in calls stop only "
                    "when their calls end or their protection expires; teardown waits up to "
                    f"{ctx.patience.resource_gone:.0f}s for the service to go"
                )
                ctx.progress(self.name, text)
                ctx.ui.info(text)
                return
            cleared += len(reply.get("protectedTasks") or [])
            refused += [
                f"{str(f.get('arn', '?')).rsplit('/', 1)[-1]}: {f.get('reason', '?')}"
                for f in reply.get("failures") or []
            ]
        ctx.progress(
            self.name,
            f"cleared the scale-in protection of {cleared} of {len(arns)} bridges: their calls "
            "end now" + (f" (not cleared: {'; '.join(refused)})" if refused else ""),
        )

    def delete(self, ctx: Context, res: Resource) -> None:
        self.start_delete(ctx, res)
        self.wait_gone(ctx)

    def start_delete(self, ctx: Context, res: Resource) -> None:
        """Scale to 0 and delete (the service then drains to INACTIVE)."""
        ecs = ctx.aws.client("ecs")
        cluster = cluster_name(ctx)

        def scale_to_zero() -> None:
            try:
                ecs.update_service(cluster=cluster, service=self.task, desiredCount=0)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in (
                    "ServiceNotFoundException",
                    "ServiceNotActiveException",
                    "ClusterNotFoundException",
                ):
                    raise

        def delete_once() -> None:
            try:
                ecs.delete_service(cluster=cluster, service=self.task, force=True)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("ServiceNotFoundException", "ClusterNotFoundException"):
                    return
                if any(m in error_message(exc) for m in SCALED_MESSAGES):
                    scale_to_zero()  # autoscaling may have raised it again meanwhile
                raise

        if not self.shard:
            self._unprotect(ctx)
        if res.attrs["service"].get("desiredCount", 0) > 0:
            scale_to_zero()
        ctx.retry_while(
            self.name,
            delete_once,
            messages=SCALED_MESSAGES,
            timeout=ctx.patience.resource_gone,
            why="scaling the service to 0 before deleting it",
        )

    def wait_gone(self, ctx: Context) -> None:
        ecs = ctx.aws.client("ecs")
        cluster = cluster_name(ctx)

        def gone() -> tuple[bool, str]:
            try:
                out = ecs.describe_services(cluster=cluster, services=[self.task])
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ClusterNotFoundException":
                    return True, ""
                raise
            live = [s for s in out["services"] if s.get("status") != "INACTIVE"]
            if not live:
                return True, ""
            return False, f"{live[0].get('status')}, {live[0].get('runningCount', 0)} running"

        # The task definitions, the Cloud Map names and the cluster wait on this.
        ctx.wait_for(
            self.name, f"{self.task} to become INACTIVE", gone, timeout=ctx.patience.resource_gone
        )

    # -- a shard: routed again -----------------------------------------------------------------

    def tasks(self, ctx: Context) -> list[dict[str, Any]]:
        """The service's running tasks, described (moto lists none)."""
        ecs = ctx.aws.client("ecs")
        arns = ecs.list_tasks(
            cluster=cluster_name(ctx), serviceName=self.task, desiredStatus="RUNNING"
        )["taskArns"]
        if not arns:
            return []
        return list(ecs.describe_tasks(cluster=cluster_name(ctx), tasks=arns[:100])["tasks"])

    def targets(self, ctx: Context, ips: list[str]) -> dict[str, str]:
        """ip -> the router's state as a target of the load balancer ("healthy", "initial"...)."""
        if not ips:
            return {}
        health = ctx.aws.client("elbv2").describe_target_health(
            TargetGroupArn=ctx.out("target-group").id,
            Targets=[{"Id": ip, "Port": router.ROUTER_PORT} for ip in ips],
        )["TargetHealthDescriptions"]
        return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in health}

    def registered(self, ctx: Context) -> set[str]:
        """The addresses the shard's Cloud Map name answers with (healthy instances)."""
        svc = ctx.out("discovery-xmpp").attrs["services"].get(self.task)
        if svc is None:
            return set()
        sd = ctx.aws.client("servicediscovery")
        instances = sd.list_instances(ServiceId=svc["Id"]).get("Instances", [])
        try:
            status = sd.get_instances_health_status(ServiceId=svc["Id"]).get("Status", {})
        except botocore.exceptions.ClientError:
            status = {}
        return {
            i.get("Attributes", {}).get("AWS_INSTANCE_IPV4", "")
            for i in instances
            if status.get(i["Id"], "HEALTHY") == "HEALTHY"
        }

    def wait_routed(self, ctx: Context) -> None:
        """Until the shard's task serves through its router and its name resolves to it."""

        def probe() -> tuple[bool, str]:
            tasks = [t for t in self.tasks(ctx) if t.get("lastStatus") == "RUNNING"]
            if not tasks:
                # A steady shard on AWS lists its task; moto lists none, so nothing to check.
                return True, "no task listed"
            ips = [ip for t in tasks if (ip := task_ip(t))]
            states = self.targets(ctx, ips)
            names = self.registered(ctx)
            waiting = [
                f"router {ip} {states.get(ip, 'not registered')}"
                for ip in ips
                if states.get(ip) != "healthy"
            ] + [f"Cloud Map without {ip}" for ip in ips if ip not in names]
            return not waiting, f"{self.task}: " + ("; ".join(waiting) or "routed")

        ctx.wait_for(
            self.name,
            f"{self.task} to be routed again",
            probe,
            timeout=ctx.patience.service_stable,
            hint="see the target group's health and the shard's Cloud Map name",
        )

    def health(self, ctx: Context, svc: dict[str, Any]) -> str:
        """'eu-central-1a · 1/1 running · task HEALTHY · router healthy' for `status`."""
        subnet = ctx.outputs.get(self.subnets[0])
        az = str(subnet.attrs.get("az", "")) if subnet is not None else ""
        parts = [az] if az else []
        parts.append(f"{svc.get('runningCount', 0)}/{svc.get('desiredCount', 0)} running")
        primary = _primary(svc) or {}
        if primary.get("rolloutState") not in (None, "COMPLETED"):
            parts.append(f"rollout {primary.get('rolloutState')}")
        tasks = self.tasks(ctx)
        if not tasks:
            parts.append("no task listed")
        ips = [ip for t in tasks if (ip := task_ip(t))]
        states = self.targets(ctx, ips) if "target-group" in ctx.outputs else {}
        for t in tasks:
            ip = task_ip(t)
            parts.append(f"task {t.get('healthStatus', 'UNKNOWN')} in {t.get('availabilityZone')}")
            parts.append(f"router {states.get(ip, 'not registered')}")
        return " · ".join(parts)


def _xmpp_share(ctx: Context) -> str:
    """The bridge guards' XmppConnected, lowest share in the newest minute of the last ten."""
    now = dt.datetime.now(dt.UTC)
    try:
        points = (
            ctx.aws.client("cloudwatch")
            .get_metric_statistics(
                Namespace=METRIC_NAMESPACE,
                MetricName=METRIC_XMPP,
                Dimensions=[{"Name": METRIC_DIMENSION, "Value": ctx.stack}],
                StartTime=now - dt.timedelta(minutes=10),
                EndTime=now,
                Period=60,
                Statistics=["Minimum"],
            )
            .get("Datapoints", [])
        )
    except botocore.exceptions.ClientError as exc:
        return f"unknown ({error_code(exc)})"
    if not points:
        return "no data (bridge guard XmppConnected, last 10 min)"
    newest = max(points, key=lambda p: p["Timestamp"])
    share = float(newest["Minimum"])
    return f"{share:g} " + (
        "(every bridge on every shard)" if share >= 1 else "(a bridge is short of a shard)"
    )


def task_ip(task: dict[str, Any]) -> str:
    """A task's private IPv4 (its ENI, as ECS describes it), or ''."""
    for attachment in task.get("attachments") or []:
        for detail in attachment.get("details") or []:
            if detail.get("name") == "privateIPv4Address":
                return str(detail.get("value", ""))
    return ""


def catch_up(ctx: Context) -> float:
    """ROUTER_CATCH_UP in this run's time: scaled like the polls (Patience().poll_max on AWS)."""
    return ROUTER_CATCH_UP * ctx.patience.poll_max / Patience().poll_max


class ShardServices(Step):
    """service-signal: one ECS service per signal shard, rolled one at a time."""

    name = SHARD_STEP
    kind = "ecs services"
    id_pattern = SERVICE_ARN
    typical_seconds = 180  # first tasks pulling images and passing health checks

    def __init__(self, shards: list[str], subnets: list[str]) -> None:
        self.shards = shards
        # Round robin over the AZs: shard-a in the first, shard-b in the second, ...
        self.parts = {
            s: Service(s, [subnets[i % len(subnets)]], step=self.name) for i, s in enumerate(shards)
        }
        self.old = {
            t: Service(t, [subnets[0]], step=self.name)
            for t in [*router.slots(), LEGACY_SIGNAL]
            if t not in shards
        }
        deps = {d for part in self.parts.values() for d in part.depends_on}
        self.depends_on = tuple(sorted(deps | set(subnets)))

    # -- find / create -----------------------------------------------------------------------

    def find(self, ctx: Context) -> Resource | None:
        described = describe_all(ctx)
        mine: dict[str, dict[str, Any]] = {}
        extras: dict[str, dict[str, Any]] = {}
        for name in [*self.shards, *self.old]:
            svc = described.get(name)
            if svc is None or svc.get("status") != "ACTIVE":
                continue  # DRAINING and INACTIVE services are on their way out
            if ctx.claims(self.name, svc["serviceArn"], svc.get("tags")):
                (mine if name in self.parts else extras)[name] = svc
            elif name in self.parts or svc["serviceArn"] == ctx.ledger.id(self.name):
                what = f"ECS service {name} in cluster {cluster_name(ctx)}"
                ctx.collision(self.name, svc["serviceArn"], what, svc.get("tags"))
        if not mine and not extras:
            return None
        return self._resource(ctx, mine, extras)

    def _resource(
        self, ctx: Context, mine: dict[str, dict[str, Any]], extras: dict[str, dict[str, Any]]
    ) -> Resource:
        return shard_resource(
            self.shards,
            mine,
            extras,
            "serviceArn",
            "status",
            cluster=cluster_name(ctx),
            name=self.shards[0],  # one service name, for what names a single one
            names=list(self.shards),
        )

    def tag(self, ctx: Context, res: Resource) -> None:
        rid = ctx.adopting.get(self.name)
        for svc in [*res.attrs["services"].values(), *res.attrs["extras"].values()]:
            if svc["serviceArn"] == rid:
                tags = [{"key": t["Key"], "value": t["Value"]} for t in ctx.tags(self.name)]
                ctx.aws.client("ecs").tag_resource(resourceArn=rid, tags=tags)

    def create(self, ctx: Context) -> Resource:
        began = ctx.patience.clock()
        # A cold start: no one is connected yet, so every shard starts at once.
        mine = {s: part.create(ctx).attrs["service"] for s, part in self.parts.items()}
        res = self._resource(ctx, mine, {})
        res.attrs["await"] = list(self.shards)  # drift() asks update() to wait for them
        res.attrs["began"] = began
        return res

    # -- drift / update ----------------------------------------------------------------------

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        out = []
        for shard, part in self.parts.items():
            svc = res.attrs["services"].get(shard)
            if svc is None:
                out.append(f"{shard} missing")
                continue
            lines, _ = part._changes(ctx, svc)
            lines += tag_drift(ctx.tag_dict(self.name), tags_of(svc.get("tags")))
            out += [f"{shard}: {line}" for line in lines]
        n = len(self.shards)
        out += [f"{name} not in config ({n} shards): removing" for name in res.attrs["extras"]]
        if res.attrs.get("await"):
            out.append(AWAIT)
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ecs = ctx.aws.client("ecs")
        began = res.attrs.pop("began", ctx.patience.clock())
        starting = list(res.attrs.pop("await", []))
        mine = dict(res.attrs["services"])
        # 1. Shards that do not exist yet start at once; then every new shard is waited for.
        for shard in self.shards:
            if shard not in mine:
                mine[shard] = self.parts[shard].create(ctx).attrs["service"]
                starting.append(shard)
        for shard in starting:
            ctx.progress(self.name, f"starting {', '.join(starting)}")
            self.parts[shard].wait_steady(ctx, began)
            self.parts[shard].wait_routed(ctx)
        # 2. Running shards with changes roll one at a time, each steady and routed again
        # before the next stops.
        rolling = [
            s
            for s in self.shards
            if s in res.attrs["services"] and s not in starting and self._fixes(ctx, mine[s])
        ]
        for i, shard in enumerate(rolling):
            part = self.parts[shard]
            _, fix = part._changes(ctx, mine[shard])
            ctx.progress(self.name, f"rolling {shard} ({i + 1} of {len(rolling)})")
            out = part._retrying(
                ctx,
                lambda fix=fix, shard=shard: ecs.update_service(
                    cluster=cluster_name(ctx), service=shard, **fix
                ),
            )
            mine[shard] = out["service"]
            part.wait_steady(ctx, began)
            part.wait_routed(ctx)
            if i + 1 < len(rolling):
                self._catch_up(ctx, shard, rolling[i + 1])
        # 3. Tags.
        for shard in self.shards:
            if any(d.startswith(f"{shard}: tag ") for d in drift):
                tags = [{"key": t["Key"], "value": t["Value"]} for t in ctx.tags(self.name)]
                ecs.tag_resource(resourceArn=mine[shard]["serviceArn"], tags=tags)
        # 4. Shards no longer in the config go last, once the configured ones serve.
        extras = dict(res.attrs["extras"])
        if extras:
            self.retire(ctx, extras)
        ctx.aws.forget_cache()
        fresh = describe_all(ctx)
        mine = {s: fresh.get(s, svc) for s, svc in mine.items()}
        new = self._resource(ctx, mine, {})
        res.id, res.attrs, res.state = new.id, new.attrs, new.state

    def _catch_up(self, ctx: Context, shard: str, following: str) -> None:
        left = catch_up(ctx)
        while left > 0:
            if ctx.cancel.is_set():
                raise Cancelled(self.name)
            ctx.progress(
                self.name,
                f"{shard} is routed again; {left:.0f}s for every router and bridge to take it "
                f"back before {following} rolls",
            )
            pause = min(left, ctx.patience.poll_max)
            ctx.patience.sleep(pause)
            left -= pause

    def _fixes(self, ctx: Context, svc: dict[str, Any]) -> dict[str, Any]:
        shard = svc["serviceName"]
        return self.parts[shard]._changes(ctx, svc)[1]

    def retire(self, ctx: Context, extras: dict[str, dict[str, Any]]) -> None:
        """Remove these services, then their Cloud Map names and task definitions."""
        names = sorted(extras)
        ctx.progress(self.name, f"removing {', '.join(names)} (not in config)")
        for name in names:
            self.old[name].start_delete(ctx, self.old[name]._resource(ctx, extras[name]))
        for name in names:
            self.old[name].wait_gone(ctx)
        registries = [XMPP_SERVICE if n == LEGACY_SIGNAL else n for n in names]
        DiscoveryService(self.shards).retire(ctx, registries)
        SignalTaskDefinitions(self.shards).retire(ctx, names)

    # -- status / teardown -------------------------------------------------------------------

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for shard, part in self.parts.items():
            svc = res.attrs["services"].get(shard)
            out[shard] = "missing" if svc is None else part.health(ctx, svc)
        for name in res.attrs["extras"]:
            out[name] = "not in config"
        return out

    def delete(self, ctx: Context, res: Resource) -> None:
        found = [
            (self.parts.get(n) or self.old[n], svc)
            for n, svc in [*res.attrs["services"].items(), *res.attrs["extras"].items()]
        ]
        # Every shard drains at once: teardown waits for the slowest, not for their sum.
        for part, svc in found:
            part.start_delete(ctx, part._resource(ctx, svc))
        for part, _ in found:
            part.wait_gone(ctx)


def _bridges(n: int) -> str:
    return "bridge" if n == 1 else "bridges"


def _role_event(svc: dict[str, Any], failed: dict[str, Any]) -> str:
    """The latest event since the failed deployment began saying a role could not be assumed."""
    since = failed.get("createdAt")
    for event in (svc.get("events") or [])[:10]:
        when = event.get("createdAt")
        if isinstance(since, dt.datetime) and isinstance(when, dt.datetime) and when < since:
            break  # events come newest first
        message = str(event.get("message", ""))
        if ROLE_EVENT in message.lower():
            return message
    return ""


def _strategy_key(items: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return sorted(
        (i["capacityProvider"], int(i.get("base", 0)), int(i.get("weight", 0))) for i in items
    )


def _lb_key(items: Any) -> list[tuple[str, str, int]]:
    return sorted(
        (i.get("targetGroupArn", ""), i.get("containerName", ""), int(i.get("containerPort", 0)))
        for i in items or []
    )


def _deployment_ok(have: dict[str, Any], want: dict[str, Any]) -> bool:
    breaker = have.get("deploymentCircuitBreaker")
    if breaker is not None and breaker != want["deploymentCircuitBreaker"]:
        return False
    return all(have[k] == want[k] for k in ("minimumHealthyPercent", "maximumPercent") if k in have)


def steps(cfg: Config) -> list[Step]:
    subnets = [f"subnet-{i + 1}" for i in range(cfg.network.azs)]
    return [ShardServices(router.shard_names(cfg.signal.shards), subnets), Service(JVB, subnets)]

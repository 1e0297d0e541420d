"""Platform: the ECS cluster, the Cloud Map namespace and the shards' names, the log group.

The cluster offers FARGATE and FARGATE_SPOT; each service picks its own mix. Every signal shard
has its own Cloud Map name, `shard-a.<stack>.internal`, an A record ECS keeps pointing at that
shard's task: the routers route to these names and the bridges connect to all of them. Container
Insights is off unless configured: it bills per metric and the stack has few tasks.

Dependencies here also encode the teardown order (the engine reverses them): services, task
definitions, the shards' names, the namespace, the roles, the parameters, the log group and
last the cluster. Some edges (log-group → cluster, namespace → roles) exist only for that order.
"""

from __future__ import annotations

import uuid
from typing import Any

import botocore.exceptions

from pcls import router
from pcls.aws import (
    STACK_TAG,
    STEP_TAG,
    describe_error,
    error_code,
    ignore_missing,
    tag_drift,
    tags_of,
)
from pcls.config import Config
from pcls.engine import Collision, Context, Resource, Step
from pcls.errors import PclsError, StepError
from pcls.wakefn import handler

CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# Ad-hoc tasks (run-task without a launch type) land on regular Fargate, never on Spot.
DEFAULT_STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
XMPP_SERVICE = "xmpp"  # v1's one signal name, removed once its service is gone
XMPP_TTL = 10  # seconds; routers and bridges re-resolve soon after a shard task is replaced
# The ECS service-linked role is created on first use and is not usable at once.
SLR_MESSAGES = ("Unable to assume the service linked role",)


# -- helpers shared by the ECS-side step modules ----------------------------------------------


def arn(ctx: Context, service: str, resource: str, *, region: bool = True) -> str:
    """An ARN in this account and partition (from the caller identity, not guessed)."""
    ident = ctx.aws.identity()
    partition = ident["arn"].split(":")[1]
    where = ctx.aws.region if region else ""
    return f"arn:{partition}:{service}:{where}:{ident['account']}:{resource}"


def owned(ctx: Context, step: str, tags: Any) -> bool:
    """True when the tags say this stack's `step` made the resource."""
    have = tags_of(tags)
    return have.get(STACK_TAG) == ctx.stack and have.get(STEP_TAG) == step


def cluster_name(ctx: Context) -> str:
    return ctx.stack


def namespace_name(ctx: Context) -> str:
    return f"{ctx.stack}.internal"


def log_group_name(ctx: Context) -> str:
    return f"/pcls/{ctx.stack}"


def wake_function_name(stack: str) -> str:
    """The wake function (pcls/steps/wake.py); also its lambda target group's name."""
    return f"{stack}-wake"


def wake_log_group_name(stack: str) -> str:
    """Lambda's own log group name for the wake function (created, tagged, by pcls)."""
    return f"/aws/lambda/{wake_function_name(stack)}"


def schedule_group_name(stack: str) -> str:
    """The EventBridge Scheduler group holding the wake function's schedules."""
    return f"pcls-{stack}"


# The stack's sleep state (docs/sleep.md): a tag on the cluster that the wake function writes,
# so `up` and `status` on any machine see what it did. No tag: awake.
SLEEP_TAG = handler.STATE_TAG
AWAKE, ASLEEP, WAKING = handler.AWAKE, handler.ASLEEP, handler.WAKING
# "Ready in about N s" on the sleep and progress pages: a shard task from nothing to a healthy
# router, image pull and start (ShardServices' typical 180 s) plus two health checks 15 s apart.
READY_SECONDS = 210


def sleep_state(ctx: Context) -> str:
    """awake, asleep or waking, from the tag on this stack's own cluster (no cluster: awake)."""
    out = ctx.aws.cached(
        "ecs", "describe_clusters", clusters=[cluster_name(ctx)], include=["TAGS", "SETTINGS"]
    )
    for c in out.get("clusters", []):
        tags = tags_of(c.get("tags"))
        if c.get("status") != "INACTIVE" and ctx.owns("cluster", tags):
            state = tags.get(SLEEP_TAG, AWAKE)
            return state if state in (ASLEEP, WAKING) else AWAKE
    return AWAKE


def _ecs_tags(ctx: Context, step: str) -> list[dict[str, str]]:
    return [{"key": t["Key"], "value": t["Value"]} for t in ctx.tags(step)]


# -- cluster ----------------------------------------------------------------------------------


class Cluster(Step):
    name = "cluster"
    kind = "ecs cluster"

    def _described(self, ctx: Context) -> list[dict[str, Any]]:
        out = ctx.aws.cached(
            "ecs",
            "describe_clusters",
            clusters=[cluster_name(ctx)],
            include=["TAGS", "SETTINGS"],
        )
        # A deleted cluster stays describable as INACTIVE for a while.
        return [c for c in out.get("clusters", []) if c.get("status") != "INACTIVE"]

    id_pattern = r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9_-]+"

    def find(self, ctx: Context) -> Resource | None:
        for c in self._described(ctx):
            if ctx.claims(self.name, c["clusterArn"], c.get("tags")):
                return Resource(
                    c["clusterArn"],
                    attrs={"name": c["clusterName"], "cluster": c},
                    state=c.get("status", ""),
                )
            what = f"ECS cluster {c['clusterName']}"
            ctx.collision(self.name, c["clusterArn"], what, c.get("tags"))
        return None

    def tag(self, ctx: Context, res: Resource) -> None:
        ctx.aws.client("ecs").tag_resource(resourceArn=res.id, tags=_ecs_tags(ctx, self.name))

    def create(self, ctx: Context) -> Resource:
        name = cluster_name(ctx)
        if self._described(ctx):
            # CreateCluster on an existing name silently returns (or replaces) that cluster.
            raise Collision(
                f"{self.name}: an ECS cluster named {name!r} exists without the tags "
                f"{STACK_TAG}={ctx.stack} {STEP_TAG}={self.name}; rename the stack "
                f"(stack.name), remove that cluster, or `pcls adopt {self.name} <its ARN>`"
            )
        # Capacity providers are set by update(): on a fresh account this first call creates
        # the ECS service-linked role, which the providers call needs.
        c = ctx.aws.client("ecs").create_cluster(
            clusterName=name,
            settings=[{"name": "containerInsights", "value": self._insights(ctx)}],
            tags=_ecs_tags(ctx, self.name),
        )["cluster"]
        return Resource(c["clusterArn"], attrs={"name": name, "cluster": c}, state=c["status"])

    @staticmethod
    def _insights(ctx: Context) -> str:
        return "enabled" if ctx.cfg.ecs.container_insights else "disabled"

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        c = res.attrs["cluster"]
        out = []
        have = sorted(c.get("capacityProviders") or [])
        if have != sorted(CAPACITY_PROVIDERS):
            out.append(f"capacity providers {have or 'none'}, not {list(CAPACITY_PROVIDERS)}")
        elif _strategy(c.get("defaultCapacityProviderStrategy")) != _strategy(DEFAULT_STRATEGY):
            out.append("default capacity provider strategy is not FARGATE")
        settings = {s["name"]: s["value"] for s in c.get("settings") or []}
        want = self._insights(ctx)
        if settings.get("containerInsights", "disabled") != want:
            out.append(f"containerInsights {settings.get('containerInsights')} -> {want}")
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(c.get("tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ecs = ctx.aws.client("ecs")
        name = res.attrs["name"]
        if any(d.startswith(("capacity providers", "default capacity")) for d in drift):
            ctx.retry_while(
                self.name,
                lambda: ecs.put_cluster_capacity_providers(
                    cluster=name,
                    capacityProviders=list(CAPACITY_PROVIDERS),
                    defaultCapacityProviderStrategy=DEFAULT_STRATEGY,
                ),
                messages=SLR_MESSAGES,
                timeout=ctx.patience.iam_propagation,
                why="waiting for the ECS service-linked role",
            )
        if any(d.startswith("containerInsights") for d in drift):
            ecs.update_cluster(
                cluster=name,
                settings=[{"name": "containerInsights", "value": self._insights(ctx)}],
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        c = res.attrs["cluster"]
        return {
            "services": c.get("activeServicesCount", 0),
            "tasks": c.get("runningTasksCount", 0),
        }

    def delete(self, ctx: Context, res: Resource) -> None:
        ecs = ctx.aws.client("ecs")
        # Tasks of deleted services drain for a while; the cluster refuses to go until then.
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: ecs.delete_cluster(cluster=res.id)),
            codes=(
                "ClusterContainsServicesException",
                "ClusterContainsTasksException",
                "UpdateInProgressException",
            ),
            timeout=ctx.patience.resource_gone,
            why="waiting for the cluster's tasks to stop",
        )


def _strategy(items: Any) -> list[tuple[str, int, int]]:
    return sorted(
        (i["capacityProvider"], int(i.get("weight", 0)), int(i.get("base", 0))) for i in items or []
    )


# -- Cloud Map --------------------------------------------------------------------------------


def _sd(ctx: Context) -> Any:
    return ctx.aws.client("servicediscovery")


def _sd_tags(ctx: Context, resource_arn: str) -> list[dict[str, str]]:
    return list(
        ctx.aws.cached("servicediscovery", "list_tags_for_resource", ResourceARN=resource_arn).get(
            "Tags", []
        )
    )


def _pick_tagged(
    ctx: Context, step: str, items: list[dict[str, Any]], what: str
) -> tuple[dict[str, Any], list[dict[str, str]]] | None:
    """The item tagged for this stack and step; the others (same name) are collisions."""
    tagged = [{**item, "Tags": _sd_tags(ctx, item["Arn"])} for item in items]
    found = ctx.pick(step, tagged, "Id", what=what, name=lambda i: i.get("Name"), want=None)
    for item in tagged:
        if found is None or item["Id"] != found["Id"]:
            ctx.collision(step, item["Id"], f"{what} {item['Name']}", item["Tags"])
    if found is None:
        return None
    return {k: v for k, v in found.items() if k != "Tags"}, found["Tags"]


def _sd_tag(ctx: Context, step: str, res: Resource) -> None:
    _sd(ctx).tag_resource(ResourceARN=res.attrs["arn"], Tags=ctx.tags(step))


def _wait_operation(ctx: Context, step: str, operation_id: str, what: str) -> dict[str, Any]:
    """Cloud Map changes are asynchronous: poll the operation until it ends."""
    seen: dict[str, Any] = {}

    def probe() -> tuple[bool, str]:
        op = _sd(ctx).get_operation(OperationId=operation_id)["Operation"]
        seen.update(op)
        if op["Status"] == "FAIL":
            raise StepError(
                step, what, f"{op.get('ErrorCode', 'FAIL')}: {op.get('ErrorMessage', '')}"
            )
        return op["Status"] == "SUCCESS", op["Status"].lower()

    ctx.wait_for(
        step,
        what,
        probe,
        timeout=ctx.patience.resource_gone,
        hint=f"Cloud Map operation {operation_id} is still running (aws servicediscovery "
        f"get-operation --operation-id {operation_id}); run again to resume",
    )
    return seen


class Namespace(Step):
    name = "namespace"
    kind = "cloudmap namespace"
    typical_seconds = 60  # Cloud Map creates a private zone
    # The roles edges are for the teardown order only (namespace goes before the roles).
    depends_on = ("vpc", "role-execution", "role-signal", "role-jvb")

    def _listed(self, ctx: Context) -> list[dict[str, Any]]:
        items = ctx.aws.all("servicediscovery", "list_namespaces", "Namespaces")
        return [
            n for n in items if n["Name"] == namespace_name(ctx) and n.get("Type") == "DNS_PRIVATE"
        ]

    id_pattern = r"ns-[a-z0-9]+"

    def find(self, ctx: Context) -> Resource | None:
        found = _pick_tagged(ctx, self.name, self._listed(ctx), "Cloud Map namespace")
        if found is None:
            return None
        ns, tags = found
        return Resource(ns["Id"], attrs={"arn": ns["Arn"], "name": ns["Name"], "tags": tags})

    def tag(self, ctx: Context, res: Resource) -> None:
        _sd_tag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        vpc = ctx.out("vpc").id
        try:
            op = _sd(ctx).create_private_dns_namespace(
                Name=namespace_name(ctx),
                Vpc=vpc,
                # Makes botocore's own retries of this one request idempotent.
                CreatorRequestId=f"pcls-{ctx.stack}-{uuid.uuid4().hex}",
                Description=f"pcls {ctx.stack}: private names of the stack's tasks",
                Tags=ctx.tags(self.name),
            )["OperationId"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("ConflictingDomainExists", "NamespaceAlreadyExists"):
                raise PclsError(
                    f"{self.name}: {namespace_name(ctx)} already exists in {vpc} without this "
                    f"stack's tags ({describe_error(exc)}); delete it, or wait for a running "
                    "create to finish"
                ) from None
            raise
        done = _wait_operation(ctx, self.name, op, "the namespace to be created")
        ns_id = done["Targets"]["NAMESPACE"]
        ns = _sd(ctx).get_namespace(Id=ns_id)["Namespace"]
        return Resource(
            ns_id,
            attrs={"arn": ns["Arn"], "name": ns["Name"], "tags": ctx.tags(self.name)},
        )

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        return tag_drift(ctx.tag_dict(self.name), tags_of(res.attrs["tags"]))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"name": res.attrs["name"]}

    def delete(self, ctx: Context, res: Resource) -> None:
        op = ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _sd(ctx).delete_namespace(Id=res.id)),
            codes=("ResourceInUse",),
            timeout=ctx.patience.resource_gone,
            why="waiting for the namespace's services to go",
            blocker=lambda: _services_in(ctx, res.id),
        )
        if op:
            _wait_operation(ctx, self.name, op["OperationId"], "the namespace to be deleted")


def _services_in(ctx: Context, namespace_id: str) -> str:
    """The Cloud Map services still in a namespace (for the progress line)."""
    try:
        services = _sd(ctx).list_services(
            Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
        )["Services"]
    except Exception:  # the blocker text is a hint; never fail the retry over it
        return ""
    return ", ".join(f"{s['Name']} ({s['Id']})" for s in services)


def shard_resource(
    shards: list[str],
    mine: dict[str, dict[str, Any]],
    extras: dict[str, dict[str, Any]],
    id_key: str,
    state_key: str = "",
    **attrs: Any,
) -> Resource:
    """The resource of a step that keeps one AWS resource per shard (`mine`, by name) and may
    find ones of shards no longer configured (`extras`): the first shard's stands for all, or
    an extra's while none of the configured ones exists."""
    first = next((mine[s] for s in shards if s in mine), None)
    anchor = first or next(iter(extras.values()))
    return Resource(
        anchor[id_key],
        attrs={"services": mine, "extras": extras, **attrs},
        state=anchor.get(state_key, "") if state_key else "",
    )


class DiscoveryService(Step):
    """The shards' Cloud Map names: one service per shard, `shard-a.<stack>.internal`, ...

    Each is the A record ECS keeps pointing at that shard's task (one service registry per ECS
    service, so one Cloud Map service per shard): the routers route to these names and every
    bridge connects to all of them. A service of this step no longer in the config (a shard
    removed, or v1's `xmpp`) goes once no ECS service of that shard is left: the service-signal
    step removes the ECS service first and then calls `retire`; a run stopped in between is
    finished here.
    """

    name = "discovery-xmpp"
    kind = "cloudmap services"
    depends_on = ("namespace",)
    id_pattern = r"srv-[a-z0-9]+"

    def __init__(self, shards: list[str]) -> None:
        self.shards = shards

    @staticmethod
    def _dns_records() -> list[dict[str, Any]]:
        return [{"Type": "A", "TTL": XMPP_TTL}]

    def fqdns(self, ctx: Context) -> list[str]:
        return [router.cloud_map_name(namespace_name(ctx), s) for s in self.shards]

    def _listed(self, ctx: Context) -> list[dict[str, Any]]:
        """Services of a shard name (or v1's xmpp) in this stack's own namespace, with tags."""
        namespace = Namespace().find(ctx)
        if namespace is None:
            return []
        items = ctx.aws.all(
            "servicediscovery",
            "list_services",
            "Services",
            Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace.id], "Condition": "EQ"}],
        )
        names = {*router.slots(), XMPP_SERVICE}
        # The filter is the request; GetService's NamespaceId is the proof (some endpoints
        # ignore the filter).
        return [
            {**s, "Tags": _sd_tags(ctx, s["Arn"])}
            for s in items
            if s["Name"] in names
            and ctx.aws.cached("servicediscovery", "get_service", Id=s["Id"])["Service"].get(
                "NamespaceId"
            )
            == namespace.id
        ]

    def find(self, ctx: Context) -> Resource | None:
        mine: dict[str, dict[str, Any]] = {}
        extras: dict[str, dict[str, Any]] = {}
        listed = self._listed(ctx)
        for name in sorted({s["Name"] for s in listed}):
            same = [s for s in listed if s["Name"] == name]
            owned = [s for s in same if ctx.claims(self.name, s["Id"], s["Tags"])]
            for s in same:
                if s not in owned and (name in self.shards or s["Id"] == ctx.ledger.id(self.name)):
                    ctx.collision(self.name, s["Id"], f"Cloud Map service {name}", s["Tags"])
            found = ctx.unique(self.name, owned, "Id")
            if found is not None:
                (mine if name in self.shards else extras)[name] = found
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
            "Id",
            arns={n: s["Arn"] for n, s in mine.items()},
            fqdns=self.fqdns(ctx),
            # where a shard's routers and bridges find it
            names=dict(zip(self.shards, self.fqdns(ctx), strict=True)),
        )

    def tag(self, ctx: Context, res: Resource) -> None:
        rid = ctx.adopting.get(self.name)
        for svc in [*res.attrs["services"].values(), *res.attrs["extras"].values()]:
            if svc["Id"] == rid:
                _sd(ctx).tag_resource(ResourceARN=svc["Arn"], Tags=ctx.tags(self.name))

    def _create_one(self, ctx: Context, shard: str) -> dict[str, Any]:
        svc = _sd(ctx).create_service(
            Name=shard,
            NamespaceId=ctx.out("namespace").id,
            CreatorRequestId=f"pcls-{ctx.stack}-{uuid.uuid4().hex}",
            Description=f"pcls {ctx.stack}: prosody and router of signal {shard}",
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": self._dns_records()},
            # ECS reports the task's health; a replaced shard task drops out of DNS.
            HealthCheckCustomConfig={"FailureThreshold": 1},
            Tags=ctx.tags(self.name),
        )["Service"]
        return {**svc, "Tags": ctx.tags(self.name)}

    def create(self, ctx: Context) -> Resource:
        mine = {shard: self._create_one(ctx, shard) for shard in self.shards}
        return self._resource(ctx, mine, {})

    def _unused(self, ctx: Context, res: Resource) -> list[str]:
        """Services no longer in the config whose shard has no ECS service left."""
        from pcls.steps.services import describe_all, service_of_registry

        ecs = describe_all(ctx)
        return [
            name
            for name in sorted(res.attrs["extras"])
            if service_of_registry(name) not in ecs
            or ecs[service_of_registry(name)].get("status") == "INACTIVE"
        ]

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        want_records = sorted((r["Type"], r["TTL"]) for r in self._dns_records())
        want_tags = ctx.tag_dict(self.name)
        out = []
        for shard in self.shards:
            svc = res.attrs["services"].get(shard)
            if svc is None:
                out.append(f"{shard} missing")
                continue
            records = (svc.get("DnsConfig") or {}).get("DnsRecords")
            if records is None:  # ListServices may leave it out: GetService has it
                got = ctx.aws.cached("servicediscovery", "get_service", Id=svc["Id"])
                records = (got["Service"].get("DnsConfig") or {}).get("DnsRecords") or []
            have = sorted((r["Type"], int(r["TTL"])) for r in records)
            if have != want_records:
                out.append(f"{shard}: DNS records {have} -> {want_records}")
            out += [f"{shard}: {d}" for d in tag_drift(want_tags, tags_of(svc["Tags"]))]
        n = len(self.shards)
        out += [f"{name} not in config ({n} shards): deleting" for name in self._unused(ctx, res)]
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        mine = dict(res.attrs["services"])
        for shard in self.shards:
            if f"{shard} missing" in drift:
                mine[shard] = self._create_one(ctx, shard)
            elif any(d.startswith(f"{shard}: DNS records") for d in drift):
                op = _sd(ctx).update_service(
                    Id=mine[shard]["Id"],
                    Service={"DnsConfig": {"DnsRecords": self._dns_records()}},
                )["OperationId"]
                _wait_operation(ctx, self.name, op, f"the DNS records of {shard} to change")
            if any(d.startswith(f"{shard}: tag ") for d in drift):
                _sd(ctx).tag_resource(ResourceARN=mine[shard]["Arn"], Tags=ctx.tags(self.name))
        extras = dict(res.attrs["extras"])
        for name in self._unused(ctx, res):
            self._delete_one(ctx, extras.pop(name))
        new = self._resource(ctx, mine, extras)
        res.id, res.attrs = new.id, new.attrs

    def retire(self, ctx: Context, names: list[str]) -> None:
        """Delete these services of the step (shards whose ECS service service-signal removed)."""
        res = self.find(ctx)
        for name in names:
            svc = (res.attrs["extras"] if res else {}).get(name)
            if svc is not None:
                ctx.progress("service-signal", f"deleting the Cloud Map name of {name}")
                self._delete_one(ctx, svc)

    def _delete_one(self, ctx: Context, svc: dict[str, Any]) -> None:
        # ECS deregisters the shard task's instance while its service drains.
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _sd(ctx).delete_service(Id=svc["Id"])),
            codes=("ResourceInUse",),
            timeout=ctx.patience.resource_gone,
            why=f"waiting for ECS to deregister the task of {svc['Name']}",
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for shard, fqdn in res.attrs["names"].items():
            svc = res.attrs["services"].get(shard)
            count = (svc or {}).get("InstanceCount")
            state = (
                "missing" if svc is None else f"{count} instance(s)" if count is not None else ""
            )
            out[shard] = f"{fqdn} {state}".strip()
        return out

    def delete(self, ctx: Context, res: Resource) -> None:
        for svc in [*res.attrs["services"].values(), *res.attrs["extras"].values()]:
            self._delete_one(ctx, svc)


# -- log group --------------------------------------------------------------------------------


class LogGroup(Step):
    name = "log-group"
    kind = "logs log-group"
    depends_on: tuple[str, ...] = ("cluster",)  # teardown order only: the cluster goes last

    def group_name(self, ctx: Context) -> str:
        return log_group_name(ctx)

    def _retained(self, ctx: Context) -> str:
        return "logs.keep_on_teardown" if ctx.cfg.logs.keep_on_teardown else ""

    id_pattern = r"/pcls/[a-z0-9-]+"

    def find(self, ctx: Context) -> Resource | None:
        name = self.group_name(ctx)
        groups = ctx.aws.all("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        group = next((g for g in groups if g["logGroupName"] == name), None)
        if group is None:
            return None
        tags = self._tags(ctx, group)
        # A group kept by an earlier teardown still carries the stack's tags: it is ours.
        if not ctx.claims(self.name, name, tags):
            ctx.collision(self.name, name, "log group", tags)
            return None
        group = {**group, "tags": tags}
        return Resource(name, attrs={"group": group}, retained=self._retained(ctx))

    def _tags(self, ctx: Context, group: dict[str, Any]) -> dict[str, str]:
        reply = ctx.aws.cached("logs", "list_tags_for_resource", resourceArn=self._arn(ctx, group))
        return dict(reply.get("tags", {}))

    def tag(self, ctx: Context, res: Resource) -> None:
        group_arn = self._arn(ctx, res.attrs["group"])
        ctx.aws.client("logs").tag_resource(resourceArn=group_arn, tags=ctx.tag_dict(self.name))

    def _arn(self, ctx: Context, group: dict[str, Any]) -> str:
        # logGroupArn has no ":*"; the "arn" field (with it) is refused by the tagging calls.
        return group.get("logGroupArn") or arn(ctx, "logs", f"log-group:{group['logGroupName']}")

    def create(self, ctx: Context) -> Resource:
        name = self.group_name(ctx)
        try:
            ctx.aws.client("logs").create_log_group(logGroupName=name, tags=ctx.tag_dict(self.name))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
            # Made by someone between find and create: theirs, never adopted.
            raise Collision(
                f"{self.name}: log group {name} was created by someone else meanwhile; rename "
                f"the stack (stack.name), remove that group, or `pcls adopt {self.name} {name}`"
            ) from None
        group = {"logGroupName": name, "fresh": True}
        return Resource(name, attrs={"group": group}, retained=self._retained(ctx))

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        group = res.attrs["group"]
        want = ctx.cfg.logs.retention_days
        out = []
        if group.get("retentionInDays") != want:
            have = group.get("retentionInDays")
            out.append(f"retention {have or 'never expires'} -> {want} days")
        if not group.get("fresh"):
            out += tag_drift(ctx.tag_dict(self.name), group.get("tags", {}))
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        logs = ctx.aws.client("logs")
        if any(d.startswith("retention") for d in drift):
            logs.put_retention_policy(
                logGroupName=res.id, retentionInDays=ctx.cfg.logs.retention_days
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        g = res.attrs["group"]
        return {"retention_days": g.get("retentionInDays"), "bytes": g.get("storedBytes", 0)}

    def delete(self, ctx: Context, res: Resource) -> None:
        ignore_missing(lambda: ctx.aws.client("logs").delete_log_group(logGroupName=res.id))


def steps(cfg: Config) -> list[Step]:
    return [
        Cluster(),
        Namespace(),
        DiscoveryService(router.shard_names(cfg.signal.shards)),
        LogGroup(),
    ]

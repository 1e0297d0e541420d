"""Platform: the ECS cluster, the Cloud Map namespace and `xmpp` service, the log group.

The cluster offers FARGATE and FARGATE_SPOT; each service picks its own mix. The bridges find
prosody as `xmpp.<stack>.internal`, an A record ECS keeps pointing at the signal task. Container
Insights is off unless configured: it bills per metric and the stack has few tasks.

Dependencies here also encode the teardown order (the engine reverses them): services, task
definitions, the `xmpp` service, the namespace, the roles, the parameters, the log group and
last the cluster. Some edges (log-group → cluster, namespace → roles) exist only for that order.
"""

from __future__ import annotations

import uuid
from typing import Any

import botocore.exceptions

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

CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# Ad-hoc tasks (run-task without a launch type) land on regular Fargate, never on Spot.
DEFAULT_STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
XMPP_SERVICE = "xmpp"
XMPP_TTL = 10  # seconds; bridges re-resolve soon after the signal task is replaced
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


class DiscoveryService(Step):
    """`xmpp.<stack>.internal`: the A record of the signal task, kept by ECS."""

    name = "discovery-xmpp"
    kind = "cloudmap service"
    depends_on = ("namespace",)

    @staticmethod
    def _dns_records() -> list[dict[str, Any]]:
        return [{"Type": "A", "TTL": XMPP_TTL}]

    id_pattern = r"srv-[a-z0-9]+"

    def find(self, ctx: Context) -> Resource | None:
        # Only in this stack's own namespace: every stack has a service named xmpp.
        namespace = Namespace().find(ctx)
        if namespace is None:
            return None
        items = ctx.aws.all(
            "servicediscovery",
            "list_services",
            "Services",
            Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace.id], "Condition": "EQ"}],
        )
        # The filter is the request; GetService's NamespaceId is the proof (some endpoints
        # ignore the filter).
        named = [
            s
            for s in items
            if s["Name"] == XMPP_SERVICE
            and ctx.aws.cached("servicediscovery", "get_service", Id=s["Id"])["Service"].get(
                "NamespaceId"
            )
            == namespace.id
        ]
        found = _pick_tagged(ctx, self.name, named, "Cloud Map service")
        if found is None:
            return None
        svc, tags = found
        return self._resource(ctx, svc, tags)

    def tag(self, ctx: Context, res: Resource) -> None:
        _sd_tag(ctx, self.name, res)

    def _resource(self, ctx: Context, svc: dict[str, Any], tags: list[dict[str, str]]) -> Resource:
        fqdn = f"{XMPP_SERVICE}.{namespace_name(ctx)}"
        return Resource(
            svc["Id"],
            attrs={"arn": svc["Arn"], "fqdn": fqdn, "service": svc, "tags": tags},
        )

    def create(self, ctx: Context) -> Resource:
        svc = _sd(ctx).create_service(
            Name=XMPP_SERVICE,
            NamespaceId=ctx.out("namespace").id,
            CreatorRequestId=f"pcls-{ctx.stack}-{uuid.uuid4().hex}",
            Description=f"pcls {ctx.stack}: prosody of the signal task, for the bridges",
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": self._dns_records()},
            # ECS reports the task's health; a replaced signal task drops out of DNS.
            HealthCheckCustomConfig={"FailureThreshold": 1},
            Tags=ctx.tags(self.name),
        )["Service"]
        return self._resource(ctx, svc, ctx.tags(self.name))

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        records = (res.attrs["service"].get("DnsConfig") or {}).get("DnsRecords") or []
        out = []
        have = sorted((r["Type"], int(r["TTL"])) for r in records)
        want = sorted((r["Type"], r["TTL"]) for r in self._dns_records())
        if have != want:
            out.append(f"DNS records {have} -> {want}")
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(res.attrs["tags"]))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        if any(d.startswith("DNS records") for d in drift):
            op = _sd(ctx).update_service(
                Id=res.id, Service={"DnsConfig": {"DnsRecords": self._dns_records()}}
            )["OperationId"]
            _wait_operation(ctx, self.name, op, "the DNS records to change")
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {"name": res.attrs["fqdn"]}
        if "InstanceCount" in res.attrs["service"]:
            out["instances"] = res.attrs["service"]["InstanceCount"]
        return out

    def delete(self, ctx: Context, res: Resource) -> None:
        # ECS deregisters the signal task's instance while its service drains.
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _sd(ctx).delete_service(Id=res.id)),
            codes=("ResourceInUse",),
            timeout=ctx.patience.resource_gone,
            why="waiting for ECS to deregister the signal task",
        )


# -- log group --------------------------------------------------------------------------------


class LogGroup(Step):
    name = "log-group"
    kind = "logs log-group"
    depends_on = ("cluster",)  # teardown order only: the cluster goes last

    def _retained(self, ctx: Context) -> str:
        return "logs.keep_on_teardown" if ctx.cfg.logs.keep_on_teardown else ""

    id_pattern = r"/pcls/[a-z0-9-]+"

    def find(self, ctx: Context) -> Resource | None:
        name = log_group_name(ctx)
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
        name = log_group_name(ctx)
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
    return [Cluster(), Namespace(), DiscoveryService(), LogGroup()]

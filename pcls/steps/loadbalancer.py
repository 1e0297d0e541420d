"""Load balancer: internet-facing ALB, the routers' target group, HTTPS and HTTP listeners.

The ALB terminates TLS (a TLS 1.3 policy) and forwards by IP to the routers, one in every signal
shard task on port 8080 (pcls/router.py), which send each room to its shard; the target group's
health check is the router's /router-health. Port 80 redirects, except for one forward rule
(/router-health to the target group): that rule attaches the target group to the load balancer,
which is all ECS needs to create the shard services, so the shards start pulling images and
joining XMPP while ACM still validates the certificate for the HTTPS listener. The idle timeout
is raised from AWS's 60 s default because the XMPP websocket of a backgrounded browser tab may
carry nothing for minutes.

An HTTPS listener created right after its certificate was ISSUED can be refused with
CertificateNotFound for minutes (ACM and ELB are eventually consistent): the create and modify
calls retry that code for a bounded time, as terraform-provider-aws does. A dual-stack load
balancer is created (or switched to dualstack) only once every subnet's IPv6 range is
`associated`.

Each resource here is the stack's only when it carries pcls:stack=<stack> and pcls:step=<step>;
names (`<stack>-alb`, `<stack>-web`) and ledger ids only say where to look. A load balancer or
target group holding the name pcls would create without those tags is in the way, and so is a
listener on the stack's own load balancer at the step's port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions

from pcls import router
from pcls.aws import STACK_TAG, STEP_TAG, ignore_missing, is_not_found, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Collision, Conflict, Context, Resource, Step
from pcls.errors import PclsError
from pcls.steps.network import propagation, wait_ipv6
from pcls.steps.platform import AWAKE, READY_SECONDS, sleep_state, wake_function_name
from pcls.wakefn import handler

ROUTER_PORT = router.ROUTER_PORT  # the routers in the shard tasks: the targets
# The port a stack with one signal task created its target group with (its web). A group's port
# is immutable, but it is only the default for targets registered without one: ECS registers
# every task with its container port (the router's 8080) and the health check uses each
# target's own port (traffic-port), so such a group serves the routers as it is.
V1_PORT = router.WEB_PORT
TAGS_PER_CALL = 20  # elbv2 DescribeTags takes at most 20 ARNs
LISTENER_STEPS = ("listener-https", "listener-http")
WAKE_TG_STEP = "wake-target-group"
ELB_ARN = r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:"
HEALTH_CHECK: dict[str, Any] = {
    "HealthCheckEnabled": True,
    "HealthCheckProtocol": "HTTP",
    "HealthCheckPort": "traffic-port",
    # 200 while the router runs and its own shard's web answers (not the bridges, not jicofo)
    "HealthCheckPath": router.HEALTH_PATH,
    "HealthCheckIntervalSeconds": 15,  # two passes (30 s) make a new shard task healthy
    "HealthCheckTimeoutSeconds": 5,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 3,
    "Matcher": {"HttpCode": "200"},
}
# Each listener's one forward rule: on HTTP it attaches the target group to the load balancer
# early, on HTTPS it sends /_pcls/* to the wake function.
RULE_PRIORITY = 1
HTTPS_REDIRECT: dict[str, Any] = {
    "Type": "redirect",
    "RedirectConfig": {
        "Protocol": "HTTPS",
        "Port": "443",
        "Host": "#{host}",
        "Path": "/#{path}",
        "Query": "#{query}",
        "StatusCode": "HTTP_301",
    },
}
IMMUTABLE = "immutable; delete it to recreate"
# What ELB answers, for minutes after ACM issued it, about a certificate that exists.
CERTIFICATE_NOT_YET = ("CertificateNotFound",)


def _elbv2(ctx: Context) -> Any:
    return ctx.aws.client("elbv2")


def alb_name(ctx: Context) -> str:
    return f"{ctx.stack}-alb"


def web_group_name(ctx: Context) -> str:
    return f"{ctx.stack}-web"


def wake_group_name(ctx: Context) -> str:
    return wake_function_name(ctx.stack)  # the group is named after the function it serves


def _load_balancers(ctx: Context) -> list[dict[str, Any]]:
    return ctx.aws.all("elbv2", "describe_load_balancers", "LoadBalancers")


def _target_groups(ctx: Context) -> list[dict[str, Any]]:
    return ctx.aws.all("elbv2", "describe_target_groups", "TargetGroups")


def _listener_lb(arn: str) -> str:
    """The load balancer a listener ARN belongs to (…:listener/app/<name>/<lb>/<listener>)."""
    return arn.replace(":listener/", ":loadbalancer/", 1).rsplit("/", 1)[0]


def _rule_lb(arn: str) -> str:
    """The load balancer of a rule ARN (…:listener-rule/app/<name>/<lb>/<listener>/<rule>)."""
    head, _, path = arn.partition(":listener-rule/")
    return f"{head}:loadbalancer/{'/'.join(path.split('/')[:3])}"


def _describe_tags(ctx: Context, arns: list[str]) -> dict[str, list[dict[str, str]]]:
    """Tags per ARN, 20 ARNs a call; an ARN that no longer exists is left out."""
    out: dict[str, list[dict[str, str]]] = {}
    for i in range(0, len(arns), TAGS_PER_CALL):
        chunk = arns[i : i + TAGS_PER_CALL]
        try:
            resp = ctx.aws.cached("elbv2", "describe_tags", ResourceArns=chunk)
        except botocore.exceptions.ClientError as exc:
            if not is_not_found(exc):
                raise
            if len(chunk) > 1:
                # One of them went away since it was listed (or a ledger id is stale).
                for arn in chunk:
                    out.update(_describe_tags(ctx, [arn]))
            continue
        for desc in resp.get("TagDescriptions", []):
            out[desc["ResourceArn"]] = desc.get("Tags", [])
    return out


def _elb_tags(ctx: Context) -> dict[str, list[dict[str, str]]]:
    """Tags of every load balancer and target group in the region, and of the listeners the
    ledger names on them.

    Ownership is read from these tags alone (names and the ledger only say where to look), so
    every load balancer and target group is a candidate. One batched DescribeTags (20 ARNs a
    call) serves the alb, target-group and listener steps of a run.
    """
    lbs = {lb["LoadBalancerArn"] for lb in _load_balancers(ctx)}
    arns = lbs | {tg["TargetGroupArn"] for tg in _target_groups(ctx)}
    for step in LISTENER_STEPS:
        for rid in (ctx.ledger.id(step), ctx.adopting.get(step)):
            if isinstance(rid, str) and ":listener/" in rid and _listener_lb(rid) in lbs:
                arns.add(rid)
        # the HTTP listener's forward rule, as the ledger last saw it
        rule = ctx.ledger.get(step).get("rule")
        if isinstance(rule, str) and ":listener-rule/" in rule and _rule_lb(rule) in lbs:
            arns.add(rule)
    return _describe_tags(ctx, sorted(arns))


def _pick(
    ctx: Context,
    step: str,
    items: list[dict[str, Any]],
    id_key: str,
    name_key: str,
    want: str,
    what: str,
) -> dict[str, Any] | None:
    """The item this step owns, by both tags.

    Anything else the ledger names is a collision, and so is anything holding the name pcls
    would create (`want`) while the step owns nothing: the create call would fail, or return
    that resource as if it were new.
    """
    found = ctx.pick(step, items, id_key, what=what)
    ledger_id = ctx.ledger.id(step)
    for item in items:
        rid = item[id_key]
        if (found is not None and rid == found[id_key]) or ctx.claims(step, rid, item["Tags"]):
            continue
        if rid == ledger_id or (found is None and item.get(name_key) == want):
            ctx.collision(step, rid, f"{what} {item.get(name_key)}", item["Tags"])
    return found


def find_alb(ctx: Context) -> dict[str, Any] | None:
    """The stack's load balancer: the one tagged for this stack and the alb step."""
    tags = _elb_tags(ctx)
    items = [
        {**lb, "Tags": tags[lb["LoadBalancerArn"]]}
        for lb in _load_balancers(ctx)
        if lb["LoadBalancerArn"] in tags
    ]
    return _pick(
        ctx, "alb", items, "LoadBalancerArn", "LoadBalancerName", alb_name(ctx), "load balancer"
    )


def find_target_group(
    ctx: Context, step: str = "target-group", want: str = ""
) -> dict[str, Any] | None:
    tags = _elb_tags(ctx)
    items = [
        {**tg, "Tags": tags[tg["TargetGroupArn"]]}
        for tg in _target_groups(ctx)
        if tg["TargetGroupArn"] in tags
    ]
    return _pick(
        ctx,
        step,
        items,
        "TargetGroupArn",
        "TargetGroupName",
        want or web_group_name(ctx),
        "target group",
    )


def _confirm_created(
    ctx: Context, step: str, arn: str, before: dict[str, list[dict[str, str]]], what: str
) -> None:
    """CreateLoadBalancer and CreateTargetGroup return an existing resource of the same name
    and settings as if they had made it: go on only with a new resource or one already ours.
    Anything else is reported, unchanged."""
    if arn in before:
        tags = tags_of(before[arn])
    else:
        try:
            desc = _elbv2(ctx).describe_tags(ResourceArns=[arn]).get("TagDescriptions", [])
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return  # not visible yet: only a resource made a moment ago can be that new
            raise
        tags = tags_of(desc[0].get("Tags")) if desc else {}
    if ctx.owns(step, tags):
        return
    conflict = Conflict(
        step, arn, what, tags.get(STACK_TAG, ""), tags.get(STEP_TAG, ""), from_ledger=False
    )
    raise Collision(conflict.message(ctx.stack) + " (AWS returned it for the create call)")


def _attribute_drift(want: dict[str, str], have: dict[str, str]) -> list[str]:
    return [
        f"attribute {k} {have.get(k, 'unset')} -> {v}" for k, v in want.items() if have.get(k) != v
    ]


def _attributes(resp: dict[str, Any]) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in resp.get("Attributes", [])}


def _delete_target_group(
    ctx: Context, step: str, arn: str, why: str, blocker: Callable[[], str] | None = None
) -> None:
    """AWS refuses while a listener rule or an ECS service still uses the group: retried."""
    ctx.retry_while(
        step,
        lambda: ignore_missing(lambda: _elbv2(ctx).delete_target_group(TargetGroupArn=arn)),
        codes=("ResourceInUse",),
        timeout=ctx.patience.dependency_release,
        why=why,
        blocker=blocker,
    )


def _retag(ctx: Context, step: str, arn: str) -> None:
    _elbv2(ctx).add_tags(ResourceArns=[arn], Tags=ctx.tags(step))


# -- target group ------------------------------------------------------------------------------


class TargetGroup(Step):
    name = "target-group"
    kind = "elbv2 target-group"
    depends_on = ("vpc",)
    id_pattern = ELB_ARN + r"targetgroup/[A-Za-z0-9-]+/[0-9a-f]+"

    def group_name(self, ctx: Context) -> str:
        return web_group_name(ctx)

    def _res(self, tg: dict[str, Any]) -> Resource:
        arn = tg["TargetGroupArn"]
        return Resource(arn, attrs={"tg": tg, "arn_suffix": arn.split(":", 5)[5]})

    def find(self, ctx: Context) -> Resource | None:
        tg = find_target_group(ctx)
        return self._res(tg) if tg else None

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res.id)

    def create(self, ctx: Context) -> Resource:
        name = self.group_name(ctx)
        before = _elb_tags(ctx)
        tg = _elbv2(ctx).create_target_group(
            Name=name,
            Protocol="HTTP",
            ProtocolVersion="HTTP1",
            Port=ROUTER_PORT,
            VpcId=ctx.out("vpc").id,
            TargetType="ip",  # Fargate tasks in awsvpc mode register by IP
            IpAddressType="ipv4",
            Tags=ctx.tags(self.name),
            **HEALTH_CHECK,
        )["TargetGroups"][0]
        _confirm_created(ctx, self.name, tg["TargetGroupArn"], before, f"target group {name}")
        return self._res({**tg, "Tags": ctx.tags(self.name)})

    def _want_attributes(self, ctx: Context) -> dict[str, str]:
        return {
            "deregistration_delay.timeout_seconds": str(ctx.cfg.loadbalancer.deregistration_delay)
        }

    def _have_attributes(self, ctx: Context, res: Resource) -> dict[str, str]:
        resp = ctx.aws.cached("elbv2", "describe_target_group_attributes", TargetGroupArn=res.id)
        return _attributes(resp)

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        tg = res.attrs["tg"]
        out = []
        fixed = {
            "Protocol": "HTTP",
            "Port": ROUTER_PORT,
            "TargetType": "ip",
            "VpcId": ctx.out("vpc").id,
        }
        if tg.get("Port") == V1_PORT:
            fixed.pop("Port")  # v1's group: serves the routers as it is (see V1_PORT)
        out += [
            f"{k} {tg.get(k)} (config {v}; {IMMUTABLE})" for k, v in fixed.items() if tg.get(k) != v
        ]
        out += [
            f"health check {k} {tg.get(k)!r} -> {v!r}"
            for k, v in HEALTH_CHECK.items()
            if tg.get(k) != v
        ]
        out += _attribute_drift(self._want_attributes(ctx), self._have_attributes(ctx, res))
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(tg.get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        elbv2 = _elbv2(ctx)
        if any(d.startswith("health check ") for d in drift):
            elbv2.modify_target_group(TargetGroupArn=res.id, **HEALTH_CHECK)
        changed = _attribute_drift(self._want_attributes(ctx), self._have_attributes(ctx, res))
        if changed:
            elbv2.modify_target_group_attributes(
                TargetGroupArn=res.id,
                Attributes=[{"Key": k, "Value": v} for k, v in self._want_attributes(ctx).items()],
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def _users(self, ctx: Context, arn: str) -> str:
        try:
            tgs = _elbv2(ctx).describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
        except Exception:  # the blocker text is a hint; never fail the retry over it
            return ""
        return ", ".join(a.split("/", 1)[-1] for tg in tgs for a in tg.get("LoadBalancerArns", []))

    def delete(self, ctx: Context, res: Resource) -> None:
        _delete_target_group(
            ctx,
            self.name,
            res.id,
            "waiting for listeners and services to release the target group",
            blocker=lambda: self._users(ctx, res.id),
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        health = _elbv2(ctx).describe_target_health(TargetGroupArn=res.id)
        targets = health.get("TargetHealthDescriptions", [])
        healthy = sum(1 for t in targets if t["TargetHealth"]["State"] == "healthy")
        per_target = ", ".join(
            f"{t['Target']['Id']}:{t['Target'].get('Port', ROUTER_PORT)} "
            f"{t['TargetHealth']['State']}"
            + (f" ({t['TargetHealth']['Reason']})" if t["TargetHealth"].get("Reason") else "")
            for t in targets
        )
        out = {"healthy": f"{healthy}/{len(targets)}", "targets": per_target or "none"}
        if res.attrs["tg"].get("Port") == V1_PORT:
            out["port"] = (
                f"{V1_PORT} (created by a one-task stack; only the default for targets "
                f"registered without a port: ECS registers the routers on {ROUTER_PORT})"
            )
        return out


class WakeTargetGroup(Step):
    """`<stack>-wake`: the wake function's `lambda` target group (pcls/steps/wake.py registers
    the function). The HTTPS listener forwards to it while the stack sleeps or wakes. Lambda
    targets have no port, protocol or VPC, and their health check is off by default: the
    function answers whenever the listener sends it a request."""

    name = WAKE_TG_STEP
    kind = "elbv2 target-group"
    id_pattern = ELB_ARN + r"targetgroup/[A-Za-z0-9-]+/[0-9a-f]+"

    def find(self, ctx: Context) -> Resource | None:
        tg = find_target_group(ctx, self.name, wake_group_name(ctx))
        return Resource(tg["TargetGroupArn"], attrs={"tg": tg}) if tg else None

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res.id)

    def create(self, ctx: Context) -> Resource:
        name = wake_group_name(ctx)
        before = _elb_tags(ctx)
        tg = _elbv2(ctx).create_target_group(
            Name=name, TargetType="lambda", Tags=ctx.tags(self.name)
        )["TargetGroups"][0]
        _confirm_created(ctx, self.name, tg["TargetGroupArn"], before, f"target group {name}")
        return Resource(tg["TargetGroupArn"], attrs={"tg": {**tg, "Tags": ctx.tags(self.name)}})

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        tg = res.attrs["tg"]
        out = []
        if tg.get("TargetType") != "lambda":
            out.append(f"TargetType {tg.get('TargetType')} (config lambda; {IMMUTABLE})")
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(tg.get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        why = "waiting for the HTTPS listener to release the wake target group"
        _delete_target_group(ctx, self.name, res.id, why)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        health = _elbv2(ctx).describe_target_health(TargetGroupArn=res.id)
        targets = health.get("TargetHealthDescriptions", [])
        return {"targets": len(targets)}


# -- load balancer -----------------------------------------------------------------------------


class LoadBalancer(Step):
    name = "alb"
    kind = "elbv2 load-balancer"
    typical_seconds = 180  # ALB provisioning: a few minutes
    id_pattern = ELB_ARN + r"loadbalancer/app/[A-Za-z0-9-]+/[0-9a-f]+"

    def __init__(self, subnets: list[str]) -> None:
        self.subnets = subnets
        # route-table: an internet-facing ALB needs the route out; on teardown the gateway is
        # detached only after the ALB's addresses are gone.
        self.depends_on = (*subnets, "sg-alb", "route-table")

    def lb_name(self, ctx: Context) -> str:
        return alb_name(ctx)

    def _ip_type(self, ctx: Context) -> str:
        return "dualstack" if ctx.cfg.network.dual_stack else "ipv4"

    def _res(self, lb: dict[str, Any]) -> Resource:
        arn = lb["LoadBalancerArn"]
        return Resource(
            arn,
            attrs={
                "lb": lb,
                "dns_name": lb["DNSName"],
                "canonical_zone_id": lb["CanonicalHostedZoneId"],
                "arn_suffix": arn.split(":loadbalancer/", 1)[1],
            },
            state=lb.get("State", {}).get("Code", ""),
        )

    def find(self, ctx: Context) -> Resource | None:
        lb = find_alb(ctx)
        return self._res(lb) if lb else None

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res.id)

    def create(self, ctx: Context) -> Resource:
        elbv2 = _elbv2(ctx)
        name = self.lb_name(ctx)
        before = _elb_tags(ctx)
        if ctx.cfg.network.dual_stack:
            wait_ipv6(ctx, self.name, [ctx.out(s).id for s in self.subnets])
        lb = elbv2.create_load_balancer(
            Name=name,
            Subnets=[ctx.out(s).id for s in self.subnets],
            SecurityGroups=[ctx.out("sg-alb").id],
            Scheme="internet-facing",
            Type="application",
            IpAddressType=self._ip_type(ctx),
            Tags=ctx.tags(self.name),
        )["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        _confirm_created(ctx, self.name, arn, before, f"load balancer {name}")
        latest = {"lb": lb}

        def active() -> tuple[bool, str]:
            found = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
            latest["lb"] = found
            state = found.get("State", {})
            if state.get("Code") == "failed":
                raise PclsError(f"{self.name}: load balancer {arn} failed: {state.get('Reason')}")
            return state.get("Code") == "active", state.get("Code", "")

        ctx.wait_for(
            self.name,
            "the load balancer to become active",
            active,
            timeout=ctx.patience.service_stable,
            hint="see the load balancer in the EC2 console; run up again to resume",
        )
        return self._res({**latest["lb"], "Tags": ctx.tags(self.name)})

    def _want_attributes(self, ctx: Context) -> dict[str, str]:
        return {
            "idle_timeout.timeout_seconds": str(ctx.cfg.loadbalancer.idle_timeout),
            # Requests with malformed headers never reach the web container.
            "routing.http.drop_invalid_header_fields.enabled": "true",
        }

    def _have_attributes(self, ctx: Context, res: Resource) -> dict[str, str]:
        resp = ctx.aws.cached("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=res.id)
        return _attributes(resp)

    def _want(self, ctx: Context) -> tuple[set[str], set[str]]:
        return {ctx.out(s).id for s in self.subnets}, {ctx.out("sg-alb").id}

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        lb = res.attrs["lb"]
        subnets, groups = self._want(ctx)
        out = []
        if lb.get("Scheme") != "internet-facing":
            out.append(f"scheme {lb.get('Scheme')} (config internet-facing; {IMMUTABLE})")
        have_subnets = {az["SubnetId"] for az in lb.get("AvailabilityZones", [])}
        if have_subnets != subnets:
            out.append(f"subnets {sorted(have_subnets)}, not {sorted(subnets)}")
        if set(lb.get("SecurityGroups", [])) != groups:
            out.append(
                f"security groups {sorted(lb.get('SecurityGroups', []))}, not {sorted(groups)}"
            )
        if lb.get("IpAddressType") != self._ip_type(ctx):
            out.append(f"ip address type {lb.get('IpAddressType')} -> {self._ip_type(ctx)}")
        out += _attribute_drift(self._want_attributes(ctx), self._have_attributes(ctx, res))
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(lb.get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        elbv2 = _elbv2(ctx)
        subnets, groups = self._want(ctx)
        if any(d.startswith("subnets ") for d in drift):
            elbv2.set_subnets(LoadBalancerArn=res.id, Subnets=sorted(subnets))
        if any(d.startswith("security groups ") for d in drift):
            elbv2.set_security_groups(LoadBalancerArn=res.id, SecurityGroups=sorted(groups))
        if any(d.startswith("ip address type ") for d in drift):
            if ctx.cfg.network.dual_stack:
                wait_ipv6(ctx, self.name, sorted(subnets))
            elbv2.set_ip_address_type(LoadBalancerArn=res.id, IpAddressType=self._ip_type(ctx))
        want = self._want_attributes(ctx)
        have = self._have_attributes(ctx, res)
        changed = [{"Key": k, "Value": v} for k, v in want.items() if have.get(k) != v]
        if changed:
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=res.id, Attributes=changed)
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        elbv2 = _elbv2(ctx)
        ignore_missing(lambda: elbv2.delete_load_balancer(LoadBalancerArn=res.id))

        def gone() -> tuple[bool, str]:
            try:
                lbs = elbv2.describe_load_balancers(LoadBalancerArns=[res.id])["LoadBalancers"]
            except botocore.exceptions.ClientError as exc:
                if is_not_found(exc):
                    return True, "deleted"
                raise
            return not lbs, lbs[0].get("State", {}).get("Code", "") if lbs else ""

        # Its network interfaces (which hold the subnets and sg-alb) go only after this.
        ctx.wait_for(
            self.name,
            "the load balancer to be deleted",
            gone,
            timeout=ctx.patience.resource_gone,
            hint="run teardown again to resume",
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"state": res.state, "dns_name": res.attrs["dns_name"]}


# -- listeners ---------------------------------------------------------------------------------


def _action_key(action: dict[str, Any]) -> tuple[Any, ...]:
    """A default action reduced to what matters, with AWS's defaults filled in."""
    kind = action.get("Type")
    if kind == "forward":
        arn = action.get("TargetGroupArn")
        groups = (
            [arn]
            if arn
            else [
                g["TargetGroupArn"] for g in action.get("ForwardConfig", {}).get("TargetGroups", [])
            ]
        )
        return ("forward", tuple(sorted(set(groups))))
    if kind == "redirect":
        r = action.get("RedirectConfig", {})
        return (
            "redirect",
            r.get("Protocol", "#{protocol}"),
            r.get("Port", "#{port}"),
            r.get("Host", "#{host}"),
            r.get("Path", "/#{path}"),
            r.get("Query", "#{query}"),
            r.get("StatusCode"),
        )
    if kind == "fixed-response":
        f = action.get("FixedResponseConfig", {})
        # the body too: a changed sleep page (a new pcls, another estimate) is rewritten
        return ("fixed-response", f.get("StatusCode"), f.get("ContentType"), f.get("MessageBody"))
    return (str(kind), repr(sorted(action.items())))


def _action_text(action: dict[str, Any]) -> str:
    key = _action_key(action)
    if key[0] == "forward":
        return "forward to " + ", ".join(a.split(":")[-1] for a in key[1]) if key[1] else "forward"
    if key[0] == "redirect":
        return f"redirect {key[6]} to {key[1].lower()}:{key[2]}"
    if key[0] == "fixed-response":
        page = "the sleep page" if key[3] == handler.sleep_page(READY_SECONDS) else "a page"
        return f"fixed response {key[1]} ({page})"
    return str(key[0])


class Listener(Step):
    """One listener of the stack's ALB, tagged for its step; default action reconciled.

    Only listeners on the stack's own load balancer are candidates. One there on the step's
    port without the step's tags is in the way (a port holds one listener).
    """

    kind = "elbv2 listener"
    id_pattern = ELB_ARN + r"listener/app/[A-Za-z0-9-]+/[0-9a-f]+/[0-9a-f]+"
    port = 0
    protocol = ""
    not_yet: tuple[str, ...] = ()  # codes AWS answers for a while about what the listener names
    # The listener's one forward rule (tagged for the step, at RULE_PRIORITY), in every state;
    # "" for none. rule_step names the target group step it forwards to.
    rule_path = ""
    rule_step = ""
    rule_why = ""  # what the rule is for, in drift messages
    rule_target = ""  # the target group, in drift messages

    def _listeners(self, ctx: Context, alb: dict[str, Any]) -> list[dict[str, Any]]:
        """The ALB's listeners with their tags (the ledger's are in the shared tag call)."""
        arn = alb["LoadBalancerArn"]
        listeners = ctx.aws.all("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=arn)
        tags = _elb_tags(ctx)
        missing = sorted(li["ListenerArn"] for li in listeners if li["ListenerArn"] not in tags)
        if missing:
            tags = {**tags, **_describe_tags(ctx, missing)}
        return [{**li, "Tags": tags.get(li["ListenerArn"], [])} for li in listeners]

    def find(self, ctx: Context) -> Resource | None:
        alb = find_alb(ctx)
        items = self._listeners(ctx, alb) if alb else []
        found = ctx.pick(self.name, items, "ListenerArn", what="listener")
        lb_name = alb["LoadBalancerName"] if alb else ""
        for item in items:
            rid = item["ListenerArn"]
            if (found is not None and rid == found["ListenerArn"]) or ctx.claims(
                self.name, rid, item["Tags"]
            ):
                continue
            if rid == ctx.ledger.id(self.name) or (found is None and item["Port"] == self.port):
                what = f"listener {item['Port']} of load balancer {lb_name}"
                ctx.collision(self.name, rid, what, item["Tags"])
        self._elsewhere(ctx, {i["ListenerArn"] for i in items})
        if found is None:
            return None
        res = Resource(found["ListenerArn"], attrs={"listener": found})
        if self.rule_path:
            self._find_rule(ctx, res)
        return res

    def _rules(self, ctx: Context, listener_arn: str) -> list[dict[str, Any]]:
        rules = ctx.aws.all("elbv2", "describe_rules", "Rules", ListenerArn=listener_arn)
        rules = [r for r in rules if not r.get("IsDefault")]
        tags = _elb_tags(ctx)  # holds the rule the ledger names
        missing = sorted(r["RuleArn"] for r in rules if r["RuleArn"] not in tags)
        if missing:
            tags = {**tags, **_describe_tags(ctx, missing)}
        return [{**r, "Tags": tags.get(r["RuleArn"], [])} for r in rules]

    def _find_rule(self, ctx: Context, res: Resource) -> None:
        rules = self._rules(ctx, res.id)
        mine = [r for r in rules if ctx.owns(self.name, r["Tags"])]
        for r in rules:
            if r not in mine and str(r.get("Priority")) == str(RULE_PRIORITY):
                what = f"rule {RULE_PRIORITY} of the {self.protocol} listener"
                ctx.collision(self.name, r["RuleArn"], what, r["Tags"])
        rule = ctx.unique(self.name, mine, "RuleArn")
        res.attrs["rule"] = rule
        if rule is not None:
            res.ledger["rule"] = rule["RuleArn"]

    def _forward(self, ctx: Context) -> list[dict[str, Any]]:
        return [{"Type": "forward", "TargetGroupArn": ctx.out(self.rule_step).id}]

    def _conditions(self) -> list[dict[str, Any]]:
        return [{"Field": "path-pattern", "PathPatternConfig": {"Values": [self.rule_path]}}]

    def _rule_drift(self, ctx: Context, rule: dict[str, Any] | None) -> list[str]:
        if rule is None:
            return [f"forward rule {self.rule_path} missing ({self.rule_why})"]
        out = []
        actions = [_action_key(a) for a in rule.get("Actions", [])]
        paths = [
            v
            for c in rule.get("Conditions", [])
            for v in (c.get("PathPatternConfig") or {}).get("Values") or c.get("Values") or []
        ]
        if actions != [_action_key(a) for a in self._forward(ctx)] or paths != [self.rule_path]:
            shown = "; ".join(_action_text(a) for a in rule.get("Actions", [])) or "none"
            out.append(
                f"forward rule {', '.join(paths) or '(no path)'}: {shown}, not "
                f"{self.rule_path} to {self.rule_target}"
            )
        out += [
            f"forward rule {d}" for d in tag_drift(ctx.tag_dict(self.name), tags_of(rule["Tags"]))
        ]
        return out

    def _update_rule(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        rule = res.attrs.get("rule")
        elbv2 = _elbv2(ctx)
        if rule is None:
            made = elbv2.create_rule(
                ListenerArn=res.id,
                Priority=RULE_PRIORITY,
                Conditions=self._conditions(),
                Actions=self._forward(ctx),
                Tags=ctx.tags(self.name),
            )["Rules"][0]
            res.attrs["rule"] = {**made, "Tags": ctx.tags(self.name)}
            res.ledger["rule"] = made["RuleArn"]
            return
        if any(d.startswith("forward rule ") and " tag " not in d for d in drift):
            elbv2.modify_rule(
                RuleArn=rule["RuleArn"], Conditions=self._conditions(), Actions=self._forward(ctx)
            )
        if any(d.startswith("forward rule tag ") for d in drift):
            _retag(ctx, self.name, rule["RuleArn"])

    def _elsewhere(self, ctx: Context, here: set[str]) -> None:
        """A ledger id naming a listener of another load balancer is never this step's."""
        rid = ctx.ledger.id(self.name)
        tags = _elb_tags(ctx)
        if isinstance(rid, str) and rid not in here and rid in tags:
            lb_name = rid.split("/")[-3]
            what = f"listener of load balancer {lb_name}, not this stack's"
            ctx.collision(self.name, rid, what, tags[rid])

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res.id)

    def desired(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def _settle(self, ctx: Context, fn: Any) -> Any:
        if not self.not_yet:
            return fn()
        return ctx.retry_while(
            self.name,
            fn,
            codes=self.not_yet,
            timeout=propagation(ctx),
            why="waiting for the load balancer to see the new certificate",
        )

    def create(self, ctx: Context) -> Resource:
        listener = self._settle(
            ctx,
            lambda: _elbv2(ctx).create_listener(
                LoadBalancerArn=ctx.out("alb").id, Tags=ctx.tags(self.name), **self.desired(ctx)
            ),
        )["Listeners"][0]
        listener = {**listener, "Tags": ctx.tags(self.name)}
        res = Resource(listener["ListenerArn"], attrs={"listener": listener})
        res.attrs["rule"] = None  # drift() asks update() to add it
        return res

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        have = res.attrs["listener"]
        want = self.desired(ctx)
        out = []
        if have.get("Protocol") != want["Protocol"]:
            out.append(f"protocol {have.get('Protocol')} -> {want['Protocol']}")
        have_actions = [_action_key(a) for a in have.get("DefaultActions", [])]
        if have_actions != [_action_key(a) for a in want["DefaultActions"]]:
            shown = "; ".join(_action_text(a) for a in have.get("DefaultActions", [])) or "none"
            out.append(f"default action {shown}, not {_action_text(want['DefaultActions'][0])}")
        out += tag_drift(ctx.tag_dict(self.name), tags_of(have.get("Tags")))
        if self.rule_path:
            out += self._rule_drift(ctx, res.attrs.get("rule"))
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        rules = [d for d in drift if d.startswith("forward rule ")]
        drift = [d for d in drift if not d.startswith("forward rule ")]
        tags = res.attrs["listener"].get("Tags")
        if any(not d.startswith("tag ") for d in drift):
            # One call restores every reconciled field: modify_listener takes the full set.
            listener = self._settle(
                ctx,
                lambda: _elbv2(ctx).modify_listener(ListenerArn=res.id, **self.desired(ctx)),
            )
            res.attrs["listener"] = {**listener["Listeners"][0], "Tags": tags}
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)
            res.attrs["listener"]["Tags"] = ctx.tags(self.name)
        if rules:
            self._update_rule(ctx, res, rules)

    def delete(self, ctx: Context, res: Resource) -> None:
        ignore_missing(lambda: _elbv2(ctx).delete_listener(ListenerArn=res.id))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        listener = res.attrs["listener"]
        return {"port": listener.get("Port"), "protocol": listener.get("Protocol")}


class HttpsListener(Listener):
    """Port 443: forwards to the routers; while the stack sleeps or wakes its default is the
    sleep page, a fixed response the load balancer answers itself (the function points it back
    once the shards are healthy; `up` keeps what the state says). Its rule sends /_pcls/* to the
    wake function in every state, so only the page's button and status polls invoke it."""

    name = "listener-https"
    depends_on = ("alb", "certificate", "target-group", WAKE_TG_STEP)
    port = 443
    protocol = "HTTPS"
    # hashicorp/terraform-provider-aws#10510, #41789: minutes after ISSUED.
    not_yet = CERTIFICATE_NOT_YET
    rule_path = handler.RULE_PATH
    rule_step = WAKE_TG_STEP
    rule_why = "the wake function's button and status"
    rule_target = "the wake target group"

    def _default(self, ctx: Context) -> dict[str, Any]:
        if sleep_state(ctx) == AWAKE:
            return handler.awake_action(ctx.out("target-group").id)
        return handler.sleep_action(READY_SECONDS)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {
            "Protocol": "HTTPS",
            "Port": 443,
            "SslPolicy": ctx.cfg.loadbalancer.tls_policy,
            "Certificates": [{"CertificateArn": ctx.out("certificate").id}],
            "DefaultActions": [self._default(ctx)],
        }

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        have = res.attrs["listener"]
        want = self.desired(ctx)
        out = []
        if have.get("SslPolicy") != want["SslPolicy"]:
            out.append(f"ssl policy {have.get('SslPolicy')} -> {want['SslPolicy']}")
        certs = [c["CertificateArn"] for c in have.get("Certificates", [])]
        if certs[:1] != [ctx.out("certificate").id]:
            out.append(f"certificate {certs[0] if certs else 'none'}, not the stack's")
        return out + super().drift(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        rule = handler.RULE_PATH if res.attrs.get("rule") else "none"
        policy = res.attrs["listener"].get("SslPolicy")
        return {**super().details(ctx, res), "policy": policy, "forward": rule}


class HttpListener(Listener):
    """Port 80: redirects to HTTPS, and forwards /router-health to the routers.

    The forward rule is what makes the target group "associated with a load balancer" for ECS
    before the HTTPS listener exists.
    """

    name = "listener-http"
    # target-group: teardown removes both listeners before the group (the ALB takes longer to
    # make than the group, so up loses no time).
    depends_on = ("alb", "target-group")
    port = 80
    protocol = "HTTP"
    rule_path = router.HEALTH_PATH
    rule_step = "target-group"
    rule_why = "attaches the target group"
    rule_target = "the target group"

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"Protocol": "HTTP", "Port": 80, "DefaultActions": [HTTPS_REDIRECT]}

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        rule = res.attrs.get("rule")
        return {**super().details(ctx, res), "forward": router.HEALTH_PATH if rule else "none"}


def steps(cfg: Config) -> list[Step]:
    subnets = [f"subnet-{i + 1}" for i in range(cfg.network.azs)]
    return [
        TargetGroup(),
        WakeTargetGroup(),
        LoadBalancer(subnets),
        HttpsListener(),
        HttpListener(),
    ]

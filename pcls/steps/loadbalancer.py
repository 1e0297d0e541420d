"""Load balancer: internet-facing ALB, the web target group, HTTPS and HTTP listeners.

The ALB terminates TLS (a TLS 1.3 policy) and forwards to the signal task's web container on
port 8000 by IP; port 80 only redirects. The idle timeout is raised from AWS's 60 s default
because the XMPP websocket of a backgrounded browser tab may carry nothing for minutes.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from pcls.aws import ignore_missing, is_not_found, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.errors import PclsError

WEB_PORT = 8000
TAGS_PER_CALL = 20  # elbv2 DescribeTags takes at most 20 ARNs
HEALTH_CHECK: dict[str, Any] = {
    "HealthCheckEnabled": True,
    "HealthCheckProtocol": "HTTP",
    "HealthCheckPort": "traffic-port",
    "HealthCheckPath": "/",
    "HealthCheckIntervalSeconds": 15,  # two passes (30 s) make a new signal task healthy
    "HealthCheckTimeoutSeconds": 5,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 3,
    "Matcher": {"HttpCode": "200-399"},
}
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


def _elbv2(ctx: Context) -> Any:
    return ctx.aws.client("elbv2")


def _load_balancers(ctx: Context) -> list[dict[str, Any]]:
    return ctx.aws.all("elbv2", "describe_load_balancers", "LoadBalancers")


def _target_groups(ctx: Context) -> list[dict[str, Any]]:
    return ctx.aws.all("elbv2", "describe_target_groups", "TargetGroups")


def _stack_tags(ctx: Context) -> dict[str, list[dict[str, str]]]:
    """Tags of the load balancers and target groups that may be this stack's.

    Candidates are named after the stack (names are unique per region) or in the ledger; one
    batched DescribeTags serves both the alb and target-group steps.
    """
    prefix = f"{ctx.stack}-"
    known = {ctx.ledger.id("alb"), ctx.ledger.id("target-group")}
    arns = {
        lb["LoadBalancerArn"]
        for lb in _load_balancers(ctx)
        if lb["LoadBalancerName"].startswith(prefix) or lb["LoadBalancerArn"] in known
    } | {
        tg["TargetGroupArn"]
        for tg in _target_groups(ctx)
        if tg["TargetGroupName"].startswith(prefix) or tg["TargetGroupArn"] in known
    }
    ordered = sorted(arns)
    out: dict[str, list[dict[str, str]]] = {}
    for i in range(0, len(ordered), TAGS_PER_CALL):
        resp = ctx.aws.cached("elbv2", "describe_tags", ResourceArns=ordered[i : i + TAGS_PER_CALL])
        for desc in resp.get("TagDescriptions", []):
            out[desc["ResourceArn"]] = desc.get("Tags", [])
    return out


def _with_tags(ctx: Context, items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    tags = _stack_tags(ctx)
    return [{**item, "Tags": tags[item[key]]} for item in items if item[key] in tags]


def find_alb(ctx: Context) -> dict[str, Any] | None:
    """The stack's load balancer by ledger id or tags (config and AWS only)."""
    albs = [lb for lb in _load_balancers(ctx) if lb.get("Type") == "application"]
    return ctx.pick("alb", _with_tags(ctx, albs, "LoadBalancerArn"), "LoadBalancerArn")


def find_target_group(ctx: Context) -> dict[str, Any] | None:
    items = _with_tags(ctx, _target_groups(ctx), "TargetGroupArn")
    return ctx.pick("target-group", items, "TargetGroupArn")


def _attribute_drift(want: dict[str, str], have: dict[str, str]) -> list[str]:
    return [
        f"attribute {k} {have.get(k, 'unset')} -> {v}" for k, v in want.items() if have.get(k) != v
    ]


def _attributes(resp: dict[str, Any]) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in resp.get("Attributes", [])}


def _retag(ctx: Context, step: str, arn: str) -> None:
    _elbv2(ctx).add_tags(ResourceArns=[arn], Tags=ctx.tags(step))


# -- target group ------------------------------------------------------------------------------


class TargetGroup(Step):
    name = "target-group"
    kind = "elbv2 target-group"
    depends_on = ("vpc",)

    def group_name(self, ctx: Context) -> str:
        return f"{ctx.stack}-web"

    def _res(self, tg: dict[str, Any]) -> Resource:
        arn = tg["TargetGroupArn"]
        return Resource(arn, attrs={"tg": tg, "arn_suffix": arn.split(":", 5)[5]})

    def find(self, ctx: Context) -> Resource | None:
        tg = find_target_group(ctx)
        return self._res(tg) if tg else None

    def create(self, ctx: Context) -> Resource:
        tg = _elbv2(ctx).create_target_group(
            Name=self.group_name(ctx),
            Protocol="HTTP",
            ProtocolVersion="HTTP1",
            Port=WEB_PORT,
            VpcId=ctx.out("vpc").id,
            TargetType="ip",  # Fargate tasks in awsvpc mode register by IP
            IpAddressType="ipv4",
            Tags=ctx.tags(self.name),
            **HEALTH_CHECK,
        )["TargetGroups"][0]
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
            "Port": WEB_PORT,
            "TargetType": "ip",
            "VpcId": ctx.out("vpc").id,
        }
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
            _retag(ctx, self.name, res.id)

    def _users(self, ctx: Context, arn: str) -> str:
        try:
            tgs = _elbv2(ctx).describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
        except Exception:  # the blocker text is a hint; never fail the retry over it
            return ""
        return ", ".join(a.split("/", 1)[-1] for tg in tgs for a in tg.get("LoadBalancerArns", []))

    def delete(self, ctx: Context, res: Resource) -> None:
        # AWS refuses while a listener rule or an ECS service still uses the group.
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _elbv2(ctx).delete_target_group(TargetGroupArn=res.id)),
            codes=("ResourceInUse",),
            timeout=ctx.patience.dependency_release,
            why="waiting for listeners and services to release the target group",
            blocker=lambda: self._users(ctx, res.id),
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        health = _elbv2(ctx).describe_target_health(TargetGroupArn=res.id)
        targets = health.get("TargetHealthDescriptions", [])
        healthy = sum(1 for t in targets if t["TargetHealth"]["State"] == "healthy")
        per_target = ", ".join(
            f"{t['Target']['Id']}:{t['Target'].get('Port', WEB_PORT)} "
            f"{t['TargetHealth']['State']}"
            + (f" ({t['TargetHealth']['Reason']})" if t["TargetHealth"].get("Reason") else "")
            for t in targets
        )
        return {"healthy": f"{healthy}/{len(targets)}", "targets": per_target or "none"}


# -- load balancer -----------------------------------------------------------------------------


class LoadBalancer(Step):
    name = "alb"
    kind = "elbv2 load-balancer"
    typical_seconds = 180  # ALB provisioning: a few minutes

    def __init__(self, subnets: list[str]) -> None:
        self.subnets = subnets
        # route-table: an internet-facing ALB needs the route out; on teardown the gateway is
        # detached only after the ALB's addresses are gone.
        self.depends_on = (*subnets, "sg-alb", "route-table")

    def lb_name(self, ctx: Context) -> str:
        return f"{ctx.stack}-alb"

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

    def create(self, ctx: Context) -> Resource:
        elbv2 = _elbv2(ctx)
        lb = elbv2.create_load_balancer(
            Name=self.lb_name(ctx),
            Subnets=[ctx.out(s).id for s in self.subnets],
            SecurityGroups=[ctx.out("sg-alb").id],
            Scheme="internet-facing",
            Type="application",
            IpAddressType=self._ip_type(ctx),
            Tags=ctx.tags(self.name),
        )["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
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
            elbv2.set_ip_address_type(LoadBalancerArn=res.id, IpAddressType=self._ip_type(ctx))
        want = self._want_attributes(ctx)
        have = self._have_attributes(ctx, res)
        changed = [{"Key": k, "Value": v} for k, v in want.items() if have.get(k) != v]
        if changed:
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=res.id, Attributes=changed)
        if any(d.startswith("tag ") for d in drift):
            _retag(ctx, self.name, res.id)

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
    return (str(kind), repr(sorted(action.items())))


def _action_text(action: dict[str, Any]) -> str:
    key = _action_key(action)
    if key[0] == "forward":
        return "forward to " + ", ".join(a.split(":")[-1] for a in key[1]) if key[1] else "forward"
    if key[0] == "redirect":
        return f"redirect {key[6]} to {key[1].lower()}:{key[2]}"
    return str(key[0])


class Listener(Step):
    """One listener of the stack's ALB, found by its port; default action reconciled."""

    kind = "elbv2 listener"
    port = 0
    protocol = ""

    def _listeners(self, ctx: Context) -> list[dict[str, Any]]:
        alb = find_alb(ctx)
        if alb is None:
            return []
        arn = alb["LoadBalancerArn"]
        return ctx.aws.all("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=arn)

    def find(self, ctx: Context) -> Resource | None:
        items = self._listeners(ctx)
        ledger_id = ctx.ledger.id(self.name)
        found = next((i for i in items if i["ListenerArn"] == ledger_id), None)
        if found is None:
            found = next((i for i in items if i.get("Port") == self.port), None)
        return Resource(found["ListenerArn"], attrs={"listener": found}) if found else None

    def desired(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def create(self, ctx: Context) -> Resource:
        listener = _elbv2(ctx).create_listener(
            LoadBalancerArn=ctx.out("alb").id, Tags=ctx.tags(self.name), **self.desired(ctx)
        )["Listeners"][0]
        return Resource(listener["ListenerArn"], attrs={"listener": listener})

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
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        # One call restores every reconciled field: modify_listener takes the full set.
        listener = _elbv2(ctx).modify_listener(ListenerArn=res.id, **self.desired(ctx))
        res.attrs["listener"] = listener["Listeners"][0]

    def delete(self, ctx: Context, res: Resource) -> None:
        ignore_missing(lambda: _elbv2(ctx).delete_listener(ListenerArn=res.id))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        listener = res.attrs["listener"]
        return {"port": listener.get("Port"), "protocol": listener.get("Protocol")}


class HttpsListener(Listener):
    name = "listener-https"
    depends_on = ("alb", "certificate", "target-group")
    port = 443
    protocol = "HTTPS"

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {
            "Protocol": "HTTPS",
            "Port": 443,
            "SslPolicy": ctx.cfg.loadbalancer.tls_policy,
            "Certificates": [{"CertificateArn": ctx.out("certificate").id}],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": ctx.out("target-group").id}],
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
        return {**super().details(ctx, res), "policy": res.attrs["listener"].get("SslPolicy")}


class HttpListener(Listener):
    name = "listener-http"
    depends_on = ("alb",)
    port = 80
    protocol = "HTTP"

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"Protocol": "HTTP", "Port": 80, "DefaultActions": [HTTPS_REDIRECT]}


def steps(cfg: Config) -> list[Step]:
    subnets = [f"subnet-{i + 1}" for i in range(cfg.network.azs)]
    return [TargetGroup(), LoadBalancer(subnets), HttpsListener(), HttpListener()]

"""Network: VPC, one public subnet per AZ, internet gateway, route table, security groups.

Public subnets and public task IPs instead of NAT gateways: the bridges need public addresses
for UDP media anyway, and NAT in two AZs would add about half to the idle bill. Inbound is
closed by the security groups.

EC2 is eventually consistent: an id a create call has just returned can be unknown to the next
call for seconds (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
Every write that names an id of the stack outside a delete goes through `settle`, which retries
the not-found codes (NOT_YET) for a bounded time, as terraform-provider-aws does. In teardown a
not-found means the resource is gone (`ignore_missing`) and is never retried.

With `network.dual_stack`, every subnet also gets a /64 of the VPC's Amazon-provided IPv6 range,
waited for until `associated` (the load balancer's create needs it) and handed out to network
interfaces on creation (AssignIpv6AddressOnCreation, which a Fargate task's IPv6 address needs
together with the ECS account setting dualStackIPv6, see pcls/steps/account.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import botocore.exceptions

from pcls.aws import error_code, ignore_missing, is_not_found, stack_filter, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.errors import ConfigError
from pcls.steps import account

ANYWHERE = "0.0.0.0/0"
ANYWHERE6 = "::/0"
XMPP_PORT = 5222
WEB_PORT = 8000  # each shard's web, reached by the routers of every shard
ROUTER_PORT = 8080  # the router in each shard task: the load balancer's target
MEDIA_PORT = 10000
JICOFO_REST_PORT = 8888  # the same port pcls.jitsi opens jicofo's REST API on
# What EC2 answers, for a few seconds after the create call, about an id that exists.
NOT_YET = (
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidGatewayID.NotFound",  # CreateRoute names the internet gateway as GatewayId
    "InvalidRouteTableID.NotFound",
)
# terraform-provider-aws waits as long (ec2PropagationTimeout, internal/service/ec2/consts.go).
PROPAGATION = 300.0


def propagation(ctx: Context) -> float:
    """How long an id seconds old may stay unknown: Patience.propagation when the engine has
    that field, else PROPAGATION capped by Patience.resource_gone (which tests shrink)."""
    bound = getattr(ctx.patience, "propagation", None)
    return float(bound) if bound is not None else min(PROPAGATION, ctx.patience.resource_gone)


def settle(ctx: Context, step: str, what: str, fn: Callable[[], Any]) -> Any:
    """One write naming ids seconds old, retried while EC2 does not know them yet.

    Only for create and repair paths: on a delete path not-found means gone (ignore_missing).
    """
    return ctx.retry_while(
        step, fn, codes=NOT_YET, timeout=propagation(ctx), why=f"waiting for EC2 to know {what}"
    )


def _authorize(call: Callable[..., Any], group: str, perms: list[dict[str, Any]]) -> None:
    """Add rules, of which some may be there already: EC2 refuses the whole call with
    InvalidPermission.Duplicate when one is (a describe that lagged the write, or a rule EC2
    added itself, such as ::/0 egress in a VPC with IPv6), so then one at a time."""
    try:
        call(GroupId=group, IpPermissions=perms)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
        for perm in perms:
            try:
                call(GroupId=group, IpPermissions=[perm])
            except botocore.exceptions.ClientError as one:
                if error_code(one) != "InvalidPermission.Duplicate":
                    raise


def _tag_specs(ctx: Context, step: str, kind: str, name: str) -> list[dict[str, Any]]:
    tags = [*ctx.tags(step), {"Key": "Name", "Value": name}]
    return [{"ResourceType": kind, "Tags": tags}]


def _ec2(ctx: Context) -> Any:
    return ctx.aws.client("ec2")


def _listing(ctx: Context, operation: str, key: str) -> list[dict[str, Any]]:
    """Every resource of one EC2 type that carries this stack's tag: one call per type."""
    return ctx.aws.all("ec2", operation, key, Filters=stack_filter(ctx.stack))


def _retag(ctx: Context, step: str, res: Resource) -> None:
    settle(
        ctx,
        step,
        res.id,
        lambda: _ec2(ctx).create_tags(Resources=[res.id], Tags=ctx.tags(step)),
    )


def _pick(
    ctx: Context, step: str, operation: str, key: str, id_key: str, ids: str, what: str
) -> dict[str, Any] | None:
    """The step's own resource among those carrying the stack's tag, by both tags.

    The ledger's id (and the id `pcls adopt` names) is described too when the stack's listing
    does not hold it, so that one naming another stack's or an untagged resource is seen,
    and refused as a collision, instead of silently replaced. A stale id is just gone.
    """
    items = list(_listing(ctx, operation, key))
    listed = {i[id_key] for i in items}
    for rid in (ctx.ledger.id(step), ctx.adopting.get(step)):
        if not isinstance(rid, str) or rid in listed:
            continue
        try:
            items += ctx.aws.all("ec2", operation, key, **{ids: [rid]})
        except botocore.exceptions.ClientError as exc:
            if not is_not_found(exc):
                raise
        listed.add(rid)
    return ctx.pick(step, items, id_key, what=what)


# Every EC2 type the network layer tags: listed whole after a teardown to prove none remains.
STACK_TYPES = (
    ("describe_vpcs", "Vpcs", "VpcId", "vpc"),
    ("describe_subnets", "Subnets", "SubnetId", "subnet"),
    ("describe_internet_gateways", "InternetGateways", "InternetGatewayId", "internet-gateway"),
    ("describe_route_tables", "RouteTables", "RouteTableId", "route-table"),
    ("describe_security_groups", "SecurityGroups", "GroupId", "security-group"),
)


def ipv6_state(assoc: dict[str, Any]) -> str:
    """An IPv6 association's state (the emulator nests it in a string: taken apart here)."""
    state = str(assoc.get("Ipv6CidrBlockState", {}).get("State", ""))
    for known in ("disassociating", "disassociated", "associating", "associated", "failing"):
        if known in state:
            return known
    return state


def ipv6_block(item: dict[str, Any]) -> str:
    """The associated IPv6 range of a VPC or subnet description, or ''."""
    for assoc in item.get("Ipv6CidrBlockAssociationSet", []):
        if ipv6_state(assoc) == "associated":
            return str(assoc["Ipv6CidrBlock"])
    return ""


def ipv6_pending(item: dict[str, Any]) -> str:
    """The IPv6 range of a VPC or subnet still `associating`, or ''."""
    for assoc in item.get("Ipv6CidrBlockAssociationSet", []):
        if ipv6_state(assoc) == "associating":
            return str(assoc["Ipv6CidrBlock"])
    return ""


def _zones(ctx: Context) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """(the region's available AZs that run Fargate, [(AZ left out, why)])."""
    zones = ctx.aws.all(
        "ec2",
        "describe_availability_zones",
        "AvailabilityZones",
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ],
    )
    return account.fargate_zones(ctx.aws.region, zones)


def availability_zones(ctx: Context) -> list[str]:
    """The AZ names subnets go to, in order: every available AZ that runs Fargate, by name."""
    return [str(z["ZoneName"]) for z in _zones(ctx)[0]]


class Vpc(Step):
    name = "vpc"
    kind = "ec2 vpc"
    id_pattern = r"vpc-[0-9a-f]+"

    def preflight(self, ctx: Context) -> None:
        account.preflight(ctx)  # first: in a region not enabled, every regional call fails
        usable, left_out = _zones(ctx)
        zones = [str(z["ZoneName"]) for z in usable]
        want = ctx.cfg.network.azs
        if len(zones) < want:
            skipped = "".join(
                f"; {z['ZoneName']} ({z.get('ZoneId')}) is left out: {why}" for z, why in left_out
            )
            source = f" (see {account.FARGATE_REGIONS_PAGE})" if left_out else ""
            raise ConfigError(
                f"network.azs: {want} asked, but {ctx.aws.region} offers {len(zones)} "
                f"({', '.join(zones)}) where Fargate runs{skipped}{source}; "
                f"set network.azs to at most {len(zones)}"
            )

    def find(self, ctx: Context) -> Resource | None:
        vpc = _pick(ctx, self.name, "describe_vpcs", "Vpcs", "VpcId", "VpcIds", "VPC")
        if vpc is None:
            return None
        return Resource(vpc["VpcId"], attrs={"vpc": vpc}, state=vpc.get("State", ""))

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        vpc = _ec2(ctx).create_vpc(
            CidrBlock=ctx.cfg.network.cidr,
            TagSpecifications=_tag_specs(ctx, self.name, "vpc", f"{ctx.stack}-vpc"),
        )["Vpc"]
        return Resource(vpc["VpcId"], attrs={"vpc": vpc, "fresh": True})

    def strays(self, ctx: Context) -> dict[str, str]:
        out = {}
        for op, key, id_key, kind in STACK_TYPES:
            for item in _listing(ctx, op, key):
                step = tags_of(item.get("Tags")).get("pcls:step", "?")
                out[item[id_key]] = f"{step} (ec2 {kind} {item[id_key]})"
        return out

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        vpc = res.attrs["vpc"]
        out = []
        if vpc.get("CidrBlock") != ctx.cfg.network.cidr:
            # A VPC's primary range cannot change; say so rather than pretend to repair it.
            out.append(f"cidr {vpc.get('CidrBlock')} (config {ctx.cfg.network.cidr}; immutable)")
        for attr in ("enableDnsSupport", "enableDnsHostnames"):
            if res.attrs.get("fresh") and attr == "enableDnsSupport":
                continue  # on by default for a new VPC
            if res.attrs.get("fresh"):
                value = False
            else:
                value = _ec2(ctx).describe_vpc_attribute(VpcId=res.id, Attribute=attr)
                value = value[attr[0].upper() + attr[1:]]["Value"]
            if not value:
                out.append(f"{attr} off")
        if ctx.cfg.network.dual_stack and not ipv6_block(vpc):
            if ipv6_pending(vpc):
                out.append(f"IPv6 range {ipv6_pending(vpc)} still associating")
            else:
                out.append("no IPv6 range (network.dual_stack)")
        out += tag_drift(ctx.tag_dict(self.name), tags_of(vpc.get("Tags")))
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ec2 = _ec2(ctx)
        if "no IPv6 range (network.dual_stack)" in drift:
            settle(
                ctx,
                self.name,
                f"the new VPC {res.id}",
                lambda: ec2.associate_vpc_cidr_block(
                    VpcId=res.id, AmazonProvidedIpv6CidrBlock=True
                ),
            )
        if any("IPv6 range" in d for d in drift):

            def associated() -> tuple[bool, str]:
                vpc = ec2.describe_vpcs(VpcIds=[res.id])["Vpcs"][0]
                res.attrs["vpc"] = vpc
                return bool(ipv6_block(vpc)), "IPv6 range associating"

            ctx.wait_for(self.name, "the IPv6 range", associated, ctx.patience.resource_gone)
        for attr in ("enableDnsSupport", "enableDnsHostnames"):
            if f"{attr} off" in drift:
                key = attr[0].upper() + attr[1:]
                settle(
                    ctx,
                    self.name,
                    f"the new VPC {res.id}",
                    lambda key=key: ec2.modify_vpc_attribute(
                        VpcId=res.id, **{key: {"Value": True}}
                    ),
                )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _ec2(ctx).delete_vpc(VpcId=res.id)),
            codes=("DependencyViolation",),
            timeout=ctx.patience.dependency_release,
            why="waiting for the VPC's dependents to go",
            blocker=lambda: _vpc_dependents(ctx, res.id),
        )


class Subnet(Step):
    kind = "ec2 subnet"
    depends_on = ("vpc",)
    id_pattern = r"subnet-[0-9a-f]+"

    def __init__(self, index: int) -> None:
        self.index = index
        self.name = f"subnet-{index + 1}"

    def _desired(self, ctx: Context) -> tuple[str, str]:
        net = ipaddress.IPv4Network(ctx.cfg.network.cidr)
        cidr = str(list(net.subnets(prefixlen_diff=4))[self.index])
        return cidr, availability_zones(ctx)[self.index]

    def find(self, ctx: Context) -> Resource | None:
        sub = _pick(
            ctx, self.name, "describe_subnets", "Subnets", "SubnetId", "SubnetIds", "subnet"
        )
        if sub is None:
            return None
        return Resource(
            sub["SubnetId"],
            attrs={"subnet": sub, "az": sub["AvailabilityZone"]},
            state=sub.get("State", ""),
        )

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        cidr, az = self._desired(ctx)
        vpc_id = ctx.out("vpc").id
        sub = settle(
            ctx,
            self.name,
            f"the new VPC {vpc_id}",
            lambda: _ec2(ctx).create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=az,
                TagSpecifications=_tag_specs(ctx, self.name, "subnet", f"{ctx.stack}-public-{az}"),
            ),
        )["Subnet"]
        return Resource(sub["SubnetId"], attrs={"subnet": sub, "az": az})

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        sub = res.attrs["subnet"]
        out = []
        if sub.get("VpcId") != ctx.out("vpc").id:
            out.append(f"in {sub.get('VpcId')}, not the stack's VPC (delete it to recreate)")
        no_fargate = account.fargate_refusal(ctx.aws.region, str(sub.get("AvailabilityZoneId", "")))
        if no_fargate:
            out.append(
                f"in {sub.get('AvailabilityZone')} ({sub.get('AvailabilityZoneId')}): "
                f"{no_fargate} (tear down and up again to move it)"
            )
        if not sub.get("MapPublicIpOnLaunch"):
            out.append("MapPublicIpOnLaunch off")
        if ctx.cfg.network.dual_stack:
            if ipv6_pending(sub):
                out.append(f"IPv6 range {ipv6_pending(sub)} still associating")
            elif not ipv6_block(sub):
                out.append("no IPv6 range (network.dual_stack)")
            if not sub.get("AssignIpv6AddressOnCreation"):
                out.append("AssignIpv6AddressOnCreation off (network.dual_stack)")
        out += tag_drift(ctx.tag_dict(self.name), tags_of(sub.get("Tags")))
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ec2 = _ec2(ctx)
        what = f"the new subnet {res.id}"
        if "MapPublicIpOnLaunch off" in drift:
            settle(
                ctx,
                self.name,
                what,
                lambda: ec2.modify_subnet_attribute(
                    SubnetId=res.id, MapPublicIpOnLaunch={"Value": True}
                ),
            )
        if "no IPv6 range (network.dual_stack)" in drift:
            block = ipv6_block(ctx.out("vpc").attrs["vpc"])
            net = list(ipaddress.IPv6Network(block).subnets(new_prefix=64))[self.index]
            settle(
                ctx,
                self.name,
                what,
                lambda: ec2.associate_subnet_cidr_block(SubnetId=res.id, Ipv6CidrBlock=str(net)),
            )
        if any("IPv6 range" in d for d in drift):
            wait_ipv6(ctx, self.name, [res.id])
        if "AssignIpv6AddressOnCreation off (network.dual_stack)" in drift:
            settle(
                ctx,
                self.name,
                what,
                lambda: ec2.modify_subnet_attribute(
                    SubnetId=res.id, AssignIpv6AddressOnCreation={"Value": True}
                ),
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _ec2(ctx).delete_subnet(SubnetId=res.id)),
            codes=("DependencyViolation",),
            timeout=ctx.patience.dependency_release,
            why="waiting for network interfaces in the subnet to be released",
            blocker=lambda: _enis(ctx, [{"Name": "subnet-id", "Values": [res.id]}]),
        )


def wait_ipv6(ctx: Context, step: str, subnet_ids: list[str]) -> None:
    """Until every subnet's IPv6 range is `associated` (AssociateSubnetCidrBlock answers
    `associating`; a dual-stack load balancer, and an IPv6 address for a task, need it)."""
    ec2 = _ec2(ctx)

    def associated() -> tuple[bool, str]:
        subnets = settle(
            ctx,
            step,
            "the new subnets",
            lambda: ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"],
        )
        pending = [
            f"{s['SubnetId']} {ipv6_pending(s) or 'none'}" for s in subnets if not ipv6_block(s)
        ]
        return not pending, "associating: " + ", ".join(pending)

    ctx.wait_for(
        step,
        "the subnets' IPv6 ranges to be associated",
        associated,
        timeout=ctx.patience.resource_gone,
        hint="run up again to resume",
    )


class InternetGateway(Step):
    name = "internet-gateway"
    kind = "ec2 internet-gateway"
    depends_on = ("vpc",)
    id_pattern = r"igw-[0-9a-f]+"

    def find(self, ctx: Context) -> Resource | None:
        igw = _pick(
            ctx,
            self.name,
            "describe_internet_gateways",
            "InternetGateways",
            "InternetGatewayId",
            "InternetGatewayIds",
            "internet gateway",
        )
        if igw is None:
            return None
        return Resource(igw["InternetGatewayId"], attrs={"igw": igw})

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        igw = _ec2(ctx).create_internet_gateway(
            TagSpecifications=_tag_specs(ctx, self.name, "internet-gateway", f"{ctx.stack}-igw")
        )["InternetGateway"]
        return Resource(igw["InternetGatewayId"], attrs={"igw": igw})

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        igw = res.attrs["igw"]
        vpc_id = ctx.out("vpc").id
        attached = [a["VpcId"] for a in igw.get("Attachments", [])]
        out = [] if vpc_id in attached else [f"not attached to {vpc_id}"]
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(igw.get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ec2 = _ec2(ctx)
        vpc_id = ctx.out("vpc").id
        if f"not attached to {vpc_id}" in drift:
            for a in res.attrs["igw"].get("Attachments", []):
                ec2.detach_internet_gateway(InternetGatewayId=res.id, VpcId=a["VpcId"])
            settle(
                ctx,
                self.name,
                f"the new internet gateway {res.id} and VPC {vpc_id}",
                lambda: ec2.attach_internet_gateway(InternetGatewayId=res.id, VpcId=vpc_id),
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        ec2 = _ec2(ctx)
        for a in res.attrs["igw"].get("Attachments", []):
            # Mapped public addresses of lingering ENIs block the detach for minutes.
            ctx.retry_while(
                self.name,
                lambda a=a: ignore_missing(
                    lambda: ec2.detach_internet_gateway(InternetGatewayId=res.id, VpcId=a["VpcId"]),
                    also=("Gateway.NotAttached",),
                ),
                codes=("DependencyViolation",),
                timeout=ctx.patience.dependency_release,
                why="waiting for public addresses in the VPC to be released",
                blocker=lambda a=a: _enis(ctx, [{"Name": "vpc-id", "Values": [a["VpcId"]]}]),
            )
        ignore_missing(lambda: ec2.delete_internet_gateway(InternetGatewayId=res.id))


class RouteTable(Step):
    name = "route-table"
    kind = "ec2 route-table"
    id_pattern = r"rtb-[0-9a-f]+"

    def __init__(self, subnets: list[str]) -> None:
        self.subnets = subnets
        self.depends_on = ("vpc", "internet-gateway", *subnets)

    def find(self, ctx: Context) -> Resource | None:
        rt = _pick(
            ctx,
            self.name,
            "describe_route_tables",
            "RouteTables",
            "RouteTableId",
            "RouteTableIds",
            "route table",
        )
        if rt is None:
            return None
        return Resource(rt["RouteTableId"], attrs={"rt": rt})

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        vpc_id = ctx.out("vpc").id
        rt = settle(
            ctx,
            self.name,
            f"the new VPC {vpc_id}",
            lambda: _ec2(ctx).create_route_table(
                VpcId=vpc_id,
                TagSpecifications=_tag_specs(ctx, self.name, "route-table", f"{ctx.stack}-public"),
            ),
        )["RouteTable"]
        return Resource(rt["RouteTableId"], attrs={"rt": rt})

    def _state(self, ctx: Context, res: Resource) -> tuple[str | None, list[str], dict[str, str]]:
        rt = res.attrs["rt"]
        default = next(
            (r for r in rt.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE), None
        )
        target = default.get("GatewayId") if default else None
        associated = [a.get("SubnetId") for a in rt.get("Associations", []) if a.get("SubnetId")]
        # A subnet explicitly associated elsewhere must be moved, not associated twice.
        elsewhere: dict[str, str] = {}
        subnet_ids = [ctx.out(s).id for s in self.subnets]
        missing = [s for s in subnet_ids if s not in associated]
        if missing:
            others = ctx.aws.all(
                "ec2",
                "describe_route_tables",
                "RouteTables",
                Filters=[{"Name": "association.subnet-id", "Values": missing}],
            )
            for other in others:
                for a in other.get("Associations", []):
                    if a.get("SubnetId") in missing:
                        elsewhere[a["SubnetId"]] = a["RouteTableAssociationId"]
        return target, missing, elsewhere

    def _ipv6_target(self, res: Resource) -> str | None:
        routes = res.attrs["rt"].get("Routes", [])
        route = next((r for r in routes if r.get("DestinationIpv6CidrBlock") == ANYWHERE6), None)
        return route.get("GatewayId") if route else None

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        igw = ctx.out("internet-gateway").id
        target, missing, _ = self._state(ctx, res)
        out = []
        if target != igw:
            out.append(f"default route to {target or 'nothing'}, not {igw}")
        if ctx.cfg.network.dual_stack and self._ipv6_target(res) != igw:
            out.append(f"IPv6 default route to {self._ipv6_target(res) or 'nothing'}, not {igw}")
        out += [f"subnet {s} not associated" for s in missing]
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(res.attrs["rt"].get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ec2 = _ec2(ctx)
        igw = ctx.out("internet-gateway").id
        target, missing, elsewhere = self._state(ctx, res)
        routes = f"the new route table {res.id} and internet gateway {igw}"

        def route(call: Callable[..., Any], **dest: str) -> None:
            settle(ctx, self.name, routes, lambda: call(RouteTableId=res.id, GatewayId=igw, **dest))

        if target is None:
            route(ec2.create_route, DestinationCidrBlock=ANYWHERE)
        elif target != igw:
            route(ec2.replace_route, DestinationCidrBlock=ANYWHERE)
        if ctx.cfg.network.dual_stack:
            v6 = self._ipv6_target(res)
            if v6 is None:
                route(ec2.create_route, DestinationIpv6CidrBlock=ANYWHERE6)
            elif v6 != igw:
                route(ec2.replace_route, DestinationIpv6CidrBlock=ANYWHERE6)
        for subnet in missing:
            if subnet in elsewhere:
                settle(
                    ctx,
                    self.name,
                    f"the new route table {res.id}",
                    lambda subnet=subnet: ec2.replace_route_table_association(
                        AssociationId=elsewhere[subnet], RouteTableId=res.id
                    ),
                )
            else:
                settle(
                    ctx,
                    self.name,
                    f"the new route table {res.id} and subnet {subnet}",
                    lambda subnet=subnet: ec2.associate_route_table(
                        RouteTableId=res.id, SubnetId=subnet
                    ),
                )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def delete(self, ctx: Context, res: Resource) -> None:
        ec2 = _ec2(ctx)
        for a in res.attrs["rt"].get("Associations", []):
            if not a.get("Main"):
                ignore_missing(
                    lambda a=a: ec2.disassociate_route_table(
                        AssociationId=a["RouteTableAssociationId"]
                    )
                )
        ignore_missing(lambda: ec2.delete_route_table(RouteTableId=res.id))


# protocol, from, to, and the source: "cidr:<v4>", "cidr6:<v6>", "sg:<step>" (a group of the
# stack the step depends on); what AWS may also show: "group:<id>" (any other group, of this
# stack or not), "prefix-list:<id>".
Rule = tuple[str, int, int, str]
# A group's egress is open (images, STUN, CloudWatch): the allow-all rule of each family. AWS
# gives a new group both when its VPC has an IPv6 range, and keeps them when the range goes.
_ALL_OUT: Rule = ("-1", -1, -1, f"cidr:{ANYWHERE}")
_ALL_OUT6: Rule = ("-1", -1, -1, f"cidr6:{ANYWHERE6}")


def _rule_text(rule: Rule) -> str:
    proto, lo, hi, src = rule
    ports = "all" if proto == "-1" else (f"{lo}" if lo == hi else f"{lo}-{hi}")
    return f"{'all' if proto == '-1' else proto}/{ports} {src}"


def _flatten(perms: list[dict[str, Any]], sg_names: dict[str, str]) -> dict[Rule, dict[str, Any]]:
    """Every (rule -> the permission that is exactly that rule, as AWS described it).

    The permission is what revoking the rule takes: a rule pcls never writes (another group's,
    a prefix list, a range of the other family) is removed with AWS's own words for it.
    """
    out: dict[Rule, dict[str, Any]] = {}
    for p in perms:
        proto = str(p.get("IpProtocol"))
        lo, hi = int(p.get("FromPort", -1)), int(p.get("ToPort", -1))
        if proto == "-1":
            lo = hi = -1
        base: dict[str, Any] = {"IpProtocol": proto}
        if proto != "-1":
            base.update(FromPort=lo, ToPort=hi)

        def one(key: str, item: dict[str, Any], base: dict[str, Any] = base) -> dict[str, Any]:
            return {**base, key: [dict(item)]}  # with its description: AWS ignores it

        for r in p.get("IpRanges", []):
            out[(proto, lo, hi, f"cidr:{r['CidrIp']}")] = one("IpRanges", r)
        for r in p.get("Ipv6Ranges", []):
            out[(proto, lo, hi, f"cidr6:{r['CidrIpv6']}")] = one("Ipv6Ranges", r)
        for r in p.get("PrefixListIds", []):
            out[(proto, lo, hi, f"prefix-list:{r['PrefixListId']}")] = one("PrefixListIds", r)
        for r in p.get("UserIdGroupPairs", []):
            gid = r["GroupId"]
            src = f"sg:{sg_names[gid]}" if gid in sg_names else f"group:{gid}"
            out[(proto, lo, hi, src)] = one("UserIdGroupPairs", r)
    return out


def _permission(rule: Rule, ctx: Context, description: str) -> dict[str, Any]:
    proto, lo, hi, src = rule
    perm: dict[str, Any] = {"IpProtocol": proto}
    if proto != "-1":
        perm.update(FromPort=lo, ToPort=hi)
    kind, value = src.split(":", 1)
    if kind == "cidr":
        perm["IpRanges"] = [{"CidrIp": value, "Description": description}]
    elif kind == "cidr6":
        perm["Ipv6Ranges"] = [{"CidrIpv6": value, "Description": description}]
    elif kind == "sg":
        perm["UserIdGroupPairs"] = [{"GroupId": ctx.out(value).id, "Description": description}]
    else:
        raise ValueError(f"pcls never writes a rule from {src}")
    return perm


class SecurityGroup(Step):
    """A group whose rules are reconciled: missing rules added, extra rules revoked."""

    kind = "ec2 security-group"
    id_pattern = r"sg-[0-9a-f]+"

    def __init__(self, role: str, ingress: list[tuple[Rule, str]], refs: tuple[str, ...]) -> None:
        self.role = role
        self.name = f"sg-{role}"
        self.ingress = ingress
        self.depends_on = ("vpc", *refs)

    def group_name(self, ctx: Context) -> str:
        return f"{ctx.stack}-{self.role}"

    def find(self, ctx: Context) -> Resource | None:
        sg = _pick(
            ctx,
            self.name,
            "describe_security_groups",
            "SecurityGroups",
            "GroupId",
            "GroupIds",
            "security group",
        )
        if sg is None:
            self._name_taken(ctx)
            return None
        return Resource(sg["GroupId"], attrs={"sg": sg})

    def _name_taken(self, ctx: Context) -> None:
        """A group of the name pcls would create in the stack's VPC, not this step's: in the
        way (names are unique per VPC). Asked only when the step has no group of its own."""
        vpcs = [
            v["VpcId"]
            for v in _listing(ctx, "describe_vpcs", "Vpcs")
            if ctx.owns("vpc", v.get("Tags"))
        ]
        if len(vpcs) != 1:
            return  # no VPC yet (nothing can be in the way), or the vpc step reports duplicates
        name = self.group_name(ctx)
        groups = ctx.aws.all(
            "ec2",
            "describe_security_groups",
            "SecurityGroups",
            Filters=[
                {"Name": "vpc-id", "Values": vpcs},
                # One listing serves every group step: the stack's names share the prefix.
                {"Name": "group-name", "Values": [f"{ctx.stack}-*"]},
            ],
        )
        for g in groups:
            if g.get("GroupName") == name and not ctx.claims(
                self.name, g["GroupId"], g.get("Tags")
            ):
                what = f"security group {name} in {vpcs[0]}"
                ctx.collision(self.name, g["GroupId"], what, g.get("Tags"))

    def tag(self, ctx: Context, res: Resource) -> None:
        _retag(ctx, self.name, res)

    def create(self, ctx: Context) -> Resource:
        name = self.group_name(ctx)
        vpc_id = ctx.out("vpc").id
        sg_id = settle(
            ctx,
            self.name,
            f"the new VPC {vpc_id}",
            lambda: _ec2(ctx).create_security_group(
                GroupName=name,
                Description=f"pcls {ctx.stack} {self.role}",
                VpcId=vpc_id,
                TagSpecifications=_tag_specs(ctx, self.name, "security-group", name),
            ),
        )["GroupId"]
        # A new group has only the default allow-all egress rules: IPv6's too once the VPC
        # has an IPv6 range.
        egress: dict[str, Any] = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}
        if ipv6_block(ctx.out("vpc").attrs["vpc"]):
            egress["Ipv6Ranges"] = [{"CidrIpv6": ANYWHERE6}]
        sg = {
            "GroupId": sg_id,
            "IpPermissions": [],
            "IpPermissionsEgress": [egress],
            "Tags": ctx.tags(self.name),
        }
        return Resource(sg_id, attrs={"sg": sg})

    def _sg_names(self, ctx: Context) -> dict[str, str]:
        # The group itself too: a rule may admit the group's own members (the shard tasks).
        names = (*self.depends_on, self.name)
        return {ctx.outputs[d].id: d for d in names if d in ctx.outputs}

    def _rules(
        self, ctx: Context, res: Resource
    ) -> tuple[set[Rule], dict[Rule, dict[str, Any]], set[Rule], dict[Rule, dict[str, Any]]]:
        """(ingress rules missing, {extra ingress rule: its permission}, allow-all egress
        rules missing, {any other egress rule: its permission})."""
        names = self._sg_names(ctx)
        want = {rule for rule, _ in self.ingress}
        have = _flatten(res.attrs["sg"].get("IpPermissions", []), names)
        egress = _flatten(res.attrs["sg"].get("IpPermissionsEgress", []), names)
        extra = {rule: perm for rule, perm in have.items() if rule not in want}
        want_out = {_ALL_OUT, _ALL_OUT6} if ctx.cfg.network.dual_stack else {_ALL_OUT}
        # Any narrower egress rule was added out of band: revoked like an extra ingress rule.
        extra_out = {r: perm for r, perm in egress.items() if r not in (_ALL_OUT, _ALL_OUT6)}
        return want - set(have), extra, want_out - set(egress), extra_out

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        missing, extra, missing_out, extra_out = self._rules(ctx, res)
        out = [f"ingress {_rule_text(r)} missing" for r in sorted(missing)]
        out += [f"ingress {_rule_text(r)} not in config" for r in sorted(extra)]
        if _ALL_OUT in missing_out:
            out.append("egress to anywhere missing")
        if _ALL_OUT6 in missing_out:
            out.append("egress to anywhere (IPv6) missing")
        out += [f"egress {_rule_text(r)} not in config" for r in sorted(extra_out)]
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(res.attrs["sg"].get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        ec2 = _ec2(ctx)
        missing, extra, missing_out, extra_out = self._rules(ctx, res)
        described = dict(self.ingress)
        # The group, and the groups its rules name, may be seconds old.
        what = f"the new security group {res.id}" + (
            f" and the groups its rules name ({', '.join(self.depends_on[1:])})"
            if len(self.depends_on) > 1
            else ""
        )
        if missing:
            perms = [_permission(r, ctx, described[r]) for r in sorted(missing)]
            settle(
                ctx,
                self.name,
                what,
                lambda: _authorize(ec2.authorize_security_group_ingress, res.id, perms),
            )
        if extra:
            gone = [extra[r] for r in sorted(extra)]
            settle(
                ctx,
                self.name,
                what,
                lambda: ec2.revoke_security_group_ingress(GroupId=res.id, IpPermissions=gone),
            )
        if missing_out:
            opened = [_permission(r, ctx, "all outbound") for r in sorted(missing_out)]
            settle(
                ctx,
                self.name,
                what,
                lambda: _authorize(ec2.authorize_security_group_egress, res.id, opened),
            )
        if extra_out:
            closed = [extra_out[r] for r in sorted(extra_out)]
            settle(
                ctx,
                self.name,
                what,
                lambda: ec2.revoke_security_group_egress(GroupId=res.id, IpPermissions=closed),
            )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"rules": len(res.attrs["sg"].get("IpPermissions", []))}

    def delete(self, ctx: Context, res: Resource) -> None:
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: _ec2(ctx).delete_security_group(GroupId=res.id)),
            codes=("DependencyViolation",),
            timeout=ctx.patience.dependency_release,
            why="waiting for network interfaces using the group to be released",
            blocker=lambda: _enis(ctx, [{"Name": "group-id", "Values": [res.id]}]),
        )


def _enis(ctx: Context, filters: list[dict[str, Any]]) -> str:
    """Which network interfaces still hold a resource (for the progress line)."""
    try:
        enis = _ec2(ctx).describe_network_interfaces(Filters=filters)["NetworkInterfaces"]
    except Exception:  # the blocker text is a hint; never fail the retry over it
        return ""
    return ", ".join(
        f"{e['NetworkInterfaceId']} ({e.get('Description') or e.get('InterfaceType', '')})"
        for e in enis[:5]
    )


def _vpc_dependents(ctx: Context, vpc_id: str) -> str:
    """What still holds a VPC: network interfaces, and subnets or groups no step deleted."""
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    held = [_enis(ctx, in_vpc)]
    try:
        ec2 = _ec2(ctx)
        held += [s["SubnetId"] for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]]
        groups = ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]
        held += [g["GroupId"] for g in groups if g["GroupName"] != "default"]
    except Exception:  # the blocker text is a hint; never fail the retry over it
        pass
    return ", ".join(h for h in held if h)


def steps(cfg: Config) -> list[Step]:
    subnets = [Subnet(i) for i in range(cfg.network.azs)]
    alb_in: list[tuple[Rule, str]] = [
        (("tcp", 443, 443, f"cidr:{ANYWHERE}"), "HTTPS from anywhere"),
        (("tcp", 80, 80, f"cidr:{ANYWHERE}"), "HTTP redirect from anywhere"),
    ]
    jvb_in: list[tuple[Rule, str]] = [
        (("udp", MEDIA_PORT, MEDIA_PORT, f"cidr:{ANYWHERE}"), "media from anywhere"),
    ]
    if cfg.network.dual_stack:
        alb_in += [
            (("tcp", 443, 443, f"cidr6:{ANYWHERE6}"), "HTTPS from anywhere (IPv6)"),
            (("tcp", 80, 80, f"cidr6:{ANYWHERE6}"), "HTTP redirect from anywhere (IPv6)"),
        ]
        # A bridge with an IPv6 address offers it as an ICE candidate: it must be reachable.
        jvb_in += [
            (("udp", MEDIA_PORT, MEDIA_PORT, f"cidr6:{ANYWHERE6}"), "media from anywhere (IPv6)"),
        ]
    # The shard tasks share sg-signal: a router reaches the web of every shard through it.
    signal_in: list[tuple[Rule, str]] = [
        (("tcp", ROUTER_PORT, ROUTER_PORT, "sg:sg-alb"), "routers from the load balancer"),
        (("tcp", WEB_PORT, WEB_PORT, "sg:sg-signal"), "web from the routers of every shard"),
        (("tcp", XMPP_PORT, XMPP_PORT, "sg:sg-jvb"), "XMPP from the bridges"),
        # A draining bridge asks jicofo to move its participants; nothing else reaches it.
        (("tcp", JICOFO_REST_PORT, JICOFO_REST_PORT, "sg:sg-jvb"), "jicofo REST from the bridges"),
    ]
    return [
        Vpc(),
        *subnets,
        InternetGateway(),
        RouteTable([s.name for s in subnets]),
        SecurityGroup("alb", alb_in, ()),
        SecurityGroup("jvb", jvb_in, ()),
        SecurityGroup("signal", signal_in, ("sg-alb", "sg-jvb")),
    ]

"""DNS: the public hosted zone that holds the domain, and the alias record(s) to the ALB.

A zone is the stack's when it carries the stack's zone-step tags, or, untagged, when its
CallerReference says this stack created it (a run stopped between CreateHostedZone and the
tagging call); the ledger's id alone never makes it so. A zone pcls did not create is used and
never deleted.

Route 53 records cannot be tagged, so pcls owns the alias record only when it aliases to this
stack's own load balancer, or, pointing at no live load balancer, when the ledger says pcls
wrote it or its target has the DNS name this stack's load balancer would have. A record that
points at another live load balancer is never this stack's. Records pcls did not create are
never written: a name already taken by someone else's record is refused in preflight, before
anything is built.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import botocore.exceptions

from pcls.aws import (
    STACK_TAG,
    describe_error,
    error_code,
    error_message,
    ignore_missing,
    tag_drift,
)
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.errors import ConfigError, PclsError, StepError

ZONE_STEP = "zone"
RETAINED_ZONE = "zone not created by pcls"
RETAINED_RECORD = "record not created by pcls"
TAGS_PER_CALL = 10  # ListTagsForResources takes at most 10 zone ids

_locks_guard = threading.Lock()
_zone_locks: dict[str, threading.Lock] = {}


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def bare(name: str) -> str:
    return name.rstrip(".").lower()


def zone_id_of(zone: dict[str, Any]) -> str:
    return str(zone["Id"]).split("/")[-1]


def holds(zone_name: str, domain: str) -> bool:
    return domain == zone_name or domain.endswith("." + zone_name)


# -- zones -------------------------------------------------------------------------------------


def public_zones(ctx: Context) -> list[dict[str, Any]]:
    """Every public zone of the account (private zones never answer public queries)."""
    zones = ctx.aws.all("route53", "list_hosted_zones", "HostedZones")
    return [z for z in zones if not z.get("Config", {}).get("PrivateZone")]


def zone_tags(ctx: Context, zone_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    ids = sorted(set(zone_ids))
    for i in range(0, len(ids), TAGS_PER_CALL):
        resp = ctx.aws.cached(
            "route53",
            "list_tags_for_resources",
            ResourceType="hostedzone",
            ResourceIds=ids[i : i + TAGS_PER_CALL],
        )
        for tag_set in resp.get("ResourceTagSets", []):
            out[tag_set["ResourceId"]] = {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}
    return out


def wanted_zone_name(cfg: Config) -> str:
    """The exact zone name config asks for; empty means the longest zone holding the domain."""
    if cfg.dns.zone:
        return cfg.dns.zone
    return cfg.stack.domain if cfg.dns.create_zone else ""


def _candidates(ctx: Context) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Public zones that hold the domain, and their tags (one tag call for all of them)."""
    domain = ctx.cfg.stack.domain
    candidates = [z for z in public_zones(ctx) if holds(bare(z["Name"]), domain)]
    return candidates, zone_tags(ctx, [zone_id_of(z) for z in candidates]) if candidates else {}


def caller_reference(stack: str) -> str:
    """CreateHostedZone's CallerReference: unique per call, and saying which stack made it."""
    return f"pcls:{stack}:{uuid.uuid4().hex}"


def made_by(ctx: Context, zone: dict[str, Any]) -> bool:
    """Whether CreateHostedZone was called by this stack's zone step (pcls:<stack>:<hex>, or
    pcls-<stack>-<hex> from earlier versions): the zone's own record of who created it."""
    ref = str(zone.get("CallerReference", ""))
    return re.fullmatch(rf"pcls[:-]{re.escape(ctx.stack)}[:-][0-9a-f]{{32}}", ref) is not None


def _claims_zone(ctx: Context, zone: dict[str, Any], tags: dict[str, str]) -> bool:
    """Tagged for this stack's zone step (or being adopted); or untagged but created by it.

    Route 53 tags a zone only after CreateHostedZone, so a run stopped in between leaves an
    untagged zone: its CallerReference still says this stack made it.
    """
    if ctx.claims(ZONE_STEP, zone_id_of(zone), tags):
        return True
    return STACK_TAG not in tags and made_by(ctx, zone)


def locate_zone(ctx: Context) -> tuple[dict[str, Any] | None, bool]:
    """(zone, owned): the stack's own zone if it has one, else the one config points at.

    Uses zone tags, CallerReference and config only (the ledger's id is no proof), so teardown
    can call it in any order. A zone the ledger names that is not this stack's is a collision;
    so is, with dns.create_zone, a zone of the name pcls would create that another stack owns.
    """
    candidates, tags = _candidates(ctx)
    ledger_id = ctx.ledger.id(ZONE_STEP)
    owned = []
    for z in candidates:
        zid = zone_id_of(z)
        if _claims_zone(ctx, z, tags.get(zid, {})):
            owned.append(z)
        elif zid == ledger_id:
            ctx.collision(ZONE_STEP, zid, f"hosted zone {bare(z['Name'])}", tags.get(zid, {}))
    if owned:
        return ctx.unique(ZONE_STEP, owned, "Id"), True
    wanted = wanted_zone_name(ctx.cfg)
    if not wanted and candidates:
        wanted = max((bare(z["Name"]) for z in candidates), key=len)
    named = [z for z in candidates if bare(z["Name"]) == wanted]
    if len(named) > 1:
        ids = " and ".join(zone_id_of(z) for z in named)
        raise ConfigError(
            f"dns: {len(named)} public hosted zones are named {wanted} ({ids}); "
            "pcls will not guess which one answers for the domain: delete the unused one"
        )
    zone = named[0] if named else None
    if zone is not None and ctx.cfg.dns.create_zone:
        have = tags.get(zone_id_of(zone), {})
        if STACK_TAG in have:
            # Another stack's zone (or this stack's, made by another step): never shared.
            ctx.collision(ZONE_STEP, zone_id_of(zone), f"hosted zone {wanted}", have)
            return None, False
    return zone, False


def zone_for(ctx: Context, step: str) -> str | None:
    """Zone id for a step that keeps records: its ledger's zone while AWS has it and it may
    hold the domain's records (public, holding the domain, no other stack's), else lookup."""
    recorded = ctx.ledger.get(step).get("zone")
    if recorded:
        candidates, tags = _candidates(ctx)
        for z in candidates:
            owner = tags.get(zone_id_of(z), {}).get(STACK_TAG)
            if zone_id_of(z) == recorded and owner in (None, ctx.stack):
                return str(recorded)
    zone, _ = locate_zone(ctx)
    return zone_id_of(zone) if zone else None


# -- records -----------------------------------------------------------------------------------


def zone_records(ctx: Context, zone_id: str) -> list[dict[str, Any]]:
    """The zone's record sets: one listing per zone per run, shared by every step."""
    return ctx.aws.all(
        "route53", "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone_id
    )


def record_set(ctx: Context, zone_id: str, name: str, rtype: str) -> dict[str, Any] | None:
    for rr in zone_records(ctx, zone_id):
        if fqdn(rr["Name"]) == fqdn(name) and rr["Type"] == rtype and not rr.get("SetIdentifier"):
            return rr
    return None


def _zone_lock(zone_id: str) -> threading.Lock:
    with _locks_guard:
        return _zone_locks.setdefault(zone_id, threading.Lock())


def change_records(
    ctx: Context, step: str, zone_id: str, changes: list[dict[str, Any]], what: str
) -> None:
    """Apply one change batch and wait until Route 53 reports it INSYNC.

    Batches to one zone are serialized: Route 53 refuses a change while the previous one is
    still being applied (PriorRequestNotComplete), and steps run concurrently.
    """
    r53 = ctx.aws.client("route53")
    with _zone_lock(zone_id):
        try:
            info = r53.change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={"Comment": f"pcls {ctx.stack} {step}", "Changes": changes},
            )["ChangeInfo"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidChangeBatch":
                raise
            deleting = all(c["Action"] == "DELETE" for c in changes)
            if deleting and "not found" in error_message(exc):
                return  # already gone
            raise StepError(
                step,
                "ChangeResourceRecordSets",
                f"{describe_error(exc)} (while writing {what}); a record pcls did not create "
                "may hold this name: remove it, or choose another stack.domain",
            ) from exc
        change_id = str(info["Id"]).split("/")[-1]
        if info.get("Status") == "INSYNC":
            return

        def probe() -> tuple[bool, str]:
            status = r53.get_change(Id=change_id)["ChangeInfo"]["Status"]
            return status == "INSYNC", status

        ctx.wait_for(
            step,
            f"Route 53 to apply {what}",
            probe,
            timeout=ctx.patience.resource_gone,
            hint=f"change {change_id} is still PENDING; run again to resume",
        )


def alias_target(rr: dict[str, Any]) -> str:
    """Where a record points, for messages: the alias DNS name or the record values."""
    alias = rr.get("AliasTarget")
    if alias:
        return bare(alias["DNSName"])
    return ", ".join(v["Value"] for v in rr.get("ResourceRecords", [])) or "nothing"


def _lb_name(dns_name: str) -> str:
    """A load balancer's DNS name as an alias may carry it (any case, dot, dualstack. prefix)."""
    return bare(dns_name).removeprefix("dualstack.")


def live_lb_names(ctx: Context) -> set[str]:
    """DNS names of the region's existing load balancers (the listing the alb step reads)."""
    lbs = ctx.aws.all("elbv2", "describe_load_balancers", "LoadBalancers")
    return {_lb_name(lb["DNSName"]) for lb in lbs if lb.get("DNSName")}


def aliases_to(rr: dict[str, Any], dns_name: str, zone_id: str) -> bool:
    alias = rr.get("AliasTarget")
    if not alias:
        return False
    have = bare(alias["DNSName"]).removeprefix("dualstack.")
    return have == bare(dns_name).removeprefix("dualstack.") and alias["HostedZoneId"] == zone_id


# -- steps -------------------------------------------------------------------------------------


class Zone(Step):
    """The public zone for the domain: found (and kept), or created when config asks."""

    name = ZONE_STEP
    kind = "route53 hosted-zone"
    id_pattern = r"[A-Z0-9]{1,32}"

    def preflight(self, ctx: Context) -> None:
        domain = ctx.cfg.stack.domain
        zone, _ = locate_zone(ctx)
        if zone is not None or ctx.cfg.dns.create_zone:
            return
        if ctx.cfg.dns.zone:
            raise ConfigError(
                f"dns.zone: no public hosted zone named {ctx.cfg.dns.zone} in this account; "
                "create it, clear dns.zone, or set dns.create_zone = true"
            )
        raise ConfigError(
            f"no public hosted zone holds {domain}; create one or set dns.create_zone = true"
        )

    def _res(self, zone: dict[str, Any], owned: bool, tags: dict[str, str]) -> Resource:
        zid = zone_id_of(zone)
        return Resource(
            zid,
            attrs={"name": bare(zone["Name"]), "zone": zone, "tags": tags},
            retained="" if owned else RETAINED_ZONE,
        )

    def find(self, ctx: Context) -> Resource | None:
        zone, owned = locate_zone(ctx)
        if zone is None:
            return None
        tags = _candidates(ctx)[1].get(zone_id_of(zone), {})
        return self._res(zone, owned, tags)

    def create(self, ctx: Context) -> Resource:
        name = wanted_zone_name(ctx.cfg)
        resp = ctx.aws.client("route53").create_hosted_zone(
            Name=name,
            CallerReference=caller_reference(ctx.stack),
            HostedZoneConfig={"Comment": f"pcls stack {ctx.stack}", "PrivateZone": False},
        )
        servers = resp.get("DelegationSet", {}).get("NameServers", [])
        ctx.ui.info(
            f"zone {name} created ({zone_id_of(resp['HostedZone'])}). Delegate it: set these NS "
            f"records for {name} at its registrar or parent zone: {', '.join(servers)}"
        )
        # Zones cannot be tagged at creation; drift() reports the tags missing and update()
        # adds them. Until then the zone's CallerReference is what says it is this stack's.
        return self._res(resp["HostedZone"], True, {})

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        if res.retained:
            return []
        return tag_drift(ctx.tag_dict(self.name), res.attrs["tags"])

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def tag(self, ctx: Context, res: Resource) -> None:
        ctx.aws.client("route53").change_tags_for_resource(
            ResourceType="hostedzone", ResourceId=res.id, AddTags=ctx.tags(self.name)
        )
        res.attrs["tags"] = {**res.attrs.get("tags", {}), **ctx.tag_dict(self.name)}

    def delete(self, ctx: Context, res: Resource) -> None:
        # The record steps depend on this one, so pcls's own records are gone by now; what is
        # left was added by someone else and stays, and so does the zone then.
        apex = fqdn(res.attrs["name"])
        others = [
            f"{bare(rr['Name'])} {rr['Type']}"
            for rr in ignore_missing(lambda: zone_records(ctx, res.id)) or []
            if not (fqdn(rr["Name"]) == apex and rr["Type"] in ("NS", "SOA"))
        ]
        if others:
            raise StepError(
                self.name,
                "DeleteHostedZone",
                f"zone {res.attrs['name']} holds records pcls did not create "
                f"({', '.join(others[:5])}); delete them or keep the zone, then run again",
            )
        ignore_missing(lambda: ctx.aws.client("route53").delete_hosted_zone(Id=res.id))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": res.attrs["name"],
            "owned": "no" if res.retained else "yes",
            "records": res.attrs["zone"].get("ResourceRecordSetCount", "?"),
        }
        if not res.retained:
            zone = ctx.aws.cached("route53", "get_hosted_zone", Id=res.id)
            out["name_servers"] = " ".join(zone.get("DelegationSet", {}).get("NameServers", []))
        return out


class PublicName(Step):
    """Alias A (and AAAA with dual stack) for the domain to the ALB."""

    name = "dns-record"
    kind = "route53 alias-record"
    id_pattern = r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]+"  # the domain
    # The name goes public once the listeners serve it, and is withdrawn before they go.
    depends_on = ("zone", "alb", "listener-https", "listener-http")

    def _types(self, ctx: Context) -> tuple[str, ...]:
        return ("A", "AAAA") if ctx.cfg.network.dual_stack else ("A",)

    def _existing(self, ctx: Context, zone_id: str) -> dict[str, dict[str, Any]]:
        domain = ctx.cfg.stack.domain
        sets = {t: record_set(ctx, zone_id, domain, t) for t in ("A", "AAAA", "CNAME")}
        return {t: rr for t, rr in sets.items() if rr is not None}

    def _ours(self, ctx: Context, zone_id: str, sets: dict[str, dict[str, Any]]) -> bool:
        """Whether the domain's A/AAAA records in the stack's zone are this stack's.

        Records cannot be tagged. They are this stack's when they alias to its own (tagged)
        load balancer. A record pointing at any other live load balancer never is, whatever
        the ledger says. Otherwise (the target no longer exists, or a record edited by hand)
        they are this stack's when its ledger says pcls wrote them in this zone, or when each
        aliases to a load balancer that no longer exists but has the DNS name this stack's
        would have (<stack>-alb-<id>.<region>.elb.amazonaws.com): left behind by this stack,
        and nobody else's since nothing answers at that name.
        """
        from pcls.steps.loadbalancer import find_alb  # that module imports this one

        alb = find_alb(ctx)
        ours = _lb_name(alb["DNSName"]) if alb else ""
        live = live_lb_names(ctx) - {ours}
        records = [rr for t, rr in sets.items() if t in ("A", "AAAA")]
        if not records:
            return False
        targets = [
            _lb_name(rr["AliasTarget"]["DNSName"]) for rr in records if rr.get("AliasTarget")
        ]
        if any(t in live for t in targets):
            return False  # someone else's live load balancer
        if alb and all(
            aliases_to(rr, alb["DNSName"], alb["CanonicalHostedZoneId"]) for rr in records
        ):
            return True
        entry = ctx.ledger.get(self.name)
        if entry.get("id") == ctx.cfg.stack.domain and entry.get("zone") == zone_id:
            return True
        return len(targets) == len(records) and all(
            t == ours or self._left_behind(ctx, t) for t in targets
        )

    def _at_alb_in_the_way(self, ctx: Context, sets: dict[str, dict[str, Any]]) -> bool:
        """Every alias points at a load balancer the alb step found in its way (one of the
        stack's name, or the ledger's, without the stack's tags)."""
        lbs = ctx.aws.all("elbv2", "describe_load_balancers", "LoadBalancers")
        dns_of = {lb["LoadBalancerArn"]: _lb_name(lb.get("DNSName", "")) for lb in lbs}
        in_way = {dns_of.get(c.id) for c in ctx.conflicts_of("alb")}
        targets = [rr.get("AliasTarget") for t, rr in sets.items() if t in ("A", "AAAA")]
        return bool(targets) and all(a and _lb_name(a["DNSName"]) in in_way for a in targets)

    def _left_behind(self, ctx: Context, target: str) -> bool:
        """A DNS name this stack's load balancer would have, answered by none that exists."""
        from pcls.steps.loadbalancer import alb_name

        pattern = (
            rf"{re.escape(alb_name(ctx))}-[0-9a-z]+\.{re.escape(ctx.aws.region)}"
            r"\.elb\.amazonaws\.com(\.cn)?"
        )
        return re.fullmatch(pattern, target) is not None and target not in live_lb_names(ctx)

    def preflight(self, ctx: Context) -> None:
        zone, _ = locate_zone(ctx)
        if zone is None:
            return  # the zone step explains, or creates it
        sets = self._existing(ctx, zone_id_of(zone))
        domain = ctx.cfg.stack.domain
        if "CNAME" in sets:
            raise ConfigError(
                f"stack.domain: {domain} is a CNAME to {alias_target(sets['CNAME'])} in zone "
                f"{bare(zone['Name'])}; pcls did not create it and will not replace it: "
                "delete it or choose another domain"
            )
        if sets and not self._ours(ctx, zone_id_of(zone), sets):
            if self._at_alb_in_the_way(ctx, sets):
                return  # the alb step's collision says what is wrong, before any write
            taken = ", ".join(f"{t} → {alias_target(rr)}" for t, rr in sorted(sets.items()))
            raise ConfigError(
                f"stack.domain: {domain} already has records in zone {bare(zone['Name'])} "
                f"({taken}) that pcls did not create; delete them or choose another domain"
            )

    def find(self, ctx: Context) -> Resource | None:
        zone_id = zone_for(ctx, self.name)
        if zone_id is None:
            return None
        sets = {t: rr for t, rr in self._existing(ctx, zone_id).items() if t != "CNAME"}
        if not sets:
            return None
        res = Resource(ctx.cfg.stack.domain, attrs={"zone_id": zone_id, "sets": sets})
        res.ledger = {"zone": zone_id}
        if not self._ours(ctx, zone_id, sets):
            res.retained = RETAINED_RECORD
        return res

    def _target_name(self, ctx: Context) -> str:
        """The alias target: with dual stack, the load balancer's `dualstack.` name, the one
        that answers AAAA (its plain DNSName answers A only, so AAAA would never resolve)."""
        dns_name = bare(ctx.out("alb").attrs["dns_name"])
        return "dualstack." + _lb_name(dns_name) if ctx.cfg.network.dual_stack else dns_name

    def _desired(self, ctx: Context, rtype: str) -> dict[str, Any]:
        alb = ctx.out("alb")
        return {
            "Name": fqdn(ctx.cfg.stack.domain),
            "Type": rtype,
            "AliasTarget": {
                # The ALB's own zone, never the public zone: that is what makes it an alias.
                "HostedZoneId": alb.attrs["canonical_zone_id"],
                "DNSName": self._target_name(ctx),
                # A single record has nothing to fail over to.
                "EvaluateTargetHealth": False,
            },
        }

    def create(self, ctx: Context) -> Resource:
        zone_id = ctx.out("zone").id
        sets = {t: self._desired(ctx, t) for t in self._types(ctx)}
        changes = [{"Action": "UPSERT", "ResourceRecordSet": rr} for rr in sets.values()]
        change_records(ctx, self.name, zone_id, changes, f"the alias for {ctx.cfg.stack.domain}")
        return Resource(
            ctx.cfg.stack.domain, attrs={"zone_id": zone_id, "sets": sets}, ledger={"zone": zone_id}
        )

    def _plan(self, ctx: Context, res: Resource) -> tuple[list[str], list[str], list[str]]:
        """(drift lines, types to upsert, types to delete)."""
        if res.retained:
            taken = ", ".join(f"{t} → {alias_target(rr)}" for t, rr in res.attrs["sets"].items())
            return [f"{taken}: not created by pcls, left alone"], [], []
        alb = ctx.out("alb")
        lines, upsert, remove = [], [], []
        for t in self._types(ctx):
            rr = res.attrs["sets"].get(t)
            if rr is None:
                lines.append(f"{t} record missing")
                upsert.append(t)
            elif not aliases_to(rr, alb.attrs["dns_name"], alb.attrs["canonical_zone_id"]):
                lines.append(f"{t} record points to {alias_target(rr)}, not the load balancer")
                upsert.append(t)
            elif ctx.cfg.network.dual_stack and alias_target(rr) != self._target_name(ctx):
                lines.append(
                    f"{t} record aliases {alias_target(rr)}, not {self._target_name(ctx)} "
                    "(without the dualstack. prefix AAAA never resolves)"
                )
                upsert.append(t)
        for t in res.attrs["sets"]:
            if t not in self._types(ctx):
                lines.append(f"{t} record not in config (network.dual_stack is off)")
                remove.append(t)
        return lines, upsert, remove

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        if not res.retained and res.attrs["zone_id"] != ctx.out("zone").id:
            return [f"in zone {res.attrs['zone_id']}, not the stack's zone {ctx.out('zone').id}"]
        return self._plan(ctx, res)[0]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        if res.retained:
            raise PclsError(
                f"{self.name}: {ctx.cfg.stack.domain} has records pcls did not create; "
                "delete them or choose another domain"
            )
        zone_id = ctx.out("zone").id
        if res.attrs["zone_id"] != zone_id:
            # A more specific zone now answers for the domain: move the records into it.
            moved = self.create(ctx)
            self.delete(ctx, res)
            res.attrs.update(moved.attrs)
            res.ledger = moved.ledger
            return
        _, upsert, remove = self._plan(ctx, res)
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": self._desired(ctx, t)} for t in upsert
        ] + [{"Action": "DELETE", "ResourceRecordSet": res.attrs["sets"][t]} for t in remove]
        if changes:
            change_records(ctx, self.name, res.attrs["zone_id"], changes, f"the alias for {res.id}")
        for t in upsert:
            res.attrs["sets"][t] = self._desired(ctx, t)
        for t in remove:
            res.attrs["sets"].pop(t, None)

    def delete(self, ctx: Context, res: Resource) -> None:
        zone_id, sets = res.attrs["zone_id"], dict(res.attrs["sets"])
        for _ in range(2):
            changes = [{"Action": "DELETE", "ResourceRecordSet": rr} for rr in sets.values()]
            change_records(ctx, self.name, zone_id, changes, f"the alias for {res.id}")
            # Route 53 answers "not found" also when the record changed since it was read: ask
            # again (the write emptied the cached listing) instead of trusting the answer.
            left = {t: rr for t in sets if (rr := record_set(ctx, zone_id, res.id, t))}
            if not left or not self._ours(ctx, zone_id, left):
                return  # gone, or replaced by a record that is not this stack's: left alone
            sets = left
        raise StepError(
            self.name,
            "ChangeResourceRecordSets",
            f"{res.id} {', '.join(sorted(sets))} still in zone {zone_id} after deleting it; "
            "run teardown again",
        )

    def strays(self, ctx: Context) -> dict[str, str]:
        """After teardown: an alias on the domain, in the stack's zone, to a load balancer of
        this region that no longer exists. Reported even when it cannot be shown to be this
        stack's (then it is left for the operator): it answers for the stack's name."""
        zone_id = zone_for(ctx, self.name)
        if zone_id is None:
            return {}
        domain = ctx.cfg.stack.domain
        region = re.escape(ctx.aws.region)
        dangling = []
        for t, rr in sorted(self._existing(ctx, zone_id).items()):
            target = _lb_name(rr["AliasTarget"]["DNSName"]) if rr.get("AliasTarget") else ""
            elb = re.search(rf"\.{region}\.elb\.amazonaws\.com(\.cn)?$", target)
            if elb and target not in live_lb_names(ctx):
                dangling.append(f"{t} to {target}")
        if not dangling:
            return {}
        return {
            domain: f"{self.name} (route53 alias {domain} {', '.join(dangling)}, a load "
            f"balancer that no longer exists, in zone {zone_id})"
        }

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        rr = res.attrs["sets"].get("A")
        out: dict[str, Any] = {"target": alias_target(rr) if rr else "no A record"}
        alb = ctx.outputs.get("alb")
        if alb is not None:
            ok = rr is not None and aliases_to(
                rr, alb.attrs["dns_name"], alb.attrs["canonical_zone_id"]
            )
            out["resolves_to_alb"] = "yes" if ok else "no"
        return out


def steps(cfg: Config) -> list[Step]:
    return [Zone(), PublicName()]

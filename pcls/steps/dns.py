"""DNS: the public hosted zone that holds the domain, and the alias record(s) to the ALB.

Route 53 records cannot be tagged, so pcls owns a record only when its ledger says so or when
the record aliases to this stack's own load balancer. A zone pcls did not create is never
deleted, and records pcls did not create are never written: a name already taken by someone
else's record is refused in preflight, before anything is built.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import botocore.exceptions

from pcls.aws import (
    STACK_TAG,
    STEP_TAG,
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


def locate_zone(ctx: Context) -> tuple[dict[str, Any] | None, bool]:
    """(zone, owned): the stack's own zone if it has one, else the one config points at.

    Uses the ledger, zone tags and config only, so teardown can call it in any order.
    """
    candidates, tags = _candidates(ctx)
    ledger_id = ctx.ledger.id(ZONE_STEP)
    for z in candidates:
        if zone_id_of(z) == ledger_id:
            return z, True
    owned = [
        z
        for z in candidates
        if tags.get(zone_id_of(z), {}).get(STACK_TAG) == ctx.stack
        and tags.get(zone_id_of(z), {}).get(STEP_TAG) == ZONE_STEP
    ]
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
    return (named[0] if named else None), False


def zone_for(ctx: Context, step: str) -> str | None:
    """Zone id for a step that keeps records: its ledger's zone while AWS has it, else lookup."""
    recorded = ctx.ledger.get(step).get("zone")
    if recorded and any(zone_id_of(z) == recorded for z in public_zones(ctx)):
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
            CallerReference=f"pcls-{ctx.stack}-{uuid.uuid4().hex}",
            HostedZoneConfig={"Comment": f"pcls stack {ctx.stack}", "PrivateZone": False},
        )
        servers = resp.get("DelegationSet", {}).get("NameServers", [])
        ctx.ui.info(
            f"zone {name} created ({zone_id_of(resp['HostedZone'])}). Delegate it: set these NS "
            f"records for {name} at its registrar or parent zone: {', '.join(servers)}"
        )
        # Zones cannot be tagged at creation; drift() reports the tags missing and update()
        # adds them. The ledger id (written before that) marks the zone as ours meanwhile.
        return self._res(resp["HostedZone"], True, {})

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        if res.retained:
            return []
        return tag_drift(ctx.tag_dict(self.name), res.attrs["tags"])

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        if any(d.startswith("tag ") for d in drift):
            ctx.aws.client("route53").change_tags_for_resource(
                ResourceType="hostedzone", ResourceId=res.id, AddTags=ctx.tags(self.name)
            )
            res.attrs["tags"] = ctx.tag_dict(self.name)

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
    # The name goes public once the listeners serve it, and is withdrawn before they go.
    depends_on = ("zone", "alb", "listener-https", "listener-http")

    def _types(self, ctx: Context) -> tuple[str, ...]:
        return ("A", "AAAA") if ctx.cfg.network.dual_stack else ("A",)

    def _existing(self, ctx: Context, zone_id: str) -> dict[str, dict[str, Any]]:
        domain = ctx.cfg.stack.domain
        sets = {t: record_set(ctx, zone_id, domain, t) for t in ("A", "AAAA", "CNAME")}
        return {t: rr for t, rr in sets.items() if rr is not None}

    def _ours(self, ctx: Context, sets: dict[str, dict[str, Any]]) -> bool:
        """Owned when the ledger says pcls wrote it, or when it aliases to this stack's ALB."""
        if self.name in ctx.ledger.steps:
            return True
        from pcls.steps.loadbalancer import find_alb  # that module imports this one

        alb = find_alb(ctx)
        return alb is not None and all(
            aliases_to(rr, alb["DNSName"], alb["CanonicalHostedZoneId"])
            for t, rr in sets.items()
            if t in ("A", "AAAA")
        )

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
        if sets and not self._ours(ctx, sets):
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
        if not self._ours(ctx, sets):
            res.retained = RETAINED_RECORD
        return res

    def _desired(self, ctx: Context, rtype: str) -> dict[str, Any]:
        alb = ctx.out("alb")
        return {
            "Name": fqdn(ctx.cfg.stack.domain),
            "Type": rtype,
            "AliasTarget": {
                # The ALB's own zone, never the public zone: that is what makes it an alias.
                "HostedZoneId": alb.attrs["canonical_zone_id"],
                "DNSName": alb.attrs["dns_name"],
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
        changes = [
            {"Action": "DELETE", "ResourceRecordSet": rr} for rr in res.attrs["sets"].values()
        ]
        change_records(ctx, self.name, res.attrs["zone_id"], changes, f"the alias for {res.id}")

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

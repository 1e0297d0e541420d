"""Certificate: an ACM certificate for the domain, validated by a CNAME in the stack's zone.

The validation CNAME belongs to this step: ACM publishes its name and value some seconds after
the request, pcls UPSERTs it and waits (bounded, visibly) for ISSUED. The record stays for as
long as the certificate does, since ACM's managed renewal validates through it again. A
certificate that failed is reported, never silently replaced: replacing it would hide the
cause (usually an undelegated zone or a CAA record) and fail the same way.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import botocore.exceptions

from pcls.aws import ignore_missing, is_not_found, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.errors import ConfigError, PclsError
from pcls.steps.dns import bare, change_records, fqdn, record_set, zone_for

BAD_STATES = ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED", "INACTIVE")
# Marks the certificate whose step wrote the validation CNAME (records cannot be tagged). A
# CNAME that was already there, identical, is someone else's and stays on teardown.
VALIDATION_TAG = "pcls:validation-record"
MAX_NAME = 64  # ACM refuses a certificate's first domain name longer than 64 characters
VALIDATION_TTL = 300
TOKEN_LENGTH = 32  # ACM's IdempotencyToken: at most 32 characters of \w


def idempotency_token(stack: str, domain: str, run: str) -> str:
    """RequestCertificate's IdempotencyToken: pcls_<stack>_<digest of stack, domain, run>.

    botocore resends a request whose answer was lost (a timeout, a reset connection); without
    a token ACM would make a second certificate for the first call. The token is the same for
    every attempt of one run, so ACM answers each with the one certificate. It differs between
    runs (`run`): ACM keeps a token for an hour and answers it with the certificate made
    then, so a token of the stack and domain alone would hand an `up` shortly after a teardown
    the ARN of the certificate that teardown deleted.
    """
    head = "pcls_" + re.sub(r"\W", "_", stack) + "_"
    digest = hashlib.sha256(f"{stack}\0{domain}\0{run}".encode()).hexdigest()
    return (head + digest)[:TOKEN_LENGTH]


def _acm(ctx: Context) -> Any:
    return ctx.aws.client("acm")


def validation_record(cert: dict[str, Any]) -> dict[str, str] | None:
    """The CNAME ACM wants for the certificate's domain, once ACM has published it."""
    for opt in cert.get("DomainValidationOptions", []):
        if opt.get("DomainName") == cert.get("DomainName") and opt.get("ResourceRecord"):
            return dict(opt["ResourceRecord"])
    return None


def _values(rr: dict[str, Any]) -> list[str]:
    return [bare(v["Value"]) for v in rr.get("ResourceRecords", [])]


def is_validation_name(ctx: Context, name: str) -> bool:
    """ACM names the validation CNAME `_<token>.<domain>`: never anything else is deleted."""
    label, _, rest = bare(name).partition(".")
    return label.startswith("_") and rest == ctx.cfg.stack.domain


def is_validation_record(rr: dict[str, Any]) -> bool:
    """A CNAME to ACM's validation domain, as ACM asks for it."""
    values = _values(rr)
    return (
        rr.get("Type") == "CNAME"
        and bool(values)
        and all(v.endswith(".acm-validations.aws") for v in values)
    )


class Certificate(Step):
    name = "certificate"
    kind = "acm certificate"
    typical_seconds = 310  # ACM DNS validation: minutes
    depends_on = ("zone",)
    id_pattern = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+"

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex  # one per run: the steps are built for each command

    def preflight(self, ctx: Context) -> None:
        domain = ctx.cfg.stack.domain
        if len(domain) > MAX_NAME:
            raise ConfigError(
                f"stack.domain: {domain!r} has {len(domain)} characters; ACM issues "
                f"certificates only for names of at most {MAX_NAME}"
            )

    # -- find ------------------------------------------------------------------------------------

    def _tags(self, ctx: Context, arn: str) -> dict[str, str]:
        resp = ctx.aws.cached("acm", "list_tags_for_certificate", CertificateArn=arn)
        return tags_of(resp.get("Tags"))

    def _res(self, ctx: Context, cert: dict[str, Any], tags: dict[str, str]) -> Resource:
        prev = ctx.ledger.get(self.name)
        ledger: dict[str, Any] = {}
        if prev.get("zone"):
            ledger["zone"] = prev["zone"]
        rr = validation_record(cert)
        if rr:
            ledger["validation_record"] = bare(rr["Name"])
        if VALIDATION_TAG in tags:
            ledger["validation_owned"] = True
        return Resource(
            cert["CertificateArn"],
            attrs={"cert": cert, "tags": dict(tags)},
            ledger=ledger,
            state=str(cert.get("Status", "")),
        )

    def find(self, ctx: Context) -> Resource | None:
        """The certificate tagged for this stack and step.

        Candidates are the certificates of this very domain (tags are read for those only: a
        few calls at most) and the one the ledger names; ACM allows any number per domain, so
        an untagged one of the domain is not in the way, but a ledger id naming a certificate
        without this stack's tags is a collision.
        """
        domain = ctx.cfg.stack.domain
        summaries = ctx.aws.all("acm", "list_certificates", "CertificateSummaryList")
        hints = {ctx.ledger.id(self.name), ctx.adopting.get(self.name)} - {None}
        items = []
        for s in summaries:
            if s.get("DomainName") == domain or s["CertificateArn"] in hints:
                try:
                    items.append({**s, "Tags": self._tags(ctx, s["CertificateArn"])})
                except botocore.exceptions.ClientError as exc:
                    if not is_not_found(exc):  # deleted since it was listed
                        raise
        found = ctx.pick(self.name, items, "CertificateArn", what="ACM certificate")
        for item in items:
            arn = item["CertificateArn"]
            if arn == ctx.ledger.id(self.name) and not ctx.claims(self.name, arn, item["Tags"]):
                what = f"ACM certificate for {item.get('DomainName')}"
                ctx.collision(self.name, arn, what, item["Tags"])
        if found is None:
            return self._orphan(ctx)
        arn = found["CertificateArn"]
        try:
            cert = ctx.aws.cached("acm", "describe_certificate", CertificateArn=arn)["Certificate"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return self._orphan(ctx)
            raise
        return self._res(ctx, cert, self._tags(ctx, arn))

    def _orphan(self, ctx: Context) -> Resource | None:
        """During teardown: the certificate is gone but the CNAME it owned is still there.

        Happens when a teardown stopped between the two deletes; without this the record
        would be left behind for good.
        """
        prev = ctx.ledger.get(self.name)
        name = prev.get("validation_record")
        if ctx.mode != "teardown" or not (name and prev.get("validation_owned")):
            return None
        if ctx.conflicts_of(self.name) or not is_validation_name(ctx, name):
            return None  # the ledger names something that is not this stack's
        zone_id = zone_for(ctx, self.name)
        rr = record_set(ctx, zone_id, name, "CNAME") if zone_id else None
        if rr is None or not is_validation_record(rr):
            return None
        return Resource(
            prev["id"], attrs={"cert": None, "tags": {VALIDATION_TAG: name}}, state="deleted"
        )

    # -- create and converge ---------------------------------------------------------------------

    def create(self, ctx: Context) -> Resource:
        domain = ctx.cfg.stack.domain
        arn = _acm(ctx).request_certificate(
            DomainName=domain,
            ValidationMethod="DNS",
            IdempotencyToken=idempotency_token(ctx.stack, domain, self.run),
            Tags=ctx.tags(self.name),
        )["CertificateArn"]
        # ACM fills in the validation record a few seconds later; update() waits for it.
        cert = {"CertificateArn": arn, "DomainName": domain, "Status": "PENDING_VALIDATION"}
        return self._res(ctx, cert, ctx.tag_dict(self.name))

    def _record_drift(self, ctx: Context, rr: dict[str, str]) -> list[str]:
        have = record_set(ctx, ctx.out("zone").id, rr["Name"], "CNAME")
        if have is None:
            return [f"validation CNAME {bare(rr['Name'])} missing"]
        if _values(have) != [bare(rr["Value"])]:
            return [f"validation CNAME {bare(rr['Name'])} points to {', '.join(_values(have))}"]
        return []

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        cert = res.attrs["cert"]
        status = cert.get("Status")
        domain = ctx.cfg.stack.domain
        out = []
        if cert.get("DomainName") != domain:
            out.append(f"for {cert.get('DomainName')}, not {domain} (delete it to get a new one)")
        if status in BAD_STATES:
            return [*out, f"status {status}" + self._reason(cert)]
        rr = validation_record(cert)
        if rr is None:
            out.append("validation record not yet published by ACM")
        else:
            out += self._record_drift(ctx, rr)
        if status != "ISSUED":
            out.append(f"not issued yet ({status})")
        return out + tag_drift(ctx.tag_dict(self.name), res.attrs["tags"])

    def _reason(self, cert: dict[str, Any]) -> str:
        reason = cert.get("FailureReason")
        return f" ({reason})" if reason else ""

    def _refuse(self, ctx: Context, cert: dict[str, Any]) -> PclsError:
        return PclsError(
            f"{self.name}: {cert['CertificateArn']} is {cert.get('Status')}{self._reason(cert)}; "
            "pcls does not replace a failed certificate. Check that the zone is delegated (NS "
            "records at the registrar) and that no CAA record forbids Amazon, delete the "
            "certificate (aws acm delete-certificate), then run up again"
        )

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        cert = res.attrs["cert"]
        if cert.get("Status") in BAD_STATES:
            raise self._refuse(ctx, cert)
        if cert.get("DomainName") != ctx.cfg.stack.domain:
            raise PclsError(
                f"{self.name}: {res.id} is for {cert.get('DomainName')}, not "
                f"{ctx.cfg.stack.domain}; run teardown for the old domain first"
            )
        zone_id = ctx.out("zone").id
        res.ledger["zone"] = zone_id
        rr = validation_record(cert) or self._wait_record(ctx, res)
        self._ensure_record(ctx, res, zone_id, rr)
        if res.attrs["cert"].get("Status") != "ISSUED":
            self._wait_issued(ctx, res, rr)
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def tag(self, ctx: Context, res: Resource) -> None:
        _acm(ctx).add_tags_to_certificate(CertificateArn=res.id, Tags=ctx.tags(self.name))
        res.attrs["tags"].update(ctx.tag_dict(self.name))

    def _describe(self, ctx: Context, res: Resource) -> dict[str, Any] | None:
        try:
            cert = _acm(ctx).describe_certificate(CertificateArn=res.id)["Certificate"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None  # a just-requested certificate can take a moment to be visible
            raise
        res.attrs["cert"] = cert
        res.state = str(cert.get("Status", ""))
        if cert.get("Status") in BAD_STATES:
            raise self._refuse(ctx, cert)
        return cert

    def _wait_record(self, ctx: Context, res: Resource) -> dict[str, str]:
        def published() -> tuple[bool, str]:
            cert = self._describe(ctx, res)
            if cert is None:
                return False, "certificate not visible yet"
            return validation_record(cert) is not None, str(cert.get("Status"))

        ctx.wait_for(
            self.name,
            "ACM to publish the DNS validation record",
            published,
            timeout=ctx.cfg.certificate.wait_timeout,
            hint="ACM usually publishes it within seconds; run up again to resume",
        )
        rr = validation_record(res.attrs["cert"])
        assert rr is not None  # wait_for returned, so the probe saw it
        return rr

    def _ensure_record(self, ctx: Context, res: Resource, zone_id: str, rr: dict[str, str]) -> None:
        name, value = fqdn(rr["Name"]), bare(rr["Value"])
        have = record_set(ctx, zone_id, name, "CNAME")
        owned = VALIDATION_TAG in res.attrs["tags"]
        res.ledger["validation_record"] = bare(name)
        if have is not None and _values(have) == [value]:
            return
        if have is not None and not owned:
            raise PclsError(
                f"{self.name}: {bare(name)} is a CNAME to {', '.join(_values(have))} that pcls "
                f"did not create; ACM needs it to point to {value}: correct or delete it, "
                "then run up again"
            )
        if not owned:
            # Claim the record on the certificate before writing it, so that an interrupted
            # run can never leave a record pcls made but does not know it owns.
            _acm(ctx).add_tags_to_certificate(
                CertificateArn=res.id, Tags=[{"Key": VALIDATION_TAG, "Value": bare(name)}]
            )
            res.attrs["tags"][VALIDATION_TAG] = bare(name)
        change_records(
            ctx,
            self.name,
            zone_id,
            [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "CNAME",
                        "TTL": VALIDATION_TTL,
                        "ResourceRecords": [{"Value": value + "."}],
                    },
                }
            ],
            f"the validation record {bare(name)}",
        )
        res.ledger["validation_owned"] = True

    def _wait_issued(self, ctx: Context, res: Resource, rr: dict[str, str]) -> None:
        zone = ctx.out("zone").attrs.get("name", "")

        def issued() -> tuple[bool, str]:
            cert = self._describe(ctx, res)
            if cert is None:
                return False, "certificate not visible yet"
            checks = [
                o.get("ValidationStatus", "") for o in cert.get("DomainValidationOptions", [])
            ]
            state = str(cert.get("Status")) + (f", validation {checks[0]}" if checks else "")
            return cert.get("Status") == "ISSUED", state

        ctx.wait_for(
            self.name,
            f"ACM to issue the certificate for {ctx.cfg.stack.domain} "
            f"(DNS validation through {bare(rr['Name'])})",
            issued,
            timeout=ctx.cfg.certificate.wait_timeout,
            hint=(
                f"ACM resolves {bare(rr['Name'])} through public DNS: check that zone {zone} is "
                "delegated to Route 53 (the NS records at the registrar or parent zone match "
                "the zone's name servers) and that the CNAME exists; then run up again, which "
                "reuses this certificate, or raise certificate.wait_timeout"
            ),
        )

    # -- delete and status -----------------------------------------------------------------------

    def _users(self, ctx: Context, arn: str) -> list[str]:
        """Resources that still use the certificate.

        InUseBy lags behind deletes (and the emulator never clears it), so an entry whose
        load balancer or listener no longer exists does not block.
        """
        try:
            cert = _acm(ctx).describe_certificate(CertificateArn=arn)["Certificate"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return []
            raise
        return [u for u in cert.get("InUseBy", []) if _exists(ctx, u)]

    def delete(self, ctx: Context, res: Resource) -> None:
        acm = _acm(ctx)
        if res.attrs["cert"] is not None:

            def released() -> tuple[bool, str]:
                users = self._users(ctx, res.id)
                return not users, ", ".join(users)

            ctx.wait_for(
                self.name,
                "load balancers to release the certificate",
                released,
                timeout=ctx.patience.dependency_release,
                hint="remove the certificate from the listed listeners, then run teardown again",
            )
            ctx.retry_while(
                self.name,
                lambda: ignore_missing(lambda: acm.delete_certificate(CertificateArn=res.id)),
                codes=("ResourceInUseException",),
                timeout=ctx.patience.dependency_release,
                why="waiting for the load balancer to release the certificate",
                blocker=lambda: ", ".join(self._users(ctx, res.id)),
            )
        name = res.attrs["tags"].get(VALIDATION_TAG)
        if name and not is_validation_name(ctx, name):
            name = None  # a tag naming anything but this domain's validation record is ignored
        zone_id = zone_for(ctx, self.name) if name else None
        if name and zone_id:
            rr = record_set(ctx, zone_id, name, "CNAME")
            if rr is not None and is_validation_record(rr):
                change_records(
                    ctx,
                    self.name,
                    zone_id,
                    [{"Action": "DELETE", "ResourceRecordSet": rr}],
                    f"the validation record {name}",
                )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        cert = res.attrs["cert"]
        if cert is None:
            return {"status": "deleted; its validation record remains"}
        expires = cert.get("NotAfter")
        out: dict[str, Any] = {
            "status": cert.get("Status"),
            "expires": expires.date().isoformat() if hasattr(expires, "date") else "-",
            "in_use_by": len(cert.get("InUseBy", [])),
        }
        renewal = cert.get("RenewalSummary", {}).get("RenewalStatus")
        if renewal:
            out["renewal"] = renewal
        return out


def _exists(ctx: Context, arn: str) -> bool:
    elbv2 = ctx.aws.client("elbv2")
    try:
        if ":elasticloadbalancing:" in arn and ":listener/" in arn:
            return bool(elbv2.describe_listeners(ListenerArns=[arn])["Listeners"])
        if ":elasticloadbalancing:" in arn and ":loadbalancer/" in arn:
            return bool(elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"])
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True  # another service's resource: trust ACM


def steps(cfg: Config) -> list[Step]:
    return [Certificate()]

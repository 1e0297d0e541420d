"""Edge (zone, certificate, load balancer, public name) through the step API and the CLI, on moto.

Runs use the edge steps and the network steps they need, so each test stays short. What moto
never does (dependency errors, slow ACM, refused change batches) is injected at the botocore
layer with event hooks on the run's own clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pcls import runner
from pcls.engine import Engine, Patience, RunResult
from pcls.steps import certificate, dns, loadbalancer, network
from pcls.ui import Outcome
from tests.harness import FAST, Harness

EDGE_STEPS = {
    "zone",
    "certificate",
    "target-group",
    "alb",
    "listener-https",
    "listener-http",
    "dns-record",
}
MOTO_LB_ZONE = "Z2P70J7EXAMPLE"
DEFAULT_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


# -- helpers -----------------------------------------------------------------------------------


def session(h: Harness, patience: Patience = FAST) -> runner.Session:
    """A session whose engine holds the edge steps and the network steps they need."""
    s = h.session(patience=patience)
    cfg = s.cfg
    needed = [
        st
        for st in network.steps(cfg)
        if st.name in ("vpc", "sg-alb", "internet-gateway", "route-table")
        or st.name.startswith("subnet-")
    ]
    edge = [*needed, *dns.steps(cfg), *certificate.steps(cfg), *loadbalancer.steps(cfg)]
    s.engine = Engine(s.ctx, edge, parallel=4)
    return s


def up(h: Harness, **kw: Any) -> RunResult:
    return runner.do_up(session(h, **kw))


def ok(result: RunResult) -> RunResult:
    assert result.ok, [r.detail for r in result.failures] or result.remaining
    return result


def zone_id(h: Harness, name: str = "example.com") -> str:
    zones = h.client("route53").list_hosted_zones_by_name(DNSName=name)["HostedZones"]
    return next(z["Id"].split("/")[-1] for z in zones if z["Name"] == name + ".")


def records(h: Harness, zid: str) -> dict[tuple[str, str], dict[str, Any]]:
    sets = h.client("route53").list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]
    return {(rr["Name"], rr["Type"]): rr for rr in sets}


def raise_on(
    client: Any, operation: str, code: str, message: str = "", times: int = 1_000_000
) -> list[int]:
    """Make `operation` fail with an AWS error `times` times; returns a one-item call counter."""
    seen = [0]
    lock = threading.Lock()

    def hook(model: Any, **_: Any) -> None:
        if model.name != operation:
            return
        with lock:
            seen[0] += 1
            if seen[0] > times:
                return
        raise ClientError({"Error": {"Code": code, "Message": message or code}}, operation)

    client.meta.events.register("before-call", hook)
    return seen


def rewrite_certificate(client: Any, change: Callable[[dict[str, Any], int], None]) -> None:
    """Edit DescribeCertificate answers as AWS would give them (change gets the call number)."""
    calls = [0]

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        calls[0] += 1
        if "Certificate" in parsed:
            change(parsed["Certificate"], calls[0])

    client.meta.events.register("after-call.acm.DescribeCertificate", hook)


def progress(s: runner.Session, step: str) -> str:
    return "\n".join(e[2] for e in s.ui.events if e[0] == "progress" and e[1] == step)  # type: ignore[attr-defined]


def count(h: Harness, service: str, op: str) -> int:
    assert h.last is not None
    return h.last.aws.calls.get((service, op), 0)


# -- happy path --------------------------------------------------------------------------------


def test_up_builds_the_edge_a_rerun_writes_nothing_and_status_reports_it(harness: Harness) -> None:
    result = ok(up(harness))
    assert {result.results[n].outcome for n in EDGE_STEPS - {"zone"}} == {Outcome.CREATED}
    zone = result.results["zone"]
    assert zone.outcome is Outcome.UNCHANGED  # found, not created
    elb = harness.client("elbv2")
    lb = elb.describe_load_balancers(Names=["meet-alb"])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing" and lb["Type"] == "application"
    subnets = {result.results[f"subnet-{i}"].id for i in (1, 2)}
    assert {az["SubnetId"] for az in lb["AvailabilityZones"]} == subnets
    assert lb["SecurityGroups"] == [result.results["sg-alb"].id]
    attrs = {
        a["Key"]: a["Value"]
        for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])[
            "Attributes"
        ]
    }
    assert attrs["idle_timeout.timeout_seconds"] == "900"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"

    tg = elb.describe_target_groups(Names=["meet-web"])["TargetGroups"][0]
    # The targets are the routers in the shard tasks; their health is the router's own.
    assert (tg["TargetType"], tg["Protocol"], tg["Port"]) == ("ip", "HTTP", 8080)
    assert tg["HealthCheckPath"] == "/router-health" and tg["HealthCheckProtocol"] == "HTTP"
    assert tg["Matcher"] == {"HttpCode": "200"}
    tg_attrs = elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])
    assert {a["Key"]: a["Value"] for a in tg_attrs["Attributes"]}[
        "deregistration_delay.timeout_seconds"
    ] == "30"

    cert_arn = result.results["certificate"].id
    listeners = {
        x["Port"]: x
        for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["SslPolicy"] == DEFAULT_POLICY
    assert https["Certificates"] == [{"CertificateArn": cert_arn}]
    assert https["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]
    assert listeners[80]["DefaultActions"] == [
        {
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
    ]

    zid = zone_id(harness)
    rrs = records(harness, zid)
    alias = rrs[("meet.example.com.", "A")]["AliasTarget"]
    # The alias names the ALB's own zone, never the public zone.
    assert alias["HostedZoneId"] == lb["CanonicalHostedZoneId"] == MOTO_LB_ZONE != zid
    assert alias["DNSName"].rstrip(".") == lb["DNSName"]
    assert ("meet.example.com.", "AAAA") not in rrs
    cert = harness.client("acm").describe_certificate(CertificateArn=cert_arn)["Certificate"]
    assert cert["Status"] == "ISSUED" and cert["DomainName"] == "meet.example.com"
    cname = cert["DomainValidationOptions"][0]["ResourceRecord"]
    assert rrs[(cname["Name"], "CNAME")]["ResourceRecords"] == [{"Value": cname["Value"]}]

    # Outputs other steps code against.
    s = harness.last
    assert s is not None
    out = s.ctx.outputs
    assert out["zone"].id == zid and out["zone"].attrs["name"] == "example.com"
    assert out["zone"].retained == "zone not created by pcls"
    assert out["alb"].attrs["canonical_zone_id"] == MOTO_LB_ZONE
    assert out["alb"].attrs["arn_suffix"].startswith("app/meet-alb/")
    assert out["alb"].attrs["dns_name"] == lb["DNSName"]
    assert out["target-group"].attrs["arn_suffix"].startswith("targetgroup/meet-web/")
    assert out["dns-record"].id == "meet.example.com"

    # A second up writes nothing and reads each listing once.
    again = ok(up(harness))
    assert harness.writes() == {}
    assert {again.results[n].outcome for n in EDGE_STEPS} == {Outcome.UNCHANGED}
    for service, op in (
        ("route53", "ListHostedZones"),
        ("route53", "ListTagsForResources"),
        ("route53", "ListResourceRecordSets"),
        ("acm", "ListCertificates"),
        ("acm", "DescribeCertificate"),
        ("elbv2", "DescribeLoadBalancers"),
        ("elbv2", "DescribeTargetGroups"),
        ("elbv2", "DescribeTags"),
        ("elbv2", "DescribeListeners"),
    ):
        assert count(harness, service, op) == 1, (service, op)

    # status: certificate, ALB state, health per target, the name's alias.
    harness.client("elbv2").register_targets(
        TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "10.42.0.10", "Port": 8000}]
    )
    status = session(harness).engine.status()
    assert harness.writes() == {}
    assert {status.results[n].outcome for n in EDGE_STEPS} == {Outcome.IN_SYNC}
    cert_details = status.results["certificate"].details
    assert cert_details["status"] == "ISSUED" and len(cert_details["expires"]) == 10
    assert status.results["alb"].details["state"] == "active"
    targets = status.results["target-group"].details
    assert targets == {"healthy": "1/1", "targets": "10.42.0.10:8000 healthy"}
    assert status.results["dns-record"].details["resolves_to_alb"] == "yes"
    assert status.results["zone"].details["owned"] == "no"


# -- drift -------------------------------------------------------------------------------------


def test_drift_is_shown_by_status_and_restored_by_up(harness: Harness) -> None:
    first = ok(up(harness))
    elb = harness.client("elbv2")
    ids = {n: r.id for n, r in first.results.items()}
    elb.modify_listener(
        ListenerArn=ids["listener-https"], SslPolicy="ELBSecurityPolicy-TLS13-1-3-2021-06"
    )
    elb.modify_listener(
        ListenerArn=ids["listener-http"],
        DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_302"}}
        ],
    )
    elb.modify_load_balancer_attributes(
        LoadBalancerArn=ids["alb"],
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"}],
    )
    elb.modify_target_group_attributes(
        TargetGroupArn=ids["target-group"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}],
    )
    harness.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id(harness),
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "meet.example.com.",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "192.0.2.7"}],
                    },
                }
            ]
        },
    )
    status = session(harness).engine.status()
    drift = {n: "; ".join(status.results[n].drift) for n in EDGE_STEPS}
    assert "ssl policy ELBSecurityPolicy-TLS13-1-3-2021-06" in drift["listener-https"]
    assert "redirect HTTP_302" in drift["listener-http"]
    assert "idle_timeout.timeout_seconds 60 -> 900" in drift["alb"]
    assert "deregistration_delay.timeout_seconds 300 -> 30" in drift["target-group"]
    assert "A record points to 192.0.2.7" in drift["dns-record"]
    assert status.results["dns-record"].details["resolves_to_alb"] == "no"

    fixed = ok(up(harness))
    changed = {"listener-https", "listener-http", "alb", "target-group", "dns-record"}
    assert {fixed.results[n].outcome for n in changed} == {Outcome.UPDATED}
    assert harness.writes() == {
        "elbv2:ModifyListener": 2,
        "elbv2:ModifyLoadBalancerAttributes": 1,
        "elbv2:ModifyTargetGroupAttributes": 1,
        "route53:ChangeResourceRecordSets": 1,
    }
    again = session(harness).engine.status()
    assert {again.results[n].outcome for n in EDGE_STEPS} == {Outcome.IN_SYNC}


def test_deleted_record_is_missing_in_status_and_recreated(harness: Harness) -> None:
    ok(up(harness))
    zid = zone_id(harness)
    a = records(harness, zid)[("meet.example.com.", "A")]
    harness.client("route53").change_resource_record_sets(
        HostedZoneId=zid, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": a}]}
    )
    status = session(harness).engine.status()
    assert status.results["dns-record"].outcome is Outcome.MISSING
    assert ok(up(harness)).results["dns-record"].outcome is Outcome.CREATED
    assert ("meet.example.com.", "A") in records(harness, zid)


def test_dual_stack_adds_aaaa_and_turning_it_off_removes_it(harness: Harness) -> None:
    harness.write_config("[network]\ndual_stack = true\n")
    first = ok(up(harness))
    zid = zone_id(harness)
    rrs = records(harness, zid)
    for rtype in ("A", "AAAA"):
        assert rrs[("meet.example.com.", rtype)]["AliasTarget"]["HostedZoneId"] == MOTO_LB_ZONE
    lb = harness.client("elbv2").describe_load_balancers(LoadBalancerArns=[first.results["alb"].id])
    assert lb["LoadBalancers"][0]["IpAddressType"] == "dualstack"

    harness.write_config("")
    second = ok(up(harness))
    assert second.results["dns-record"].outcome is Outcome.UPDATED
    assert ("meet.example.com.", "AAAA") not in records(harness, zid)
    assert ("meet.example.com.", "A") in records(harness, zid)


def test_lost_ledger_keeps_ownership_of_record_and_validation_cname(harness: Harness) -> None:
    ok(up(harness))
    harness.ledger_path.unlink()
    again = ok(up(harness))
    assert harness.writes() == {}
    assert again.results["dns-record"].outcome is Outcome.UNCHANGED
    ok(runner.do_teardown(session(harness)))
    names = {name for name, _ in records(harness, zone_id(harness))}
    assert names == {"example.com."}


# -- teardown ----------------------------------------------------------------------------------


def test_teardown_order_and_the_found_zone_stays(harness: Harness) -> None:
    ok(up(harness))
    zid = zone_id(harness)
    s = session(harness)
    result = ok(runner.do_teardown(s))
    assert result.results["zone"].outcome is Outcome.KEPT
    assert {result.results[n].outcome for n in EDGE_STEPS - {"zone"}} == {Outcome.DELETED}
    assert harness.last is not None
    order = [
        op
        for _, op in harness.last.aws.call_order
        if not op.startswith(("Describe", "List", "Get"))
    ]

    def first(op: str) -> int:
        return order.index(op)

    def last(op: str) -> int:
        return len(order) - 1 - order[::-1].index(op)

    # record → listeners → load balancer; listeners → target group and certificate → CNAME
    assert first("ChangeResourceRecordSets") < first("DeleteListener")
    assert last("DeleteListener") < first("DeleteLoadBalancer")
    # The certificate waits for the HTTPS listener only (the HTTP one may go later).
    events = [e[:2] for e in s.ui.events]  # type: ignore[attr-defined]
    assert events.index(("finish", "listener-https")) < events.index(("start", "certificate"))
    # Each target group waits for the listeners that use it (the wake page's: HTTPS only).
    for listener, group in (
        ("listener-https", "target-group"),
        ("listener-http", "target-group"),
        ("listener-https", "wake-target-group"),
    ):
        assert events.index(("finish", listener)) < events.index(("start", group))
    assert first("DeleteCertificate") < last("ChangeResourceRecordSets")
    assert events.index(("finish", "alb")) < events.index(("start", "sg-alb"))
    assert order.count("ChangeResourceRecordSets") == 2
    assert {(n, t) for n, t in records(harness, zid)} == {
        ("example.com.", "NS"),
        ("example.com.", "SOA"),
    }
    elb = harness.client("elbv2")
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    assert harness.client("acm").list_certificates()["CertificateSummaryList"] == []
    again = ok(runner.do_teardown(session(harness)))
    assert {again.results[n].outcome for n in EDGE_STEPS - {"zone"}} == {Outcome.ABSENT}


def test_resources_in_use_at_teardown_are_retried_until_released(harness: Harness) -> None:
    ok(up(harness))
    s = session(harness)
    tg_calls = raise_on(
        s.aws.client("elbv2"),
        "DeleteTargetGroup",
        "ResourceInUse",
        "Target group 'arn:...' is currently in use by a listener or a rule",
        times=2,
    )
    cert_calls = raise_on(
        s.aws.client("acm"),
        "DeleteCertificate",
        "ResourceInUseException",
        "Certificate arn:... in account 123456789012 is in use.",
        times=2,
    )
    ok(runner.do_teardown(s))
    # two refusals, then the routers' and the wake page's groups go
    assert tg_calls[0] == 4 and cert_calls[0] == 3
    waited = progress(s, "target-group") + progress(s, "wake-target-group")
    assert "to release the" in waited and "target group" in waited
    assert "release the certificate" in progress(s, "certificate")
    assert harness.client("elbv2").describe_target_groups()["TargetGroups"] == []
    assert harness.client("acm").list_certificates()["CertificateSummaryList"] == []
    # The validation CNAME went after the certificate.
    assert {t for _, t in records(harness, zone_id(harness))} == {"NS", "SOA"}


def test_target_group_that_stays_in_use_fails_clearly_and_a_rerun_finishes(
    harness: Harness,
) -> None:
    ok(up(harness))
    s = session(harness)
    raise_on(s.aws.client("elbv2"), "DeleteTargetGroup", "ResourceInUse")
    result = runner.do_teardown(s)
    assert result.failures
    for failed in result.failures:  # the routers' group, the wake page's, or both
        assert failed.step in ("target-group", "wake-target-group")
        assert "ResourceInUse" in failed.detail and "run again once it is released" in failed.detail
    assert len(harness.client("elbv2").describe_target_groups()["TargetGroups"]) == 2
    ok(runner.do_teardown(session(harness)))
    assert harness.client("elbv2").describe_target_groups()["TargetGroups"] == []


def test_certificate_used_by_another_load_balancer_blocks_with_its_name(
    harness: Harness,
) -> None:
    first = ok(up(harness))
    # A load balancer pcls does not know about uses the certificate too.
    elb = harness.client("elbv2")
    other_lb = elb.create_load_balancer(
        Name="other-alb",
        Subnets=[first.results["subnet-1"].id, first.results["subnet-2"].id],
    )["LoadBalancers"][0]["LoadBalancerArn"]
    other = elb.create_listener(
        LoadBalancerArn=other_lb,
        Protocol="HTTPS",
        Port=443,
        SslPolicy=DEFAULT_POLICY,
        Certificates=[{"CertificateArn": first.results["certificate"].id}],
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    result = runner.do_teardown(session(harness))
    failed = result.results["certificate"]
    assert failed.outcome is Outcome.FAILED
    assert "release the certificate" in failed.detail and other in failed.detail
    assert len(harness.client("acm").list_certificates()["CertificateSummaryList"]) == 1


# -- ACM behaviour moto does not show ----------------------------------------------------------


def test_validation_record_published_late_is_waited_for(harness: Harness) -> None:
    s = session(harness)

    def late(cert: dict[str, Any], n: int) -> None:
        if n <= 2:
            cert["Status"] = "PENDING_VALIDATION"
            for opt in cert.get("DomainValidationOptions", []):
                opt.pop("ResourceRecord", None)

    rewrite_certificate(s.aws.client("acm"), late)
    result = ok(runner.do_up(s))
    assert result.results["certificate"].outcome is Outcome.CREATED
    assert "waiting for ACM to publish the DNS validation record" in progress(s, "certificate")
    names = {n for n, t in records(harness, zone_id(harness)) if t == "CNAME"}
    assert len(names) == 1 and next(iter(names)).endswith(".meet.example.com.")


@pytest.fixture
def fake_clock() -> Patience:
    """Waits take no real time: the patience's sleep moves its own clock forward."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return Patience(
        poll_min=2.0,
        poll_max=20.0,
        resource_gone=60,
        service_stable=60,
        sleep=sleep,
        clock=lambda: now[0],
    )


def test_certificate_stuck_pending_times_out_with_a_hint_and_is_reused(
    harness: Harness, fake_clock: Patience, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 10**6)
    harness.write_config("[certificate]\nwait_timeout = 30\n")
    s = session(harness, patience=fake_clock)
    result = runner.do_up(s)
    failed = result.results["certificate"]
    assert failed.outcome is Outcome.FAILED
    assert "gave up waiting for ACM to issue the certificate for meet.example.com" in failed.detail
    assert "after 30s" in failed.detail and "PENDING_VALIDATION" in failed.detail
    assert "delegated" in failed.detail and "CNAME exists" in failed.detail
    assert result.results["listener-https"].outcome is not Outcome.CREATED
    assert "waiting for ACM to issue" in progress(s, "certificate")
    arn = harness.client("acm").list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    # The validation CNAME is in place, so only ACM (or delegation) is left to blame.
    assert any(t == "CNAME" for _, t in records(harness, zone_id(harness)))

    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 0)
    again = ok(up(harness))
    assert count(harness, "acm", "RequestCertificate") == 0
    assert again.results["certificate"].id == arn
    assert again.results["certificate"].outcome is Outcome.UNCHANGED  # issued meanwhile
    assert again.results["listener-https"].outcome is Outcome.CREATED


def test_failed_certificate_is_reported_not_replaced(harness: Harness) -> None:
    ok(up(harness))

    def failed(cert: dict[str, Any], _: int) -> None:
        cert["Status"] = "FAILED"
        cert["FailureReason"] = "CAA_ERROR"

    st = session(harness)
    rewrite_certificate(st.aws.client("acm"), failed)
    status = st.engine.status()
    assert status.results["certificate"].outcome is Outcome.DRIFTED
    assert status.results["certificate"].drift == ["status FAILED (CAA_ERROR)"]
    assert status.results["certificate"].details["status"] == "FAILED"

    s = session(harness)
    rewrite_certificate(s.aws.client("acm"), failed)
    result = runner.do_up(s)
    bad = result.results["certificate"]
    assert bad.outcome is Outcome.FAILED
    assert "FAILED (CAA_ERROR)" in bad.detail and "does not replace" in bad.detail
    assert count(harness, "acm", "RequestCertificate") == 0
    assert harness.writes() == {}
    assert len(harness.client("acm").list_certificates()["CertificateSummaryList"]) == 1


# -- Route 53 behaviour moto does not show -----------------------------------------------------


def test_invalid_change_batch_on_the_name_is_reported(harness: Harness) -> None:
    s = session(harness)
    message = (
        "[RRSet of type A with DNS name meet.example.com. is not permitted because a "
        "conflicting RRSet of type CNAME with the same DNS name already exists in zone "
        "example.com.]"
    )

    def refuse_a(params: dict[str, Any], **_: Any) -> None:
        if any(c["ResourceRecordSet"]["Type"] == "A" for c in params["ChangeBatch"]["Changes"]):
            raise ClientError(
                {"Error": {"Code": "InvalidChangeBatch", "Message": message}},
                "ChangeResourceRecordSets",
            )

    s.aws.client("route53").meta.events.register(
        "before-parameter-build.route53.ChangeResourceRecordSets", refuse_a
    )
    result = runner.do_up(s)
    failed = result.results["dns-record"]
    assert failed.outcome is Outcome.FAILED
    assert "InvalidChangeBatch" in failed.detail and "conflicting RRSet" in failed.detail
    assert "a record pcls did not create may hold this name" in failed.detail
    assert ("meet.example.com.", "A") not in records(harness, zone_id(harness))


def test_record_already_gone_at_teardown_counts_as_done(harness: Harness) -> None:
    ok(up(harness))
    s = session(harness)
    raise_on(
        s.aws.client("route53"),
        "ChangeResourceRecordSets",
        "InvalidChangeBatch",
        "[Tried to delete resource record set [name='meet.example.com.', type='A'] "
        "but it was not found]",
        times=1,
    )
    result = ok(runner.do_teardown(s))
    assert result.results["dns-record"].outcome is Outcome.DELETED


def test_foreign_record_on_the_name_is_refused_before_anything_is_built(
    harness: Harness, capsys: Any
) -> None:
    zid = zone_id(harness)
    harness.client("route53").change_resource_record_sets(
        HostedZoneId=zid,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "meet.example.com",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "192.0.2.10"}],
                    },
                }
            ]
        },
    )
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert "192.0.2.10" in res.err and "pcls did not create" in res.err
    assert (
        harness.client("ec2").describe_vpcs(
            Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}]
        )["Vpcs"]
        == []
    )
    rr = records(harness, zid)[("meet.example.com.", "A")]
    assert rr["ResourceRecords"] == [{"Value": "192.0.2.10"}]


# -- zones -------------------------------------------------------------------------------------


def test_longest_zone_wins_and_private_zones_are_ignored(harness: Harness) -> None:
    sub = harness.make_zone("meet.example.com")
    ec2 = harness.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    harness.client("route53").create_hosted_zone(
        Name="x.meet.example.com",
        CallerReference="private",
        HostedZoneConfig={"PrivateZone": True},
        VPC={"VPCRegion": harness.region, "VPCId": vpc},
    )
    harness.domain = "x.meet.example.com"
    harness.write_config()
    result = ok(up(harness))
    assert result.results["zone"].id == sub
    assert ("x.meet.example.com.", "A") in records(harness, sub)
    assert ("x.meet.example.com.", "A") not in records(harness, zone_id(harness))


def test_no_zone_for_the_domain_exits_2_with_nothing_created(harness: Harness, capsys: Any) -> None:
    harness.domain = "meet.example.org"
    harness.write_config()
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert (
        "no public hosted zone holds meet.example.org; create one or set dns.create_zone = true"
        in res.err
    )
    assert (
        harness.client("ec2").describe_vpcs(
            Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}]
        )["Vpcs"]
        == []
    )


def test_two_public_zones_with_the_winning_name_are_refused(harness: Harness, capsys: Any) -> None:
    first = zone_id(harness)
    second = harness.make_zone("example.com")
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2
    assert first in res.err and second in res.err and "example.com" in res.err


def test_create_zone_prints_ns_and_teardown_deletes_only_that_zone(harness: Harness) -> None:
    harness.write_config("[dns]\ncreate_zone = true\n")
    s = session(harness)
    result = ok(runner.do_up(s))
    assert result.results["zone"].outcome is Outcome.CREATED
    zid = result.results["zone"].id
    assert s.ctx.outputs["zone"].attrs["name"] == "meet.example.com"
    infos = [e[1] for e in s.ui.events if e[0] == "info"]  # type: ignore[attr-defined]
    assert any("meet.example.com" in i and "ns-" in i and "Delegate" in i for i in infos)
    r53 = harness.client("route53")
    tags = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zid)
    assert {t["Key"]: t["Value"] for t in tags["ResourceTagSet"]["Tags"]}["pcls:step"] == "zone"
    rrs = records(harness, zid)
    assert ("meet.example.com.", "A") in rrs
    assert any(t == "CNAME" for _, t in rrs)
    parent = zone_id(harness)
    assert {t for _, t in records(harness, parent)} == {"NS", "SOA"}

    ok(up(harness))
    assert harness.writes() == {}

    # A record someone else added keeps the zone (and is named); once it is gone, so is the zone.
    txt = {
        "Name": "note.meet.example.com.",
        "Type": "TXT",
        "TTL": 60,
        "ResourceRecords": [{"Value": '"hello"'}],
    }
    r53.change_resource_record_sets(
        HostedZoneId=zid, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": txt}]}
    )
    blocked = runner.do_teardown(session(harness))
    assert blocked.results["zone"].outcome is Outcome.FAILED
    assert "note.meet.example.com TXT" in blocked.results["zone"].detail
    assert set(records(harness, zid)) == {
        ("meet.example.com.", "NS"),
        ("meet.example.com.", "SOA"),
        ("note.meet.example.com.", "TXT"),
    }
    r53.change_resource_record_sets(
        HostedZoneId=zid, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": txt}]}
    )
    down = ok(runner.do_teardown(session(harness)))
    assert down.results["zone"].outcome is Outcome.DELETED
    names = {z["Name"] for z in r53.list_hosted_zones()["HostedZones"]}
    assert names == {"example.com."}


@pytest.mark.parametrize(
    ("domain", "extra", "key"),
    [
        ("meet.example.com", '[loadbalancer]\ntls_policy = "ELBSecurityPolicy-2016-08"\n', "tls"),
        ("meet.example.com", '[dns]\nzone = "example.org"\n', "dns.zone"),
        ("Meet..example.com", "", "stack.domain"),
        ("a" * 60 + ".example.com", "", "64"),
    ],
)
def test_invalid_input_exits_2_before_any_write(
    harness: Harness, capsys: Any, domain: str, extra: str, key: str
) -> None:
    harness.domain = domain
    harness.write_config(extra)
    res = harness.cli("up", capsys=capsys)
    assert res.code == 2, res.err
    assert key in res.err
    assert harness.client("acm").list_certificates()["CertificateSummaryList"] == []
    assert (
        harness.client("ec2").describe_vpcs(
            Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}]
        )["Vpcs"]
        == []
    )

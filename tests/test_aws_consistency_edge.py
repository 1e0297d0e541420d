"""What AWS answers in the seconds after a create, injected at the botocore layer.

- EC2 does not know an id it has just returned (InvalidVpcID.NotFound and its kin) for seconds:
  every create or repair call that names one is retried within a bound; in teardown the same
  codes mean "gone" and are never retried.
- An HTTPS listener is refused with CertificateNotFound for minutes after ACM issued the
  certificate.
- A lost answer to RequestCertificate is resent by botocore: the IdempotencyToken makes it the
  same certificate (moto makes a new one on a reused token, so the tests answer the resend as
  AWS does).
- Security-group rules pcls never writes (another group, a prefix list, IPv6) are drift and
  are revoked with AWS's own description of them.
- Dual stack: the aliases target the load balancer's `dualstack.` name, the subnets' IPv6
  ranges are `associated` before the load balancer uses them, the bridges take IPv6 media.

docs/aws-errors.md lists each with its test.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from pcls.engine import RunResult
from pcls.errors import PclsError
from pcls.steps.certificate import TOKEN_LENGTH
from pcls.ui import Outcome
from tests.faults import aws_answer, client_error
from tests.harness import Harness
from tests.inventory import inventory, stack_only
from tests.test_aws_errors import (
    LENIENT,
    ROOMY,
    SHORT,
    nothing_left,
    ok,
    one_line_failure,
    other,
    progress,
    refuse,
    session,
    teardown,
    up,
)

NETWORK = ("route-table", "sg-signal")  # with their dependencies: the whole network
EDGE = ("dns-record", "listener-https", "listener-http")
NETWORK_BUILT = Counter(
    {
        ("vpc", "vpc"): 1,
        ("subnet", "subnet-1"): 1,
        ("subnet", "subnet-2"): 1,
        ("igw", "internet-gateway"): 1,
        ("route-table", "route-table"): 1,
        ("sg", "meet-alb"): 1,
        ("sg", "meet-jvb"): 1,
        ("sg", "meet-signal"): 1,
    }
)


def all_progress(s: Any) -> str:
    events = s.ui.events
    return "\n".join(f"{e[1]}: {e[2]}" for e in events if e[0] == "progress")


def network_only(h: Harness) -> Counter[tuple[str, str]]:
    inv = stack_only(inventory(h.region))
    return Counter({k: n for k, n in inv.items() if k[0] in {t for t, _ in NETWORK_BUILT}})


def stack_group(h: Harness, step: str) -> dict[str, Any]:
    (sg,) = other(h, "ec2").describe_security_groups(
        Filters=[
            {"Name": "tag:pcls:stack", "Values": ["meet"]},
            {"Name": "tag:pcls:step", "Values": [step]},
        ]
    )["SecurityGroups"]
    return sg


# -- EC2: an id seconds old -------------------------------------------------------------------


def vpc_unknown(p: dict[str, Any]) -> str:
    return f"The vpc ID '{p['VpcId']}' does not exist"


def group_unknown(p: dict[str, Any]) -> str:
    return f"The security group '{p['GroupId']}' does not exist"


def subnet_unknown(p: dict[str, Any]) -> str:
    return f"The subnet ID '{p['SubnetId']}' does not exist"


def route_table_unknown(p: dict[str, Any]) -> str:
    return f"The routeTable ID '{p['RouteTableId']}' does not exist"


# (operation, code, AWS's message for the request) for every call of a fresh `up` that names
# an id a create call returned moments before.
SECONDS_OLD = [
    ("CreateSubnet", "InvalidVpcID.NotFound", vpc_unknown),
    ("CreateRouteTable", "InvalidVpcID.NotFound", vpc_unknown),
    ("CreateSecurityGroup", "InvalidVpcID.NotFound", vpc_unknown),
    ("ModifyVpcAttribute", "InvalidVpcID.NotFound", vpc_unknown),
    ("ModifySubnetAttribute", "InvalidSubnetID.NotFound", subnet_unknown),
    ("AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound", group_unknown),
    (
        "AttachInternetGateway",
        "InvalidInternetGatewayID.NotFound",
        lambda p: f"The internetGateway ID '{p['InternetGatewayId']}' does not exist",
    ),
    ("AttachInternetGateway", "InvalidVpcID.NotFound", vpc_unknown),
    ("CreateRoute", "InvalidRouteTableID.NotFound", route_table_unknown),
    (
        "CreateRoute",
        "InvalidGatewayID.NotFound",
        lambda p: f"The gateway ID '{p['GatewayId']}' does not exist",
    ),
    ("AssociateRouteTable", "InvalidRouteTableID.NotFound", route_table_unknown),
    ("AssociateRouteTable", "InvalidSubnetID.NotFound", subnet_unknown),
]


@pytest.mark.parametrize(
    ("operation", "code", "message"),
    SECONDS_OLD,
    ids=[f"{op}-{code}" for op, code, _ in SECONDS_OLD],
)
def test_an_id_ec2_does_not_know_yet_is_retried_and_up_finishes(
    harness: Harness, operation: str, code: str, message: Callable[[dict[str, Any]], str]
) -> None:
    s = session(harness, *NETWORK, patience=ROOMY)
    refused = refuse(s.aws.client("ec2"), operation, code, message, times=2)
    result = ok(up(s))
    assert len(refused) == 2
    assert {r.outcome for r in result.results.values()} == {Outcome.CREATED}
    shown = all_progress(s)
    assert "waiting for EC2 to know" in shown
    assert f"retrying ({code}: {message(refused[0])})" in shown
    assert network_only(harness) == NETWORK_BUILT  # nothing made twice
    again = session(harness, *NETWORK)
    ok(up(again))
    assert harness.writes() == {}


def test_every_seconds_old_refusal_at_once_in_a_full_up_and_teardown_finish_in_one_run(
    harness: Harness,
) -> None:
    s = session(harness)
    ec2 = s.aws.client("ec2")
    refused = {
        (op, code): refuse(ec2, op, code, message, times=1) for op, code, message in SECONDS_OLD
    }
    refused["CreateListener", "CertificateNotFound"] = refuse(
        s.aws.client("elbv2"),
        "CreateListener",
        "CertificateNotFound",
        lambda p: f"Certificate '{p['Certificates'][0]['CertificateArn']}' not found",
        holds=lambda p: p.get("Protocol") == "HTTPS",
        times=1,
    )
    result = ok(up(s))
    assert all(len(r) == 1 for r in refused.values()), {k: len(v) for k, v in refused.items()}
    assert result.results["service-jvb"].outcome is Outcome.CREATED
    ok(teardown(session(harness)))
    nothing_left(harness)


def test_an_id_ec2_never_knows_fails_past_the_bound_in_one_line_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, *NETWORK, patience=SHORT)
    refused = refuse(
        s.aws.client("ec2"),
        "AuthorizeSecurityGroupIngress",
        "InvalidGroup.NotFound",
        group_unknown,
        holds=lambda p: p["IpPermissions"][0].get("FromPort") == 10000,  # sg-jvb's media rule
    )
    result = up(s)
    detail = one_line_failure(s, result, "sg-jvb", capsys)
    group = refused[0]["GroupId"]
    assert detail.startswith(
        "sg-jvb: AuthorizeSecurityGroupIngress failed: InvalidGroup.NotFound: "
        f"The security group '{group}' does not exist (still waiting for EC2 to know the new "
        f"security group {group} after 1s)"
    ), detail
    assert len(refused) >= 2

    rerun = ok(up(session(harness, *NETWORK)))
    assert rerun.results["sg-jvb"].outcome is Outcome.UPDATED  # found; its rule added now
    perms = stack_group(harness, "sg-jvb")["IpPermissions"]
    assert [(p["IpProtocol"], p["FromPort"]) for p in perms] == [("udp", 10000)]


def test_a_removed_egress_rule_is_restored_through_a_group_ec2_does_not_know_yet(
    harness: Harness,
) -> None:
    ok(up(session(harness, *NETWORK)))
    sg = stack_group(harness, "sg-alb")
    other(harness, "ec2").revoke_security_group_egress(
        GroupId=sg["GroupId"], IpPermissions=sg["IpPermissionsEgress"]
    )
    s = session(harness, *NETWORK, patience=ROOMY)
    refused = refuse(
        s.aws.client("ec2"), "AuthorizeSecurityGroupEgress", "InvalidGroup.NotFound",
        group_unknown, times=1,
    )  # fmt: skip
    result = ok(up(s))
    assert len(refused) == 1
    assert result.results["sg-alb"].outcome is Outcome.UPDATED
    assert "egress to anywhere missing" in result.results["sg-alb"].detail
    egress = stack_group(harness, "sg-alb")["IpPermissionsEgress"]
    assert [(p["IpProtocol"], p["IpRanges"][0]["CidrIp"]) for p in egress] == [("-1", "0.0.0.0/0")]


def test_in_teardown_not_found_means_gone_and_is_never_retried(harness: Harness) -> None:
    """Someone deleted each resource between pcls's lookup and its delete call."""
    ok(up(session(harness, *NETWORK)))
    s = session(harness, *NETWORK, patience=LENIENT)
    ec2, theirs = s.aws.client("ec2"), other(harness, "ec2")
    gone: list[str] = []
    deletes = {
        "DeleteSecurityGroup": ("GroupId", "InvalidGroup.NotFound", theirs.delete_security_group),
        "DeleteSubnet": ("SubnetId", "InvalidSubnetID.NotFound", theirs.delete_subnet),
        "DeleteRouteTable": (
            "RouteTableId", "InvalidRouteTableID.NotFound", theirs.delete_route_table,
        ),
        "DeleteInternetGateway": (
            "InternetGatewayId", "InvalidInternetGatewayID.NotFound",
            theirs.delete_internet_gateway,
        ),
        "DeleteVpc": ("VpcId", "InvalidVpcID.NotFound", theirs.delete_vpc),
    }  # fmt: skip
    lock = threading.Lock()

    def remember(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["fault_params"] = dict(params)

    def deleted_meanwhile(model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in deletes:
            return
        key, code, delete = deletes[model.name]
        rid = context["fault_params"][key]
        with lock:
            delete(**{key: rid})
            gone.append(rid)
        raise client_error(code, f"The ID '{rid}' does not exist", model.name)

    ec2.meta.events.register("before-parameter-build", remember)
    ec2.meta.events.register("before-call", deleted_meanwhile)
    result = ok(teardown(s))
    assert len(gone) == 8  # three groups, two subnets, the route table, the gateway, the VPC
    assert {result.results[n].outcome for n in result.results} == {Outcome.DELETED}
    # Each delete sent once per resource: not-found is done, never "not yet".
    sent = {op: s.aws.calls[("ec2", op)] for op in deletes}
    assert sent == {
        "DeleteSecurityGroup": 3,
        "DeleteSubnet": 2,
        "DeleteRouteTable": 1,
        "DeleteInternetGateway": 1,
        "DeleteVpc": 1,
    }
    assert "waiting for EC2 to know" not in all_progress(s)
    nothing_left(harness)


# -- the HTTPS listener and a certificate just issued ------------------------------------------


def refuse_listener(s: Any, **kw: Any) -> list[dict[str, Any]]:
    return refuse(
        s.aws.client("elbv2"),
        "CreateListener",
        "CertificateNotFound",
        lambda p: f"Certificate '{p['Certificates'][0]['CertificateArn']}' not found",
        holds=lambda p: p.get("Protocol") == "HTTPS",
        **kw,
    )


def test_https_listener_refused_for_a_certificate_just_issued_is_retried(
    harness: Harness,
) -> None:
    s = session(harness, *EDGE, patience=ROOMY)
    refused = refuse_listener(s, times=2)
    result = ok(up(s))
    cert = result.results["certificate"].id
    assert len(refused) == 2 and refused[0]["Certificates"] == [{"CertificateArn": cert}]
    assert result.results["listener-https"].outcome is Outcome.CREATED
    shown = progress(s, "listener-https")
    assert (
        "waiting for the load balancer to see the new certificate: retrying "
        f"(CertificateNotFound: Certificate '{cert}' not found)"
    ) in shown
    (listener,) = [
        li
        for li in other(harness, "elbv2").describe_listeners(
            LoadBalancerArn=result.results["alb"].id
        )["Listeners"]
        if li["Port"] == 443
    ]
    assert listener["Certificates"] == [{"CertificateArn": cert}]


def test_https_listener_refused_past_the_bound_fails_in_one_line_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, *EDGE, patience=SHORT)
    refused = refuse_listener(s)
    result = up(s)
    detail = one_line_failure(s, result, "listener-https", capsys)
    cert = result.results["certificate"].id
    assert detail == (
        "listener-https: CreateListener failed: CertificateNotFound: "
        f"Certificate '{cert}' not found (still waiting for the load balancer to see the new "
        "certificate after 1s); run again once it is released"
    )
    assert len(refused) >= 2
    assert result.results["dns-record"].outcome is Outcome.SKIPPED

    rerun = ok(up(session(harness, *EDGE)))
    assert rerun.results["listener-https"].outcome is Outcome.CREATED
    assert rerun.results["dns-record"].outcome is Outcome.CREATED


# -- RequestCertificate resent after a lost answer --------------------------------------------


class LostAnswer:
    """The first RequestCertificate reaches ACM, its answer is lost, botocore sends it again.

    The resend is answered as AWS answers a token it has seen within the hour: with the
    certificate the first attempt made, whatever the emulator would do (moto keeps tokens too,
    but makes a new certificate once the first one's tags changed, and fails on a token whose
    certificate was deleted). A resend with another token goes to the emulator, as a new
    request would.
    """

    def __init__(self, client: Any) -> None:
        self.tokens: list[str] = []
        self.first: dict[str, str] = {}  # token -> ARN
        self._lock = threading.Lock()
        events = client.meta.events
        events.register("before-send.acm.RequestCertificate", self.send)
        events.register("needs-retry.acm.RequestCertificate", self.lost)

    def send(self, request: Any, **_: Any) -> AWSResponse | None:
        token = json.loads(request.body).get("IdempotencyToken", "")
        with self._lock:
            self.tokens.append(token)
            arn = self.first.get(token) if token else None
        if arn is None:
            return None
        request.url = "https://answered-as-aws.invalid/"
        body = json.dumps({"CertificateArn": arn}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "again"}
        return aws_answer(request.url, 200, headers, body)

    def lost(self, response: Any, attempts: int, **_: Any) -> float | None:
        if attempts != 1 or response is None:
            return None
        with self._lock:
            self.first.setdefault(self.tokens[0], response[1]["CertificateArn"])
        return 0.0  # as after a reset connection: botocore tries again at once


def certificates(h: Harness) -> list[str]:
    acm = other(h, "acm")
    summaries = acm.list_certificates()["CertificateSummaryList"]
    return [c["CertificateArn"] for c in summaries if c["DomainName"] == h.domain]


def test_a_resent_certificate_request_is_the_same_certificate(harness: Harness) -> None:
    s = session(harness, "certificate")
    lost = LostAnswer(s.aws.client("acm"))
    result = ok(up(s))
    assert len(lost.tokens) == 2 and lost.tokens[0] == lost.tokens[1]
    token = lost.tokens[0]
    assert len(token) <= TOKEN_LENGTH and re.fullmatch(r"\w+", token)
    assert token.startswith("pcls_meet_")
    assert s.aws.calls[("acm", "RequestCertificate")] == 1  # one call of pcls, two attempts
    (cert,) = certificates(harness)
    assert result.results["certificate"].id == cert == lost.first[token]
    again = ok(up(session(harness, "certificate")))
    assert again.results["certificate"].outcome is Outcome.UNCHANGED
    assert harness.writes() == {}


def test_without_a_token_a_resend_makes_two_and_pcls_refuses_to_guess(harness: Harness) -> None:
    """What the token prevents: a resend without one makes a second certificate with the
    step's tags; pcls then names both instead of picking one."""
    s = session(harness, "certificate")

    def no_token(params: dict[str, Any], **_: Any) -> None:
        params.pop("IdempotencyToken", None)

    def lost(response: Any, attempts: int, **_: Any) -> float | None:
        return 0.0 if attempts == 1 and response is not None else None

    events = s.aws.client("acm").meta.events
    events.register("before-parameter-build.acm.RequestCertificate", no_token)
    events.register("needs-retry.acm.RequestCertificate", lost)
    up(s)
    made = certificates(harness)
    assert len(made) == 2
    harness.ledger_path.unlink()  # the ledger's id breaks a tie; without it, nothing does
    again = session(harness, "certificate")
    with pytest.raises(PclsError) as refused:
        up(again)  # the survey stops it before any write
    text = str(refused.value)
    assert "certificate: 2 resources carry pcls:stack=meet pcls:step=certificate" in text
    assert all(arn in text for arn in made) and "delete the extra one" in text
    assert harness.writes() == {}


def test_each_run_asks_with_its_own_token(harness: Harness) -> None:
    """A token is answered for an hour with what it made: a teardown and an up within the
    hour must not be handed the certificate that teardown deleted."""
    tokens: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        tokens.append(params["IdempotencyToken"])

    for _ in range(2):
        s = session(harness, "certificate")
        s.aws.client("acm").meta.events.register(
            "before-parameter-build.acm.RequestCertificate", seen
        )
        ok(up(s))
        ok(teardown(session(harness, "certificate")))
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert all(t.startswith("pcls_meet_") for t in tokens)


# -- security-group rules pcls never writes ---------------------------------------------------


def test_rules_from_another_group_a_prefix_list_and_ipv6_are_drift_and_revoked(
    harness: Harness,
) -> None:
    built = ok(up(session(harness, *NETWORK)))
    ec2 = other(harness, "ec2")
    vpc = built.results["vpc"].id
    jvb, signal = built.results["sg-jvb"].id, built.results["sg-signal"].id
    outside = ec2.create_security_group(
        GroupName="monitoring", Description="someone else's", VpcId=vpc
    )["GroupId"]
    plist = ec2.create_managed_prefix_list(
        PrefixListName="office", MaxEntries=2, AddressFamily="IPv4",
        Entries=[{"Cidr": "198.51.100.0/24"}],
    )["PrefixList"]["PrefixListId"]  # fmt: skip
    ec2.authorize_security_group_ingress(
        GroupId=jvb,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 9090, "ToPort": 9090,
             "UserIdGroupPairs": [{"GroupId": outside, "Description": "scrape"}]},
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "UserIdGroupPairs": [{"GroupId": signal}]},  # the stack's, not a dependency
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "PrefixListIds": [{"PrefixListId": plist}]},
            {"IpProtocol": "udp", "FromPort": 10000, "ToPort": 10000,
             "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},  # only with network.dual_stack
        ],
    )  # fmt: skip

    status = session(harness, *NETWORK).engine.status()
    drift = status.results["sg-jvb"].drift
    assert sorted(drift) == sorted(
        [
            f"ingress tcp/9090 group:{outside} not in config",
            f"ingress tcp/8080 group:{signal} not in config",
            f"ingress tcp/22 prefix-list:{plist} not in config",
            "ingress udp/10000 cidr6:::/0 not in config",
        ]
    )
    repaired = ok(up(session(harness, *NETWORK)))
    assert repaired.results["sg-jvb"].outcome is Outcome.UPDATED
    perms = stack_group(harness, "sg-jvb")["IpPermissions"]
    assert len(perms) == 1 and perms[0]["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"
    assert not perms[0]["Ipv6Ranges"] and not perms[0]["UserIdGroupPairs"]
    assert not perms[0].get("PrefixListIds")
    # The other group is left alone; a second up writes nothing.
    assert ec2.describe_security_groups(GroupIds=[outside])["SecurityGroups"]
    ok(up(session(harness, *NETWORK)))
    assert harness.writes() == {}


def test_a_rule_naming_a_stack_group_on_the_wrong_port_is_replaced(harness: Harness) -> None:
    built = ok(up(session(harness, *NETWORK)))
    ec2 = other(harness, "ec2")
    signal, alb = built.results["sg-signal"].id, built.results["sg-alb"].id
    ec2.authorize_security_group_ingress(
        GroupId=signal,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443,
                        "UserIdGroupPairs": [{"GroupId": alb}]}],
    )  # fmt: skip
    result = ok(up(session(harness, *NETWORK)))
    assert "ingress tcp/8443 sg:sg-alb not in config" in result.results["sg-signal"].detail
    ports = sorted(p["FromPort"] for p in stack_group(harness, "sg-signal")["IpPermissions"])
    assert ports == [5222, 8000, 8080, 8888]


# -- dual stack --------------------------------------------------------------------------------


def dual_stack(h: Harness) -> None:
    h.write_config("[network]\ndual_stack = true\n")


def aliases(h: Harness, zone_id: str) -> dict[str, str]:
    sets = other(h, "route53").list_resource_record_sets(HostedZoneId=zone_id)
    return {
        rr["Type"]: rr["AliasTarget"]["DNSName"].rstrip(".").lower()
        for rr in sets["ResourceRecordSets"]
        if rr["Name"] == h.domain + "." and rr.get("AliasTarget")
    }


def test_dual_stack_aliases_target_the_dualstack_name_and_bridges_take_ipv6(
    harness: Harness,
) -> None:
    dual_stack(harness)
    result = ok(up(session(harness, *EDGE, "sg-jvb")))
    (lb,) = other(harness, "elbv2").describe_load_balancers()["LoadBalancers"]
    want = f"dualstack.{lb['DNSName'].lower()}"
    assert aliases(harness, result.results["zone"].id) == {"A": want, "AAAA": want}
    media = {
        (p["IpProtocol"], p["FromPort"], r.get("CidrIp") or r.get("CidrIpv6"))
        for p in stack_group(harness, "sg-jvb")["IpPermissions"]
        for r in p["IpRanges"] + p["Ipv6Ranges"]
    }
    assert media == {("udp", 10000, "0.0.0.0/0"), ("udp", 10000, "::/0")}
    subnets = other(harness, "ec2").describe_subnets(
        Filters=[{"Name": "tag:pcls:stack", "Values": ["meet"]}]
    )["Subnets"]
    assert len(subnets) == 2 and all(s["AssignIpv6AddressOnCreation"] for s in subnets)
    ok(up(session(harness, *EDGE, "sg-jvb")))
    assert harness.writes() == {}


def test_an_alias_without_the_dualstack_prefix_is_repaired(harness: Harness) -> None:
    dual_stack(harness)
    built = ok(up(session(harness, *EDGE)))
    zone = built.results["zone"].id
    (lb,) = other(harness, "elbv2").describe_load_balancers()["LoadBalancers"]
    plain = {
        "HostedZoneId": lb["CanonicalHostedZoneId"],
        "DNSName": lb["DNSName"],
        "EvaluateTargetHealth": False,
    }
    other(harness, "route53").change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": {
                "Name": harness.domain, "Type": t, "AliasTarget": plain}}
            for t in ("A", "AAAA")
        ]},
    )  # fmt: skip
    result = ok(up(session(harness, *EDGE)))
    assert result.results["dns-record"].outcome is Outcome.UPDATED
    assert (
        "without the dualstack. prefix AAAA never resolves" in result.results["dns-record"].detail
    )
    want = f"dualstack.{lb['DNSName'].lower()}"
    assert aliases(harness, zone) == {"A": want, "AAAA": want}


class Associating:
    """AWS's AssociateSubnetCidrBlock answers `associating`; the range is usable only once a
    describe shows `associated` (here: after `polls` describes of that subnet)."""

    def __init__(self, client: Any, polls: int) -> None:
        self.polls = polls
        self.seen: Counter[str] = Counter()
        self.associated_at: dict[str, int] = {}
        self.calls: list[str] = []
        self.early: list[str] = []
        self._lock = threading.Lock()
        events = client.meta.events
        events.register("after-call.ec2.AssociateSubnetCidrBlock", self.answer)
        events.register("after-call.ec2.DescribeSubnets", self.describe)
        events.register("before-parameter-build.ec2.AssociateSubnetCidrBlock", self.note)

    def note(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.seen.setdefault(params["SubnetId"], 0)

    def answer(self, parsed: dict[str, Any], **_: Any) -> None:
        assoc = parsed.get("Ipv6CidrBlockAssociation")
        if assoc:
            assoc["Ipv6CidrBlockState"] = {"State": "associating"}

    def describe(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls.append("DescribeSubnets")
            for sub in parsed.get("Subnets", []):
                sid = sub["SubnetId"]
                if sid not in self.seen or not sub.get("Ipv6CidrBlockAssociationSet"):
                    continue
                self.seen[sid] += 1
                if self.seen[sid] <= self.polls:
                    for assoc in sub["Ipv6CidrBlockAssociationSet"]:
                        assoc["Ipv6CidrBlockState"] = {"State": "associating"}
                else:
                    self.associated_at.setdefault(sid, len(self.calls))

    def watch_load_balancer(self, client: Any) -> None:
        def create(params: dict[str, Any], **_: Any) -> None:
            with self._lock:
                self.calls.append("CreateLoadBalancer")
                self.early += [s for s in params["Subnets"] if s not in self.associated_at]

        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(
            f"before-parameter-build.{service_id}.CreateLoadBalancer", create
        )


def test_the_load_balancer_waits_for_the_subnets_ipv6_ranges_to_be_associated(
    harness: Harness,
) -> None:
    dual_stack(harness)
    s = session(harness, "alb", patience=ROOMY)
    assoc = Associating(s.aws.client("ec2"), polls=2)
    assoc.watch_load_balancer(s.aws.client("elbv2"))
    result: RunResult = ok(up(s))
    subnets = [result.results[f"subnet-{i}"].id for i in (1, 2)]
    assert sorted(assoc.seen) == sorted(subnets) and all(assoc.seen[x] > 2 for x in subnets)
    assert assoc.early == [] and "CreateLoadBalancer" in assoc.calls
    created = assoc.calls.index("CreateLoadBalancer") + 1
    assert all(assoc.associated_at[x] < created for x in subnets)
    shown = progress(s, "subnet-1") + progress(s, "subnet-2")
    assert "waiting for the subnets' IPv6 ranges to be associated: associating: subnet-" in shown
    lb = other(harness, "elbv2").describe_load_balancers()["LoadBalancers"][0]
    assert lb["IpAddressType"] == "dualstack"

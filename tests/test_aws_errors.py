"""Real AWS errors that moto never sends, injected at the botocore layer, and how pcls meets them.

Each case is a row of the design's table of real AWS failure modes. The refusal is answered as
AWS answers it (error code and message, and where possible only while the blocking resource
really exists in the emulator); pcls retries within its bound and says why in the progress line,
and past the bound it fails with one line naming what blocks it; a plain re-run then finishes.
Throttling is answered with real HTTP error responses so that botocore's own retry handles it.
docs/aws-errors.md has the table, including the cases other test files already inject.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import botocore.loaders
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

import pcls.steps
from pcls import runner
from pcls.aws import RETRY_ATTEMPTS
from pcls.engine import Engine, Patience, RunResult
from pcls.ui import Outcome
from tests.faults import FailNth, aws_answer, on_every_client
from tests.harness import FAST, Harness
from tests.inventory import inventory, stack_only

REGION = "eu-central-1"
ACCOUNT = "123456789012"
# Runs without a fault: bounds no busy host reaches (waits that end return at once).
LENIENT = replace(
    FAST, dependency_release=30.0, iam_propagation=30.0, service_stable=30.0, resource_gone=30.0
)
# Within-bound cases: room for two refusals and the backoff between them, even on a busy host.
ROOMY = replace(FAST, dependency_release=3.0, iam_propagation=3.0)
# Beyond-bound cases: the refusal never ends, so the bound is what ends the run.
SHORT = replace(FAST, dependency_release=1.0, iam_propagation=1.0, resource_gone=1.0)
FARGATE_ENI = f"arn:aws:ecs:{REGION}:{ACCOUNT}:attachment/3f2a9c1d-5b7e-4c21-9d0a-7e1f2b3c4d5e"


# -- helpers -----------------------------------------------------------------------------------


def other(h: Harness, service: str) -> Any:
    """A client outside pcls's run (someone else, or AWS itself), one per service and test."""
    clients: dict[str, Any] = h.__dict__.setdefault("_other_clients", {})
    if service not in clients:
        clients[service] = h.client(service)
    return clients[service]


def session(h: Harness, *targets: str, patience: Patience = LENIENT) -> runner.Session:
    """A session whose engine holds `targets` and every step they depend on (all when none)."""
    s = h.session(patience=patience)
    if targets:
        every = {st.name: st for st in pcls.steps.build(s.cfg)}
        keep: set[str] = set()
        todo = list(targets)
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo.extend(every[name].depends_on)
        s.engine = Engine(s.ctx, [st for n, st in every.items() if n in keep], parallel=4)
    return s


def up(s: runner.Session) -> RunResult:
    return runner.do_up(s)


def teardown(s: runner.Session) -> RunResult:
    return runner.do_teardown(s)


def ok(result: RunResult) -> RunResult:
    assert result.ok, ([r.detail for r in result.failures], result.remaining)
    return result


def progress(s: runner.Session, step: str) -> str:
    events = s.ui.events  # type: ignore[attr-defined]
    return "\n".join(e[2] for e in events if e[0] == "progress" and e[1] == step)


def one_line_failure(s: runner.Session, result: RunResult, step: str, capsys: Any) -> str:
    """The failed step's error, as the CLI prints it: exit 1 and exactly one line."""
    failed = result.results[step]
    assert failed.outcome is Outcome.FAILED, (step, failed.outcome, failed.detail)
    assert [f.step for f in result.failures] == [step]
    capsys.readouterr()
    assert runner.finish(s, result, "run") == 1
    err = capsys.readouterr().err
    assert err == f"error: {failed.error}\n", err
    assert "\n" not in failed.detail
    return failed.detail


def nothing_left(h: Harness) -> None:
    assert stack_only(inventory(h.region)) == Counter()


def refuse(
    client: Any,
    operation: str,
    code: str,
    message: str | Callable[[dict[str, Any]], str],
    *,
    holds: Callable[[dict[str, Any]], bool] = lambda p: True,
    times: int | None = None,
    released: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Refuse `operation` on `client` as AWS does while `holds(params)`.

    After `times` refusals AWS lets go: `released()` runs once (the blocker goes away) and the
    call goes through. Returns the parameters of the refused calls.
    """
    service = client.meta.service_model.service_name
    refused: list[dict[str, Any]] = []
    state = {"released": False}
    lock = threading.Lock()

    def mine(model: Any) -> bool:
        return model.name == operation and model.service_model.service_name == service

    def remember(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if mine(model):
            context["fault_params"] = dict(params)  # per request, whichever thread sends it

    def check(model: Any, context: dict[str, Any], **_: Any) -> None:
        if not mine(model):
            return
        params = context.get("fault_params", {})
        with lock:
            if times is not None and len(refused) >= times:
                if not state["released"]:
                    state["released"] = True
                    released()
                return
            if not holds(params):
                return
            refused.append(params)
        text = message(params) if callable(message) else message
        raise ClientError({"Error": {"Code": code, "Message": text}}, operation)

    client.meta.events.register("before-parameter-build", remember)
    client.meta.events.register("before-call", check)
    return refused


# -- security groups and the internet gateway while ENIs linger -------------------------------


def lingering_eni(h: Harness, result: RunResult) -> str:
    """A Fargate bridge's network interface, left behind after its task stopped."""
    return other(h, "ec2").create_network_interface(
        SubnetId=result.results["subnet-1"].id,
        Groups=[result.results["sg-jvb"].id],
        Description=FARGATE_ENI,
    )["NetworkInterface"]["NetworkInterfaceId"]


def enis_with(h: Harness, name: str, value: str) -> list[str]:
    found = other(h, "ec2").describe_network_interfaces(Filters=[{"Name": name, "Values": [value]}])
    return [e["NetworkInterfaceId"] for e in found["NetworkInterfaces"]]


def refuse_sg_while_used(h: Harness, s: runner.Session, **kw: Any) -> list[dict[str, Any]]:
    return refuse(
        s.aws.client("ec2"),
        "DeleteSecurityGroup",
        "DependencyViolation",
        lambda p: f"resource {p['GroupId']} has a dependent object",
        holds=lambda p: bool(enis_with(h, "group-id", p["GroupId"])),
        **kw,
    )


def refuse_detach_while_mapped(h: Harness, s: runner.Session, **kw: Any) -> list[dict[str, Any]]:
    return refuse(
        s.aws.client("ec2"),
        "DetachInternetGateway",
        "DependencyViolation",
        lambda p: (
            f"Network {p['VpcId']} has some mapped public address(es). Please unmap those "
            "public address(es) before detaching the gateway."
        ),
        holds=lambda p: bool(enis_with(h, "vpc-id", p["VpcId"])),
        **kw,
    )


def release(h: Harness, eni: str) -> Callable[[], None]:
    return lambda: other(h, "ec2").delete_network_interface(NetworkInterfaceId=eni)


NETWORK = ("route-table", "sg-signal")  # with their dependencies: the whole network


def test_security_group_waits_for_a_lingering_eni_and_names_it(harness: Harness) -> None:
    built = ok(up(session(harness, *NETWORK)))
    eni = lingering_eni(harness, built)
    s = session(harness, *NETWORK, patience=ROOMY)
    refused = refuse_sg_while_used(harness, s, times=2, released=release(harness, eni))
    result = ok(teardown(s))
    assert [p["GroupId"] for p in refused] == [built.results["sg-jvb"].id] * 2
    assert result.results["sg-jvb"].outcome is Outcome.DELETED
    shown = progress(s, "sg-jvb")
    assert "waiting for network interfaces using the group to be released" in shown
    assert "DependencyViolation" in shown and f"blocked by {eni} ({FARGATE_ENI})" in shown
    nothing_left(harness)


def test_security_group_held_past_the_bound_fails_naming_the_eni_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    built = ok(up(session(harness, *NETWORK)))
    eni = lingering_eni(harness, built)
    s = session(harness, *NETWORK, patience=SHORT)
    refused = refuse_sg_while_used(harness, s)
    result = teardown(s)
    detail = one_line_failure(s, result, "sg-jvb", capsys)
    group = built.results["sg-jvb"].id
    assert detail.startswith("sg-jvb: DeleteSecurityGroup failed: DependencyViolation: ")
    assert f"resource {group} has a dependent object" in detail
    assert f"blocked by {eni} ({FARGATE_ENI})" in detail
    assert "after 1s" in detail and "run again once it is released" in detail
    assert len(refused) >= 2 and "blocked by " + eni in progress(s, "sg-jvb")
    assert result.results["vpc"].outcome is Outcome.SKIPPED
    assert enis_with(harness, "group-id", group) == [eni]

    other(harness, "ec2").delete_network_interface(NetworkInterfaceId=eni)  # AWS lets go
    again = session(harness, *NETWORK, patience=SHORT)
    refuse_sg_while_used(harness, again)
    rerun = ok(teardown(again))
    assert rerun.results["sg-jvb"].outcome is Outcome.DELETED
    assert rerun.results["vpc"].outcome is Outcome.DELETED
    nothing_left(harness)


def test_gateway_detach_waits_while_public_addresses_are_mapped(harness: Harness) -> None:
    built = ok(up(session(harness, *NETWORK)))
    eni = lingering_eni(harness, built)
    s = session(harness, *NETWORK, patience=ROOMY)
    refused = refuse_detach_while_mapped(harness, s, times=2, released=release(harness, eni))
    result = ok(teardown(s))
    assert len(refused) == 2
    assert result.results["internet-gateway"].outcome is Outcome.DELETED
    shown = progress(s, "internet-gateway")
    assert "waiting for public addresses in the VPC to be released" in shown
    assert "has some mapped public address(es)" in shown and f"blocked by {eni}" in shown
    nothing_left(harness)


def test_gateway_detach_refused_past_the_bound_names_the_eni_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    built = ok(up(session(harness, *NETWORK)))
    eni = lingering_eni(harness, built)
    s = session(harness, *NETWORK, patience=SHORT)
    refuse_detach_while_mapped(harness, s)
    result = teardown(s)
    detail = one_line_failure(s, result, "internet-gateway", capsys)
    assert detail.startswith("internet-gateway: DetachInternetGateway failed: DependencyViolation")
    assert f"Network {built.results['vpc'].id} has some mapped public address(es)" in detail
    assert f"blocked by {eni}" in detail and "run again once it is released" in detail
    assert "mapped public address(es)" in progress(s, "internet-gateway")
    mine = [{"Name": "tag:pcls:stack", "Values": ["meet"]}]
    igws = other(harness, "ec2").describe_internet_gateways(Filters=mine)["InternetGateways"]
    assert [a["VpcId"] for g in igws for a in g["Attachments"]] == [built.results["vpc"].id]

    other(harness, "ec2").delete_network_interface(NetworkInterfaceId=eni)
    again = session(harness, *NETWORK, patience=SHORT)
    refuse_detach_while_mapped(harness, again)
    assert ok(teardown(again)).results["internet-gateway"].outcome is Outcome.DELETED
    nothing_left(harness)


# -- certificate still in use ------------------------------------------------------------------


EDGE = ("dns-record", "listener-https", "listener-http")


def test_certificate_in_use_past_the_bound_fails_naming_it_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    built = ok(up(session(harness, *EDGE)))
    cert = built.results["certificate"].id
    s = session(harness, *EDGE, patience=SHORT)
    refuse(
        s.aws.client("acm"),
        "DeleteCertificate",
        "ResourceInUseException",
        lambda p: f"Certificate {p['CertificateArn']} in account {ACCOUNT} is in use.",
    )
    result = teardown(s)
    detail = one_line_failure(s, result, "certificate", capsys)
    assert f"ResourceInUseException: Certificate {cert} in account {ACCOUNT} is in use." in detail
    assert "release the certificate after 1s" in detail and "run again" in detail
    assert "release the certificate: retrying (ResourceInUseException" in progress(s, "certificate")
    assert result.results["listener-https"].outcome is Outcome.DELETED  # the user went first
    assert [c["CertificateArn"] for c in other(harness, "acm").list_certificates()[
        "CertificateSummaryList"
    ]] == [cert]  # fmt: skip

    rerun = ok(teardown(session(harness, *EDGE)))
    assert rerun.results["certificate"].outcome is Outcome.DELETED
    nothing_left(harness)  # the validation CNAME went with it


# -- Route 53: a record that appeared between the lookup and the write -------------------------


def test_records_written_by_someone_meanwhile_are_upserted_not_refused(harness: Harness) -> None:
    s = session(harness, *EDGE)
    r53 = other(harness, "route53")
    raced: list[str] = []

    def someone_writes_first(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != "ChangeResourceRecordSets":
            return
        for change in params["ChangeBatch"]["Changes"]:
            if change["Action"] == "DELETE":
                continue
            rr = change["ResourceRecordSet"]
            r53.change_resource_record_sets(
                HostedZoneId=params["HostedZoneId"],
                ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": rr}]},
            )
            raced.append(f"{rr['Name']} {rr['Type']}")

    s.aws.client("route53").meta.events.register("before-parameter-build", someone_writes_first)
    result = ok(up(s))
    # A CREATE would have met "InvalidChangeBatch ... but it already exists"; UPSERT converges.
    assert any(r.endswith(" CNAME") for r in raced) and "meet.example.com. A" in raced
    assert result.results["dns-record"].outcome is Outcome.CREATED
    zone = result.results["zone"].id
    sets = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert Counter(rr["Type"] for rr in sets) == Counter(NS=1, SOA=1, CNAME=1, A=1)


# -- ECS: a service of the same name still draining --------------------------------------------


def test_service_still_draining_past_the_bound_fails_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "service-signal", patience=SHORT)
    refused = refuse(
        s.aws.client("ecs"),
        "CreateService",
        "InvalidParameterException",
        "Unable to Start a service that is still Draining.",
        holds=lambda p: p.get("serviceName") == "shard-a",
    )
    result = up(s)
    detail = one_line_failure(s, result, "service-signal", capsys)
    assert "InvalidParameterException: Unable to Start a service that is still Draining." in detail
    assert "still waiting for the previous shard-a service to finish draining after 1s" in detail
    assert "run again once it is released" in detail
    assert len(refused) >= 2
    assert "previous shard-a service to finish draining: retrying" in progress(s, "service-signal")
    ecs = other(harness, "ecs")
    assert ecs.describe_services(cluster="meet", services=["shard-a"])["services"] == []

    again = session(harness, "service-signal")
    assert ok(up(again)).results["service-signal"].outcome is Outcome.CREATED
    (svc,) = ecs.describe_services(cluster="meet", services=["shard-a"])["services"]
    assert svc["status"] == "ACTIVE"


# -- ECS: the service-linked role of a fresh account -------------------------------------------

SLR_ERROR = (
    "Unable to assume the service linked role. Please verify that the ECS service linked role "
    "exists."
)


def refuse_providers(s: runner.Session, **kw: Any) -> list[dict[str, Any]]:
    return refuse(
        s.aws.client("ecs"),
        "PutClusterCapacityProviders",
        "InvalidParameterException",
        SLR_ERROR,
        **kw,
    )


def providers(h: Harness) -> list[str]:
    (cluster,) = other(h, "ecs").describe_clusters(clusters=["meet"])["clusters"]
    return sorted(cluster.get("capacityProviders") or [])


def test_service_linked_role_not_yet_usable_is_retried(harness: Harness) -> None:
    s = session(harness, "cluster", patience=ROOMY)
    refused = refuse_providers(s, times=2)
    result = ok(up(s))
    assert len(refused) == 2 and result.results["cluster"].outcome is Outcome.CREATED
    assert "waiting for the ECS service-linked role: retrying (InvalidParameterException" in (
        progress(s, "cluster")
    )
    assert providers(harness) == ["FARGATE", "FARGATE_SPOT"]


def test_service_linked_role_past_the_bound_fails_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "cluster", patience=SHORT)
    refuse_providers(s)
    result = up(s)
    detail = one_line_failure(s, result, "cluster", capsys)
    assert detail.startswith("cluster: PutClusterCapacityProviders failed: ")
    assert (
        SLR_ERROR in detail and "still waiting for the ECS service-linked role after 1s" in detail
    )
    assert "run again" in detail
    assert "waiting for the ECS service-linked role: retrying" in progress(s, "cluster")
    assert providers(harness) == []  # the cluster exists, its providers do not yet

    rerun = ok(up(session(harness, "cluster")))
    assert rerun.results["cluster"].outcome is Outcome.UPDATED
    assert providers(harness) == ["FARGATE", "FARGATE_SPOT"]


# -- throttling: botocore's standard retry, fed real HTTP error responses ----------------------


THROTTLES = {
    # operation: (service, status, content type, body) as each protocol sends the error
    "CreateVpc": (
        "ec2",
        503,
        "text/xml;charset=UTF-8",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        b"</Error></Errors><RequestID>5f0c7a4e-throttled</RequestID></Response>",
    ),
    "CreateCluster": (
        "ecs",
        400,
        "application/x-amz-json-1.1",
        b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
    ),
    "CreateLogGroup": (
        "logs",
        429,
        "application/x-amz-json-1.1",
        b'{"__type":"TooManyRequestsException","message":"Too Many Requests"}',
    ),
}


class Throttle:
    """Answer the first `times` attempts of an operation with AWS's throttling response.

    A `before-send` handler that returns a response short-circuits the HTTP send, so the answer
    goes through botocore's parsing and retry exactly as one from AWS would. The throttled
    attempt is pointed away from the emulator (whose handler runs after this one), as a
    throttled request never reaches the service.
    """

    def __init__(self, client: Any, operation: str, times: int) -> None:
        self.operation = operation
        self.times = times
        self.attempts = 0
        self._lock = threading.Lock()
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-send.{service_id}.{operation}", self.send)

    def send(self, request: Any, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.attempts += 1
            if self.attempts > self.times:
                return None
        _, status, content_type, body = THROTTLES[self.operation]
        request.url = "https://throttled.invalid/"
        headers = {"Content-Type": content_type, "x-amzn-RequestId": "throttled"}
        return aws_answer(request.url, status, headers, body)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's standard backoff, recorded and not slept (it reaches 20 s per attempt)."""
    delays: list[float] = []
    original = botocore.retries.standard.ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        delays.append(original(self, context))
        return 0.0

    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", delay_amount)
    return delays


def test_throttling_bursts_are_retried_by_botocore_not_by_pcls(
    harness: Harness, backoff: list[float]
) -> None:
    s = session(harness, "vpc", "log-group")
    throttles = {
        op: Throttle(s.aws.client(service), op, times=2) for op, (service, *_) in THROTTLES.items()
    }
    for service in ("ec2", "ecs", "logs"):
        retries = s.aws.client(service).meta.config.retries
        assert retries == {"mode": "standard", "total_max_attempts": RETRY_ATTEMPTS + 1}
    assert RETRY_ATTEMPTS == 10
    result = ok(up(s))
    assert {op: t.attempts for op, t in throttles.items()} == dict.fromkeys(THROTTLES, 3)
    # pcls made each call once: the two extra attempts each were botocore's.
    for op, (service, *_) in THROTTLES.items():
        assert s.aws.calls[(service, op)] == 1, op
    assert len(backoff) == 6 and all(0 <= d <= 2 for d in backoff)
    assert {result.results[n].outcome for n in ("vpc", "cluster", "log-group")} == {Outcome.CREATED}
    inv = stack_only(inventory(harness.region))
    assert (inv["vpc", "vpc"], inv["cluster", "meet"], inv["log-group", "/pcls/meet"]) == (1, 1, 1)
    # Nothing of pcls's own waited or retried: no progress line mentions the throttling.
    events = s.ui.events  # type: ignore[attr-defined]
    assert not [e for e in events if e[0] == "progress" and "Throttl" in e[2]]


def test_throttling_past_botocores_attempts_fails_in_one_line_then_a_rerun_finishes(
    harness: Harness, backoff: list[float], capsys: Any
) -> None:
    s = session(harness, "cluster")
    throttle = Throttle(s.aws.client("ecs"), "CreateCluster", times=1000)
    result = up(s)
    detail = one_line_failure(s, result, "cluster", capsys)
    assert detail == "cluster: CreateCluster failed: ThrottlingException: Rate exceeded"
    assert throttle.attempts == RETRY_ATTEMPTS + 1 and s.aws.calls[("ecs", "CreateCluster")] == 1
    assert other(harness, "ecs").list_clusters()["clusterArns"] == []

    again = session(harness, "cluster")
    assert ok(up(again)).results["cluster"].outcome is Outcome.CREATED


# -- Cloud Map: asynchronous operations --------------------------------------------------------


def operation_pending(s: runner.Session, times: int) -> list[str]:
    """GetOperation reports SUBMITTED, then PENDING, for the first `times` polls."""
    answered: list[str] = []

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if "Operation" in parsed and len(answered) < times:
            parsed["Operation"]["Status"] = "SUBMITTED" if not answered else "PENDING"
            answered.append(parsed["Operation"]["Id"])

    s.aws.client("servicediscovery").meta.events.register(
        "after-call.servicediscovery.GetOperation", rewrite
    )
    return answered


def test_cloud_map_operation_pending_is_polled_until_it_succeeds(harness: Harness) -> None:
    s = session(harness, "namespace", patience=ROOMY)
    answered = operation_pending(s, times=3)
    result = ok(up(s))
    assert len(answered) == 3 and s.aws.calls[("servicediscovery", "GetOperation")] == 4
    assert result.results["namespace"].outcome is Outcome.CREATED
    shown = progress(s, "namespace")
    assert "waiting for the namespace to be created: submitted" in shown
    assert "waiting for the namespace to be created: pending" in shown


def test_cloud_map_operation_pending_past_the_bound_fails_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    s = session(harness, "namespace", patience=SHORT)
    operation_pending(s, times=10_000)
    result = up(s)
    detail = one_line_failure(s, result, "namespace", capsys)
    assert detail.startswith("namespace: gave up waiting for the namespace to be created after 1s")
    assert "(last state: pending)" in detail
    assert "waiting for the namespace to be created: pending" in progress(s, "namespace")

    again = session(harness, "namespace")
    rerun = ok(up(again))
    assert rerun.results["namespace"].outcome is Outcome.UNCHANGED  # found by its tags
    assert again.aws.calls.get(("servicediscovery", "CreatePrivateDnsNamespace"), 0) == 0
    names = [n["Name"] for n in other(harness, "servicediscovery").list_namespaces()["Namespaces"]]
    assert names == ["meet.internal"]


def test_cloud_map_operation_timeout_names_the_operation(harness: Harness) -> None:
    s = session(harness, "namespace", patience=SHORT)
    answered = operation_pending(s, times=10_000)
    result = up(s)
    detail = result.results["namespace"].detail
    assert answered and answered[0] in detail and "run again" in detail


def foreign_service(h: Harness) -> tuple[str, str]:
    """Someone else's service in the stack's namespace (the xmpp one is pcls's)."""
    sd = other(h, "servicediscovery")
    (ns,) = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "meet.internal"]
    svc = sd.create_service(Name="recorder", NamespaceId=ns["Id"], DnsConfig={
        "DnsRecords": [{"Type": "A", "TTL": 60}]
    })["Service"]  # fmt: skip
    return ns["Id"], svc["Id"]


def refuse_namespace_with_services(h: Harness, s: runner.Session) -> list[dict[str, Any]]:
    sd = other(h, "servicediscovery")

    def services_in(params: dict[str, Any]) -> bool:
        flt = [{"Name": "NAMESPACE_ID", "Values": [params["Id"]], "Condition": "EQ"}]
        return bool(sd.list_services(Filters=flt)["Services"])

    return refuse(
        s.aws.client("servicediscovery"),
        "DeleteNamespace",
        "ResourceInUse",
        "Namespace has associated services, please delete the services first",
        holds=services_in,
    )


def test_namespace_with_a_service_left_fails_after_the_bound_then_a_rerun_finishes(
    harness: Harness, capsys: Any
) -> None:
    ok(up(session(harness, "discovery-xmpp")))
    _, svc_id = foreign_service(harness)
    s = session(harness, "discovery-xmpp", patience=SHORT)
    refused = refuse_namespace_with_services(harness, s)
    result = teardown(s)
    detail = one_line_failure(s, result, "namespace", capsys)
    assert detail.startswith("namespace: DeleteNamespace failed: ResourceInUse: Namespace has")
    assert "waiting for the namespace's services to go after 1s" in detail
    assert "run again once it is released" in detail
    assert len(refused) >= 2 and "services to go: retrying (ResourceInUse" in progress(
        s, "namespace"
    )
    assert result.results["discovery-xmpp"].outcome is Outcome.DELETED  # its own went first

    other(harness, "servicediscovery").delete_service(Id=svc_id)
    again = session(harness, "discovery-xmpp")
    refuse_namespace_with_services(harness, again)
    assert ok(teardown(again)).results["namespace"].outcome is Outcome.DELETED
    nothing_left(harness)


def test_namespace_refusal_names_the_service_left(harness: Harness) -> None:
    ok(up(session(harness, "discovery-xmpp")))
    _, svc_id = foreign_service(harness)
    s = session(harness, "discovery-xmpp", patience=SHORT)
    refuse_namespace_with_services(harness, s)
    detail = teardown(s).results["namespace"].detail
    assert "recorder" in detail or svc_id in detail


# -- Application Auto Scaling: target gone with the service ------------------------------------


def test_scaling_target_and_policies_already_gone_count_as_deleted(harness: Harness) -> None:
    ok(up(session(harness, "scaling-policies", "scaling-schedule")))
    aas = other(harness, "application-autoscaling")
    target = {
        "ServiceNamespace": "ecs",
        "ResourceId": "service/meet/jvb",
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    s = session(harness, "scaling-policies", "scaling-schedule")
    client = s.aws.client("application-autoscaling")
    where = "service namespace: ecs, resource ID: service/meet/jvb, scalable dimension: "
    where += "ecs:service:DesiredCount"

    def policy_gone(params: dict[str, Any]) -> bool:
        # As when the ECS service went first and took its target and policies with it.
        aas.delete_scaling_policy(PolicyName=params["PolicyName"], **target)
        return True

    def target_gone(params: dict[str, Any]) -> bool:
        aas.deregister_scalable_target(**target)
        return True

    policies = refuse(
        client,
        "DeleteScalingPolicy",
        "ObjectNotFoundException",
        lambda p: f"No scaling policy found for {where}, policy name: {p['PolicyName']}",
        holds=policy_gone,
    )
    targets = refuse(
        client,
        "DeregisterScalableTarget",
        "ObjectNotFoundException",
        f"No scalable target registered for {where}",
        holds=target_gone,
    )
    result = ok(teardown(s))
    assert len(policies) == 2 and len(targets) == 1
    for step in ("scaling-policies", "scaling-target"):
        assert result.results[step].outcome is Outcome.DELETED, step
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    nothing_left(harness)


# -- CloudWatch Logs: the group appears between find and create --------------------------------


def log_group_created_meanwhile(h: Harness, s: runner.Session) -> list[str]:
    """Someone creates the group just before pcls's CreateLogGroup; returns AWS's answers."""
    logs = other(h, "logs")
    answers: list[str] = []

    def first(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "CreateLogGroup":
            logs.create_log_group(logGroupName=params["logGroupName"])

    def answer(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name == "CreateLogGroup":
            answers.append(parsed.get("Error", {}).get("Code", "ok"))

    client = s.aws.client("logs")
    client.meta.events.register("before-parameter-build", first)
    client.meta.events.register("after-call", answer)
    return answers


def test_log_group_created_meanwhile_by_someone_else_stops_up_and_is_never_adopted(
    harness: Harness,
) -> None:
    s = session(harness, "log-group")
    answers = log_group_created_meanwhile(harness, s)
    result = up(s)
    assert answers == ["ResourceAlreadyExistsException"]
    failed = result.results["log-group"]
    assert failed.outcome is Outcome.FAILED
    assert getattr(failed.error, "exit_code", None) == 2
    assert "created by someone else meanwhile" in str(failed.error)
    assert "pcls adopt log-group /pcls/meet" in str(failed.error)
    logs = other(harness, "logs")
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/pcls/meet")["logGroups"]
    assert "retentionInDays" not in group  # theirs: no retention set, no tags written
    assert logs.list_tags_log_group(logGroupName="/pcls/meet")["tags"] == {}

    gone = ok(teardown(session(harness, "log-group")))
    assert gone.results["log-group"].outcome is Outcome.ABSENT
    assert logs.describe_log_groups(logGroupNamePrefix="/pcls/meet")["logGroups"]  # left alone


# -- teardown of a half-built stack and of a stack whose ledger is gone ------------------------


def test_teardown_of_a_half_built_stack_leaves_nothing(harness: Harness) -> None:
    stop = FailNth("CreateListener", times=1000, code="ValidationError", message="stop here")
    with on_every_client(stop.register):
        half = harness.up(patience=LENIENT)
    assert not half.ok and stop.raised >= 1
    assert {f.step for f in half.failures} <= {"listener-https", "listener-http"}
    assert half.results["service-signal"].outcome is Outcome.SKIPPED
    built = stack_only(inventory(harness.region))
    assert built["alb", "meet-alb"] == 1 and built["vpc", "vpc"] == 1
    assert ("service", "shard-a") not in built  # it needs the HTTP listener's forward rule

    result = ok(harness.teardown(patience=LENIENT))
    outcomes = Counter(r.outcome for r in result.results.values())
    assert outcomes[Outcome.DELETED] >= 10 and outcomes[Outcome.ABSENT] >= 5
    nothing_left(harness)


def test_teardown_without_the_ledger_finds_everything_by_tags(harness: Harness) -> None:
    built = ok(harness.up(patience=LENIENT))
    order = [f"{svc}:{op}" for svc, op in harness.last.aws.call_order]  # type: ignore[union-attr]
    # Creation order that avoids AWS's refusals: the target group is on a listener before the
    # service uses it, and the scalable target exists before its policies.
    assert order.index("elbv2:CreateListener") < order.index("ecs:CreateService")
    assert order.index("application-autoscaling:RegisterScalableTarget") < order.index(
        "application-autoscaling:PutScalingPolicy"
    )
    harness.ledger_path.unlink()
    result = ok(harness.teardown(patience=LENIENT))
    for name, step in built.results.items():
        if step.outcome is Outcome.CREATED:
            assert result.results[name].outcome is Outcome.DELETED, name
    events = [e[:2] for e in harness.last.ui.events]  # type: ignore[union-attr]

    def before(first: str, then: str) -> bool:
        return events.index(("finish", first)) < events.index(("start", then))

    # services -> ALB -> security groups -> subnets -> VPC, each after what holds it
    assert before("service-signal", "listener-http") and before("listener-https", "alb")
    assert before("service-jvb", "sg-jvb") and before("service-signal", "sg-signal")
    assert before("alb", "sg-alb") and before("alb", "subnet-1")
    assert all(before(n, "vpc") for n in ("sg-alb", "subnet-2", "internet-gateway"))
    nothing_left(harness)


def test_gateway_is_detached_only_after_the_alb_and_the_services_are_gone(
    harness: Harness,
) -> None:
    ok(harness.up(patience=LENIENT))
    s = session(harness)
    ecs = s.aws.client("ecs")
    since: list[float] = []

    def draining(parsed: dict[str, Any], **_: Any) -> None:
        # Deleted services drain for a while on AWS; moto makes them INACTIVE at once.
        for svc in parsed.get("services", []):
            if svc.get("status") == "INACTIVE":
                since.append(since[0] if since else time.monotonic())
                if time.monotonic() - since[0] < 0.5:
                    svc["status"] = "DRAINING"

    ecs.meta.events.register("after-call.ecs.DescribeServices", draining)
    refused = refuse(
        s.aws.client("ec2"),
        "DetachInternetGateway",
        "DependencyViolation",
        "Network has some mapped public address(es). Please unmap those public address(es) "
        "before detaching the gateway.",
        holds=lambda p: bool(other(harness, "elbv2").describe_load_balancers()["LoadBalancers"]),
    )
    result = ok(teardown(s))
    events = [e[:2] for e in s.ui.events]  # type: ignore[attr-defined]
    for blocker in ("alb", "service-signal", "service-jvb"):
        assert events.index(("finish", blocker)) < events.index(("start", "route-table"))
    assert refused == [], progress(s, "internet-gateway")
    assert result.results["internet-gateway"].outcome is Outcome.DELETED

"""A time model for moto: AWS round trips and the state transitions that take time on AWS.

moto answers every call at once and every resource is ready when its create call returns. This
module makes it behave like AWS in time. Every botocore client created while `TimeModel.installed()`
is active (pcls creates all of its clients through botocore's Session.create_client) gets:

- a `before-call` handler that sleeps the round trip;
- `after-call` handlers that record creates and deletes and rewrite describe answers, so a load
  balancer reads "provisioning", a certificate PENDING_VALIDATION (first without its validation
  record), a Cloud Map operation PENDING, a new service "0 running, 1 pending, IN_PROGRESS" and a
  deleted one DRAINING until their modelled duration has passed;
- `before-call` handlers, registered after pcls's call counter, that raise the errors AWS gives
  while a transition is incomplete: CreateService while ECS cannot assume a new task role yet,
  and DeleteSecurityGroup / DeleteSubnet / DetachInternetGateway / DeleteVpc while network
  interfaces of a load balancer or of a service's tasks are not yet released.

Durations are given in real AWS seconds (`Durations`) and divided by one `scale` factor, the
round trip included, so their ratios stay as on AWS. The model also records which pcls step
started which transition (through `step_of`, usually `aws.current_step`), which the latency
benchmark uses to compute the critical-path bound from the step graph.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any
from unittest import mock

import botocore.session

ENI_GUARDED = {
    "DeleteSecurityGroup": "GroupId",
    "DeleteSubnet": "SubnetId",
    "DetachInternetGateway": "VpcId",
    "DeleteVpc": "VpcId",
}


@dataclass(frozen=True)
class Durations:
    """Real AWS seconds, before scaling. benchmarks/README.md names the source of each."""

    round_trip: float = 0.1  # one API call, request to parsed answer
    alb_active: float = 180.0  # CreateLoadBalancer -> State active
    acm_record: float = 10.0  # RequestCertificate -> validation CNAME published
    acm_issued: float = 300.0  # RequestCertificate -> ISSUED (DNS validation, zone delegated)
    namespace: float = 60.0  # Cloud Map private DNS namespace create/delete operation
    ecs_signal: float = 180.0  # a signal shard: its task running and healthy behind the ALB
    ecs_jvb: float = 120.0  # bridge service: tasks running
    ecs_drain: float = 60.0  # DeleteService -> INACTIVE (deregistration delay + stop)
    iam: float = 10.0  # CreateRole -> role assumable by ECS
    eni_release: float = 300.0  # owner gone -> its network interfaces released

    def without_transitions(self) -> Durations:
        """Same round trip, every state transition instantaneous (calibration run)."""
        return replace(self, **{f.name: 0.0 for f in fields(self) if f.name != "round_trip"})

    @staticmethod
    def ecs_key(service: str) -> str:
        return "ecs_jvb" if service == "jvb" else "ecs_signal"  # jvb, or a signal shard

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Owner:
    """Something whose network interfaces hold subnets, security groups and the VPC."""

    kind: str  # "load balancer" | "service"
    step: str  # the pcls step that created it (and deletes it)
    subnets: set[str]
    groups: set[str]
    vpcs: set[str]
    gone_at: float | None = None  # when the owner itself is gone (ENIs start to go then)


@dataclass
class Transition:
    step: str  # the step that started it
    what: str
    key: str  # the Durations field that sets how long it takes
    blocking: bool = True  # the starting step itself waits for it (after its own calls)
    ends: float = 0.0  # clock time at which it completes
    seen: float | None = None  # when an answer first showed it complete (or a call got through)
    refusal: bool = False  # `step` was refused until it completed (it retried meanwhile)

    @property
    def overshoot(self) -> float | None:
        """Seconds between completion and pcls noticing it (polling or retry backoff)."""
        return None if self.seen is None else max(self.seen - self.ends, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "what": self.what,
            "key": self.key,
            "blocking": self.blocking,
            "refusal": self.refusal,
            "ends": self.ends,
            "seen": self.seen,
            "overshoot": self.overshoot,
        }


@contextlib.contextmanager
def on_every_client(register: Callable[[Any], None]) -> Iterator[None]:
    """`register(client)` for every botocore client made meanwhile: pcls makes its own clients,
    each run, so the hooks go in where botocore creates them."""
    original = botocore.session.Session.create_client

    def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(session, *args, **kwargs)
        register(client)
        return client

    with mock.patch.object(botocore.session.Session, "create_client", create_client):
        yield


@dataclass
class TimeModel:
    durations: Durations = field(default_factory=Durations)
    scale: float = 50.0
    fresh_account: bool = False  # first ECS cluster: the service-linked role is new as well
    step_of: Callable[[], str] = lambda: ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.clock = time.monotonic
        self.albs: dict[str, float] = {}
        self.certs: dict[str, float] = {}
        self.operations: dict[str, float] = {}
        self.deploys: dict[str, tuple[float, float]] = {}  # service arn -> (start, seconds)
        self.deleted: dict[str, float] = {}  # service arn -> DeleteService time
        self.roles: dict[str, tuple[float, str]] = {}  # role arn -> (created, step)
        self.taskdef_roles: dict[str, set[str]] = {}
        self.subnet_vpc: dict[str, str] = {}
        self.owners: dict[str, Owner] = {}
        self.slr_at: float | None = None
        self._open: dict[tuple[str, ...], Transition] = {}  # started, not yet seen complete
        self._waiting: set[tuple[str, ...]] = set()  # refused at least once
        # What the benchmark reads back:
        self.transitions: list[Transition] = []
        self.iam_waits: dict[str, set[str]] = {}  # service step -> role steps it waits for
        self.eni_waits: dict[str, set[str]] = {}  # deleting step -> owner steps it waits for
        self.refused: Counter[str] = Counter()  # "service:Operation" -> errors raised
        self.round_trips = 0

    # -- time ------------------------------------------------------------------------------------

    def scaled(self, real_seconds: float) -> float:
        return real_seconds / self.scale

    def sleep(self, real_seconds: float) -> None:
        """A Patience.sleep: pcls's real-world poll intervals and backoff, scaled."""
        time.sleep(self.scaled(real_seconds))

    def _pending(self, since: float | None, real_seconds: float) -> bool:
        return since is not None and self.clock() < since + self.scaled(real_seconds)

    def _started(self, ident: tuple[str, ...], what: str, key: str, blocking: bool = True) -> None:
        ends = self.clock() + self.scaled(getattr(self.durations, key))
        t = Transition(self.step_of(), what, key, blocking, ends)
        self.transitions.append(t)
        self._open[ident] = t

    def _seen(self, ident: tuple[str, ...]) -> None:
        t = self._open.pop(ident, None)
        if t is not None:
            t.seen = self.clock()

    def new_phase(self) -> None:
        """Forget what the last command started and refused; keep the state of AWS."""
        with self._lock:
            self.transitions = []
            self.iam_waits = {}
            self.eni_waits = {}
            self.refused = Counter()
            self.round_trips = 0
            self._open = {}
            self._waiting = set()

    # -- installation ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[TimeModel]:
        with on_every_client(self.register):
            yield self

    def register(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build", self._keep_params)
        events.register("before-call", self._round_trip)
        # Last: pcls's own before-call hook counts the call before the model refuses it.
        events.register_last("before-call", lambda **kw: self._refuse(client, **kw))
        events.register("after-call", self._after)

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["timemodel_params"] = params

    def _round_trip(self, **_: Any) -> None:
        with self._lock:
            self.round_trips += 1
        time.sleep(self.scaled(self.durations.round_trip))

    # -- errors while a transition is incomplete -------------------------------------------------

    def _refuse(self, client: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        service, op = model.service_model.service_name, model.name
        params = context.get("timemodel_params") or {}
        error: tuple[str, str] | None = None
        with self._lock:
            if service == "ecs" and op == "CreateService":
                error = self._iam_error(params)
            elif service == "ecs" and op == "PutClusterCapacityProviders":
                if self._pending(self.slr_at, self.durations.iam):
                    error = (
                        "InvalidParameterException",
                        "Unable to assume the service linked role. Please verify that the ECS "
                        "service linked role exists.",
                    )
                else:
                    self._seen(("slr",))
            elif service == "ec2" and op in ENI_GUARDED:
                error = self._eni_error(op, params)
            if error is not None:
                self.refused[f"{service}:{op}"] += 1
        if error is not None:
            code, message = error
            raise client.exceptions.from_code(code)(
                {"Error": {"Code": code, "Message": message}}, op
            )

    def _iam_error(self, params: dict[str, Any]) -> tuple[str, str] | None:
        roles = self.taskdef_roles.get(str(params.get("taskDefinition", "")), set())
        step = self.step_of()
        for role in sorted(roles):
            created, role_step = self.roles.get(role, (None, ""))
            if created is None:
                continue
            self.iam_waits.setdefault(step, set()).add(role_step)
            ident = ("role", role)
            if not self._pending(created, self.durations.iam):
                self._open.pop(ident, None)
                if ident in self._waiting:
                    self._waiting.discard(ident)
                    ends = created + self.scaled(self.durations.iam)
                    what = f"{role.rsplit('/', 1)[-1]} assumable by ECS"
                    self.transitions.append(
                        Transition(step, what, "iam", False, ends, self.clock(), refusal=True)
                    )
                continue
            self._waiting.add(ident)
            return (
                "InvalidParameterException",
                f"ECS was unable to assume the role '{role}' that was provided for this "
                "task. Please verify that the role being passed has the proper trust "
                "relationship and permissions and that your IAM user has permissions to "
                "pass this role.",
            )
        return None

    def _eni_error(self, op: str, params: dict[str, Any]) -> tuple[str, str] | None:
        key = str(params.get(ENI_GUARDED[op], ""))
        if op == "DeleteSecurityGroup":
            holders = [o for o in self.owners.values() if key in o.groups]
        elif op == "DeleteSubnet":
            holders = [o for o in self.owners.values() if key in o.subnets]
        else:
            holders = [o for o in self.owners.values() if key in o.vpcs]
        step = self.step_of()
        self.eni_waits.setdefault(step, set()).update(o.step for o in holders)
        now = self.clock()
        release = self.scaled(self.durations.eni_release)
        held = [o for o in holders if o.gone_at is None or now < o.gone_at + release]
        ident = ("eni", op, key)
        if not held:
            if ident in self._waiting:
                self._waiting.discard(ident)
                ends = max(o.gone_at or now for o in holders) + release
                what = f"{op} {key}: network interfaces released"
                self.transitions.append(
                    Transition(step, what, "eni_release", False, ends, now, refusal=True)
                )
            return None
        self._waiting.add(ident)
        messages = {
            "DeleteSecurityGroup": f"resource {key} has a dependent object",
            "DeleteSubnet": f"The subnet '{key}' has dependencies and cannot be deleted.",
            "DetachInternetGateway": (
                f"Network {key} has some mapped public address(es). Please unmap those public "
                "address(es) before detaching the gateway."
            ),
            "DeleteVpc": f"The vpc '{key}' has dependencies and cannot be deleted.",
        }
        return "DependencyViolation", messages[op]

    # -- records and rewritten answers -----------------------------------------------------------

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_
    ) -> None:
        if http_response is None or http_response.status_code >= 300:
            return
        service, op = model.service_model.service_name, model.name
        handler = getattr(self, f"_{service.replace('-', '_')}_{op}", None)
        if handler is not None:
            with self._lock:
                handler(parsed, context.get("timemodel_params") or {})

    # ec2: which VPC each subnet and gateway belongs to (for the ENI rules)

    def _ec2_CreateSubnet(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        sub = parsed["Subnet"]
        self.subnet_vpc[sub["SubnetId"]] = sub["VpcId"]

    def _owner(self, kind: str, subnets: list[str], groups: list[str]) -> Owner:
        vpcs = {self.subnet_vpc[s] for s in subnets if s in self.subnet_vpc}
        return Owner(kind, self.step_of(), set(subnets), set(groups), vpcs)

    # elbv2: provisioning -> active; its ENIs linger after delete

    def _elbv2_CreateLoadBalancer(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        lb = parsed["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        self.albs[arn] = self.clock()
        self._started(("alb", arn), "load balancer provisioning", "alb_active")
        self.owners[arn] = self._owner(
            "load balancer", list(params.get("Subnets", [])), list(params.get("SecurityGroups", []))
        )
        self._elbv2_DescribeLoadBalancers(parsed, params)

    def _elbv2_DescribeLoadBalancers(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        for lb in parsed.get("LoadBalancers", []):
            arn = lb["LoadBalancerArn"]
            if self._pending(self.albs.get(arn), self.durations.alb_active):
                lb["State"] = {"Code": "provisioning"}
            else:
                self._seen(("alb", arn))

    def _elbv2_DeleteLoadBalancer(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        owner = self.owners.get(params.get("LoadBalancerArn", ""))
        if owner is not None and owner.gone_at is None:
            owner.gone_at = self.clock()
            owner.step = self.step_of() or owner.step

    # acm: validation record published after a few seconds, ISSUED after validation

    def _acm_RequestCertificate(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        arn = parsed["CertificateArn"]
        self.certs[arn] = self.clock()
        self._started(("acm-record", arn), "validation record", "acm_record", blocking=False)
        self._started(("acm", arn), "certificate validation", "acm_issued")

    def _acm_DescribeCertificate(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        cert = parsed.get("Certificate", {})
        arn = cert.get("CertificateArn", "")
        since = self.certs.get(arn)
        if not self._pending(since, self.durations.acm_record):
            self._seen(("acm-record", arn))
        if not self._pending(since, self.durations.acm_issued):
            self._seen(("acm", arn))
            return
        cert["Status"] = "PENDING_VALIDATION"
        for key in ("IssuedAt", "NotBefore", "NotAfter", "Serial"):
            cert.pop(key, None)
        for opt in cert.get("DomainValidationOptions", []):
            opt["ValidationStatus"] = "PENDING_VALIDATION"
            if self._pending(since, self.durations.acm_record):
                opt.pop("ResourceRecord", None)

    # servicediscovery: namespace operations run asynchronously

    def _servicediscovery_CreatePrivateDnsNamespace(
        self, parsed: dict[str, Any], params: dict[str, Any]
    ) -> None:
        self.operations[parsed["OperationId"]] = self.clock()
        self._started(("op", parsed["OperationId"]), "namespace creation", "namespace")

    def _servicediscovery_DeleteNamespace(
        self, parsed: dict[str, Any], params: dict[str, Any]
    ) -> None:
        if parsed.get("OperationId"):
            self.operations[parsed["OperationId"]] = self.clock()
            self._started(("op", parsed["OperationId"]), "namespace deletion", "namespace")

    def _servicediscovery_GetOperation(
        self, parsed: dict[str, Any], params: dict[str, Any]
    ) -> None:
        op = parsed.get("Operation", {})
        since = self.operations.get(op.get("Id", ""))
        if self._pending(since, self.durations.namespace):
            assert since is not None
            early = self.clock() < since + self.scaled(2 * self.durations.round_trip)
            op["Status"] = "SUBMITTED" if early else "PENDING"
            op.pop("Targets", None)
        else:
            self._seen(("op", op.get("Id", "")))

    # iam and ecs: roles become assumable after propagation; services roll out and drain

    def _iam_CreateRole(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        arn = parsed["Role"]["Arn"]
        self.roles[arn] = (self.clock(), self.step_of())
        self._started(("role", arn), "role propagation", "iam", blocking=False)

    def _ecs_RegisterTaskDefinition(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        td = parsed["taskDefinition"]
        roles = {td[k] for k in ("executionRoleArn", "taskRoleArn") if td.get(k)}
        arn = td["taskDefinitionArn"]
        self.taskdef_roles[arn] = roles
        self.taskdef_roles[arn.rsplit("/", 1)[-1]] = roles

    def _ecs_CreateCluster(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        if self.fresh_account and self.slr_at is None:
            self.slr_at = self.clock()
            self._started(("slr",), "service-linked role propagation", "iam")

    def _deploy(self, svc: dict[str, Any]) -> None:
        key = self.durations.ecs_key(svc["serviceName"])
        self.deploys[svc["serviceArn"]] = (self.clock(), getattr(self.durations, key))
        self.deleted.pop(svc["serviceArn"], None)
        self._started(("rollout", svc["serviceArn"]), f"{svc['serviceName']} rollout", key)

    def _ecs_CreateService(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        svc = parsed["service"]
        self._deploy(svc)
        net = (params.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        self.owners[svc["serviceArn"]] = self._owner(
            "service", list(net.get("subnets", [])), list(net.get("securityGroups", []))
        )

    def _ecs_UpdateService(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        # A new deployment starts for anything but a bare desired-count change.
        if set(params) - {"cluster", "service", "desiredCount"}:
            self._deploy(parsed["service"])

    def _ecs_DeleteService(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        arn = parsed["service"]["serviceArn"]
        now = self.clock()
        self.deleted[arn] = now
        self.deploys.pop(arn, None)
        name = parsed["service"]["serviceName"]
        self._started(("drain", arn), f"{name} draining", "ecs_drain")
        owner = self.owners.get(arn)
        if owner is not None and owner.gone_at is None:
            # Task ENIs go once the tasks have stopped, i.e. when the service is INACTIVE.
            owner.gone_at = now + self.scaled(self.durations.ecs_drain)
            owner.step = self.step_of() or owner.step

    def _ecs_DescribeServices(self, parsed: dict[str, Any], params: dict[str, Any]) -> None:
        for svc in parsed.get("services", []):
            arn = svc["serviceArn"]
            if self._pending(self.deleted.get(arn), self.durations.ecs_drain):
                svc["status"] = "DRAINING"
                continue
            if svc.get("status") == "INACTIVE":
                self._seen(("drain", arn))
            if arn not in self.deploys or svc.get("status") != "ACTIVE":
                continue
            start, seconds = self.deploys[arn]
            desired = svc.get("desiredCount", 0)
            rolling = self._pending(start, seconds)
            svc["runningCount"] = 0 if rolling else desired
            svc["pendingCount"] = desired if rolling else 0
            for dep in svc.get("deployments") or []:
                if dep.get("status") == "PRIMARY":
                    dep["rolloutState"] = "IN_PROGRESS" if rolling else "COMPLETED"
                    dep["runningCount"] = svc["runningCount"]
                    dep["pendingCount"] = svc["pendingCount"]
            if not rolling:
                self._seen(("rollout", arn))

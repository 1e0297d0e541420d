"""moto, made to enforce an identity policy closer to the way AWS does (tests only).

moto 5 (moto/iam/access_control.py) checks every request's Action against the caller's
policies, honours explicit Deny, but knows a request's Resource only for IAM calls that name
an existing role; for everything else it checks against "*", and it evaluates no Condition of
an identity policy (none is ever false). This module adds, for a test:

- the resource ARNs of each request, derived from the call's parameters (captured on the
  client side, in the calling thread, where moto handles the request): a statement scoped to
  other names or ids then denies. A request this module cannot name stays at "*", which
  matches any statement's Resource: only its Action is checked.
- iam:PassRole, which AWS checks when a task definition, a function or a schedule names a role
  and moto never does, and
  the tag action AWS checks when a create call carries tags (tag on create, TAG_ON_CREATE).
- CloudWatch's IAM prefix: moto takes the signing name (monitoring:), IAM uses cloudwatch:.
- No signature check: moto recomputes Route 53's signatures wrongly (SignatureDoesNotMatch);
  the access key still has to be the user's, and authorization is what is tested.

Conditions stay unevaluated; tests/test_permissions.py checks their shape instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import BaseResponse
from moto.iam import access_control

from pcls.permissions import iam_action
from tests.faults import on_every_client

_current = threading.local()
EC2_ID_TYPES = {
    "vpc-": "vpc",
    "subnet-": "subnet",
    "sg-": "security-group",
    "rtb-": "route-table",
    "igw-": "internet-gateway",
}
EC2_ID_KEYS = {
    "VpcId": "vpc",
    "SubnetId": "subnet",
    "GroupId": "security-group",
    "RouteTableId": "route-table",
    "InternetGatewayId": "internet-gateway",
    "GatewayId": "internet-gateway",
}
EC2_CREATES = {
    "CreateVpc": "vpc",
    "CreateSubnet": "subnet",
    "CreateInternetGateway": "internet-gateway",
    "CreateRouteTable": "route-table",
    "CreateSecurityGroup": "security-group",
}
NEW = "new"  # the id part of a resource a create call is about to make
# Creates that AWS also authorizes as the service's tag action when the request carries tags.
TAG_ON_CREATE = {
    **{("ec2", op): ("ec2:CreateTags", "TagSpecifications") for op in EC2_CREATES},
    **{
        ("elbv2", op): ("elasticloadbalancing:AddTags", "Tags")
        for op in ("CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "CreateRule")
    },
    **{
        ("ecs", op): ("ecs:TagResource", "tags")
        for op in ("CreateCluster", "CreateService", "RegisterTaskDefinition")
    },
    ("logs", "CreateLogGroup"): ("logs:TagResource", "tags"),
    ("sns", "CreateTopic"): ("sns:TagResource", "Tags"),
    ("ssm", "PutParameter"): ("ssm:AddTagsToResource", "Tags"),
    ("iam", "CreateRole"): ("iam:TagRole", "Tags"),
    ("iam", "CreatePolicy"): ("iam:TagPolicy", "Tags"),
    ("cloudwatch", "PutMetricAlarm"): ("cloudwatch:TagResource", "Tags"),
    ("acm", "RequestCertificate"): ("acm:AddTagsToCertificate", "Tags"),
    ("lambda", "CreateFunction"): ("lambda:TagResource", "Tags"),
    ("scheduler", "CreateScheduleGroup"): ("scheduler:TagResource", "Tags"),
    ("application-autoscaling", "RegisterScalableTarget"): (
        "application-autoscaling:TagResource",
        "Tags",
    ),
}


class Resolver:
    """ARNs a request acts on, as IAM authorizes it, from its API parameters."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region

    def arn(self, svc: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{svc}:{self.region if region else ''}:{self.account}:{resource}"

    def __call__(self, service: str, op: str, p: dict[str, Any]) -> list[str]:
        method = getattr(self, "_" + service.replace("-", "_"), None)
        return [a for a in (method(op, p) if method else []) if a]

    def created(self, service: str, op: str, p: dict[str, Any]) -> list[str]:
        """The ARN of what a create call makes (its id part NEW where AWS makes the id)."""
        if service == "elbv2" and op == "CreateListener":
            lb = p["LoadBalancerArn"].replace(":loadbalancer/", ":listener/")
            return [f"{lb}/{NEW}"]
        if service == "elbv2" and op == "CreateRule":
            listener = p["ListenerArn"].replace(":listener/", ":listener-rule/")
            return [f"{listener}/{NEW}"]
        if service == "acm":
            return [self.arn("acm", f"certificate/{NEW}")]
        if service == "application-autoscaling":
            return [self.arn("application-autoscaling", f"scalable-target/{NEW}")]
        made = self(service, op, p)
        return [a for a in made if a.endswith(f"/{NEW}")] or made[-1:]

    def _ec2(self, op: str, p: dict[str, Any]) -> list[str]:
        out = [
            self.arn("ec2", f"{kind}/{p[key]}")
            for key, kind in EC2_ID_KEYS.items()
            if isinstance(p.get(key), str) and p[key].startswith(tuple(EC2_ID_TYPES))
        ]
        for rid in p.get("Resources", []):
            kind = next((k for pre, k in EC2_ID_TYPES.items() if rid.startswith(pre)), None)
            if kind:
                out.append(self.arn("ec2", f"{kind}/{rid}"))
        if op in EC2_CREATES:
            out.append(self.arn("ec2", f"{EC2_CREATES[op]}/{NEW}"))
        return out

    def _elbv2(self, op: str, p: dict[str, Any]) -> list[str]:
        keys = ("LoadBalancerArn", "TargetGroupArn", "ListenerArn", "RuleArn")
        out = [p[k] for k in keys if k in p]
        out += list(p.get("ResourceArns", []))
        elb = "elasticloadbalancing"
        if op == "CreateLoadBalancer":
            out.append(self.arn(elb, f"loadbalancer/app/{p['Name']}/{NEW}"))
        if op == "CreateTargetGroup":
            out.append(self.arn(elb, f"targetgroup/{p['Name']}/{NEW}"))
        return out

    def _cluster(self, value: str) -> str:
        return value if value.startswith("arn:") else self.arn("ecs", f"cluster/{value}")

    def _ecs(self, op: str, p: dict[str, Any]) -> list[str]:
        cluster = p.get("cluster") or p.get("clusterName")
        name = p.get("serviceName") or p.get("service")
        if op in ("CreateService", "UpdateService", "DeleteService") and cluster and name:
            return [self.arn("ecs", f"service/{cluster.split('/')[-1]}/{name}")]
        if op in ("CreateCluster", "DeleteCluster", "UpdateCluster", "PutClusterCapacityProviders"):
            return [self._cluster(cluster)] if cluster else []
        if op == "RegisterTaskDefinition":
            return [self.arn("ecs", f"task-definition/{p['family']}:{NEW}")]
        if op == "DeleteTaskDefinitions":
            return list(p["taskDefinitions"])
        if op == "TagResource":
            return [p["resourceArn"]]
        if op == "UpdateTaskProtection":
            return list(p["tasks"])
        return []

    def _ssm(self, op: str, p: dict[str, Any]) -> list[str]:
        names = [p["Name"]] if "Name" in p else list(p.get("Names", []))
        if p.get("ResourceType") == "Parameter":
            names.append(p["ResourceId"])
        return [self.arn("ssm", f"parameter{n}") for n in names if n.startswith("/")]

    def _logs(self, op: str, p: dict[str, Any]) -> list[str]:
        if "logGroupName" in p and not op.startswith("Describe"):
            return [self.arn("logs", f"log-group:{p['logGroupName']}")]
        return [p["resourceArn"]] if "resourceArn" in p else []

    def _sns(self, op: str, p: dict[str, Any]) -> list[str]:
        if op == "CreateTopic":
            return [self.arn("sns", p["Name"])]
        return [p[k] for k in ("TopicArn", "ResourceArn") if k in p]

    def _cloudwatch(self, op: str, p: dict[str, Any]) -> list[str]:
        alarms = [p["AlarmName"]] if op in ("PutMetricAlarm", "SetAlarmState") else []
        named = ("DeleteAlarms", "DisableAlarmActions", "EnableAlarmActions")
        alarms += list(p.get("AlarmNames", [])) if op in named else []
        boards = [p["DashboardName"]] if op == "PutDashboard" else []
        boards += list(p.get("DashboardNames", [])) if op == "DeleteDashboards" else []
        out = [self.arn("cloudwatch", f"alarm:{a}") for a in alarms]
        out += [self.arn("cloudwatch", f"dashboard/{b}", region=False) for b in boards]
        return out + ([p["ResourceARN"]] if op == "TagResource" else [])

    def _acm(self, op: str, p: dict[str, Any]) -> list[str]:
        return [p["CertificateArn"]] if "CertificateArn" in p else []

    def _servicediscovery(self, op: str, p: dict[str, Any]) -> list[str]:
        if op == "DeleteNamespace":
            return [self.arn("servicediscovery", f"namespace/{p['Id']}")]
        if op in ("DeleteService", "UpdateService"):
            return [self.arn("servicediscovery", f"service/{p['Id']}")]
        return []

    def _iam(self, op: str, p: dict[str, Any]) -> list[str]:
        base = f"arn:aws:iam::{self.account}:"
        if op == "CreateRole":
            return [f"{base}role{p.get('Path', '/')}{p['RoleName']}"]
        if op == "CreatePolicy":
            return [f"{base}policy{p.get('Path', '/')}{p['PolicyName']}"]
        return [p["PolicyArn"]] if "PolicyArn" in p else []  # roles: moto resolves them

    def _lambda(self, op: str, p: dict[str, Any]) -> list[str]:
        name = p.get("FunctionName") or p.get("Resource", "").rsplit(":", 1)[-1]
        if not name:
            return []
        return [name if name.startswith("arn:") else self.arn("lambda", f"function:{name}")]

    def _scheduler(self, op: str, p: dict[str, Any]) -> list[str]:
        if "ResourceArn" in p:
            return [p["ResourceArn"]]
        if op.endswith("ScheduleGroup"):
            return [self.arn("scheduler", f"schedule-group/{p['Name']}")]
        if op in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"):
            return [self.arn("scheduler", f"schedule/{p.get('GroupName', 'default')}/{p['Name']}")]
        return []

    def _route53(self, op: str, p: dict[str, Any]) -> list[str]:
        zone = p.get("HostedZoneId") or (p.get("Id") if op == "DeleteHostedZone" else None)
        zone = zone or (p.get("ResourceId") if op == "ChangeTagsForResource" else None)
        if not zone:
            return []
        return [f"arn:aws:route53:::hostedzone/{zone.split('/')[-1]}"]


def _capture(client: Any) -> None:
    service = client.meta.service_model.service_name

    def remember(params: dict[str, Any], model: Any, **_: Any) -> None:
        _current.call = (service, model.name, dict(params))

    client.meta.events.register("before-parameter-build", remember)


@contextlib.contextmanager
def enforcing(account: str, region: str) -> Iterator[list[tuple[str, str]]]:
    """Inside: moto checks each request as described above. Yields the (action, resource ARN)
    pairs it allowed, for the test to compare with the policy's scopes."""
    resolve = Resolver(account, region)
    allowed: list[tuple[str, str]] = []
    original = BaseResponse._authenticate_and_authorize_normal_action
    original_init = access_control.IAMRequest.__init__
    original_match = access_control.IAMPolicyStatement._check_element_matches
    original_signature = access_control.IAMRequestBase.check_signature

    def authorize(self: Any, resource: str = "*") -> None:
        call = getattr(_current, "call", None)
        if call is not None and call[1] != self._get_action():
            call = None  # not a request of a client this test made
        arns = resolve(*call) if call is not None else []
        checked: list[tuple[str, str]] = []
        if arns:
            for arn in arns:
                original(self, arn)
            checked = [(iam_action(call[0], call[1]), a) for a in arns]  # type: ignore[index]
        else:
            original(self, resource)
            if call is not None and resource != "*":
                checked = [(iam_action(call[0], call[1]), resource)]  # moto named it
        if call is None:
            return
        service, op, params = call
        passed: list[str] = []
        if (service, op) == ("ecs", "RegisterTaskDefinition"):
            passed = [params[k] for k in ("taskRoleArn", "executionRoleArn") if params.get(k)]
        if (service, op) in (
            ("lambda", "CreateFunction"),
            ("lambda", "UpdateFunctionConfiguration"),
        ):
            passed = [params["Role"]] if params.get("Role") else []
        if service == "scheduler" and op in ("CreateSchedule", "UpdateSchedule"):
            passed = [params["Target"]["RoleArn"]]
        for role in passed:
            _check(self, "iam:PassRole", role)
            checked.append(("iam:PassRole", role))
        tagging = TAG_ON_CREATE.get((service, op))
        if tagging and params.get(tagging[1]):
            for arn in resolve.created(service, op, params):
                _check(self, tagging[0], arn)
                checked.append((tagging[0], arn))
        if _on():
            allowed.extend(checked)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if self._action.startswith("monitoring:"):
            self._action = "cloudwatch:" + self._action.split(":", 1)[1]

    def match(self: Any, element: str, value: str) -> bool:
        if element == "Resource" and value == "*":
            return True  # a request this module cannot name: only the Action is checked
        return bool(original_match(self, element, value))

    BaseResponse._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]
    access_control.IAMRequest.__init__ = init  # type: ignore[method-assign]
    access_control.IAMPolicyStatement._check_element_matches = match  # type: ignore[method-assign]
    access_control.IAMRequestBase.check_signature = lambda self: None  # type: ignore[method-assign]
    try:
        with on_every_client(_capture):
            yield allowed
    finally:
        BaseResponse._authenticate_and_authorize_normal_action = original  # type: ignore[method-assign]
        access_control.IAMRequest.__init__ = original_init  # type: ignore[method-assign]
        access_control.IAMPolicyStatement._check_element_matches = original_match  # type: ignore[method-assign]
        access_control.IAMRequestBase.check_signature = original_signature  # type: ignore[method-assign]


def _on() -> bool:
    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def _check(response: Any, action: str, resource: str) -> None:
    """Authorize one more action for the request being handled (as AWS does for PassRole)."""
    if not _on():
        return
    request = access_control.IAMRequest(
        account_id=response.current_account,
        method=response.method,
        path=response.raw_path,
        data=response.data,
        body=response.raw_body,
        headers=response.headers,
        action=response._get_action(),
    )
    request._action = action
    request.check_action_permitted(resource)

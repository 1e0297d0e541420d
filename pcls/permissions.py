"""The IAM policy a person or CI role needs to run pcls (plan, up, status, teardown).

Its holder can run one stack (or, with `any_stack`, every stack) and cannot make itself more
powerful. The rules, each kept honest by a test:

- Roles: named exactly (`role/pcls/<stack>-execution`, `-signal-task`, `-jvb-task`). CreateRole,
  PutRolePolicy and PutRolePermissionsBoundary only with the permissions boundary
  `policy/pcls/<stack>-boundary` (condition iam:PermissionsBoundary), which caps every role
  at what the task roles need (see pcls.steps.iam.boundary_policy). PassRole only for those
  roles and only to ECS tasks. No AttachRolePolicy, no DeleteRolePermissionsBoundary.
- The boundary: the holder may read, tag and delete it, never write a version of it (an
  explicit Deny on every boundary under /pcls/): whoever can rewrite the boundary can widen
  every role. An administrator's `pcls up` creates it once (or `pcls iam-policy --boundary`
  prints it for `aws iam create-policy`).
- Everything else: creates require aws:RequestTag/pcls:stack=<stack>; writes on existing
  resources require aws:ResourceTag/pcls:stack=<stack>; names are exact where pcls chooses
  them. Tag writes require the request to set pcls:stack=<stack> and, where the service
  exposes it, the resource not to carry another stack's tag (StringEqualsIfExists): that is
  what `pcls adopt` of a resource named after the stack needs. EC2 tags can be added only at
  creation (ec2:CreateAction) or to the stack's own resources.
- Where AWS offers neither resource-level permissions nor tag conditions (Route 53 hosted
  zones, Cloud Map's TagResource, DeregisterTaskDefinition, SNS Unsubscribe, the Describe and
  List calls), the Resource is "*" or as narrow as the ARN format allows; record changes are
  limited to the stack's domain by route53:ChangeResourceRecordSetsNormalizedRecordNames.

IAM limits a managed policy to 6,144 characters without whitespace, so the statements are
packed into as few documents as fit (`operator_policies`); attach all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pcls.errors import ConfigError
from pcls.steps import iam
from pcls.steps.account import partition_of as partition_of  # pcls iam-policy names it
from pcls.steps.platform import schedule_group_name, wake_function_name, wake_log_group_name

STACK_TAG = "pcls:stack"
MAX_POLICY_CHARS = 6144  # IAM's limit for a managed policy, whitespace not counted
VERSION = "2012-10-17"

# Read-only calls; most have no resource-level permissions, so they take "*". A read of a
# missing IAM role must answer NoSuchEntity, not AccessDenied: IAM reads stay on "*" too.
READ = {
    "account": ["GetRegionOptStatus"],
    "acm": ["DescribeCertificate", "ListCertificates", "ListTagsForCertificate"],
    "application-autoscaling": [
        "DescribeScalableTargets",
        "DescribeScalingPolicies",
        "DescribeScheduledActions",
        "ListTagsForResource",
    ],
    # the budget step: is pcls:stack an active cost allocation tag (no resource type)
    "ce": ["ListCostAllocationTags"],
    "cloudwatch": [
        "DescribeAlarms",
        "GetDashboard",
        "GetMetricData",  # pcls sleep / wake: the bridges' participants (idle)
        "GetMetricStatistics",  # pcls verify: the bridges' XmppConnected
        "ListDashboards",
        "ListTagsForResource",
    ],
    "ec2": [
        "DescribeAvailabilityZones",
        "DescribeInternetGateways",
        "DescribeNetworkInterfaces",
        "DescribeRegions",
        "DescribeRouteTables",
        "DescribeSecurityGroups",
        "DescribeSecurityGroupRules",
        "DescribeSubnets",
        "DescribeTags",
        "DescribeVpcAttribute",
        "DescribeVpcs",
    ],
    "ecs": [
        "DescribeClusters",
        "DescribeServices",
        "DescribeTaskDefinition",
        "DescribeTasks",
        "GetTaskProtection",
        "ListAccountSettings",
        "ListServices",
        "ListTaskDefinitions",
        "ListTasks",
        "ListTagsForResource",
    ],
    "elasticloadbalancing": [
        "DescribeAccountLimits",
        "DescribeListeners",
        "DescribeLoadBalancerAttributes",
        "DescribeLoadBalancers",
        "DescribeRules",
        "DescribeTags",
        "DescribeTargetGroupAttributes",
        "DescribeTargetGroups",
        "DescribeTargetHealth",
    ],
    "iam": [
        "GetPolicy",
        "GetPolicyVersion",
        "GetRole",
        "GetRolePolicy",
        "ListAttachedRolePolicies",
        "ListPolicyTags",
        "ListPolicyVersions",
        "ListRolePolicies",
    ],
    # The function's own reads are scoped to it (GetFunction hands out its code): see _wake.
    "lambda": ["GetAccountSettings"],
    "logs": ["DescribeLogGroups", "ListTagsForResource"],
    "route53": [
        "GetChange",
        "GetHostedZone",
        "ListHostedZones",
        "ListHostedZonesByName",
        "ListResourceRecordSets",
        "ListTagsForResource",
        "ListTagsForResources",
    ],
    "scheduler": ["ListSchedules"],  # no resource type
    "servicequotas": ["GetAWSDefaultServiceQuota", "GetServiceQuota"],
    "servicediscovery": [
        "GetInstancesHealthStatus",  # a rolling shard is routed again once its name has its task
        "GetNamespace",
        "GetOperation",
        "GetService",
        "ListInstances",
        "ListNamespaces",
        "ListServices",
        "ListTagsForResource",
    ],
    "sns": ["GetTopicAttributes", "ListSubscriptionsByTopic", "ListTagsForResource", "ListTopics"],
    "ssm": ["DescribeParameters", "ListTagsForResource"],
    "sts": ["GetCallerIdentity"],
}

# The first ECS cluster, load balancer and scalable target of an account create their
# service-linked roles through the caller.
SERVICE_LINKED = {
    "ecs.amazonaws.com": "AWSServiceRoleForECS",
    "elasticloadbalancing.amazonaws.com": "AWSServiceRoleForElasticLoadBalancing",
    "ecs.application-autoscaling.amazonaws.com": (
        "AWSServiceRoleForApplicationAutoScaling_ECSService"
    ),
}

# Actions AWS documents as needed by a call pcls makes, besides the call's own action (the
# caller's permissions, not a service-linked role's). `pcls iam-policy` must grant each.
ECS_TAGGING = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html"
)
ECS_SLR = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html"
)
ECS_ROLES = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html"
ECS_SCALING = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/auto-scaling-IAM.html"
AAS_SLR = "https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-service-linked-roles.html"
CLOUD_MAP = "https://docs.aws.amazon.com/cloud-map/latest/dg/cloud-map-api-permissions-ref.html"
ELB_SLR = "https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-service-linked-roles.html"
ELB_TAGS = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html"
EC2_TAGS = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html"
LOGS_TAGS = (
    "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html"
)
ACM_TAGS = "https://docs.aws.amazon.com/acm/latest/userguide/tags.html"
IAM_TAGS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_roles.html"
QUOTAS = (
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_servicequotas.html"
)
BUDGETS = (
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsbudgetservice.html"
)
DOCUMENTED_EXTRAS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("ecs", "CreateCluster"): (ECS_SLR, ("iam:CreateServiceLinkedRole", "ecs:TagResource")),
    ("ecs", "CreateService"): (ECS_TAGGING, ("ecs:TagResource",)),
    ("ecs", "RegisterTaskDefinition"): (ECS_ROLES, ("iam:PassRole", "ecs:TagResource")),
    ("application-autoscaling", "RegisterScalableTarget"): (
        AAS_SLR,
        ("iam:CreateServiceLinkedRole", "application-autoscaling:TagResource"),
    ),
    ("application-autoscaling", "PutScalingPolicy"): (
        ECS_SCALING,
        (
            "ecs:DescribeServices",
            "ecs:UpdateService",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
        ),
    ),
    ("servicediscovery", "CreatePrivateDnsNamespace"): (
        CLOUD_MAP,
        (
            "route53:CreateHostedZone",
            "route53:GetHostedZone",
            "route53:ListHostedZonesByName",
            "ec2:DescribeVpcs",
            "ec2:DescribeRegions",
        ),
    ),
    ("servicediscovery", "DeleteNamespace"): (CLOUD_MAP, ("route53:DeleteHostedZone",)),
    ("elbv2", "CreateLoadBalancer"): (
        ELB_SLR,
        ("iam:CreateServiceLinkedRole", "elasticloadbalancing:AddTags"),
    ),
    ("elbv2", "CreateTargetGroup"): (ELB_TAGS, ("elasticloadbalancing:AddTags",)),
    ("elbv2", "CreateListener"): (ELB_TAGS, ("elasticloadbalancing:AddTags",)),
    ("ec2", "CreateVpc"): (EC2_TAGS, ("ec2:CreateTags",)),
    ("ec2", "CreateSubnet"): (EC2_TAGS, ("ec2:CreateTags",)),
    ("ec2", "CreateSecurityGroup"): (EC2_TAGS, ("ec2:CreateTags",)),
    ("logs", "CreateLogGroup"): (LOGS_TAGS, ("logs:TagResource",)),
    ("acm", "RequestCertificate"): (ACM_TAGS, ("acm:AddTagsToCertificate",)),
    ("iam", "CreateRole"): (IAM_TAGS, ("iam:TagRole",)),
    # A budget created with ResourceTags (its API operations table).
    ("budgets", "CreateBudget"): (BUDGETS, ("budgets:TagResource",)),
    # The applied value of a load balancer quota comes from Elastic Load Balancing.
    ("service-quotas", "GetServiceQuota"): (
        QUOTAS,
        ("elasticloadbalancing:DescribeAccountLimits",),
    ),
}


@dataclass(frozen=True)
class Target:
    """What the policy is scoped to. `stack` "" means every stack of the account."""

    account: str
    stack: str = ""
    region: str = "*"
    partition: str = "aws"
    domain: str = ""


def is_account(value: str) -> bool:
    return re.fullmatch(r"\d{12}", value) is not None


def caller_account(region: str, endpoint: str | None, sandbox: bool) -> tuple[str, str]:
    """(account, partition) of the credentials in use, from STS; a config error when none."""
    import os

    from pcls.aws import Aws, describe_error

    # STS answers in every region; any will do when the policy names none.
    where = region if region != "*" else os.environ.get("AWS_REGION", "us-east-1")
    try:
        ident = Aws(where, endpoint_url=endpoint, sandbox=sandbox).identity()
    except Exception as exc:  # no credentials, expired, unreachable: one line, exit 2
        text = str(exc) if isinstance(exc, ConfigError) else describe_error(exc)
        raise ConfigError(
            f"--account: not given, and STS cannot tell the account ({text}); "
            "pass --account 123456789012"
        ) from None
    return ident["account"], ident["arn"].split(":")[1]


def boundary_document(t: Target) -> dict[str, Any]:
    """The permissions boundary pcls writes for the stack (what an administrator creates)."""
    if not t.stack or t.region == "*":
        raise ConfigError("--boundary: needs the stack's region (stack.region or AWS_REGION)")
    return iam.boundary_policy(iam.stack_scope(t.partition, t.region, t.account, t.stack))


def _actions(svc: str, ops: list[str] | tuple[str, ...]) -> list[str]:
    return sorted(f"{svc}:{op}" for op in ops)


class _Builder:
    def __init__(self, t: Target) -> None:
        self.t = t
        self.s = t.stack or "*"

    def arn(self, svc: str, resource: str, *, region: bool = True) -> str:
        where = self.t.region if region else ""
        return f"arn:{self.t.partition}:{svc}:{where}:{self.t.account}:{resource}"

    # Conditions. For one stack: the tag equals the stack; for every stack: it is present.
    def tagged(self, key: str) -> dict[str, Any]:
        if self.t.stack:
            return {"StringEquals": {f"aws:{key}/{STACK_TAG}": self.t.stack}}
        return {"Null": {f"aws:{key}/{STACK_TAG}": "false"}}

    def tag_write(self, *, resource_key: bool = True) -> dict[str, Any]:
        """The request sets pcls:stack to the stack; the resource has no other stack's tag."""
        cond = self.tagged("RequestTag")
        if resource_key and self.t.stack:
            cond["StringEqualsIfExists"] = {f"aws:ResourceTag/{STACK_TAG}": self.t.stack}
        return cond


def _st(
    sid: str,
    actions: list[str],
    resources: str | list[str],
    condition: dict[str, Any] | None = None,
    effect: str = "Allow",
) -> dict[str, Any]:
    st: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": actions, "Resource": resources}
    if condition:
        st["Condition"] = condition
    return st


def statements(t: Target) -> list[dict[str, Any]]:
    """Every statement of the operator policy, in the order they are packed."""
    b = _Builder(t)
    s = b.s
    read = sorted(f"{svc}:{op}" for svc, ops in READ.items() for op in ops)
    out = [_st("Read", read, "*")]
    out += _network(b)
    out += _load_balancer(b)
    out += _dns_and_certificate(b)
    out += _iam(b)
    out += _ecs(b, s)
    out += _platform(b, s)
    out += _monitoring(b, s)
    out += _budget(b, s)
    out += _wake(b, s)
    return out


def _network(b: _Builder) -> list[dict[str, Any]]:
    kinds = ["vpc", "subnet", "internet-gateway", "route-table", "security-group"]
    res = [b.arn("ec2", f"{k}/*") for k in kinds]
    creates = ["CreateVpc", "CreateSubnet", "CreateInternetGateway", "CreateRouteTable"]
    creates.append("CreateSecurityGroup")
    own = [
        *("AssociateRouteTable", "AssociateSubnetCidrBlock", "AssociateVpcCidrBlock"),
        *("AttachInternetGateway", "AuthorizeSecurityGroupEgress"),
        *("AuthorizeSecurityGroupIngress", "CreateRoute", "CreateTags", "DeleteInternetGateway"),
        *("DeleteRouteTable", "DeleteSecurityGroup", "DeleteSubnet", "DeleteVpc"),
        *("DetachInternetGateway", "DisassociateRouteTable", "ModifySubnetAttribute"),
        *("ModifyVpcAttribute", "ReplaceRoute", "ReplaceRouteTableAssociation"),
        *("RevokeSecurityGroupEgress", "RevokeSecurityGroupIngress"),
        # the stack's VPC, as the parent of a new subnet, route table or group
        *("CreateSubnet", "CreateRouteTable", "CreateSecurityGroup"),
    ]
    return [
        _st("NetworkCreate", _actions("ec2", creates), res, b.tagged("RequestTag")),
        _st(
            "NetworkTagOnCreate",
            ["ec2:CreateTags"],
            res,
            {"StringEquals": {"ec2:CreateAction": creates}},
        ),
        _st("NetworkOwn", _actions("ec2", sorted(set(own))), res, b.tagged("ResourceTag")),
        # A new rule is a resource of its own; the group it joins must be the stack's.
        _st(
            "NetworkRules",
            _actions("ec2", ["AuthorizeSecurityGroupEgress", "AuthorizeSecurityGroupIngress"]),
            b.arn("ec2", "security-group-rule/*"),
        ),
    ]


def _load_balancer(b: _Builder) -> list[dict[str, Any]]:
    s = b.s
    lb = b.arn("elasticloadbalancing", f"loadbalancer/app/{s}-alb/*")
    tg = b.arn("elasticloadbalancing", f"targetgroup/{s}-web/*")
    wake_tg = b.arn("elasticloadbalancing", f"targetgroup/{s}-wake/*")
    listener = b.arn("elasticloadbalancing", f"listener/app/{s}-alb/*")
    # Each listener's one forward rule, tagged for its step: HTTP's attaches the target group
    # before HTTPS exists, HTTPS's sends /_pcls/* to the wake function. The wake function's own
    # role writes no rule: it only switches the HTTPS listener's default action.
    rule = b.arn("elasticloadbalancing", f"listener-rule/app/{s}-alb/*")
    own = [
        *("CreateListener", "DeleteListener", "DeleteLoadBalancer", "DeleteTargetGroup"),
        *("ModifyListener", "ModifyLoadBalancerAttributes", "ModifyTargetGroup"),
        *("ModifyTargetGroupAttributes", "SetIpAddressType", "SetSecurityGroups", "SetSubnets"),
        *("CreateRule", "DeleteRule", "ModifyRule"),
    ]
    elb = "elasticloadbalancing"
    return [
        _st(
            "LoadBalancerCreate",
            _actions(elb, ["CreateLoadBalancer", "CreateTargetGroup"]),
            [lb, tg, wake_tg],
            b.tagged("RequestTag"),
        ),
        _st(
            "LoadBalancerOwn",
            _actions(elb, own),
            [lb, tg, wake_tg, listener, rule],
            b.tagged("ResourceTag"),
        ),
        _st(
            "LoadBalancerTags",
            [f"{elb}:AddTags"],
            [lb, tg, wake_tg, listener, rule],
            b.tag_write(),
        ),
        # The wake function in its own target group (ECS registers the routers itself).
        _st(
            "WakeTargets",
            _actions(elb, ["DeregisterTargets", "RegisterTargets"]),
            wake_tg,
            b.tagged("ResourceTag"),
        ),
    ]


def _dns_and_certificate(b: _Builder) -> list[dict[str, Any]]:
    zone = f"arn:{b.t.partition}:route53:::hostedzone/*"
    records: dict[str, Any] = {
        "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsRecordTypes": ["A", "AAAA", "CNAME"]
        }
    }
    if b.t.domain:
        # The alias of the domain and ACM's validation record (_<hash>.<domain>), nothing else.
        names = [b.t.domain, f"_*.{b.t.domain}"]
        records["ForAllValues:StringLike"] = {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": names
        }
    certs = b.arn("acm", "certificate/*")
    request: dict[str, Any] = b.tagged("RequestTag")
    if b.t.domain:
        request["ForAllValues:StringEquals"] = {"acm:DomainNames": [b.t.domain]}
    return [
        _st("Records", ["route53:ChangeResourceRecordSets"], zone, records),
        # Hosted zones take no tag conditions; their ids are made by Route 53. Cloud Map's
        # namespace creates and deletes a private zone through the caller, dns.create_zone a
        # public one. A zone that holds records other than NS and SOA cannot be deleted.
        _st("Zones", _actions("route53", ["ChangeTagsForResource", "DeleteHostedZone"]), zone),
        _st("ZoneCreate", ["route53:CreateHostedZone"], "*"),
        _st("CertificateRequest", ["acm:RequestCertificate"], "*", request),
        _st(
            "CertificateOwn",
            _actions("acm", ["AddTagsToCertificate", "DeleteCertificate"]),
            certs,
            b.tagged("ResourceTag"),
        ),
        _st("CertificateTags", ["acm:AddTagsToCertificate"], certs, b.tag_write()),
    ]


def _iam(b: _Builder) -> list[dict[str, Any]]:
    t = b.t
    # Every stack: the roles' name patterns under the pcls path, and any pcls boundary.
    stack = t.stack or "*"
    roles = [iam.role_arn(t.partition, t.account, n) for n in iam.role_names(stack)]
    boundary = iam.boundary_arn(t.partition, t.account, stack)
    test = "ArnEquals" if t.stack else "ArnLike"
    bounded = {test: {"iam:PermissionsBoundary": boundary}}

    def passed(service: str) -> list[str]:
        return [iam.role_arn(t.partition, t.account, n) for n in iam.role_names(stack, service)]

    pcls_path = f"arn:{t.partition}:iam::{t.account}:"
    linked = [
        f"{pcls_path}role/aws-service-role/{svc}/{name}" for svc, name in SERVICE_LINKED.items()
    ]
    own = ["DeleteRole", "DeleteRolePolicy", "DetachRolePolicy", "UpdateAssumeRolePolicy"]
    return [
        _st(
            "RolesOnlyWithinBoundary",
            _actions("iam", ["CreateRole", "PutRolePermissionsBoundary", "PutRolePolicy"]),
            roles,
            bounded,
        ),
        _st("RolesOwn", _actions("iam", own), roles, b.tagged("ResourceTag")),
        _st("RolesTags", ["iam:TagRole"], roles, b.tag_write()),
        *(
            _st(
                sid,
                ["iam:PassRole"],
                passed(service),
                {"StringEquals": {"iam:PassedToService": service}},
            )
            for sid, service in (
                ("PassRolesToEcsTasks", iam.TASKS_PRINCIPAL),
                ("PassRoleToWakeFunction", iam.LAMBDA_PRINCIPAL),
                ("PassRoleToScheduler", iam.SCHEDULER_PRINCIPAL),
            )
        ),
        _st(
            "BoundaryOwn",
            _actions("iam", ["DeletePolicy", "DeletePolicyVersion"]),
            boundary,
            b.tagged("ResourceTag"),
        ),
        _st("BoundaryTags", ["iam:TagPolicy"], boundary, b.tag_write()),
        _st(
            "NeverWidenABoundary",
            _actions(
                "iam",
                [
                    "CreatePolicy",
                    "CreatePolicyVersion",
                    "DeleteRolePermissionsBoundary",
                    "SetDefaultPolicyVersion",
                ],
            ),
            [f"{pcls_path}policy{iam.IAM_PATH}*", f"{pcls_path}role{iam.IAM_PATH}*"],
            effect="Deny",
        ),
        _st(
            "ServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole"],
            linked,
            {"StringEquals": {"iam:AWSServiceName": sorted(SERVICE_LINKED)}},
        ),
    ]


def _ecs(b: _Builder, s: str) -> list[dict[str, Any]]:
    cluster = b.arn("ecs", f"cluster/{s}")
    services = b.arn("ecs", f"service/{s}/*")
    # One family per signal shard and the bridges'; v1's single signal family is only ever
    # deregistered and deleted (an upgraded stack retires it).
    families = [b.arn("ecs", f"task-definition/{s}-{task}:*") for task in ("shard-*", "jvb")]
    res = [cluster, services, *families]
    legacy = b.arn("ecs", f"task-definition/{s}-signal:*")
    create = ["CreateCluster", "CreateService", "RegisterTaskDefinition"]
    own = [
        *("DeleteCluster", "DeleteService", "DeleteTaskDefinitions"),
        *("PutClusterCapacityProviders", "UpdateCluster", "UpdateService"),
    ]
    aas = b.arn("application-autoscaling", "scalable-target/*")
    scaling = [
        *("DeleteScalingPolicy", "DeleteScheduledAction", "DeregisterScalableTarget"),
        *("PutScalingPolicy", "PutScheduledAction", "RegisterScalableTarget"),
    ]
    app = "application-autoscaling"
    return [
        _st("EcsCreate", _actions("ecs", create), res, b.tagged("RequestTag")),
        _st("EcsOwn", _actions("ecs", own), [*res, legacy], b.tagged("ResourceTag")),
        _st("EcsTags", ["ecs:TagResource"], res, b.tag_write()),
        # No resource-level permission exists for this one.
        _st("EcsDeregister", ["ecs:DeregisterTaskDefinition"], "*"),
        # Teardown clears the bridges' scale-in protection (their tasks carry the service's tags).
        _st(
            "BridgeProtection",
            ["ecs:UpdateTaskProtection"],
            b.arn("ecs", f"task/{s}/*"),
            b.tagged("ResourceTag"),
        ),
        # Scalable target ARNs carry an id Application Auto Scaling makes: by tag only.
        _st("ScalingCreate", [f"{app}:RegisterScalableTarget"], aas, b.tagged("RequestTag")),
        _st("ScalingOwn", _actions(app, scaling), aas, b.tagged("ResourceTag")),
        _st("ScalingTags", [f"{app}:TagResource"], aas, b.tag_write()),
    ]


def _platform(b: _Builder, s: str) -> list[dict[str, Any]]:
    group = b.arn("logs", f"log-group:/pcls/{s}")
    wake = b.arn("logs", f"log-group:{wake_log_group_name(s)}")
    groups = [group, f"{group}:*", wake, f"{wake}:*"]
    params = b.arn("ssm", f"parameter/pcls/{s}/*")
    lock = b.arn("ssm", f"parameter/pcls/{s}/run/lock")
    sd = [b.arn("servicediscovery", k) for k in ("namespace/*", "service/*")]
    sd_create = ["CreatePrivateDnsNamespace", "CreateService"]
    lock_ops = ["AddTagsToResource", "DeleteParameter", "GetParameter", "ListTagsForResource"]
    return [
        _st(
            "LogGroupCreate",
            _actions("logs", ["CreateLogGroup", "TagResource"]),
            groups,
            b.tag_write(),
        ),
        _st(
            "LogGroupOwn",
            _actions("logs", ["DeleteLogGroup", "PutRetentionPolicy"]),
            groups,
            b.tagged("ResourceTag"),
        ),
        _st(
            "SecretsCreate",
            _actions("ssm", ["AddTagsToResource", "PutParameter"]),
            params,
            b.tag_write(),
        ),
        _st(
            "SecretsOwn",
            _actions("ssm", ["DeleteParameter", "DeleteParameters"]),
            params,
            b.tagged("ResourceTag"),
        ),
        # The run lock of the stack: one exact parameter, whatever its tags.
        _st("RunLock", _actions("ssm", [*lock_ops, "PutParameter"]), lock),
        # CreatePrivateDnsNamespace has no resource type; Cloud Map's TagResource takes only
        # aws:RequestTag (no resource, no aws:ResourceTag).
        _st("CloudMapCreate", _actions("servicediscovery", sd_create), "*", b.tagged("RequestTag")),
        _st("CloudMapTags", ["servicediscovery:TagResource"], "*", b.tagged("RequestTag")),
        _st(
            "CloudMapOwn",
            _actions("servicediscovery", ["DeleteNamespace", "DeleteService", "UpdateService"]),
            sd,
            b.tagged("ResourceTag"),
        ),
    ]


def _monitoring(b: _Builder, s: str) -> list[dict[str, Any]]:
    alarms = b.arn("cloudwatch", f"alarm:{s}-*")
    topic = b.arn("sns", f"{s}-alarms")
    return [
        _st(
            "AlarmsPut",
            _actions("cloudwatch", ["PutMetricAlarm", "TagResource"]),
            alarms,
            b.tag_write(),
        ),
        _st("AlarmsOwn", ["cloudwatch:DeleteAlarms"], alarms, b.tagged("ResourceTag")),
        # Target tracking makes its own alarms, named after the scalable resource.
        _st(
            "ScalingAlarms",
            _actions("cloudwatch", ["DeleteAlarms", "PutMetricAlarm"]),
            b.arn("cloudwatch", f"alarm:TargetTracking-service/{s}/*"),
        ),
        # Dashboards take no tags.
        _st(
            "Dashboard",
            _actions("cloudwatch", ["DeleteDashboards", "PutDashboard"]),
            b.arn("cloudwatch", f"dashboard/{s}", region=False),
        ),
        _st("TopicCreate", _actions("sns", ["CreateTopic", "TagResource"]), topic, b.tag_write()),
        _st(
            "TopicOwn",
            _actions("sns", ["DeleteTopic", "Subscribe"]),
            topic,
            b.tagged("ResourceTag"),
        ),
        # A subscription ARN has no resource-level permission.
        _st("TopicUnsubscribe", ["sns:Unsubscribe"], "*"),
    ]


def _budget(b: _Builder, s: str) -> list[dict[str, Any]]:
    """The budget `pcls-<stack>` (Budgets ARNs have no region). Budgets authorises every read
    of a budget with ViewBudget and every write (budget, notification, subscriber) with
    ModifyBudget; a create, which has no tags to read yet, passes the IfExists condition. No
    aws-portal actions: that namespace is out of standard support since July 2023."""
    budget = b.arn("budgets", f"budget/pcls-{s}", region=False)
    own: dict[str, Any] | None = None
    if b.t.stack:
        own = {"StringEqualsIfExists": {f"aws:ResourceTag/{STACK_TAG}": b.t.stack}}
    return [
        _st("BudgetRead", _actions("budgets", ["ListTagsForResource", "ViewBudget"]), budget),
        _st("BudgetWrite", ["budgets:ModifyBudget"], budget, own),
        _st("BudgetTags", ["budgets:TagResource"], budget, b.tag_write()),
    ]


def _wake(b: _Builder, s: str) -> list[dict[str, Any]]:
    """The wake function, its schedule group and the sleep state `pcls sleep`/`wake` write."""
    function = b.arn("lambda", f"function:{wake_function_name(s)}")
    group = b.arn("scheduler", f"schedule-group/{schedule_group_name(s)}")
    schedules = b.arn("scheduler", f"schedule/{schedule_group_name(s)}/*")
    cluster = b.arn("ecs", f"cluster/{s}")
    own = [
        *("DeleteFunction", "DeleteFunctionConcurrency", "PutFunctionConcurrency"),
        *("RemovePermission", "UpdateFunctionCode", "UpdateFunctionConfiguration"),
    ]
    invoke: dict[str, Any] = {
        **b.tagged("ResourceTag"),
        "StringEquals": {
            **b.tagged("ResourceTag").get("StringEquals", {}),
            "lambda:Principal": "elasticloadbalancing.amazonaws.com",
        },
    }
    sleep_tags = {"ForAllValues:StringEquals": {"aws:TagKeys": list(iam.SLEEP_TAGS)}}
    return [
        # GetFunction hands out a link to the code: only this function's.
        _st(
            "WakeFunctionRead",
            _actions("lambda", ["GetFunction", "GetFunctionConcurrency", "GetPolicy", "ListTags"]),
            function,
        ),
        _st("WakeFunctionCreate", ["lambda:CreateFunction"], function, b.tagged("RequestTag")),
        _st("WakeFunctionOwn", _actions("lambda", own), function, b.tagged("ResourceTag")),
        _st("WakeFunctionTags", ["lambda:TagResource"], function, b.tag_write()),
        # The one invoke permission pcls adds: for the load balancer, nobody else.
        _st("WakeFunctionInvokers", ["lambda:AddPermission"], function, invoke),
        _st(
            "WakeScheduleGroupRead",
            _actions("scheduler", ["GetScheduleGroup", "ListTagsForResource"]),
            group,
        ),
        _st(
            "WakeScheduleGroupCreate",
            _actions("scheduler", ["CreateScheduleGroup", "TagResource"]),
            group,
            b.tag_write(),
        ),
        _st(
            "WakeScheduleGroupOwn",
            ["scheduler:DeleteScheduleGroup"],
            group,
            b.tagged("ResourceTag"),
        ),
        # Schedules take no tags; they live in the stack's group, named exactly.
        _st(
            "WakeSchedules",
            _actions(
                "scheduler", ["CreateSchedule", "DeleteSchedule", "GetSchedule", "UpdateSchedule"]
            ),
            schedules,
        ),
        # pcls sleep / wake: the sleep tags on the stack's cluster, no other key.
        _st(
            "SleepState",
            ["ecs:TagResource"],
            cluster,
            {**b.tagged("ResourceTag"), **sleep_tags},
        ),
        # pcls sleep / wake: the stack's own alarms silent while it sleeps.
        _st(
            "SleepAlarms",
            list(iam.ALARM_SWITCHES),
            b.arn("cloudwatch", f"alarm:{s}-*"),
            b.tagged("ResourceTag"),
        ),
    ]


# Budgets authorises its API operations with two actions (Service Authorization Reference).
BUDGETS_VIEW = (
    "DescribeBudget",
    "DescribeBudgets",
    "DescribeNotificationsForBudget",
    "DescribeSubscribersForNotification",
)
BUDGETS_MODIFY = (
    *("CreateBudget", "UpdateBudget", "DeleteBudget"),
    *("CreateNotification", "UpdateNotification", "DeleteNotification"),
    *("CreateSubscriber", "UpdateSubscriber", "DeleteSubscriber"),
)


def size(doc: dict[str, Any]) -> int:
    """Characters IAM counts against the managed policy limit (whitespace excluded)."""
    return len(json.dumps(doc, separators=(",", ":")))


def operator_policies(t: Target) -> list[dict[str, Any]]:
    """The statements packed in order into as few documents as IAM's size limit allows."""
    docs: list[dict[str, Any]] = []
    for st in statements(t):
        if docs and size({**docs[-1], "Statement": [*docs[-1]["Statement"], st]}) <= (
            MAX_POLICY_CHARS
        ):
            docs[-1]["Statement"].append(st)
            continue
        doc = {"Version": VERSION, "Statement": [st]}
        if size(doc) > MAX_POLICY_CHARS:
            raise ValueError(f"statement {st['Sid']} alone exceeds {MAX_POLICY_CHARS} characters")
        docs.append(doc)
    return docs


def operator_policy(t: Target) -> dict[str, Any]:
    """Every statement in one document (for analysis; IAM needs `operator_policies`)."""
    return {"Version": VERSION, "Statement": statements(t)}


def iam_action(service: str, operation: str) -> str:
    """botocore's service and operation name → the IAM action that authorises it."""
    prefix = {"elbv2": "elasticloadbalancing", "service-quotas": "servicequotas"}.get(
        service, service
    )
    if service == "budgets":
        if operation in BUDGETS_VIEW:
            operation = "ViewBudget"
        elif operation in BUDGETS_MODIFY:
            operation = "ModifyBudget"
    return f"{prefix}:{operation}"


def allowed_actions(stack: str = "", account: str = "123456789012") -> set[str]:
    """Every action some Allow statement names (whatever its resource or condition)."""
    out: set[str] = set()
    for st in statements(Target(account, stack)):
        if st["Effect"] == "Allow":
            actions = st["Action"]
            out.update([actions] if isinstance(actions, str) else actions)
    return out


# -- CI: GitHub Actions through OIDC -----------------------------------------------------------
# A workflow job exchanges its OIDC token for the role's short-lived credentials
# (sts:AssumeRoleWithWebIdentity). GitHub's `sub` claim names the repository and what the job
# runs for: `ref:refs/heads/<branch>` for a push, `pull_request` for a pull request, and
# `environment:<name>` (instead of the ref) whenever the job names an environment.

GITHUB_OIDC = "token.actions.githubusercontent.com"
GITHUB_AUDIENCE = "sts.amazonaws.com"  # what aws-actions/configure-aws-credentials asks for
# GitHub's rules: an owner is 1-39 letters, digits or single inner hyphens; a repository
# name is up to 100 letters, digits, ".", "_" or "-" (not "." or "..").
_OWNER = r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}"
_NAME = r"[A-Za-z0-9._-]{1,100}"
# Branch and environment names: the plain characters only, so that nothing in a claim can
# read as a wildcard or a separator (":" splits the claim's parts).
_BRANCH = r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*"
_ENVIRONMENT = r"[A-Za-z0-9._-]{1,255}"
# Reads that return a secret's value: the read-only policy gives none of them, except on the
# run lock's parameter (a run's description, no secret).
SECRET_READS = frozenset(
    {
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
        "ssm:GetParameterHistory",
        "secretsmanager:GetSecretValue",
    }
)
# IAM actions that only read (Budgets authorises every read with ViewBudget).
READ_VERBS = ("Describe", "Get", "List", "View")


def github_subjects(
    repo: str,
    branch: str | None = None,
    environment: str | None = None,
    pull_requests: bool = False,
) -> list[str]:
    """The `sub` claims a role trusts, validated; a config error names what is allowed."""
    if not re.fullmatch(rf"{_OWNER}/{_NAME}", repo or "") or repo.split("/")[1] in (".", ".."):
        raise ConfigError(
            f"--repo: {repo!r} is not allowed; expected OWNER/NAME as GitHub spells it "
            "(owner: letters, digits, inner hyphens; name: letters, digits, '.', '_', '-')"
        )
    subjects = []
    if branch is not None:
        bad = ".." in branch or branch.endswith((".lock", ".")) or branch.startswith(".")
        if bad or not re.fullmatch(_BRANCH, branch):
            raise ConfigError(
                f"--branch: {branch!r} is not allowed; expected a branch name of letters, "
                "digits, '.', '_', '-' and '/' (no wildcard)"
            )
        subjects.append(f"repo:{repo}:ref:refs/heads/{branch}")
    if environment is not None:
        if not re.fullmatch(_ENVIRONMENT, environment):
            raise ConfigError(
                f"--environment: {environment!r} is not allowed; expected up to 255 letters, "
                "digits, '.', '_' or '-'"
            )
        subjects.append(f"repo:{repo}:environment:{environment}")
    if pull_requests:
        subjects.append(f"repo:{repo}:pull_request")
    if not subjects:
        raise ConfigError(
            "--trust: trusts nothing; expected --branch NAME, --environment NAME and/or "
            "--pull-requests"
        )
    return subjects


def trust_policy(
    account: str,
    repo: str,
    *,
    branch: str | None = None,
    environment: str | None = None,
    pull_requests: bool = False,
    partition: str = "aws",
) -> dict[str, Any]:
    """The trust policy of a CI role: GitHub's OIDC provider in `account`, only for the
    repository's named branch, environment or pull requests. StringEquals, never StringLike:
    a subject with a wildcard would trust every branch someone with push access can make."""
    subjects = github_subjects(repo, branch, environment, pull_requests)
    provider = f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC}"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "GitHubActions",
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC}:aud": GITHUB_AUDIENCE,
                        f"{GITHUB_OIDC}:sub": subjects if len(subjects) > 1 else subjects[0],
                    }
                },
            }
        ],
    }


def read_only_policy(t: Target) -> dict[str, Any]:
    """What `pcls plan` and `pcls status` need (a CI role for pull requests): every read of
    the operator policy on the same resources and conditions, no write, no secret's value."""
    lock = _Builder(t).arn("ssm", f"parameter/pcls/{t.stack or '*'}/run/lock")
    out = []
    for st in statements(t):
        if st["Effect"] != "Allow":
            continue
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        reads = [
            a
            for a in actions
            if a.split(":", 1)[1].startswith(READ_VERBS)
            and (a not in SECRET_READS or st["Resource"] == lock)
        ]
        if reads:
            out.append({**st, "Action": reads})
    return {"Version": VERSION, "Statement": out}

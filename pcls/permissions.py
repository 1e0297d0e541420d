"""The IAM policy a person or CI role needs to run pcls (plan, up, status, teardown).

An explicit list, kept honest by tests: every AWS operation pcls calls in a full lifecycle
(recorded through botocore) and every client method named in the code must be covered here.
Writes on IAM roles, SSM parameters and log groups are scoped to the stack's own names.
"""

from __future__ import annotations

from typing import Any

# Read-only calls; most have no resource-level permissions, so they take "*".
READ = {
    "acm": ["DescribeCertificate", "ListCertificates", "ListTagsForCertificate"],
    "application-autoscaling": [
        "DescribeScalableTargets",
        "DescribeScalingPolicies",
        "DescribeScheduledActions",
        "ListTagsForResource",
    ],
    "cloudwatch": ["DescribeAlarms", "GetDashboard", "ListDashboards", "ListTagsForResource"],
    "ec2": [
        "DescribeAvailabilityZones",
        "DescribeInternetGateways",
        "DescribeNetworkInterfaces",
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
        "ListServices",
        "ListTaskDefinitions",
        "ListTasks",
        "ListTagsForResource",
    ],
    "elasticloadbalancing": [
        "DescribeListeners",
        "DescribeLoadBalancerAttributes",
        "DescribeLoadBalancers",
        "DescribeRules",
        "DescribeTags",
        "DescribeTargetGroupAttributes",
        "DescribeTargetGroups",
        "DescribeTargetHealth",
    ],
    "iam": ["GetRole", "GetRolePolicy", "ListAttachedRolePolicies", "ListRolePolicies"],
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
    "servicediscovery": [
        "GetNamespace",
        "GetOperation",
        "GetService",
        "ListNamespaces",
        "ListServices",
        "ListTagsForResource",
    ],
    "sns": ["GetTopicAttributes", "ListSubscriptionsByTopic", "ListTagsForResource", "ListTopics"],
    "ssm": ["DescribeParameters"],
    "sts": ["GetCallerIdentity"],
}

# Writes on resources whose ARNs pcls cannot know in advance (generated ids): "*".
WRITE = {
    "acm": ["AddTagsToCertificate", "DeleteCertificate", "RequestCertificate"],
    "application-autoscaling": [
        "DeleteScalingPolicy",
        "DeleteScheduledAction",
        "DeregisterScalableTarget",
        "PutScalingPolicy",
        "PutScheduledAction",
        "RegisterScalableTarget",
        "TagResource",
    ],
    "cloudwatch": [
        "DeleteAlarms",
        "DeleteDashboards",
        "PutDashboard",
        "PutMetricAlarm",
        "TagResource",
    ],
    "ec2": [
        "AssociateRouteTable",
        "AssociateSubnetCidrBlock",
        "AssociateVpcCidrBlock",
        "AttachInternetGateway",
        "AuthorizeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",
        "CreateInternetGateway",
        "CreateRoute",
        "CreateRouteTable",
        "CreateSecurityGroup",
        "CreateSubnet",
        "CreateTags",
        "CreateVpc",
        "DeleteInternetGateway",
        "DeleteRouteTable",
        "DeleteSecurityGroup",
        "DeleteSubnet",
        "DeleteVpc",
        "DetachInternetGateway",
        "DisassociateRouteTable",
        "ModifySubnetAttribute",
        "ModifyVpcAttribute",
        "ReplaceRoute",
        "ReplaceRouteTableAssociation",
        "RevokeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
    ],
    "ecs": [
        "CreateCluster",
        "CreateService",
        "DeleteCluster",
        "DeleteService",
        "DeleteTaskDefinitions",
        "DeregisterTaskDefinition",
        "PutClusterCapacityProviders",
        "RegisterTaskDefinition",
        "TagResource",
        "UpdateCluster",
        "UpdateService",
    ],
    "elasticloadbalancing": [
        "AddTags",
        "CreateListener",
        "CreateLoadBalancer",
        "CreateTargetGroup",
        "DeleteListener",
        "DeleteLoadBalancer",
        "DeleteTargetGroup",
        "ModifyListener",
        "ModifyLoadBalancerAttributes",
        "ModifyTargetGroup",
        "ModifyTargetGroupAttributes",
        "SetIpAddressType",
        "SetSecurityGroups",
        "SetSubnets",
    ],
    # Cloud Map's private namespace creates and deletes a private hosted zone for the caller.
    "route53": [
        "ChangeResourceRecordSets",
        "ChangeTagsForResource",
        "CreateHostedZone",
        "DeleteHostedZone",
    ],
    "servicediscovery": [
        "CreatePrivateDnsNamespace",
        "CreateService",
        "DeleteNamespace",
        "DeleteService",
        "TagResource",
        "UpdateService",
    ],
    "sns": ["CreateTopic", "DeleteTopic", "Subscribe", "TagResource", "Unsubscribe"],
}

# Writes scoped to the stack's own names.
IAM_ROLE_WRITE = [
    "CreateRole",
    "DeleteRole",
    "DeleteRolePolicy",
    "DetachRolePolicy",
    "PutRolePolicy",
    "TagRole",
    "UpdateAssumeRolePolicy",
]
SSM_WRITE = ["AddTagsToResource", "DeleteParameter", "DeleteParameters", "PutParameter"]
LOGS_WRITE = ["CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "TagResource"]
# The first ECS cluster, load balancer, scalable target and namespace of an account create
# their service-linked roles through the caller.
SERVICE_LINKED = [
    "ecs.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
]


def _actions(table: dict[str, list[str]]) -> list[str]:
    return sorted(f"{svc}:{op}" for svc, ops in table.items() for op in ops)


def operator_policy(stack: str = "*", account: str = "*", region: str = "*") -> dict[str, Any]:
    """The policy document; `stack` "*" gives one that serves every stack."""
    role = f"arn:aws:iam::{account}:role/{stack}-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": _actions(READ), "Resource": "*"},
            {"Sid": "Manage", "Effect": "Allow", "Action": _actions(WRITE), "Resource": "*"},
            {
                "Sid": "StackRoles",
                "Effect": "Allow",
                "Action": [f"iam:{a}" for a in IAM_ROLE_WRITE],
                "Resource": role,
            },
            {
                "Sid": "PassStackRolesToEcsTasks",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": role,
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            },
            {
                "Sid": "ServiceLinkedRoles",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": SERVICE_LINKED}},
            },
            {
                "Sid": "StackParameters",
                "Effect": "Allow",
                "Action": [f"ssm:{a}" for a in SSM_WRITE],
                "Resource": f"arn:aws:ssm:{region}:{account}:parameter/pcls/{stack}/*",
            },
            {
                "Sid": "StackLogGroup",
                "Effect": "Allow",
                "Action": [f"logs:{a}" for a in LOGS_WRITE],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/pcls/{stack}*",
            },
        ],
    }


def iam_action(service: str, operation: str) -> str:
    """botocore's service and operation name → the IAM action that authorises it."""
    prefix = {"elbv2": "elasticloadbalancing"}.get(service, service)
    return f"{prefix}:{operation}"


def allowed_actions(stack: str = "*") -> set[str]:
    out: set[str] = set()
    for st in operator_policy(stack)["Statement"]:
        actions = st["Action"]
        out.update([actions] if isinstance(actions, str) else actions)
    return out

"""IAM: the task execution role and one task role per task, each with explicit inline policies.

Every document pcls writes is built by a function in `POLICIES`, so a linter (or a reader) can
render all of them for any scope with `documents(scope)`. Decisions:

- Execution role: `logs:CreateLogStream`/`logs:PutLogEvents` on the stack's log group only, and
  `ssm:GetParameters` on exactly the stack's parameter ARNs. No ECR actions: the images come from
  ghcr.io and public.ecr.aws, which need no AWS credentials. No `kms:Decrypt`: the parameters use
  the AWS managed key `aws/ssm`, whose key policy lets any principal of the account decrypt
  through SSM; ECS documents kms:Decrypt as needed only for a customer managed key.
- Signal task role: no permissions at all; nothing in web, prosody or jicofo calls AWS.
- Bridge task role: `ecs:UpdateTaskProtection` on the tasks of the stack's cluster only
  (`task/<cluster>/*`, the narrowest resource the action accepts). The bridge guard reaches it
  through the ECS agent endpoint, which signs with this role.
- Trust: `ecs-tasks.amazonaws.com`; the task roles also carry the confused-deputy conditions
  ECS documents for task roles (aws:SourceAccount, aws:SourceArn within this account's ECS).
- Permissions boundary: every role carries the managed policy `policy/pcls/<stack>-boundary`
  (step `iam-boundary`), which allows no more than the union of what the roles need. The
  operator policy (`pcls iam-policy`) lets its holder create and change roles only with that
  boundary, so no role it makes or edits can exceed it. The boundary itself is the one thing
  that policy cannot write (whoever can rewrite it can widen every role): an administrator's
  run creates or repairs it, the operator's runs check it and may delete it on teardown.
- Path: roles and boundary live under `/pcls/`, so the operator policy can name them exactly
  and a role someone else made with the same name (at another path) is never in its reach.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from pcls import router
from pcls.aws import error_code, eventually, ignore_missing, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Collision, Context, Resource, Step
from pcls.errors import PclsError
from pcls.steps.platform import (
    SLEEP_TAG,
    cluster_name,
    log_group_name,
    schedule_group_name,
    wake_function_name,
    wake_log_group_name,
)

VERSION = "2012-10-17"
TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
WAKE_ROLE_STEP = "role-wake"
SCHEDULE_ROLE_STEP = "role-wake-schedule"
SLEEP_TAGS = (SLEEP_TAG, f"{SLEEP_TAG}-since")  # what the wake function may write on the cluster
WAKE_READS = (
    "application-autoscaling:DescribeScalableTargets",
    "cloudwatch:GetMetricData",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTargetHealth",
)
IAM_PATH = "/pcls/"  # roles and the boundary policy; the operator policy names this path
BOUNDARY_STEP = "iam-boundary"
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def boundary_name(stack: str) -> str:
    return f"{stack}-boundary"


def boundary_arn(partition: str, account: str, stack: str) -> str:
    return f"arn:{partition}:iam::{account}:policy{IAM_PATH}{boundary_name(stack)}"


def role_arn(partition: str, account: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:role{IAM_PATH}{name}"


@dataclass(frozen=True)
class Scope:
    """Everything the documents depend on."""

    partition: str
    region: str
    account: str
    stack: str
    log_group: str
    cluster: str
    parameter_arns: tuple[str, ...]
    # The wake function's reach: the HTTPS listener it points, the services it scales.
    listener_arn: str = ""
    services: tuple[str, ...] = ()


def _trust(scope: Scope, *, source_conditions: bool) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": TASKS_PRINCIPAL},
        "Action": "sts:AssumeRole",
    }
    if source_conditions:
        statement["Condition"] = {
            "StringEquals": {"aws:SourceAccount": scope.account},
            "ArnLike": {
                "aws:SourceArn": f"arn:{scope.partition}:ecs:{scope.region}:{scope.account}:*"
            },
        }
    return {"Version": VERSION, "Statement": [statement]}


def execution_trust(scope: Scope) -> dict[str, Any]:
    # ECS documents the confused-deputy conditions for task roles, not for the execution role,
    # which the Fargate agent assumes; a condition it does not send would stop every task.
    return _trust(scope, source_conditions=False)


def task_trust(scope: Scope) -> dict[str, Any]:
    return _trust(scope, source_conditions=True)


def _allow(sid: str, action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}


def _task_logs(sid: str, scope: Scope) -> dict[str, Any]:
    """Writing the stack's task logs: the execution role's grant and the boundary's cap."""
    at = f"{scope.region}:{scope.account}"
    group = f"arn:{scope.partition}:logs:{at}:log-group:{scope.log_group}"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    return _allow(sid, actions, [group, f"{group}:log-stream:*"])


def _task_protection(sid: str, scope: Scope) -> dict[str, Any]:
    """Scale-in protection of the stack's own tasks: the bridge's grant and the boundary's cap."""
    tasks = f"arn:{scope.partition}:ecs:{scope.region}:{scope.account}:task/{scope.cluster}/*"
    return _allow(sid, "ecs:UpdateTaskProtection", tasks)


def execution_policy(scope: Scope) -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [
            _task_logs("WriteTaskLogs", scope),
            _allow("ReadStackSecrets", "ssm:GetParameters", sorted(scope.parameter_arns)),
        ],
    }


def jvb_task_policy(scope: Scope) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": [_task_protection("OwnScaleInProtection", scope)]}


def wake_trust(scope: Scope) -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": LAMBDA_PRINCIPAL},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def schedule_trust(scope: Scope) -> dict[str, Any]:
    # The confused-deputy conditions EventBridge Scheduler documents for its execution role.
    group = f"arn:{scope.partition}:scheduler:{scope.region}:{scope.account}:schedule-group/"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": SCHEDULER_PRINCIPAL},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": scope.account},
                    "ArnEquals": {"aws:SourceArn": group + schedule_group_name(scope.stack)},
                },
            }
        ],
    }


def _wake_arns(scope: Scope) -> dict[str, str]:
    at = f"{scope.partition}:%s:{scope.region}:{scope.account}"
    function = wake_function_name(scope.stack)
    return {
        "cluster": f"arn:{at % 'ecs'}:cluster/{scope.cluster}",
        "function": f"arn:{at % 'lambda'}:function:{function}",
        "group": f"arn:{at % 'logs'}:log-group:{wake_log_group_name(scope.stack)}",
        "targets": f"arn:{at % 'application-autoscaling'}:scalable-target/*",
        "alarms": f"arn:{at % 'cloudwatch'}:alarm:{scope.stack}-*",
    }


# Alarm ARNs take resource-level permissions (and aws:ResourceTag) for these.
ALARM_READS = ("cloudwatch:DescribeAlarms",)
ALARM_SWITCHES = (
    "cloudwatch:DisableAlarmActions",
    "cloudwatch:EnableAlarmActions",
    "cloudwatch:SetAlarmState",
)


def _alarm_statements(prefix: str, scope: Scope) -> list[dict[str, Any]]:
    """The stack's alarms: read, actions off while it sleeps, on (after setting OK) once awake."""
    alarms = _wake_arns(scope)["alarms"]
    return [
        {
            "Sid": f"{prefix}Read",
            "Effect": "Allow",
            "Action": list(ALARM_READS),
            "Resource": alarms,
        },
        {
            "Sid": f"{prefix}Switch",
            "Effect": "Allow",
            "Action": list(ALARM_SWITCHES),
            "Resource": alarms,
            "Condition": {"StringEquals": {"aws:ResourceTag/pcls:stack": scope.stack}},
        },
    ]


def wake_policy(scope: Scope) -> dict[str, Any]:
    """The wake function: its stack's services, listener, bridge target and state tag only."""
    arns = _wake_arns(scope)
    at = f"arn:{scope.partition}:ecs:{scope.region}:{scope.account}"
    # From the names alone (a linter's rendering) the stack's patterns stand in for them.
    services = [f"{at}:service/{scope.cluster}/{name}" for name in sorted(scope.services)] or [
        f"{at}:service/{scope.cluster}/*"
    ]
    listener = scope.listener_arn or (
        f"arn:{scope.partition}:elasticloadbalancing:{scope.region}:{scope.account}:"
        f"listener/app/{scope.stack}-alb/*/*"
    )
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "StackServices",
                "Effect": "Allow",
                "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                "Resource": services,
            },
            {
                "Sid": "ReadState",
                "Effect": "Allow",
                "Action": "ecs:ListTagsForResource",
                "Resource": arns["cluster"],
            },
            {
                # Only the sleep tags: the ownership tags stay out of reach.
                "Sid": "WriteState",
                "Effect": "Allow",
                "Action": "ecs:TagResource",
                "Resource": arns["cluster"],
                "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": list(SLEEP_TAGS)}},
            },
            {
                "Sid": "PointListener",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:ModifyListener",
                "Resource": listener,
            },
            {
                # Scalable target ARNs carry an id AWS makes: the stack's by its tag.
                "Sid": "BridgeBounds",
                "Effect": "Allow",
                "Action": "application-autoscaling:RegisterScalableTarget",
                "Resource": arns["targets"],
                "Condition": {"StringEquals": {"aws:ResourceTag/pcls:stack": scope.stack}},
            },
            {
                # No resource-level permissions exist for these reads.
                "Sid": "Reads",
                "Effect": "Allow",
                "Action": sorted(WAKE_READS),
                "Resource": "*",
            },
            *_alarm_statements("StackAlarms", scope),
            {
                "Sid": "OwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [arns["group"], f"{arns['group']}:log-stream:*"],
            },
        ],
    }


def schedule_policy(scope: Scope) -> dict[str, Any]:
    """EventBridge Scheduler: invoke the stack's wake function, nothing else."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "InvokeWakeFunction",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": _wake_arns(scope)["function"],
            }
        ],
    }


def boundary_policy(scope: Scope) -> dict[str, Any]:
    """The permissions boundary of every role of the stack: the union of what they need.

    Independent of the config (all secret names pcls may make are under the stack's path), so
    it changes only with pcls itself and an administrator writes it rarely.
    """
    at = f"{scope.region}:{scope.account}"
    wake = _wake_arns(scope)
    secrets = (
        f"arn:{scope.partition}:ssm:{scope.region}:{scope.account}:parameter/pcls/{scope.stack}/*"
    )
    return {
        "Version": VERSION,
        "Statement": [
            _task_logs("TaskLogs", scope),
            _allow("StackSecrets", "ssm:GetParameters", secrets),
            _task_protection("OwnTaskProtection", scope),
            {
                "Sid": "WakeServices",
                "Effect": "Allow",
                "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                "Resource": f"arn:{scope.partition}:ecs:{at}:service/{scope.cluster}/*",
            },
            {
                "Sid": "WakeState",
                "Effect": "Allow",
                "Action": ["ecs:ListTagsForResource", "ecs:TagResource"],
                "Resource": wake["cluster"],
            },
            {
                "Sid": "WakeListener",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:ModifyListener",
                "Resource": (
                    f"arn:{scope.partition}:elasticloadbalancing:{at}:listener/app/"
                    f"{scope.stack}-alb/*/*"
                ),
            },
            {
                "Sid": "WakeBridgeBounds",
                "Effect": "Allow",
                "Action": "application-autoscaling:RegisterScalableTarget",
                "Resource": wake["targets"],
                "Condition": {"StringEquals": {"aws:ResourceTag/pcls:stack": scope.stack}},
            },
            {"Sid": "WakeReads", "Effect": "Allow", "Action": sorted(WAKE_READS), "Resource": "*"},
            *_alarm_statements("WakeAlarms", scope),
            {
                "Sid": "WakeLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [wake["group"], f"{wake['group']}:log-stream:*"],
            },
            {
                "Sid": "WakeInvoke",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": wake["function"],
            },
        ],
    }


Document = Callable[[Scope], dict[str, Any]]


@dataclass(frozen=True)
class RoleSpec:
    step: str
    suffix: str  # role name = f"{stack}-{suffix}"
    description: str
    trust: Document
    inline: dict[str, Document] = field(default_factory=dict)
    passed_to: str = TASKS_PRINCIPAL  # the service the operator passes the role to


POLICIES: dict[str, RoleSpec] = {
    "execution": RoleSpec(
        "role-execution",
        "execution",
        "ECS pulls, logs and reads the stack's parameters for its tasks",
        execution_trust,
        {"logs-and-secrets": execution_policy},
    ),
    "signal-task": RoleSpec(
        "role-signal",
        "signal-task",
        "signal task (web, prosody, jicofo): no AWS permissions",
        task_trust,
    ),
    "jvb-task": RoleSpec(
        "role-jvb",
        "jvb-task",
        "bridge task: the bridge guard sets scale-in protection on its own task",
        task_trust,
        {"task-protection": jvb_task_policy},
    ),
    "wake": RoleSpec(
        WAKE_ROLE_STEP,
        "wake",
        "wake function: puts the stack to sleep and wakes it (its services, listener, bridges)",
        wake_trust,
        {"sleep-and-wake": wake_policy},
        LAMBDA_PRINCIPAL,
    ),
    "wake-schedule": RoleSpec(
        SCHEDULE_ROLE_STEP,
        "wake-schedule",
        "EventBridge Scheduler: invokes the wake function",
        schedule_trust,
        {"invoke-wake-function": schedule_policy},
        SCHEDULER_PRINCIPAL,
    ),
}


def role_names(stack: str, passed_to: str = "") -> list[str]:
    """The names of every role pcls makes for a stack (those passed to `passed_to`)."""
    return [
        f"{stack}-{spec.suffix}"
        for spec in POLICIES.values()
        if not passed_to or spec.passed_to == passed_to
    ]


def documents(scope: Scope) -> dict[str, dict[str, Any]]:
    """Role name -> {"trust": document, "inline": {policy name: document}}, as pcls writes them."""
    return {
        f"{scope.stack}-{spec.suffix}": {
            "trust": spec.trust(scope),
            "inline": {name: doc(scope) for name, doc in spec.inline.items()},
        }
        for spec in POLICIES.values()
    }


def stack_scope(partition: str, region: str, account: str, stack: str) -> Scope:
    """The scope of a stack from its names alone (no AWS call): enough for the boundary."""
    names = type("Names", (), {"stack": stack})()
    return Scope(partition, region, account, stack, log_group_name(names), cluster_name(names), ())


def scope_of(ctx: Context, parameter_arns: tuple[str, ...] = ()) -> Scope:
    ident = ctx.aws.identity()
    return Scope(
        partition=ident["arn"].split(":")[1],
        region=ctx.aws.region,
        account=ident["account"],
        stack=ctx.stack,
        log_group=log_group_name(ctx),
        cluster=cluster_name(ctx),
        parameter_arns=parameter_arns,
    )


_LISTY = {"Statement", "Action", "NotAction", "Resource", "NotResource"}


def canonical(doc: Any) -> Any:
    """Order-free form of a policy document; "x" and ["x"] compare equal where IAM allows both."""
    return _canon(json.loads(doc) if isinstance(doc, str) else doc)


def _canon(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: _canon([v] if k in _LISTY and not isinstance(v, list) else v) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return sorted((_canon(v) for v in doc), key=lambda v: json.dumps(v, sort_keys=True))
    return doc


def _same(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)


def _unless_no_such_entity(call: Callable[[], Any]) -> Any:
    """What `call` returns, or None when IAM has no such entity."""
    try:
        return call()
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise


def _needs_administrator(step: str, verb: str, arn: str) -> PclsError:
    return PclsError(
        f"{step}: this identity may not {verb} the permissions boundary {arn}. That is by "
        "design: the policy `pcls iam-policy` prints cannot write it, since whoever can change "
        "the boundary can widen every role pcls makes. Have an administrator run `pcls up` "
        "once (or create it from `pcls iam-policy --boundary`), then run up again"
    )


class Boundary(Step):
    """The managed policy that caps every role of the stack (see boundary_policy)."""

    name = BOUNDARY_STEP
    kind = "iam policy"
    id_pattern = r"arn:aws[a-z-]*:iam::\d{12}:policy/pcls/[a-z0-9-]+-boundary"

    def arn(self, ctx: Context) -> str:
        ident = ctx.aws.identity()
        return boundary_arn(ident["arn"].split(":")[1], ident["account"], ctx.stack)

    def document(self, ctx: Context) -> dict[str, Any]:
        return boundary_policy(scope_of(ctx))

    def find(self, ctx: Context) -> Resource | None:
        arn = self.arn(ctx)
        got = _unless_no_such_entity(lambda: ctx.aws.cached("iam", "get_policy", PolicyArn=arn))
        if got is None:
            return None
        policy = got["Policy"]
        tags = ctx.aws.cached("iam", "list_policy_tags", PolicyArn=arn).get("Tags", [])
        if not ctx.claims(self.name, arn, tags):
            ctx.collision(self.name, arn, f"IAM policy {boundary_name(ctx.stack)}", tags)
            return None
        return Resource(arn, attrs={"policy": policy, "tags": tags})

    def create(self, ctx: Context) -> Resource:
        arn = self.arn(ctx)
        try:
            policy = ctx.aws.client("iam").create_policy(
                PolicyName=boundary_name(ctx.stack),
                Path=IAM_PATH,
                PolicyDocument=json.dumps(self.document(ctx)),
                Description=f"pcls {ctx.stack}: the most any role of the stack may do",
                Tags=ctx.tags(self.name),
            )["Policy"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "EntityAlreadyExists":
                raise Collision(
                    f"{self.name}: IAM policy {arn} exists without this stack's tags; "
                    f"rename the stack (stack.name), remove that policy, or "
                    f"`pcls adopt {self.name} {arn}`"
                ) from None
            if error_code(exc) in DENIED:
                raise _needs_administrator(self.name, "create", arn) from None
            raise
        return Resource(arn, attrs={"policy": policy, "tags": ctx.tags(self.name), "fresh": True})

    def _document(self, ctx: Context, res: Resource) -> Any:
        version = res.attrs["policy"]["DefaultVersionId"]
        out = ctx.aws.cached("iam", "get_policy_version", PolicyArn=res.id, VersionId=version)
        return out["PolicyVersion"]["Document"]

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        out = []
        if not res.attrs.get("fresh") and not _same(self._document(ctx, res), self.document(ctx)):
            out.append("document differs")
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(res.attrs["tags"]))

    def _versions(self, ctx: Context, arn: str) -> list[dict[str, Any]]:
        out = ctx.aws.client("iam").list_policy_versions(PolicyArn=arn)["Versions"]
        return sorted(out, key=lambda v: str(v.get("CreateDate", "")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        iam = ctx.aws.client("iam")
        if "document differs" in drift:
            try:
                versions = self._versions(ctx, res.id)
                if len(versions) >= MAX_POLICY_VERSIONS:
                    oldest = next(v for v in versions if not v.get("IsDefaultVersion"))
                    iam.delete_policy_version(PolicyArn=res.id, VersionId=oldest["VersionId"])
                iam.create_policy_version(
                    PolicyArn=res.id,
                    PolicyDocument=json.dumps(self.document(ctx)),
                    SetAsDefault=True,
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in DENIED:
                    raise _needs_administrator(self.name, "change", res.id) from None
                raise
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def tag(self, ctx: Context, res: Resource) -> None:
        ctx.aws.client("iam").tag_policy(PolicyArn=res.id, Tags=ctx.tags(self.name))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"version": res.attrs["policy"].get("DefaultVersionId", "")}

    def delete(self, ctx: Context, res: Resource) -> None:
        iam = ctx.aws.client("iam")
        versions = _unless_no_such_entity(lambda: self._versions(ctx, res.id))
        if versions is None:
            return
        # A managed policy goes only once its other versions are gone.
        for v in versions:
            if not v.get("IsDefaultVersion"):
                ignore_missing(
                    lambda v=v: iam.delete_policy_version(
                        PolicyArn=res.id, VersionId=v["VersionId"]
                    )
                )
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: iam.delete_policy(PolicyArn=res.id)),
            codes=("DeleteConflict",),
            timeout=ctx.patience.iam_propagation,
            why="waiting for the roles to release the boundary",
        )


class Role(Step):
    kind = "iam role"
    id_pattern = r"[a-z0-9-]+-(execution|signal-task|jvb-task|wake|wake-schedule)"

    def __init__(self, key: str, depends_on: tuple[str, ...]) -> None:
        self.spec = POLICIES[key]
        self.name = self.spec.step
        # Every role follows `secrets`: the execution policy names their ARNs, and teardown
        # then removes the roles before the parameters. The boundary comes first and goes last.
        self.depends_on = (BOUNDARY_STEP, *depends_on)

    def role_name(self, ctx: Context) -> str:
        return f"{ctx.stack}-{self.spec.suffix}"

    def _scope(self, ctx: Context) -> Scope:
        arns = ctx.out("secrets").attrs["arns"] if "secrets" in self.depends_on else {}
        scope = scope_of(ctx, tuple(sorted(arns.values())))
        if "listener-https" in self.depends_on:
            services = (*router.shard_names(ctx.cfg.signal.shards), "jvb")
            listener = ctx.out("listener-https").id
            scope = dataclasses.replace(scope, listener_arn=listener, services=services)
        return scope

    def _boundary(self, ctx: Context) -> str:
        return ctx.out(BOUNDARY_STEP).id

    def find(self, ctx: Context) -> Resource | None:
        name = self.role_name(ctx)
        got = _unless_no_such_entity(lambda: ctx.aws.cached("iam", "get_role", RoleName=name))
        if got is None:
            return None
        role = got["Role"]
        tags = role.get("Tags")
        if role.get("Path", "/") != IAM_PATH:
            # Out of the operator policy's reach by design, whatever its tags say.
            what = f"IAM role {name} at path {role.get('Path', '/')} (pcls's are under {IAM_PATH})"
            ctx.collision(self.name, name, what, tags)
            return None
        if not ctx.claims(self.name, name, tags):
            ctx.collision(self.name, name, f"IAM role {name}", tags)
            return None
        return Resource(role["RoleName"], attrs={"arn": role["Arn"], "role": role})

    def create(self, ctx: Context) -> Resource:
        name = self.role_name(ctx)
        try:
            role = ctx.aws.client("iam").create_role(
                RoleName=name,
                Path=IAM_PATH,
                AssumeRolePolicyDocument=json.dumps(self.spec.trust(self._scope(ctx))),
                Description=f"pcls {ctx.stack}: {self.spec.description}",
                PermissionsBoundary=self._boundary(ctx),
                Tags=ctx.tags(self.name),
            )["Role"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "EntityAlreadyExists":
                raise Collision(
                    f"{self.name}: IAM role {name} exists without this stack's tags; "
                    "rename the stack (stack.name) or remove that role"
                ) from None
            raise
        # A new role has no policies and the boundary it was made with: drift() need not look.
        return Resource(name, attrs={"arn": role["Arn"], "role": role, "fresh": True})

    def _inline(self, ctx: Context, res: Resource) -> tuple[dict[str, Any], list[str]]:
        """(inline policies pcls owns, as AWS has them; names of all inline policies)."""
        if res.attrs.get("fresh"):
            return {}, []
        iam = ctx.aws.client("iam")
        listed = iam.list_role_policies(RoleName=res.id)["PolicyNames"]
        have = {
            n: iam.get_role_policy(RoleName=res.id, PolicyName=n)["PolicyDocument"]
            for n in listed
            if n in self.spec.inline
        }
        return have, listed

    def _attached(self, ctx: Context, res: Resource) -> list[str]:
        if res.attrs.get("fresh"):
            return []
        out = ctx.aws.client("iam").list_attached_role_policies(RoleName=res.id)
        return [p["PolicyArn"] for p in out["AttachedPolicies"]]

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        scope = self._scope(ctx)
        role = res.attrs["role"]
        out = []
        if not res.attrs.get("fresh"):
            have = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            if have != self._boundary(ctx):
                out.append(f"permissions boundary {have or 'missing'}")
        if not _same(role.get("AssumeRolePolicyDocument"), self.spec.trust(scope)):
            out.append("trust policy differs")
        have, listed = self._inline(ctx, res)
        for name, doc in self.spec.inline.items():
            if name not in have:
                out.append(f"inline policy {name} missing")
            elif not _same(have[name], doc(scope)):
                out.append(f"inline policy {name} differs")
        out += [f"inline policy {n} not in pcls" for n in listed if n not in self.spec.inline]
        out += [f"managed policy {a} attached" for a in self._attached(ctx, res)]
        return out + tag_drift(ctx.tag_dict(self.name), tags_of(role.get("Tags")))

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        iam = ctx.aws.client("iam")
        scope = self._scope(ctx)
        if any(d.startswith("permissions boundary ") for d in drift):
            # First: the operator policy allows writing inline policies only under the boundary.
            iam.put_role_permissions_boundary(
                RoleName=res.id, PermissionsBoundary=self._boundary(ctx)
            )
        if "trust policy differs" in drift:
            iam.update_assume_role_policy(
                RoleName=res.id, PolicyDocument=json.dumps(self.spec.trust(scope))
            )
        for name, doc in self.spec.inline.items():
            if f"inline policy {name} missing" in drift or f"inline policy {name} differs" in drift:
                # Right after create_role, IAM may not know the role yet.
                eventually(
                    lambda name=name, doc=doc: iam.put_role_policy(
                        RoleName=res.id, PolicyName=name, PolicyDocument=json.dumps(doc(scope))
                    ),
                    codes=("NoSuchEntity",),
                    timeout=ctx.patience.iam_propagation,
                    sleep=ctx.patience.sleep,
                )
        for d in drift:
            if d.startswith("inline policy ") and d.endswith(" not in pcls"):
                extra = d[len("inline policy ") : -len(" not in pcls")]
                ignore_missing(
                    lambda n=extra: iam.delete_role_policy(RoleName=res.id, PolicyName=n)
                )
            elif d.startswith("managed policy ") and d.endswith(" attached"):
                policy = d[len("managed policy ") : -len(" attached")]
                ignore_missing(
                    lambda p=policy: iam.detach_role_policy(RoleName=res.id, PolicyArn=p)
                )
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)

    def tag(self, ctx: Context, res: Resource) -> None:
        ctx.aws.client("iam").tag_role(RoleName=res.id, Tags=ctx.tags(self.name))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"policies": len(self.spec.inline)}

    def delete(self, ctx: Context, res: Resource) -> None:
        iam = ctx.aws.client("iam")
        try:
            for name in iam.list_role_policies(RoleName=res.id)["PolicyNames"]:
                ignore_missing(lambda n=name: iam.delete_role_policy(RoleName=res.id, PolicyName=n))
            for p in iam.list_attached_role_policies(RoleName=res.id)["AttachedPolicies"]:
                ignore_missing(
                    lambda a=p["PolicyArn"]: iam.detach_role_policy(RoleName=res.id, PolicyArn=a)
                )
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return
            raise
        ctx.retry_while(
            self.name,
            lambda: ignore_missing(lambda: iam.delete_role(RoleName=res.id)),
            codes=("DeleteConflict",),
            timeout=ctx.patience.iam_propagation,
            why="waiting for the role's policies to be released",
        )


def steps(cfg: Config) -> list[Step]:
    return [
        Boundary(),
        Role("execution", ("secrets", "log-group", "cluster")),
        Role("signal-task", ("secrets",)),
        Role("jvb-task", ("secrets", "cluster")),
        # The wake function's role names the listener; teardown removes it after the function.
        Role("wake", ("listener-https", "cluster")),
        Role("wake-schedule", ()),
    ]

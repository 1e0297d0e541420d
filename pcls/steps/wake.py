"""The wake function: an AWS Lambda function behind the stack's ALB that sleeps and wakes it.

`wake-function` keeps `<stack>-wake` (python3.12, arm64, 128 MB, 30 s) running
pcls/wakefn/handler.py, with reserved concurrency 2 (a flood of visitors' POSTs costs nothing
extra), the permission for Elastic Load Balancing to invoke it from the `lambda` target group
`<stack>-wake`, and its registration there. Its configuration comes from environment variables
(`environment`): the stack's services and their awake counts, the bridges' scalable target, the
listener and both target groups, the awake windows and the idle bound, and the stack's alarms
(their actions are off while it sleeps). `wake-log-group` makes the
log group Lambda writes to, tagged and with the stack's retention, before the function exists
(Lambda would otherwise create an untagged one that outlives the stack).

- The code is zipped by `up` itself, deterministically (one stored entry, fixed time stamp and
  mode), so its SHA-256 is CodeSha256 exactly when the deployed code is this package's: a second
  `up` writes nothing.
- A new role is not assumable by Lambda for a few seconds (IAM propagation): CreateFunction
  answers InvalidParameterValueException "The role defined for the function cannot be assumed by
  Lambda", retried for `patience.iam_propagation`.
- A function accepts one change at a time: after CreateFunction it is Pending, after an update
  InProgress, and a further write meanwhile is refused with ResourceConflictException; every
  write waits with the function_active_v2 / function_updated_v2 waiters first.
- Elastic Load Balancing refuses to register a function it may not invoke (AccessDenied), so
  AddPermission (SourceArn = the target group) comes before RegisterTargets.
- An account whose unreserved concurrency would fall below Lambda's minimum of 10 (a new
  account's limit can be 10 in all) refuses reserved concurrency: the function then runs
  without, and `up` and `status` say so instead of reporting drift.
- Ownership: the function carries pcls:stack and pcls:step (CreateFunction Tags); a function
  with the stack's name without both is in the way.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
from typing import Any

import botocore.exceptions

from pcls import router, wakefn
from pcls.aws import error_code, error_message, ignore_missing, is_not_found, tag_drift
from pcls.config import Config
from pcls.engine import Collision, Context, Resource, Step
from pcls.sidecar_container import METRIC_DIMENSION, METRIC_NAMESPACE, METRIC_PARTICIPANTS
from pcls.steps.iam import WAKE_ROLE_STEP
from pcls.steps.loadbalancer import WAKE_TG_STEP, find_target_group, wake_group_name
from pcls.steps.monitoring import alarm_names
from pcls.steps.platform import (
    READY_SECONDS,
    LogGroup,
    cluster_name,
    sleep_state,
    wake_function_name,
    wake_log_group_name,
)
from pcls.steps.scaling import expected_resource_id
from pcls.wakefn import handler

STEP = "wake-function"
LOG_STEP = "wake-log-group"
RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
HANDLER = "handler.handler"  # the zip holds handler.py alone
MEMORY_MB = 128
TIMEOUT_SECONDS = 30
RESERVED_CONCURRENCY = 2
UNRESERVED_MINIMUM = 10  # Lambda keeps at least this much of the account's limit unreserved
ELB_PRINCIPAL = "elasticloadbalancing.amazonaws.com"
ELB_STATEMENT = "pcls-alb"  # the function policy statement letting the target group invoke it
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
ZIP_MODE = 0o100644  # a regular file, rw-r--r--
ROLE_NOT_YET = ("cannot be assumed by Lambda",)
LOW_CONCURRENCY = ("UnreservedConcurrentExecution",)


def code_zip() -> bytes:
    """pcls/wakefn/handler.py as `handler.py` in a zip that is the same bytes on every run."""
    source = wakefn.source()
    info = zipfile.ZipInfo("handler.py", date_time=ZIP_TIME)
    info.external_attr = ZIP_MODE << 16
    info.create_system = 3  # unix, wherever the zip is made
    info.compress_type = zipfile.ZIP_STORED  # no zlib version can change the bytes
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(info, source)
    return buf.getvalue()


def code_sha256(data: bytes) -> str:
    """What Lambda reports as CodeSha256: the base64 SHA-256 of the deployment package."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def services(cfg: Config) -> list[dict[str, Any]]:
    """Every ECS service the function scales, with its awake desired count."""
    shards = [{"name": s, "desired": 1} for s in router.shard_names(cfg.signal.shards)]
    return [*shards, {"name": "jvb", "desired": cfg.jvb.min_count}]


def wake_env(ctx: Context) -> handler.Env:
    """The function's configuration (written to its environment by Env.to_environ)."""
    cfg = ctx.cfg
    return handler.Env(
        stack=ctx.stack,
        cluster=cluster_name(ctx),
        state_arn=ctx.out("cluster").id,
        services=tuple(services(cfg)),
        scalable={
            "resource_id": expected_resource_id(ctx),
            "min": cfg.jvb.min_count,
            "max": cfg.jvb.max_count,
        },
        listener_arn=ctx.out("listener-https").id,
        app_tg_arn=ctx.out("target-group").id,
        wake_tg_arn=ctx.out(WAKE_TG_STEP).id,
        idle_minutes=cfg.schedule.idle_minutes,
        awake=cfg.schedule.windows(),
        timezone=cfg.stack.timezone,
        metric={
            "namespace": METRIC_NAMESPACE,
            "name": METRIC_PARTICIPANTS,
            "dimensions": [{"Name": METRIC_DIMENSION, "Value": ctx.stack}],
        },
        ready_seconds=READY_SECONDS,
        alarms=tuple(alarm_names(cfg)),
    )


def deployed_env(config: dict[str, Any]) -> handler.Env:
    """The configuration a deployed function runs with (what `pcls sleep`/`wake` act on)."""
    return handler.Env.from_environ((config.get("Environment") or {}).get("Variables") or {})


def _lambda(ctx: Context) -> Any:
    return ctx.aws.client("lambda")


class WakeLogGroup(LogGroup):
    """`/aws/lambda/<stack>-wake`: where Lambda writes the function's logs."""

    name = LOG_STEP
    depends_on = ()
    id_pattern = r"/aws/lambda/[a-z0-9-]+-wake"

    def group_name(self, ctx: Context) -> str:
        return wake_log_group_name(ctx.stack)


class WakeFunction(Step):
    name = STEP
    kind = "lambda function"
    id_pattern = r"[a-z0-9-]+-wake"
    typical_seconds = 10
    # The services and the scalable target: the function arrives once the stack runs, and
    # teardown removes it (and its schedule) before anything it would scale.
    depends_on = (
        WAKE_ROLE_STEP,
        LOG_STEP,
        WAKE_TG_STEP,
        "cluster",
        "target-group",
        "listener-https",
        "scaling-target",
        "service-signal",
        "service-jvb",
    )

    # -- find --------------------------------------------------------------------------------

    def find(self, ctx: Context) -> Resource | None:
        name = wake_function_name(ctx.stack)
        try:
            reply = ctx.aws.cached("lambda", "get_function", FunctionName=name)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        config = reply["Configuration"]
        tags = dict(reply.get("Tags") or {})
        if not ctx.claims(self.name, name, tags):
            ctx.collision(self.name, name, f"Lambda function {name}", tags)
            return None
        return Resource(name, attrs={"config": config, "tags": tags, "arn": config["FunctionArn"]})

    def tag(self, ctx: Context, res: Resource) -> None:
        _lambda(ctx).tag_resource(Resource=res.attrs["arn"], Tags=ctx.tag_dict(self.name))

    # -- create ------------------------------------------------------------------------------

    def _settings(self, ctx: Context) -> dict[str, Any]:
        """UpdateFunctionConfiguration's fields (CreateFunction takes them too)."""
        return {
            "Role": ctx.out(WAKE_ROLE_STEP).attrs["arn"],
            "Handler": HANDLER,
            "Runtime": RUNTIME,
            "MemorySize": MEMORY_MB,
            "Timeout": TIMEOUT_SECONDS,
            "Environment": {"Variables": wake_env(ctx).to_environ()},
            "Description": f"pcls {ctx.stack}: puts the stack to sleep and wakes it",
        }

    def create(self, ctx: Context) -> Resource:
        name = wake_function_name(ctx.stack)
        client = _lambda(ctx)
        try:
            config = ctx.retry_while(
                self.name,
                lambda: client.create_function(
                    FunctionName=name,
                    Code={"ZipFile": code_zip()},
                    Architectures=[ARCHITECTURE],
                    PackageType="Zip",
                    Publish=False,
                    Tags=ctx.tag_dict(self.name),
                    **self._settings(ctx),
                ),
                messages=ROLE_NOT_YET,
                timeout=ctx.patience.iam_propagation,
                why="waiting for IAM to propagate the function's role",
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceConflictException":
                raise
            raise Collision(
                f"{self.name}: Lambda function {name} was created by someone else meanwhile; "
                f"rename the stack (stack.name) or remove that function"
            ) from None
        self._wait(ctx, "function_active_v2", name)
        config = {k: v for k, v in config.items() if k != "ResponseMetadata"}
        return Resource(
            name,
            attrs={
                "config": config,
                "tags": ctx.tag_dict(self.name),
                "arn": config["FunctionArn"],
                "fresh": True,
            },
        )

    def _mark_awake(self, ctx: Context) -> None:
        """A stack that has never slept is awake since now: its first tick outside the awake
        hours must not count the idle time from long ago."""
        now = dt.datetime.now(dt.UTC)
        ctx.aws.client("ecs").tag_resource(
            resourceArn=ctx.out("cluster").id,
            tags=[
                {"key": handler.STATE_TAG, "value": sleep_state(ctx)},
                {"key": handler.SINCE_TAG, "value": now.strftime(handler.SINCE_FORMAT)},
            ],
        )

    def _wait(self, ctx: Context, waiter: str, name: str) -> None:
        """Until the function takes the next change (Pending or InProgress refuse it)."""
        p = ctx.patience
        attempts = max(1, int(p.service_stable / max(p.poll_min, 0.01)))
        _lambda(ctx).get_waiter(waiter).wait(
            FunctionName=name, WaiterConfig={"Delay": p.poll_min, "MaxAttempts": attempts}
        )

    # -- drift -------------------------------------------------------------------------------

    def _concurrency(self, ctx: Context, res: Resource) -> int | None:
        if res.attrs.get("fresh"):
            return None
        reply = ctx.aws.cached("lambda", "get_function_concurrency", FunctionName=res.id)
        value = reply.get("ReservedConcurrentExecutions")
        return None if value is None else int(value)

    def _can_reserve(self, ctx: Context, have: int | None) -> bool:
        """Whether the account leaves room for the reservation (see the module notes)."""
        if have is not None:
            return True
        try:
            reply = ctx.aws.cached("lambda", "get_account_settings")
        except botocore.exceptions.ClientError:
            return True  # unknown: try, and PutFunctionConcurrency says why not if so
        limits = reply.get("AccountLimit") or {}
        unreserved = limits.get("UnreservedConcurrentExecutions")
        return unreserved is None or int(unreserved) - RESERVED_CONCURRENCY >= UNRESERVED_MINIMUM

    def _statement(self, ctx: Context, res: Resource) -> dict[str, Any] | None:
        if res.attrs.get("fresh"):
            return None
        try:
            reply = ctx.aws.cached("lambda", "get_policy", FunctionName=res.id)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        for st in json.loads(reply.get("Policy") or "{}").get("Statement", []):
            if st.get("Sid") == ELB_STATEMENT:
                return dict(st)
        return None

    def _statement_ok(self, ctx: Context, st: dict[str, Any] | None) -> bool:
        if st is None:
            return False
        principal = st.get("Principal") or {}
        service = principal.get("Service") if isinstance(principal, dict) else principal
        condition = st.get("Condition") or {}
        source = condition.get("ArnLike", {}).get("AWS:SourceArn")
        account = condition.get("StringEquals", {}).get("AWS:SourceAccount")
        return (
            service == ELB_PRINCIPAL
            and st.get("Action") == "lambda:InvokeFunction"
            and source == ctx.out(WAKE_TG_STEP).id
            and account == ctx.aws.identity()["account"]
        )

    def _registered(self, ctx: Context, res: Resource) -> bool:
        health = ctx.aws.cached(
            "elbv2", "describe_target_health", TargetGroupArn=ctx.out(WAKE_TG_STEP).id
        )
        ids = {t["Target"]["Id"] for t in health.get("TargetHealthDescriptions", [])}
        return res.attrs["arn"] in ids

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        config = res.attrs["config"]
        want = self._settings(ctx)
        out = []
        if config.get("CodeSha256") != code_sha256(code_zip()):
            out.append("code differs from this pcls's handler.py")
        if list(config.get("Architectures") or ["x86_64"]) != [ARCHITECTURE]:
            out.append(f"architectures {config.get('Architectures')} -> [{ARCHITECTURE}]")
        for key in ("Role", "Handler", "Runtime", "MemorySize", "Timeout", "Description"):
            if config.get(key) != want[key]:
                out.append(f"{key} {config.get(key)!r} -> {want[key]!r}")
        have_env = (config.get("Environment") or {}).get("Variables") or {}
        env = want["Environment"]["Variables"]
        changed = sorted(k for k in set(env) | set(have_env) if env.get(k) != have_env.get(k))
        if changed:
            out.append(f"environment {', '.join(changed)} differ")
        have = self._concurrency(ctx, res)
        if have != RESERVED_CONCURRENCY and self._can_reserve(ctx, have):
            out.append(f"reserved concurrency {have if have is not None else 'none'} -> 2")
        if not self._statement_ok(ctx, self._statement(ctx, res)):
            out.append("permission for the wake target group to invoke it missing")
        if not self._registered(ctx, res):
            out.append(f"not registered in target group {wake_group_name(ctx)}")
        if not self._since(ctx):
            out.append("sleep state not on the cluster yet (awake since now)")
        if not res.attrs.get("fresh"):
            out += tag_drift(ctx.tag_dict(self.name), res.attrs["tags"])
        return out

    # -- update ------------------------------------------------------------------------------

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        client = _lambda(ctx)
        name = res.id
        if any(d.startswith(("code ", "architectures ")) for d in drift):
            self._wait(ctx, "function_updated_v2", name)
            client.update_function_code(
                FunctionName=name, ZipFile=code_zip(), Architectures=[ARCHITECTURE]
            )
        settings = ("Role ", "Handler ", "Runtime ", "MemorySize ", "Timeout ", "Description ")
        if any(d.startswith((*settings, "environment ")) for d in drift):
            self._wait(ctx, "function_updated_v2", name)
            ctx.retry_while(
                self.name,
                lambda: client.update_function_configuration(
                    FunctionName=name, **self._settings(ctx)
                ),
                messages=ROLE_NOT_YET,
                timeout=ctx.patience.iam_propagation,
                why="waiting for IAM to propagate the function's role",
            )
        if any(d.startswith("reserved concurrency ") for d in drift):
            self._reserve(ctx, name)
        if any(d.startswith("permission ") for d in drift):
            self._permit(ctx, res)
        if any(d.startswith("not registered ") for d in drift):
            # After the permission: ELB refuses a function it may not invoke.
            ctx.aws.client("elbv2").register_targets(
                TargetGroupArn=ctx.out(WAKE_TG_STEP).id, Targets=[{"Id": res.attrs["arn"]}]
            )
        if any(d.startswith("sleep state ") for d in drift):
            self._mark_awake(ctx)
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)
        if any(not d.startswith(("tag ", "sleep state ")) for d in drift):
            self._wait(ctx, "function_updated_v2", name)

    def _reserve(self, ctx: Context, name: str) -> None:
        try:
            _lambda(ctx).put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=RESERVED_CONCURRENCY
            )
        except botocore.exceptions.ClientError as exc:
            if not any(m in error_message(exc) for m in LOW_CONCURRENCY):
                raise
            ctx.ui.info(
                f"warning: {self.name}: no reserved concurrency: {error_message(exc)} (ask AWS "
                "support to raise the account's Lambda concurrency limit)"
            )

    def _permit(self, ctx: Context, res: Resource) -> None:
        client = _lambda(ctx)
        if self._statement(ctx, res) is not None:  # one with other settings: replaced
            ignore_missing(
                lambda: client.remove_permission(FunctionName=res.id, StatementId=ELB_STATEMENT)
            )
        client.add_permission(
            FunctionName=res.id,
            StatementId=ELB_STATEMENT,
            Action="lambda:InvokeFunction",
            Principal=ELB_PRINCIPAL,
            # The confused-deputy conditions ELB documents for Lambda targets.
            SourceArn=ctx.out(WAKE_TG_STEP).id,
            SourceAccount=ctx.aws.identity()["account"],
        )

    # -- status / teardown -------------------------------------------------------------------

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        config = res.attrs["config"]
        out: dict[str, Any] = {"sleep": sleep_state(ctx), "function": config.get("State", "-")}
        since = self._since(ctx)
        if since:
            out["since"] = since
        if self._concurrency(ctx, res) is None:
            out["concurrency"] = "unreserved (the account's limit leaves no room)"
        return out

    def _since(self, ctx: Context) -> str:
        out = ctx.aws.cached(
            "ecs", "describe_clusters", clusters=[cluster_name(ctx)], include=["TAGS", "SETTINGS"]
        )
        for c in out.get("clusters", []):
            for t in c.get("tags") or []:
                if t.get("key") == handler.SINCE_TAG:
                    return str(t.get("value", ""))
        return ""

    def delete(self, ctx: Context, res: Resource) -> None:
        tg = find_target_group(ctx, WAKE_TG_STEP, wake_group_name(ctx))
        if tg is not None:
            ignore_missing(
                lambda: ctx.aws.client("elbv2").deregister_targets(
                    TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": res.attrs["arn"]}]
                ),
                also=("InvalidTarget",),
            )
        ignore_missing(lambda: _lambda(ctx).delete_function(FunctionName=res.id))


def steps(cfg: Config) -> list[Step]:
    return [WakeLogGroup(), WakeFunction()]

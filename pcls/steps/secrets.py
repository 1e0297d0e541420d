"""Secrets: the XMPP passwords (and the JWT secret) as SSM SecureString parameters.

Each value is generated once with `secrets.token_hex` and written with Overwrite=False, so a
re-run can never replace a password that running tasks use. pcls never reads a value back:
findings come from DescribeParameters, which carries names and dates only. Containers receive
the values through `secrets: valueFrom`, resolved by ECS with the task execution role.

A parameter that has gone missing is recreated alone. Its new LastModifiedDate is then later
than the start of the services' current deployments, and the service steps force a new
deployment of every service whose task definition reads it (see services.py). Both dates are
AWS's: after a PutParameter the date is read back with DescribeParameters, never taken from the
local clock, so a machine whose clock is off neither redeploys a service it has just created nor
misses the redeploy a recreated secret needs.
"""

from __future__ import annotations

import datetime as dt
import secrets as token
from typing import Any

import botocore.exceptions

from pcls.aws import STACK_TAG, STEP_TAG, error_code
from pcls.config import Config
from pcls.engine import Collision, Context, Resource, Step
from pcls.errors import StepError
from pcls.steps.platform import arn

SECURE = "SecureString"


def names(ctx: Context) -> list[str]:
    """The environment variables pcls generates a secret for, in this config."""
    out = ["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]
    if ctx.cfg.jitsi.auth == "jwt":
        out.append("JWT_APP_SECRET")
    return out


def path(ctx: Context) -> str:
    return f"/pcls/{ctx.stack}/"


def _generate() -> str:
    # Hex only: the images paste these into config files and command lines unquoted.
    return token.token_hex(32)


class Secrets(Step):
    name = "secrets"
    kind = "ssm parameters"
    id_pattern = r"/pcls/[a-z0-9-]+/"
    depends_on = ("log-group",)  # teardown order only: parameters go before the log group

    def _described(self, ctx: Context, *tags: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Parameter metadata under the stack's path, by env name. Never values."""
        where = {"Key": "Path", "Option": "OneLevel", "Values": [path(ctx)[:-1]]}
        items = ctx.aws.all(
            "ssm", "describe_parameters", "Parameters", ParameterFilters=[where, *tags]
        )
        return {p["Name"][len(path(ctx)) :]: p for p in items if p["Name"].startswith(path(ctx))}

    def _listed(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """This step's parameters: under the path and tagged; a name pcls would write that is
        held by another parameter is a collision (PutParameter would keep its value)."""
        mine = self._described(
            ctx,
            {"Key": f"tag:{STACK_TAG}", "Values": [ctx.stack]},
            {"Key": f"tag:{STEP_TAG}", "Values": [self.name]},
        )
        adopting = ctx.adopting.get(self.name)
        for env, p in self._described(ctx).items():
            if env in mine:
                continue
            if p["Name"] == adopting:
                mine[env] = p
            elif env in names(ctx):
                ctx.collision(self.name, p["Name"], "SSM parameter", self._tags(ctx, p["Name"]))
        return mine

    def _tags(self, ctx: Context, name: str) -> list[dict[str, str]]:
        reply = ctx.aws.cached(
            "ssm", "list_tags_for_resource", ResourceType="Parameter", ResourceId=name
        )
        return list(reply.get("TagList", []))

    def tag(self, ctx: Context, res: Resource) -> None:
        name = ctx.adopting.get(self.name, "")
        ctx.aws.client("ssm").add_tags_to_resource(
            ResourceType="Parameter", ResourceId=name, Tags=ctx.tags(self.name)
        )

    def _arns(self, ctx: Context, listed: dict[str, dict[str, Any]]) -> dict[str, str]:
        return {
            n: listed.get(n, {}).get("ARN") or arn(ctx, "ssm", f"parameter{path(ctx)}{n}")
            for n in names(ctx)
        }

    def _resource(self, ctx: Context, listed: dict[str, dict[str, Any]]) -> Resource:
        return Resource(
            path(ctx),
            attrs={
                "arns": self._arns(ctx, listed),
                "listed": listed,
                "modified": {n: p.get("LastModifiedDate") for n, p in listed.items()},
            },
        )

    def find(self, ctx: Context) -> Resource | None:
        listed = self._listed(ctx)
        return self._resource(ctx, listed) if listed else None

    def create(self, ctx: Context) -> Resource:
        for n in names(ctx):
            self._put(ctx, n)
        return self._resource(ctx, self._read_back(ctx, names(ctx)))

    def _read_back(self, ctx: Context, written: list[str]) -> dict[str, dict[str, Any]]:
        """The step's parameters as AWS describes them, once every one just written shows.

        DescribeParameters may lag a moment behind PutParameter; the LastModifiedDate it reports
        is AWS's clock, which is what ECS dates its deployments by.
        """
        listed: dict[str, dict[str, Any]] = {}

        def shown() -> tuple[bool, str]:
            ctx.aws.forget_cache()
            listed.clear()
            listed.update(
                self._described(
                    ctx,
                    {"Key": f"tag:{STACK_TAG}", "Values": [ctx.stack]},
                    {"Key": f"tag:{STEP_TAG}", "Values": [self.name]},
                )
            )
            missing = [
                n
                for n in written
                if not isinstance(listed.get(n, {}).get("LastModifiedDate"), dt.datetime)
            ]
            return not missing, f"not yet listed: {', '.join(missing)}" if missing else ""

        ctx.wait_for(
            self.name,
            "DescribeParameters to show the parameters just written",
            shown,
            timeout=ctx.patience.read_settle,
            hint="they exist (PutParameter succeeded); run again to read their dates",
        )
        return listed

    def _put(self, ctx: Context, env: str) -> None:
        name = f"{path(ctx)}{env}"
        try:
            ctx.aws.client("ssm").put_parameter(
                Name=name,
                Description=f"pcls {ctx.stack}: {env}, generated once, read by ECS at task start",
                Value=_generate(),
                Type=SECURE,
                Tier="Standard",
                Overwrite=False,  # never replace a value running tasks use
                Tags=ctx.tags(self.name),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ParameterAlreadyExists":
                # Not found as ours a moment ago: someone else's, and its value is not pcls's.
                raise Collision(
                    f"{self.name}: SSM parameter {name} exists without this stack's tags; "
                    f"rename the stack (stack.name), remove it, or `pcls adopt {self.name} {name}`"
                ) from None
            # The request held the value; keep only the code in what is shown.
            raise StepError(self.name, "PutParameter", f"{error_code(exc)} for {name}") from None

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        listed = res.attrs["listed"]
        out = []
        for n in names(ctx):
            p = listed.get(n)
            if p is None:
                out.append(f"{n} missing")
            elif p.get("Type") != SECURE:
                out.append(
                    f"{n} is {p.get('Type')}, not {SECURE} (delete it to generate a new one)"
                )
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        written = [n for n in names(ctx) if f"{n} missing" in drift]
        for n in written:
            self._put(ctx, n)
        if written:
            fresh = self._read_back(ctx, written)
            res.attrs.update(self._resource(ctx, {**res.attrs["listed"], **fresh}).attrs)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"parameters": len(res.attrs["listed"])}

    def delete(self, ctx: Context, res: Resource) -> None:
        found = [p["Name"] for p in res.attrs["listed"].values()]
        ssm = ctx.aws.client("ssm")
        for i in range(0, len(found), 10):  # the API takes 10 names per call
            ssm.delete_parameters(Names=found[i : i + 10])


def steps(cfg: Config) -> list[Step]:
    return [Secrets()]

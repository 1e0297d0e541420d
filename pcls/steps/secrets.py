"""Secrets: the XMPP passwords (and the JWT secret) as SSM SecureString parameters.

Each value is generated once with `secrets.token_hex` and written with Overwrite=False, so a
re-run can never replace a password that running tasks use. pcls never reads a value back:
findings come from DescribeParameters, which carries names and dates only. Containers receive
the values through `secrets: valueFrom`, resolved by ECS with the task execution role.

A parameter that has gone missing is recreated alone. Its new LastModifiedDate is then later
than the start of the services' current deployments, and the service steps force a new
deployment of every service whose task definition reads it (see services.py).
"""

from __future__ import annotations

import datetime as dt
import secrets as token
from typing import Any

import botocore.exceptions

from pcls.aws import error_code
from pcls.config import Config
from pcls.engine import Context, Resource, Step
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
    depends_on = ("log-group",)  # teardown order only: parameters go before the log group

    def _listed(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """Parameter metadata under the stack's path, by env name. Never values."""
        items = ctx.aws.all(
            "ssm",
            "describe_parameters",
            "Parameters",
            ParameterFilters=[{"Key": "Path", "Option": "OneLevel", "Values": [path(ctx)[:-1]]}],
        )
        return {p["Name"][len(path(ctx)) :]: p for p in items if p["Name"].startswith(path(ctx))}

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
        # The path is the stack's own: whatever lives under it is this step's.
        return self._resource(ctx, listed) if listed else None

    def create(self, ctx: Context) -> Resource:
        listed: dict[str, dict[str, Any]] = {}
        for n in names(ctx):
            listed[n] = self._put(ctx, n)
        return self._resource(ctx, listed)

    def _put(self, ctx: Context, env: str) -> dict[str, Any]:
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
                return {"Name": name, "Type": SECURE}
            # The request held the value; keep only the code in what is shown.
            raise StepError(self.name, "PutParameter", f"{error_code(exc)} for {name}") from None
        return {"Name": name, "Type": SECURE, "LastModifiedDate": dt.datetime.now(dt.UTC)}

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
        listed = res.attrs["listed"]
        for n in names(ctx):
            if f"{n} missing" in drift:
                listed[n] = self._put(ctx, n)
                res.attrs["modified"][n] = listed[n].get("LastModifiedDate")
        res.attrs["arns"] = self._arns(ctx, listed)

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        return {"parameters": len(res.attrs["listed"])}

    def delete(self, ctx: Context, res: Resource) -> None:
        found = [p["Name"] for p in res.attrs["listed"].values()]
        ssm = ctx.aws.client("ssm")
        for i in range(0, len(found), 10):  # the API takes 10 names per call
            ssm.delete_parameters(Names=found[i : i + 10])


def steps(cfg: Config) -> list[Step]:
    return [Secrets()]

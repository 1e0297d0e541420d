"""The budget guard: an AWS Budgets monthly cost budget `pcls-<stack>` with e-mail alerts.

With `alerts.monthly_budget` above 0, `up` keeps one COST budget of that many USD a month,
filtered to the stack's cost allocation tag (CostFilters TagKeyValue `user:pcls:stack$<stack>`),
with two notifications to `alerts.email`: the month's forecast above 100 % and the actual spend
above 80 %. `teardown` deletes it with the stack.

- A tag filters a budget only once it is an active cost allocation tag (Billing, Cost allocation
  tags; only the management account of an organization can activate it). pcls asks
  ce:ListCostAllocationTags: while `pcls:stack` is not active the budget covers the whole
  account, and `plan`, `up` and `status` say so; once it is active the next `up` narrows the
  budget to the stack. When the question cannot be answered (refused, throttled) the budget
  keeps the scope it has (a new one covers the account: an alert too early, never too late).
- Budgets and Cost Explorer are global APIs: their clients are the partition's home region's.
- Ownership: the budget carries pcls:stack and pcls:step (CreateBudget ResourceTags); a budget
  named `pcls-<stack>` without both tags is someone else's and stops `up` (`pcls adopt budget
  pcls-<stack>` claims it).
- Drift: the amount, the time unit and type, the scope, each notification (type, operator,
  threshold) and each notification's subscribers; all of it belongs to pcls, so a notification or
  subscriber pcls did not make is removed.
- Setting alerts.monthly_budget back to 0 leaves the step out of the stack: the budget is no
  longer managed, and `pcls teardown` before that change is the way to remove it with pcls.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import botocore.exceptions

from pcls.aws import (
    STACK_TAG,
    describe_error,
    ignore_missing,
    is_not_found,
    tag_drift,
    tags_of,
)
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.steps.account import HOME_REGION, partition_of

STEP = "budget"
KIND = "budget"
UNIT = "USD"
TIME_UNIT = "MONTHLY"
BUDGET_TYPE = "COST"
# The cost allocation tag the budget filters on: user-defined tags appear as user:<key>.
COST_TAG = f"user:{STACK_TAG}"
ACTIVE = "Active"
# (type, threshold in percent of the amount): the month's forecast passing the budget warns
# before the money is spent; the actual spend at 80 % when it nearly is.
ALERTS: tuple[tuple[str, float], ...] = (("FORECASTED", 100.0), ("ACTUAL", 80.0))
OPERATOR = "GREATER_THAN"
THRESHOLD_TYPE = "PERCENTAGE"
ACTIVATE_HINT = (
    "activate it in the Billing console, Cost allocation tags (the management account of an "
    "organization does this; tags show there up to 24 hours after first use)"
)


def budget_name(stack: str) -> str:
    return f"pcls-{stack}"


def tag_filter_value(stack: str) -> str:
    """The CostFilters TagKeyValue entry of the stack's tag."""
    return f"{COST_TAG}${stack}"


def budget_arn(partition: str, account: str, stack: str) -> str:
    return f"arn:{partition}:budgets::{account}:budget/{budget_name(stack)}"


def amount_text(usd: float) -> str:
    """The BudgetLimit amount as sent: two decimals ("150.00")."""
    return f"{Decimal(repr(usd)).quantize(Decimal('0.01'))}"


def desired_budget(cfg: Config, scoped: bool) -> dict[str, Any]:
    """The Budget of CreateBudget / UpdateBudget. `scoped`: filtered to the stack's tag; else
    no filter, the whole account (UpdateBudget replaces the budget, an empty filter with it)."""
    budget: dict[str, Any] = {
        "BudgetName": budget_name(cfg.stack.name),
        "BudgetLimit": {"Amount": amount_text(cfg.alerts.monthly_budget), "Unit": UNIT},
        "TimeUnit": TIME_UNIT,
        "BudgetType": BUDGET_TYPE,
    }
    if scoped:
        budget["CostFilters"] = {"TagKeyValue": [tag_filter_value(cfg.stack.name)]}
    return budget


def desired_notifications() -> list[dict[str, Any]]:
    return [
        {
            "NotificationType": kind,
            "ComparisonOperator": OPERATOR,
            "Threshold": threshold,
            "ThresholdType": THRESHOLD_TYPE,
        }
        for kind, threshold in ALERTS
    ]


def notification_key(n: dict[str, Any]) -> tuple[str, str, float, str]:
    """What identifies a notification of a budget (AWS fills ThresholdType in as PERCENTAGE)."""
    return (
        str(n.get("NotificationType", "")),
        str(n.get("ComparisonOperator", "")),
        float(n.get("Threshold", 0.0)),
        str(n.get("ThresholdType") or THRESHOLD_TYPE),
    )


def notification_text(n: dict[str, Any]) -> str:
    kind, op, threshold, unit = notification_key(n)
    word = {"FORECASTED": "forecast", "ACTUAL": "actual"}.get(kind, kind.lower())
    sign = {"GREATER_THAN": ">", "LESS_THAN": "<", "EQUAL_TO": "="}.get(op, op)
    shown = f"{threshold:g} %" if unit == THRESHOLD_TYPE else f"{threshold:g} {UNIT}"
    return f"{word} {sign} {shown}"


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _scope_of(budget: dict[str, Any]) -> tuple[str, ...]:
    """The TagKeyValue entries the budget filters on (none: the whole account)."""
    filters = budget.get("CostFilters") or {}
    return tuple(sorted(filters.get("TagKeyValue") or ()))


def scope_text(values: tuple[str, ...] | list[str]) -> str:
    if not values:
        return "whole account"
    shown = ", ".join(v.replace(f"{COST_TAG}$", f"{STACK_TAG}=", 1) for v in values)
    return f"tag {shown}"


def budget_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """Short lines naming each budget field pcls sets that differs."""
    out = []
    w_limit, h_limit = want["BudgetLimit"], have.get("BudgetLimit") or {}
    if _amount(h_limit.get("Amount")) != _amount(w_limit["Amount"]) or (
        h_limit.get("Unit") != w_limit["Unit"]
    ):
        out.append(
            f"amount {h_limit.get('Amount')} {h_limit.get('Unit')} "
            f"(want {w_limit['Amount']} {w_limit['Unit']})"
        )
    for key, label in (("TimeUnit", "time unit"), ("BudgetType", "type")):
        if have.get(key) != want[key]:
            out.append(f"{label} {have.get(key)} (want {want[key]})")
    want_scope, have_scope = _scope_of(want), _scope_of(have)
    other = {k: v for k, v in (have.get("CostFilters") or {}).items() if k != "TagKeyValue" and v}
    if want_scope != have_scope or other:
        extra = f" and filters {sorted(other)}" if other else ""
        out.append(f"scope {scope_text(have_scope)}{extra} (want {scope_text(want_scope)})")
    return out


class Budget(Step):
    """The stack's monthly cost budget `pcls-<stack>` and its two e-mail notifications."""

    name = STEP
    kind = KIND
    id_pattern = r"pcls-[a-z0-9-]+"
    typical_seconds = 2.0

    # -- AWS --------------------------------------------------------------------------------

    @staticmethod
    def _home(ctx: Context, service: str) -> Any:
        """A client in the partition's home region (Budgets and Cost Explorer are global)."""
        return ctx.aws.client(service, region=HOME_REGION[partition_of(ctx.aws.region)])

    def _budgets(self, ctx: Context) -> Any:
        return self._home(ctx, "budgets")

    @staticmethod
    def _account(ctx: Context) -> str:
        return ctx.aws.identity()["account"]

    def _arn(self, ctx: Context) -> str:
        return budget_arn(partition_of(ctx.aws.region), self._account(ctx), ctx.stack)

    def tag_state(self, ctx: Context) -> tuple[bool | None, str]:
        """(is pcls:stack an active cost allocation tag, why not / why unknown); None unknown."""
        try:
            reply = self._home(ctx, "ce").list_cost_allocation_tags(
                TagKeys=[STACK_TAG], Type="UserDefined"
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            return None, f"ce:ListCostAllocationTags: {describe_error(exc)}"
        for tag in reply.get("CostAllocationTags") or ():
            if tag.get("TagKey") == STACK_TAG:
                if tag.get("Status") == ACTIVE:
                    return True, ""
                return False, f"the cost allocation tag {STACK_TAG} is {tag.get('Status')}"
        return False, f"{STACK_TAG} is not yet a cost allocation tag"

    def _scoped(self, ctx: Context, res: Resource | None) -> tuple[bool, str]:
        """(filter the budget to the stack's tag, why not): as the tag's state decides, or as
        the budget is when that state is unknown (a new budget then covers the account)."""
        if "tag_state" not in (res.attrs if res else {}):
            state = self.tag_state(ctx)
            if res is not None:
                res.attrs["tag_state"] = state
        else:
            state = res.attrs["tag_state"]  # type: ignore[union-attr]
        active, why = state
        if active is None:
            have = _scope_of(res.attrs["budget"]) if res is not None else ()
            return bool(have), f"{why}; scope kept as it is"
        return active, why

    # -- find -------------------------------------------------------------------------------

    def find(self, ctx: Context) -> Resource | None:
        name = budget_name(ctx.stack)
        try:
            reply = self._budgets(ctx).describe_budget(
                AccountId=self._account(ctx), BudgetName=name
            )
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        budget = reply["Budget"]
        tags = self._listed_tags(ctx)
        if not ctx.claims(self.name, name, tags):
            ctx.collision(self.name, name, "budget", tags)
            return None
        return Resource(name, attrs={"budget": budget, "tags": tags_of(tags)})

    def _listed_tags(self, ctx: Context) -> list[dict[str, str]]:
        reply = self._budgets(ctx).list_tags_for_resource(ResourceARN=self._arn(ctx))
        return list(reply.get("ResourceTags") or [])

    def _notifications(self, ctx: Context, res: Resource) -> list[dict[str, Any]]:
        """The budget's notifications, each with its subscribers (one call each, kept)."""
        if "notifications" not in res.attrs:
            client, account = self._budgets(ctx), self._account(ctx)
            out = []
            for page in client.get_paginator("describe_notifications_for_budget").paginate(
                AccountId=account, BudgetName=res.id
            ):
                for n in page.get("Notifications") or ():
                    subs = []
                    for sub_page in client.get_paginator(
                        "describe_subscribers_for_notification"
                    ).paginate(AccountId=account, BudgetName=res.id, Notification=n):
                        subs += sub_page.get("Subscribers") or []
                    out.append({"notification": n, "subscribers": subs})
            res.attrs["notifications"] = out
        return list(res.attrs["notifications"])

    # -- create / drift / update ------------------------------------------------------------

    def _subscribers(self, ctx: Context) -> list[dict[str, str]]:
        return [{"SubscriptionType": "EMAIL", "Address": ctx.cfg.alerts.email}]

    def create(self, ctx: Context) -> Resource:
        scoped, why = self._scoped(ctx, None)
        if not scoped:
            self._warn_account_wide(ctx, why)
        budget = desired_budget(ctx.cfg, scoped)
        notifications = [
            {"Notification": n, "Subscribers": self._subscribers(ctx)}
            for n in desired_notifications()
        ]
        self._budgets(ctx).create_budget(
            AccountId=self._account(ctx),
            Budget=budget,
            NotificationsWithSubscribers=notifications,
            ResourceTags=ctx.tags(self.name),
        )
        return Resource(
            budget["BudgetName"],
            attrs={
                "budget": budget,
                "tags": ctx.tag_dict(self.name),
                "notifications": [
                    {"notification": n["Notification"], "subscribers": n["Subscribers"]}
                    for n in notifications
                ],
                "created": True,
            },
        )

    def _warn_account_wide(self, ctx: Context, why: str) -> None:
        ctx.ui.info(
            f"warning: {self.name}: {budget_name(ctx.stack)} covers the whole account, not only "
            f"this stack: {why}; {ACTIVATE_HINT}"
        )

    def _plan(self, ctx: Context, res: Resource) -> dict[str, Any]:
        """What differs: drift lines and the calls that repair each."""
        scoped, why = self._scoped(ctx, res)
        want = desired_budget(ctx.cfg, scoped)
        lines = budget_diff(want, res.attrs["budget"])
        update = bool(lines)
        email = ctx.cfg.alerts.email
        have = {notification_key(n["notification"]): n for n in self._notifications(ctx, res)}
        wanted = {notification_key(n): n for n in desired_notifications()}
        create, delete, subscribe, unsubscribe = [], [], [], []
        for key, n in wanted.items():
            if key not in have:
                lines.append(f"notification {notification_text(n)} missing")
                create.append(n)
                continue
            current = have[key]
            addresses = {s.get("Address", "").lower(): s for s in current["subscribers"]}
            if email.lower() not in addresses:
                lines.append(f"{notification_text(n)}: subscriber {email} missing")
                subscribe.append(current["notification"])
            for address, sub in sorted(addresses.items()):
                if address != email.lower():
                    lines.append(
                        f"{notification_text(n)}: subscriber {sub.get('Address')} not in config"
                    )
                    unsubscribe.append((current["notification"], sub))
        for key, current in sorted(have.items()):
            if key not in wanted:
                lines.append(
                    f"notification {notification_text(current['notification'])} not in config"
                )
                delete.append(current["notification"])
        lines += tag_drift(ctx.tag_dict(self.name), dict(res.attrs.get("tags") or {}))
        return {
            "lines": lines,
            "update": want if update else None,
            "scoped": scoped,
            "why": why,
            "create": create,
            "delete": delete,
            "subscribe": subscribe,
            "unsubscribe": unsubscribe,
        }

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        plan = self._plan(ctx, res)
        if not plan["scoped"] and not res.attrs.get("created"):
            self._warn_account_wide(ctx, plan["why"])
        return list(plan["lines"])

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        plan = self._plan(ctx, res)
        client, account = self._budgets(ctx), self._account(ctx)
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)
        if plan["update"] is not None:
            new = {"CostFilters": {}, **plan["update"]}
            client.update_budget(AccountId=account, NewBudget=new)
            res.attrs["budget"] = plan["update"]
        for n in plan["delete"]:
            ignore_missing(
                lambda n=n: client.delete_notification(
                    AccountId=account, BudgetName=res.id, Notification=n
                )
            )
        for n in plan["create"]:
            client.create_notification(
                AccountId=account,
                BudgetName=res.id,
                Notification=n,
                Subscribers=self._subscribers(ctx),
            )
        for n in plan["subscribe"]:
            client.create_subscriber(
                AccountId=account,
                BudgetName=res.id,
                Notification=n,
                Subscriber=self._subscribers(ctx)[0],
            )
        for n, sub in plan["unsubscribe"]:
            ignore_missing(
                lambda n=n, sub=sub: client.delete_subscriber(
                    AccountId=account,
                    BudgetName=res.id,
                    Notification=n,
                    Subscriber={
                        "SubscriptionType": sub["SubscriptionType"],
                        "Address": sub["Address"],
                    },
                )
            )
        res.attrs.pop("notifications", None)

    def tag(self, ctx: Context, res: Resource) -> None:
        self._budgets(ctx).tag_resource(
            ResourceARN=self._arn(ctx), ResourceTags=ctx.tags(self.name)
        )

    def delete(self, ctx: Context, res: Resource) -> None:
        # Deleting a budget deletes its notifications and subscribers.
        ignore_missing(
            lambda: self._budgets(ctx).delete_budget(
                AccountId=self._account(ctx), BudgetName=res.id
            )
        )

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        budget = res.attrs["budget"]
        limit = budget.get("BudgetLimit") or {}
        scope = scope_text(_scope_of(budget))
        _, why = self._scoped(ctx, res)
        if not _scope_of(budget) and why:
            scope += f" ({why}; {ACTIVATE_HINT})"
        period = str(budget.get("TimeUnit", "")).lower()
        out: dict[str, Any] = {
            "limit": f"{limit.get('Amount')} {limit.get('Unit')} {period}",
            "scope": scope,
        }
        spend = budget.get("CalculatedSpend") or {}
        actual, forecast = spend.get("ActualSpend") or {}, spend.get("ForecastedSpend") or {}
        if actual:
            text = f"{actual.get('Amount')} {actual.get('Unit')}"
            if forecast:
                text += f", forecast {forecast.get('Amount')} {forecast.get('Unit')}"
            out["spent"] = text
        alerts = []
        order = [notification_key(n) for n in desired_notifications()]
        listed = sorted(
            self._notifications(ctx, res),
            key=lambda n: (
                order.index(k) if (k := notification_key(n["notification"])) in order else 99,
                notification_text(n["notification"]),
            ),
        )
        for n in listed:
            who = ", ".join(s.get("Address", "") for s in n["subscribers"]) or "nobody"
            state = n["notification"].get("NotificationState")
            shown = f" ({state})" if state == "ALARM" else ""
            alerts.append(f"{notification_text(n['notification'])}{shown} to {who}")
        out["alerts"] = "; ".join(alerts) or "none"
        return out


def steps(cfg: Config) -> list[Step]:
    return [Budget()] if cfg.alerts.monthly_budget > 0 else []

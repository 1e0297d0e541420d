"""The budget guard (pcls/steps/budget.py): an AWS Budgets cost budget `pcls-<stack>`.

moto's Budgets keeps budgets and notifications but has no tags, UpdateBudget or subscriber
calls, and its Cost Explorer has no ListCostAllocationTags: the `billing` fixture adds them to
moto (in this process) so that the step runs end to end through the Harness and the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto.budgets.exceptions import NotFoundException
from moto.budgets.responses import BudgetsResponse
from moto.ce.responses import CostExplorerResponse
from moto.core.exceptions import JsonRESTError

import pcls.steps
from pcls.aws import is_read
from pcls.config import ConfigError, loads
from pcls.permissions import (
    DOCUMENTED_EXTRAS,
    Target,
    allowed_actions,
    iam_action,
    operator_policies,
    statements,
)
from pcls.steps.budget import (
    Budget,
    budget_diff,
    budget_name,
    desired_budget,
    desired_notifications,
    notification_text,
)
from pcls.ui import Outcome
from tests.faults import on_every_client
from tests.harness import Harness

ACCOUNT = "123456789012"
NAME = "pcls-meet"
ARN = f"arn:aws:budgets::{ACCOUNT}:budget/{NAME}"
CONFIG = '[alerts]\nemail = "ops@example.com"\nmonthly_budget = 150\n'
SCOPED = {"TagKeyValue": ["user:pcls:stack$meet"]}


# -- moto, completed ------------------------------------------------------------------------


@dataclass
class Billing:
    """What the fake Cost Explorer answers, and the budgets' tags (moto keeps none)."""

    tag_status: str | None = "Active"  # pcls:stack in ListCostAllocationTags; None: not listed
    refuse: str = ""  # an error code ListCostAllocationTags answers with instead
    tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def _key(n: dict[str, Any]) -> tuple[Any, ...]:
    return (n.get("NotificationType"), n.get("ComparisonOperator"), float(n.get("Threshold", 0)))


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> Billing:
    fake = Billing()

    def budget_of(self: Any, account: str, name: str) -> Any:
        if name not in self.backend.budgets[account]:
            raise NotFoundException(f"Unable to get budget: {name} - the budget doesn't exist.")
        return self.backend.budgets[account][name]

    def notification_of(self: Any, account: str, name: str, wanted: dict[str, Any]) -> Any:
        for n in budget_of(self, account, name).notifications:
            if _key(n.details) == _key(wanted):
                return n
        raise NotFoundException("Unable to find the notification")

    def split(arn: str) -> tuple[str, str]:
        return arn.split(":")[4], arn.rsplit("/", 1)[-1]

    create_budget, delete_budget = BudgetsResponse.create_budget, BudgetsResponse.delete_budget

    def create(self: Any) -> str:
        out = create_budget(self)
        name = self._get_param("Budget")["BudgetName"]
        tags = self._get_param("ResourceTags") or []
        fake.tags[(self._get_param("AccountId"), name)] = {t["Key"]: t["Value"] for t in tags}
        return str(out)

    def delete(self: Any) -> str:
        out = delete_budget(self)
        fake.tags.pop((self._get_param("AccountId"), self._get_param("BudgetName")), None)
        return str(out)

    def list_tags(self: Any) -> str:
        account, name = split(self._get_param("ResourceARN"))
        budget_of(self, account, name)
        tags = fake.tags.get((account, name), {})
        return json.dumps({"ResourceTags": [{"Key": k, "Value": v} for k, v in tags.items()]})

    def tag(self: Any) -> str:
        account, name = split(self._get_param("ResourceARN"))
        budget_of(self, account, name)
        new = {t["Key"]: t["Value"] for t in self._get_param("ResourceTags")}
        fake.tags.setdefault((account, name), {}).update(new)
        return "{}"

    def update(self: Any) -> str:
        new = self._get_param("NewBudget")
        budget = budget_of(self, self._get_param("AccountId"), new["BudgetName"])
        kept = {k: budget.budget[k] for k in ("TimePeriod", "LastUpdatedTime")}
        budget.budget = {**{k: v for k, v in new.items() if v != {}}, **kept}
        return "{}"

    def subscribers(self: Any) -> str:
        n = notification_of(
            self,
            self._get_param("AccountId"),
            self._get_param("BudgetName"),
            self._get_param("Notification"),
        )
        return json.dumps({"Subscribers": n.subscribers, "NextToken": None})

    def subscribe(self: Any) -> str:
        n = notification_of(
            self,
            self._get_param("AccountId"),
            self._get_param("BudgetName"),
            self._get_param("Notification"),
        )
        n.subscribers.append(self._get_param("Subscriber"))
        return "{}"

    def unsubscribe(self: Any) -> str:
        n = notification_of(
            self,
            self._get_param("AccountId"),
            self._get_param("BudgetName"),
            self._get_param("Notification"),
        )
        gone = self._get_param("Subscriber")
        n.subscribers = [s for s in n.subscribers if s["Address"] != gone["Address"]]
        return "{}"

    def cost_allocation_tags(self: Any) -> str:
        if fake.refuse:
            raise JsonRESTError(fake.refuse, "User is not authorized to perform this action")
        listed = []
        if fake.tag_status is not None:
            listed.append(
                {"TagKey": "pcls:stack", "Type": "UserDefined", "Status": fake.tag_status}
            )
        return json.dumps({"CostAllocationTags": listed})

    for cls, name, fn in (
        (BudgetsResponse, "create_budget", create),
        (BudgetsResponse, "delete_budget", delete),
        (BudgetsResponse, "list_tags_for_resource", list_tags),
        (BudgetsResponse, "tag_resource", tag),
        (BudgetsResponse, "update_budget", update),
        (BudgetsResponse, "describe_subscribers_for_notification", subscribers),
        (BudgetsResponse, "create_subscriber", subscribe),
        (BudgetsResponse, "delete_subscriber", unsubscribe),
        (CostExplorerResponse, "list_cost_allocation_tags", cost_allocation_tags),
    ):
        monkeypatch.setattr(cls, name, fn, raising=False)
    return fake


@pytest.fixture
def budgeted(harness: Harness, billing: Billing) -> Harness:
    harness.write_config(CONFIG)
    return harness


def budgets(h: Harness) -> Any:
    return h.client("budgets")


def described(h: Harness) -> dict[str, Any]:
    return dict(budgets(h).describe_budget(AccountId=ACCOUNT, BudgetName=NAME)["Budget"])


def notifications(h: Harness) -> dict[str, list[str]]:
    """notification text -> its subscribers' addresses, as AWS holds them."""
    client, out = budgets(h), {}
    for n in client.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=NAME)[
        "Notifications"
    ]:
        subs = client.describe_subscribers_for_notification(
            AccountId=ACCOUNT, BudgetName=NAME, Notification=n
        )["Subscribers"]
        out[notification_text(n)] = sorted(s["Address"] for s in subs)
    return out


def tags(h: Harness) -> dict[str, str]:
    reply = budgets(h).list_tags_for_resource(ResourceARN=ARN)
    return {t["Key"]: t["Value"] for t in reply["ResourceTags"]}


def infos(h: Harness) -> list[str]:
    """What the last run printed as info lines (warnings among them)."""
    assert h.last is not None
    return [e[1] for e in h.last.ui.events if e[0] == "info"]  # type: ignore[attr-defined]


WANT = {"forecast > 100 %": ["ops@example.com"], "actual > 80 %": ["ops@example.com"]}


# -- the desired budget, without AWS ----------------------------------------------------------


def _cfg(extra: str = CONFIG) -> Any:
    return loads(f'[stack]\nname = "meet"\ndomain = "meet.example.com"\n{extra}')


def test_the_budget_pcls_asks_for() -> None:
    cfg = _cfg()
    assert desired_budget(cfg, scoped=True) == {
        "BudgetName": NAME,
        "BudgetLimit": {"Amount": "150.00", "Unit": "USD"},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
        "CostFilters": SCOPED,
    }
    assert "CostFilters" not in desired_budget(cfg, scoped=False)  # the whole account
    assert desired_budget(_cfg(CONFIG.replace("150", "99.999")), True)["BudgetLimit"] == {
        "Amount": "100.00",
        "Unit": "USD",
    }
    assert [notification_text(n) for n in desired_notifications()] == list(WANT)
    assert desired_notifications()[0] == {
        "NotificationType": "FORECASTED",
        "ComparisonOperator": "GREATER_THAN",
        "Threshold": 100.0,
        "ThresholdType": "PERCENTAGE",
    }


def test_budget_differences_are_named_field_by_field() -> None:
    want = desired_budget(_cfg(), scoped=True)
    same = {**want, "BudgetLimit": {"Amount": "150.0", "Unit": "USD"}, "CostTypes": {"x": 1}}
    assert budget_diff(want, same) == []  # "150.0" is 150.00; fields pcls leaves are not drift
    have = {
        **want,
        "BudgetLimit": {"Amount": "999", "Unit": "USD"},
        "TimeUnit": "DAILY",
        "CostFilters": {"Service": ["Amazon Elastic Compute Cloud - Compute"]},
    }
    assert budget_diff(want, have) == [
        "amount 999 USD (want 150.00 USD)",
        "time unit DAILY (want MONTHLY)",
        "scope whole account and filters ['Service'] (want tag pcls:stack=meet)",
    ]
    account = desired_budget(_cfg(), scoped=False)
    assert budget_diff(account, want) == ["scope tag pcls:stack=meet (want whole account)"]


# -- config -----------------------------------------------------------------------------------


def test_no_budget_unless_configured() -> None:
    names = {s.name for s in pcls.steps.build(_cfg(""))}
    assert "budget" not in names and "alarms" in names
    assert "budget" in {s.name for s in pcls.steps.build(_cfg())}
    assert "budget" not in {s.name for s in pcls.steps.build(_cfg(CONFIG.replace("150", "0")))}


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        (
            "monthly_budget = 50\n",
            "alerts.monthly_budget: needs alerts.email, the address its alerts are sent to",
        ),
        (
            'email = "ops@example.com"\nmonthly_budget = -1\n',
            "alerts.monthly_budget: -1.0 is not allowed; expected a number from 0 to 1000000",
        ),
        (
            'email = "ops@example.com"\nmonthly_budget = "150"\n',
            "alerts.monthly_budget: '150' is not a number",
        ),
    ],
)
def test_bad_budget_config_is_one_line(alerts: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(f"[alerts]\n{alerts}")
    assert str(err.value) == message


# -- the lifecycle ----------------------------------------------------------------------------


def test_up_creates_it_keeps_it_repairs_it_and_teardown_deletes_it(budgeted: Harness) -> None:
    h = budgeted
    created = h.up()
    assert created.ok, [r.detail for r in created.failures]
    assert created.results["budget"].outcome is Outcome.CREATED
    assert created.results["budget"].id == NAME
    budget = described(h)
    assert budget["BudgetLimit"] == {"Amount": "150.00", "Unit": "USD"}
    assert (budget["TimeUnit"], budget["BudgetType"]) == ("MONTHLY", "COST")
    assert budget["CostFilters"] == SCOPED
    assert notifications(h) == WANT
    assert tags(h) == {"pcls:stack": "meet", "pcls:step": "budget"}
    assert json.loads(h.ledger_path.read_text())["steps"]["budget"]["id"] == NAME
    # Budgets is global: its client is us-east-1's, whatever the stack's region.
    assert h.last is not None and "budgets@us-east-1" in h.last.aws._clients

    again = h.up()
    assert again.ok and again.results["budget"].outcome is Outcome.UNCHANGED
    assert h.writes() == {}, h.writes()  # the whole stack: nothing written

    # Someone raises the amount, drops an alert and adds a subscriber to the other.
    client = budgets(h)
    client.update_budget(
        AccountId=ACCOUNT,
        NewBudget={**described(h), "BudgetLimit": {"Amount": "999", "Unit": "USD"}},
    )
    forecast, actual = desired_notifications()
    client.delete_notification(AccountId=ACCOUNT, BudgetName=NAME, Notification=forecast)
    client.create_subscriber(
        AccountId=ACCOUNT,
        BudgetName=NAME,
        Notification=actual,
        Subscriber={"SubscriptionType": "EMAIL", "Address": "intruder@example.org"},
    )
    status = h.status()
    assert status.results["budget"].outcome is Outcome.DRIFTED
    assert status.results["budget"].drift == [
        "amount 999 USD (want 150.00 USD)",
        "notification forecast > 100 % missing",
        "actual > 80 %: subscriber intruder@example.org not in config",
    ]
    repaired = h.up()
    assert repaired.ok and repaired.results["budget"].outcome is Outcome.UPDATED
    assert set(h.writes()) == {
        "budgets:UpdateBudget",
        "budgets:CreateNotification",
        "budgets:DeleteSubscriber",
    }
    assert described(h)["BudgetLimit"]["Amount"] == "150.00"
    assert described(h)["CostFilters"] == SCOPED
    assert notifications(h) == WANT
    assert h.up().ok and h.writes() == {}, h.writes()

    # The config changes: a new amount and a new address.
    h.write_config(CONFIG.replace("150", "200").replace("ops@", "finance@"))
    changed = h.up()
    assert changed.results["budget"].drift == [
        "amount 150.00 USD (want 200.00 USD)",
        "forecast > 100 %: subscriber finance@example.com missing",
        "forecast > 100 %: subscriber ops@example.com not in config",
        "actual > 80 %: subscriber finance@example.com missing",
        "actual > 80 %: subscriber ops@example.com not in config",
    ]
    assert described(h)["BudgetLimit"]["Amount"] == "200.00"
    assert notifications(h) == {k: ["finance@example.com"] for k in WANT}

    details = h.status().results["budget"].details
    assert details["limit"] == "200.00 USD monthly"
    assert details["scope"] == "tag pcls:stack=meet"
    assert details["spent"] == "0 USD, forecast 0 USD"
    assert details["alerts"] == (
        "forecast > 100 % to finance@example.com; actual > 80 % to finance@example.com"
    )

    gone = h.teardown()
    assert gone.ok and gone.results["budget"].outcome is Outcome.DELETED
    assert not gone.remaining
    assert client.describe_budgets(AccountId=ACCOUNT).get("Budgets", []) == []


@pytest.mark.parametrize(
    "owner", [{}, {"pcls:stack": "other", "pcls:step": "budget"}, {"pcls:stack": "meet"}]
)
def test_a_budget_with_pcls_s_name_that_is_not_the_stack_s_stops_up(
    budgeted: Harness, billing: Billing, capsys: pytest.CaptureFixture[str], owner: dict[str, str]
) -> None:
    h = budgeted
    theirs = {
        "BudgetName": NAME,
        "BudgetLimit": {"Amount": "10", "Unit": "USD"},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
    }
    budgets(h).create_budget(
        AccountId=ACCOUNT,
        Budget=theirs,
        ResourceTags=[{"Key": k, "Value": v} for k, v in owner.items()],
    )
    for command in ("plan", "up"):
        seen = h.cli(command, "--api-calls", capsys=capsys)
        assert seen.code == 2, (command, seen.out, seen.err)
        assert f"budget: budget ({NAME})" in seen.err, seen.err
        assert ("pcls adopt budget pcls-meet" in seen.err) == (owner.get("pcls:stack") != "other")
        calls = json.loads(seen.err[seen.err.rindex("\n{") + 1 :])["calls"]
        assert not [c for c in calls if not is_read(c.split(":", 1)[1])], calls
    assert not h.ledger_path.exists()
    gone = h.cli("teardown", "--yes", capsys=capsys)
    assert gone.code == 0, gone.err
    assert NAME in gone.out + gone.err  # named as left alone
    assert described(h)["BudgetLimit"]["Amount"] == "10"
    assert tags(h) == owner


def test_adopting_the_budget_makes_it_the_stack_s(
    budgeted: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = budgeted
    budgets(h).create_budget(
        AccountId=ACCOUNT,
        Budget={
            "BudgetName": NAME,
            "BudgetLimit": {"Amount": "10", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
    )
    adopted = h.cli("adopt", "budget", NAME, "--yes", capsys=capsys)
    assert adopted.code == 0, adopted.err
    assert tags(h) == {"pcls:stack": "meet", "pcls:step": "budget"}
    up = h.up()
    assert up.ok and up.results["budget"].outcome is Outcome.UPDATED
    assert described(h)["BudgetLimit"]["Amount"] == "150.00"
    assert notifications(h) == WANT


def test_an_inactive_cost_allocation_tag_means_the_whole_account_until_it_is_active(
    budgeted: Harness, billing: Billing
) -> None:
    h = budgeted
    billing.tag_status = "Inactive"
    assert h.up().ok
    assert not described(h).get("CostFilters")
    warned = [i for i in infos(h) if i.startswith("warning: budget:")]
    assert warned == [
        "warning: budget: pcls-meet covers the whole account, not only this stack: the cost "
        "allocation tag pcls:stack is Inactive; activate it in the Billing console, Cost "
        "allocation tags (the management account of an organization does this; tags show "
        "there up to 24 hours after first use)"
    ]
    details = h.status().results["budget"].details
    assert details["scope"].startswith(
        "whole account (the cost allocation tag pcls:stack is Inactive; activate it in the "
        "Billing console, Cost allocation tags"
    ), details
    assert [i for i in infos(h) if i.startswith("warning: budget:")] == warned  # status too

    billing.tag_status = None  # not even listed yet: the same
    assert h.status().results["budget"].drift == []

    billing.tag_status = "Active"
    plan = h.plan()
    assert plan.results["budget"].drift == ["scope whole account (want tag pcls:stack=meet)"]
    assert h.up().ok
    assert described(h)["CostFilters"] == SCOPED
    assert h.status().results["budget"].details["scope"] == "tag pcls:stack=meet"


def test_an_unanswered_tag_question_keeps_the_scope_and_says_so(
    budgeted: Harness, billing: Billing
) -> None:
    h = budgeted
    billing.refuse = "AccessDeniedException"
    assert h.up().ok
    assert not described(h).get("CostFilters")  # a new budget covers the account
    scope = h.status().results["budget"].details["scope"]
    assert scope.startswith("whole account (ce:ListCostAllocationTags: AccessDeniedException"), (
        scope
    )

    billing.refuse = ""
    assert h.up().ok and described(h)["CostFilters"] == SCOPED
    billing.refuse = "AccessDeniedException"
    assert h.status().results["budget"].drift == []  # scoped, and kept scoped
    assert h.up().ok and h.writes() == {}


def test_no_budget_no_budgets_call(harness: Harness, billing: Billing) -> None:
    harness.write_config('[alerts]\nemail = "ops@example.com"\n')
    assert harness.up().ok
    assert not [c for c in harness.calls()["calls"] if c.startswith(("budgets:", "ce:"))]
    assert budgets(harness).describe_budgets(AccountId=ACCOUNT).get("Budgets", []) == []


# -- the operator policy ----------------------------------------------------------------------


def test_the_operator_policy_allows_every_budget_call_and_no_other_budget(
    budgeted: Harness, billing: Billing
) -> None:
    seen: set[tuple[str, str]] = set()

    def register(client: Any) -> None:
        svc = client.meta.service_model.service_name
        if svc in ("budgets", "ce"):
            client.meta.events.register(
                "before-call", lambda model, **_: seen.add((svc, model.name))
            )

    h = budgeted
    with on_every_client(register):
        assert h.plan().results
        assert h.up().ok
        client = budgets(h)
        forecast, actual = desired_notifications()
        client.delete_notification(AccountId=ACCOUNT, BudgetName=NAME, Notification=forecast)
        client.create_subscriber(
            AccountId=ACCOUNT,
            BudgetName=NAME,
            Notification=actual,
            Subscriber={"SubscriptionType": "EMAIL", "Address": "x@example.org"},
        )
        billing.tag_status = "Inactive"
        h.write_config(CONFIG.replace("150", "75"))
        assert h.up().ok
        h.status()
        assert h.teardown().ok
    ours = {c for c in seen if c[0] in ("budgets", "ce")}
    assert {op for _, op in ours} >= {
        "CreateBudget",
        "DescribeBudget",
        "ListTagsForResource",
        "DescribeNotificationsForBudget",
        "DescribeSubscribersForNotification",
        "UpdateBudget",
        "CreateNotification",
        "DeleteSubscriber",
        "DeleteBudget",
        "ListCostAllocationTags",
    }
    allowed = allowed_actions("meet")
    assert not sorted(iam_action(s, op) for s, op in ours if iam_action(s, op) not in allowed)
    assert iam_action("budgets", "DescribeSubscribersForNotification") == "budgets:ViewBudget"
    assert iam_action("budgets", "CreateSubscriber") == "budgets:ModifyBudget"
    assert set(DOCUMENTED_EXTRAS[("budgets", "CreateBudget")][1]) <= allowed

    one = Target(ACCOUNT, "meet", "eu-central-2", domain="meet.example.com")
    named = [s for s in statements(one) if any("budgets:" in a for a in s["Action"])]
    assert {s["Resource"] for s in named} == {ARN}
    assert [s["Sid"] for s in named] == ["BudgetRead", "BudgetWrite", "BudgetTags"]
    write = next(s for s in named if s["Sid"] == "BudgetWrite")
    assert write["Condition"] == {"StringEqualsIfExists": {"aws:ResourceTag/pcls:stack": "meet"}}
    assert not [a for s in statements(one) for a in s["Action"] if a.startswith("aws-portal:")]
    # Cost Explorer's question has no resource type: it is in the read statement.
    (read,) = [s for s in statements(one) if s["Sid"] == "Read"]
    assert "ce:ListCostAllocationTags" in read["Action"]
    assert all(len(json.dumps(d, separators=(",", ":"))) <= 6144 for d in operator_policies(one))


def test_the_step_is_adoptable_and_its_ids_are_checked() -> None:
    step = Budget()
    assert step.name == "budget" and budget_name("meet") == NAME
    import re

    assert re.fullmatch(step.id_pattern, NAME) and not re.fullmatch(step.id_pattern, "meet-x y")


def test_docs_describe_the_budget() -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "ecs.md").read_text(encoding="utf-8")
    for needle in ("## Budget guard", "user:pcls:stack$<stack>", "ce:ListCostAllocationTags"):
        assert needle in text, needle

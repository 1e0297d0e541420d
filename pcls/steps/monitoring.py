"""Monitoring: the alarm topic (with an optional e-mail subscription), the alarms, the dashboard.

Every metric here exists without Container Insights (which costs extra and is off by default):
- AWS/ApplicationELB for 5xx responses and target health;
- AWS/ECS CPUUtilization per service, which ECS publishes only while the service has a RUNNING
  task, so "no data" means "no task": each signal shard's alarm counts its service's samples and
  treats missing data as breaching;
- the bridge-guard sidecar's EMF metrics in pcls/Jitsi (one line per bridge per interval), whose
  sample count estimates how many bridges run (ECS publishes no task count without Insights); its
  XmppConnected share (a bridge not connected to every signal shard gets no new participant
  from jicofo there, and its health check does not notice), and its EarlyStops (one line per
  bridge that stops, 1 when it ran under 15 minutes: bridges replaced in a loop).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pcls import router
from pcls.aws import ignore_missing, tag_drift, tags_of
from pcls.config import Config
from pcls.engine import Context, Resource, Step
from pcls.sidecar_container import (
    EARLY_STOP_SECONDS,
    GUARD_INTERVAL,
    METRIC_CONFERENCES,
    METRIC_DIMENSION,
    METRIC_EARLY_STOPS,
    METRIC_NAMESPACE,
    METRIC_PARTICIPANTS,
    METRIC_STRESS_LEVEL,
    METRIC_XMPP,
)
from pcls.steps.loadbalancer import find_alb
from pcls.steps.platform import AWAKE, sleep_state
from pcls.steps.scaling import SCALING_METRICS, short_name

ALB_NS = "AWS/ApplicationELB"
ECS_NS = "AWS/ECS"
# Seconds between the guard's metric lines: the bridge count estimate divides by it.
POOL_PERIOD = 900  # 60 guard lines per bridge: one line more or less moves the estimate < 2%
LOAD_ALARM_FACTOR = 1.5  # bridge load this far above target for 10 min: scaling cannot keep up
CPU_ALARM_MARGIN = 15.0  # percent above the CPU guard's target
FIVE_XX_THRESHOLD = 10.0  # 5xx responses in 5 minutes
XMPP_MINUTES = 5  # a bridge short of a shard this long: longer than a start or a signal rollout
# Early stops in RESTART_PERIOD: a bridge replaced in a loop (unhealthy after ~3 minutes, e.g. no
# public address found) stops about 6 times in 30 minutes; a rollout or scale-in replaces bridges
# that ran longer, and two scale-ins of new bridges within 30 minutes stay below.
RESTART_PERIOD = 1800
RESTART_THRESHOLD = 3.0

TOPIC_STEP = "alarm-topic"
SOURCE_STEPS = ("alb", "target-group", "service-signal", "service-jvb")
PENDING = "PendingConfirmation"
# On the topic: a digest of the one address pcls subscribed, so a changed alerts.email drops
# pcls's old subscription and never one somebody else added.
EMAIL_TAG = "pcls:email"


def marker(stack: str) -> str:
    """The dashboard's claim: dashboards carry no tags, so the body names its stack."""
    return f"pcls:stack={stack}"


def marker_widget(stack: str) -> dict[str, Any]:
    text = f"Managed by pcls ({marker(stack)}); `pcls up` rewrites edits here."
    return {"type": "text", "properties": {"markdown": text}}


def email_digest(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Refs:
    """What the alarms and the dashboard point at."""

    topic_arn: str
    alb: str  # app/<name>/<id>, the LoadBalancer dimension
    target_group: str  # targetgroup/<name>/<id>, the TargetGroup dimension
    cluster: str
    jvb_service: str
    region: str

    @classmethod
    def placeholder(cls) -> Refs:
        """Stand-ins for counting alarms and metrics without AWS (the cost model)."""
        return cls("arn:aws:sns:-:0:-", "app/-/-", "targetgroup/-/-", "-", "-", "-")

    @classmethod
    def of(cls, ctx: Context) -> Refs:
        jvb = ctx.out("service-jvb")
        return cls(
            topic_arn=ctx.out(TOPIC_STEP).id,
            alb=str(ctx.out("alb").attrs["arn_suffix"]),
            target_group=str(ctx.out("target-group").attrs["arn_suffix"]),
            cluster=short_name(str(jvb.attrs["cluster"])),
            jvb_service=short_name(str(jvb.attrs["name"])),
            region=ctx.aws.region,
        )

    def alarm_arn(self, name: str) -> str:
        # Partition and account from the topic's ARN: no extra call.
        _, partition, _, _, account, _ = self.topic_arn.split(":", 5)
        return f"arn:{partition}:cloudwatch:{self.region}:{account}:alarm:{name}"


# -- alarms ----------------------------------------------------------------------------------

ALARM_KINDS = (
    "alb-5xx",
    "alb-unhealthy",
    "jvb-load-high",
    "jvb-cpu-high",
    "jvb-xmpp",
    "jvb-restarting",
)
POOL_ALARM = "jvb-at-max"
XMPP_ALARM, RESTART_ALARM = "jvb-xmpp", "jvb-restarting"
# One alarm per signal shard (its ECS service, named after the shard): signal-down-shard-a, ...
SIGNAL_ALARM = "signal-down"
# Names pcls wrote once and writes no more: removed when this stack's tags are on them, left
# alone (never in the way) when not. v1's one signal alarm watched only the first shard.
RETIRED_ALARMS = (SIGNAL_ALARM,)


def alarm_name(stack: str, what: str) -> str:
    return f"{stack}-{what}"


def signal_alarm(shard: str) -> str:
    """The `what` of a shard's alarm: signal-down-shard-a."""
    return f"{SIGNAL_ALARM}-{shard}"


def known_alarm_names(stack: str) -> set[str]:
    """Every alarm name pcls may have made for this stack (wanted now or by an earlier config)."""
    shards = [signal_alarm(s) for s in router.slots()]
    return {alarm_name(stack, w) for w in (*ALARM_KINDS, POOL_ALARM, *shards, *RETIRED_ALARMS)}


def _metric(ns: str, name: str, dims: dict[str, str]) -> dict[str, Any]:
    return {
        "Namespace": ns,
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }


def alarm_specs(cfg: Config, refs: Refs, *, awake: bool = True) -> dict[str, dict[str, Any]]:
    """PutMetricAlarm requests by alarm name: exactly what `up` creates and keeps.

    Asleep or waking (awake=False) their actions are off: the wake function turns them off
    before the tasks stop and on once the shards serve again (pcls/wakefn/handler.py).
    """
    stack = cfg.stack.name
    actions = [refs.topic_arn]
    lb = {"LoadBalancer": refs.alb}
    jvb = {"ClusterName": refs.cluster, "ServiceName": refs.jvb_service}
    bridge = {METRIC_DIMENSION: stack}
    load_metric = SCALING_METRICS[cfg.scaling.metric]
    cpu_threshold = min(cfg.scaling.cpu_target + CPU_ALARM_MARGIN, 95.0)

    def spec(what: str, description: str, **params: Any) -> tuple[str, dict[str, Any]]:
        name = alarm_name(stack, what)
        evaluation = params.pop("EvaluationPeriods")
        return name, {
            "AlarmName": name,
            "AlarmDescription": f"pcls {stack}: {description}",
            "ActionsEnabled": awake,
            "AlarmActions": actions,
            "OKActions": actions,
            "InsufficientDataActions": [],
            "EvaluationPeriods": evaluation,
            "DatapointsToAlarm": evaluation,
            **params,
        }

    def single(ns: str, metric: str, dims: dict[str, str], stat: str, period: int) -> dict:
        return {**_metric(ns, metric, dims), "Statistic": stat, "Period": period}

    specs = [
        spec(
            "alb-5xx",
            f"at least {FIVE_XX_THRESHOLD:g} HTTP 5xx responses (load balancer + targets) "
            "in 5 minutes",
            Metrics=[
                {
                    "Id": "elb",
                    "MetricStat": {
                        "Metric": _metric(ALB_NS, "HTTPCode_ELB_5XX_Count", lb),
                        "Period": 300,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "target",
                    "MetricStat": {
                        "Metric": _metric(ALB_NS, "HTTPCode_Target_5XX_Count", lb),
                        "Period": 300,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
                {
                    # Both counts exist only in minutes with errors; FILL keeps one of them
                    # from hiding the other.
                    "Id": "errors",
                    "Expression": "FILL(elb, 0) + FILL(target, 0)",
                    "Label": "5xx responses",
                    "ReturnData": True,
                },
            ],
            EvaluationPeriods=1,
            Threshold=FIVE_XX_THRESHOLD,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
        ),
        spec(
            "alb-unhealthy",
            "a signal target has been unhealthy for 5 minutes",
            **single(
                ALB_NS,
                "UnHealthyHostCount",
                {"TargetGroup": refs.target_group, **lb},
                "Maximum",
                60,
            ),
            EvaluationPeriods=5,
            Threshold=0.0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        *[
            spec(
                signal_alarm(shard),
                f"no running task in signal {shard} for 5 minutes (ECS reports CPU only for "
                "running tasks); its rooms are on the other shards meanwhile",
                **single(
                    ECS_NS,
                    "CPUUtilization",
                    {"ClusterName": refs.cluster, "ServiceName": shard},
                    "SampleCount",
                    60,
                ),
                EvaluationPeriods=5,
                Threshold=1.0,
                ComparisonOperator="LessThanThreshold",
                TreatMissingData="breaching",
            )
            for shard in router.shard_names(cfg.signal.shards)
        ],
        spec(
            "jvb-load-high",
            f"bridge {load_metric} per bridge above {LOAD_ALARM_FACTOR:g} x the scaling target "
            "for 10 minutes",
            **single(METRIC_NAMESPACE, load_metric, bridge, "Average", 60),
            EvaluationPeriods=10,
            Threshold=round(cfg.scaling.target * LOAD_ALARM_FACTOR, 4),
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        spec(
            "jvb-cpu-high",
            f"bridge CPU above {cpu_threshold:g}% for 10 minutes",
            **single(ECS_NS, "CPUUtilization", jvb, "Average", 60),
            EvaluationPeriods=10,
            Threshold=cpu_threshold,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        spec(
            XMPP_ALARM,
            f"a bridge not connected to every XMPP shard for {XMPP_MINUTES} minutes "
            "(jicofo cannot use it there; its ECS health check stays green)",
            **single(METRIC_NAMESPACE, METRIC_XMPP, bridge, "Minimum", 60),
            EvaluationPeriods=XMPP_MINUTES,
            Threshold=1.0,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="notBreaching",
        ),
        spec(
            RESTART_ALARM,
            f"bridges keep stopping: {RESTART_THRESHOLD:g}+ bridges stopped within "
            f"{EARLY_STOP_SECONDS // 60} minutes of their start in {RESTART_PERIOD // 60} minutes",
            **single(METRIC_NAMESPACE, METRIC_EARLY_STOPS, bridge, "Sum", RESTART_PERIOD),
            EvaluationPeriods=1,
            Threshold=RESTART_THRESHOLD,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
        ),
    ]
    if cfg.jvb.max_count > cfg.jvb.min_count:
        # A pool with min = max is always at its maximum: no alarm for that.
        specs.append(
            spec(
                POOL_ALARM,
                f"about {cfg.jvb.max_count} bridges (jvb.max_count) reporting for 15 minutes",
                Metrics=[
                    {
                        "Id": "lines",
                        "MetricStat": {
                            "Metric": _metric(METRIC_NAMESPACE, METRIC_CONFERENCES, bridge),
                            "Period": POOL_PERIOD,
                            "Stat": "SampleCount",
                        },
                        "ReturnData": False,
                    },
                    {
                        # Each bridge's guard prints one line every GUARD_INTERVAL seconds.
                        "Id": "bridges",
                        "Expression": f"lines * {GUARD_INTERVAL} / {POOL_PERIOD}",
                        "Label": "bridges reporting (estimate)",
                        "ReturnData": True,
                    },
                ],
                EvaluationPeriods=1,
                Threshold=cfg.jvb.max_count - 0.5,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="notBreaching",
            )
        )
    return dict(specs)


def alarm_names(cfg: Config) -> list[str]:
    return sorted(alarm_specs(cfg, Refs.placeholder()))


def billed_alarm_metrics(cfg: Config) -> int:
    """Alarm metrics CloudWatch bills: one per plain alarm, one per metric in a math alarm."""
    total = 0
    for spec in alarm_specs(cfg, Refs.placeholder()).values():
        queries = spec.get("Metrics")
        total += sum(1 for q in queries if "MetricStat" in q) if queries else 1
    return total


def _dims(dims: list[dict[str, str]] | None) -> list[tuple[str, str]]:
    return sorted((d["Name"], d["Value"]) for d in dims or ())


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _norm_query(q: dict[str, Any]) -> dict[str, Any]:
    stat = q.get("MetricStat")
    out: dict[str, Any] = {
        "Id": q.get("Id"),
        "Expression": q.get("Expression"),
        "Label": q.get("Label"),
        "ReturnData": q.get("ReturnData", True),
        "Period": q.get("Period"),
    }
    if stat:
        metric = stat.get("Metric", {})
        out["MetricStat"] = (
            metric.get("Namespace"),
            metric.get("MetricName"),
            tuple(_dims(metric.get("Dimensions"))),
            stat.get("Period"),
            stat.get("Stat"),
            stat.get("Unit"),
        )
    return out


def _norm_alarm(a: dict[str, Any]) -> dict[str, Any]:
    """The fields pcls sets, in one shape for a request and a DescribeAlarms item (AWS defaults
    filled in), so a comparison shows only real differences."""
    return {
        "AlarmDescription": a.get("AlarmDescription", ""),
        "ActionsEnabled": a.get("ActionsEnabled", True),
        "AlarmActions": sorted(a.get("AlarmActions") or []),
        "OKActions": sorted(a.get("OKActions") or []),
        "InsufficientDataActions": sorted(a.get("InsufficientDataActions") or []),
        "Namespace": a.get("Namespace"),
        "MetricName": a.get("MetricName"),
        "Dimensions": _dims(a.get("Dimensions")),
        "Statistic": a.get("Statistic"),
        "ExtendedStatistic": a.get("ExtendedStatistic"),
        "Period": a.get("Period"),
        "Unit": a.get("Unit"),
        "EvaluationPeriods": a.get("EvaluationPeriods"),
        "DatapointsToAlarm": a.get("DatapointsToAlarm") or a.get("EvaluationPeriods"),
        "Threshold": _num(a.get("Threshold")),
        "ComparisonOperator": a.get("ComparisonOperator"),
        "TreatMissingData": a.get("TreatMissingData") or "missing",
        "Metrics": sorted(
            (_norm_query(q) for q in a.get("Metrics") or []), key=lambda q: str(q["Id"])
        ),
    }


def alarm_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """Short lines naming each field pcls sets that differs."""
    w, h = _norm_alarm(want), _norm_alarm(have)
    out = []
    for key, value in w.items():
        if h[key] == value:
            continue
        if key == "Metrics":
            out.append("metric math differs")
        elif key.endswith("Actions"):
            out.append(f"{key} {h[key]} (want {value})")
        else:
            out.append(f"{key} {h[key]!r} (want {value!r})")
    return out


# -- dashboard -------------------------------------------------------------------------------


def dashboard_name(stack: str) -> str:
    return stack


def dashboard_body(cfg: Config, refs: Refs) -> dict[str, Any]:
    """The dashboard: bridge load and count, CPU, signal presence, ALB health, alarm states."""
    stack = cfg.stack.name
    lb = ["LoadBalancer", refs.alb]
    tg = ["TargetGroup", refs.target_group, *lb]
    jvb = ["ClusterName", refs.cluster, "ServiceName", refs.jvb_service]
    bridge = [METRIC_DIMENSION, stack]
    specs = alarm_specs(cfg, refs)
    cpu_alarm = specs[alarm_name(stack, "jvb-cpu-high")]["Threshold"]
    load_alarm = specs[alarm_name(stack, "jvb-load-high")]["Threshold"]
    load_metric = SCALING_METRICS[cfg.scaling.metric]

    def graph(title: str, metrics: list[list[Any]], **extra: Any) -> dict[str, Any]:
        props: dict[str, Any] = {
            "title": title,
            "region": refs.region,
            "view": "timeSeries",
            "stacked": False,
            "period": 60,
            "metrics": metrics,
            "yAxis": {"left": {"min": 0}},
        }
        props.update(extra)
        return {"type": "metric", "properties": props}

    def lines(*marks: tuple[str, float]) -> dict[str, Any]:
        return {"horizontal": [{"label": label, "value": value} for label, value in marks]}

    widgets = [
        graph(
            "Bridge participants",
            [
                [METRIC_NAMESPACE, METRIC_PARTICIPANTS, *bridge, {"stat": "Sum", "label": "all"}],
                ["...", {"stat": "Average", "label": "per bridge"}],
            ],
        ),
        graph(
            f"Bridge load: {load_metric} per bridge (scaling metric)",
            [
                [METRIC_NAMESPACE, load_metric, *bridge, {"stat": "Average", "label": "average"}],
                ["...", {"stat": "Maximum", "label": "busiest bridge"}],
            ],
            annotations=lines(("target", cfg.scaling.target), ("alarm", load_alarm)),
        ),
        graph(
            "Bridges reporting (estimate) and conferences",
            [
                [
                    {
                        "expression": f"lines * {GUARD_INTERVAL} / 60",
                        "label": "bridges (estimate)",
                        "id": "bridges",
                    }
                ],
                [
                    METRIC_NAMESPACE,
                    METRIC_CONFERENCES,
                    *bridge,
                    {"stat": "SampleCount", "id": "lines", "visible": False},
                ],
                ["...", {"stat": "Sum", "label": "conferences", "id": "conferences"}],
            ],
            annotations=lines(("jvb.max_count", cfg.jvb.max_count)),
        ),
        graph(
            "Bridge CPU %",
            [
                [ECS_NS, "CPUUtilization", *jvb, {"stat": "Average", "label": "average"}],
                ["...", {"stat": "Maximum", "label": "busiest task"}],
            ],
            annotations=lines(("scaling target", cfg.scaling.cpu_target), ("alarm", cpu_alarm)),
        ),
        graph(
            "Bridge stress level",
            [[METRIC_NAMESPACE, METRIC_STRESS_LEVEL, *bridge, {"stat": "Maximum"}]],
        ),
        graph(
            "Bridge health: XMPP connected (least connected bridge) and early stops",
            [
                [METRIC_NAMESPACE, METRIC_XMPP, *bridge, {"stat": "Minimum", "label": "xmpp"}],
                [
                    METRIC_NAMESPACE,
                    METRIC_EARLY_STOPS,
                    *bridge,
                    {"stat": "Sum", "label": "early stops", "yAxis": "right"},
                ],
            ],
            annotations=lines(("all shards", 1.0)),
        ),
        graph(
            "Signal shards: CPU % per shard (no line = no running task)",
            [
                [
                    ECS_NS,
                    "CPUUtilization",
                    "ClusterName",
                    refs.cluster,
                    "ServiceName",
                    shard,
                    {"stat": "Average", "label": shard},
                ]
                for shard in router.shard_names(cfg.signal.shards)
            ],
        ),
        graph(
            "Load balancer: 5xx responses",
            [
                [ALB_NS, "HTTPCode_ELB_5XX_Count", *lb, {"stat": "Sum"}],
                [ALB_NS, "HTTPCode_Target_5XX_Count", *lb, {"stat": "Sum"}],
                [ALB_NS, "RequestCount", *lb, {"stat": "Sum", "yAxis": "right"}],
            ],
            period=300,
        ),
        graph(
            "Load balancer: signal targets",
            [
                [ALB_NS, "HealthyHostCount", *tg, {"stat": "Minimum"}],
                [ALB_NS, "UnHealthyHostCount", *tg, {"stat": "Maximum"}],
            ],
        ),
        {
            "type": "alarm",
            "properties": {
                "title": "Alarms",
                "alarms": [refs.alarm_arn(name) for name in sorted(specs)],
            },
        },
        marker_widget(stack),
    ]
    width, height = 12, 6
    for i, widget in enumerate(widgets):
        widget.update(x=(i % 2) * width, y=(i // 2) * height, width=width, height=height)
    return {"widgets": widgets}


# -- steps -----------------------------------------------------------------------------------


def _sns(ctx: Context) -> Any:
    return ctx.aws.client("sns")


def _cloudwatch(ctx: Context) -> Any:
    return ctx.aws.client("cloudwatch")


def topic_name(stack: str) -> str:
    return f"{stack}-alarms"


class AlarmTopic(Step):
    """The SNS topic every alarm notifies; an e-mail subscription when alerts.email is set."""

    name = TOPIC_STEP
    kind = "sns topic"
    id_pattern = r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[a-z0-9-]+-alarms"

    def find(self, ctx: Context) -> Resource | None:
        suffix = ":" + topic_name(ctx.stack)
        arns = [t["TopicArn"] for t in ctx.aws.all("sns", "list_topics", "Topics")]
        ledger_id = ctx.ledger.id(self.name)
        items = [
            {"TopicArn": a, "Tags": self._listed_tags(ctx, a)}
            for a in arns
            if a.endswith(suffix) or a == ledger_id
        ]
        topic = ctx.pick(
            self.name,
            items,
            "TopicArn",
            what="sns topic",
            name=lambda i: str(i["TopicArn"]).rsplit(":", 1)[-1],
            want=topic_name(ctx.stack),
        )
        if topic is None:
            return None
        return Resource(topic["TopicArn"], attrs={"tags": tags_of(topic["Tags"])})

    @staticmethod
    def _listed_tags(ctx: Context, arn: str) -> list[dict[str, str]]:
        reply = ctx.aws.cached("sns", "list_tags_for_resource", ResourceArn=arn)
        return list(reply.get("Tags", []))

    def create(self, ctx: Context) -> Resource:
        # CreateTopic returns an existing topic of that name: find() has made sure there is none.
        arn = _sns(ctx).create_topic(Name=topic_name(ctx.stack), Tags=ctx.tags(self.name))
        return Resource(arn["TopicArn"], attrs={"tags": ctx.tag_dict(self.name), "subs": []})

    def tag(self, ctx: Context, res: Resource) -> None:
        _sns(ctx).tag_resource(ResourceArn=res.id, Tags=ctx.tags(self.name))

    def _tags(self, ctx: Context, res: Resource) -> dict[str, str]:
        if "tags" not in res.attrs:
            res.attrs["tags"] = tags_of(self._listed_tags(ctx, res.id))
        return dict(res.attrs["tags"])

    def _subs(self, ctx: Context, res: Resource) -> list[dict[str, Any]]:
        if "subs" not in res.attrs:
            res.attrs["subs"] = ctx.aws.all(
                "sns", "list_subscriptions_by_topic", "Subscriptions", TopicArn=res.id
            )
        return [s for s in res.attrs["subs"] if s.get("Protocol") == "email"]

    def _email_state(self, ctx: Context, res: Resource) -> tuple[bool, list[dict[str, Any]]]:
        """(configured address subscribed or pending, pcls's old subscriptions to drop).

        Only the address pcls subscribed (its digest is on the topic) is ever dropped: other
        subscriptions on the topic are somebody else's.
        """
        want = ctx.cfg.alerts.email.lower()
        subs = self._subs(ctx, res)
        present = bool(want) and any(s.get("Endpoint", "").lower() == want for s in subs)
        ours = self._tags(ctx, res).get(EMAIL_TAG, "")
        # A pending subscription has no ARN to unsubscribe; AWS drops it if nobody confirms.
        extra = [
            s
            for s in subs
            if s.get("Endpoint", "").lower() != want
            and s.get("SubscriptionArn") != PENDING
            and ours
            and email_digest(s.get("Endpoint", "")) == ours
        ]
        return present, extra

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        out = tag_drift(ctx.tag_dict(self.name), self._tags(ctx, res))
        present, extra = self._email_state(ctx, res)
        if ctx.cfg.alerts.email and not present:
            out.append(f"e-mail {ctx.cfg.alerts.email} not subscribed")
        out += [f"e-mail {s.get('Endpoint')} subscribed but not in config" for s in extra]
        return out

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        sns = _sns(ctx)
        if any(d.startswith("tag ") for d in drift):
            self.tag(ctx, res)
        present, extra = self._email_state(ctx, res)
        if ctx.cfg.alerts.email and not present:
            # The digest first: a crash after it still lets the next run drop this address.
            digest = email_digest(ctx.cfg.alerts.email)
            sns.tag_resource(ResourceArn=res.id, Tags=[{"Key": EMAIL_TAG, "Value": digest}])
            res.attrs.setdefault("tags", {})[EMAIL_TAG] = digest
            sns.subscribe(TopicArn=res.id, Protocol="email", Endpoint=ctx.cfg.alerts.email)
        for sub in extra:
            ignore_missing(lambda sub=sub: sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"]))

    def delete(self, ctx: Context, res: Resource) -> None:
        # Deleting the topic removes its subscriptions too.
        ignore_missing(lambda: _sns(ctx).delete_topic(TopicArn=res.id))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        want = ctx.cfg.alerts.email.lower()
        if not want:
            return {"email": "none"}
        for sub in self._subs(ctx, res):
            if sub.get("Endpoint", "").lower() == want:
                pending = sub.get("SubscriptionArn") == PENDING
                return {"email": "pending confirmation" if pending else "confirmed"}
        return {"email": "not subscribed"}


class Alarms(Step):
    """The stack's alarms (<stack>-<what>), each kept at exactly its desired parameters."""

    name = "alarms"
    kind = "cloudwatch alarms"
    id_pattern = r"[a-z0-9-]+-\*"
    depends_on = (TOPIC_STEP, *SOURCE_STEPS)

    def find(self, ctx: Context) -> Resource | None:
        known = known_alarm_names(ctx.stack)
        retired = {alarm_name(ctx.stack, w) for w in RETIRED_ALARMS}
        # One call for the family; MaxRecords keeps it one page for any plausible prefix match.
        alarms = ctx.aws.all(
            "cloudwatch",
            "describe_alarms",
            "MetricAlarms",
            AlarmNamePrefix=f"{ctx.stack}-",
            AlarmTypes=["MetricAlarm"],
            MaxRecords=100,
        )
        ours = {}
        for alarm in alarms:
            name = alarm["AlarmName"]
            if name not in known:
                continue
            reply = ctx.aws.cached(
                "cloudwatch", "list_tags_for_resource", ResourceARN=alarm["AlarmArn"]
            )
            tags = reply.get("Tags", [])
            if ctx.claims(self.name, name, tags):
                ours[name] = alarm
            elif name not in retired:  # PutMetricAlarm would overwrite it
                ctx.collision(self.name, name, "cloudwatch alarm", tags)
        if not ours:
            return None
        return Resource(f"{ctx.stack}-*", attrs={"alarms": ours})

    def tag(self, ctx: Context, res: Resource) -> None:
        alarm = res.attrs["alarms"][ctx.adopting[self.name]]
        _cloudwatch(ctx).tag_resource(ResourceARN=alarm["AlarmArn"], Tags=ctx.tags(self.name))

    @staticmethod
    def _specs(ctx: Context) -> dict[str, dict[str, Any]]:
        return alarm_specs(ctx.cfg, Refs.of(ctx), awake=sleep_state(ctx) == AWAKE)

    def create(self, ctx: Context) -> Resource:
        specs = self._specs(ctx)
        for spec in specs.values():
            self._put(ctx, spec)
        return Resource(f"{ctx.stack}-*", attrs={"alarms": specs})

    def _put(self, ctx: Context, spec: dict[str, Any]) -> None:
        # Tags apply when PutMetricAlarm creates the alarm; an update leaves them as they are.
        _cloudwatch(ctx).put_metric_alarm(**spec, Tags=ctx.tags(self.name))

    def _plan(self, ctx: Context, res: Resource) -> tuple[list[str], list[str], list[str]]:
        """(drift lines, alarm names to put, alarm names to delete)."""
        specs = self._specs(ctx)
        have = res.attrs["alarms"]
        lines, put = [], []
        for name, spec in specs.items():
            if name not in have:
                lines.append(f"{name} missing")
                put.append(name)
                continue
            diffs = alarm_diff(spec, have[name])
            if diffs:
                lines += [f"{name}: {d}" for d in diffs]
                put.append(name)
        extra = sorted(set(have) - set(specs))
        lines += [f"{name} not in config" for name in extra]
        return lines, put, extra

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        return self._plan(ctx, res)[0]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        _, put, extra = self._plan(ctx, res)
        specs = self._specs(ctx)
        for name in put:
            self._put(ctx, specs[name])
        if extra:
            _cloudwatch(ctx).delete_alarms(AlarmNames=extra)

    def delete(self, ctx: Context, res: Resource) -> None:
        names = sorted(res.attrs["alarms"])
        ignore_missing(lambda: _cloudwatch(ctx).delete_alarms(AlarmNames=names))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        alarms = res.attrs["alarms"]
        firing = sorted(n for n, a in alarms.items() if a.get("StateValue") == "ALARM")
        out: dict[str, Any] = {"alarms": len(alarms), "in_alarm": ", ".join(firing) or "none"}
        # the bridges' health that ECS does not see, from their alarms' state (no extra call)
        words = {
            XMPP_ALARM: ("bridges_xmpp", "every bridge connected", "a bridge lacks a shard"),
            RESTART_ALARM: ("bridge_stops", "normal", "bridges keep stopping"),
        }
        for what, (key, ok, bad) in words.items():
            alarm = alarms.get(alarm_name(ctx.stack, what))
            if alarm is None:
                continue
            state = alarm.get("StateValue")
            if state == "ALARM":
                out[key] = bad + _since(alarm)
            else:
                out[key] = ok if state == "OK" else "no data yet"
        # each shard's own alarm: which shards have had no running task for 5 minutes
        shards = {
            s: alarms[a]
            for s in router.shard_names(ctx.cfg.signal.shards)
            if (a := alarm_name(ctx.stack, signal_alarm(s))) in alarms
        }
        if shards:
            down = [s + _since(a) for s, a in shards.items() if a.get("StateValue") == "ALARM"]
            waiting = [s for s, a in shards.items() if a.get("StateValue") not in ("OK", "ALARM")]
            parts = [f"no task in {', '.join(down)}"] if down else []
            parts += [f"no data yet for {', '.join(waiting)}"] if waiting else []
            out["signal_shards"] = "; ".join(parts) or "every shard running"
        return out


def _since(alarm: dict[str, Any]) -> str:
    since = alarm.get("StateUpdatedTimestamp")
    return since.strftime(" since %Y-%m-%d %H:%M UTC") if since else ""


class Dashboard(Step):
    """One CloudWatch dashboard named after the stack; drift = the parsed body differs."""

    name = "dashboard"
    kind = "cloudwatch dashboard"
    depends_on = (TOPIC_STEP, *SOURCE_STEPS)

    id_pattern = r"[a-z0-9-]+"

    def find(self, ctx: Context) -> Resource | None:
        name = dashboard_name(ctx.stack)
        entries = ctx.aws.all(
            "cloudwatch", "list_dashboards", "DashboardEntries", DashboardNamePrefix=name
        )
        if not any(e.get("DashboardName") == name for e in entries):
            return None
        res = Resource(name)
        if not self._claimed(ctx, res):
            ctx.collision(self.name, name, "cloudwatch dashboard (no pcls marker)", {})
            return None
        return res

    def _claimed(self, ctx: Context, res: Resource) -> bool:
        """Dashboards carry no tags: ours when the body names this stack (the marker widget)
        or this stack's own tagged load balancer (a body written before the marker)."""
        if ctx.adopting.get(self.name) == res.id:
            return True
        text = json.dumps(self._body(ctx, res))
        if json.dumps(marker(ctx.stack))[1:-1] in text:
            return True
        alb = find_alb(ctx)
        suffix = alb["LoadBalancerArn"].split(":loadbalancer/", 1)[1] if alb else ""
        return bool(suffix) and json.dumps(suffix) in text

    def tag(self, ctx: Context, res: Resource) -> None:
        """The marker is the claim: adopting adds it to the body as it is; `up` does the rest."""
        body = self._body(ctx, res)
        body = dict(body) if isinstance(body, dict) else {}
        widgets = list(body.get("widgets") or [])
        widgets.append(marker_widget(ctx.stack))
        body["widgets"] = widgets
        _cloudwatch(ctx).put_dashboard(DashboardName=res.id, DashboardBody=json.dumps(body))

    def create(self, ctx: Context) -> Resource:
        body = dashboard_body(ctx.cfg, Refs.of(ctx))
        self._put(ctx, body)
        return Resource(dashboard_name(ctx.stack), attrs={"body": body})

    def _put(self, ctx: Context, body: dict[str, Any]) -> None:
        _cloudwatch(ctx).put_dashboard(
            DashboardName=dashboard_name(ctx.stack), DashboardBody=json.dumps(body)
        )

    def _body(self, ctx: Context, res: Resource) -> Any:
        if "body" not in res.attrs:
            reply = ctx.aws.cached("cloudwatch", "get_dashboard", DashboardName=res.id)
            try:
                res.attrs["body"] = json.loads(reply.get("DashboardBody") or "{}")
            except ValueError:
                res.attrs["body"] = None  # unreadable: drift, and up rewrites it
        return res.attrs["body"]

    def drift(self, ctx: Context, res: Resource) -> list[str]:
        want = dashboard_body(ctx.cfg, Refs.of(ctx))
        have = self._body(ctx, res)
        if have == want:
            return []
        count = len(have.get("widgets", [])) if isinstance(have, dict) else 0
        return [f"body differs from config ({count} widgets, want {len(want['widgets'])})"]

    def update(self, ctx: Context, res: Resource, drift: list[str]) -> None:
        self._put(ctx, dashboard_body(ctx.cfg, Refs.of(ctx)))

    def delete(self, ctx: Context, res: Resource) -> None:
        ignore_missing(lambda: _cloudwatch(ctx).delete_dashboards(DashboardNames=[res.id]))

    def details(self, ctx: Context, res: Resource) -> dict[str, Any]:
        region = ctx.aws.region
        return {
            "url": f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards/dashboard/{res.id}"
        }


def steps(cfg: Config) -> list[Step]:
    return [AlarmTopic(), Alarms(), Dashboard()]

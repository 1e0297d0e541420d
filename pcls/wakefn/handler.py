"""Sleep and wake for one pcls stack: an ALB `lambda` target and a scheduled job in one file.

Runs alone in AWS Lambda (python3.12): the standard library and boto3, nothing from pcls. The
steps set the environment (the ENV_* names below) and import this module for `pcls sleep` /
`pcls wake`, passing their own clients.

State lives in AWS: tag pcls:sleep on the cluster (awake | asleep | waking; absent = awake) and
pcls:sleep-since, when it last changed. Every write is preceded by a read and skipped when AWS
already holds the value, so any call can be repeated and a run cut short is finished by the next.

The HTTPS listener has one permanent rule, /_pcls/* -> this function's target group; its default
action is what changes. While the stack sleeps or wakes the default is a fixed response the load
balancer answers itself (`sleep_page`), so the GETs of crawlers and probes never invoke this
function; only its button (a POST to /_pcls/wake) and the progress page's status polls do.

Order, so that a visitor never meets a 502:
- sleep: listener default -> the fixed sleep page, bridges' scalable target 0/0 (scheduled
  scaling suspended), every service 0, tag asleep.
- wake: tag waking, scalable target back to its bounds, services back to their counts; the
  listener stays on the sleep page until every shard's router is a healthy target (`progress`),
  then forwards to the routers again and the tag says awake.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import boto3
import botocore.config
import botocore.exceptions

ENV_STACK = "PCLS_STACK"
ENV_CLUSTER = "PCLS_CLUSTER"
ENV_STATE_ARN = "PCLS_STATE_ARN"
ENV_SERVICES = "PCLS_SERVICES"
ENV_SCALABLE = "PCLS_SCALABLE"
ENV_LISTENER_ARN = "PCLS_LISTENER_ARN"
ENV_APP_TG_ARN = "PCLS_APP_TG_ARN"
ENV_WAKE_TG_ARN = "PCLS_WAKE_TG_ARN"
ENV_IDLE_MINUTES = "PCLS_IDLE_MINUTES"
ENV_AWAKE = "PCLS_AWAKE"
ENV_TIMEZONE = "PCLS_TIMEZONE"
ENV_METRIC = "PCLS_METRIC"
ENV_READY_SECONDS = "PCLS_READY_SECONDS"
ENV_ALARMS = "PCLS_ALARMS"

STATE_TAG = "pcls:sleep"
SINCE_TAG = "pcls:sleep-since"
AWAKE, ASLEEP, WAKING = "awake", "asleep", "waking"
STATES = (AWAKE, ASLEEP, WAKING)
SINCE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

PREFIX = "/_pcls/"
RULE_PATH = PREFIX + "*"  # the listener rule that sends these paths here, in every state
STATUS_PATH = PREFIX + "status"
WAKE_PATH = PREFIX + "wake"
PAGE_LIMIT = 1024  # characters: a fixed-response MessageBody's maximum length (elbv2 API)
MAX_READY_SECONDS = 3600  # the sleep page shows at most this estimate
RATE_LIMIT_SECONDS = 60  # wake() does nothing this soon after a state change
EDGE_GRACE = timedelta(minutes=15)  # a window edge with no recorded state change: this recent
LIVE_MINUTES = 10  # at a window's end, a conference seen this recently postpones the sleep
PATIENCE_FACTOR = 4  # waking this many times the ready estimate: any healthy shard will do
MIN_PATIENCE_SECONDS = 600
POLL_SECONDS = 4  # the page follows /_pcls/status this often while waking
ASLEEP_POLL_SECONDS = 30  # ... and this often while asleep (someone else may wake it)

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """An awake window as pcls.config.AwakeWindow: weekdays (0 = Monday), start to end minute."""

    days: frozenset[int]
    start: int
    end: int


@dataclass(frozen=True)
class ServiceCount:
    name: str
    desired: int


@dataclass(frozen=True)
class Scalable:
    resource_id: str  # service/<cluster>/<service>
    min: int
    max: int

    @property
    def service(self) -> str:
        return self.resource_id.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]


def _service(value: Any) -> ServiceCount:
    if isinstance(value, ServiceCount):
        return value
    if isinstance(value, dict):
        return ServiceCount(str(value["name"]), int(value["desired"]))
    name, desired = value
    return ServiceCount(str(name), int(desired))


def _services(value: Any) -> tuple[ServiceCount, ...]:
    if isinstance(value, (str, dict)):
        raise TypeError("a list of services")
    return tuple(_service(s) for s in value)


def _scalable(value: Any) -> Scalable | None:
    if value is None or isinstance(value, Scalable):
        return value
    return Scalable(str(value["resource_id"]), int(value["min"]), int(value["max"]))


def _metric(value: Any) -> Metric | None:
    if value is None or isinstance(value, Metric):
        return value
    dims = tuple((str(d["Name"]), str(d["Value"])) for d in value.get("dimensions", []))
    return Metric(str(value["namespace"]), str(value["name"]), dims)


def _alarm_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, dict)):
        raise TypeError("a list of alarm names")
    return tuple(sorted(str(v) for v in value))


def _window(value: Any) -> Window:
    if isinstance(value, (list, tuple)):
        days, start, end = value
    else:
        days, start, end = value.days, value.start, value.end
    return Window(frozenset(int(d) for d in days), int(start), int(end))


def _windows(value: Any) -> tuple[Window, ...]:
    return tuple(_window(w) for w in value)


def _need(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise ValueError(f"{name} is not set")
    return value


def _parsed(environ: dict[str, str], name: str, convert: Any, what: str) -> Any:
    try:
        return convert(json.loads(_need(environ, name)))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{name}: {what} expected") from None


def _int(environ: dict[str, str], name: str, default: int) -> int:
    value = environ.get(name) or str(default)
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number of 0 or more, not {value[:20]!r}")
    return int(value)


@dataclass(frozen=True)
class Env:
    """The function's configuration, as the steps write it into the environment."""

    stack: str
    cluster: str
    state_arn: str
    services: tuple[ServiceCount, ...]
    scalable: Scalable | None
    listener_arn: str
    app_tg_arn: str
    wake_tg_arn: str
    idle_minutes: int
    awake: tuple[Window, ...]
    timezone: str
    metric: Metric | None
    ready_seconds: int
    alarms: tuple[str, ...] = ()  # the stack's own alarms: silent while it sleeps

    def __post_init__(self) -> None:
        # Callers may pass plain data: (name, desired) pairs or dicts, dicts for scalable and
        # metric, AwakeWindow objects or [[days], start, end] for awake.
        for name, convert in (
            ("services", _services),
            ("scalable", _scalable),
            ("metric", _metric),
            ("awake", _windows),
            ("alarms", _alarm_names),
        ):
            object.__setattr__(self, name, convert(getattr(self, name)))

    @classmethod
    def from_environ(cls, environ: Any) -> Env:
        """ValueError naming the variable when one is missing or malformed."""
        env = dict(environ)
        timezone = env.get(ENV_TIMEZONE) or "UTC"
        try:
            ZoneInfo(timezone)
        except (ValueError, KeyError):
            raise ValueError(f"{ENV_TIMEZONE}: {timezone[:40]!r} is no IANA time zone") from None
        return cls(
            stack=_need(env, ENV_STACK),
            cluster=_need(env, ENV_CLUSTER),
            state_arn=_need(env, ENV_STATE_ARN),
            services=_parsed(env, ENV_SERVICES, _services, "a JSON list of {name, desired}"),
            scalable=_parsed(env, ENV_SCALABLE, _scalable, "JSON {resource_id, min, max}"),
            listener_arn=_need(env, ENV_LISTENER_ARN),
            app_tg_arn=_need(env, ENV_APP_TG_ARN),
            wake_tg_arn=_need(env, ENV_WAKE_TG_ARN),
            idle_minutes=_int(env, ENV_IDLE_MINUTES, 0),
            awake=_parsed(env, ENV_AWAKE, _windows, "a JSON list of [[weekdays], start, end]"),
            timezone=timezone,
            metric=_parsed(env, ENV_METRIC, _metric, "JSON {namespace, name, dimensions}"),
            ready_seconds=_int(env, ENV_READY_SECONDS, 120),
            # absent in a function deployed before it: no alarm is touched
            alarms=_parsed(env, ENV_ALARMS, _alarm_names, "a JSON list of alarm names")
            if env.get(ENV_ALARMS)
            else (),
        )

    def to_environ(self) -> dict[str, str]:
        """The variables, deterministic (sorted, compact), so an unchanged stack compares equal."""

        def dump(value: Any) -> str:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))

        sc = self.scalable
        m = self.metric
        return {
            ENV_STACK: self.stack,
            ENV_CLUSTER: self.cluster,
            ENV_STATE_ARN: self.state_arn,
            ENV_SERVICES: dump([{"name": s.name, "desired": s.desired} for s in self.services]),
            ENV_SCALABLE: dump(
                {"resource_id": sc.resource_id, "min": sc.min, "max": sc.max} if sc else None
            ),
            ENV_LISTENER_ARN: self.listener_arn,
            ENV_APP_TG_ARN: self.app_tg_arn,
            ENV_WAKE_TG_ARN: self.wake_tg_arn,
            ENV_IDLE_MINUTES: str(self.idle_minutes),
            ENV_AWAKE: dump([[sorted(w.days), w.start, w.end] for w in self.awake]),
            ENV_TIMEZONE: self.timezone,
            ENV_METRIC: dump(
                {
                    "namespace": m.namespace,
                    "name": m.name,
                    "dimensions": [{"Name": k, "Value": v} for k, v in m.dimensions],
                }
                if m
                else None
            ),
            ENV_READY_SECONDS: str(self.ready_seconds),
            ENV_ALARMS: dump(sorted(self.alarms)),
        }

    @property
    def shards(self) -> tuple[str, ...]:
        """The services whose routers are the app target group's targets: all but the bridges."""
        bridges = self.scalable.service if self.scalable else None
        return tuple(s.name for s in self.services if s.name != bridges)


@dataclass(frozen=True)
class Clients:
    """boto3 clients: ecs, elbv2, application-autoscaling (as .autoscaling), cloudwatch."""

    ecs: Any
    elbv2: Any
    autoscaling: Any
    cloudwatch: Any

    @classmethod
    def default(cls, session: Any = None) -> Clients:
        # Inside Lambda's 30 s: a few quick attempts; botocore's standard mode owns throttling.
        cfg = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=8
        )
        s = session or boto3.session.Session()
        return cls(
            ecs=s.client("ecs", config=cfg),
            elbv2=s.client("elbv2", config=cfg),
            autoscaling=s.client("application-autoscaling", config=cfg),
            cloudwatch=s.client("cloudwatch", config=cfg),
        )


# -- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Status:
    state: str  # what visitors and callers are told
    tagged: str  # what the tag says (absent: awake)
    since: datetime | None


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime(SINCE_FORMAT)


def _parse_since(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", SINCE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _default(clients: Clients, env: Env) -> list[dict[str, Any]]:
    """The HTTPS listener's default actions as AWS holds them."""
    listener = clients.elbv2.describe_listeners(ListenerArns=[env.listener_arn])["Listeners"][0]
    return list(listener.get("DefaultActions", []))


def _forwarded_to(actions: list[dict[str, Any]]) -> str | None:
    """The one target group these actions forward to (None: something else)."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            return action["TargetGroupArn"]
        groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
        if len(groups) == 1:
            return groups[0].get("TargetGroupArn")
    return None


def _shows_page(actions: list[dict[str, Any]]) -> bool:
    """Whether visitors get a fixed response (the sleep page) rather than the routers."""
    return any(a.get("Type") == "fixed-response" for a in actions)


def _status(clients: Clients, env: Env) -> _Status:
    out = clients.ecs.list_tags_for_resource(resourceArn=env.state_arn)
    tags = {t["key"]: t["value"] for t in out.get("tags", [])}
    tagged = tags.get(STATE_TAG, AWAKE)
    tagged = tagged if tagged in STATES else AWAKE
    since = _parse_since(tags.get(SINCE_TAG))
    told = tagged
    # A sleep cut short after its first step: visitors already get the page, so it is asleep.
    if tagged == AWAKE and _shows_page(_default(clients, env)):
        told = ASLEEP
    return _Status(told, tagged, since)


def state(clients: Clients, env: Env) -> str:
    """awake, asleep or waking."""
    return _status(clients, env).state


def _tag(clients: Clients, env: Env, value: str, now: datetime) -> None:
    clients.ecs.tag_resource(
        resourceArn=env.state_arn,
        tags=[{"key": STATE_TAG, "value": value}, {"key": SINCE_TAG, "value": _stamp(now)}],
    )


# -- the three levers --------------------------------------------------------------------------


def sleep_action(ready_seconds: int) -> dict[str, Any]:
    """The HTTPS listener's default action while the stack sleeps or wakes (the steps want the
    same): the load balancer answers every request outside /_pcls/* with the sleep page."""
    return {
        "Type": "fixed-response",
        "FixedResponseConfig": {
            "StatusCode": "200",
            "ContentType": "text/html",
            "MessageBody": sleep_page(ready_seconds),
        },
    }


def awake_action(app_tg_arn: str) -> dict[str, Any]:
    """The default action while awake: forward to the routers."""
    return {"Type": "forward", "TargetGroupArn": app_tg_arn}


def _same(have: list[dict[str, Any]], want: dict[str, Any]) -> bool:
    if len(have) != 1:
        return False
    if want["Type"] == "forward":
        return _forwarded_to(have) == want["TargetGroupArn"]
    fixed = have[0].get("FixedResponseConfig") or {}
    return have[0].get("Type") == want["Type"] and all(
        fixed.get(k) == v for k, v in want["FixedResponseConfig"].items()
    )


def _point(clients: Clients, env: Env, awake: bool) -> bool:
    """Listener default -> the routers (awake) or the sleep page; True when it changed."""
    want = awake_action(env.app_tg_arn) if awake else sleep_action(env.ready_seconds)
    if _same(_default(clients, env), want):
        return False
    clients.elbv2.modify_listener(ListenerArn=env.listener_arn, DefaultActions=[want])
    return True


def _bound(clients: Clients, env: Env, low: int, high: int, suspend: bool) -> str:
    """Scalable target bounds (and scheduled scaling suspended or not): changed|same|missing.

    A target that is not registered is left so: RegisterScalableTarget would create one.
    """
    sc = env.scalable
    if sc is None:
        return "missing"
    key = {"ServiceNamespace": NAMESPACE, "ScalableDimension": DIMENSION}
    found = clients.autoscaling.describe_scalable_targets(**key, ResourceIds=[sc.resource_id])[
        "ScalableTargets"
    ]
    if not found:
        return "missing"
    have = found[0]
    suspended = bool(have.get("SuspendedState", {}).get("ScheduledScalingSuspended"))
    if (have.get("MinCapacity"), have.get("MaxCapacity"), suspended) == (low, high, suspend):
        return "same"
    # Scheduled actions ([[scaling.schedule]]) set min/max themselves: held while asleep.
    clients.autoscaling.register_scalable_target(
        **key,
        ResourceId=sc.resource_id,
        MinCapacity=low,
        MaxCapacity=high,
        SuspendedState={"ScheduledScalingSuspended": suspend},
    )
    return "changed"


def _scale(clients: Clients, env: Env, counts: dict[str, int]) -> tuple[list[str], list[str]]:
    """Services to these desired counts: (changed, skipped: gone or not ACTIVE)."""
    names = list(counts)
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(names), 10):  # DescribeServices takes at most 10
        out = clients.ecs.describe_services(cluster=env.cluster, services=names[i : i + 10])
        found.update({s["serviceName"]: s for s in out.get("services", [])})
    changed, skipped = [], []
    for name, count in counts.items():
        svc = found.get(name)
        if svc is None or svc.get("status") != "ACTIVE":
            skipped.append(name)
            continue
        if svc.get("desiredCount") == count:
            continue
        try:
            clients.ecs.update_service(cluster=env.cluster, service=name, desiredCount=count)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("ServiceNotActiveException", "ServiceNotFoundException"):
                raise
            skipped.append(name)  # removed between the read and the write
            continue
        changed.append(name)
    return changed, skipped


def _restore(clients: Clients, env: Env) -> dict[str, Any]:
    changed: list[str] = []
    sc = env.scalable
    bound = _bound(clients, env, sc.min, sc.max, False) if sc else "missing"
    if bound == "changed":
        changed.append("scalable target")
    services, skipped = _scale(clients, env, {s.name: s.desired for s in env.services})
    return {"changed": changed + services, "skipped": skipped, "scalable": bound}


# -- the alarms --------------------------------------------------------------------------------

# What CloudWatch records as the reason of the state the function sets on waking.
AWAKE_REASON = "pcls: awake again after a sleep; the next evaluation sets the real state"
ALARMS_PER_CALL = 100  # DescribeAlarms takes at most 100 names


def _alarms(clients: Clients, env: Env) -> list[dict[str, Any]]:
    """The stack's metric alarms that exist (a name CloudWatch does not know is left out)."""
    names = list(env.alarms)
    found: list[dict[str, Any]] = []
    paginator = clients.cloudwatch.get_paginator("describe_alarms")
    for i in range(0, len(names), ALARMS_PER_CALL):
        pages = paginator.paginate(
            AlarmNames=names[i : i + ALARMS_PER_CALL], AlarmTypes=["MetricAlarm"]
        )
        found += [a for page in pages for a in page.get("MetricAlarms", [])]
    return found


def _silence(clients: Clients, env: Env) -> list[str]:
    """Alarm actions off while the stack sleeps or wakes: ["alarms"] when this changed them.

    A shard's alarm treats missing data as breaching, and a stack that runs no task on purpose
    would mail the operator on every sleep; the alarms keep changing state, silently.
    """
    names = sorted(a["AlarmName"] for a in _alarms(clients, env) if a.get("ActionsEnabled", True))
    if names:
        clients.cloudwatch.disable_alarm_actions(AlarmNames=names)
    return ["alarms"] if names else []


def _unsilence(clients: Clients, env: Env) -> list[str]:
    """Alarm actions back on once awake: ["alarms"] when this changed them.

    Actions run on a state change only, so an alarm left in ALARM by the sleep (a shard's: its
    data stopped with its task) would mail OK at its next evaluation and never mail a breach
    that outlasts the wake. Set OK first, while its actions are still off: the next evaluation
    (within a minute) sets the real state and mails only a real ALARM.
    """
    silent = [a for a in _alarms(clients, env) if not a.get("ActionsEnabled", True)]
    for alarm in silent:
        if alarm.get("StateValue") != "OK":
            clients.cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"], StateValue="OK", StateReason=AWAKE_REASON
            )
    names = sorted(a["AlarmName"] for a in silent)
    if names:
        clients.cloudwatch.enable_alarm_actions(AlarmNames=names)
    return ["alarms"] if names else []


# -- the operations ----------------------------------------------------------------------------


def sleep(clients: Clients, env: Env, now: datetime) -> dict[str, Any]:
    """Put the stack to sleep (or finish a sleep cut short); idempotent."""
    changed: list[str] = []
    if _point(clients, env, awake=False):
        changed.append("listener")
    changed += _silence(clients, env)  # before any task stops: no mail in between
    bound = _bound(clients, env, 0, 0, True)
    if bound == "changed":
        changed.append("scalable target")
    services, skipped = _scale(clients, env, {s.name: 0 for s in env.services})
    changed += services
    if _status(clients, env).tagged != ASLEEP:
        _tag(clients, env, ASLEEP, now)
        changed.append("state")
    return {"state": ASLEEP, "changed": changed, "skipped": skipped, "scalable": bound}


def wake(clients: Clients, env: Env, now: datetime, *, rate_limit: bool = True) -> dict[str, Any]:
    """Start the stack: tag waking, bounds and counts back; the listener waits for `progress`.

    Nothing when awake. Within RATE_LIMIT_SECONDS of the last state change nothing either
    (rate_limit=False for an operator's deliberate call). When already waking, it finishes
    whatever an earlier wake did not get to, writing nothing when all is in place.
    """
    st = _status(clients, env)
    if st.state == AWAKE:
        return {"state": AWAKE, "changed": [], "skipped": []}
    if rate_limit and st.since is not None:
        left = RATE_LIMIT_SECONDS - (now - st.since).total_seconds()
        if left > 0:
            return {"state": st.state, "changed": [], "skipped": [], "retry_in": math.ceil(left)}
    changed = []
    if st.tagged != WAKING:
        _tag(clients, env, WAKING, now)
        changed.append("state")
    changed += _silence(clients, env)  # a stack put to sleep before they were silenced
    done = _restore(clients, env)
    return {"state": WAKING, **done, "changed": changed + done["changed"]}


def _healthy(clients: Clients, env: Env) -> int:
    out = clients.elbv2.describe_target_health(TargetGroupArn=env.app_tg_arn)
    return sum(
        1
        for t in out.get("TargetHealthDescriptions", [])
        if t.get("TargetHealth", {}).get("State") == "healthy"
    )


def _active(clients: Clients, env: Env, names: tuple[str, ...]) -> int:
    count = 0
    for i in range(0, len(names), 10):
        out = clients.ecs.describe_services(cluster=env.cluster, services=list(names[i : i + 10]))
        count += sum(1 for s in out.get("services", []) if s.get("status") == "ACTIVE")
    return count


def progress(clients: Clients, env: Env, now: datetime) -> dict[str, Any]:
    """While waking: once every shard's router is a healthy target, the listener goes back.

    One router runs in each shard task (one task per shard), so "every shard routed" is as many
    healthy targets as there are active shard services; after PATIENCE_FACTOR times the ready
    estimate (at least MIN_PATIENCE_SECONDS), one healthy router is enough.
    """
    st = _status(clients, env)
    if st.state != WAKING:
        ready_in = 0 if st.state == AWAKE else env.ready_seconds
        return {"state": st.state, "healthy": None, "wanted": len(env.shards), "ready_in": ready_in}
    wanted = _active(clients, env, env.shards) if env.shards else 0
    healthy = _healthy(clients, env)
    elapsed = (now - st.since).total_seconds() if st.since else 0
    # A shard that never comes up is left out of every router's ring; past the patience, the
    # shards that are up serve all rooms rather than the page waiting for ever.
    patience = max(MIN_PATIENCE_SECONDS, PATIENCE_FACTOR * env.ready_seconds)
    if healthy >= max(wanted, 1) or (healthy and elapsed >= patience):
        _unsilence(clients, env)  # before the tag: a run cut short between is still waking
        _point(clients, env, awake=True)
        _tag(clients, env, AWAKE, now)
        return {"state": AWAKE, "healthy": healthy, "wanted": wanted, "ready_in": 0}
    ready_in = max(5, int(env.ready_seconds - elapsed))
    return {"state": WAKING, "healthy": healthy, "wanted": wanted, "ready_in": ready_in}


# -- the schedule ------------------------------------------------------------------------------


def inside(env: Env, t: datetime) -> bool:
    """Whether instant t falls in an awake window, in the stack's time zone."""
    local = t.astimezone(ZoneInfo(env.timezone))
    minute = local.hour * 60 + local.minute
    return any(local.weekday() in w.days and w.start <= minute < w.end for w in env.awake)


def last_edge(env: Env, now: datetime) -> tuple[datetime, bool] | None:
    """(when, awake after it) of the latest instant <= now where `inside` changes; None: none.

    Adjacent or overlapping windows make one stretch: their shared minute is no edge.
    """
    zone = ZoneInfo(env.timezone)
    today = now.astimezone(zone).date()
    candidates = set()
    for back in range(8):
        day = today - timedelta(days=back)
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        for w in env.awake:
            if day.weekday() in w.days:
                # aware + timedelta is wall-clock arithmetic: 07:00 stays 07:00 on DST days
                candidates |= {midnight + timedelta(minutes=m) for m in (w.start, w.end)}
    # A window start that falls in a DST gap (02:30 on the night clocks jump from 02:00 to
    # 03:00) begins at the jump: time zones change their offset on a UTC half hour.
    base = now.replace(minute=30 if now.minute >= 30 else 0, second=0, microsecond=0)
    candidates |= {base - timedelta(minutes=30 * k) for k in range(8 * 48)}
    for t in sorted((c.astimezone(UTC) for c in candidates if c <= now), reverse=True):
        after = inside(env, t)
        if after != inside(env, t - timedelta(minutes=1)):
            return t, after
    return None


def _conference_seen(clients: Clients, env: Env, start: datetime, end: datetime) -> bool:
    """Whether the bridges' metric shows a conference (Maximum > 0) between start and end."""
    m = env.metric
    if m is None:
        return False
    query = {
        "Id": "conferences",
        "MetricStat": {
            "Metric": {
                "Namespace": m.namespace,
                "MetricName": m.name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in m.dimensions],
            },
            "Period": 60,
            "Stat": "Maximum",
        },
        "ReturnData": True,
    }
    pages = clients.cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=[query], StartTime=start, EndTime=end
    )
    return any(v > 0 for page in pages for r in page["MetricDataResults"] for v in r["Values"])


def tick(clients: Clients, env: Env, now: datetime) -> dict[str, Any]:
    """Every 5 minutes: window edges, idle sleep, and a wake's progress."""
    st = _status(clients, env)
    if st.state == WAKING:
        done = wake(clients, env, now)  # finishes a wake cut short; writes nothing otherwise
        return {"action": "progress", **progress(clients, env, now), "changed": done["changed"]}
    if st.state == ASLEEP and st.tagged != ASLEEP:
        return {"action": "sleep (finishing one cut short)", **sleep(clients, env, now)}
    edge = last_edge(env, now)
    recent = st.since if st.since is not None else now - EDGE_GRACE
    if edge is not None and edge[0] > recent:
        if edge[1] and st.state == ASLEEP:
            return {"action": "wake (window start)", **wake(clients, env, now)}
        if not edge[1] and st.state == AWAKE:
            if _conference_seen(clients, env, now - timedelta(minutes=LIVE_MINUTES), now):
                return {"action": "none", "state": AWAKE, "reason": "window ended; in use"}
            return {"action": "sleep (window end)", **sleep(clients, env, now)}
    idle = timedelta(minutes=env.idle_minutes)
    if (
        st.state == AWAKE
        and env.idle_minutes > 0
        and env.metric is not None
        and not inside(env, now)
        and (st.since is None or now - st.since >= idle)
        and not _conference_seen(clients, env, now - idle, now)
    ):
        return {"action": f"sleep (idle {env.idle_minutes} min)", **sleep(clients, env, now)}
    return {"action": "none", "state": st.state}


# -- the page ---------------------------------------------------------------------------------

# (heading, text) per state; {s} seconds left, {k} of {n} shards ready. The page carries them as a
# JSON data block, so the script below holds no text and stays static.
TEXTS = {
    ASLEEP: (
        "Asleep",
        "This meeting service sleeps while nobody meets. Start it: ready in about {s} s.",
    ),
    WAKING: ("Starting", "Ready in about {s} s ({k} of {n} ready). The meeting opens by itself."),
    AWAKE: ("Ready", "Opening the meeting\u2026"),
    "unknown": ("Unavailable", "The service cannot be reached right now; please try again soon."),
}
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;display:flex;min-height:100vh;"
    "align-items:center;justify-content:center;background:#f4f5f7;color:#1d2330}"
    "main{max-width:28rem;padding:2rem;text-align:center}h1{font-size:1.4rem;margin:0 0 .5rem}"
    "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:.4rem;background:#1d5bd6;"
    "color:#fff;cursor:pointer}button:disabled{opacity:.5;cursor:wait}[hidden]{display:none}"
)
# Static, so the Content-Security-Policy names it by hash; the state is in data- attributes.
# Awake, or a status answer that is not this function's JSON (and no 5xx): open the visitor's
# own URL (data-next; the page may be the answer to the sleep page's POST), the meeting.
_SCRIPT = (
    """(function () {
  var b = document.body, h = document.getElementById("h"), m = document.getElementById("m");
  var f = document.getElementById("f"), g = document.getElementById("g"), timer = null;
  var d = b.dataset;
  function open() { location.replace(d.next || "/"); }
  var texts = JSON.parse(document.getElementById("t").textContent);
  function show(s) {
    var x = texts[s.state] || texts.unknown;
    h.textContent = x[0];
    m.textContent = x[1].replace("{s}", s.ready_in == null ? "?" : s.ready_in)
      .replace("{k}", s.healthy == null ? 0 : s.healthy).replace("{n}", s.wanted);
    f.hidden = s.state !== "asleep";
    if (s.retry_in) {
      g.disabled = true;
      setTimeout(function () { g.disabled = false; }, s.retry_in * 1000);
    }
  }
  function later(s) {
    clearTimeout(timer);
    timer = setTimeout(poll, 1000 * (s && s.state === "asleep" ? ASLEEP_POLL : POLL));
  }
  function answer(r) {
    if ((r.headers.get("content-type") || "").indexOf("application/json") < 0) {
      if (r.status < 500) { open(); }
      return null;
    }
    return r.json();
  }
  function seen(s) {
    if (!s) { later(null); return; }  // a 5xx from the load balancer: ask again
    show(s);
    if (s.state === "awake") { setTimeout(open, 2000); }
    else { later(s); }
  }
  function poll() {
    fetch("STATUS", {cache: "no-store", headers: {Accept: "application/json"}})
      .then(answer).then(seen).catch(function () { later(null); });
  }
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    g.disabled = true;
    fetch("WAKE", {method: "POST", cache: "no-store", headers: {Accept: "application/json"}})
      .then(answer).then(function (s) { g.disabled = false; seen(s); })
      .catch(function () { g.disabled = false; later(null); });
  });
  seen({state: d.state, ready_in: +d.ready, healthy: +d.healthy, wanted: +d.wanted});
})();""".replace("ASLEEP_POLL", str(ASLEEP_POLL_SECONDS))
    .replace("POLL", str(POLL_SECONDS))
    .replace("STATUS", STATUS_PATH)
    .replace("WAKE", WAKE_PATH)
)


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; script-src {_sha(_SCRIPT)}; style-src {_sha(_STYLE)}; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def page(state: str, ready_in: int, healthy: int = 0, wanted: int = 0, next_path: str = "/") -> str:
    """The progress page: the answer to the sleep page's button (and to a GET of /_pcls/...).

    Self-contained. It follows /_pcls/status and opens next_path once awake; without JavaScript
    the button still posts and a waking page refreshes itself (a reload repeats the POST, which
    only finishes what is under way).
    """
    heading, text = TEXTS.get(state, TEXTS["unknown"])
    text = text.format(s=int(ready_in), k=int(healthy), n=int(wanted))
    refresh = '<meta http-equiv="refresh" content="15">' if state != ASLEEP else ""
    data = json.dumps(TEXTS).replace("<", "\\u003c")
    e = html.escape
    hidden = "" if state == ASLEEP else " hidden"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>Meeting service: {e(heading.lower())}</title>"
        f"<noscript>{refresh}</noscript><style>{_STYLE}</style></head>"
        f'<body data-state="{e(state)}" data-ready="{int(ready_in)}" '
        f'data-healthy="{int(healthy)}" data-wanted="{int(wanted)}" data-next="{e(next_path)}">'
        "<main>"
        f'<h1 id="h">{e(heading)}</h1><p id="m">{e(text)}</p>'
        f'<form id="f" method="post" action="{WAKE_PATH}"{hidden}>'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<button id="g" type="submit">Start the meeting service</button></form></main>'
        f'<script type="application/json" id="t">{data}</script>'
        f"<script>{_SCRIPT}</script></body></html>"
    )


_SMALL_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:4rem auto;max-width:28rem;padding:0 1rem;"
    "text-align:center}button{font:inherit;padding:.6rem 1.4rem}"
)
# Fills the form's return path with the visitor's own; without it the button returns to /.
_SMALL_SCRIPT = 'var l=location;document.getElementById("n").value=l.pathname+l.search'


def sleep_page(ready_seconds: int) -> str:
    """The page the load balancer itself answers while the stack sleeps or wakes (a fixed
    response: at most PAGE_LIMIT characters, no headers of its own, so no CSP and plain ASCII).

    Its button posts to /_pcls/wake with the visitor's path; the function answers with `page`.
    """
    n = min(max(int(ready_seconds), 0), MAX_READY_SECONDS)
    heading, text = TEXTS[ASLEEP]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>Meeting service: {heading.lower()}</title><style>{_SMALL_STYLE}</style>"
        f"</head><body><h1>{heading}</h1><p>{html.escape(text.format(s=n))}</p>"
        f'<form method="post" action="{WAKE_PATH}">'
        '<input type="hidden" name="next" id="n" value="/">'
        '<button type="submit">Start the meeting service</button></form>'
        f"<script>{_SMALL_SCRIPT}</script></body></html>"
    )


# -- the entry point ---------------------------------------------------------------------------

_CLIENTS: Clients | None = None
_NEXT_RE = re.compile(r"/(?![/\\])[!-~]{0,1023}")


def _clients() -> Clients:
    global _CLIENTS
    if _CLIENTS is None:
        _CLIENTS = Clients.default()
    return _CLIENTS


def _env() -> Env:
    return Env.from_environ(os.environ)


def _response(
    code: int, body: str, ctype: str, head: bool = False, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An ALB Lambda-target response (single-value headers)."""
    base = {
        "Content-Type": ctype,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if ctype.startswith("text/html"):
        base["Content-Security-Policy"] = CSP
    return {
        "statusCode": code,
        "statusDescription": f"{code} {HTTPStatus(code).phrase}",
        "headers": {**base, **(headers or {})},
        "body": "" if head else body,
        "isBase64Encoded": False,
    }


def _public(result: dict[str, Any]) -> dict[str, Any]:
    """What a visitor may learn: the state, its numbers, nothing that names a resource."""
    keys = ("state", "ready_in", "healthy", "wanted", "retry_in")
    return {k: result[k] for k in keys if k in result}


def _json_response(code: int, value: dict[str, Any], head: bool = False) -> dict[str, Any]:
    return _response(code, json.dumps(value), "application/json", head)


def _next(event: dict[str, Any]) -> str:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8", "replace")
        except ValueError:
            return "/"
    value = (parse_qs(body).get("next") or ["/"])[0]
    return value if _NEXT_RE.fullmatch(value) else "/"


def _original(event: dict[str, Any]) -> str:
    path = event.get("path") or "/"
    query = event.get("queryStringParameters") or {}
    # ALB passes the query as received (still percent-encoded)
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _log(what: str, value: Any) -> None:
    print(json.dumps({"pcls": what, **value}, default=str, sort_keys=True), flush=True)


def _http(event: dict[str, Any], clients: Clients, env: Env, now: datetime) -> dict[str, Any]:
    method = str(event.get("httpMethod") or "").upper()
    path = event.get("path") or "/"
    head = method == "HEAD"
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        if path == STATUS_PATH:
            if method not in ("GET", "HEAD"):
                return _response(405, "", "text/plain", headers={"Allow": "GET, HEAD"})
            return _json_response(200, _public(progress(clients, env, now)), head)
        if path == WAKE_PATH and method == "POST":
            done = wake(clients, env, now)
            if done["changed"]:
                _log("wake", {"via": "visit", **done})
            shown = _public(progress(clients, env, now))
            if "retry_in" in done:
                shown["retry_in"] = done["retry_in"]
            if "application/json" in headers.get("accept", ""):
                return _json_response(200, shown)
            # The sleep page's form: the progress page, which opens the visitor's path when up.
            body = page(
                shown["state"],
                shown["ready_in"],
                shown.get("healthy") or 0,
                shown["wanted"],
                _next(event),
            )
            return _response(200, body, "text/html; charset=utf-8")
        if method not in ("GET", "HEAD"):
            allow = "POST" if path == WAKE_PATH else "GET, HEAD"
            return _response(405, "", "text/plain", headers={"Allow": allow})
        p = progress(clients, env, now)  # GET and HEAD only look
        # Only /_pcls/... reaches the function: once awake, open the site, not this path again.
        back = "/" if path.startswith(PREFIX) else _original(event)
        body = page(p["state"], p["ready_in"], p["healthy"] or 0, p["wanted"], back)
        return _response(200, body, "text/html; charset=utf-8", head)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        _log("error", {"path": path, "error": type(exc).__name__, "detail": str(exc)[:300]})
        retry = {"Retry-After": "30"}
        if path == STATUS_PATH or "application/json" in headers.get("accept", ""):
            return _response(503, json.dumps({"state": "unknown"}), "application/json", head, retry)
        return _response(503, page("unknown", 0), "text/html; charset=utf-8", head, retry)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry: ALB requests (httpMethod ...) and scheduler events {"pcls": ...}."""
    now = datetime.now(UTC)
    env = _env()
    clients = _clients()
    if "httpMethod" in event:
        return _http(event, clients, env, now)
    job = event.get("pcls")
    ops = {"sleep": sleep, "wake": wake, "tick": tick}
    if job not in ops:
        return {"error": f"unknown event; pcls must be one of {', '.join(ops)}"}
    result = ops[job](clients, env, now)
    _log(job, result)
    return result

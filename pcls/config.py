"""pcls.toml: one frozen dataclass per section; every check of user input lives here.

Each field carries its documentation and its check in the dataclass metadata, so the
validator, `pcls init`'s commented template and the README's reference come from one table.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import stat
import tomllib
import typing
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcls.errors import ConfigError

DEFAULT_CONFIG = "pcls.toml"

Check = Callable[[Any], str | None]


def _f(default: Any, doc: str, check: Check | None = None) -> Any:
    meta = {"doc": doc, "check": check}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


# -- checks: each returns None when fine, else what is allowed --------------------------------

_STACK_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_HOSTPORT_RE = re.compile(r"^[a-z0-9.-]+:\d{1,5}$")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Reaches the bridges and prosody as JWT_APP_ID (a quoted Lua string in prosody's config).
_JWT_APP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
JWT_APP_ID_ALLOWED = "1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"

TLS_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
)
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
AUTH_MODES = ("open", "jwt")
# "internal" (prosody accounts) was removed: the accounts lived on the signal task's throwaway
# disk, so every task replacement lost them; see README.md#who-may-open-rooms.
AUTH_REMOVED = {
    "internal": (
        "jwt (hand out room links with `pcls token`); internal was removed: its accounts "
        "lived on the signal task's disk and were lost whenever the task was replaced"
    ),
}
SCALING_METRICS = ("participants", "stress")
# runtimePlatform.cpuArchitecture of the task definitions (pcls.jitsi); the official images are
# published for both (docs/ecs.md#cpu-architecture).
CPU_ARCHITECTURES = ("ARM64", "X86_64")
BUDGET_MAX_USD = 1_000_000  # alerts.monthly_budget


def _punycode_error(label: str) -> str | None:
    """Why an xn-- label is not the punycode of an internationalized label, or None."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return "does not decode"
    if decoded.isascii():
        return "decodes to plain ASCII"
    if "xn--" + decoded.encode("punycode").decode("ascii") != label:
        return "does not encode back to itself"
    if decoded != decoded.lower() or unicodedata.normalize("NFC", decoded) != decoded:
        return "decodes to a name not in lowercase NFC form"
    if any(unicodedata.category(c)[0] not in "LMN" and c != "-" for c in decoded):
        return "decodes to characters that are not letters, marks, digits or '-'"
    return None


def domain_error(value: str) -> str | None:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        return "a DNS name, not an IP address, e.g. meet.example.com"
    if len(value) > 253 or "." not in value or value != value.lower():
        return "a lowercase DNS name with at least two labels, e.g. meet.example.com"
    labels = value.split(".")
    if not all(_LABEL_RE.match(label) for label in labels):
        return "labels of a-z, 0-9 and '-' (1-63 characters, no leading or trailing '-')"
    if labels[-1].isdigit():
        return "a DNS name whose last label is not all digits, e.g. meet.example.com"
    for label in labels:
        if label.startswith("xn--") and (why := _punycode_error(label)):
            return f"xn-- labels in valid punycode ({label} {why})"
    return None


def _pattern(regex: re.Pattern[str], allowed: str) -> Check:
    return lambda v: None if regex.match(v) else allowed


def _one_of(options: tuple[Any, ...]) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(map(str, options))


def _between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"a number from {lo} to {hi}"


def _auth(value: str) -> str | None:
    return AUTH_REMOVED.get(value) or _one_of(AUTH_MODES)(value)


def _optional(check: Check) -> Check:
    return lambda v: None if v == "" else check(v)


def _timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as UTC or Europe/Zurich"
    return None


# What AWS refuses for a VPC, whatever the prefix.
VPC_REFUSED = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network'"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved (with the broadcast address)"),
)
VPC_PRIVATE = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
# pcls/steps/network.py carves the VPC range into 2**4 = 16 equal slots, one per AZ (at most 6),
# so every subnet is a /(prefix+4) whatever network.azs is.
SUBNET_PREFIX_DIFF = 4
# An ALB needs a /27 with at least 8 free addresses in each of its subnets; the subnets also
# hold the tasks, twice over during a rollout. AWS itself allows VPCs from /16 to /28.
SUBNET_PREFIX_MAX = 27
VPC_PREFIX_MIN, VPC_PREFIX_MAX = 16, SUBNET_PREFIX_MAX - SUBNET_PREFIX_DIFF
_VPC_RANGE = (
    "a range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 "
    f"with a prefix from /{VPC_PREFIX_MIN} to /{VPC_PREFIX_MAX}"
)


def _cidr(value: str) -> str | None:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        return "an IPv4 network such as 10.42.0.0/16 (no host bits set)"
    for refused, what in VPC_REFUSED:
        if net.overlaps(refused):
            return f"{_VPC_RANGE} ({refused} is {what}; AWS refuses it for a VPC)"
    if not any(net.subnet_of(p) for p in VPC_PRIVATE):
        return f"{_VPC_RANGE} ({net} is not a private RFC 1918 range)"
    if net.prefixlen < VPC_PREFIX_MIN:
        return f"{_VPC_RANGE} (AWS makes no VPC larger than a /{VPC_PREFIX_MIN})"
    if net.prefixlen > VPC_PREFIX_MAX:
        sub = net.prefixlen + SUBNET_PREFIX_DIFF
        return (
            f"{_VPC_RANGE} (a /{net.prefixlen} leaves each availability zone a /{sub} subnet; "
            f"the load balancer needs at least a /{SUBNET_PREFIX_MAX} with 8 free addresses "
            "in every subnet, beside the tasks)"
        )
    return None


# -- schedule expressions (Application Auto Scaling PutScheduledAction) --------------------------

SCHEDULE_MAX = 1600  # characters
_SCHEDULE_FORMS = (
    "at(yyyy-mm-ddThh:mm:ss), rate(value unit) or "
    "cron(minutes hours day-of-month month day-of-week year)"
)
_AT_RE = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")
_RATE_RE = re.compile(r"^rate\(([1-9]\d{0,8}) (minutes?|hours?|days?)\)$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _CronField:
    name: str
    lo: int
    hi: int
    names: tuple[str, ...]  # names for lo, lo+1, ... (month and day-of-week)
    step: bool  # "/" increments allowed
    allowed: str  # for the message

    def value(self, token: str) -> int | None:
        if token.upper() in self.names:
            return self.lo + self.names.index(token.upper())
        if token.isdigit() and len(token) <= 4 and self.lo <= int(token) <= self.hi:
            return int(token)
        return None

    def item_ok(self, item: str) -> bool:
        """One comma-separated item: value, low-high, or (*|value|low-high)/increment."""
        base, slash, incr = item.partition("/")
        if slash:
            top = self.hi - self.lo + 1 if self.name == "year" else self.hi
            if not (self.step and incr.isdigit() and len(incr) <= 4 and 1 <= int(incr) <= top):
                return False
            if base == "*":
                return True
        low, dash, high = base.partition("-")
        first = self.value(low)
        if not dash:
            return first is not None
        last = self.value(high)
        return first is not None and last is not None and first <= last


_CRON_FIELDS = (
    _CronField("minutes", 0, 59, (), True, "0-59 with , - * /"),
    _CronField("hours", 0, 23, (), True, "0-23 with , - * /"),
    _CronField("day-of-month", 1, 31, (), True, "1-31 with , - * /, or ?, L, LW, nW"),
    _CronField("month", 1, 12, _MONTHS, True, "1-12 or JAN-DEC with , - * /"),
    _CronField("day-of-week", 1, 7, _DAYS, False, "1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5"),
    _CronField("year", 1970, 2199, (), True, "1970-2199 with , - * /"),
)


def _cron_field_ok(f: _CronField, token: str) -> bool:
    if token in ("*", "?"):
        return token == "*" or f.name in ("day-of-month", "day-of-week")
    up = token.upper()
    if f.name == "day-of-month" and up in ("L", "LW"):
        return True
    if f.name == "day-of-month" and up.endswith("W"):
        return f.value(up[:-1]) is not None  # the weekday nearest day n
    if f.name == "day-of-week":
        if up == "L":
            return True
        if up.endswith("L"):
            return f.value(up[:-1]) is not None  # the last day n of the month
        day, hash_, nth = up.partition("#")
        if hash_:
            return f.value(day) is not None and nth in ("1", "2", "3", "4", "5")
    return all(f.item_ok(item) for item in token.split(","))


def schedule_error(value: str) -> str | None:
    """None when Application Auto Scaling accepts the schedule expression, else what it takes.

    The grammar of its PutScheduledAction: at(yyyy-mm-ddThh:mm:ss), rate(value unit) with a
    singular unit for 1, and cron() with the six fields and wildcards of EventBridge's cron
    expressions. Ranges must run low-high (no wrap-around past the end of a field).
    """
    if len(value) > SCHEDULE_MAX:
        return f"at most {SCHEDULE_MAX} characters (got {len(value)})"
    if value.startswith("at("):
        m = _AT_RE.match(value)
        try:
            datetime.datetime(*map(int, m.groups())) if m else None  # type: ignore[misc]
        except ValueError:
            m = None
        if m is None:
            return "at(yyyy-mm-ddThh:mm:ss) with a real date and time, e.g. at(2026-12-24T18:00:00)"
        return None
    if value.startswith("rate("):
        m = _RATE_RE.match(value)
        if m is None or (m.group(1) == "1") == m.group(2).endswith("s"):
            return (
                "rate(value unit): a whole number from 1, then minute, hour or day for 1 and "
                "minutes, hours or days above, e.g. rate(1 hour), rate(30 minutes)"
            )
        return None
    if not (value.startswith("cron(") and value.endswith(")")):
        return _SCHEDULE_FORMS
    fields = value[5:-1].split(" ")
    if len(fields) != len(_CRON_FIELDS) or "" in fields:
        return (
            "cron() with 6 fields separated by single spaces: minutes hours day-of-month "
            f"month day-of-week year (got {len([f for f in fields if f])})"
        )
    for f, token in zip(_CRON_FIELDS, fields, strict=True):
        if not _cron_field_ok(f, token):
            return f"cron() {f.name} of {f.allowed} (got {token!r})"
    dom, dow = fields[2], fields[4]
    if (dom == "?") == (dow == "?"):
        return (
            "cron() with ? in exactly one of day-of-month and day-of-week "
            f"(got {dom!r} and {dow!r})"
        )
    return None


# -- e-mail (SNS subscription endpoint) ------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_RE = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")


def email_error(value: str) -> str | None:
    """A pragmatic RFC 5321 check: dot-atom local part, a DNS domain, the length limits."""
    if any(c.isspace() or unicodedata.category(c)[0] == "C" for c in value):
        return "an e-mail address without spaces or control characters"
    if value.count("@") != 1:
        return "an e-mail address of the form local-part@domain, e.g. ops@example.com"
    local, domain = value.split("@")
    if len(value) > 254:
        return f"an e-mail address of at most 254 characters (got {len(value)})"
    if not 0 < len(local) <= 64:
        return f"a local part (before the @) of 1-64 characters (got {len(local)})"
    if not _LOCAL_RE.match(local):
        return (
            "a local part (before the @) of ASCII letters, digits and !#$%&'*+/=?^_`{|}~- "
            "with single dots between them"
        )
    if (why := domain_error(domain.lower())) is not None:
        return f"a domain after the @: {why}"
    return None


def _stun_servers(value: tuple[str, ...]) -> str | None:
    if not value or not all(_HOSTPORT_RE.match(v) for v in value):
        return "a non-empty list of host:port strings"
    return None


# A Route 53 hosted zone holds at most 10 tags (every other service pcls tags: 50; EC2 also
# gets Name), and pcls adds pcls:stack and pcls:step to each resource.
MAX_TAGS = 10 - 2
_TAG_PUNCT = frozenset("_.:/=+-@")


def _shown(value: str, limit: int = 40) -> str:
    """repr of a value, shortened when long so the message stays one readable line."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit])[:-1] + f"…' ({len(value)} characters)"


def _tag_char_error(text: str) -> str | None:
    for c in text:
        if unicodedata.category(c)[0] not in "LNZ" and c not in _TAG_PUNCT:
            return c
    return None


def _tags(value: dict[str, Any]) -> str | None:
    if len(value) > MAX_TAGS:
        return (
            f"at most {MAX_TAGS} tags (got {len(value)}): pcls adds pcls:stack and pcls:step, "
            "and a Route 53 hosted zone holds at most 10"
        )
    seen: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            return f"string values (tag {k!r} is not a string)"
        if k == "Name" or k.lower().startswith(("aws:", "pcls:")):
            return (
                f"keys other than Name and not starting with aws: or pcls: in any case "
                f"(got {k!r}; AWS and pcls set those)"
            )
        if not 0 < len(k) <= 128:
            return f"keys of 1-128 characters (got {_shown(k)})"
        if len(v) > 256:
            return f"values of at most 256 characters (tag {_shown(k)} has {len(v)})"
        for text in (k, v):
            if (bad := _tag_char_error(text)) is not None:
                return (
                    "keys and values of letters, digits, spaces and _ . : / = + - @ "
                    f"(tag {_shown(k)} has {bad!r})"
                )
        if k.lower() in seen:
            return (
                f"keys that differ in more than case (IAM takes {seen[k.lower()]!r} and {k!r} "
                "as one key)"
            )
        seen[k.lower()] = k
    return None


# -- sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackSection:
    name: str = _f(
        "",
        "Stack name: 1-16 characters, a-z, 0-9 and '-'. Prefixes every resource "
        "name and is the pcls:stack tag.",
        _pattern(
            _STACK_RE,
            "1-16 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-'",
        ),
    )
    domain: str = _f(
        "",
        "Public name of the service, e.g. meet.example.com (a DNS name, not an IP address; "
        "xn-- labels must be valid punycode).",
        domain_error,
    )
    region: str = _f(
        "",
        "AWS region. Empty: taken from AWS_REGION or the profile, as botocore does.",
        _optional(_pattern(_REGION_RE, "a region name like eu-central-2")),
    )
    timezone: str = _f(
        "UTC", "Time zone for scheduled scaling actions and the awake hours.", _timezone
    )


@dataclass(frozen=True)
class NetworkSection:
    azs: int = _f(
        2, "Availability zones (one public subnet each); at least 2 for HA.", _between(2, 6)
    )
    cidr: str = _f(
        "10.42.0.0/16",
        "VPC IPv4 range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, /16 to /23; each AZ "
        "gets a /(prefix+4) subnet, at least the /27 the load balancer needs.",
        _cidr,
    )
    dual_stack: bool = _f(False, "Also publish an AAAA alias record for the load balancer.")


@dataclass(frozen=True)
class DnsSection:
    zone: str = _f(
        "",
        "Public hosted zone name. Empty: the longest existing zone that holds the domain.",
        _optional(domain_error),
    )
    create_zone: bool = _f(
        False, "Create a public zone for the domain and print the NS records to delegate to it."
    )


@dataclass(frozen=True)
class CertificateSection:
    wait_timeout: int = _f(
        900, "Seconds to wait for ACM to issue the certificate.", _between(30, 7200)
    )


@dataclass(frozen=True)
class LoadBalancerSection:
    tls_policy: str = _f(
        TLS_POLICIES[0],
        "HTTPS listener security policy (TLS 1.3 policies only).",
        _one_of(TLS_POLICIES),
    )
    idle_timeout: int = _f(
        900,
        "Seconds an idle connection stays open; long enough for XMPP "
        "websockets of throttled background tabs.",
        _between(60, 4000),
    )
    deregistration_delay: int = _f(
        30, "Seconds the target group drains a target.", _between(0, 3600)
    )


@dataclass(frozen=True)
class JitsiSection:
    image_tag: str = _f(
        "stable-11146-2",
        "Tag of the ghcr.io/jitsi images, pinned.",
        _pattern(_IMAGE_TAG_RE, "a container image tag"),
    )
    auth: str = _f(
        "open",
        "Who may open rooms: open (anyone on the internet, spending the stack's egress) or jwt "
        "(holders of a link from pcls token).",
        _auth,
    )
    jwt_app_id: str = _f(
        "",
        f'JWT application id (auth = "jwt" only): {JWT_APP_ID_ALLOWED}.',
        _optional(_pattern(_JWT_APP_ID_RE, JWT_APP_ID_ALLOWED)),
    )
    stun_servers: tuple[str, ...] = _f(
        (
            "meet-jit-si-turnrelay.jitsi.net:443",
            "stun.l.google.com:19302",
            "stun.cloudflare.com:3478",
        ),
        "STUN servers the bridges use to learn their public IP (asked all at once at bridge "
        "start; one answer is enough, so list independent operators).",
        _stun_servers,
    )


@dataclass(frozen=True)
class SignalSection:
    cpu: int = _f(512, "Signal task (web + prosody + jicofo + router) CPU units (1024 = 1 vCPU).")
    memory: int = _f(2048, "Signal task memory in MiB (must pair with cpu on Fargate).")
    shards: int = _f(
        2,
        "Signal shards: each its own task (web + prosody + jicofo + router) in one AZ, spread "
        "over the AZs; rooms stick to one shard. 1 leaves the signal plane a single point of "
        "failure.",
        _between(1, 8),
    )


@dataclass(frozen=True)
class JvbSection:
    cpu: int = _f(
        1024,
        "Bridge task CPU units (1024 = 1 vCPU); a conference must fit on one bridge: about 4-5 "
        "all-HD or 10-20 typical participants per vCPU (docs/ecs.md#right-sizing).",
    )
    memory: int = _f(2048, "Bridge task memory in MiB (must pair with cpu on Fargate).")
    min_count: int = _f(
        2,
        "Fewest bridges; also the first desired count. Default: one per AZ (network.azs), so "
        "losing a bridge or an AZ moves conferences instead of ending them.",
        _between(0, 100),
    )
    max_count: int = _f(
        4,
        "Most bridges autoscaling may run (when jvb.min_count is left at one per AZ, at least "
        "that many).",
        _between(1, 100),
    )
    ondemand_base: int = _f(
        1, "Bridges always on regular FARGATE before Spot is used.", _between(0, 100)
    )
    spot_weight: int = _f(
        1,
        "FARGATE_SPOT weight against FARGATE weight 1 above the base (0 = no Spot).",
        _between(0, 10),
    )


@dataclass(frozen=True)
class ScheduleEntry:
    name: str = _f(
        "",
        "Name of the scheduled action.",
        _pattern(re.compile(r"^[A-Za-z0-9_-]{1,64}$"), "1-64 of A-Z a-z 0-9 _ -"),
    )
    cron: str = _f(
        "",
        "Schedule expression as Application Auto Scaling takes it: at(yyyy-mm-ddThh:mm:ss), "
        "rate(value unit) or cron(minutes hours day-of-month month day-of-week year), "
        "e.g. cron(0 19 ? * MON-FRI *).",
        schedule_error,
    )
    min_count: int = _f(0, "Bridge minimum from this time on.", _between(0, 100))
    max_count: int = _f(1, "Bridge maximum from this time on.", _between(0, 100))


# Typical participants per bridge vCPU (docs/ecs.md, bridge task): the participants target
# scales with jvb.cpu unless the config sets it.
TARGET_PER_VCPU = 15.0
STRESS_TARGET = 0.3  # meet.jit.si scales bridges out at 30 % stress


@dataclass(frozen=True)
class ScalingSection:
    metric: str = _f(
        "participants", "Bridge load metric for target tracking.", _one_of(SCALING_METRICS)
    )
    target: float = _f(
        15.0,
        "Target value per bridge (participants, or stress 0-1); default for participants: "
        f"{TARGET_PER_VCPU:g} per bridge vCPU (jvb.cpu), for stress: 0.3.",
        _between(0.01, 1000),
    )
    cpu_target: float = _f(
        70.0, "CPU utilisation target (percent) of the guard policy.", _between(10, 95)
    )
    scale_in_cooldown: int = _f(300, "Seconds between scale-in activities.", _between(0, 3600))
    scale_out_cooldown: int = _f(60, "Seconds between scale-out activities.", _between(0, 3600))
    schedule: tuple[ScheduleEntry, ...] = _f(
        (), "Scheduled actions ([[scaling.schedule]] tables with name, cron, min_count, max_count)."
    )


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_AWAKE_RE = re.compile(r"^([A-Za-z,-]+) ([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)$")
AWAKE_ALLOWED = (
    'a window like "Mon-Fri 07:00-19:00": days Mon..Sun as a range or comma list, then '
    "HH:MM-HH:MM with the start before the end (24:00 allowed as an end)"
)


@dataclass(frozen=True)
class AwakeWindow:
    """One [schedule] awake window: these weekdays (0 = Monday), from start to end minute."""

    days: frozenset[int]
    start: int  # minutes after midnight, stack.timezone
    end: int

    @property
    def hours_per_week(self) -> float:
        return len(self.days) * (self.end - self.start) / 60


def _days(text: str) -> frozenset[int] | None:
    out: set[int] = set()
    for part in text.lower().split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in _DAYS for e in ends):
            return None
        lo, hi = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        if hi < lo:
            return None
        out.update(range(lo, hi + 1))
    return frozenset(out)


def parse_awake(text: str) -> AwakeWindow | None:
    """The window an awake entry names, or None when it is not one."""
    m = _AWAKE_RE.match(text.strip())
    if not m or (days := _days(m[1])) is None:
        return None
    start, end = int(m[2]) * 60 + int(m[3]), int(m[4]) * 60 + int(m[5])
    if start >= end or end > 24 * 60:  # so the start is before 24:00 too
        return None
    return AwakeWindow(days, start, end)


def _awake(value: tuple[str, ...]) -> str | None:
    for entry in value:
        if parse_awake(entry) is None:
            return f"{AWAKE_ALLOWED}; {_shown(entry)} is not one"
    return None


@dataclass(frozen=True)
class ScheduleSection:
    awake: tuple[str, ...] = _f(
        (),
        'Awake hours in stack.timezone, e.g. ["Mon-Fri 07:00-19:00"]: the stack wakes at each '
        "start and sleeps at each end (empty: no scheduled sleep or wake).",
        _awake,
    )
    idle_minutes: int = _f(
        30,
        "Outside the awake hours, sleep after this many minutes with no conference on any "
        "bridge (0: never sleep on idle; else 10 to 1440).",
        lambda v: None if v == 0 or 10 <= v <= 1440 else "0 (off) or 10 to 1440 minutes",
    )

    def windows(self) -> tuple[AwakeWindow, ...]:
        return tuple(w for e in self.awake if (w := parse_awake(e)) is not None)

    def awake_hours_per_week(self) -> float:
        """Hours a week inside an awake window (overlapping windows counted once)."""
        minutes = {
            (day, m) for w in self.windows() for day in w.days for m in range(w.start, w.end)
        }
        return len(minutes) / 60


@dataclass(frozen=True)
class AlertsSection:
    email: str = _f(
        "",
        "Address subscribed to the alarm topic (empty: no subscription); local part at most "
        "64 characters, 254 in all.",
        _optional(email_error),
    )
    monthly_budget: float = _f(
        0.0,
        "Monthly AWS Budgets cost budget in USD for the stack (its pcls:stack cost allocation "
        "tag, else the whole account), e-mailing alerts.email at 100 % forecast and 80 % "
        "actual; 0: no budget.",
        _between(0, BUDGET_MAX_USD),
    )


@dataclass(frozen=True)
class LogsSection:
    retention_days: int = _f(14, "CloudWatch Logs retention in days.", _one_of(LOG_RETENTION_DAYS))
    keep_on_teardown: bool = _f(False, "Keep the log group when the stack is torn down.")


@dataclass(frozen=True)
class EcsSection:
    container_insights: bool = _f(False, "Container Insights on the cluster (costs extra).")
    cpu_architecture: str = _f(
        "ARM64",
        "CPU architecture of every task: ARM64 (Graviton, on FARGATE and FARGATE_SPOT) or X86_64.",
        _one_of(CPU_ARCHITECTURES),
    )


SECTIONS: dict[str, type] = {
    "stack": StackSection,
    "network": NetworkSection,
    "dns": DnsSection,
    "certificate": CertificateSection,
    "loadbalancer": LoadBalancerSection,
    "jitsi": JitsiSection,
    "signal": SignalSection,
    "jvb": JvbSection,
    "scaling": ScalingSection,
    "schedule": ScheduleSection,
    "alerts": AlertsSection,
    "logs": LogsSection,
    "ecs": EcsSection,
}
TAGS_DOC = (
    "Extra tags on every resource ([tags] table of strings): at most 8 (pcls adds two, a Route "
    "53 zone holds 10); keys 1-128 and values up to 256 letters, digits, spaces or _.:/=+-@; "
    "not Name, aws:* or pcls:*."
)


@dataclass(frozen=True)
class Config:
    stack: StackSection
    network: NetworkSection = NetworkSection()
    dns: DnsSection = DnsSection()
    certificate: CertificateSection = CertificateSection()
    loadbalancer: LoadBalancerSection = LoadBalancerSection()
    jitsi: JitsiSection = JitsiSection()
    signal: SignalSection = SignalSection()
    jvb: JvbSection = JvbSection()
    scaling: ScalingSection = ScalingSection()
    schedule: ScheduleSection = ScheduleSection()
    alerts: AlertsSection = AlertsSection()
    logs: LogsSection = LogsSection()
    ecs: EcsSection = EcsSection()
    tags: dict[str, str] = field(default_factory=dict)
    path: Path = Path(DEFAULT_CONFIG)

    @property
    def name(self) -> str:
        return self.stack.name

    @property
    def state_dir(self) -> Path:
        return self.path.resolve().parent / ".pcls"

    @property
    def zone_name(self) -> str:
        return self.dns.zone


# -- parsing ---------------------------------------------------------------------------------


def _type_error(key: str, value: Any, typ: Any) -> str | None:
    origin = typing.get_origin(typ)
    if typ is bool:
        ok = isinstance(value, bool)
        want = "true or false"
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "a whole number"
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        want = "a number"
    elif typ is str:
        ok = isinstance(value, str)
        want = "a string"
    elif origin is tuple:
        ok = isinstance(value, list)
        want = "a list"
    else:
        ok, want = True, ""
    return None if ok else f"{key}: {value!r} is not {want}"


def _parse_section(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}.{unknown[0]}: unknown key; allowed in [{prefix}]: {', '.join(fields)}"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}"
        typ = hints[name]
        if err := _type_error(key, value, typ):
            raise ConfigError(err)
        if typing.get_origin(typ) is tuple:
            (item,) = {a for a in typing.get_args(typ) if a is not Ellipsis}
            if dataclasses.is_dataclass(item):
                value = tuple(
                    _parse_section(item, entry, f"{key}[{i}]") for i, entry in enumerate(value)
                )
            else:
                if not all(isinstance(v, item) for v in value):
                    raise ConfigError(f"{key}: every entry must be a {item.__name__}")
                value = tuple(value)
        if typ is float:
            value = float(value)
        check = fields[name].metadata.get("check")
        if check and (allowed := check(value)):
            shown = _shown(value, 80) if isinstance(value, str) else repr(value)
            raise ConfigError(f"{key}: {shown} is not allowed; expected {allowed}")
        values[name] = value
    if dataclasses.is_dataclass(cls) and cls is ScheduleEntry and not {"name", "cron"} <= set(raw):
        raise ConfigError(f"{prefix}: needs name and cron")
    return cls(**values)


def parse(data: dict[str, Any], path: Path = Path(DEFAULT_CONFIG)) -> Config:
    """Build a validated Config from parsed TOML; raises ConfigError naming the key."""
    allowed = [*SECTIONS, "tags"]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"[{unknown[0]}]: unknown section; allowed: {', '.join(allowed)}")
    if "stack" not in data:
        raise ConfigError("[stack]: missing; it needs name and domain")
    sections = {
        name: _parse_section(cls, data.get(name, {}), name) for name, cls in SECTIONS.items()
    }
    tags = data.get("tags", {})
    if not isinstance(tags, dict):
        raise ConfigError("[tags]: must be a table of strings")
    if err := _tags(tags):
        raise ConfigError(f"[tags]: expected {err}")
    jvb_keys = data.get("jvb", {})
    if "min_count" not in jvb_keys:
        # One bridge per AZ unless the config says otherwise; the default maximum makes room.
        jvb = dataclasses.replace(sections["jvb"], min_count=sections["network"].azs)
        if "max_count" not in jvb_keys:
            jvb = dataclasses.replace(jvb, max_count=max(jvb.max_count, jvb.min_count))
        sections["jvb"] = jvb
    if "target" not in data.get("scaling", {}):
        sc = sections["scaling"]
        per_bridge = (
            STRESS_TARGET if sc.metric == "stress" else TARGET_PER_VCPU * sections["jvb"].cpu / 1024
        )
        sections["scaling"] = dataclasses.replace(sc, target=per_bridge)
    cfg = Config(**sections, tags=dict(tags), path=path)
    _cross_checks(cfg, min_count_given="min_count" in jvb_keys)
    return cfg


def _cross_checks(cfg: Config, *, min_count_given: bool) -> None:
    from pcls.jitsi import SIGNAL_MEMORY_MIN_MIB, fargate_size_error

    for key in ("name", "domain"):
        if not getattr(cfg.stack, key):
            raise ConfigError(f"stack.{key}: required")
    zone, domain = cfg.dns.zone, cfg.stack.domain
    if zone and domain != zone and not domain.endswith("." + zone):
        raise ConfigError(
            f"dns.zone: {zone!r} does not hold stack.domain {domain!r}; "
            "expected the domain or one of its parents"
        )
    for section in ("signal", "jvb"):
        sec = getattr(cfg, section)
        if err := fargate_size_error(sec.cpu, sec.memory):
            raise ConfigError(f"{section}.cpu/{section}.memory: {err}")
    if cfg.signal.memory < SIGNAL_MEMORY_MIN_MIB:
        raise ConfigError(
            f"signal.memory: {cfg.signal.memory} MiB cannot hold web, prosody and jicofo; "
            f"expected at least {SIGNAL_MEMORY_MIN_MIB}"
        )
    if cfg.jvb.max_count < cfg.jvb.min_count:
        hint = "" if min_count_given else " (its default: one bridge per AZ, network.azs)"
        raise ConfigError(
            f"jvb.max_count: {cfg.jvb.max_count} is below jvb.min_count {cfg.jvb.min_count}" + hint
        )
    if cfg.jitsi.auth == "jwt" and not cfg.jitsi.jwt_app_id:
        raise ConfigError('jitsi.jwt_app_id: required when jitsi.auth = "jwt"')
    if cfg.alerts.monthly_budget and not cfg.alerts.email:
        raise ConfigError(
            "alerts.monthly_budget: needs alerts.email, the address its alerts are sent to"
        )
    for i, entry in enumerate(cfg.scaling.schedule):
        if entry.max_count < entry.min_count:
            raise ConfigError(f"scaling.schedule[{i}].max_count: below its min_count")
    names = [e.name for e in cfg.scaling.schedule]
    if len(set(names)) != len(names):
        raise ConfigError("scaling.schedule: names must be unique")


MAX_DEPTH = 8  # tables and arrays inside one another; a pcls config needs 3
MAX_BYTES = 1 << 20
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _too_deep(data: dict[str, Any]) -> str | None:
    """The first key nested deeper than MAX_DEPTH tables or arrays, or None (no recursion)."""
    todo: list[tuple[str, Any, int]] = [("", data, 0)]
    while todo:
        key, value, depth = todo.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            return key
        if isinstance(value, dict):
            todo += [(f"{key}.{k}" if key else k, v, depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    return None


def _deep_error(path: Path, where: str) -> ConfigError:
    return ConfigError(
        f"{path}: {where} nested deeper than {MAX_DEPTH} tables or arrays; "
        "expected the flat layout of README.md#configuration"
    )


def loads(text: str, path: Path = Path(DEFAULT_CONFIG)) -> Config:
    """Parse and validate TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested inline array or table
        raise _deep_error(path, "a value") from None
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise ConfigError(f"{path}: not valid TOML: {str(exc).split(';')[0]}") from None
    if (where := _too_deep(data)) is not None:
        raise _deep_error(path, where)
    return parse(data, path)


def _read(p: Path) -> str:
    """The config's text; anything but a readable regular file of sane size is refused.

    stat() first, so a FIFO or device is never opened (opening a FIFO blocks until a writer
    comes); then open without blocking and check the opened file too, in case it was swapped.
    """
    try:
        st = os.stat(p)
        for is_kind, kind in _KINDS:
            if is_kind(st.st_mode):
                raise ConfigError(
                    f"{p}: cannot read config ({kind}, not a regular file); "
                    "pass --config PATH of a TOML file"
                )
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{p}: cannot read config (not a regular file)")
            if st.st_size > MAX_BYTES:
                raise ConfigError(
                    f"{p}: cannot read config ({st.st_size} bytes); expected at most 1 MiB"
                )
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: no such config; create one with `pcls init DOMAIN` or pass --config PATH"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{p}: cannot read config (over 1 MiB); expected at most 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


def load(path: str | os.PathLike[str] = DEFAULT_CONFIG) -> Config:
    """Read and validate pcls.toml; every failure is a ConfigError with a one-line message."""
    p = Path(path)
    return loads(_read(p), p)


# -- init template ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def reference() -> list[tuple[str, str, str]]:
    """(key, default, meaning) for every config key, in file order."""
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{section}.{f.name}", _toml_value(default), f.metadata["doc"]))
    rows.append(("tags.<key>", "(none)", TAGS_DOC))
    return rows


def template(domain: str, name: str, region: str) -> str:
    """A commented pcls.toml: required keys set, every other key shown at its default."""
    lines = [
        "# pcls configuration. Every key below except [stack] name/domain is optional;",
        "# commented lines show the default. Reference: README.md#configuration.",
        "",
    ]
    given = {"name": name, "domain": domain, "region": region}
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['doc']}")
            if section == "stack" and f.name in given and given[f.name]:
                lines.append(f"{f.name} = {_toml_value(given[f.name])}")
            elif f.name == "schedule":
                lines += [
                    "# [[scaling.schedule]]",
                    '# name = "night"',
                    '# cron = "cron(0 20 ? * MON-FRI *)"',
                    "# min_count = 0",
                    "# max_count = 1",
                ]
            else:
                lines.append(f"# {f.name} = {_toml_value(f.default)}")
        lines.append("")
    lines += [f"# {TAGS_DOC}", "[tags]", '# owner = "team-video"', ""]
    return "\n".join(lines)


def default_name(domain: str) -> str:
    """A stack name derived from the domain's first label."""
    label = re.sub(r"[^a-z0-9-]", "-", domain.split(".")[0].lower()).strip("-")[:16].strip("-")
    if not label or not label[0].isalpha():
        label = ("j" + label)[:16]
    return label if len(label) >= 2 else "meet"

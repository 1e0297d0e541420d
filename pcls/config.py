"""pcls.toml: one frozen dataclass per section; every check of user input lives here.

Each field carries its documentation and its check in the dataclass metadata, so the
validator, `pcls init`'s commented template and the README's reference come from one table.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
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

_STACK_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG_RE = re.compile(r"^[\w .:/=+@-]*$")
_HOSTPORT_RE = re.compile(r"^[a-z0-9.-]+:\d{1,5}$")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_CRON_RE = re.compile(r"^(cron|at|rate)\(.+\)$")

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
AUTH_MODES = ("open", "internal", "jwt")
SCALING_METRICS = ("participants", "stress")


def domain_error(value: str) -> str | None:
    if len(value) > 253 or "." not in value or value != value.lower():
        return "a lowercase DNS name with at least two labels, e.g. meet.example.com"
    if not all(_LABEL_RE.match(label) for label in value.split(".")):
        return "labels of a-z, 0-9 and '-' (1-63 characters, no leading or trailing '-')"
    return None


def _pattern(regex: re.Pattern[str], allowed: str) -> Check:
    return lambda v: None if regex.match(v) else allowed


def _one_of(options: tuple[Any, ...]) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(map(str, options))


def _between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"a number from {lo} to {hi}"


def _optional(check: Check) -> Check:
    return lambda v: None if v == "" else check(v)


def _timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as UTC or Europe/Zurich"
    return None


def _cidr(value: str) -> str | None:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        return "an IPv4 network such as 10.42.0.0/16"
    if not 16 <= net.prefixlen <= 24 or not net.is_private:
        return "a private IPv4 network with a prefix from /16 to /24"
    return None


def _stun_servers(value: tuple[str, ...]) -> str | None:
    if not value or not all(_HOSTPORT_RE.match(v) for v in value):
        return "a non-empty list of host:port strings"
    return None


def _tags(value: dict[str, Any]) -> str | None:
    for k, v in value.items():
        if not isinstance(v, str):
            return f"string values (tag {k!r} is not a string)"
        if k.lower().startswith(("aws:", "pcls:")):
            return f"keys not starting with aws: or pcls: (got {k!r})"
        if not (0 < len(k) <= 128 and len(v) <= 256 and _TAG_RE.match(k) and _TAG_RE.match(v)):
            return (
                f"keys of 1-128 and values of up to 256 letters, digits, spaces or _.:/=+-@ ({k!r})"
            )
    return None


# -- sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackSection:
    name: str = _f(
        "",
        "Stack name: 2-16 characters, a-z, 0-9 and '-'. Prefixes every resource "
        "name and is the pcls:stack tag.",
        _pattern(_STACK_RE, "2-16 characters of a-z, 0-9 and '-', starting with a letter"),
    )
    domain: str = _f("", "Public name of the service, e.g. meet.example.com.", domain_error)
    region: str = _f(
        "",
        "AWS region. Empty: taken from AWS_REGION or the profile, as botocore does.",
        _optional(_pattern(_REGION_RE, "a region name like eu-central-2")),
    )
    timezone: str = _f("UTC", "Time zone for scheduled scaling actions.", _timezone)


@dataclass(frozen=True)
class NetworkSection:
    azs: int = _f(
        2, "Availability zones (one public subnet each); at least 2 for HA.", _between(2, 6)
    )
    cidr: str = _f("10.42.0.0/16", "VPC IPv4 range; each AZ gets a /(prefix+4) subnet.", _cidr)
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
        "Who may open rooms: open, internal (accounts, guests join), jwt.",
        _one_of(AUTH_MODES),
    )
    jwt_app_id: str = _f("", 'JWT application id (auth = "jwt" only).')
    stun_servers: tuple[str, ...] = _f(
        ("meet-jit-si-turnrelay.jitsi.net:443",),
        "STUN servers the bridges use to learn their public IP.",
        _stun_servers,
    )


@dataclass(frozen=True)
class SignalSection:
    cpu: int = _f(1024, "Signal task (web + prosody + jicofo) CPU units (1024 = 1 vCPU).")
    memory: int = _f(2048, "Signal task memory in MiB (must pair with cpu on Fargate).")


@dataclass(frozen=True)
class JvbSection:
    cpu: int = _f(2048, "Bridge task CPU units (1024 = 1 vCPU).")
    memory: int = _f(4096, "Bridge task memory in MiB.")
    min_count: int = _f(1, "Fewest bridges; also the first desired count.", _between(0, 100))
    max_count: int = _f(4, "Most bridges autoscaling may run.", _between(1, 100))
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
        "Schedule expression, e.g. cron(0 19 ? * MON-FRI *).",
        _pattern(_CRON_RE, "cron(...), at(...) or rate(...)"),
    )
    min_count: int = _f(0, "Bridge minimum from this time on.", _between(0, 100))
    max_count: int = _f(1, "Bridge maximum from this time on.", _between(0, 100))


@dataclass(frozen=True)
class ScalingSection:
    metric: str = _f(
        "participants", "Bridge load metric for target tracking.", _one_of(SCALING_METRICS)
    )
    target: float = _f(
        30.0, "Target value per bridge (participants, or stress 0-1).", _between(0.01, 1000)
    )
    cpu_target: float = _f(
        70.0, "CPU utilisation target (percent) of the guard policy.", _between(10, 95)
    )
    scale_in_cooldown: int = _f(300, "Seconds between scale-in activities.", _between(0, 3600))
    scale_out_cooldown: int = _f(60, "Seconds between scale-out activities.", _between(0, 3600))
    schedule: tuple[ScheduleEntry, ...] = _f(
        (), "Scheduled actions ([[scaling.schedule]] tables with name, cron, min_count, max_count)."
    )


@dataclass(frozen=True)
class AlertsSection:
    email: str = _f(
        "",
        "Address subscribed to the alarm topic (empty: no subscription).",
        _optional(_pattern(_EMAIL_RE, "an e-mail address")),
    )


@dataclass(frozen=True)
class LogsSection:
    retention_days: int = _f(14, "CloudWatch Logs retention in days.", _one_of(LOG_RETENTION_DAYS))
    keep_on_teardown: bool = _f(False, "Keep the log group when the stack is torn down.")


@dataclass(frozen=True)
class EcsSection:
    container_insights: bool = _f(False, "Container Insights on the cluster (costs extra).")


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
    "alerts": AlertsSection,
    "logs": LogsSection,
    "ecs": EcsSection,
}
TAGS_DOC = "Extra tags on every resource ([tags] table of strings)."


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
            raise ConfigError(f"{key}: {value!r} is not allowed; expected {allowed}")
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
    cfg = Config(**sections, tags=dict(tags), path=path)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
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
        raise ConfigError(
            f"jvb.max_count: {cfg.jvb.max_count} is below jvb.min_count {cfg.jvb.min_count}"
        )
    if cfg.jitsi.auth == "jwt" and not cfg.jitsi.jwt_app_id:
        raise ConfigError('jitsi.jwt_app_id: required when jitsi.auth = "jwt"')
    for i, entry in enumerate(cfg.scaling.schedule):
        if entry.max_count < entry.min_count:
            raise ConfigError(f"scaling.schedule[{i}].max_count: below its min_count")
    names = [e.name for e in cfg.scaling.schedule]
    if len(set(names)) != len(names):
        raise ConfigError("scaling.schedule: names must be unique")


def loads(text: str, path: Path = Path(DEFAULT_CONFIG)) -> Config:
    """Parse and validate TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path)


def load(path: str | os.PathLike[str] = DEFAULT_CONFIG) -> Config:
    """Read and validate pcls.toml; every failure is a ConfigError with a one-line message."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: no such config; create one with `pcls init DOMAIN` or pass --config PATH"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    return loads(text, p)


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

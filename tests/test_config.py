"""Config validation: every bad input is one line naming the key, exit 2, nothing touched."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pcls import config
from pcls.__main__ import run
from pcls.errors import ConfigError

BASE = '[stack]\nname = "meet"\nregion = "eu-central-1"\ndomain = "meet.example.com"\n'

BAD = [
    ('[stack]\nname = "Meet"\ndomain = "meet.example.com"\n', "stack.name"),
    ('[stack]\nname = "m-"\ndomain = "meet.example.com"\n', "stack.name"),
    ('[stack]\nname = "meet-stack-that-is-long"\ndomain = "m.example.com"\n', "stack.name"),
    ('[stack]\nname = "meet"\ndomain = "meet_example.com"\n', "stack.domain"),
    ('[stack]\nname = "meet"\ndomain = "localhost"\n', "stack.domain"),
    ('[stack]\nname = "meet"\ndomain = "-a.example.com"\n', "stack.domain"),
    ('[stack]\nname = "meet"\n', "stack.domain"),
    ('[stack]\ndomain = "meet.example.com"\n', "stack.name"),
    ('[stack]\nname = "meet"\ndomain = "meet.example.com"\nregion = "europe"\n', "stack.region"),
    (
        '[stack]\nname = "meet"\ndomain = "meet.example.com"\ntimezone = "Mars/Base"\n',
        "stack.timezone",
    ),
    ('[stack]\nname = "meet"\ndomain = "meet.example.com"\ncolour = "red"\n', "stack.colour"),
    (BASE + "[network]\nazs = 1\n", "network.azs"),
    (BASE + '[network]\nazs = "two"\n', "network.azs"),
    (BASE + '[network]\ncidr = "8.8.0.0/16"\n', "network.cidr"),
    (BASE + '[network]\ncidr = "10.0.0.0/8"\n', "network.cidr"),
    (BASE + "[network]\ndual_stack = 1\n", "network.dual_stack"),
    (BASE + '[dns]\nzone = "other.org"\n', "dns.zone"),
    (BASE + '[dns]\ncreate_zone = "yes"\n', "dns.create_zone"),
    (BASE + "[certificate]\nwait_timeout = 5\n", "certificate.wait_timeout"),
    (
        BASE + '[loadbalancer]\ntls_policy = "ELBSecurityPolicy-2016-08"\n',
        "loadbalancer.tls_policy",
    ),
    (BASE + "[loadbalancer]\nidle_timeout = 5000\n", "loadbalancer.idle_timeout"),
    (BASE + "[loadbalancer]\nderegistration_delay = -1\n", "loadbalancer.deregistration_delay"),
    (BASE + '[jitsi]\nimage_tag = "bad tag"\n', "jitsi.image_tag"),
    (BASE + '[jitsi]\nauth = "ldap"\n', "jitsi.auth"),
    (BASE + '[jitsi]\nauth = "jwt"\n', "jitsi.jwt_app_id"),
    (BASE + '[jitsi]\nstun_servers = ["stun.example.com"]\n', "jitsi.stun_servers"),
    (BASE + "[jitsi]\nstun_servers = []\n", "jitsi.stun_servers"),
    (BASE + "[signal]\ncpu = 1000\n", "signal.cpu"),
    (BASE + "[signal]\ncpu = 512\nmemory = 1024\n", "signal.memory"),
    (BASE + "[jvb]\nmemory = 3000\n", "jvb.cpu/jvb.memory"),
    (BASE + "[jvb]\nmin_count = 3\nmax_count = 2\n", "jvb.max_count"),
    (BASE + "[jvb]\nspot_weight = 11\n", "jvb.spot_weight"),
    (BASE + "[jvb]\nondemand_base = -1\n", "jvb.ondemand_base"),
    (BASE + '[scaling]\nmetric = "cpu"\n', "scaling.metric"),
    (BASE + "[scaling]\ntarget = 0\n", "scaling.target"),
    (BASE + "[scaling]\ncpu_target = 99\n", "scaling.cpu_target"),
    (BASE + "[scaling]\nscale_in_cooldown = -5\n", "scaling.scale_in_cooldown"),
    (BASE + '[[scaling.schedule]]\nname = "n"\ncron = "0 20 * * *"\n', "scaling.schedule[0].cron"),
    (BASE + '[[scaling.schedule]]\ncron = "cron(0 20 * * ? *)"\n', "scaling.schedule[0]"),
    (
        BASE + '[[scaling.schedule]]\nname = "n"\ncron = "cron(0 20 * * ? *)"\n'
        "min_count = 2\nmax_count = 1\n",
        "scaling.schedule[0].max_count",
    ),
    (BASE + '[alerts]\nemail = "nobody"\n', "alerts.email"),
    (BASE + "[logs]\nretention_days = 10\n", "logs.retention_days"),
    (BASE + "[logs]\nkeep_on_teardown = 0\n", "logs.keep_on_teardown"),
    (BASE + "[ecs]\ncontainer_insights = 1\n", "ecs.container_insights"),
    (BASE + "[tags]\nowner = 5\n", "[tags]"),
    (BASE + '[tags]\n"aws:owner" = "x"\n', "[tags]"),
    (BASE + '[tags]\n"pcls:stack" = "x"\n', "[tags]"),
    (BASE + "[extras]\nx = 1\n", "[extras]"),
    (BASE + "network = 3\n", "network"),
    ("[stack\nname = 1\n", "not valid TOML"),
    ("", "[stack]"),
]


@pytest.mark.parametrize(("text", "key"), BAD, ids=[k for _, k in BAD])
def test_bad_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.loads(text)
    message = str(err.value)
    assert key in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "key"), BAD[:6] + BAD[-3:], ids=[k for _, k in BAD[:6] + BAD[-3:]]
)
def test_bad_config_exits_2_with_one_line_before_any_aws_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    cfg = tmp_path / "pcls.toml"
    cfg.write_text(text)
    # No moto here: an AWS call would fail with another code and message.
    code = run(["--config", str(cfg), "up"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and key in err
    assert not (tmp_path / ".pcls").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(tmp_path / "none.toml"), "plan"]) == 2
    assert "pcls init" in capsys.readouterr().err


def test_defaults_are_documented_and_valid() -> None:
    cfg = config.parse(tomllib.loads(BASE))
    assert cfg.network.azs == 2 and cfg.logs.retention_days == 14
    assert cfg.jitsi.image_tag == "stable-11146-2" and cfg.jitsi.auth == "open"
    rows = config.reference()
    assert all(doc for _, _, doc in rows)
    assert {"stack.name", "jvb.spot_weight", "scaling.schedule", "tags.<key>"} <= {
        k for k, _, _ in rows
    }


def test_init_writes_a_template_that_loads_and_shows_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pcls.toml"
    assert (
        run(["--config", str(path), "init", "video.example.org", "--region", "eu-central-2"]) == 0
    )
    cfg = config.load(path)
    assert (cfg.stack.name, cfg.stack.domain, cfg.stack.region) == (
        "video",
        "video.example.org",
        "eu-central-2",
    )
    text = path.read_text()
    for key, _, _ in config.reference():
        if key.startswith("stack.") or key.startswith("tags"):
            continue
        assert f"# {key.split('.')[1]} = " in text or key == "scaling.schedule", key
    # init never overwrites silently
    assert run(["--config", str(path), "init", "other.example.org"]) == 2
    assert "--force" in capsys.readouterr().err


def test_init_rejects_a_bad_domain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(tmp_path / "p.toml"), "init", "not a domain"]) == 2
    assert "domain" in capsys.readouterr().err
    assert not (tmp_path / "p.toml").exists()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["frobnicate"]) == 2
    assert run(["--config", str(tmp_path / "x.toml"), "up", "--parallel", "0"]) == 2
    assert "--parallel" in capsys.readouterr().err


def test_schedule_and_tags_parse() -> None:
    cfg = config.parse(
        tomllib.loads(
            BASE + '[[scaling.schedule]]\nname = "night"\ncron = "cron(0 20 ? * MON-FRI *)"\n'
            'min_count = 0\nmax_count = 1\n[tags]\nowner = "video-team"\n'
        )
    )
    assert cfg.scaling.schedule[0].name == "night" and cfg.scaling.schedule[0].max_count == 1
    assert cfg.tags == {"owner": "video-team"}


# -- what AWS accepts must still load (the refusals in tests/test_bad_input.py stop short of it)

ACCEPTED_SCHEDULES = [
    "cron(0 19 ? * MON-FRI *)",
    "cron(0 20 * * ? *)",
    "cron(0/15 * * * ? *)",
    "cron(*/5 8-18 ? * 2-6 2025-2030)",
    "cron(0 7 1,15 JAN-MAR ? *)",
    "cron(30 6 ? jan,feb,dec mon *)",
    "cron(0 0 L * ? *)",
    "cron(0 0 LW * ? *)",
    "cron(0 0 15W * ? *)",
    "cron(0 9 ? * 6#3 *)",
    "cron(0 9 ? * FRI#1 *)",
    "cron(0 9 ? * 5L *)",
    "cron(0 9 ? * L *)",
    "cron(0 9 ? * * 2199)",
    "cron(10-50/20 0-23/6 1-31/2 1-12/3 ? 1970/5)",
    "at(2026-12-24T18:00:00)",
    "rate(1 minute)",
    "rate(1 hour)",
    "rate(1 day)",
    "rate(30 minutes)",
    "rate(12 hours)",
    "rate(2 days)",
]


@pytest.mark.parametrize("expr", ACCEPTED_SCHEDULES)
def test_schedule_expressions_application_auto_scaling_takes_load(expr: str) -> None:
    text = BASE + f'[[scaling.schedule]]\nname = "n"\ncron = "{expr}"\n'
    assert config.loads(text).scaling.schedule[0].cron == expr


@pytest.mark.parametrize(
    "extra",
    [
        '[network]\ncidr = "10.42.0.0/16"\nazs = 6\n',
        '[network]\ncidr = "10.42.0.0/23"\nazs = 6\n',
        '[network]\ncidr = "172.31.0.0/16"\n',
        '[network]\ncidr = "192.168.8.0/22"\n',
        '[alerts]\nemail = "ops@example.com"\n',
        '[alerts]\nemail = "first.last+alerts@mail.example.co.uk"\n',
        '[alerts]\nemail = "O\'Brien@Example.COM"\n',
        "[tags]\n" + "".join(f't{i} = "v"\n' for i in range(8)),
        '[tags]\n"cost-center" = "Straße 5: video/ops @zürich +1 = ok_"\nname = ""\n',
        '[jitsi]\nauth = "jwt"\njwt_app_id = "meet.example.com"\n',
        '[jitsi]\nauth = "jwt"\njwt_app_id = "my_app-1"\n',
    ],
)
def test_values_aws_accepts_load(extra: str) -> None:
    config.loads(BASE + extra)


@pytest.mark.parametrize(
    "domain", ["xn--mnchen-3ya.example.com", "meet.xn--strae-oqa.de", "meet.example.xn--p1ai"]
)
def test_valid_punycode_domains_load(domain: str) -> None:
    text = f'[stack]\nname = "meet"\nregion = "eu-central-1"\ndomain = "{domain}"\n'
    assert config.loads(text).stack.domain == domain


def test_every_allowed_vpc_range_leaves_each_az_a_27_or_larger() -> None:
    import ipaddress

    for prefix in range(config.VPC_PREFIX_MIN, config.VPC_PREFIX_MAX + 1):
        net = ipaddress.IPv4Network(f"10.0.0.0/{prefix}")
        assert config._cidr(str(net)) is None
        # as pcls/steps/network.py carves it: the index-th of 2**4 equal slots per AZ
        slots = list(net.subnets(prefixlen_diff=config.SUBNET_PREFIX_DIFF))
        assert len(slots) >= 6  # network.azs is at most 6
        assert all(s.prefixlen <= config.SUBNET_PREFIX_MAX for s in slots)
    assert config._cidr(f"10.0.0.0/{config.VPC_PREFIX_MAX + 1}") is not None


@pytest.mark.parametrize("name", ["m", "m2", "meet-2", "a" * 16, "a1-b2-c3"])
def test_stack_names_at_the_bounds_load(name: str) -> None:
    cfg = config.parse(tomllib.loads(BASE.replace('"meet"', f'"{name}"', 1)), Path("x.toml"))
    assert cfg.stack.name == name


@pytest.mark.parametrize(
    "name", ["", "a" * 17, "2meet", "-meet", "meet-", "Meet", "me_et", "me.et", "meet 2"]
)
def test_stack_names_past_the_bounds_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(tomllib.loads(BASE.replace('"meet"', f'"{name}"', 1)), Path("x.toml"))
    assert str(err.value) == (
        f"stack.name: {name!r} is not allowed; expected 1-16 characters of a-z, 0-9 and '-', "
        "starting with a letter, not ending with '-'"
    )


# -- [schedule]: awake windows and the idle rule ---------------------------------------------

WEEKDAYS = frozenset(range(5))


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("Mon-Fri 07:00-19:00", WEEKDAYS, 420, 1140),
        ("sat,sun 09:30-24:00", frozenset({5, 6}), 570, 1440),
        ("Mon,Wed-Thu 00:00-00:01", frozenset({0, 2, 3}), 0, 1),
        (" Sun 23:59-24:00 ", frozenset({6}), 1439, 1440),
        ("Tue-Tue 12:00-13:00", frozenset({1}), 720, 780),
    ],
)
def test_awake_windows_parse_to_days_and_minutes(
    text: str, days: frozenset[int], start: int, end: int
) -> None:
    assert config.parse_awake(text) == config.AwakeWindow(days, start, end)


@pytest.mark.parametrize(
    "text",
    [
        "Fri-Mon 07:00-19:00",  # a range that wraps
        "Mon-Fri 19:00-07:00",  # an overnight window
        "Mon-Fri 07:00-07:00",
        "Mon 24:00-24:00",
        "Mon 07:00-24:01",
        "Mon 07:60-08:00",
        "Mon 7:00-8:00",
        "Mo 07:00-08:00",
        "Mon-Tue-Wed 07:00-08:00",
        "Mon,,Tue 07:00-08:00",
        "Mon  07:00-08:00",
        "Mon 07:00 - 08:00",
        "07:00-08:00",
        "",
    ],
)
def test_what_is_not_an_awake_window_is_refused(text: str) -> None:
    assert config.parse_awake(text) is None
    with pytest.raises(ConfigError) as err:
        config.loads(BASE + f"[schedule]\nawake = [{text!r}]\n".replace("'", '"'))
    message = str(err.value)
    assert message.startswith("schedule.awake: ") and "\n" not in message
    assert config.AWAKE_ALLOWED in message


def test_awake_hours_a_week_count_overlaps_once() -> None:
    cfg = config.loads(
        BASE + '[schedule]\nawake = ["Mon-Fri 07:00-19:00", "Mon 18:00-20:00", "Sat 10:00-10:30"]\n'
    )
    assert [w.hours_per_week for w in cfg.schedule.windows()] == [60.0, 2.0, 0.5]
    assert cfg.schedule.awake_hours_per_week() == 61.5
    assert config.loads(BASE).schedule.awake_hours_per_week() == 0


@pytest.mark.parametrize(
    ("minutes", "ok"), [(0, True), (9, False), (10, True), (1440, True), (1441, False)]
)
def test_idle_minutes_are_off_or_10_to_1440(minutes: int, ok: bool) -> None:
    text = BASE + f"[schedule]\nidle_minutes = {minutes}\n"
    if ok:
        assert config.loads(text).schedule.idle_minutes == minutes
    else:
        with pytest.raises(ConfigError, match=r"^schedule.idle_minutes: .*0 \(off\) or 10 to 1440"):
            config.loads(text)


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        ("", config.TARGET_PER_VCPU),
        ("[jvb]\ncpu = 2048\nmemory = 4096\n", 2 * config.TARGET_PER_VCPU),
        ("[jvb]\ncpu = 512\nmemory = 1024\n", config.TARGET_PER_VCPU / 2),
        ("[scaling]\ntarget = 7\n[jvb]\ncpu = 2048\nmemory = 4096\n", 7.0),
        ('[scaling]\nmetric = "stress"\n', config.STRESS_TARGET),
        ('[scaling]\nmetric = "stress"\ntarget = 0.5\n', 0.5),
    ],
)
def test_the_participants_target_follows_the_bridge_size_unless_set(
    extra: str, target: float
) -> None:
    assert config.loads(BASE + extra).scaling.target == target

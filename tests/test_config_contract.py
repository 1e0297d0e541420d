"""Every check of pcls.toml, message by message: each refusal names the key, shows the value and
says what is allowed; each accepted edge loads. (tests/test_config.py checks the key of each.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcls import config
from pcls.errors import ConfigError

BASE = '[stack]\nname = "meet"\nregion = "eu-central-1"\ndomain = "meet.example.com"\n'

CASES = [
    (
        BASE + "[network]\nazs = 7\n",
        "network.azs: 7 is not allowed; expected a number from 2 to 6",
    ),
    (
        BASE + '[network]\ncidr = "10.0.0.1/16"\n',
        (
            "network.cidr: '10.0.0.1/16' is not allowed; expected an IPv4 network s"
            "uch as 10.42.0.0/16 (no host bits set)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "127.0.0.0/16"\n',
        (
            "network.cidr: '127.0.0.0/16' is not allowed; expected a range inside 1"
            "0.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /"
            "23 (127.0.0.0/8 is loopback; AWS refuses it for a VPC)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "169.254.0.0/16"\n',
        (
            "network.cidr: '169.254.0.0/16' is not allowed; expected a range inside"
            " 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to"
            " /23 (169.254.0.0/16 is link-local; AWS refuses it for a VPC)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "224.0.0.0/16"\n',
        (
            "network.cidr: '224.0.0.0/16' is not allowed; expected a range inside 1"
            "0.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /"
            "23 (224.0.0.0/4 is multicast; AWS refuses it for a VPC)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "240.0.0.0/16"\n',
        (
            "network.cidr: '240.0.0.0/16' is not allowed; expected a range inside 1"
            "0.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /"
            "23 (240.0.0.0/4 is reserved (with the broadcast address); AWS refuses "
            "it for a VPC)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "0.0.0.0/16"\n',
        (
            "network.cidr: '0.0.0.0/16' is not allowed; expected a range inside 10."
            "0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /23"
            " (0.0.0.0/8 is 'this network'; AWS refuses it for a VPC)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "100.64.0.0/16"\n',
        (
            "network.cidr: '100.64.0.0/16' is not allowed; expected a range inside "
            "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to "
            "/23 (100.64.0.0/16 is not a private RFC 1918 range)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "10.0.0.0/15"\n',
        (
            "network.cidr: '10.0.0.0/15' is not allowed; expected a range inside 10"
            ".0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /2"
            "3 (AWS makes no VPC larger than a /16)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "10.0.0.0/24"\n',
        (
            "network.cidr: '10.0.0.0/24' is not allowed; expected a range inside 10"
            ".0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix from /16 to /2"
            "3 (a /24 leaves each availability zone a /28 subnet; the load balancer"
            " needs at least a /27 with 8 free addresses in every subnet, beside th"
            "e tasks)"
        ),
    ),
    (
        BASE + '[network]\ncidr = "10.0.0.0/23"\n',
        None,
    ),
    (
        BASE + '[network]\ncidr = "192.168.0.0/16"\n',
        None,
    ),
    (
        BASE + '[dns]\nzone = "example.com"\n',
        None,
    ),
    (
        BASE + '[dns]\nzone = "meet.example.com"\n',
        None,
    ),
    (
        BASE + '[dns]\nzone = "xample.com"\n',
        (
            "dns.zone: 'xample.com' does not hold stack.domain 'meet.example.com'; "
            "expected the domain or one of its parents"
        ),
    ),
    (
        BASE + '[jitsi]\nauth = "jwt"\njwt_app_id = "-x"\n',
        (
            "jitsi.jwt_app_id: '-x' is not allowed; expected 1-64 of A-Z a-z 0-9 . "
            "_ -, starting with a letter or digit"
        ),
    ),
    (
        BASE + '[jitsi]\nauth = "jwt"\njwt_app_id = "app.1"\n',
        None,
    ),
    (
        BASE + "[jitsi]\nstun_servers = [1]\n",
        "jitsi.stun_servers: every entry must be a str",
    ),
    (
        BASE + '[jitsi]\nstun_servers = "a:1"\n',
        "jitsi.stun_servers: 'a:1' is not a list",
    ),
    (
        BASE + '[jitsi]\nimage_tag = ""\n',
        "jitsi.image_tag: '' is not allowed; expected a container image tag",
    ),
    (
        BASE + "[jvb]\nmax_count = 0\n",
        "jvb.max_count: 0 is not allowed; expected a number from 1 to 100",
    ),
    (
        BASE + "[jvb]\nmin_count = 101\n",
        "jvb.min_count: 101 is not allowed; expected a number from 0 to 100",
    ),
    (
        BASE + "[scaling]\ntarget = 1000.5\n",
        ("scaling.target: 1000.5 is not allowed; expected a number from 0.01 to 1000"),
    ),
    (
        BASE + "[scaling]\ntarget = 5\n",
        None,
    ),
    (
        BASE + "[scaling]\ntarget = true\n",
        "scaling.target: True is not a number",
    ),
    (
        BASE + "[scaling]\nscale_out_cooldown = 3601\n",
        ("scaling.scale_out_cooldown: 3601 is not allowed; expected a number from 0 to 3600"),
    ),
    (
        BASE + "[scaling]\nschedule = [1]\n",
        "scaling.schedule[0]: must be a table",
    ),
    (
        BASE + '[[scaling.schedule]]\nname = "a b"\ncron = "rate(1 hour)"\n',
        ("scaling.schedule[0].name: 'a b' is not allowed; expected 1-64 of A-Z a-z 0-9 _ -"),
    ),
    (
        BASE + '[[scaling.schedule]]\nname = "n"\n',
        "scaling.schedule[0]: needs name and cron",
    ),
    (
        BASE
        + (
            '[[scaling.schedule]]\nname = "n"\ncron = "rate(1 hour)"\n[[scaling.schedu'
            'le]]\nname = "n"\ncron = "rate(2 hours)"\n'
        ),
        "scaling.schedule: names must be unique",
    ),
    (
        BASE + '[[scaling.schedule]]\nname = "n"\ncron = "rate(1 hour)"\nmax_count = 101\n',
        ("scaling.schedule[0].max_count: 101 is not allowed; expected a number from 0 to 100"),
    ),
    (
        BASE + '[[scaling.schedule]]\nname = "n"\ncron = "rate(1 hour)"\nextra = 1\n',
        (
            "scaling.schedule[0].extra: unknown key; allowed in [scaling.schedule[0"
            "]]: name, cron, min_count, max_count"
        ),
    ),
    (
        BASE + '[alerts]\nemail = "a@b"\n',
        (
            "alerts.email: 'a@b' is not allowed; expected a domain after the @: a l"
            "owercase DNS name with at least two labels, e.g. meet.example.com"
        ),
    ),
    (
        BASE + '[alerts]\nemail = ""\n',
        None,
    ),
    (
        BASE + "[logs]\nretention_days = 14.0\n",
        "logs.retention_days: 14.0 is not a whole number",
    ),
    (
        BASE + "[signal]\nmemory = 1024\ncpu = 256\n",
        ("signal.memory: 1024 MiB cannot hold web, prosody and jicofo; expected at least 1152"),
    ),
    (
        BASE + "[signal]\ncpu = 512\nmemory = 2048\n",
        None,
    ),
    (
        BASE + '[tags]\nName = "x"\n',
        (
            "[tags]: expected keys other than Name and not starting with aws: or pc"
            "ls: in any case (got 'Name'; AWS and pcls set those)"
        ),
    ),
    (
        BASE + '[tags]\n"AWS:x" = "y"\n',
        (
            "[tags]: expected keys other than Name and not starting with aws: or pc"
            "ls: in any case (got 'AWS:x'; AWS and pcls set those)"
        ),
    ),
    (
        BASE + '[tags]\n"a" = "x"\n"A" = "y"\n',
        ("[tags]: expected keys that differ in more than case (IAM takes 'a' and 'A' as one key)"),
    ),
    (
        BASE + '[tags]\n"" = "x"\n',
        "[tags]: expected keys of 1-128 characters (got '')",
    ),
    (
        BASE
        + (
            '[tags]\n"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
            'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" ='
            ' "v"\n'
        ),
        (
            "[tags]: expected keys of 1-128 characters (got 'kkkkkkkkkkkkkkkkkkkkkk"
            "kkkkkkkkkkkkkkkkkk…' (129 characters))"
        ),
    ),
    (
        BASE + '[tags]\n"k!" = "v"\n',
        (
            "[tags]: expected keys and values of letters, digits, spaces and _ . : "
            "/ = + - @ (tag 'k!' has '!')"
        ),
    ),
    (
        BASE + '[tags]\n"k" = "v#"\n',
        (
            "[tags]: expected keys and values of letters, digits, spaces and _ . : "
            "/ = + - @ (tag 'k' has '#')"
        ),
    ),
    (
        BASE
        + (
            '[tags]\nk0 = "v"\nk1 = "v"\nk2 = "v"\nk3 = "v"\nk4 = "v"\nk5 = "v"\nk6 = "v"\n'
            'k7 = "v"\nk8 = "v"\n'
        ),
        (
            "[tags]: expected at most 8 tags (got 9): pcls adds pcls:stack and pcls"
            ":step, and a Route 53 hosted zone holds at most 10"
        ),
    ),
    (
        BASE + "tags = 1\n",
        ("stack.tags: unknown key; allowed in [stack]: name, domain, region, timezone"),
    ),
    (
        BASE + "[stack]\n",
        ("pcls.toml: not valid TOML: Cannot declare ('stack',) twice (at line 5, column 7)"),
    ),
    (
        (
            '[stack]\nname = "meet"\ndomain = "meet.example.com"\nregion = "eu-central'
            '-2"\n[stack.x]\n'
        ),
        ("stack.x: unknown key; allowed in [stack]: name, domain, region, timezone"),
    ),
    (
        '[stack]\nname = ""\ndomain = "meet.example.com"\n',
        (
            "stack.name: '' is not allowed; expected 1-16 characters of a-z, 0-9 an"
            "d '-', starting with a letter, not ending with '-'"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = ""\n',
        (
            "stack.domain: '' is not allowed; expected a lowercase DNS name with at"
            " least two labels, e.g. meet.example.com"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "1.2.3.4"\n',
        (
            "stack.domain: '1.2.3.4' is not allowed; expected a DNS name, not an IP"
            " address, e.g. meet.example.com"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "[::1]"\n',
        (
            "stack.domain: '[::1]' is not allowed; expected a DNS name, not an IP a"
            "ddress, e.g. meet.example.com"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "Meet.example.com"\n',
        (
            "stack.domain: 'Meet.example.com' is not allowed; expected a lowercase "
            "DNS name with at least two labels, e.g. meet.example.com"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "meet.example.123"\n',
        (
            "stack.domain: 'meet.example.123' is not allowed; expected a DNS name w"
            "hose last label is not all digits, e.g. meet.example.com"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "xn--abc.example.com"\n',
        (
            "stack.domain: 'xn--abc.example.com' is not allowed; expected xn-- labe"
            "ls in valid punycode (xn--abc decodes to characters that are not lette"
            "rs, marks, digits or '-')"
        ),
    ),
    (
        '[stack]\nname = "meet"\ndomain = "xn--bcher-kva.example.com"\n',
        None,
    ),
    (
        '[stack]\nname = "meet"\ndomain = "xn--80ak6aa92e.example.com"\n',
        None,
    ),
    (
        '[stack]\nname = "meet"\ndomain = "xn--abcd.example.com"\n',
        (
            "stack.domain: 'xn--abcd.example.com' is not allowed; expected xn-- lab"
            "els in valid punycode (xn--abcd decodes to characters that are not let"
            "ters, marks, digits or '-')"
        ),
    ),
    (
        ('[stack]\nname = "meet"\ndomain = "meet.example.com"\ntimezone = "Europe/Zurich"\n'),
        None,
    ),
    (
        '[stack]\nname = "meet"\ndomain = "meet.example.com"\ntimezone = ""\n',
        (
            "stack.timezone: '' is not allowed; expected an IANA time zone name suc"
            "h as UTC or Europe/Zurich"
        ),
    ),
    (
        '[stack]\nname = 5\ndomain = "meet.example.com"\n',
        "stack.name: 5 is not a string",
    ),
    (
        BASE + "[network]\na = [[[]]]\n",
        "network.a: unknown key; allowed in [network]: azs, cidr, dual_stack",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_each_check_says_what_is_allowed(text: str, message: str | None) -> None:
    if message is None:
        config.loads(text)
        return
    with pytest.raises(ConfigError) as err:
        config.loads(text)
    assert str(err.value) == message


SCHEDULES = [
    (
        "at(2026-02-30T10:00:00)",
        ("at(yyyy-mm-ddThh:mm:ss) with a real date and time, e.g. at(2026-12-24T18:00:00)"),
    ),
    (
        "at(2026-12-24T18:00:00)",
        None,
    ),
    (
        "at(2026-12-24 18:00:00)",
        ("at(yyyy-mm-ddThh:mm:ss) with a real date and time, e.g. at(2026-12-24T18:00:00)"),
    ),
    (
        "rate(1 hours)",
        (
            "rate(value unit): a whole number from 1, then minute, hour or day for "
            "1 and minutes, hours or days above, e.g. rate(1 hour), rate(30 minutes"
            ")"
        ),
    ),
    (
        "rate(2 hour)",
        (
            "rate(value unit): a whole number from 1, then minute, hour or day for "
            "1 and minutes, hours or days above, e.g. rate(1 hour), rate(30 minutes"
            ")"
        ),
    ),
    (
        "rate(0 minutes)",
        (
            "rate(value unit): a whole number from 1, then minute, hour or day for "
            "1 and minutes, hours or days above, e.g. rate(1 hour), rate(30 minutes"
            ")"
        ),
    ),
    (
        "rate(1 minute)",
        None,
    ),
    (
        "rate(5 days)",
        None,
    ),
    (
        "cron(0 20 * * ? *)",
        None,
    ),
    (
        "cron(0 20 ? * MON-FRI *)",
        None,
    ),
    (
        "cron(0 20 * * * *)",
        ("cron() with ? in exactly one of day-of-month and day-of-week (got '*' and '*')"),
    ),
    (
        "cron(0 20 ? * ? *)",
        ("cron() with ? in exactly one of day-of-month and day-of-week (got '?' and '?')"),
    ),
    (
        "cron(0  20 * * ? *)",
        (
            "cron() with 6 fields separated by single spaces: minutes hours day-of-"
            "month month day-of-week year (got 6)"
        ),
    ),
    (
        "cron(0 20 * * ?)",
        (
            "cron() with 6 fields separated by single spaces: minutes hours day-of-"
            "month month day-of-week year (got 5)"
        ),
    ),
    (
        "cron(60 20 * * ? *)",
        "cron() minutes of 0-59 with , - * / (got '60')",
    ),
    (
        "cron(0 24 * * ? *)",
        "cron() hours of 0-23 with , - * / (got '24')",
    ),
    (
        "cron(0 20 32 * ? *)",
        "cron() day-of-month of 1-31 with , - * /, or ?, L, LW, nW (got '32')",
    ),
    (
        "cron(0 20 L * ? *)",
        None,
    ),
    (
        "cron(0 20 LW * ? *)",
        None,
    ),
    (
        "cron(0 20 15W * ? *)",
        None,
    ),
    (
        "cron(0 20 32W * ? *)",
        "cron() day-of-month of 1-31 with , - * /, or ?, L, LW, nW (got '32W')",
    ),
    (
        "cron(0 20 ? * L *)",
        None,
    ),
    (
        "cron(0 20 ? * 6L *)",
        None,
    ),
    (
        "cron(0 20 ? * 8L *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got '8L')"),
    ),
    (
        "cron(0 20 ? * MON#2 *)",
        None,
    ),
    (
        "cron(0 20 ? * MON#6 *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got 'MON#6')"),
    ),
    (
        "cron(0 20 ? * MON/2 *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got 'MON/2')"),
    ),
    (
        "cron(0/15 20 * * ? *)",
        None,
    ),
    (
        "cron(*/15 20 * * ? *)",
        None,
    ),
    (
        "cron(0/0 20 * * ? *)",
        "cron() minutes of 0-59 with , - * / (got '0/0')",
    ),
    (
        "cron(0/60 20 * * ? *)",
        "cron() minutes of 0-59 with , - * / (got '0/60')",
    ),
    (
        "cron(0/59 20 * * ? *)",
        None,
    ),
    (
        "cron(0 20 * JAN-MAR ? *)",
        None,
    ),
    (
        "cron(0 20 * MAR-JAN ? *)",
        "cron() month of 1-12 or JAN-DEC with , - * / (got 'MAR-JAN')",
    ),
    (
        "cron(0 20 * * ? 1969)",
        "cron() year of 1970-2199 with , - * / (got '1969')",
    ),
    (
        "cron(0 20 * * ? 2199)",
        None,
    ),
    (
        "cron(0 20 * * ? 2026/230)",
        None,
    ),
    (
        "cron(0 20 * * ? 2026/231)",
        "cron() year of 1970-2199 with , - * / (got '2026/231')",
    ),
    (
        "cron(0 20 * * ? 1970-2199)",
        None,
    ),
    (
        "cron(0 20 * 13 ? *)",
        "cron() month of 1-12 or JAN-DEC with , - * / (got '13')",
    ),
    (
        "cron(0 20 * jan ? *)",
        None,
    ),
    (
        "cron(0 20 ? * sun *)",
        None,
    ),
    (
        "cron(0,30 8-18 ? * MON-FRI *)",
        None,
    ),
    (
        "cron(0 20 ? * 1-7 *)",
        None,
    ),
    (
        "cron(0 20 ? * 0 *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got '0')"),
    ),
    (
        "cron(00005 20 * * ? *)",
        "cron() minutes of 0-59 with , - * / (got '00005')",
    ),
    (
        "cron(0 20 1-x * ? *)",
        "cron() day-of-month of 1-31 with , - * /, or ?, L, LW, nW (got '1-x')",
    ),
    (
        "cron(0 20 * * ? *",
        (
            "at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(minutes hours day-of"
            "-month month day-of-week year)"
        ),
    ),
    (
        "cron(0 20 * * ? * 1)",
        (
            "cron() with 6 fields separated by single spaces: minutes hours day-of-"
            "month month day-of-week year (got 7)"
        ),
    ),
    (
        "nonsense",
        (
            "at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(minutes hours day-of"
            "-month month day-of-week year)"
        ),
    ),
    (
        "cron(0 20 ? * MON-FRI-SAT *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got 'MON-FRI-SAT')"),
    ),
    (
        "cron(0 20 5/3 * ? *)",
        None,
    ),
    (
        "cron(0 20 * */2 ? *)",
        None,
    ),
    (
        "cron(0 20 ? * */2 *)",
        ("cron() day-of-week of 1-7 or SUN-SAT with , - *, or ?, L, nL, n#1-5 (got '*/2')"),
    ),
    (
        "cron(0 20 * * ? */2)",
        None,
    ),
    (
        "cron(0 20 * * ? 2026/10000)",
        "cron() year of 1970-2199 with , - * / (got '2026/10000')",
    ),
    (
        "cron(0 20 * * ? 2026/0)",
        "cron() year of 1970-2199 with , - * / (got '2026/0')",
    ),
]


EMAILS = [
    (
        "ops@example.com",
        None,
    ),
    (
        "a b@example.com",
        "an e-mail address without spaces or control characters",
    ),
    (
        "a\x01@example.com",
        "an e-mail address without spaces or control characters",
    ),
    (
        "a@@example.com",
        "an e-mail address of the form local-part@domain, e.g. ops@example.com",
    ),
    (
        "noat",
        "an e-mail address of the form local-part@domain, e.g. ops@example.com",
    ),
    (
        ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@example.com"),
        "a local part (before the @) of 1-64 characters (got 65)",
    ),
    (
        "@example.com",
        "a local part (before the @) of 1-64 characters (got 0)",
    ),
    (
        "a..b@example.com",
        (
            "a local part (before the @) of ASCII letters, digits and !#$%&'*+/=?^_"
            "`{|}~- with single dots between them"
        ),
    ),
    (
        ".a@example.com",
        (
            "a local part (before the @) of ASCII letters, digits and !#$%&'*+/=?^_"
            "`{|}~- with single dots between them"
        ),
    ),
    (
        (
            "a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com"
        ),
        "an e-mail address of at most 254 characters (got 256)",
    ),
    (
        "o'k+x@example.com",
        None,
    ),
    (
        "a@Example.COM",
        None,
    ),
    (
        "a@localhost",
        (
            "a domain after the @: a lowercase DNS name with at least two labels, e"
            ".g. meet.example.com"
        ),
    ),
    (
        "a@-x.com",
        (
            "a domain after the @: labels of a-z, 0-9 and '-' (1-63 characters, no "
            "leading or trailing '-')"
        ),
    ),
]


DOMAINS = [
    (
        "meet.example.com",
        None,
    ),
    (
        "m",
        "a lowercase DNS name with at least two labels, e.g. meet.example.com",
    ),
    (
        "a.b",
        None,
    ),
    (
        "a..b",
        ("labels of a-z, 0-9 and '-' (1-63 characters, no leading or trailing '-')"),
    ),
    (
        "xn--ls8h.example.com",
        (
            "xn-- labels in valid punycode (xn--ls8h decodes to characters that are"
            " not letters, marks, digits or '-')"
        ),
    ),
    (
        "xn--Bcher-kva.example.com",
        "a lowercase DNS name with at least two labels, e.g. meet.example.com",
    ),
    (
        "xn--bcher-kva.example.com",
        None,
    ),
    (
        "xn--zca.example.com",
        None,
    ),
    (
        "xn--a.example.com",
        (
            "xn-- labels in valid punycode (xn--a decodes to characters that are no"
            "t letters, marks, digits or '-')"
        ),
    ),
    (
        "xn--www-.example.com",
        ("labels of a-z, 0-9 and '-' (1-63 characters, no leading or trailing '-')"),
    ),
    (
        "xn--0ca.example.com",
        None,
    ),
    (
        "xn--1ug.example.com",
        (
            "xn-- labels in valid punycode (xn--1ug decodes to characters that are "
            "not letters, marks, digits or '-')"
        ),
    ),
    (
        "xn--zz.example.com",
        "xn-- labels in valid punycode (xn--zz does not decode)",
    ),
]


NAMES = [
    ("meet.example.com", "meet"),
    ("Meet-Hub.example.com", "meet-hub"),
    ("123.example.com", "j123"),
    ("a.example.com", "meet"),
    ("-x-.example.com", "meet"),
    ("a_b.example.com", "a-b"),
    ("verylongnameofmorethansixteen.example.com", "verylongnameofmo"),
    ("x.y", "meet"),
    ("---.example.com", "meet"),
    ("9abcdefghijklmnopq.example.com", "j9abcdefghijklmn"),
]


@pytest.mark.parametrize(("expr", "message"), SCHEDULES)
def test_schedule_expressions(expr: str, message: str | None) -> None:
    assert config.schedule_error(expr) == message


def test_a_schedule_expression_of_more_than_1600_characters() -> None:
    assert config.schedule_error("x" * 1601) == "at most 1600 characters (got 1601)"
    assert config.schedule_error("rate(" + "1" * 1594 + ")") != "at most 1600 characters (got 1600)"


@pytest.mark.parametrize(("address", "message"), EMAILS)
def test_email_addresses(address: str, message: str | None) -> None:
    assert config.email_error(address) == message


def test_email_length_limits() -> None:
    local = "x" * 64
    assert config.email_error(local + "@example.com") is None
    long = local + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(long) == 254 and config.email_error(long) is None
    assert config.email_error(long + "e") == "an e-mail address of at most 254 characters (got 255)"


@pytest.mark.parametrize(("domain", "message"), DOMAINS)
def test_domains(domain: str, message: str | None) -> None:
    assert config.domain_error(domain) == message


def test_domain_length_limit() -> None:
    name = ".".join(["a" * 63] * 3) + "." + "b" * 61
    assert len(name) == 253 and config.domain_error(name) is None
    assert config.domain_error(name + "b") == (
        "a lowercase DNS name with at least two labels, e.g. meet.example.com"
    )


@pytest.mark.parametrize(("domain", "name"), NAMES)
def test_default_stack_name_from_the_domain(domain: str, name: str) -> None:
    assert config.default_name(domain) == name
    config.loads(f'[stack]\nname = "{name}"\ndomain = "meet.example.com"\n')


def test_toml_values_of_the_template() -> None:
    assert [config._toml_value(v) for v in (True, False, 3, 1.5, ("x", "y"))] == [
        "true",
        "false",
        "3",
        "1.5",
        '["x", "y"]',
    ]
    assert config._toml_value('a"b\\c') == '"a\\"b\\\\c"'


def test_template_sets_what_is_given_and_shows_every_default() -> None:
    text = config.template("meet.example.com", "meet", "eu-west-1")
    lines = text.splitlines()
    assert lines[:3] == [
        "# pcls configuration. Every key below except [stack] name/domain is optional;",
        "# commented lines show the default. Reference: README.md#configuration.",
        "",
    ]
    shown = ['name = "meet"', 'domain = "meet.example.com"', 'region = "eu-west-1"',
             '# timezone = "UTC"', "# azs = 2", "# dual_stack = false", "# [[scaling.schedule]]",
             '# name = "night"', '# cron = "cron(0 20 ? * MON-FRI *)"', "# min_count = 0",
             "# max_count = 1", "[tags]", '# owner = "team-video"', "[ecs]"]  # fmt: skip
    for line in shown:
        assert line in lines, line
    assert lines[-1] == '# owner = "team-video"' and text.endswith("\n")
    assert f"# {config.TAGS_DOC}" in lines
    no_region = config.template("meet.example.com", "meet", "").splitlines()
    assert '# region = ""' in no_region and 'region = ""' not in no_region
    cfg = config.loads(text)
    assert (cfg.stack.name, cfg.stack.region, cfg.name, cfg.zone_name) == (
        "meet",
        "eu-west-1",
        "meet",
        "",
    )
    rows = config.reference()
    keys = [k for k, _, _ in rows]
    assert keys[0] == "stack.name" and keys[-1] == "tags.<key>"
    assert (
        "network.azs",
        "2",
        config.NetworkSection.__dataclass_fields__["azs"].metadata["doc"],
    ) in rows
    assert ("tags.<key>", "(none)", config.TAGS_DOC) in rows
    stun = config._toml_value(config.JitsiSection().stun_servers)
    assert ("jitsi.stun_servers", stun) in [r[:2] for r in rows]
    assert f"# stun_servers = {stun}" in lines


def test_the_state_directory_is_beside_the_config(tmp_path: Path) -> None:
    cfg = config.loads(BASE + '[dns]\nzone = "example.com"\n', tmp_path / "x" / "pcls.toml")
    assert cfg.state_dir == tmp_path / "x" / ".pcls"
    assert cfg.zone_name == "example.com"
    assert cfg.path == tmp_path / "x" / "pcls.toml"


def test_load_reads_only_a_regular_file_of_sane_size(tmp_path: Path) -> None:
    good = tmp_path / "pcls.toml"
    good.write_bytes(BASE.replace("\n", "\r\n").encode())
    assert config.load(good).stack.name == "meet"
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path / "absent.toml")
    assert str(err.value) == (
        f"{tmp_path / 'absent.toml'}: no such config; create one with `pcls init DOMAIN` "
        "or pass --config PATH"
    )
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: cannot read config (a directory, not a regular file); "
        "pass --config PATH of a TOML file"
    )
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as err:
        config.load(fifo)
    assert str(err.value) == (
        f"{fifo}: cannot read config (a named pipe (FIFO), not a regular file); "
        "pass --config PATH of a TOML file"
    )
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (config.MAX_BYTES + 1))
    with pytest.raises(ConfigError) as err:
        config.load(big)
    assert str(err.value) == (
        f"{big}: cannot read config ({config.MAX_BYTES + 1} bytes); expected at most 1 MiB"
    )
    exact = tmp_path / "exact.toml"
    exact.write_bytes(BASE.encode() + b"#" * (config.MAX_BYTES - len(BASE)))
    assert config.load(exact).stack.name == "meet"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# caf\xe9\n" + BASE.encode())
    with pytest.raises(ConfigError) as err:
        config.load(latin)
    assert str(err.value).startswith(f"{latin}: cannot read config ('utf-8' codec can't decode")


def test_nesting_deeper_than_eight_is_refused(tmp_path: Path) -> None:
    deep = BASE + "[network]\nx = " + "[" * 9 + "]" * 9 + "\n"
    with pytest.raises(ConfigError) as err:
        config.loads(deep, tmp_path / "p.toml")
    assert str(err.value) == (
        f"{tmp_path / 'p.toml'}: network.x[0][0][0][0][0][0][0] nested deeper than 8 tables or "
        "arrays; expected the flat layout of README.md#configuration"
    )
    with pytest.raises(ConfigError) as err:
        config.loads("x = " + "[" * 5000 + "]" * 5000, tmp_path / "p.toml")
    assert str(err.value).endswith(
        "nested deeper than 8 tables or arrays; expected the flat layout of README.md#configuration"
    )
    with pytest.raises(ConfigError) as err:
        config.loads("x = 1" + "0" * 5000 + "\n", tmp_path / "p.toml")
    assert str(err.value) == (
        f"{tmp_path / 'p.toml'}: not valid TOML: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5001 digits"
    )
    assert config._too_deep({"a": [[[]]]}) is None
    assert config._too_deep({"a": {"b": [[[[[[[[]]]]]]]]}}) == "a.b[0][0][0][0][0][0][0]"


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        config.loads(text)
    return str(err.value)


def test_the_check_builders() -> None:
    """The checks are built when the module loads; their builders' contracts, called here."""
    between = config._between(2, 6)
    assert [between(v) for v in (1, 2, 6, 7)] == [
        "a number from 2 to 6",
        None,
        None,
        "a number from 2 to 6",
    ]
    one_of = config._one_of(("a", "b"))
    assert (one_of("a"), one_of("c")) == (None, "one of a, b")
    import re

    pattern = config._pattern(re.compile(r"^x+$"), "only x")
    assert (pattern("xx"), pattern("y")) == (None, "only x")
    optional = config._optional(lambda v: f"bad {v}")
    assert (optional(""), optional("v")) == (None, "bad v")
    f = config._f({"k": "v"}, "doc", between)
    made = f.default_factory()
    assert made == {"k": "v"} and made is not f.default_factory()
    assert f.metadata == {"doc": "doc", "check": between}
    g = config._f(3, "three")
    assert (g.default, g.metadata["doc"], g.metadata["check"]) == (3, "three", None)
    assert config._auth("internal").startswith("jwt (hand out room links with `pcls token`)")
    assert config._auth("open") is None
    assert config._auth("ldap") == "one of " + ", ".join(config.AUTH_MODES)


def test_boundaries_between_sections_are_inclusive() -> None:
    from pcls.jitsi import SIGNAL_MEMORY_MIN_MIB

    ok = config.loads(BASE + "[jvb]\nmin_count = 3\nmax_count = 3\n")
    assert (ok.jvb.min_count, ok.jvb.max_count) == (3, 3)
    assert refusal(BASE + "[jvb]\nmin_count = 3\nmax_count = 2\n") == (
        "jvb.max_count: 2 is below jvb.min_count 3"
    )
    sched = '[[scaling.schedule]]\nname = "n"\ncron = "rate(1 hour)"\n'
    config.loads(BASE + sched + "min_count = 2\nmax_count = 2\n")
    assert refusal(BASE + sched + "min_count = 2\nmax_count = 1\n") == (
        "scaling.schedule[0].max_count: below its min_count"
    )
    assert refusal(BASE + '[jitsi]\nauth = "jwt"\n') == (
        'jitsi.jwt_app_id: required when jitsi.auth = "jwt"'
    )
    assert SIGNAL_MEMORY_MIN_MIB == 1152
    for text, ok_ in ((BASE + "[network]\nazs = 2\n", True), (BASE + "[network]\nazs = 6\n", True)):
        assert bool(config.loads(text)) is ok_


def test_values_are_kept_as_given() -> None:
    cfg = config.loads(BASE + '[jitsi]\nstun_servers = ["a.example.com:1", "b:2"]\n')
    assert cfg.jitsi.stun_servers == ("a.example.com:1", "b:2")
    assert refusal(BASE + "[jitsi]\nstun_servers = []\n") == (
        "jitsi.stun_servers: () is not allowed; expected a non-empty list of host:port strings"
    )
    assert refusal(BASE + "[logs]\nkeep_on_teardown = 0\n") == (
        "logs.keep_on_teardown: 0 is not true or false"
    )
    assert refusal(BASE + '[jitsi]\nauth = "ldap"\n') == (
        "jitsi.auth: 'ldap' is not allowed; expected one of " + ", ".join(config.AUTH_MODES)
    )
    assert config.loads(BASE + '[alerts]\nemail = ""\n').alerts.email == ""
    assert refusal(BASE + '[alerts]\nemail = "x"\n').startswith("alerts.email: 'x' is not allowed")
    assert config.loads(BASE + '[jitsi]\nauth = "jwt"\njwt_app_id = ""\n'.replace(
        'jwt_app_id = ""', 'jwt_app_id = "a"')).jitsi.jwt_app_id == "a"  # fmt: skip


def test_long_values_are_shortened_in_messages() -> None:
    for n, shown in ((80, None), (81, 80)):
        tag = "a" * (n - 1) + "_"
        text = refusal(BASE + f'[jitsi]\nimage_tag = "-{tag[1:]}"\n')
        value = "-" + tag[1:]
        if shown is None:
            assert (
                text == f"jitsi.image_tag: {value!r} is not allowed; expected a container image tag"
            )
        else:
            assert text == (
                f"jitsi.image_tag: {value[:80]!r}"[:-1]
                + f"…' ({n} characters) is not allowed; expected a container image tag"
            )
    key40 = "k" * 39 + "!"
    assert config._tags({key40: "v"}).endswith(f"(tag {key40!r} has '!')")
    key41 = "k" * 40 + "!"
    assert config._tags({key41: "v"}).endswith(
        f"(tag {('k' * 40)!r}"[:-1] + "…' (41 characters) has '!')"
    )


def test_tag_length_bounds() -> None:
    assert config._tags({"k" * 128: "v" * 256}) is None
    assert config._tags({"k": "v" * 257}) == "values of at most 256 characters (tag 'k' has 257)"
    assert config._tags({"k" * 129: "v"}).startswith("keys of 1-128 characters (got 'kkkk")
    assert config._tags({f"k{i}": "v" for i in range(8)}) is None


def test_deep_values_are_found_wherever_they_are() -> None:
    deep = [[[[[[[[[]]]]]]]]]
    alone = config._too_deep({"b": deep})
    assert alone == "b[0][0][0][0][0][0][0][0]"
    assert config._too_deep({"a": {"x": 1}, "b": deep, "c": 2}) == alone
    assert config._too_deep({"b": deep, "z": {"x": 1}}) == alone
    assert config._too_deep({"b": [1, deep[0], 2]}) == "b[1][0][0][0][0][0][0][0]"
    nested = {"s": {"a": 1, "t": {"u": {"v": {"w": {"x": {"y": {"z": {"q": {}}}}}}}}}}
    assert config._too_deep(nested) == "s.t.u.v.w.x.y.z.q"


def test_default_names_at_their_edges() -> None:
    assert config.default_name("ab.example.com") == "ab"
    assert config.default_name("-abcdefghijklmnopq.example.com") == "abcdefghijklmnop"
    assert config.default_name("abcdefghijklmno-p.example.com") == "abcdefghijklmno"
    assert config.default_name("a b.example.com") == "a-b"


def test_day_of_week_nth_runs_from_1_to_5() -> None:
    for n in "12345":
        assert config.schedule_error(f"cron(0 20 ? * MON#{n} *)") is None
    assert config.schedule_error("cron(0 20 ? * MON#0 *)") is not None


def test_load_names_the_file_in_every_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[stack\n")
    with pytest.raises(ConfigError) as err:
        config.load(bad)
    assert str(err.value).startswith(f"{bad}: not valid TOML: ")
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError) as err:
        config.load(deep)
    assert str(err.value) == (
        f"{deep}: a value nested deeper than 8 tables or arrays; "
        "expected the flat layout of README.md#configuration"
    )
    assert config.load(_write(tmp_path / "ok.toml", BASE)).path == tmp_path / "ok.toml"
    old_mac = _write(tmp_path / "cr.toml", BASE.replace("\n", "\r"))
    assert config.load(old_mac).stack.domain == "meet.example.com"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_a_file_swapped_or_grown_after_the_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regular = _write(tmp_path / "ok.toml", BASE)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if p == fifo else p))
    with pytest.raises(ConfigError) as err:
        config.load(fifo)  # opened without blocking, then seen to be a FIFO after all
    assert str(err.value) == f"{fifo}: cannot read config (not a regular file)"
    big = _write(tmp_path / "big.toml", BASE + "#" * config.MAX_BYTES)
    real_fstat = os.fstat
    small = real_stat(regular)
    monkeypatch.setattr(os, "fstat", lambda fd: small if fd > 2 else real_fstat(fd))
    with pytest.raises(ConfigError) as err:
        config.load(big)
    assert str(err.value) == f"{big}: cannot read config (over 1 MiB); expected at most 1 MiB"
    monkeypatch.setattr(os, "fstat", real_fstat)

    def denied(*a: object, **k: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError) as err:
        config.load(regular)
    assert str(err.value) == f"{regular}: cannot read config ([Errno 13] Permission denied)"


def test_more_edges_of_the_checks() -> None:
    on = config.loads(BASE + "[network]\ndual_stack = true\n[logs]\nkeep_on_teardown = true\n")
    assert (on.network.dual_stack, on.logs.keep_on_teardown) == (True, True)
    with pytest.raises(ConfigError) as err:
        config.parse({"stack": {"name": "meet", "domain": "meet.example.com"}, "tags": 1})
    assert str(err.value) == "[tags]: must be a table of strings"
    with pytest.raises(ConfigError) as err:
        config.parse({})
    assert str(err.value) == "[stack]: missing; it needs name and domain"
    with pytest.raises(ConfigError) as err:
        config.parse({"stack": {}, "extras": {}})
    assert str(err.value) == (
        "[extras]: unknown section; allowed: " + ", ".join([*config.SECTIONS, "tags"])
    )
    for expr in ("cron(0/1 20 * * ? *)", "cron(0 5-5 * * ? *)", "cron(0 20 ? * 1-1 *)"):
        assert config.schedule_error(expr) is None, expr
    assert config.schedule_error("cron( 0 20 * * ?)") == (
        "cron() with 6 fields separated by single spaces: minutes hours day-of-month month "
        "day-of-week year (got 5)"
    )
    for label in ("xn---x-wka", "xn--a--yka"):  # ü-x and a-ü: a hyphen among the letters
        assert config.domain_error(f"{label}.example.com") is None
    deep = [[[[[[[[[]]]]]]]]]
    assert config._too_deep({"deep": deep, "a": [1]}) == "deep[0][0][0][0][0][0][0][0]"


def test_one_bridge_per_az_by_default() -> None:
    cfg = config.loads(BASE + "[network]\nazs = 3\n")
    assert (cfg.jvb.min_count, cfg.jvb.max_count) == (3, 4)
    cfg = config.loads(BASE + "[network]\nazs = 6\n")
    assert (cfg.jvb.min_count, cfg.jvb.max_count) == (6, 6)  # the default maximum makes room
    assert config.loads(BASE + "[network]\nazs = 3\n[jvb]\nmin_count = 1\n").jvb.min_count == 1
    assert refusal(BASE + "[network]\nazs = 6\n[jvb]\nmax_count = 5\n") == (
        "jvb.max_count: 5 is below jvb.min_count 6 (its default: one bridge per AZ, network.azs)"
    )
    assert refusal(BASE + "[jvb]\nmin_count = 3\nmax_count = 2\n") == (
        "jvb.max_count: 2 is below jvb.min_count 3"
    )


def test_the_default_is_named_only_when_min_count_was_left_out() -> None:
    """The same minimum, 3 bridges in 3 AZs: the hint names the default only when it is one."""
    assert refusal(BASE + "[network]\nazs = 3\n[jvb]\nmax_count = 2\n") == (
        "jvb.max_count: 2 is below jvb.min_count 3 (its default: one bridge per AZ, network.azs)"
    )
    assert refusal(BASE + "[network]\nazs = 3\n[jvb]\nmin_count = 3\nmax_count = 2\n") == (
        "jvb.max_count: 2 is below jvb.min_count 3"
    )


def test_a_budget_needs_an_address() -> None:
    assert refusal(BASE + "[alerts]\nmonthly_budget = 100\n") == (
        "alerts.monthly_budget: needs alerts.email, the address its alerts are sent to"
    )
    cfg = config.loads(BASE + '[alerts]\nmonthly_budget = 100\nemail = "a@example.com"\n')
    assert cfg.alerts.monthly_budget == 100


@pytest.mark.parametrize("label", ["xn--wca", "xn--ber-ska", "xn--u-ccb"])  # Ü, Über, u + ̈
def test_punycode_of_upper_case_or_decomposed_letters_is_refused(label: str) -> None:
    assert config.domain_error(f"{label}.example.com") == (
        f"xn-- labels in valid punycode ({label} decodes to a name not in lowercase NFC form)"
    )

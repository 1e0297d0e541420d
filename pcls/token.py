"""`pcls token`: a meeting link with a signed JWT, for stacks with auth = "jwt".

The stack's prosody checks tokens with Jitsi's token plugin (mod_auth_token and the
token_verification module on the MUC component, jitsi-meet's prosody-plugins). What it checks,
and so what is signed here:

- the header: typ "JWT" and alg HS256 (the image's default signature algorithm), the
  signature an HMAC-SHA256 over `header.payload` with the app secret (JWT_APP_SECRET);
- iss: one of the accepted issuers, by default only the app id (JWT_APP_ID = jitsi.jwt_app_id);
- aud: one of the accepted audiences (JWT_ACCEPTED_AUDIENCES, which pcls sets to "jitsi");
- exp and nbf: the time must be before exp and not before nbf, with no leeway, so nbf is set a
  minute before the issue time to spare a prosody clock that is a little behind this one;
- room: required; on joining, the room must equal the claim in lower case (or the claim is "*");
- sub: the XMPP domain (meet.jitsi) the room lives under; checked only with domain verification
  (JWT_ENABLE_DOMAIN_VERIFICATION, off in the image), where it must name that domain;
- context.user: name (shown in the meeting) and the moderator flag. Stock Jitsi makes every
  token holder a moderator; the image's token_affiliation module, which pcls loads on the MUC
  component in jwt mode, gives owner to moderator tokens and member to all others.

The secret is read with ssm:GetParameter (WithDecryption) through the session's AWS clients and
is never printed, logged or written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import botocore.exceptions

from pcls.aws import error_code
from pcls.errors import EXIT_AWS, EXIT_OK, ConfigError, PclsError
from pcls.jitsi import JWT_AUDIENCE

AUDIENCE = JWT_AUDIENCE  # JWT_ACCEPTED_AUDIENCES of the stack's prosody
SECRET_ENV = "JWT_APP_SECRET"
CLOCK_SKEW = 60  # seconds nbf lies before the issue time
TTL_MIN = 60
TTL_MAX = 7 * 86400
TTL_DEFAULT = "2h"
_TTL_RE = re.compile(r"^([1-9][0-9]{0,6})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
TTL_ALLOWED = "a whole number and m, h or d, from 1m to 7d, e.g. 30m, 2h, 1d"
# Room names that need no escaping in a URL path and that Jitsi keeps as they are.
_ROOM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ROOM_ALLOWED = "1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit"
NAME_MAX = 64


class TokenError(PclsError):
    """The secret could not be read (exit 1: a failure while talking to AWS)."""

    exit_code = EXIT_AWS


def parse_ttl(text: str) -> int:
    """'30m' / '2h' / '1d' -> seconds, within TTL_MIN..TTL_MAX; else a ConfigError."""
    m = _TTL_RE.match(text)
    seconds = int(m.group(1)) * _UNITS[m.group(2)] if m else 0
    if not TTL_MIN <= seconds <= TTL_MAX:
        raise ConfigError(f"--ttl: {text!r} is not allowed; expected {TTL_ALLOWED}")
    return seconds


def check_room(room: str) -> str:
    if not _ROOM_RE.match(room):
        raise ConfigError(f"--room: {room!r} is not allowed; expected {ROOM_ALLOWED}")
    return room


def check_name(name: str) -> str:
    if not name.strip() or len(name) > NAME_MAX or not name.isprintable():
        raise ConfigError(
            f"--name: {name[:NAME_MAX]!r} is not allowed; expected 1-{NAME_MAX} printable "
            "characters"
        )
    return name


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(
    *,
    app_id: str,
    xmpp_domain: str,
    room: str,
    ttl: int,
    moderator: bool,
    name: str | None,
    now: int,
) -> dict[str, Any]:
    """The payload prosody's token plugin reads (see the module docstring)."""
    user: dict[str, Any] = {
        "moderator": moderator,
        "affiliation": "owner" if moderator else "member",
    }
    if name is not None:
        user["name"] = name
    return {
        "iss": app_id,
        "aud": AUDIENCE,
        "sub": xmpp_domain,
        "room": room.lower(),
        "iat": now,
        "nbf": now - CLOCK_SKEW,
        "exp": now + ttl,
        "context": {"user": user},
    }


def sign(payload: Mapping[str, Any], secret: str) -> str:
    """An HS256 JWT (compact form) of `payload`."""
    header = {"alg": "HS256", "typ": "JWT"}
    parts = [
        b64url(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        for part in (header, payload)
    ]
    signing_input = ".".join(parts).encode("ascii")
    mac = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return ".".join([*parts, b64url(mac)])


def meeting_url(domain: str, room: str, token: str) -> str:
    return f"https://{domain}/{urllib.parse.quote(room, safe='')}?jwt={token}"


def parameter_name(stack: str) -> str:
    return f"/pcls/{stack}/{SECRET_ENV}"


def read_secret(aws: Any, stack: str) -> str:
    """JWT_APP_SECRET of the stack, decrypted; errors name the parameter, never a value."""
    name = parameter_name(stack)
    try:
        reply = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code == "ParameterNotFound":
            raise TokenError(
                f"token: {name} does not exist; run `pcls up` (it generates the secret)"
            ) from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise TokenError(
                f"token: access denied reading {name}; the caller needs ssm:GetParameter on it"
            ) from None
        raise TokenError(f"token: GetParameter {name}: {code}") from None
    value = reply.get("Parameter", {}).get("Value")
    if not isinstance(value, str) or not value:
        raise TokenError(f"token: {name} holds no value; delete it and run `pcls up`")
    return value


def mint(
    aws: Any,
    *,
    stack: str,
    app_id: str,
    xmpp_domain: str,
    room: str,
    ttl: int,
    moderator: bool = False,
    name: str | None = None,
    now: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """(token, claims) for one room, signed with the stack's secret."""
    payload = claims(
        app_id=app_id,
        xmpp_domain=xmpp_domain,
        room=room,
        ttl=ttl,
        moderator=moderator,
        name=name,
        now=int(time.time()) if now is None else now,
    )
    return sign(payload, read_secret(aws, stack)), payload


def run(s: Any, room: str, moderator: bool, name: str | None, ttl_text: str) -> int:
    """`pcls token`: print the meeting URL on stdout, what it grants on stderr."""
    from pcls import jitsi

    cfg = s.cfg
    ttl = parse_ttl(ttl_text)
    check_room(room)
    if name is not None:
        check_name(name)
    if cfg.jitsi.auth != "jwt":
        raise ConfigError(
            f'token: stack {cfg.stack.name} has jitsi.auth = "{cfg.jitsi.auth}"; tokens need '
            'jitsi.auth = "jwt" and jitsi.jwt_app_id (then pcls up)'
        )
    ident = s.aws.identity()
    s.ledger.check_target(ident["account"], s.aws.region)
    s.aws.read_only = True  # a token is signed here; nothing is written in AWS
    token, payload = mint(
        s.aws,
        stack=cfg.stack.name,
        app_id=cfg.jitsi.jwt_app_id,
        xmpp_domain=jitsi.XMPP_DOMAIN,
        room=room,
        ttl=ttl,
        moderator=moderator,
        name=name,
    )
    print(meeting_url(cfg.stack.domain, room, token))
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(payload["exp"]))
    role = "moderator" if moderator else "participant"
    print(f"room {room}, {role}, valid until {until} ({ttl_text})", file=sys.stderr)
    return EXIT_OK

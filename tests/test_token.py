"""pcls token: links whose JWT passes the checks prosody's token plugin makes.

`prosody_accepts` below is written from the plugin's documented rules (jitsi-meet's
prosody-plugins: token/util.lib.lua and luajwtjitsi, as the docker-jitsi-meet prosody image
configures them), not from pcls's code: header typ JWT and alg HS256, the HMAC-SHA256
signature with the app secret, exp and nbf numbers with no leeway, iss among the accepted
issuers (the app id by default), a room claim, aud among the accepted audiences, on joining the
room equal to the claim in lower case (or "*"), and with domain verification the room's MUC
address built from sub.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import pytest

from pcls import jitsi
from pcls import token as tokens
from pcls.errors import ConfigError
from tests.harness import Harness

SECRET = "5e" * 32
APP_ID = "meet-app"
NOW = 1_800_000_000


class Refused(Exception):
    pass


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def prosody_accepts(
    token: str,
    secret: str,
    *,
    now: int,
    room: str,
    app_id: str = APP_ID,
    issuers: tuple[str, ...] | None = None,
    audiences: tuple[str, ...] = (jitsi.JWT_AUDIENCE,),
    muc_prefix: str = "muc",
    xmpp_domain: str = jitsi.XMPP_DOMAIN,
    domain_verification: bool = True,
) -> dict[str, Any]:
    """The claims when prosody would let this token join `room`, else Refused(reason)."""
    segments = token.split(".")
    if len(segments) != 3:
        raise Refused("Invalid token")
    header, body = json.loads(_b64(segments[0])), json.loads(_b64(segments[1]))
    if header.get("typ") != "JWT":
        raise Refused("Invalid typ")
    if header.get("alg") != "HS256":
        raise Refused("Invalid or incorrect alg")
    want = hmac.new(secret.encode(), f"{segments[0]}.{segments[1]}".encode(), hashlib.sha256)
    if not hmac.compare_digest(want.digest(), _b64(segments[2])):
        raise Refused("Invalid signature")
    for key in ("exp", "nbf"):
        if key in body and not isinstance(body[key], int | float):
            raise Refused(f"{key} must be number")
    if "exp" in body and now >= body["exp"]:
        raise Refused("Not acceptable by exp")
    if "nbf" in body and now < body["nbf"]:
        raise Refused("Not acceptable by nbf")
    if body.get("iss") not in (issuers or (app_id,)):
        raise Refused("Invalid issuer ('iss' claim)")
    if "room" not in body:
        raise Refused("'room' claim is missing")
    if "*" not in audiences and body.get("aud") not in audiences:
        raise Refused("Invalid audience ('aud' claim)")
    joined = room.lower()  # a MUC JID's node is case-folded (nodeprep)
    claim = body["room"]
    if not domain_verification:
        if claim != "*" and joined != claim.lower():
            raise Refused("room mismatch")
        return body
    checked = joined if claim == "*" else claim
    muc = f"{muc_prefix}.{xmpp_domain}" if body.get("sub") == "*" else f"{muc_prefix}.{body['sub']}"
    if f"{joined}@{muc_prefix}.{xmpp_domain}" != f"{checked.lower()}@{muc.lower()}":
        raise Refused("room or domain mismatch")
    return body


def make(**kw: Any) -> tuple[str, dict[str, Any]]:
    args = {
        "app_id": APP_ID,
        "xmpp_domain": jitsi.XMPP_DOMAIN,
        "room": "Standup",
        "ttl": 7200,
        "moderator": False,
        "name": None,
        "now": NOW,
    }
    args.update(kw)
    payload = tokens.claims(**args)
    return tokens.sign(payload, SECRET), payload


# -- the token --------------------------------------------------------------------------------


def test_token_passes_prosodys_checks_for_its_room_in_any_case() -> None:
    token, _ = make()
    for room in ("Standup", "standup", "STANDUP"):
        body = prosody_accepts(token, SECRET, now=NOW, room=room)
        assert body["iss"] == APP_ID and body["aud"] == "jitsi"
        assert body["sub"] == "meet.jitsi" and body["room"] == "standup"
    prosody_accepts(token, SECRET, now=NOW, room="standup", domain_verification=False)
    with pytest.raises(Refused, match="mismatch"):
        prosody_accepts(token, SECRET, now=NOW, room="other")


def test_token_is_valid_from_a_minute_before_issue_until_its_ttl() -> None:
    token, payload = make(ttl=1800)
    assert payload["iat"] == NOW and payload["nbf"] == NOW - 60 and payload["exp"] == NOW + 1800
    prosody_accepts(token, SECRET, now=NOW - 60, room="standup")  # a prosody clock behind
    prosody_accepts(token, SECRET, now=NOW + 1799, room="standup")
    with pytest.raises(Refused, match="exp"):
        prosody_accepts(token, SECRET, now=NOW + 1800, room="standup")
    with pytest.raises(Refused, match="nbf"):
        prosody_accepts(token, SECRET, now=NOW - 61, room="standup")


def test_a_token_with_another_secret_issuer_audience_or_alg_is_refused() -> None:
    token, payload = make()
    with pytest.raises(Refused, match="signature"):
        prosody_accepts(token, "other" + SECRET, now=NOW, room="standup")
    with pytest.raises(Refused, match="issuer"):
        prosody_accepts(token, SECRET, now=NOW, room="standup", app_id="another-app")
    with pytest.raises(Refused, match="audience"):
        prosody_accepts(token, SECRET, now=NOW, room="standup", audiences=("other",))
    head, body, sig = token.split(".")
    forged = tokens.b64url(json.dumps({**payload, "room": "*"}).encode())
    with pytest.raises(Refused, match="signature"):
        prosody_accepts(f"{head}.{forged}.{sig}", SECRET, now=NOW, room="other")
    none = tokens.b64url(b'{"alg":"none","typ":"JWT"}')
    with pytest.raises(Refused, match="alg"):
        prosody_accepts(f"{none}.{body}.", SECRET, now=NOW, room="standup")


def test_moderator_and_name_are_in_the_user_context() -> None:
    _, guest = make()
    assert guest["context"] == {"user": {"moderator": False, "affiliation": "member"}}
    _, host = make(moderator=True, name="Ada Lovelace")
    assert host["context"]["user"] == {
        "moderator": True,
        "affiliation": "owner",
        "name": "Ada Lovelace",
    }


def test_the_url_opens_the_room_with_the_token() -> None:
    token, _ = make()
    url = tokens.meeting_url("meet.example.com", "Standup", token)
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "meet.example.com", "/Standup")
    assert urllib.parse.parse_qs(parts.query) == {"jwt": [token]}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m", 60), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("7d", 604800), ("168h", 604800)],
)
def test_ttl_accepts_minutes_hours_days_up_to_a_week(text: str, seconds: int) -> None:
    assert tokens.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "8d", "169h", "2w", "1.5h", "-1h", "90", "h", "2 h"])
def test_ttl_outside_the_bounds_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--ttl: .* from 1m to 7d"):
        tokens.parse_ttl(text)


@pytest.mark.parametrize("room", ["", "a b", "a/b", "x" * 65, "-lead", "über", "a?b", "*"])
def test_room_names_that_need_escaping_are_refused(room: str) -> None:
    with pytest.raises(ConfigError, match=r"^--room: "):
        tokens.check_room(room)


def test_auth_internal_is_refused_pointing_at_jwt(harness: Harness, capsys) -> None:
    harness.write_config('[jitsi]\nauth = "internal"\n')
    res = harness.cli("plan", capsys=capsys)
    assert res.code == 2 and res.out == ""
    assert res.err.strip() == (
        "error: jitsi.auth: 'internal' is not allowed; expected jwt (hand out room links with "
        "`pcls token`); internal was removed: its accounts lived on the signal task's disk and "
        "were lost whenever the task was replaced"
    )


# -- the command ------------------------------------------------------------------------------


def jwt_stack(harness: Harness, secret: str | None = SECRET) -> None:
    harness.write_config(f'[jitsi]\nauth = "jwt"\njwt_app_id = "{APP_ID}"\n')
    if secret is not None:
        harness.client("ssm").put_parameter(
            Name="/pcls/meet/JWT_APP_SECRET", Value=secret, Type="SecureString"
        )


def test_cli_prints_a_link_whose_token_prosody_accepts(harness: Harness, capsys) -> None:
    jwt_stack(harness)
    res = harness.cli(
        "token", "--room", "Standup", "--moderator", "--name", "Ada", "--ttl", "30m", capsys=capsys
    )
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("https://meet.example.com/Standup?jwt=")
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(lines[0]).query)["jwt"][0]
    body = prosody_accepts(
        token, SECRET, now=json.loads(_b64(token.split(".")[1]))["iat"], room="standup"
    )
    assert body["exp"] - body["iat"] == 1800
    assert body["context"]["user"] == {"moderator": True, "affiliation": "owner", "name": "Ada"}
    assert "room Standup, moderator, valid until" in res.err and "(30m)" in res.err
    assert SECRET not in res.out + res.err
    res = harness.cli("token", "--room", "Standup", "--api-calls", capsys=capsys)
    assert res.code == 0 and '"writes": 0' in res.err  # a token is signed here, not in AWS


def test_cli_bad_input_is_one_line_exit_2(harness: Harness, capsys) -> None:
    jwt_stack(harness)
    for args, start in [
        (("--room", "Standup", "--ttl", "2w"), "error: --ttl: '2w' is not allowed"),
        (("--room", "a b"), "error: --room: 'a b' is not allowed"),
        (("--room", "x", "--name", ""), "error: --name: "),
    ]:
        res = harness.cli("token", *args, capsys=capsys)
        assert res.code == 2 and res.err.startswith(start), (args, res.err)
        assert len(res.err.strip().splitlines()) == 1 and res.out == ""
    res = harness.cli("token", capsys=capsys)
    assert res.code == 2 and "--room" in res.err


def test_cli_refuses_a_stack_without_jwt(harness: Harness, capsys) -> None:
    res = harness.cli("token", "--room", "Standup", capsys=capsys)
    assert res.code == 2 and res.out == ""
    assert res.err.strip() == (
        'error: token: stack meet has jitsi.auth = "open"; tokens need jitsi.auth = "jwt" and '
        "jitsi.jwt_app_id (then pcls up)"
    )


def test_cli_without_the_secret_names_the_parameter(harness: Harness, capsys) -> None:
    jwt_stack(harness, secret=None)
    res = harness.cli("token", "--room", "Standup", capsys=capsys)
    assert res.code == 1 and res.out == ""
    assert res.err.strip() == (
        "error: token: /pcls/meet/JWT_APP_SECRET does not exist; run `pcls up` (it generates "
        "the secret)"
    )

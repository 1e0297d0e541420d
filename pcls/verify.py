"""`pcls verify`: the stack checked from outside, as a browser would reach it.

One line per check, in the order a browser meets them:

- dns: the domain resolves, and only to addresses of the stack's load balancer (its DNS name
  as AWS reports it, and that name's `dualstack.` form, resolved the same way);
- tls: a TLS handshake with the domain's own address, SNI and hostname check, the chain
  trusted by the system's store; the certificate's days left (warn under 30 — ACM renews 60
  days ahead, so a shorter remainder means its renewal is stuck — FAIL under 14);
- page: `GET /` answers 200 with the Jitsi Meet page;
- config: `GET /config.js` carries this domain's websocket URL, as the web image renders it
  (`config.websocket = 'wss://<domain>/' + subdir + 'xmpp-websocket'`);
- xmpp: an XMPP session over the websocket (RFC 6455 framing, RFC 7395 XMPP subprotocol): open,
  stream features, SASL ANONYMOUS (with a short-lived token as `?token=` on a jwt stack, as
  the Jitsi client sends it), stream restart, resource bind;
- auth: on a jwt stack a session without a token must be refused; an open stack is a warning;
- bridges: the bridge service's running tasks against its desired count, as ECS reports them,
  and the lowest XmppConnected share the bridge guards published in the newest minute (1 when
  every bridge is connected to every signal shard and joined its brewery room).

Every connection goes to the domain's own addresses on port 443; the resolver and the port are
parameters only so that the tests can point them at 127.0.0.1. Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL = "ok", "warn", "FAIL"
PORT = 443
TIMEOUT = 10.0
DAYS_WARN = 30
DAYS_FAIL = 14
RESOURCE = "pcls-verify"
PAGE_MARKERS = ("<title>Jitsi Meet</title>", "config.js", "var config = {}")
MAX_MESSAGE = 256 * 1024  # prosody's default stanza size limit
MAX_HEADER = 16 * 1024
MAX_BODY = 4 * 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name:<8} {self.detail}"


class ProbeError(Exception):
    """One check failed; the message is its detail line."""


def passed(checks: Iterable[Check]) -> bool:
    return all(c.status != FAIL for c in checks)


def as_json_doc(domain: str, checks: list[Check]) -> dict[str, Any]:
    return {"domain": domain, "ok": passed(checks), "checks": [asdict(c) for c in checks]}


# -- names ------------------------------------------------------------------------------------


def system_resolve(host: str) -> list[str]:
    """The addresses the system resolver gives for host, IPv4 first, each once."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    found: list[str] = []
    for family, *_, sockaddr in infos:
        addr = str(sockaddr[0])
        if family in (socket.AF_INET, socket.AF_INET6) and addr not in found:
            found.append(addr)
    return sorted(found, key=lambda a: ipaddress.ip_address(a).version)


def loopback_resolver(address: str) -> Callable[[str], list[str]]:
    """Every name resolves to `address`, which must be a loopback address (tests only)."""
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"{address} is not a loopback address")
    return lambda host: [address]


def check_dns(
    domain: str, alb_dns: str | None, resolve: Callable[[str], list[str]]
) -> tuple[Check, list[str]]:
    addrs = resolve(domain)
    if not addrs:
        return Check("dns", FAIL, f"{domain} does not resolve"), []
    shown = ", ".join(addrs)
    if alb_dns is None:
        return (
            Check("dns", FAIL, f"{domain} → {shown}; the stack has no load balancer in AWS"),
            addrs,
        )
    alb = set(resolve(alb_dns))
    if not alb_dns.startswith("dualstack."):
        alb |= set(resolve("dualstack." + alb_dns))
    mine = [a for a in addrs if a in alb]
    if len(mine) == len(addrs):
        return Check("dns", OK, f"{domain} → {shown}, the load balancer {alb_dns}"), addrs
    if mine:
        others = ", ".join(a for a in addrs if a not in alb)
        return (
            Check("dns", WARN, f"{domain} → {shown}; {others} not among {alb_dns}'s addresses"),
            addrs,
        )
    alb_shown = ", ".join(sorted(alb)) or "nothing"
    return (
        Check(
            "dns",
            FAIL,
            f"{domain} → {shown}, not the load balancer {alb_dns} (→ {alb_shown})",
        ),
        addrs,
    )


# -- TLS and HTTP -----------------------------------------------------------------------------


def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """What a browser insists on: a trusted chain, the hostname, TLS 1.2 or newer."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass
class Endpoint:
    domain: str
    addresses: list[str]
    port: int
    context: ssl.SSLContext
    timeout: float

    def connect(self) -> ssl.SSLSocket:
        """A verified TLS connection to the first of the domain's addresses that answers."""
        last: Exception | None = None
        for addr in self.addresses:
            try:
                raw = socket.create_connection((addr, self.port), timeout=self.timeout)
            except OSError as exc:
                last = exc
                continue
            try:
                return self.context.wrap_socket(raw, server_hostname=self.domain)
            except BaseException:
                raw.close()
                raise
        raise ProbeError(f"no connection to {self.domain} port {self.port}: {_why(last)}")

    def get(self, path: str) -> tuple[int, str]:
        conn = _Pinned(self)
        try:
            conn.request("GET", path, headers={"User-Agent": "pcls-verify", "Accept": "*/*"})
            resp = conn.getresponse()
            body = resp.read(MAX_BODY + 1)
        finally:
            conn.close()
        return resp.status, body[:MAX_BODY].decode("utf-8", errors="replace")


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to the endpoint's own address, with SNI and Host the domain."""

    def __init__(self, ep: Endpoint) -> None:
        super().__init__(ep.domain, ep.port, timeout=ep.timeout, context=ep.context)
        self._ep = ep

    def connect(self) -> None:
        self.sock = self._ep.connect()


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if exc else "no address"


def check_tls(ep: Endpoint, now: float) -> Check:
    try:
        sock = ep.connect()
    except ssl.SSLCertVerificationError as exc:
        return Check("tls", FAIL, f"certificate not valid for {ep.domain}: {_why(exc)}")
    except (ssl.SSLError, OSError, ProbeError) as exc:
        return Check("tls", FAIL, f"no TLS session with {ep.domain}: {_why(exc) or exc}")
    try:
        cert = sock.getpeercert() or {}
        version = sock.version() or "TLS"
    finally:
        sock.close()
    expires = ssl.cert_time_to_seconds(str(cert.get("notAfter")))
    days = int((expires - now) // 86400)
    issuer = dict(x[0] for x in cert.get("issuer", ()) if x)
    by = issuer.get("organizationName") or issuer.get("commonName") or "unknown issuer"
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    detail = f"valid for {ep.domain}, {version}, issued by {by}, expires {when} ({days} days)"
    if days < DAYS_FAIL:
        return Check("tls", FAIL, detail + f"; under {DAYS_FAIL} days left")
    if days < DAYS_WARN:
        return Check("tls", WARN, detail + f"; under {DAYS_WARN} days left, renewal overdue")
    return Check("tls", OK, detail)


def check_page(ep: Endpoint) -> Check:
    try:
        status, body = ep.get("/")
    except (OSError, http.client.HTTPException, ProbeError) as exc:
        return Check("page", FAIL, f"GET https://{ep.domain}/: {_why(exc)}")
    if status != 200:
        return Check("page", FAIL, f"GET https://{ep.domain}/ answered {status}")
    found = next((m for m in PAGE_MARKERS if m in body), None)
    if found is None:
        return Check("page", FAIL, f"GET https://{ep.domain}/ is 200 but not the Jitsi Meet page")
    return Check("page", OK, f"GET https://{ep.domain}/ 200, the Jitsi Meet page ({found})")


_WS_RE = re.compile(r"""config\.websocket\s*=\s*((?:'[^'\n]*'|"[^"\n]*"|\s*\+\s*|subdir)+);""")


def websocket_url(config_js: str) -> str | None:
    """config.websocket as a browser gets it at the root path (subdir is '' there)."""
    m = _WS_RE.search(config_js)
    if not m:
        return None
    pieces = re.findall(r"""'([^']*)'|"([^"]*)\"""", m.group(1))
    return "".join(a or b for a, b in pieces)


def check_config(ep: Endpoint) -> Check:
    want = f"wss://{ep.domain}/xmpp-websocket"
    try:
        status, body = ep.get("/config.js")
    except (OSError, http.client.HTTPException, ProbeError) as exc:
        return Check("config", FAIL, f"GET /config.js: {_why(exc)}")
    if status != 200:
        return Check("config", FAIL, f"GET /config.js answered {status}")
    have = websocket_url(body)
    if have is None:
        return Check("config", FAIL, "config.js sets no websocket URL (XMPP websocket off?)")
    if have != want:
        return Check("config", FAIL, f"config.js points the websocket at {have}, not {want}")
    return Check("config", OK, f"config.js: websocket {want}")


# -- websocket (RFC 6455, client side) ---------------------------------------------------------


class WebSocket:
    """The client end of one websocket: masked frames out, unmasked frames in."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""

    @classmethod
    def open(
        cls, ep: Endpoint, path: str, protocol: str, deadline: float
    ) -> tuple[WebSocket, dict[str, str]]:
        sock = ep.connect()
        ws = cls(sock, deadline)
        try:
            headers = ws._handshake(ep, path, protocol)
        except BaseException:
            sock.close()
            raise
        return ws, headers

    def _handshake(self, ep: Endpoint, path: str, protocol: str) -> dict[str, str]:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        host = ep.domain if ep.port == PORT else f"{ep.domain}:{ep.port}"
        request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocol}\r\n"
            f"Origin: https://{ep.domain}\r\n"
            "User-Agent: pcls-verify\r\n\r\n"
        )
        self._send(request.encode("ascii"))
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEADER:
                raise ProbeError("websocket: response headers too long")
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(parts) < 2 or parts[1] != "101":
            raise ProbeError(f"websocket: {path.split('?')[0]} answered {' '.join(parts[1:])}")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("upgrade", "").lower() != "websocket":
            raise ProbeError("websocket: the upgrade was not to websocket")
        if headers.get("sec-websocket-accept") != accept:
            raise ProbeError("websocket: wrong Sec-WebSocket-Accept in the handshake")
        if headers.get("sec-websocket-protocol") != protocol:
            raise ProbeError(f"websocket: the server did not agree to the {protocol} subprotocol")
        return headers

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProbeError("timed out")
        return left

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)

    def _fill(self) -> None:
        self.sock.settimeout(self._remaining())
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise ProbeError("timed out waiting for the server") from None
        if not chunk:
            raise ProbeError("the server closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode: int, payload: bytes) -> None:
        self._send(encode_frame(opcode, payload, os.urandom(4)))

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode("utf-8"))

    def recv_text(self) -> str:
        """The next text message; pings are answered, fragments joined, a close is an error."""
        parts: list[bytes] = []
        size = 0
        while True:
            b0, b1 = self._take(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            if b0 & 0x70:
                raise ProbeError("websocket: reserved bits set in a frame")
            if b1 & 0x80:
                raise ProbeError("websocket: the server sent a masked frame")
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._take(2), "big")
            elif n == 127:
                n = int.from_bytes(self._take(8), "big")
            if opcode >= 0x8 and (not fin or n > 125):
                raise ProbeError("websocket: malformed control frame")
            if size + n > MAX_MESSAGE:
                raise ProbeError("websocket: message larger than 256 KiB")
            payload = self._take(n)
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", errors="replace")
                raise ProbeError(f"websocket closed by the server ({code} {reason})".strip())
            if (opcode == 0x0) != bool(parts):
                raise ProbeError("websocket: unexpected continuation frame")
            if opcode not in (0x0, 0x1):
                raise ProbeError("websocket: binary frame where XMPP sends text")
            parts.append(payload)
            size += n
            if fin:
                return b"".join(parts).decode("utf-8")

    def close(self) -> None:
        try:
            self.send_frame(0x8, (1000).to_bytes(2, "big"))
        except (OSError, ProbeError):
            pass
        finally:
            self.sock.close()


def encode_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final frame from the client, masked with the 4-byte `mask` (RFC 6455 5.2, 5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# -- XMPP over websocket (RFC 7395) -----------------------------------------------------------


def _element(text: str) -> ET.Element:
    if "<!" in text:  # no DTDs, entities or comments in XMPP (RFC 6120 11.1)
        raise ProbeError("xmpp: the server sent XML with a DTD or comment")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ProbeError(f"xmpp: not one XML element per message ({exc})") from None


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _condition(el: ET.Element) -> str:
    """The defined condition of a stream error or SASL failure, with its text."""
    names = [c.tag.split("}")[-1] for c in el if c.tag.split("}")[-1] != "text"]
    text = next((c.text for c in el if c.tag.split("}")[-1] == "text" and c.text), "")
    return ": ".join(p for p in (names[0] if names else "unknown", text) if p)


class XmppSession:
    def __init__(self, ws: WebSocket, xmpp_domain: str) -> None:
        self.ws = ws
        self.xmpp_domain = xmpp_domain

    def _next(self) -> ET.Element:
        el = _element(self.ws.recv_text())
        if el.tag == _tag(NS_STREAMS, "error"):
            raise ProbeError(f"xmpp: stream error {_condition(el)}")
        if el.tag == _tag(NS_FRAMING, "close"):
            raise ProbeError("xmpp: the server closed the stream")
        return el

    def open_stream(self) -> ET.Element:
        """Send <open/>; the server's <open/> and then its stream features."""
        self.ws.send_text(f'<open xmlns="{NS_FRAMING}" to="{self.xmpp_domain}" version="1.0"/>')
        opened = self._next()
        if opened.tag != _tag(NS_FRAMING, "open"):
            raise ProbeError(f"xmpp: expected <open/>, got <{opened.tag.split('}')[-1]}>")
        if opened.get("from") not in (None, self.xmpp_domain):
            raise ProbeError(f"xmpp: stream from {opened.get('from')}, not {self.xmpp_domain}")
        features = self._next()
        if features.tag != _tag(NS_STREAMS, "features"):
            raise ProbeError("xmpp: no stream features after <open/>")
        return features

    def authenticate(self, features: ET.Element) -> tuple[bool, str]:
        """SASL ANONYMOUS: (True, '') on success, (False, condition) when refused."""
        mechs = [(m.text or "").strip() for m in features.iter(_tag(NS_SASL, "mechanism"))]
        if "ANONYMOUS" not in mechs:
            return False, f"SASL ANONYMOUS not offered (offered: {', '.join(mechs) or 'none'})"
        self.ws.send_text(f'<auth xmlns="{NS_SASL}" mechanism="ANONYMOUS"/>')
        reply = self._next()
        if reply.tag == _tag(NS_SASL, "success"):
            return True, ""
        if reply.tag == _tag(NS_SASL, "failure"):
            return False, _condition(reply)
        raise ProbeError(f"xmpp: unexpected <{reply.tag.split('}')[-1]}> after SASL auth")

    def bind(self, features: ET.Element) -> str:
        if features.find(_tag(NS_BIND, "bind")) is None:
            raise ProbeError("xmpp: resource binding not offered after authentication")
        self.ws.send_text(
            f'<iq xmlns="{NS_CLIENT}" type="set" id="pcls-bind">'
            f'<bind xmlns="{NS_BIND}"><resource>{RESOURCE}</resource></bind></iq>'
        )
        for _ in range(20):  # other stanzas may come first (stream management, presence)
            el = self._next()
            if el.tag != _tag(NS_CLIENT, "iq") or el.get("id") != "pcls-bind":
                continue
            if el.get("type") != "result":
                err = el.find(_tag(NS_CLIENT, "error"))
                raise ProbeError(f"xmpp: bind refused ({_condition(err) if err else 'error'})")
            jid = el.findtext(f"{_tag(NS_BIND, 'bind')}/{_tag(NS_BIND, 'jid')}")
            if not jid:
                raise ProbeError("xmpp: bind answered without a JID")
            return jid
        raise ProbeError("xmpp: no answer to the bind request")

    def end(self) -> None:
        with contextlib.suppress(OSError, ProbeError):
            self.ws.send_text(f'<close xmlns="{NS_FRAMING}"/>')
        self.ws.close()


@dataclass(frozen=True)
class Login:
    jid: str  # the bound JID, or "" when refused
    refused: str  # why authentication was refused, or ""
    seconds: float


def xmpp_login(ep: Endpoint, xmpp_domain: str, token: str | None, timeout: float) -> Login:
    """Open, authenticate (ANONYMOUS) and bind; a refusal is a result, anything else raises."""
    started = time.monotonic()
    path = "/xmpp-websocket" + (f"?token={token}" if token else "")
    ws, _ = WebSocket.open(ep, path, "xmpp", started + timeout)
    session = XmppSession(ws, xmpp_domain)
    try:
        features = session.open_stream()
        ok, why = session.authenticate(features)
        if not ok:
            return Login("", why, time.monotonic() - started)
        jid = session.bind(session.open_stream())
        return Login(jid, "", time.monotonic() - started)
    finally:
        session.end()


def check_xmpp(
    ep: Endpoint, xmpp_domain: str, token: str | None, timeout: float
) -> tuple[Check, bool]:
    """The xmpp line, and whether the session came up."""
    how = "SASL ANONYMOUS with a token" if token else "SASL ANONYMOUS"
    try:
        login = xmpp_login(ep, xmpp_domain, token, timeout)
    except (OSError, ssl.SSLError, ProbeError, UnicodeDecodeError) as exc:
        return Check("xmpp", FAIL, f"wss://{ep.domain}/xmpp-websocket: {_why(exc)}"), False
    if login.refused:
        return Check("xmpp", FAIL, f"{how} refused: {login.refused}"), False
    return (
        Check(
            "xmpp",
            OK,
            f"websocket session: stream, {how}, bound {login.jid} ({login.seconds:.2f} s)",
        ),
        True,
    )


def check_auth(ep: Endpoint, xmpp_domain: str, auth: str, timeout: float) -> Check:
    if auth != "jwt":
        return Check(
            "auth",
            WARN,
            'auth = "open": anyone on the internet can open rooms and spend egress; '
            'set jitsi.auth = "jwt" and hand out links with pcls token',
        )
    try:
        login = xmpp_login(ep, xmpp_domain, None, timeout)
    except (OSError, ssl.SSLError, ProbeError, UnicodeDecodeError) as exc:
        return Check("auth", FAIL, f"a session without a token could not be tried: {_why(exc)}")
    if login.refused:
        return Check("auth", OK, f"a session without a token is refused: {login.refused}")
    return Check("auth", FAIL, f"a session without a token was let in as {login.jid}")


# -- the whole walk ---------------------------------------------------------------------------


def not_checked(names: Iterable[str], why: str) -> list[Check]:
    return [Check(n, FAIL, f"not checked: {why}") for n in names]


def verify(
    domain: str,
    *,
    alb_dns: str | None,
    auth: str,
    xmpp_domain: str,
    token: Callable[[], str] | None = None,
    bridges: Callable[[], Check] | None = None,
    resolve: Callable[[str], list[str]] = system_resolve,
    port: int = PORT,
    context: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT,
    now: Callable[[], float] = time.time,
) -> list[Check]:
    """Every check, in order. `token` mints a token for the xmpp check of a jwt stack."""
    checks: list[Check] = []
    dns, addrs = check_dns(domain, alb_dns, resolve)
    checks.append(dns)
    web = ("tls", "page", "config", "xmpp", "auth")
    if not addrs:
        checks += not_checked(web, f"{domain} does not resolve")
    else:
        ep = Endpoint(domain, addrs, port, context or tls_context(), timeout)
        tls = check_tls(ep, now())
        checks.append(tls)
        if tls.status == FAIL:
            checks += not_checked(web[1:], "no trusted TLS session")
        else:
            checks.append(check_page(ep))
            checks.append(check_config(ep))
            try:
                minted = token() if token is not None else None
            except ProbeError as exc:
                checks.append(Check("xmpp", FAIL, f"no token to log in with: {exc}"))
                checks += not_checked(["auth"], "no XMPP session")
            else:
                xmpp, up = check_xmpp(ep, xmpp_domain, minted, timeout)
                checks.append(xmpp)
                if up:
                    checks.append(check_auth(ep, xmpp_domain, auth, timeout))
                else:
                    checks += not_checked(["auth"], "no XMPP session")
    if bridges is not None:
        checks.append(bridges())
    return checks


@dataclass(frozen=True)
class XmppShare:
    """The lowest XmppConnected the bridge guards published in the newest minute with data."""

    minimum: float
    samples: int
    at: float  # epoch seconds of that minute


def bridge_check(services: dict[str, dict[str, Any]], xmpp: XmppShare | None = None) -> Check:
    """The bridges as ECS counts them, and as their guards see their XMPP connections."""
    jvb = services.get("jvb")
    # the signal shards (shard-a, shard-b, ...), counted together; v1's one `signal` service
    signals = [s for n, s in sorted(services.items()) if n.startswith("shard-") or n == "signal"]
    if jvb is None:
        return Check("bridges", FAIL, "the stack has no jvb service in ECS")
    running, desired = int(jvb.get("runningCount") or 0), int(jvb.get("desiredCount") or 0)
    sig = (
        f"signal {sum(int(s.get('runningCount') or 0) for s in signals)}/"
        f"{sum(int(s.get('desiredCount') or 0) for s in signals)}"
        if signals
        else "no signal service"
    )
    counts = f"jvb {running}/{desired} running, {sig}"
    if xmpp is None:
        detail = f"{counts} (ECS task counts; no XmppConnected datapoint in the last 10 minutes)"
    else:
        when = time.strftime("%H:%M UTC", time.gmtime(xmpp.at))
        detail = (
            f"{counts}; XmppConnected minimum {xmpp.minimum:g} over {xmpp.samples} "
            f"report(s) at {when}"
        )
    if desired == 0:
        return Check("bridges", WARN, detail + "; no bridge is wanted: calls of 3+ fail")
    if running < desired:
        return Check("bridges", FAIL, detail)
    if xmpp is not None and xmpp.minimum < 1:
        return Check("bridges", FAIL, detail + ": a bridge is not connected to every shard")
    return Check("bridges", OK, detail)


def xmpp_share(cloudwatch: Any, stack: str, now: float) -> XmppShare | None:
    """The newest minute of the guards' XmppConnected metric (pcls/sidecar_container.py)."""
    from pcls.sidecar_container import METRIC_DIMENSION, METRIC_NAMESPACE, METRIC_XMPP

    end = dt.datetime.fromtimestamp(now, dt.UTC) + dt.timedelta(minutes=1)  # the current minute
    reply = cloudwatch.get_metric_statistics(
        Namespace=METRIC_NAMESPACE,
        MetricName=METRIC_XMPP,
        Dimensions=[{"Name": METRIC_DIMENSION, "Value": stack}],
        StartTime=end - dt.timedelta(minutes=11),
        EndTime=end,
        Period=60,
        Statistics=["Minimum", "SampleCount"],
    )
    points = sorted(reply.get("Datapoints", []), key=lambda p: p["Timestamp"])
    if not points:
        return None
    last = points[-1]
    return XmppShare(
        float(last["Minimum"]), int(last.get("SampleCount", 0)), last["Timestamp"].timestamp()
    )


# -- the command ------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:PORT' or '[::1]:PORT' (the tests' stand-in for the domain's addresses)."""
    from pcls.errors import ConfigError

    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
        number = int(port)
    except ValueError:
        loopback, number = False, 0
    if not loopback or not 0 < number < 65536:
        raise ConfigError(f"--address: {text!r} is not allowed; expected 127.0.0.1:PORT")
    return host, number


def run(s: Any, as_json: bool, address: str | None = None) -> int:
    """`pcls verify`: print one line per check (or JSON); exit 0 when none failed, else 1."""
    import botocore.exceptions

    from pcls import jitsi
    from pcls import token as tokens
    from pcls.aws import describe_error
    from pcls.errors import EXIT_AWS, EXIT_OK
    from pcls.steps.loadbalancer import find_alb
    from pcls.steps.services import describe_all

    cfg = s.cfg
    resolve, port = system_resolve, PORT
    if address is not None:
        host, port = parse_address(address)
        resolve = loopback_resolver(host)
    ident = s.aws.identity()
    s.ledger.check_target(ident["account"], s.aws.region)
    s.aws.read_only = True  # verify looks; it writes nothing in AWS
    alb = find_alb(s.ctx)

    mint = None
    if cfg.jitsi.auth == "jwt":

        def mint() -> str:
            try:
                token, _ = tokens.mint(
                    s.aws,
                    stack=cfg.stack.name,
                    app_id=cfg.jitsi.jwt_app_id,
                    xmpp_domain=jitsi.XMPP_DOMAIN,
                    room=RESOURCE,
                    ttl=tokens.TTL_MIN * 5,
                )
            except tokens.TokenError as exc:
                raise ProbeError(str(exc)) from None
            return token

    def bridges() -> Check:
        try:
            services = describe_all(s.ctx)
        except botocore.exceptions.ClientError as exc:
            return Check("bridges", FAIL, f"DescribeServices: {describe_error(exc)}")
        try:
            share = xmpp_share(s.aws.client("cloudwatch"), cfg.stack.name, time.time())
        except botocore.exceptions.ClientError as exc:
            check = bridge_check(services)
            why = f"; GetMetricStatistics: {describe_error(exc)}"
            return Check(check.name, check.status, check.detail + why)
        return bridge_check(services, share)

    checks = verify(
        cfg.stack.domain,
        alb_dns=alb.get("DNSName") if alb else None,
        auth=cfg.jitsi.auth,
        xmpp_domain=jitsi.XMPP_DOMAIN,
        token=mint,
        bridges=bridges,
        resolve=resolve,
        port=port,
    )
    if as_json:
        print(json.dumps(as_json_doc(cfg.stack.domain, checks), indent=2))
    else:
        for c in checks:
            print(c.line())
    return EXIT_OK if passed(checks) else EXIT_AWS

"""pcls verify against real servers on 127.0.0.1.

Prosody from Debian's package (scripts/test installs it) runs as the current user from a
config written here: a VirtualHost with anonymous authentication and mod_websocket on a free
HTTP port. A second prosody whose VirtualHost offers no ANONYMOUS login stands for a jwt stack
without a token. In front of them a small TLS reverse proxy plays the web container behind the
load balancer: it serves / and /config.js as the web image renders them and forwards
/xmpp-websocket to prosody (with a token that the test's copy of prosody's checks accepts, to
the anonymous one; else to the closed one). Certificates come from a CA made here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import selectors
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pcls import jitsi
from pcls import token as tokens
from pcls import verify as v
from tests.harness import Harness
from tests.test_token import APP_ID, Refused, prosody_accepts

DOMAIN = "meet.example.com"
SECRET = "a7" * 32
INDEX = (
    "<!DOCTYPE html><html><head><title>Jitsi Meet</title>"
    '<script src="config.js?v=1"></script></head><body></body></html>'
)
CONFIG_JS = (
    "// Jitsi Meet configuration.\nvar config = {};\nconfig.hosts = {};\n"
    "config.hosts.domain = 'meet.jitsi';\nvar subdir = '';\nvar subdomain = '';\n"
    "config.bosh = 'https://@D@/' + subdir + 'http-bind';\n"
    "config.websocket = 'wss://@D@/' + subdir + 'xmpp-websocket';\n"
    "config.bridgeChannel = {\n    preferSctp: true\n};\n"
)


# -- certificates -----------------------------------------------------------------------------


class Pki:
    """A CA and server certificates it signs, written as PEM files."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.x509, self.hashes, self.ec, self.oid = x509, hashes, ec, NameOID
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = self._name("pcls test CA")
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(self._usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self._write("ca.pem", self.cert)

    def _name(self, cn: str) -> Any:
        oid = self.oid
        return self.x509.Name(
            [
                self.x509.NameAttribute(oid.ORGANIZATION_NAME, "pcls tests"),
                self.x509.NameAttribute(oid.COMMON_NAME, cn),
            ]
        )

    def _usage(self, ca: bool) -> Any:
        return self.x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    def _write(self, name: str, cert: Any, key: Any = None) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.root / name
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if key is not None:
            pem += key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        path.write_bytes(pem)
        return path

    def server(
        self,
        name: str,
        host: str = DOMAIN,
        days: float = 90,
        ago: float = 1,
        self_signed: bool = False,
    ) -> Path:
        """cert + key PEM for `host`, valid from `ago` days back for `days` days."""
        x509 = self.x509
        key = self.ec.generate_private_key(self.ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = self._name(host)
        issuer_key, issuer = (key, subject) if self_signed else (self.key, self.cert.subject)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=ago))
            .not_valid_after(now - dt.timedelta(days=ago) + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(self._usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        return self._write(name, builder.sign(issuer_key, self.hashes.SHA256()), key)


# -- prosody ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prosody exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"prosody not listening on {port}: {log.read_text()[-2000:]}")


def start_prosody(root: Path, authentication: str) -> tuple[subprocess.Popen[bytes], int]:
    root.mkdir(parents=True)
    (root / "data").mkdir()
    (root / "certs").mkdir()
    port = free_port()
    cfg = root / "prosody.cfg.lua"
    cfg.write_text(
        ("run_as_root = true\n" if os.geteuid() == 0 else "") + f'pidfile = "{root}/prosody.pid"\n'
        f'data_path = "{root}/data"\n'
        f'certificates = "{root}/certs"\n'
        f'log = {{ debug = "{root}/prosody.log" }}\n'
        'modules_enabled = { "saslauth", "websocket" }\n'
        'modules_disabled = { "s2s", "posix" }\n'
        "c2s_ports = {}\ns2s_ports = {}\ncomponent_ports = {}\n"
        f'http_ports = {{ {port} }}\nhttp_interfaces = {{ "127.0.0.1" }}\n'
        "https_ports = {}\nhttps_interfaces = {}\n"
        "consider_websocket_secure = true\n"
        f'VirtualHost "{jitsi.XMPP_DOMAIN}"\n'
        f'    authentication = "{authentication}"\n'
    )
    log = root / "prosody.log"
    log.touch()
    proc = subprocess.Popen(
        ["prosody", "--config", str(cfg), "-F"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    try:
        wait_listening(port, proc, log, timeout=20)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    if shutil.which("prosody") is None:
        why = "prosody is not installed (scripts/test installs Debian's package with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    root = tmp_path_factory.mktemp("prosody")
    procs = []
    ports = {}
    try:
        for name, auth in (("anonymous", "anonymous"), ("closed", "internal_hashed")):
            proc, ports[name] = start_prosody(root / name, auth)
            procs.append(proc)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the web front (TLS reverse proxy) --------------------------------------------------------


class Front(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cert: Path, upstream: dict[str, int], secret: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert)
        self.upstream = upstream
        self.secret = secret  # None: an open stack (every websocket goes to the anonymous host)
        self.config_js = CONFIG_JS.replace("@D@", DOMAIN)
        self.index = INDEX
        self.seen: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def route(self, path: str) -> int:
        """The prosody a websocket goes to: a valid token (or an open stack) → anonymous."""
        if self.secret is None:
            return self.upstream["anonymous"]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        token = (query.get("token") or [""])[0]
        try:
            prosody_accepts(token, self.secret, now=int(time.time()), room=v.RESOURCE)
        except (Refused, ValueError, KeyError, IndexError):
            return self.upstream["closed"]
        return self.upstream["anonymous"]


class _Handler(socketserver.BaseRequestHandler):
    server: Front

    def handle(self) -> None:
        try:
            conn = self.server.tls.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate
        try:
            self._serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _serve(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        _, path, _ = lines[0].split(" ", 2)
        self.server.seen.append(path)
        if path.startswith("/xmpp-websocket"):
            return self._websocket(conn, lines, rest, path)
        body, ctype = {
            "/": (self.server.index, "text/html"),
            "/config.js": (self.server.config_js, "application/javascript"),
        }.get(path, ("not found", "text/plain"))
        status = "200 OK" if path in ("/", "/config.js") else "404 Not Found"
        data = body.encode()
        conn.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )

    def _websocket(self, conn: ssl.SSLSocket, lines: list[str], rest: bytes, path: str) -> None:
        port = self.server.route(path)
        up = socket.create_connection(("127.0.0.1", port), timeout=10)
        headers = [h for h in lines[1:] if not h.lower().startswith("host:")]
        # as the web container's nginx: Host is the XMPP domain
        request = "\r\n".join([lines[0], f"Host: {jitsi.XMPP_DOMAIN}", *headers]) + "\r\n\r\n"
        up.sendall(request.encode("iso-8859-1") + rest)

        # One thread for both directions: an SSL socket must not be read and written at once.
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, conn)
        try:
            while True:
                ready = (
                    [(conn, up)]
                    if conn.pending()
                    else [(key.fileobj, key.data) for key, _ in sel.select(timeout=10)]
                )
                if not ready:
                    return
                for src, dst in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.sendall(data)
        finally:
            sel.close()
            up.close()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def front_factory(prosody: dict[str, int], pki: Pki) -> Iterator[Any]:
    fronts: list[Front] = []

    def make(cert: Path | None = None, secret: str | None = None) -> Front:
        front = Front(cert or pki.server("good.pem"), prosody, secret)
        threading.Thread(target=front.serve_forever, daemon=True).start()
        fronts.append(front)
        return front

    yield make
    for front in fronts:
        front.shutdown()
        front.server_close()


def run_verify(front: Front, pki: Pki, **kw: Any) -> list[v.Check]:
    args: dict[str, Any] = {
        "alb_dns": "meet-alb-1.eu-central-1.elb.amazonaws.com",
        "auth": "open",
        "xmpp_domain": jitsi.XMPP_DOMAIN,
        "resolve": v.loopback_resolver("127.0.0.1"),
        "port": front.port,
        "context": v.tls_context(str(pki.ca_file)),
        "timeout": 10.0,
    }
    args.update(kw)
    return v.verify(DOMAIN, **args)


def by_name(checks: list[v.Check]) -> dict[str, v.Check]:
    return {c.name: c for c in checks}


# -- against the local servers ----------------------------------------------------------------


def test_an_open_stack_passes_with_a_warning_about_open_rooms(front_factory, pki) -> None:
    front = front_factory()
    checks = run_verify(front, pki)
    assert [c.name for c in checks] == ["dns", "tls", "page", "config", "xmpp", "auth"]
    got = by_name(checks)
    assert all(got[n].status == v.OK for n in ("dns", "tls", "page", "config", "xmpp")), checks
    assert got["tls"].detail.startswith(f"valid for {DOMAIN}, TLSv1.3, issued by pcls tests")
    assert "(88 days)" in got["tls"].detail or "(89 days)" in got["tls"].detail
    assert got["config"].detail == f"config.js: websocket wss://{DOMAIN}/xmpp-websocket"
    assert "SASL ANONYMOUS, bound " in got["xmpp"].detail
    assert f"@{jitsi.XMPP_DOMAIN}/{v.RESOURCE}" in got["xmpp"].detail
    assert got["auth"].status == v.WARN and "anyone on the internet" in got["auth"].detail
    assert v.passed(checks)
    assert front.seen == ["/", "/config.js", "/xmpp-websocket"]


def test_a_jwt_stack_logs_in_with_a_token_and_refuses_a_session_without(front_factory, pki) -> None:
    front = front_factory(secret=SECRET)

    def mint() -> str:
        payload = tokens.claims(
            app_id=APP_ID,
            xmpp_domain=jitsi.XMPP_DOMAIN,
            room=v.RESOURCE,
            ttl=300,
            moderator=False,
            name=None,
            now=int(time.time()),
        )
        return tokens.sign(payload, SECRET)

    checks = run_verify(front, pki, auth="jwt", token=mint)
    print("\n".join(c.line() for c in checks))
    got = by_name(checks)
    assert got["xmpp"].status == v.OK, got
    assert "SASL ANONYMOUS with a token" in got["xmpp"].detail
    assert got["auth"].status == v.OK, got
    assert got["auth"].detail.startswith("a session without a token is refused: SASL ANONYMOUS")
    assert front.seen[-2].startswith("/xmpp-websocket?token=ey")
    assert front.seen[-1] == "/xmpp-websocket"


def test_a_jwt_stack_that_lets_anyone_in_fails(front_factory, pki) -> None:
    front = front_factory()  # every websocket reaches the anonymous host
    got = by_name(run_verify(front, pki, auth="jwt", token=lambda: "not-a-token"))
    assert got["auth"].status == v.FAIL
    assert got["auth"].detail.startswith("a session without a token was let in as ")


def test_a_refused_login_fails_the_xmpp_check(front_factory, pki) -> None:
    front = front_factory(secret=SECRET)
    got = by_name(run_verify(front, pki, auth="jwt", token=lambda: "bad.token.here"))
    assert got["xmpp"].status == v.FAIL
    assert got["xmpp"].detail.startswith(
        "SASL ANONYMOUS with a token refused: SASL ANONYMOUS not offered (offered: "
    )
    assert got["auth"] == v.Check("auth", v.FAIL, "not checked: no XMPP session")


def test_no_token_to_mint_fails_the_xmpp_check(front_factory, pki) -> None:
    def mint() -> str:
        raise v.ProbeError("token: access denied reading /pcls/meet/JWT_APP_SECRET")

    got = by_name(run_verify(front_factory(), pki, auth="jwt", token=mint))
    assert got["xmpp"].detail == (
        "no token to log in with: token: access denied reading /pcls/meet/JWT_APP_SECRET"
    )


@pytest.mark.parametrize(
    ("cert", "detail"),
    [
        ({"days": 30, "ago": 40}, "certificate has expired"),
        ({"host": "other.example.com"}, "Hostname mismatch"),
        ({"self_signed": True}, "self-signed certificate"),
    ],
)
def test_a_certificate_a_browser_refuses_fails_and_stops_there(
    front_factory, pki, cert: dict[str, Any], detail: str
) -> None:
    front = front_factory(pki.server("bad.pem", **cert))
    checks = run_verify(front, pki)
    got = by_name(checks)
    assert got["tls"].status == v.FAIL and detail in got["tls"].detail, got["tls"]
    assert got["tls"].detail.startswith(f"certificate not valid for {DOMAIN}: ")
    for name in ("page", "config", "xmpp", "auth"):
        assert got[name] == v.Check(name, v.FAIL, "not checked: no trusted TLS session")
    assert front.seen == [] and not v.passed(checks)


@pytest.mark.parametrize(("days_left", "status"), [(10, v.FAIL), (20, v.WARN), (31, v.OK)])
def test_a_certificate_near_expiry_warns_then_fails(
    front_factory, pki, days_left: int, status: str
) -> None:
    front = front_factory(pki.server("short.pem", days=days_left + 0.5, ago=0))
    tls = by_name(run_verify(front, pki))["tls"]
    assert tls.status == status and f"({days_left} days)" in tls.detail, tls


def test_a_config_for_another_host_fails(front_factory, pki) -> None:
    front = front_factory()
    front.config_js = CONFIG_JS.replace("@D@", "localhost:8443")
    got = by_name(run_verify(front, pki))
    assert got["config"] == v.Check(
        "config",
        v.FAIL,
        f"config.js points the websocket at wss://localhost:8443/xmpp-websocket, not "
        f"wss://{DOMAIN}/xmpp-websocket",
    )
    front.config_js = "var config = {};\n"
    assert "sets no websocket URL" in by_name(run_verify(front, pki))["config"].detail


def test_a_page_that_is_not_jitsi_fails(front_factory, pki) -> None:
    front = front_factory()
    front.index = "<html><title>Welcome to nginx!</title></html>"
    assert by_name(run_verify(front, pki))["page"].detail == (
        f"GET https://{DOMAIN}/ is 200 but not the Jitsi Meet page"
    )


def test_nothing_listening_fails_tls_and_stops(pki) -> None:
    port = free_port()
    checks = v.verify(
        DOMAIN,
        alb_dns="alb",
        auth="open",
        xmpp_domain=jitsi.XMPP_DOMAIN,
        resolve=v.loopback_resolver("127.0.0.1"),
        port=port,
        context=v.tls_context(str(pki.ca_file)),
        timeout=2.0,
    )
    assert checks[1] == v.Check(
        "tls",
        v.FAIL,
        f"no TLS session with {DOMAIN}: no connection to {DOMAIN} port {port}: Connection refused",
    )


# -- the command, against moto and the local servers -------------------------------------------


def test_cli_verify_after_up(harness: Harness, front_factory, pki, capsys, monkeypatch) -> None:
    assert harness.up().ok
    front = front_factory()
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    res = harness.cli("verify", "--address", f"127.0.0.1:{front.port}", capsys=capsys)
    lines = res.out.splitlines()
    with capsys.disabled():  # shown with pytest -s
        print("\n" + res.out)
    assert res.code == 0, res.out + res.err
    assert [line.split()[:2] for line in lines] == [
        ["ok", "dns"],
        ["ok", "tls"],
        ["ok", "page"],
        ["ok", "config"],
        ["ok", "xmpp"],
        ["warn", "auth"],
        ["ok", "bridges"],
    ]
    assert lines[0].startswith(f"ok   dns      {DOMAIN} → 127.0.0.1, the load balancer meet-alb")
    assert lines[-1] == (
        "ok   bridges  jvb 2/2 running, signal 2/2 (ECS task counts; no XmppConnected "
        "datapoint in the last 10 minutes)"
    )
    # the bridge guards' metric, as they publish it (EMF lines become these datapoints)
    harness.client("cloudwatch").put_metric_data(
        Namespace="pcls/Jitsi",
        MetricData=[
            {
                "MetricName": "XmppConnected",
                "Dimensions": [{"Name": "Stack", "Value": "meet"}],
                "Value": value,
                "Unit": "None",
            }
            for value in (1.0, 0.5)
        ],
    )
    res = harness.cli("verify", "--address", f"127.0.0.1:{front.port}", capsys=capsys)
    assert res.code == 1
    assert res.out.splitlines()[-1].startswith(
        "FAIL bridges  jvb 2/2 running, signal 2/2; XmppConnected minimum 0.5 over 2 report(s) at "
    )
    assert res.out.splitlines()[-1].endswith(": a bridge is not connected to every shard")
    res = harness.cli("verify", "--json", "--address", f"127.0.0.1:{front.port}", capsys=capsys)
    doc = json.loads(res.out)
    assert res.code == 1 and doc["ok"] is False and doc["domain"] == DOMAIN
    assert [c["status"] for c in doc["checks"]] == ["ok"] * 5 + ["warn", "FAIL"]


def test_cli_verify_jwt_mints_its_token_from_the_stacks_secret(
    harness: Harness, front_factory, pki, capsys, monkeypatch
) -> None:
    harness.write_config(f'[jitsi]\nauth = "jwt"\njwt_app_id = "{APP_ID}"\n')
    assert harness.up().ok
    secret = harness.client("ssm").get_parameter(
        Name="/pcls/meet/JWT_APP_SECRET", WithDecryption=True
    )["Parameter"]["Value"]
    front = front_factory(secret=secret)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    res = harness.cli("verify", "--address", f"127.0.0.1:{front.port}", capsys=capsys)
    with capsys.disabled():  # shown with pytest -s
        print("\n" + res.out)
    assert res.code == 0, res.out + res.err
    assert [line.split()[0] for line in res.out.splitlines()] == ["ok"] * 7
    assert secret not in res.out + res.err


def test_cli_verify_fails_without_a_stack(
    harness: Harness, front_factory, pki, capsys, monkeypatch
) -> None:
    front = front_factory()
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    res = harness.cli("verify", "--address", f"127.0.0.1:{front.port}", capsys=capsys)
    assert res.code == 1
    lines = res.out.splitlines()
    assert lines[0] == f"FAIL dns      {DOMAIN} → 127.0.0.1; the stack has no load balancer in AWS"
    assert lines[-1] == "FAIL bridges  the stack has no jvb service in ECS"


@pytest.mark.parametrize("address", ["10.0.0.1:443", "meet.example.com:443", "127.0.0.1:0", "x"])
def test_cli_address_is_loopback_only(harness: Harness, capsys, address: str) -> None:
    res = harness.cli("verify", "--address", address, capsys=capsys)
    assert res.code == 2 and res.out == ""
    assert res.err.strip() == (
        f"error: --address: {address!r} is not allowed; expected 127.0.0.1:PORT"
    )


# -- pieces -----------------------------------------------------------------------------------


def test_client_frames_are_masked_as_rfc_6455_shows() -> None:
    # RFC 6455 5.7: a single-frame masked text message "Hello"
    frame = v.encode_frame(0x1, b"Hello", bytes.fromhex("37fa213d"))
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")
    assert v.encode_frame(0x2, b"x" * 200, b"\0\0\0\0")[:4] == bytes([0x82, 0xFE, 0, 200])
    assert v.encode_frame(0x2, b"x" * 70000, b"\0\0\0\0")[:10] == (
        bytes([0x82, 0xFF]) + (70000).to_bytes(8, "big")
    )


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (CONFIG_JS.replace("@D@", DOMAIN), f"wss://{DOMAIN}/xmpp-websocket"),
        ("config.websocket = 'wss://m.example/xmpp-websocket';", "wss://m.example/xmpp-websocket"),
        (
            'config.websocket = "wss://m.example/" + subdir + "xmpp-websocket";',
            "wss://m.example/xmpp-websocket",
        ),
        ("config.bosh = 'https://m.example/http-bind';", None),
    ],
)
def test_the_websocket_url_is_read_as_the_web_image_writes_it(text: str, url: str | None) -> None:
    assert v.websocket_url(text) == url


def resolver(table: dict[str, list[str]]) -> Any:
    return lambda host: table.get(host, [])


@pytest.mark.parametrize(
    ("table", "status", "detail"),
    [
        (
            {DOMAIN: ["192.0.2.1"], "alb": ["192.0.2.1", "192.0.2.2"]},
            v.OK,
            f"{DOMAIN} → 192.0.2.1, the load balancer alb",
        ),
        (
            {
                DOMAIN: ["192.0.2.1", "2001:db8::1"],
                "alb": ["192.0.2.1"],
                "dualstack.alb": ["192.0.2.1", "2001:db8::1"],
            },
            v.OK,
            f"{DOMAIN} → 192.0.2.1, 2001:db8::1, the load balancer alb",
        ),
        (
            {DOMAIN: ["192.0.2.1", "198.51.100.7"], "alb": ["192.0.2.1"]},
            v.WARN,
            f"{DOMAIN} → 192.0.2.1, 198.51.100.7; 198.51.100.7 not among alb's addresses",
        ),
        (
            {DOMAIN: ["198.51.100.7"], "alb": ["192.0.2.1"]},
            v.FAIL,
            f"{DOMAIN} → 198.51.100.7, not the load balancer alb (→ 192.0.2.1)",
        ),
        ({"alb": ["192.0.2.1"]}, v.FAIL, f"{DOMAIN} does not resolve"),
    ],
)
def test_the_name_must_resolve_to_the_load_balancer(
    table: dict[str, list[str]], status: str, detail: str
) -> None:
    check, _ = v.check_dns(DOMAIN, "alb", resolver(table))
    assert check == v.Check("dns", status, detail)


def test_a_name_that_does_not_resolve_stops_every_network_check() -> None:
    checks = v.verify(
        DOMAIN, alb_dns="alb", auth="open", xmpp_domain="meet.jitsi", resolve=resolver({})
    )
    assert [c.status for c in checks] == [v.FAIL] * 6
    assert checks[1].detail == f"not checked: {DOMAIN} does not resolve"


@pytest.mark.parametrize(
    ("jvb", "share", "status", "tail"),
    [
        ({"runningCount": 2, "desiredCount": 2}, None, v.OK, "in the last 10 minutes)"),
        ({"runningCount": 2, "desiredCount": 2}, 1.0, v.OK, "over 3 report(s) at 08:00 UTC"),
        ({"runningCount": 2, "desiredCount": 2}, 0.5, v.FAIL, "not connected to every shard"),
        ({"runningCount": 1, "desiredCount": 2}, None, v.FAIL, "in the last 10 minutes)"),
        ({"runningCount": 0, "desiredCount": 0}, None, v.WARN, "calls of 3+ fail"),
    ],
)
def test_bridges_are_counted_by_ecs_and_by_their_xmpp_share(
    jvb: dict[str, int], share: float | None, status: str, tail: str
) -> None:
    xmpp = None if share is None else v.XmppShare(share, 3, 1_800_000_000)
    check = v.bridge_check({"jvb": jvb, "signal": {"runningCount": 1, "desiredCount": 1}}, xmpp)
    assert check.status == status and check.detail.endswith(tail), check
    assert check.detail.startswith(f"jvb {jvb['runningCount']}/{jvb['desiredCount']} running")


def test_system_resolver_reads_literals_without_a_lookup() -> None:
    assert v.system_resolve("127.0.0.1") == ["127.0.0.1"]
    assert v.system_resolve("::1") == ["::1"]

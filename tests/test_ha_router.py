"""The router configuration pcls generates, checked and run by the real HAProxy on 127.0.0.1.

Two router instances (the same config, each with its own "local" shard, as in two shard tasks)
stand in front of fake shards: small HTTP servers on 127.0.0.11, .12, .13 that answer with their
shard name, keep websockets open and report healthy or not on GET /http-bind. A small DNS server
plays Cloud Map: it maps shard-a.meet.internal etc. to those addresses, so the routers find the
shards by name exactly as in a task, and a "replaced task" is a new address for the same name.

Checked: every room of a few hundred reaches the same shard through both routers in all three
URL forms (websocket, BOSH, page path); marking one shard down moves only its rooms and cuts
their open websockets while the others' stay up; bringing it back restores the exact mapping; a
replaced task is followed by name; a new shard takes rooms only for itself; static files go to
any shard; /router-health follows the router's own shard; a resolver that stops answering
changes nothing (the last addresses are held).

Each router also gets a read-only stats socket (a unix socket in the test's directory; the
production config has none) so a test waits, by polling `show servers state`, until both routers
have themselves marked a shard down or up, and only then asserts the exact mapping. While a
router marks a shard down, `on-marked-down shutdown-sessions` kills the requests in flight to
it: the client sees a 502 (killed before the response began) or a response cut off after its
headers (IncompleteRead, or the connection closed). Those cuts are what the option is for, so
they are tolerated only in that window and counted; any error outside it fails the test.

HAProxy comes from Debian's package (scripts/test installs it); without it these tests skip.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pcls import router

# Debian puts it in /usr/sbin, which a non-root PATH may leave out.
HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
NAMESPACE = "meet.internal"
ROOMS = 300
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The routers mark a shard down after FALL checks INTERVAL_S apart and re-resolve names within
# HOLD_S: allow that several times over before a phase is declared failed.
SETTLE = 4 * (router.FALL * router.INTERVAL_S + router.HOLD_S)
# What a request in flight to a shard sees when a router marks that shard down and kills its
# streams: a response cut after its headers, or the connection closed (a 502 is checked apart).
CUT = (http.client.HTTPException, ConnectionError)


def haproxy_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    assert HAPROXY is not None
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )


# -- a DNS server that plays Cloud Map ----------------------------------------------------------


class FakeDns:
    """A/AAAA answers from `records` (name -> IPv4), NXDOMAIN for any other name; TTL 1 s."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.running = True
        self.silent_since: float | None = None  # a resolver outage: queries go unanswered
        self.unanswered = 0
        self.thread.start()

    def set(self, name: str, ip: str | None) -> None:
        with self.lock:
            if ip is None:
                self.records.pop(name, None)
            else:
                self.records[name] = ip

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.silent_since is not None:
                self.unanswered += 1
                continue
            with contextlib.suppress(Exception):  # a malformed query gets no answer
                self.sock.sendto(self._answer(data), peer)

    def _answer(self, query: bytes) -> bytes:
        qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
        pos, labels = 12, []
        while query[pos]:
            n = query[pos]
            labels.append(query[pos + 1 : pos + 1 + n].decode().lower())
            pos += 1 + n
        qtype, _qclass = struct.unpack(">HH", query[pos + 1 : pos + 5])
        question = query[12 : pos + 5]
        name = ".".join(labels)
        with self.lock:
            ip = self.records.get(name)
        answers = b""
        rcode = 3 if ip is None else 0  # NXDOMAIN for a name Cloud Map does not hold
        count = 0
        if ip is not None and qtype == 1:
            answers = struct.pack(">HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(ip)
            count = 1
        flags = 0x8400 | 0x0100 | 0x0080 | rcode  # response, authoritative, RD, RA
        header = struct.pack(">HHHHHH", qid, flags, min(qdcount, 1), count, 0, 0)
        return header + question + answers

    def close(self) -> None:
        self.running = False
        self.sock.close()


# -- fake shards ----------------------------------------------------------------------------------


@dataclass
class Shard:
    name: str
    ip: str
    port: int
    instance: int = 1
    healthy: bool = True
    sockets: list[socket.socket] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def label(self) -> str:
        return f"{self.name}#{self.instance}"

    def start(self) -> None:
        shard = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                shard.sockets.append(self.connection)  # stop() closes them: the task is gone

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _reply(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("X-Jitsi-Shard", shard.name)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == router.CHECK_PATH and not url.query:
                    self._reply(200 if shard.healthy else 503, "It works!")
                elif self.headers.get("Upgrade", "").lower() == "websocket":
                    self._websocket()
                else:
                    self._reply(200, shard.label)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self._reply(200, shard.label)

            def _websocket(self) -> None:
                key = self.headers.get("Sec-WebSocket-Key", "")
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept.decode())
                self.send_header("X-Jitsi-Shard", shard.name)
                self.end_headers()
                self.wfile.write(f"{shard.label}\n".encode())
                self.wfile.flush()
                with contextlib.suppress(OSError):  # echo until either side closes
                    while data := self.connection.recv(1024):
                        self.connection.sendall(data)
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # health checks and cut sessions reset connections: expected here

        self.server = Server((self.ip, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()


def free_port(ips: list[str]) -> int:
    """A TCP port free on every one of `ips` (loopback aliases)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((ips[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for ip in ips:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ip, port))
                s.close()
        except OSError:
            continue
        return port
    raise RuntimeError("no common free port")


# -- the routers --------------------------------------------------------------------------------


@dataclass
class Router:
    port: int
    proc: subprocess.Popen[bytes]
    control: str  # its stats socket (level user)

    def view(self, backend: str = "shards") -> dict[str, tuple[str, str]]:
        """server -> (state, address) as this router sees it now: `show servers state`.

        state: "up" (running), "down" (marked down by its checks), "maint" (no address yet:
        its name does not resolve), or the raw operational state number.
        """
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(self.control)
            sock.sendall(f"show servers state {backend}\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        out = {}
        for line in data.decode().splitlines():
            fields = line.split()
            if len(fields) < 7 or not fields[0].isdigit() or fields[1] != backend:
                continue  # the version line, the header, blank lines
            name, addr, op, admin = fields[3], fields[4], int(fields[5]), int(fields[6])
            state = "maint" if admin else {0: "down", 2: "up"}.get(op, str(op))
            out[name] = (state, addr)
        return out

    def sees(self, want: dict[str, str], backend: str = "shards") -> bool:
        """True when every server in `want` is in the wanted state here."""
        have = self.view(backend)
        return all(have.get(name, ("absent", ""))[0] == state for name, state in want.items())

    def get(self, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body or None, headers={"Host": "meet.example.com"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("X-Jitsi-Shard") or "", resp.read().decode()
        finally:
            conn.close()

    def websocket(self, room: str) -> tuple[socket.socket, str]:
        """An open websocket for `room` and the shard instance that accepted it."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        query = urllib.parse.urlencode({"room": room})
        sock.sendall(
            (
                f"GET /xmpp-websocket?{query} HTTP/1.1\r\nHost: meet.example.com\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\n" not in data.partition(b"\r\n\r\n")[2]:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"websocket for {room} closed early: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return sock, rest.decode().strip()


def start_router(tmp_path: Path, name: str, text: str) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground (as the task runs it, without the master process)."""
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(text)
    assert HAPROXY is not None
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log, stderr=log)


def room_names() -> list[str]:
    """Rooms as people name them: mixed case, digits, and a few needing URL encoding."""
    names = [f"Room{i}" for i in range(ROOMS - 20)]
    names += [f"Team Meeting {i}" for i in range(10)]  # a space
    names += [f"café-{i}" for i in range(10)]  # non-ASCII (lower case, as clients send it)
    return names


def page_path(room: str) -> str:
    return "/" + urllib.parse.quote(room)


def bosh_path(room: str) -> str:
    return "/http-bind?" + urllib.parse.urlencode({"room": room.lower()})


def shard_of(answer: str) -> str:
    return answer.split("#")[0]


def wait_for(what: str, done: Callable[[], bool], timeout: float = SETTLE) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if done():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Cluster:
    dns: FakeDns
    shards: dict[str, Shard]
    routers: list[Router]
    port: int

    def mapping(self, r: Router, rooms: list[str], form: str = "bosh") -> dict[str, str]:
        out = {}
        for room in rooms:
            if form == "bosh":
                code, header, body = r.get(bosh_path(room), "POST", b"<body/>")
            elif form == "page":
                code, header, body = r.get(page_path(room))
            else:
                sock, body = r.websocket(room)
                sock.close()
                code, header = 200, shard_of(body)
            assert code == 200, (room, form, code, body)
            assert header == shard_of(body), (room, header, body)
            out[room] = body
        return out

    def both(self, rooms: list[str]) -> dict[str, str]:
        """room -> shard instance, asserting both routers agree (BOSH form)."""
        first, second = (self.mapping(r, rooms) for r in self.routers)
        assert first == second, {k: (first[k], second[k]) for k in first if first[k] != second[k]}
        return first

    def all_see(self, want: dict[str, str], what: str, backend: str = "shards") -> None:
        """Wait (polling each router's stats socket) until every router sees `want`."""
        wait_for(what, lambda: all(r.sees(want, backend) for r in self.routers))

    def through_transition(
        self, rooms: list[str], want: dict[str, str], what: str
    ) -> tuple[dict[str, set[str]], int, int]:
        """Send the rooms' BOSH requests through both routers until both see `want`.

        Returns (room -> every shard instance that answered, requests sent, requests cut). A
        cut is a 502 or a transport error: a request killed by shutdown-sessions. Any other
        status fails at once.
        """
        answered: dict[str, set[str]] = {room: set() for room in rooms}
        sent = cut = 0
        end = time.monotonic() + SETTLE
        while not all(r.sees(want) for r in self.routers):
            assert time.monotonic() < end, f"timed out after {SETTLE:.0f}s waiting for {what}"
            for r in self.routers:
                for room in rooms:
                    sent += 1
                    try:
                        code, header, body = r.get(bosh_path(room), "POST", b"<body/>")
                    except CUT:
                        cut += 1
                        continue
                    if code == 502:
                        cut += 1
                        continue
                    assert (code, header) == (200, shard_of(body)), (room, code, header, body)
                    answered[room].add(body)
        return answered, sent, cut


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed")
    dns = FakeDns()
    ips = {"shard-a": "127.0.0.11", "shard-b": "127.0.0.12", "shard-c": "127.0.0.13"}
    port = free_port([*ips.values(), "127.0.0.22", "127.0.0.14"])
    shards = {name: Shard(name, ip, port) for name, ip in ips.items()}
    for s in shards.values():
        s.start()
        dns.set(router.cloud_map_name(NAMESPACE, s.name), s.ip)
    servers = {s: f"{router.cloud_map_name(NAMESPACE, s)}:{port}" for s in router.slots()}
    # A unix socket path must stay under 108 bytes: a short directory of its own.
    control = Path(tempfile.mkdtemp(prefix="pcls-router-"))
    routers = []
    for name, local in (("router-1", shards["shard-a"]), ("router-2", shards["shard-b"])):
        rport = free_port(["127.0.0.1"])
        text = router.config(
            NAMESPACE,
            servers=servers,
            local=f"{local.ip}:{port}",
            nameservers=[f"127.0.0.1:{dns.port}"],
            bind=f"127.0.0.1:{rport}",
            stats_socket=str(control / f"{name}.sock"),
        )
        proc = start_router(tmp_path, name, text)
        routers.append(Router(rport, proc, str(control / f"{name}.sock")))
    c = Cluster(dns, shards, routers, port)
    try:
        for r in routers:
            wait_for("the routers to open their stats sockets", lambda r=r: _answers(r))
        c.all_see({s: "up" for s in ips}, "both routers to see the three shards up")
        c.all_see({"web": "up"}, "both routers to see their own shard up", backend="local")
        yield c
    finally:
        for r in routers:
            r.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(timeout=10)
        for s in shards.values():
            s.stop()
        dns.close()
        shutil.rmtree(control, ignore_errors=True)


def _answers(r: Router) -> bool:
    assert r.proc.poll() is None, "haproxy exited; see its log in the test's directory"
    try:
        return bool(r.view())
    except OSError:  # not listening yet
        return False


# -- the configuration itself ------------------------------------------------------------------


@needs_haproxy
def test_the_production_config_passes_haproxy_check(tmp_path: Path) -> None:
    text = router.config("meet.internal")
    checked = haproxy_check(text, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ALERT" not in checked.stderr


@needs_haproxy
def test_the_config_in_the_task_definition_is_what_haproxy_checks(tmp_path: Path) -> None:
    log = {"logDriver": "awslogs", "options": {}}
    c = router.container(router.config("meet.internal"), log)
    (env,) = c["environment"]
    assert env["name"] == router.CONFIG_ENV
    checked = haproxy_check(router.decoded(env["value"]), tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert c["image"].startswith("public.ecr.aws/docker/library/haproxy:2.6.")
    assert c["portMappings"][0]["containerPort"] == router.ROUTER_PORT > 1024


def test_every_slot_has_a_fixed_name_and_id() -> None:
    text = router.config("meet.internal")
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    shard_lines = [s for s in servers if s[1].startswith("shard-")]
    assert [(s[1], s[2], s[-1]) for s in shard_lines] == [
        (name, f"{name}.meet.internal:8000", str(i + 1)) for i, name in enumerate(router.slots())
    ]
    assert "hash-type consistent" in text and "hash-balance-factor" not in text
    assert "on-marked-down shutdown-sessions" in text and "init-addr none" in text
    assert "/about/health" not in text  # never route on jicofo's bridge-dependent health
    assert "parse-resolv-conf" in text
    assert "stats socket" not in text  # the read-only socket is the tests' alone


def test_the_config_does_not_depend_on_the_shard_count() -> None:
    # Adding or removing a shard must not change the routers (no redeploy of running shards).
    assert router.config("meet.internal") == router.config("meet.internal")
    assert router.shard_names(2) == ["shard-a", "shard-b"]
    with pytest.raises(ValueError):
        router.shard_names(router.MAX_SHARDS + 1)
    with pytest.raises(ValueError, match="not a shard slot"):
        router.config("meet.internal", servers={"xmpp": "xmpp.meet.internal:8000"})


# -- the routers at work -----------------------------------------------------------------------


@needs_haproxy
def test_rooms_stick_to_one_shard_through_both_routers(cluster: Cluster) -> None:
    rooms = room_names()
    r1, r2 = cluster.routers
    bosh = cluster.both(rooms)
    for r in (r1, r2):
        assert cluster.mapping(r, rooms, "page") == bosh  # /<Room>, mixed case
        assert cluster.mapping(r, rooms, "ws") == bosh  # the websocket upgrade
    spread = Counter(shard_of(v) for v in bosh.values())
    print(f"\n{len(rooms)} rooms x 3 forms x 2 routers: one shard each; spread {dict(spread)}")
    assert set(spread) == {"shard-a", "shard-b", "shard-c"}
    assert min(spread.values()) >= len(rooms) // 10  # every shard takes a fair share

    # Static files carry no room: any shard serves them.
    seen = {shard_of(r1.get("/libs/app.bundle.min.js")[2]) for _ in range(12)}
    assert len(seen) >= 2, seen
    assert r1.get(router.HEALTH_PATH)[:1] == (200,)


@needs_haproxy
def test_a_shard_down_moves_only_its_rooms_and_cuts_its_sessions(cluster: Cluster) -> None:
    rooms = room_names()
    before = cluster.both(rooms)
    on_b = [r for r in rooms if shard_of(before[r]) == "shard-b"]
    others = [r for r in rooms if r not in on_b]
    r1, r2 = cluster.routers
    open_b = [r1.websocket(r)[0] for r in on_b[:10]] + [r2.websocket(r)[0] for r in on_b[10:20]]
    open_other = [r1.websocket(r)[0] for r in others[:10]] + [
        r2.websocket(r)[0] for r in others[10:20]
    ]

    cluster.shards["shard-b"].healthy = False  # its websockets stay open on the shard's side
    # Until both routers have marked it down (each on its own check schedule), shard-b's rooms
    # are answered by shard-b, or already by their next shard, or cut.
    answered, sent, cut = cluster.through_transition(
        on_b, {"shard-b": "down"}, "both routers to mark shard-b down"
    )
    assert all(r.view()["shard-a"][0] == r.view()["shard-c"][0] == "up" for r in (r1, r2))
    during = cluster.both(rooms)
    moved = [r for r in rooms if during[r] != before[r]]
    assert sorted(moved) == sorted(on_b)  # only shard-b's rooms moved
    assert all(during[r] == before[r] for r in others)
    assert not {shard_of(during[r]) for r in on_b} & {"shard-b"}
    for room in on_b:  # nothing but the old shard or the new one ever answered
        assert answered[room] <= {before[room], during[room]}, (room, answered[room])

    for sock in open_b:  # cut by on-marked-down shutdown-sessions (FIN or RST)
        sock.settimeout(SETTLE)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b"", "a websocket to the down shard stayed open"
        sock.close()
    for sock in open_other:  # untouched: still echo
        sock.settimeout(5)
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
        sock.close()
    # A router whose own shard is down tells the ALB (its own check of its local web runs on
    # its own schedule); the other router stays in service.
    wait_for("router-2 to mark its own shard down", lambda: r2.sees({"web": "down"}, "local"))
    assert r2.get(router.HEALTH_PATH)[0] == 503
    assert r1.sees({"web": "up"}, "local") and r1.get(router.HEALTH_PATH)[0] == 200

    cluster.shards["shard-b"].healthy = True
    cluster.all_see({"shard-b": "up"}, "both routers to take shard-b back")
    after = cluster.both(rooms)
    assert after == before  # the exact mapping
    print(
        f"\n{len(rooms)} rooms; shard-b down: {len(moved)} moved (all of shard-b's "
        f"{len(on_b)}, none of the other {len(others)}), {len(open_b)} open websockets cut, "
        f"{len(open_other)} kept; {cut} of {sent} requests to shard-b's rooms cut while the "
        f"routers marked it down; back up: {sum(after[r] == before[r] for r in rooms)} of "
        f"{len(rooms)} rooms on their first shard"
    )
    wait_for("router-2 to mark its own shard up", lambda: r2.sees({"web": "up"}, "local"))
    assert r2.get(router.HEALTH_PATH)[0] == 200


@needs_haproxy
def test_a_replaced_task_is_followed_by_name_and_a_new_shard_takes_only_its_rooms(
    cluster: Cluster,
) -> None:
    rooms = room_names()
    before = cluster.both(rooms)
    old = cluster.shards["shard-b"]
    new = Shard("shard-b", "127.0.0.22", cluster.port, instance=2)
    new.start()
    try:
        # ECS replaces the task: the Cloud Map name points at the new address, the old task goes.
        cluster.dns.set(router.cloud_map_name(NAMESPACE, "shard-b"), new.ip)
        old.stop()
        want = {r: ("shard-b#2" if v == "shard-b#1" else v) for r, v in before.items()}
        on_b = [r for r in rooms if before[r] == "shard-b#1"]

        def followed() -> bool:
            return all(r.view()["shard-b"] == ("up", new.ip) for r in cluster.routers)

        wait_for("both routers to follow shard-b to its new address", followed)
        assert cluster.both(rooms) == want

        # A fourth shard joins the ring (its Cloud Map name starts to resolve).
        d = Shard("shard-d", "127.0.0.14", cluster.port)
        d.start()
        try:
            cluster.dns.set(router.cloud_map_name(NAMESPACE, "shard-d"), d.ip)
            cluster.all_see({"shard-d": "up"}, "both routers to add shard-d")
            grown = cluster.both(rooms)
            moved = [r for r in rooms if grown[r] != want[r]]
            assert moved and all(shard_of(grown[r]) == "shard-d" for r in moved)
            print(
                f"\nshard-b replaced: {len(on_b)} rooms followed it by name; shard-d added: "
                f"{len(moved)} of {len(rooms)} rooms moved, all to shard-d"
            )
        finally:
            d.stop()
    finally:
        new.stop()


@needs_haproxy
def test_a_resolver_outage_leaves_the_routing_as_it_was(cluster: Cluster) -> None:
    rooms = room_names()
    before = cluster.both(rooms)
    views = [r.view() for r in cluster.routers]
    cluster.dns.silent_since = time.monotonic()  # the VPC resolver stops answering
    # Past the hold of the last valid answers, every router has asked again and got nothing.
    outlived = router.HOLD_S + 2 * router.FALL * router.INTERVAL_S

    def outage_outlived() -> bool:
        assert cluster.dns.silent_since is not None
        return time.monotonic() - cluster.dns.silent_since > outlived

    wait_for("the resolver outage to outlive the answers' hold", outage_outlived)
    assert cluster.dns.unanswered > 0
    assert [r.view() for r in cluster.routers] == views  # same addresses, all still up
    assert cluster.both(rooms) == before
    print(
        f"\nresolver silent for {outlived}s ({cluster.dns.unanswered} queries unanswered): "
        f"{len(rooms)} of {len(rooms)} rooms on their shard, addresses kept"
    )

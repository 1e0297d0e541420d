"""The bridge guard's stop path (drain) against a fake bridge, a fake jicofo and a fake task
metadata endpoint, real HTTP servers on 127.0.0.1 that behave as the upstream code does:

- the bridge (jitsi-videobridge rest/root/colibri/drain/Drain.java): POST /colibri/drain/enable
  sets drain mode; the bridge's MUC presence, sent every `presence` seconds (upstream: 5 s), then
  carries it to jicofo; GET /colibri/stats is a report refreshed every `stats` seconds (upstream:
  5 s), so an emptied bridge reads empty only at the next refresh;
- jicofo (jicofo ktor/Application.kt, bridgeload/LoadRedistributor.kt, bridge/Bridge.kt):
  GET /debug lists the bridges under bridge_selector.bridge by JID with their drain state;
  GET /move-endpoints/move-fraction?bridge=<nickname>&fraction=1 re-invites the bridge's
  participants to another bridge and answers {"movedEndpoints", "conferences"}, 404 for an
  unknown bridge.

Timings are scaled by PCLS_DRAIN_SCALE (default 0.2: the upstream intervals divided by five);
PCLS_DRAIN_SCALE=1 pytest -s tests/test_bridge_guard_drain.py -k sequence prints the drain
sequence at the upstream intervals.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from pcls import sidecar_container as sc
from pcls.sidecar import bridge_guard as bg
from tests.fake_http import JsonHandler

SCALE = float(os.environ.get("PCLS_DRAIN_SCALE") or 0.2)
PRESENCE = 5.0 * SCALE  # jvb presence interval (videobridge.stats.interval)
STATS = 5.0 * SCALE  # jvb /colibri/stats refresh
TASK = "0123456789abcdef0123456789abcdef"
NICK = f"jvb-{TASK}"
BREWERY = "jvbbrewery@internal-muc.meet.jitsi"
OTHER = f"{BREWERY}/jvb-fedcba9876543210fedcba9876543210"
AGENT_PATH = "/api/0123abcd-task"
F = TypeVar("F", bound="Fake")
WAIT = 30.0


class Log:
    """Requests as (monotonic time, server, method, path): one clock for the test process and
    the guard subprocess (CLOCK_MONOTONIC is system-wide on Linux)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, str, str]] = []
        self.lock = threading.Lock()

    def add(self, server: str, method: str, path: str) -> None:
        with self.lock:
            self.items.append((time.monotonic(), server, method, path))

    def since(self, t0: float) -> list[tuple[float, str, str, str]]:
        with self.lock:
            return [i for i in self.items if i[0] >= t0]


class _Handler(JsonHandler):
    server: Fake

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.log.add(self.server.name, self.command, self.path)
        status, reply = self.server.answer(self.command, self.path, body)
        self._reply(status, reply)

    do_GET = do_POST = do_PUT = _handle


class Fake(ThreadingHTTPServer):
    daemon_threads = True
    name = "fake"

    def __init__(self, log: Log) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log = log
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        raise NotImplementedError


class Bridge(Fake):
    name = "bridge"

    def __init__(self, log: Log, conferences: int = 2, endpoints: int = 5) -> None:
        super().__init__(log)
        self.conferences, self.endpoints = conferences, endpoints
        self.drain_at: float | None = None
        self.emptied_at: float | None = None
        self.sticky = 0  # moves to ignore (participants that stay, e.g. a re-invite failed)

    def draining_seen_by_jicofo(self) -> bool:
        # the next presence after the drain request carries it
        return self.drain_at is not None and time.monotonic() >= self.drain_at + PRESENCE

    def moved_away(self) -> tuple[int, int]:
        with self.lock:
            if self.sticky:
                self.sticky -= 1
                return 0, 0
            moved = (self.endpoints, self.conferences)
            self.emptied_at = time.monotonic()
            return moved

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "POST" and path == "/colibri/drain/enable":
            self.drain_at = self.drain_at or time.monotonic()
            return 200, b""
        if method == "GET" and path == "/colibri/stats":
            with self.lock:
                empty = self.emptied_at is not None and time.monotonic() >= self.emptied_at + STATS
                c, e = (0, 0) if empty else (self.conferences, self.endpoints)
            return 200, {
                "conferences": c,
                "local_endpoints": e,
                "participants": e,
                "stress_level": 0.1,
                "drain": self.drain_at is not None,
                "muc_clients_configured": 1,
                "muc_clients_connected": 1,
            }
        return 404, b"not found"


class Jicofo(Fake):
    name = "jicofo"

    def __init__(self, log: Log, bridge: Bridge, other: bool = True) -> None:
        super().__init__(log)
        self.bridge = bridge
        self.other = other  # another bridge, operational and not draining
        self.debug_status = 200

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(path)
        if method == "GET" and url.path == "/debug":
            if self.debug_status != 200:
                return self.debug_status, b"not found"
            me = {"drain": self.bridge.draining_seen_by_jicofo(), "operational": True}
            bridges = {f"{BREWERY}/{NICK}": {**me, "shutting-down": False}}
            if self.other:
                bridges[OTHER] = {"drain": False, "operational": True, "shutting-down": False}
            return 200, {"focus_manager": {}, "bridge_selector": {"bridge": bridges}}
        if method == "GET" and url.path == "/move-endpoints/move-fraction":
            query = urllib.parse.parse_qs(url.query)
            if query.get("bridge") not in ([NICK], [f"{BREWERY}/{NICK}"]):
                return 404, b"Bridge not found"
            moved, conferences = self.bridge.moved_away()
            return 200, {"movedEndpoints": moved, "conferences": conferences}
        return 404, b"not found"


class Metadata(Fake):
    name = "metadata"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/v4/abc/task":
            return 200, {"TaskARN": f"arn:aws:ecs:eu-west-1:123456789012:task/meet/{TASK}"}
        return 404, b""


class Agent(Fake):
    name = "agent"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        enabled = json.loads(body or b"{}").get("ProtectionEnabled")
        return 200, {"protection": {"ProtectionEnabled": enabled}}


@contextlib.contextmanager
def serving(server: F) -> Iterator[F]:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        t.join(WAIT)


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def bridge(log: Log) -> Iterator[Bridge]:
    with serving(Bridge(log)) as server:
        yield server


@pytest.fixture
def jicofo(log: Log, bridge: Bridge) -> Iterator[Jicofo]:
    with serving(Jicofo(log, bridge)) as server:
        yield server


@pytest.fixture
def metadata(log: Log) -> Iterator[Metadata]:
    with serving(Metadata(log)) as server:
        yield server


@pytest.fixture
def agent(log: Log) -> Iterator[Agent]:
    with serving(Agent(log)) as server:
        yield server


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_guard(bridge_url: str, jicofo_urls: str = "", **env: str) -> bg.Guard:
    base = {
        "BRIDGE_URL": bridge_url,
        "JICOFO_URLS": jicofo_urls,
        "BRIDGE_NICKNAME": NICK,
        "STACK": "demo",
        "DRAIN_POLL": str(0.2 * SCALE),
        "PRESENCE_WAIT": str(6.0 * SCALE),
        "MOVE_RETRY": str(15.0 * SCALE),
        **env,
    }
    guard = bg.Guard(env=base, out=io.StringIO(), err=io.StringIO())
    guard.stop_at = time.monotonic()
    return guard


def requests(log: Log, t0: float, *servers: str) -> list[tuple[str, str, str]]:
    return [(s, m, p) for _, s, m, p in log.since(t0) if not servers or s in servers]


def errors(guard: bg.Guard) -> list[str]:
    return [x.removeprefix("bridge-guard: ") for x in guard.err.getvalue().splitlines()]


MOVE = ("jicofo", "GET", f"/move-endpoints/move-fraction?bridge={NICK}&fraction=1")
DRAIN = ("bridge", "POST", "/colibri/drain/enable")
STATS_GET = ("bridge", "GET", "/colibri/stats")
DEBUG = ("jicofo", "GET", "/debug")


def _collapse(reqs: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Runs of the same request as one: polls repeat, their order is the point."""
    out: list[tuple[str, str, str]] = []
    for r in reqs:
        if not out or out[-1] != r:
            out.append(r)
    return out


# --- end to end: the shipped command, SIGTERM, measured -------------------------------------


def _start(env: dict[str, str]) -> subprocess.Popen:
    container = sc.guard_container("e2e", "/pcls/e2e", "eu-west-1")
    full = {"PATH": os.environ.get("PATH", "")}
    full.update({e["name"]: e["value"] for e in container["environment"]})
    full.update(env)
    return subprocess.Popen(
        [sys.executable, *container["command"][1:]],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(pred: Any, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while not pred() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert pred(), "the guard never got there"


def test_drain_sequence_on_sigterm(
    log: Log, bridge: Bridge, jicofo: Jicofo, metadata: Metadata, agent: Agent
) -> None:
    proc = _start(
        {
            "BRIDGE_URL": bridge.url,
            "JICOFO_URLS": jicofo.url,
            "ECS_CONTAINER_METADATA_URI_V4": metadata.url + "/v4/abc",
            "ECS_AGENT_URI": agent.url + AGENT_PATH,
            "GUARD_INTERVAL": "0.1",
            "DRAIN_POLL": str(SCALE),  # the shipped default (1 s) at scale
            "PRESENCE_WAIT": str(6.0 * SCALE),
            "MOVE_RETRY": str(15.0 * SCALE),
        }
    )
    try:  # running: busy bridge, protection on
        _wait_for(lambda: any(s == "agent" for _, s, _, _ in log.since(0)), proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
        t_exit = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    reqs = requests(log, t0)
    # exactly this order: drain, the task id, jicofo's view until it sees the drain, one move,
    # the bridge's stats until they read empty; nothing else (no protection call on the way out)
    assert _collapse([r for r in reqs if r[0] != "bridge" or r[1] == "POST"]) == [
        DRAIN,
        ("metadata", "GET", "/v4/abc/task"),
        DEBUG,
        MOVE,
    ]
    assert reqs[0] == DRAIN and reqs.count(MOVE) == 1 and reqs.count(DRAIN) == 1
    assert {r[0] for r in reqs} == {"bridge", "jicofo", "metadata"}
    assert reqs[-1] == STATS_GET
    timeline = [(t - t0, s, m, p) for t, s, m, p in log.since(t0)]
    first = {(s, m, p): t for t, s, m, p in reversed(timeline)}
    t_drain, t_move = first[DRAIN], first[MOVE]
    assert t_drain < 0.5  # at once
    # the move waits for jicofo to see the drain (the next presence), not longer than a poll
    assert PRESENCE <= t_move <= PRESENCE + SCALE + 0.5
    # the guard stops once the stats read empty: one stats refresh plus a poll after the move
    t_done = t_exit - t0
    assert t_move + STATS <= t_done <= t_move + STATS + SCALE + 1.0
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[-1]["EarlyStops"] == 1 and "Conferences" not in lines[-1]
    assert "drain: bridge takes no new conferences" in err
    assert f"drain: {jicofo.url} moved 5 participant(s) of 2 conference(s)" in err
    assert "no participant left" in err and "Traceback" not in err
    print(f"\ndrain sequence (scale {SCALE:g}: the upstream intervals x {SCALE:g}):")
    for phase in (
        [i for i in timeline if i[0] < t_move],
        [i for i in timeline if i[0] >= t_move],
    ):
        kinds: dict[tuple[str, str, str], list[float]] = {}
        for t, *r in phase:
            kinds.setdefault(tuple(r), []).append(t)  # type: ignore[arg-type]
        for (s, m, p), ts in kinds.items():
            when = f"{ts[0]:.3f}s" if len(ts) == 1 else f"{ts[0]:.3f}-{ts[-1]:.3f}s"
            print(f"  {when:>15}  {s:8} {m:4} {p}" + (f"  (x{len(ts)})" if len(ts) > 1 else ""))
    print(f"  {t_done:14.3f}s  guard exited 0 (ECS now sends the bridge its SIGTERM)")


def test_second_sigterm_does_not_cut_the_drain_short(
    log: Log, bridge: Bridge, jicofo: Jicofo, metadata: Metadata
) -> None:
    proc = _start(
        {
            "BRIDGE_URL": bridge.url,
            "JICOFO_URLS": jicofo.url,
            "ECS_CONTAINER_METADATA_URI_V4": metadata.url + "/v4/abc",
            "GUARD_INTERVAL": "0.1",
            "DRAIN_POLL": str(SCALE),
        }
    )
    try:
        _wait_for(lambda: STATS_GET in requests(log, 0), proc)
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: DRAIN in requests(log, 0), proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert requests(log, 0).count(MOVE) == 1
    assert "no participant left" in err and "Traceback" not in err


# --- the drain's decisions, in process -----------------------------------------------------


def test_no_other_bridge_keeps_the_participants_until_the_time_is_up(
    log: Log, bridge: Bridge
) -> None:
    with serving(Jicofo(log, bridge, other=False)) as srv:
        guard = make_guard(bridge.url, srv.url, DRAIN_SECONDS=str(2 * PRESENCE))
        t0 = guard.stop_at
        guard.shutdown()
        took = time.monotonic() - t0
    reqs = requests(log, t0)
    assert MOVE not in reqs  # a move would only re-invite them to this same bridge
    assert DEBUG in reqs and reqs[0] == DRAIN
    assert 2 * PRESENCE <= took <= 2 * PRESENCE + 1.0
    assert f"drain: {srv.url} has no other bridge; participants stay" in errors(guard)
    assert errors(guard)[-1] == "drain: time is up with 5 participant(s) left; stopping"


def test_a_bridge_that_appears_takes_the_participants(log: Log, bridge: Bridge) -> None:
    with serving(Jicofo(log, bridge, other=False)) as srv:
        timer = threading.Timer(PRESENCE + 0.3, setattr, (srv, "other", True))
        timer.start()  # as when ECS starts the replacement task during the drain
        guard = make_guard(bridge.url, srv.url, DRAIN_SECONDS="30")
        t0 = guard.stop_at
        guard.shutdown()
        timer.join()
    reqs = requests(log, t0)
    assert reqs.count(MOVE) == 1
    assert errors(guard)[-1].endswith("no participant left")


def test_without_jicofo_bridge_list_it_moves_after_one_presence_interval(
    log: Log, bridge: Bridge
) -> None:
    with serving(Jicofo(log, bridge)) as srv:
        srv.debug_status = 404  # /debug disabled or changed shape
        guard = make_guard(bridge.url, srv.url, DRAIN_SECONDS="30")
        t0 = guard.stop_at
        guard.shutdown()
    timeline = [(t - t0, (s, m, p)) for t, s, m, p in log.since(t0)]
    t_move = next(t for t, r in timeline if r == MOVE)
    assert 6.0 * SCALE <= t_move <= 6.0 * SCALE + 0.2 * SCALE + 0.5
    assert any(e.startswith(f"drain: no bridge list from {srv.url} (OSError: HTTP 404") for e in
               errors(guard))  # fmt: skip
    assert errors(guard)[-1].endswith("no participant left")


def test_move_is_asked_again_while_participants_remain(log: Log, bridge: Bridge) -> None:
    bridge.sticky = 1  # the first move leaves them (e.g. the re-invite failed)
    with serving(Jicofo(log, bridge)) as srv:
        guard = make_guard(bridge.url, srv.url, DRAIN_SECONDS="30")
        t0 = guard.stop_at
        guard.shutdown()
    moves = [t - t0 for t, s, m, p in log.since(t0) if (s, m, p) == MOVE]
    assert len(moves) == 2
    assert moves[1] - moves[0] >= 15.0 * SCALE  # MOVE_RETRY apart, not a hammering loop
    assert f"drain: {srv.url} moved 0 participant(s) of 0 conference(s)" in errors(guard)


def test_unreachable_jicofo_leaves_a_plain_drain(log: Log, bridge: Bridge, dead_url: str) -> None:
    # e.g. the signal security group does not admit 8888 from the bridges
    guard = make_guard(bridge.url, dead_url, DRAIN_SECONDS=str(8.0 * SCALE))
    t0 = guard.stop_at
    guard.shutdown()
    took = time.monotonic() - t0
    assert requests(log, t0, "bridge")[0] == DRAIN
    assert took <= 8.0 * SCALE + 3.5  # a hung call is cut by its 3 s timeout
    errs = errors(guard)
    assert any(e.startswith(f"drain: move by {dead_url} failed: URLError") for e in errs)
    assert errs[-1] == "drain: time is up with 5 participant(s) left; stopping"


def test_bridge_unknown_to_jicofo_is_not_moved(log: Log, bridge: Bridge) -> None:
    with serving(Jicofo(log, bridge)) as srv:
        guard = make_guard(
            bridge.url, srv.url, BRIDGE_NICKNAME="jvb-other", DRAIN_SECONDS=str(PRESENCE)
        )
        t0 = guard.stop_at
        guard.shutdown()
    assert not [r for r in requests(log, t0) if "move-endpoints" in r[2]]
    assert f"drain: {srv.url} does not list bridge jvb-other" in errors(guard)


def test_idle_bridge_stops_at_once(log: Log, bridge: Bridge, jicofo: Jicofo) -> None:
    bridge.conferences = bridge.endpoints = 0
    guard = make_guard(bridge.url, jicofo.url)
    t0 = guard.stop_at
    guard.shutdown()
    assert time.monotonic() - t0 < 0.5
    assert requests(log, t0) == [DRAIN, STATS_GET]  # no jicofo call for an idle bridge
    assert errors(guard)[-1] == "drain: done after 0.0s, no participant left"


def test_gone_bridge_stops_at_once(log: Log, jicofo: Jicofo, dead_url: str) -> None:
    guard = make_guard(dead_url, jicofo.url)
    t0 = guard.stop_at
    guard.shutdown()
    assert time.monotonic() - t0 < 0.5
    assert requests(log, t0) == []
    assert errors(guard)[-1] == "drain: bridge is gone, nothing to drain"


def test_bridge_that_dies_during_the_drain_ends_it(log: Log, bridge: Bridge) -> None:
    with serving(Jicofo(log, bridge, other=False)) as srv:
        guard = make_guard(bridge.url, srv.url, DRAIN_SECONDS="30")
        threading.Timer(0.3, lambda: (bridge.shutdown(), bridge.server_close())).start()
        t0 = guard.stop_at
        guard.shutdown()
    assert time.monotonic() - t0 < 2.0
    assert errors(guard)[-1] == "drain: bridge is gone"


@pytest.mark.parametrize(("lived", "early"), [(899.0, 1), (901.0, 0)])
def test_early_stop_metric(bridge: Bridge, lived: float, early: int) -> None:
    bridge.conferences = bridge.endpoints = 0
    guard = make_guard(bridge.url)
    guard.started = guard.stop_at - lived
    guard.shutdown()
    (line,) = [json.loads(x) for x in guard.out.getvalue().splitlines()]
    assert line["EarlyStops"] == early
    assert line["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "EarlyStops", "Unit": "Count"}
    ]
    assert sc.METRIC_EARLY_STOPS == "EarlyStops" and sc.EARLY_STOP_SECONDS == 900

"""The bridge guard against real HTTP servers on 127.0.0.1: a fake JVB stats endpoint and a fake
ECS agent task-protection endpoint. Time is injected; the end-to-end cases run the script the
way the container does. The stop (drain) path is in test_bridge_guard_drain.py."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

# Importable without an install: the repository root, when no conftest or install provides it.
from pcls import sidecar_container as sc
from pcls.sidecar import bridge_guard as bg
from tests.fake_http import JsonHandler

AGENT_PATH = "/api/0123abcd-task"
STATE_PATH = AGENT_PATH + "/task-protection/v1/state"
WAIT = 15.0  # generous: the subprocess start is slow on a loaded machine


class _Handler(JsonHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        self._reply(self.server.status, self.server.body)

    def do_POST(self) -> None:  # the drain request a stopping guard sends
        self.server.posts.append(self.path)
        self._reply(200, b"")

    def do_PUT(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw)
        with self.server.lock:
            self.server.puts.append(
                {"path": self.path, "type": self.headers.get("Content-Type"), "body": body}
            )
        if self.server.body is None:  # the documented success shape
            reply: Any = {
                "protection": {
                    "ExpirationDate": "2030-01-01T00:00:00Z",
                    "ProtectionEnabled": body["ProtectionEnabled"],
                    "TaskArn": "arn:aws:ecs:eu-west-1:123456789012:task/c/0123abcd",
                }
            }
        else:
            reply = self.server.body
        self._reply(self.server.status, reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, body: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.body = body
        self.gets: list[str] = []
        self.posts: list[str] = []
        self.puts: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [p["body"] for p in self.puts]


def _serve(body: Any) -> Iterator[_Server]:
    srv = _Server(body)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(WAIT)


@pytest.fixture
def bridge() -> Iterator[_Server]:
    yield from _serve({"conferences": 0, "participants": 0, "stress_level": 0.0})


@pytest.fixture
def agent() -> Iterator[_Server]:
    yield from _serve(None)


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 URL nothing listens on: connection refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_guard(bridge_url: str, agent_url: str | None, **env: str) -> tuple[bg.Guard, Clock]:
    base = {
        "BRIDGE_URL": bridge_url,
        "STACK": "demo",
        "GUARD_INTERVAL": "15",
    }
    if agent_url is not None:
        base["ECS_AGENT_URI"] = agent_url + AGENT_PATH
    base.update(env)
    clock = Clock()
    guard = bg.Guard(
        env=base,
        clock=clock,
        wall=lambda: 1_700_000_000.5,
        sleep=lambda s: None,
        out=io.StringIO(),
        err=io.StringIO(),
    )
    return guard, clock


def busy(srv: _Server, conferences: int = 1, participants: int = 3) -> None:
    srv.body = {"conferences": conferences, "participants": participants, "stress_level": 0.25}


def idle(srv: _Server) -> None:
    srv.body = {"conferences": 0, "participants": 0, "stress_level": 0.0}


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


# --- protection ---------------------------------------------------------------------------


def test_conference_start_enables_protection(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    busy(bridge)
    assert guard.step() == 15
    assert agent.puts == [
        {
            "path": STATE_PATH,
            "type": "application/json",
            "body": {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
        }
    ]
    assert guard.protected is True
    assert "protection on for 60 min" in guard.err.getvalue()


def test_busy_bridge_renews_only_when_a_third_remains(bridge: _Server, agent: _Server) -> None:
    guard, clock = make_guard(bridge.url, agent.url)
    busy(bridge)
    guard.step()
    start = clock.t
    for _ in range(5):
        clock.t += 15
        guard.step()
    clock.t = start + 40 * 60 - 1  # 20 min + 1 s left: still more than a third
    guard.step()
    assert len(agent.puts) == 1
    clock.t = start + 40 * 60 + 1  # just under a third left
    guard.step()
    assert agent.bodies() == [{"ProtectionEnabled": True, "ExpiresInMinutes": 60}] * 2
    clock.t += 15
    guard.step()
    assert len(agent.puts) == 2  # the renewal moved the expiry forward


def test_protection_minutes_drive_request_and_renewal(bridge: _Server, agent: _Server) -> None:
    guard, clock = make_guard(bridge.url, agent.url, PROTECTION_MINUTES="30")
    busy(bridge)
    guard.step()
    clock.t += 20 * 60 + 1  # 30 min period, under 10 min left
    guard.step()
    assert agent.bodies() == [{"ProtectionEnabled": True, "ExpiresInMinutes": 30}] * 2


def test_conference_end_clears_protection_after_idle_reads(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    busy(bridge)
    guard.step()
    idle(bridge)
    guard.step()
    assert len(agent.puts) == 1  # one idle read is not enough
    guard.step()
    assert agent.bodies()[-1] == {"ProtectionEnabled": False}
    guard.step()
    guard.step()
    assert len(agent.puts) == 2  # no repeated clears
    busy(bridge)
    guard.step()
    assert agent.bodies()[-1] == {"ProtectionEnabled": True, "ExpiresInMinutes": 60}


def test_idle_reads_is_configurable_and_a_busy_read_resets_it(
    bridge: _Server, agent: _Server
) -> None:
    guard, _ = make_guard(bridge.url, agent.url, IDLE_READS="3")
    busy(bridge)
    guard.step()
    idle(bridge)
    guard.step()
    guard.step()
    busy(bridge)
    guard.step()  # resets the idle count; protection still fresh, so no call
    idle(bridge)
    guard.step()
    guard.step()
    assert len(agent.puts) == 1
    guard.step()
    assert agent.bodies()[-1] == {"ProtectionEnabled": False}


def test_idle_bridge_at_start_clears_unknown_state_once(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    for _ in range(5):
        guard.step()
    assert agent.bodies() == [{"ProtectionEnabled": False}]


# --- failures -----------------------------------------------------------------------------


def test_unreachable_bridge_logs_and_publishes_nothing(
    bridge: _Server, agent: _Server, dead_url: str
) -> None:
    guard, clock = make_guard(bridge.url, agent.url)
    busy(bridge)
    guard.step()
    guard.out = io.StringIO()
    guard.stats_url = dead_url + "/colibri/stats"
    clock.t += 45 * 60  # renewal would be due if the bridge were alive
    delays = [guard.step(), guard.step(), guard.step()]
    assert len(agent.puts) == 1  # no renewal: protection lapses by expiry
    assert guard.out.getvalue() == ""  # no metric
    errs = lines(guard.err)[1:]
    assert len(errs) == 3
    assert all(e.startswith("bridge-guard: bridge stats unavailable: URLError") for e in errs)
    assert delays == [30, 30, 30]  # backed off, capped at 30 s
    bridge_url = bridge.url + "/colibri/stats"
    guard.stats_url = bridge_url
    assert guard.step() == 15
    assert len(agent.puts) == 2  # bridge back and busy: renewed at once


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"{not json", "JSONDecodeError"),
        (200, b"", "no numeric 'conferences'"),
        (200, [1, 2], "no numeric 'conferences'"),
        (200, {"participants": 2}, "no numeric 'conferences'"),
        (200, {"conferences": "2"}, "no numeric 'conferences'"),
        (500, {"error": "boom"}, "HTTP 500"),
        (404, b"not found", "HTTP 404 not found"),
    ],
)
def test_bad_bridge_reply_is_logged(
    bridge: _Server, agent: _Server, status: int, body: Any, reason: str
) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    bridge.status, bridge.body = status, body
    assert guard.step() == 30
    assert guard.out.getvalue() == ""
    assert agent.puts == []
    (err,) = lines(guard.err)
    assert err.startswith("bridge-guard: bridge stats unavailable: ")
    assert reason in err


def test_agent_500_is_logged_and_retried_next_loop(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    busy(bridge)
    agent.status, agent.body = 500, {"error": {"Code": "ServerException", "Message": "x"}}
    assert guard.step() == 30
    assert guard.protected is None
    assert len(lines(guard.out)) == 1  # the metric still flows
    assert "agent call failed: OSError: HTTP 500" in guard.err.getvalue()
    agent.status, agent.body = 200, None
    assert guard.step() == 15
    assert guard.protected is True
    guard.step()
    assert len(agent.puts) == 2


def test_unreachable_agent_keeps_trying(bridge: _Server, agent: _Server, dead_url: str) -> None:
    guard, _ = make_guard(bridge.url, dead_url)
    busy(bridge)
    for _ in range(3):
        guard.step()
    errs = lines(guard.err)
    assert len(errs) == 3
    assert all("agent call failed: URLError" in e for e in errs)
    assert len(lines(guard.out)) == 3
    guard.agent_url = agent.url + STATE_PATH
    guard.step()
    assert agent.bodies() == [{"ProtectionEnabled": True, "ExpiresInMinutes": 60}]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, {"failure": {"Arn": "arn:x", "Reason": "TASK_NOT_VALID"}}, "TASK_NOT_VALID"),
        (400, {"error": {"Code": "InvalidParameterException", "Message": "m"}}, "HTTP 400"),
        (200, {"requestID": "r-1"}, "agent refused"),
        (200, b"<html>", "JSONDecodeError"),
        (200, b"[]", "agent refused"),
    ],
)
def test_agent_refusal_is_logged_and_retried(
    bridge: _Server, agent: _Server, status: int, body: Any, reason: str
) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    busy(bridge)
    agent.status, agent.body = status, body
    guard.step()
    guard.step()
    assert len(agent.puts) == 2  # not recorded as protected, so tried again
    assert guard.protected is None
    errs = lines(guard.err)
    assert len(errs) == 2
    assert all(e.startswith("bridge-guard: agent call failed: ") and reason in e for e in errs)


def test_missing_agent_uri_is_logged(bridge: _Server) -> None:
    guard, _ = make_guard(bridge.url, None)
    busy(bridge)
    guard.step()
    assert "ECS_AGENT_URI is not set" in guard.err.getvalue()
    assert len(lines(guard.out)) == 1


def test_unexpected_error_is_caught(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)

    def broken(stats: dict) -> None:
        raise KeyError("surprise")

    guard.emit = broken  # type: ignore[method-assign]
    assert guard.step() == 30
    assert "unexpected KeyError" in guard.err.getvalue()


# --- metric -------------------------------------------------------------------------------


def test_emf_line_shape(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url, METRIC_NAMESPACE="ns/Test")
    bridge.body = {
        "conferences": 2,
        "participants": 7,
        "endpoints": 7,
        "stress_level": 0.125,
        "graceful_shutdown": False,
    }
    guard.step()
    (line,) = lines(guard.out)
    doc = json.loads(line)
    assert doc == {
        "_aws": {
            "Timestamp": 1_700_000_000_500,
            "CloudWatchMetrics": [
                {
                    "Namespace": "ns/Test",
                    "Dimensions": [["Stack"]],
                    "Metrics": [
                        {"Name": "Conferences", "Unit": "Count"},
                        {"Name": "Participants", "Unit": "Count"},
                        {"Name": "StressLevel", "Unit": "None"},
                    ],
                }
            ],
        },
        "Stack": "demo",
        "Conferences": 2,
        "Participants": 7,
        "StressLevel": 0.125,
    }
    # every declared metric has a numeric value member at the root (EMF requirement)
    for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
        assert isinstance(doc[metric["Name"]], int | float)


def test_emf_names_match_the_constants_pcls_uses(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url, METRIC_NAMESPACE="")
    busy(bridge)
    guard.step()
    doc = json.loads(lines(guard.out)[0])
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == sc.METRIC_NAMESPACE
    assert directive["Dimensions"] == [[sc.METRIC_DIMENSION]]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {k: sc.METRIC_UNITS[k] for k in ("Conferences", "Participants", "StressLevel")}
    assert bg.UNITS == sc.METRIC_UNITS
    assert bg.MAX_MINUTES == sc.MAX_PROTECTION_MINUTES


def test_emf_prefers_local_endpoints_and_omits_missing_values(
    bridge: _Server, agent: _Server
) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    bridge.body = {"conferences": 1, "endpoints": 9, "local_endpoints": 4, "participants": 9}
    guard.step()
    bridge.body = {"conferences": 0, "stress_level": None}
    guard.step()
    first, second = (json.loads(x) for x in lines(guard.out))
    assert first["Participants"] == 4
    assert "StressLevel" not in first
    assert [m["Name"] for m in second["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["Conferences"]
    assert set(second) == {"_aws", "Stack", "Conferences"}


@pytest.mark.parametrize(
    ("stats", "share"),
    [
        ({"muc_clients_configured": 1, "muc_clients_connected": 1}, 1.0),
        ({"muc_clients_configured": 2, "muc_clients_connected": 1}, 0.5),
        ({"muc_clients_configured": 1, "muc_clients_connected": 0}, 0.0),
        # connected but not in the brewery room: as useless to jicofo as disconnected
        (
            {
                "muc_clients_configured": 1,
                "muc_clients_connected": 1,
                "mucs_configured": 1,
                "mucs_joined": 0,
            },
            0.0,
        ),
        ({"mucs_configured": 2, "mucs_joined": 2}, 1.0),
        ({"muc_clients_configured": 0, "muc_clients_connected": 0}, None),  # no XMPP at all
        ({"muc_clients_configured": "1", "muc_clients_connected": 1}, None),
        ({}, None),
    ],
)
def test_xmpp_connected_share(bridge: _Server, agent: _Server, stats: dict, share: Any) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    bridge.body = {"conferences": 0, **stats}
    guard.step()
    doc = json.loads(lines(guard.out)[0])
    declared = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    if share is None:
        assert "XmppConnected" not in doc and "XmppConnected" not in declared
    else:
        assert doc["XmppConnected"] == share and "XmppConnected" in declared


def test_xmpp_loss_and_return_are_logged_once_each(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    up = {"conferences": 0, "muc_clients_configured": 1, "muc_clients_connected": 1}
    for connected in (1, 0, 0, 1, 1):
        bridge.body = {**up, "muc_clients_connected": connected}
        guard.step()
    xmpp = [x for x in lines(guard.err) if "xmpp:" in x]
    assert xmpp == [
        "bridge-guard: xmpp: connected to every shard",
        "bridge-guard: xmpp: NOT connected to every shard: 0/1 clients, None/None rooms",
        "bridge-guard: xmpp: connected to every shard",
    ]
    assert [json.loads(x)["XmppConnected"] for x in lines(guard.out)] == [1, 0, 0, 1, 1]


# --- loop and settings --------------------------------------------------------------------


def test_run_stops_when_told(bridge: _Server, agent: _Server) -> None:
    guard, _ = make_guard(bridge.url, agent.url)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            guard.stopping = True  # what the SIGTERM handler does

    guard.sleep = sleep
    guard.run()
    assert sleeps == [15, 15, 15]  # an idle bridge drains at once: no sleep
    *loads, stop = [json.loads(x) for x in lines(guard.out)]
    assert len(loads) == 3 and stop["EarlyStops"] == 1
    assert bridge.posts == ["/colibri/drain/enable"]
    assert lines(guard.err)[0].startswith("bridge-guard: started:")
    assert lines(guard.err)[-1] == "bridge-guard: drain: done after 0.0s, no participant left"


@pytest.mark.parametrize(
    ("env", "interval", "minutes", "idle_reads"),
    [
        ({}, 15.0, 60, 2),
        ({"GUARD_INTERVAL": "0.5", "PROTECTION_MINUTES": "5", "IDLE_READS": "4"}, 0.5, 5, 4),
        ({"GUARD_INTERVAL": "x", "PROTECTION_MINUTES": "1.5", "IDLE_READS": ""}, 15.0, 60, 2),
        ({"GUARD_INTERVAL": "0", "PROTECTION_MINUTES": "9999", "IDLE_READS": "0"}, 0.05, 2880, 1),
    ],
)
def test_settings_from_env(env: dict, interval: float, minutes: int, idle_reads: int) -> None:
    guard = bg.Guard(env=env)
    assert (guard.interval, guard.minutes, guard.idle_reads) == (interval, minutes, idle_reads)
    assert guard.stats_url == "http://127.0.0.1:8080/colibri/stats"
    assert guard.namespace == "pcls/Jitsi"
    assert (guard.drain_seconds, guard.poll, guard.presence_wait) == (90.0, 1.0, 6.0)
    assert (guard.move_retry, guard.early, guard.jicofos, guard.nick) == (15.0, 900.0, [], None)


# --- container definition -----------------------------------------------------------------


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


def test_guard_container_definition() -> None:
    c = sc.guard_container("demo", "/pcls/demo", "eu-west-1")
    assert c == sc.guard_container("demo", "/pcls/demo", "eu-west-1")
    assert json.dumps(c, sort_keys=True) == json.dumps(
        sc.guard_container("demo", "/pcls/demo", "eu-west-1"), sort_keys=True
    )
    assert c["name"] == "bridge-guard"
    # pinned by the digest of a multi-arch index, so neither a rebuilt tag nor the architecture
    # changes what runs
    assert (
        c["image"]
        == sc.GUARD_IMAGE
        == (
            "public.ecr.aws/docker/library/python@"
            "sha256:b68d71645de25b97ac8e781e3c0e61d0ca23c5b4f46ad4da96cd7b871e01997d"
        )
    )
    # ECS's form for a digest (ContainerDefinition.image): repository-url/image@sha256:<64 hex>,
    # at most 255 characters before the @
    name, _, digest = c["image"].partition("@")
    assert len(name) <= 255 and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert c["essential"] is False
    assert c["memoryReservation"] <= 64
    # stopped before the bridge (reverse dependsOn), and killed by ECS only after its drain
    assert c["dependsOn"] == [{"containerName": "jvb", "condition": "START"}]
    assert c["stopTimeout"] == sc.GUARD_STOP_TIMEOUT == 100
    assert c["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/pcls/demo",
            "awslogs-region": "eu-west-1",
            "awslogs-stream-prefix": "bridge-guard",
        },
    }
    names = [e["name"] for e in c["environment"]]
    assert names == sorted(names)
    env = _env(c)
    assert env["STACK"] == "demo"
    assert env["GUARD_INTERVAL"] == "15"
    assert env["PROTECTION_MINUTES"] == "60"
    assert env["IDLE_READS"] == "2"
    assert env["METRIC_NAMESPACE"] == "pcls/Jitsi"
    assert env["BRIDGE_URL"] == "http://127.0.0.1:8080"
    assert env["DRAIN_SECONDS"] == "90"
    assert env["EARLY_STOP_SECONDS"] == "900"
    assert "ECS_AGENT_URI" not in env  # the agent injects it
    assert base64.b64decode(env["GUARD_SCRIPT_B64"]) == sc.guard_script()
    assert c["command"][:2] == ["python3", "-c"]


def test_guard_container_options_and_validation() -> None:
    env = _env(sc.guard_container("s", "g", "r", interval=30, protection_minutes=120))
    assert (env["GUARD_INTERVAL"], env["PROTECTION_MINUTES"]) == ("30", "120")
    for kwargs in (
        {"interval": 0},
        {"protection_minutes": 0},
        {"protection_minutes": 2881},
        {"interval": 20, "protection_minutes": 1},
        {"idle_reads": 0},
        {"drain_seconds": 96},  # ECS would kill it mid-drain at stopTimeout 100
        {"drain_seconds": -1},
        {"stop_timeout": 121},
    ):
        with pytest.raises(ValueError):
            sc.guard_container("s", "g", "r", **kwargs)
    with pytest.raises(ValueError):
        sc.guard_container("", "g", "r")


def test_script_is_small_and_stdlib_only() -> None:
    src = sc.guard_script()
    assert len(src) < 16 * 1024  # base64 in an env var of a task definition (64 KiB in all)
    assert b"boto" not in src
    imports = {
        line.split()[1].split(".")[0]
        for line in src.decode().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names)


# --- end to end: the command and environment from the container definition ---------------


def _start(container: dict, **overrides: str) -> subprocess.Popen:
    cmd = container["command"]
    assert cmd[0] == "python3"
    env = {"PATH": os.environ.get("PATH", "")}
    env.update(_env(container))
    env.update(overrides)
    return subprocess.Popen(
        [sys.executable, *cmd[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"guard ignored SIGTERM; stderr: {err}")
    return proc.returncode, out, err


def test_shipped_command_protects_and_exits_cleanly(bridge: _Server, agent: _Server) -> None:
    busy(bridge, conferences=1, participants=2)
    container = sc.guard_container("e2e", "/pcls/e2e", "eu-west-1")
    proc = _start(
        container,
        BRIDGE_URL=bridge.url,
        ECS_AGENT_URI=agent.url + AGENT_PATH,
        GUARD_INTERVAL="0.1",
        DRAIN_SECONDS="0.3",  # no jicofo here: the busy bridge keeps its participants till then
    )
    try:
        deadline = time.monotonic() + WAIT
        while not agent.puts and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        # The guard reads, then prints, then sleeps: its 4th read means 3 lines are printed (a
        # stop right after the 3rd read could come before the 3rd line).
        while len(bridge.gets) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert agent.puts[0] == {
        "path": STATE_PATH,
        "type": "application/json",
        "body": {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
    }
    assert len(agent.puts) == 1  # still busy, protection fresh: no repeat calls
    *docs, stop = [json.loads(line) for line in out.splitlines()]
    assert len(docs) >= 3
    assert docs[0]["Stack"] == "e2e"
    assert docs[0]["Participants"] == 2
    assert stop["EarlyStops"] == 1
    assert bridge.posts == ["/colibri/drain/enable"]
    assert "protection on for 60 min" in err
    assert "drain: time is up with 2 participant(s) left; stopping" in err
    assert "Traceback" not in err


def test_shipped_command_survives_dead_endpoints(dead_url: str) -> None:
    container = sc.guard_container("e2e", "/pcls/e2e", "eu-west-1")
    proc = _start(
        container,
        BRIDGE_URL=dead_url,
        ECS_AGENT_URI=dead_url + AGENT_PATH,
        GUARD_INTERVAL="0.05",
    )
    try:
        time.sleep(0.6)  # several failed iterations with back-off
        assert proc.poll() is None, "guard exited on failures"
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert [json.loads(x)["EarlyStops"] for x in out.splitlines()] == [1]  # the stop line alone
    failures = [x for x in err.splitlines() if "bridge stats unavailable" in x]
    assert len(failures) >= 2
    assert "drain: bridge is gone, nothing to drain" in err
    assert "Traceback" not in err

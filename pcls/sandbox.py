"""The sandbox: a local AWS emulation (moto server) on 127.0.0.1 for running pcls with no account.

`pcls sandbox start` runs the server in the background on a free loopback port, records its url
and pid in .pcls/sandbox.json, and pre-creates the public hosted zone for the domain's parent,
as an account with a registered domain would have. It binds loopback only, always.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pcls.errors import ConfigError, PclsError

HOST = "127.0.0.1"
STATE_FILE = "sandbox.json"
# Settings that suit this stack: certificates validate in seconds, AWS-managed IAM policies
# exist, ECS services report their tasks running.
SERVER_ENV = {
    "MOTO_ACM_VALIDATION_WAIT": "2",
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    "MOTO_ECS_SERVICE_RUNNING": "1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
START_TIMEOUT = 30.0


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(state_path(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(state: dict[str, Any]) -> bool:
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return False
    try:
        with urllib.request.urlopen(state["url"] + "/moto-api/", timeout=2):
            return True
    except OSError:
        return False


def running(state_dir: Path) -> dict[str, Any] | None:
    state = read_state(state_dir)
    return state if state and _alive(state) else None


def start(state_dir: Path) -> tuple[dict[str, Any], bool]:
    """(state, started_now). Reuses a running sandbox."""
    if state := running(state_dir):
        return state, False
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    log = open(state_dir / "sandbox.log", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, **SERVER_ENV}
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcls.sandbox", str(path)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state and _alive(state):
            return state, True
        if proc.poll() is not None:
            raise PclsError(f"sandbox: server exited at start; see {state_dir / 'sandbox.log'}")
        time.sleep(0.1)
    proc.terminate()
    raise PclsError(f"sandbox: server did not answer within {START_TIMEOUT:.0f}s")


def stop(state_dir: Path) -> bool:
    state = read_state(state_dir)
    if not state:
        return False
    try:
        os.kill(int(state["pid"]), signal.SIGTERM)
        for _ in range(50):
            os.kill(int(state["pid"]), 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    with contextlib.suppress(FileNotFoundError):
        state_path(state_dir).unlink()
    return True


def parent_zone(domain: str) -> str:
    """The zone a registered domain has: the domain's parent (meet.example.com → example.com)."""
    labels = domain.split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else domain


def ensure_zone(route53: Any, domain: str) -> str:
    """Create the parent zone unless one exists; returns its name."""
    zone = parent_zone(domain)
    found = route53.list_hosted_zones_by_name(DNSName=zone, MaxItems="1")["HostedZones"]
    if not (found and found[0]["Name"].rstrip(".") == zone):
        route53.create_hosted_zone(
            Name=zone,
            CallerReference=f"pcls-sandbox-{zone}",
            HostedZoneConfig={"Comment": "sandbox: the registered domain's zone"},
        )
    return zone


def _serve(path: str) -> None:
    if any(os.environ.get(k) != v for k, v in SERVER_ENV.items()):
        raise SystemExit("run through `pcls sandbox start`")
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    if host != HOST:
        raise SystemExit(f"refusing to serve on {host}")
    state = {"url": f"http://{HOST}:{port}", "pid": os.getpid(), "started": time.time()}
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(state))
    os.replace(tmp, path)
    stopping = {"now": False}

    def on_term(*_: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stopping["now"]:
        time.sleep(0.2)
    server.stop()


def require_domain(domain: str | None) -> str:
    if not domain:
        raise ConfigError("sandbox: no domain; pass --domain or keep a pcls.toml beside .pcls/")
    return domain


if __name__ == "__main__":
    _serve(sys.argv[1])

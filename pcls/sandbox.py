"""The sandbox: a local AWS emulation (moto server) on 127.0.0.1 for running pcls with no account.

`pcls sandbox start` runs the server in the background on a free loopback port, records its url
and pid in .pcls/sandbox.json, and pre-creates the public hosted zone for the domain's parent,
as an account with a registered domain would have. It binds loopback only, always.

The state file is trusted no further than it can be checked: a recorded url whose host is not
127.0.0.1 is refused before anything is sent to it, and a recorded pid is signalled only when it
is this sandbox's server (`python -m pcls.sandbox <this state file>`, listening on the port).
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
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
        state = json.loads(state_path(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _port(state: dict[str, Any], state_dir: Path) -> int:
    """The recorded url's port; ConfigError unless the url is http://127.0.0.1:<port>."""
    url = state.get("url")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port = parts.port if parts else None
    except ValueError:
        parts, port = None, None
    if not (parts and parts.scheme == "http" and parts.hostname == HOST and port):
        raise ConfigError(
            f"{state_path(state_dir)}: sandbox url {url!r} is not on {HOST}; refused, nothing "
            "was sent to it; run `pcls sandbox stop` or delete the file"
        )
    return port


def _pid(state: dict[str, Any]) -> int:
    pid = state.get("pid")
    return pid if isinstance(pid, int) and pid > 1 else 0


def _exists(pid: int) -> bool:
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> tuple[list[str], Path | None]:
    """(argv, working directory) of a process; ([], None) when they cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd: Path | None = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        if Path("/proc/self").exists():
            return [], None
        # No /proc (macOS, BSD): ps, without the working directory.
        done = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return done.stdout.split(), None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a], cwd


def _listens(pid: int, port: int) -> bool | None:
    """Whether `pid` has a listening socket on 127.0.0.1:port; None where /proc cannot say."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    try:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[1] == want and f[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None if not Path("/proc/self").exists() else False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def is_server(state_dir: Path, pid: int, port: int | None) -> bool:
    """True when `pid` is the sandbox server `start` ran for this state dir (on `port`)."""
    if pid <= 1:
        return False
    argv, cwd = _cmdline(pid)
    want = state_path(state_dir).resolve()
    for i in range(len(argv) - 2):
        if argv[i : i + 2] != ["-m", "pcls.sandbox"]:
            continue
        given = Path(argv[i + 2])
        if not given.is_absolute():
            if cwd is None:
                continue
            given = cwd / given
        if given.resolve() == want:
            return port is None or _listens(pid, port) is not False
    return False


def _alive(state: dict[str, Any], state_dir: Path) -> bool:
    port = _port(state, state_dir)
    pid = _pid(state)
    if not (_exists(pid) and is_server(state_dir, pid, port)):
        return False
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/", timeout=2):
            return True
    except OSError:
        return False


def running(state_dir: Path) -> dict[str, Any] | None:
    state = read_state(state_dir)
    return state if state and _alive(state, state_dir) else None


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
        [sys.executable, "-m", "pcls.sandbox", str(path.resolve())],
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
        if state and _alive(state, state_dir):
            return state, True
        if proc.poll() is not None:
            raise PclsError(f"sandbox: server exited at start; see {state_dir / 'sandbox.log'}")
        time.sleep(0.1)
    proc.terminate()
    raise PclsError(f"sandbox: server did not answer within {START_TIMEOUT:.0f}s")


def stop(state_dir: Path) -> str:
    """Stop the server pcls started for this state dir; one line saying what happened.

    A recorded pid that is not that server (a stale file whose pid the system has since given
    to another process, or an edited one) is never signalled; the stale file is removed.
    """
    state = read_state(state_dir)
    if not state:
        return "sandbox was not running"
    pid = _pid(state)
    try:
        port: int | None = _port(state, state_dir)
    except ConfigError:
        port = None  # the pid alone must then prove it is the server
    try:
        if not _exists(pid):
            return "sandbox was not running; removed its stale state file"
        if not is_server(state_dir, pid, port):
            return (
                f"sandbox was not running: pid {state.get('pid')!r} recorded in "
                f"{state_path(state_dir)} is not its server, left alone; removed the stale file"
            )
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except OSError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            state_path(state_dir).unlink()
    return "sandbox stopped"


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


def responses_keep_their_own_includes() -> None:
    """moto answers `include=["TAGS"]` (DescribeServices, DescribeTasks, DescribeClusters) by
    switching the tags on or off in a dict its response class shares across threads, so one
    thread's read without TAGS can strip the tags from another thread's read with them: pcls then
    sees its own service untagged and refuses it as a collision. AWS answers each request on its
    own. Patched into moto's BaseResponse: each response switches its own copy of that dict."""
    from moto.core import responses

    base = responses.BaseResponse
    include, exclude = base._include_in_response, base._exclude_from_response
    if getattr(include, "pcls_patched", False):
        return

    def own(self: Any) -> None:
        if "RESPONSE_KEY_PATH_TO_TRANSFORMER" not in vars(self):
            self.RESPONSE_KEY_PATH_TO_TRANSFORMER = dict(self.RESPONSE_KEY_PATH_TO_TRANSFORMER)

    def include_in_response(self: Any, response_key_path: str) -> None:
        own(self)
        include(self, response_key_path)

    def exclude_from_response(self: Any, response_key_path: str) -> None:
        own(self)
        exclude(self, response_key_path)

    include_in_response.pcls_patched = True  # type: ignore[attr-defined]
    base._include_in_response = include_in_response  # type: ignore[method-assign]
    base._exclude_from_response = exclude_from_response  # type: ignore[method-assign]


def iam_lookups_survive_concurrent_creates() -> None:
    """moto finds a role by walking its live dict of roles, so a GetRole while another thread
    creates a role can fail with "dictionary changed size during iteration" (the engine creates
    the stack's roles side by side). Patched into moto's IAM backend: the walk goes over a
    snapshot."""
    from moto.iam import models

    backend = models.IAMBackend
    if getattr(backend.get_roles, "pcls_patched", False):
        return

    def get_roles(self: Any) -> list[Any]:
        return list(self.roles.values())

    get_roles.pcls_patched = True  # type: ignore[attr-defined]
    backend.get_roles = get_roles  # type: ignore[method-assign]


def services_run_their_desired_count() -> None:
    """moto reports MOTO_ECS_SERVICE_RUNNING tasks running for every service, whatever it asks
    for; the stack's services differ (a shard runs 1 task, the bridges one per AZ). Patched into
    moto's ECS model: while that setting says tasks run (not 0), a new service runs exactly its
    desired count, its one deployment COMPLETED, as ECS reports a service that has started."""
    from moto.ecs import models

    original = models.Service.__init__
    if getattr(original, "pcls_patched", False):
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.running_count <= 0:
            return  # nothing runs: left as moto made it
        self.running_count, self.pending_count = self.desired_count, 0
        for deployment in self.deployments:
            deployment.update(
                runningCount=self.desired_count, pendingCount=0, rolloutState="COMPLETED"
            )

    init.pcls_patched = True  # type: ignore[attr-defined]
    models.Service.__init__ = init  # type: ignore[method-assign]


def services_register_their_routers() -> None:
    """ECS registers each running task of a service with a load balancer in its target group
    (and deregisters it when the task stops); moto does not. Patched into moto's ECS backend:
    after a service is created, scaled or deleted, each of its target groups holds one address
    per running task, healthy as a task that passed its checks. This is what lets the sandbox
    show a wake end to end: the wake function waits for the shards' routers to be healthy."""
    from moto.ecs import models
    from moto.elbv2.models import elbv2_backends

    backend = models.EC2ContainerServiceBackend
    if getattr(backend.update_service, "pcls_patched", False):
        return
    create, update, delete = backend.create_service, backend.update_service, backend.delete_service

    def sync(self: Any, service: Any) -> None:
        elbv2 = elbv2_backends[self.account_id][self.region_name]
        running = service.running_count if service.status == "ACTIVE" else 0
        prefix = f"10.{zlib.crc32(service.name.encode()) % 200 + 20}.0."  # one range per service
        for lb in service.load_balancers or []:
            group = elbv2.target_groups.get(lb.get("targetGroupArn"))
            if group is None:
                continue
            want = {f"{prefix}{i + 10}" for i in range(running)}
            stale = [t for t in group.targets if t.startswith(prefix) and t not in want]
            if stale:
                group.deregister([{"Id": t} for t in stale])
            new = sorted(want - set(group.targets))
            if new:
                group.register([{"Id": ip, "Port": lb.get("containerPort")} for ip in new])

    def create_service(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = create(self, *args, **kwargs)
        sync(self, service)
        return service

    def update_service(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = update(self, *args, **kwargs)
        sync(self, service)
        return service

    def delete_service(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = delete(self, *args, **kwargs)
        sync(self, service)
        return service

    update_service.pcls_patched = True  # type: ignore[attr-defined]
    backend.create_service = create_service  # type: ignore[method-assign]
    backend.update_service = update_service  # type: ignore[method-assign]
    backend.delete_service = delete_service  # type: ignore[method-assign]


def _serve(path: str) -> None:
    if any(os.environ.get(k) != v for k, v in SERVER_ENV.items()):
        raise SystemExit("run through `pcls sandbox start`")
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    responses_keep_their_own_includes()
    iam_lookups_survive_concurrent_creates()
    services_run_their_desired_count()
    services_register_their_routers()

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

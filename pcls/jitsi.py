"""Jitsi Meet domain knowledge: the ECS task definitions of the signal and bridge tasks.

Everything here is a pure function of `JitsiParams`: no AWS calls, and the same parameters always
give the same dict, so a caller can compare it with the registered revision to decide whether a new
one is needed. The wiring follows the docker-jitsi-meet images at tag stable-11146-2 (rootless,
web on 8000, no colibri websockets); which container reads which variable is taken from the env
catalog of those images (tests/data/jitsi-env-catalog.json), and a test holds the two together.

Two tasks:

- signal: web + prosody + jicofo in one awsvpc task, so they talk over 127.0.0.1. The ALB
  terminates TLS and forwards to web:8000.
- jvb: one bridge per task with a public IP. It reaches prosody through a Cloud Map name and learns
  its public address by STUN (Fargate has no EC2 instance metadata for the AWS harvester). The
  bridge guard sidecar drains it when the task stops, through jicofo's REST API on JICOFO_REST_PORT
  (JICOFO_ENABLE_REST=1), which only the bridges' security group may reach.

With auth = "jwt", prosody takes only HS256 tokens signed with JWT_APP_SECRET, issued by
JWT_APP_ID for the audience JWT_AUDIENCE (pcls/token.py signs them); the image's contrib module
token_affiliation makes moderator tokens owners and every other holder a member.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pcls import router
from pcls.sidecar_container import NICK_PREFIX

JITSI_TAG_DEFAULT = "stable-11146-2"
IMAGE_REPO = "ghcr.io/jitsi"

AUTH_MODES = ("open", "jwt")
# runtimePlatform.cpuArchitecture. The images (ghcr.io/jitsi/*, and the stock python and haproxy
# images of the guard and the router) are published for linux/amd64 and linux/arm64;
# FARGATE_SPOT runs ARM64 tasks on platform version 1.4.0 or later (docs/ecs.md).
CPU_ARCHITECTURES = ("ARM64", "X86_64")
CPU_ARCHITECTURE_DEFAULT = "ARM64"
JWT_AUDIENCE = "jitsi"  # JWT_ACCEPTED_AUDIENCES: the aud every token must carry
# jitsi-contrib's token_affiliation (shipped in the prosody image): the token's
# context.user.moderator decides owner or member, instead of every token holder moderating
JWT_MUC_MODULES = ("token_affiliation",)

SIGNAL_CONTAINER_PORT = 8000  # web, target of the ALB
JVB_MEDIA_PORT = 10000  # udp
XMPP_PORT = 5222
PROSODY_HTTP_PORT = 5280
JICOFO_REST_PORT = 8888  # move-endpoints, called by the bridge guard while it drains a bridge
JVB_CONTAINER_NAME = "jvb"
SIGNAL_CONTAINER_NAMES = ("web", "prosody", "jicofo")

# XMPP virtual hosts / components. They are names inside the XMPP streams, not DNS names, so the
# image defaults are kept; they only have to be identical in every container that reads them.
XMPP_DOMAIN = "meet.jitsi"
XMPP_AUTH_DOMAIN = "auth.meet.jitsi"
XMPP_MUC_DOMAIN = "muc.meet.jitsi"
XMPP_INTERNAL_MUC_DOMAIN = "internal-muc.meet.jitsi"
JVB_AUTH_USER = "jvb"
JVB_BREWERY_MUC = "jvbbrewery"

# Secret env var -> containers that read it (from the env catalog). JWT_APP_SECRET is read by
# prosody alone: jicofo only needs AUTH_TYPE=jwt, and web reads no JWT variable.
SECRET_READERS: dict[str, tuple[str, ...]] = {
    "JICOFO_AUTH_PASSWORD": ("prosody", "jicofo"),
    "JVB_AUTH_PASSWORD": ("prosody", "jvb"),
    "JWT_APP_SECRET": ("prosody",),
}

FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# JVM heap rule, see jvm_heap_mib().
SIGNAL_NON_JVM_RESERVE_MIB = 512  # nginx (web) + prosody, which share the signal task with jicofo
JVM_OVERHEAD_MIN_MIB = 384  # metaspace, code cache, thread stacks, direct buffers, GC
JVM_HEAP_MIN_MIB = 256
JICOFO_HEAP_CAP_MIB = 3072  # upstream jicofo.sh default; memory beyond it is left to prosody
# Bridge memory, see videobridge_memory(): the guard sidecar, the JVM's direct buffers (capped
# explicitly: by default the JVM allows as much direct memory as -Xmx), the rest of the JVM's
# native memory, and the heap.
GUARD_RESERVE_MIB = 64
JVB_DIRECT_MIN_MIB, JVB_DIRECT_MAX_MIB = 128, 1024
JVB_NATIVE_MIN_MIB = 384

_FAMILY_RE = re.compile(r"^[A-Za-z0-9_-]{1,240}$")
_SHARD_RE = re.compile(r"^[a-z0-9-]{1,32}$")  # a Lua string, a header value, a family suffix
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")

# /usr/local/bin/healthcheck.sh in prosody and jvb curls their loopback health URLs; prosody's
# /health answers 403 to anything but loopback, so only an in-container check works.
_HEALTHCHECK_SCRIPT = ["CMD-SHELL", "/usr/local/bin/healthcheck.sh"]
# Jicofo's own healthcheck.sh calls /about/health, which fails while no bridge is in the brewery
# (jicofo JicofoHealthChecker: "No operational bridges available"). As an ECS container check that
# would tie the signal task's life to the bridge pool: an empty pool (first start, spot loss, a
# bridge redeploy) would mark the essential jicofo UNHEALTHY and ECS would replace the signal task
# with all its conferences; at first start it could even loop if the service's Cloud Map records
# follow task health, as bridges would not find prosody. So ECS checks liveness (/about/version,
# always served). JICOFO_ENABLE_HEALTH_CHECKS is not set: nothing reads /about/health, and with it
# jicofo would create a throwaway conference every 10 s.
_JICOFO_LIVENESS = [
    "CMD-SHELL",
    "curl --fail --silent --output /dev/null http://127.0.0.1:8888/about/version",
]
# The web image has no healthcheck script, but curl is installed in the shared base image.
_WEB_HEALTHCHECK = [
    "CMD-SHELL",
    f"curl --fail --silent --output /dev/null http://127.0.0.1:{SIGNAL_CONTAINER_PORT}/",
]

# jvb.conf defaults MUC_NICKNAME to $HOSTNAME, and the nickname must differ per bridge, so it
# cannot be a fixed value in a task definition shared by all bridges. The wrapper names the bridge
# jvb-<ECS task id>, read from the task metadata endpoint (curl and jq are in the jvb image): the
# bridge guard in the same task derives the same name to ask jicofo to move the bridge's
# participants, and jicofo's logs name the task. Without metadata it falls back to HOSTNAME, then
# to a random id (the guard then cannot name the bridge to jicofo and only drains). Then it hands
# over to the image's /init (exec keeps it PID 1, as s6-overlay needs).
JVB_ENTRYPOINT = ["/bin/sh", "-c"]
JVB_COMMAND = [
    'id=$(curl -fsS --max-time 2 "$ECS_CONTAINER_METADATA_URI_V4/task" 2>/dev/null'
    " | jq -r '.TaskARN // empty' 2>/dev/null); id=${id##*/};"
    ' case "$id" in *[!0-9a-f]*) id= ;; esac;'
    f' export JVB_MUC_NICKNAME="${{JVB_MUC_NICKNAME:-${{id:+{NICK_PREFIX}$id}}}}";'
    ' export JVB_MUC_NICKNAME="${JVB_MUC_NICKNAME:-${HOSTNAME:-'
    'jvb-$(cat /proc/sys/kernel/random/uuid)}}" && exec /init'
]

# Longest wait Fargate allows between SIGTERM and SIGKILL. The jvb gets its SIGTERM only after
# the bridge guard has exited (ECS stops containers in reverse dependsOn order), that is once the
# guard has drained the bridge; /init then stops the JVM at once (an s6-rc service: the
# S6_SERVICES_GRACETIME of s6-overlay applies to /etc/services.d services only, and the JVM
# needs no longer than S6_KILL_GRACETIME's default once it is drained, so neither is set).
JVB_STOP_TIMEOUT = 120


@dataclass(frozen=True)
class JitsiParams:
    stack: str  # stack name, e.g. "meet"
    domain: str  # public name, e.g. "meet.example.com"
    image_tag: str  # e.g. "stable-11146-2"
    auth: str  # "open" | "jwt"
    jwt_app_id: str  # only for jwt
    # The bridges' XMPP_SERVER: every shard's Cloud Map name, comma separated, e.g.
    # "shard-a.meet.internal,shard-b.meet.internal" (one XMPP connection per entry)
    xmpp_server: str
    stun_servers: tuple[str, ...]  # e.g. ("meet-jit-si-turnrelay.jitsi.net:443",)
    timezone: str  # e.g. "UTC"
    signal_cpu: int
    signal_memory: int
    jvb_cpu: int
    jvb_memory: int
    log_group: str
    region: str
    # env var name -> SSM parameter ARN: JICOFO_AUTH_PASSWORD, JVB_AUTH_PASSWORD, and
    # JWT_APP_SECRET when auth == "jwt"
    secret_arns: Mapping[str, str]
    execution_role_arn: str
    signal_task_role_arn: str
    jvb_task_role_arn: str
    sidecar: Mapping[str, Any] | None = None  # extra container for the jvb task
    # The signal task of one shard: its name (DEPLOYMENTINFO_SHARD, prosody's shard identity,
    # the task family) and the router's HAProxy config (pcls.router.config); "" for neither.
    shard: str = ""
    router_config: str = ""
    cpu_architecture: str = CPU_ARCHITECTURE_DEFAULT  # "ARM64" | "X86_64" (ecs.cpu_architecture)


def _format_values(values: tuple[int, ...]) -> str:
    """'2048-8192 in steps of 1024' for an even run of more than three values, else a list."""
    steps = {b - a for a, b in itertools.pairwise(values)}
    if len(values) > 3 and len(steps) == 1:
        return f"{values[0]}-{values[-1]} in steps of {steps.pop()}"
    return ", ".join(str(v) for v in values)


def fargate_size_error(cpu: int, memory: int) -> str | None:
    """None if (cpu, memory) is a valid Fargate task size, else a one-line message."""
    if cpu not in FARGATE_SIZES:
        allowed = ", ".join(str(c) for c in FARGATE_SIZES)
        return f"cpu {cpu} is not a Fargate size; allowed cpu units: {allowed}"
    if memory not in FARGATE_SIZES[cpu]:
        allowed = _format_values(FARGATE_SIZES[cpu])
        return f"memory {memory} MiB is not valid with cpu {cpu}; allowed memory MiB: {allowed}"
    return None


SIGNAL_MEMORY_MIN_MIB = SIGNAL_NON_JVM_RESERVE_MIB + JVM_OVERHEAD_MIN_MIB + JVM_HEAP_MIN_MIB  # 1152
JVB_MEMORY_MIN_MIB = GUARD_RESERVE_MIB + JVB_DIRECT_MIN_MIB + JVB_NATIVE_MIN_MIB + JVM_HEAP_MIN_MIB


def jvm_heap_mib(budget_mib: int, cap_mib: int | None = None) -> int:
    """Heap size (MiB) for a JVM that may use `budget_mib` of container memory.

    Rule: heap = budget - max(budget / 4, 384 MiB), optionally capped, rounded down to a multiple
    of 64. The rest of the budget is the JVM's non-heap memory (metaspace, code cache, thread
    stacks, direct buffers, GC structures): a few hundred MiB even for a small heap, growing with
    it. Raises ValueError when less than 256 MiB of heap would remain.
    """
    heap = budget_mib - max(budget_mib // 4, JVM_OVERHEAD_MIN_MIB)
    if cap_mib is not None:
        heap = min(heap, cap_mib)
    heap -= heap % 64
    if heap < JVM_HEAP_MIN_MIB:
        raise ValueError(f"a {budget_mib} MiB budget leaves under {JVM_HEAP_MIN_MIB} MiB of heap")
    return heap


def jicofo_heap_mib(signal_memory: int) -> int:
    """JICOFO_MAX_MEMORY in MiB for a signal task of `signal_memory` MiB.

    512 MiB are set aside for web (nginx) and prosody; the rest is jicofo's JVM budget under the
    jvm_heap_mib rule, with the heap capped at upstream's 3072 MiB default (more memory is better
    spent on prosody). 2048 MiB -> 1152 MiB heap, 4096 -> 2688, 8192 and up -> 3072.
    """
    if signal_memory < SIGNAL_MEMORY_MIN_MIB:
        raise ValueError(
            f"signal task memory {signal_memory} MiB is too small: web, prosody and jicofo "
            f"need at least {SIGNAL_MEMORY_MIN_MIB} MiB"
        )
    return jvm_heap_mib(signal_memory - SIGNAL_NON_JVM_RESERVE_MIB, JICOFO_HEAP_CAP_MIB)


def videobridge_memory(jvb_memory: int) -> tuple[int, int]:
    """(heap, direct memory cap) in MiB for a bridge task of `jvb_memory` MiB.

    The JVM lets direct buffers grow as large as the heap unless -XX:MaxDirectMemorySize says
    otherwise, so with upstream's sizing (-Xmx near the container size) heap + direct can pass the
    task's memory, and the OOM kill of the essential jvb container drops every conference on it.
    Rule: 64 MiB for the guard sidecar; direct memory an eighth of the task (128-1024 MiB); the
    JVM's other native memory (metaspace, code cache, thread stacks, GC) max(3/16, 384 MiB); the
    rest is heap, rounded down to 64. 1024 MiB -> (448, 128), 2048 -> (1344, 256),
    4096 -> (2752, 512), 8192 -> (5568, 1024).
    """
    if jvb_memory < JVB_MEMORY_MIN_MIB:
        raise ValueError(
            f"jvb task memory {jvb_memory} MiB is too small: the bridge needs at least "
            f"{JVB_MEMORY_MIN_MIB} MiB"
        )
    direct = min(max(jvb_memory // 8, JVB_DIRECT_MIN_MIB), JVB_DIRECT_MAX_MIB)
    native = max(jvb_memory * 3 // 16, JVB_NATIVE_MIN_MIB)
    heap = jvb_memory - GUARD_RESERVE_MIB - direct - native
    return heap - heap % 64, direct


def videobridge_heap_mib(jvb_memory: int) -> int:
    """VIDEOBRIDGE_MAX_MEMORY in MiB (the bridge's -Xmx), see videobridge_memory()."""
    return videobridge_memory(jvb_memory)[0]


def _validate(p: JitsiParams) -> None:
    if p.auth not in AUTH_MODES:
        raise ValueError(f"unknown auth mode {p.auth!r}; expected one of {', '.join(AUTH_MODES)}")
    if p.auth == "jwt" and not p.jwt_app_id:
        raise ValueError('auth "jwt" needs jwt_app_id')
    if not _FAMILY_RE.match(p.stack):
        raise ValueError(f"stack {p.stack!r} must be 1-240 letters, digits, '-' or '_'")
    if not _HOST_RE.match(p.domain) or "." not in p.domain:
        raise ValueError(f"domain {p.domain!r} must be a host name such as meet.example.com")
    if not p.image_tag:
        raise ValueError("image_tag must not be empty")
    if not p.xmpp_server:
        raise ValueError("xmpp_server must not be empty")
    if not p.stun_servers:
        # on Fargate STUN is the only way the bridge learns its public address
        raise ValueError("stun_servers must name at least one STUN server")
    if not p.timezone:
        raise ValueError("timezone must not be empty")
    if p.cpu_architecture not in CPU_ARCHITECTURES:
        raise ValueError(
            f"cpu_architecture {p.cpu_architecture!r} is not one of {', '.join(CPU_ARCHITECTURES)}"
        )
    for name, cpu, memory in (
        ("signal", p.signal_cpu, p.signal_memory),
        ("jvb", p.jvb_cpu, p.jvb_memory),
    ):
        if err := fargate_size_error(cpu, memory):
            raise ValueError(f"{name} task size: {err}")
    needed = ["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]
    if p.auth == "jwt":
        needed.append("JWT_APP_SECRET")
    missing = [n for n in needed if not p.secret_arns.get(n)]
    if missing:
        raise ValueError(f"secret_arns lacks {', '.join(missing)}")


def _env(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": values[k]} for k in sorted(values)]


def _secrets(p: JitsiParams, container: str) -> list[dict[str, str]]:
    names = [n for n, readers in SECRET_READERS.items() if container in readers]
    if p.auth != "jwt":
        names = [n for n in names if n != "JWT_APP_SECRET"]
    return [{"name": n, "valueFrom": p.secret_arns[n]} for n in sorted(names)]


def _auth_env(p: JitsiParams, container: str) -> dict[str, str]:
    """Auth variables for one container; each var only where the image reads it (catalog)."""
    env = {"ENABLE_AUTH": "0" if p.auth == "open" else "1"}  # web, prosody, jicofo
    if p.auth == "open":
        return env
    if container in ("prosody", "jicofo"):  # web does not read AUTH_TYPE
        env["AUTH_TYPE"] = p.auth
    if p.auth == "jwt" and container == "prosody":  # the only reader of the JWT_* variables
        env["JWT_APP_ID"] = p.jwt_app_id
        env["JWT_ACCEPTED_AUDIENCES"] = JWT_AUDIENCE
        env["XMPP_MUC_MODULES"] = ",".join(JWT_MUC_MODULES)
    return env


def _log_config(p: JitsiParams, container: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": p.log_group,
            "awslogs-region": p.region,
            "awslogs-stream-prefix": container,
            # a slow CloudWatch endpoint must not block the media or signalling processes
            "mode": "non-blocking",
            "max-buffer-size": "4m",
        },
    }


def _health(
    command: list[str], *, interval: int, timeout: int, retries: int, start: int
) -> dict[str, Any]:
    return {
        "command": list(command),
        "interval": interval,
        "timeout": timeout,
        "retries": retries,
        "startPeriod": start,
    }


def _container(p: JitsiParams, name: str, image: str, env: Mapping[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": f"{IMAGE_REPO}/{image}:{p.image_tag}",
        "essential": True,
        "environment": _env(env),
        # The images run /init (s6-overlay) as uid 1000 and render their config into /run at every
        # start; upstream runs them read-only only with tmpfs on /run and /tmp, which Fargate lacks.
        "readonlyRootFilesystem": False,
        "logConfiguration": _log_config(p, name),
    }
    if secrets := _secrets(p, name):  # left out when empty (web), as ECS describes it
        container["secrets"] = secrets
    return container


def _port(port: int, protocol: str) -> dict[str, Any]:
    return {"containerPort": port, "hostPort": port, "protocol": protocol}


def _runtime_platform(p: JitsiParams) -> dict[str, str]:
    return {"operatingSystemFamily": "LINUX", "cpuArchitecture": p.cpu_architecture}


def signal_task_definition(p: JitsiParams) -> dict:
    """register_task_definition kwargs for the signal task (web + prosody + jicofo), of one
    shard when p.shard is set (plus its router when p.router_config is)."""
    _validate(p)
    if p.shard and not _SHARD_RE.match(p.shard):
        raise ValueError(f"shard {p.shard!r} must be 1-32 of a-z, 0-9 and '-'")
    public_url = f"https://{p.domain}"
    tz = {"TZ": p.timezone}

    web_env = {
        **tz,
        **_auth_env(p, "web"),
        "PUBLIC_URL": public_url,
        # IP literal: nginx resolves this host per request via DNS only (no /etc/hosts)
        "XMPP_BOSH_URL_BASE": f"http://127.0.0.1:{PROSODY_HTTP_PORT}",
        "XMPP_DOMAIN": XMPP_DOMAIN,
        "XMPP_MUC_DOMAIN": XMPP_MUC_DOMAIN,
        "ENABLE_XMPP_WEBSOCKET": "1",
        # TLS ends at the ALB; web serves plain HTTP on 8000 and must not redirect or run ACME
        "DISABLE_HTTPS": "1",
        "ENABLE_HTTP_REDIRECT": "0",
        "ENABLE_LETSENCRYPT": "0",
        # IPv4 only: nginx's `listen [::]:8000` fails where the task has no IPv6, and nothing
        # reaches web over IPv6 (the target group is IPv4 even with network.dual_stack)
        "ENABLE_IPV6": "0",
    }
    if p.shard:
        # X-Jitsi-Shard on every answer and config.deploymentInfo.shard: a client that finds
        # its room served by another shard (after a failover) reloads into it
        web_env["DEPLOYMENTINFO_SHARD"] = p.shard
    prosody_env = {
        **tz,
        **_auth_env(p, "prosody"),
        "PUBLIC_URL": public_url,
        "XMPP_DOMAIN": XMPP_DOMAIN,
        "XMPP_AUTH_DOMAIN": XMPP_AUTH_DOMAIN,
        "XMPP_MUC_DOMAIN": XMPP_MUC_DOMAIN,
        "XMPP_INTERNAL_MUC_DOMAIN": XMPP_INTERNAL_MUC_DOMAIN,
        "XMPP_PORT": str(XMPP_PORT),
        "PROSODY_HTTP_PORT": str(PROSODY_HTTP_PORT),
        "ENABLE_XMPP_WEBSOCKET": "1",
        # prosody registers <JVB_AUTH_USER>@auth; must match every bridge
        "JVB_AUTH_USER": JVB_AUTH_USER,
        # IPv4 only: the bridges reach it by a Cloud Map A record, the others on 127.0.0.1
        "ENABLE_IPV6": "0",
    }
    if p.shard:
        # mod_jiconop (in the image's jitsi-meet plugins, not loaded by default) advertises the
        # identity server/shard=<shard_name> to each client at connect; the template splits
        # XMPP_CONFIGURATION on commas, so the name holds none (checked above)
        prosody_env["XMPP_MODULES"] = "jiconop"
        prosody_env["XMPP_CONFIGURATION"] = f'shard_name = "{p.shard}"'
    jicofo_env = {
        **tz,
        **_auth_env(p, "jicofo"),
        "XMPP_SERVER": "127.0.0.1",
        "XMPP_PORT": str(XMPP_PORT),
        "XMPP_DOMAIN": XMPP_DOMAIN,
        "XMPP_AUTH_DOMAIN": XMPP_AUTH_DOMAIN,
        "XMPP_MUC_DOMAIN": XMPP_MUC_DOMAIN,
        "XMPP_INTERNAL_MUC_DOMAIN": XMPP_INTERNAL_MUC_DOMAIN,
        "JVB_BREWERY_MUC": JVB_BREWERY_MUC,
        # REST on 0.0.0.0:8888 (default: 127.0.0.1 only) for the bridge guards' move-endpoints
        # calls; the signal security group must admit 8888 from the bridges' group alone
        "JICOFO_ENABLE_REST": "1",
        "ENABLE_OCTO": "0",
        "JICOFO_MAX_MEMORY": f"{jicofo_heap_mib(p.signal_memory)}m",
    }
    prosody_healthy = [{"containerName": "prosody", "condition": "HEALTHY"}]

    web = _container(p, "web", "web", web_env)
    web["portMappings"] = [_port(SIGNAL_CONTAINER_PORT, "tcp")]
    web["healthCheck"] = _health(_WEB_HEALTHCHECK, interval=30, timeout=5, retries=3, start=30)
    web["dependsOn"] = prosody_healthy

    prosody = _container(p, "prosody", "prosody", prosody_env)
    # 5222 is what the bridges connect to; a port mapping also allows SRV service discovery
    prosody["portMappings"] = [_port(XMPP_PORT, "tcp")]
    # short interval: web and jicofo wait for this check before they start
    prosody["healthCheck"] = _health(
        _HEALTHCHECK_SCRIPT, interval=10, timeout=5, retries=3, start=30
    )

    jicofo = _container(p, "jicofo", "jicofo", jicofo_env)
    jicofo["healthCheck"] = _health(_JICOFO_LIVENESS, interval=30, timeout=5, retries=3, start=60)
    jicofo["dependsOn"] = copy.deepcopy(prosody_healthy)

    containers = [web, prosody, jicofo]
    if p.router_config:
        containers.append(router.container(p.router_config, _log_config(p, router.CONTAINER_NAME)))
    return {
        "family": f"{p.stack}-{p.shard or 'signal'}",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(p.signal_cpu),
        "memory": str(p.signal_memory),
        "executionRoleArn": p.execution_role_arn,
        "taskRoleArn": p.signal_task_role_arn,
        "runtimePlatform": _runtime_platform(p),
        "containerDefinitions": containers,
    }


def jvb_task_definition(p: JitsiParams) -> dict:
    """register_task_definition kwargs for one bridge task (jvb, plus the sidecar if given)."""
    _validate(p)
    heap, direct = videobridge_memory(p.jvb_memory)
    env = {
        "TZ": p.timezone,
        # every shard's Cloud Map name: jvb.conf opens one XMPP connection (shard0, shard1, ...)
        # per comma-separated entry, so one bridge pool serves all shards
        "XMPP_SERVER": p.xmpp_server,
        "XMPP_PORT": str(XMPP_PORT),
        "XMPP_AUTH_DOMAIN": XMPP_AUTH_DOMAIN,
        "XMPP_INTERNAL_MUC_DOMAIN": XMPP_INTERNAL_MUC_DOMAIN,
        "JVB_AUTH_USER": JVB_AUTH_USER,
        "JVB_BREWERY_MUC": JVB_BREWERY_MUC,
        "JVB_PORT": str(JVB_MEDIA_PORT),
        # public address by STUN: the task ENI's public IP is a 1:1 NAT, so STUN sees it. ice4j
        # asks every server at once and keeps each answer; one answering is enough.
        "JVB_STUN_SERVERS": ",".join(p.stun_servers),
        "DISABLE_AWS_HARVESTER": "true",  # EC2 metadata does not exist on Fargate
        "JVB_REQUIRE_VALID_ADDRESS": "1",  # health fails if no public address was found
        # /colibri/stats and POST /colibri/shutdown, for load metrics and graceful drain
        "COLIBRI_REST_ENABLED": "true",
        "SHUTDOWN_REST_ENABLED": "true",
        "ENABLE_OCTO": "0",  # must match jicofo
        "VIDEOBRIDGE_MAX_MEMORY": f"{heap}m",
        # jvb.sh passes this to java after -Xmx (its only hook for JVM options)
        "VIDEOBRIDGE_DEBUG_OPTIONS": f"-XX:MaxDirectMemorySize={direct}m",
    }
    jvb = _container(p, JVB_CONTAINER_NAME, "jvb", env)
    jvb["entryPoint"] = list(JVB_ENTRYPOINT)
    jvb["command"] = list(JVB_COMMAND)
    jvb["portMappings"] = [_port(JVB_MEDIA_PORT, "udp")]
    # startPeriod covers JVM start plus the first STUN round trip
    jvb["healthCheck"] = _health(_HEALTHCHECK_SCRIPT, interval=30, timeout=10, retries=3, start=90)
    jvb["stopTimeout"] = JVB_STOP_TIMEOUT

    containers: list[dict[str, Any]] = [jvb]
    if p.sidecar is not None:
        sidecar = copy.deepcopy(dict(p.sidecar))
        if sidecar.get("name") in (None, JVB_CONTAINER_NAME):
            raise ValueError(f"sidecar needs a name other than {JVB_CONTAINER_NAME!r}")
        sidecar_env = {e["name"]: e["value"] for e in sidecar.get("environment", [])}
        sidecar_env["JICOFO_URLS"] = ",".join(jicofo_urls(p.xmpp_server))
        sidecar["environment"] = _env(sidecar_env)
        containers.append(sidecar)

    return {
        "family": f"{p.stack}-jvb",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(p.jvb_cpu),
        "memory": str(p.jvb_memory),
        "executionRoleArn": p.execution_role_arn,
        "taskRoleArn": p.jvb_task_role_arn,
        "runtimePlatform": _runtime_platform(p),
        "containerDefinitions": containers,
    }


def jicofo_urls(xmpp_server: str) -> list[str]:
    """Jicofo's REST API as the bridges reach it: one signal host per XMPP_SERVER entry."""
    hosts = [entry.strip().split(":", 1)[0] for entry in xmpp_server.split(",")]
    return [f"http://{host}:{JICOFO_REST_PORT}" for host in hosts if host]


def container_env(task_def: dict) -> dict[str, dict[str, str]]:
    """Container name -> its environment as a dict (works on describe_task_definition output)."""
    return {
        c["name"]: {e["name"]: e["value"] for e in c.get("environment", [])}
        for c in task_def["containerDefinitions"]
    }


def container_secrets(task_def: dict) -> dict[str, dict[str, str]]:
    """Container name -> {env var name: valueFrom} of its secrets."""
    return {
        c["name"]: {s["name"]: s["valueFrom"] for s in c.get("secrets", [])}
        for c in task_def["containerDefinitions"]
    }

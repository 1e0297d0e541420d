"""The room-sticky router: one HAProxy in every signal shard task, in front of all the shards.

`config()` is the one function that writes the HAProxy configuration; everything else here wraps
it for ECS. The ALB's target group points at the routers (port ROUTER_PORT of every shard task);
each router sends a request to the shard its room hashes to, so the participants of one room
always meet on one prosody whichever router the ALB picked:

- The room is the `room` query parameter (lib-jitsi-meet adds it to the websocket, BOSH and
  keepalive URLs) or else the last path segment (the page /<Room>), URL-decoded and lower-cased
  as the client does. Static files and / carry no room and go to any shard (round robin).
- Consistent hashing over servers with fixed names and fixed ids (shard-a is id 1, shard-b id 2,
  ...): every router computes the same ring, with no peers and no shared state, so a room lands on
  the same shard through any router. No hash-balance-factor: it depends on each router's own load.
- The ring always lists every shard slot (MAX_SHARDS): a slot whose Cloud Map name does not
  resolve (no such shard, or none of its tasks healthy) is simply not in the ring. Adding or
  removing a shard therefore never changes this configuration, so it never redeploys the shards
  that are running; rooms of other shards stay where they are.
- Shards are found by their Cloud Map names through the VPC resolver (`resolvers` with
  parse-resolv-conf, `init-addr none`), re-resolved every few seconds, so a replaced task's new
  address is followed without a reload.
- Health checks GET /http-bind through the shard's web (nginx, then prosody's BOSH handler, which
  answers a plain GET with 200). They do not involve jicofo or the bridges: jicofo's
  /about/health fails while no bridge is connected, which would take every shard out at once.
- `on-marked-down shutdown-sessions` cuts the open websockets of a shard marked down at once, so
  its clients reconnect within seconds and land on a live shard instead of waiting for timeouts.
- /router-health is the ALB's health check: 200 while this router's own shard answers on
  127.0.0.1 (the task can serve), else 503. It does not depend on the other shards.

The stock image is started with the configuration from an environment variable (base64), so no
image is built: `/bin/sh -c 'printf ... | base64 -d > /tmp/haproxy.cfg && exec haproxy ...'`.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Mapping, Sequence
from typing import Any

# HAProxy 2.6 LTS, the branch whose binary (Debian 12's 2.6.12) checks and runs the generated
# configuration in tests/test_ha_router.py; pinned to a patch release of the official image on
# ECR Public (no Docker Hub).
IMAGE = "public.ecr.aws/docker/library/haproxy:2.6.31-alpine"
CONTAINER_NAME = "router"
CONFIG_ENV = "HAPROXY_CFG"
ROUTER_PORT = 8080  # the image runs as user haproxy: a port above 1024
WEB_PORT = 8000  # each shard's web (nginx), which proxies BOSH and websockets to prosody
HEALTH_PATH = "/router-health"
CHECK_PATH = "/http-bind"  # through nginx to prosody's BOSH endpoint
MAX_SHARDS = 8
SHARD_PREFIX = "shard-"
ROUTER_MEMORY_MIB = 64  # a soft reservation inside the signal task's non-JVM share
# Health checks: a shard is marked down after FALL failed checks INTERVAL_S apart, up again after
# RISE good ones. A shard's name that stops resolving (NXDOMAIN: the shard was removed) or an
# address no longer in the answer (its task replaced) is dropped after HOLD_S (the Cloud Map TTL
# is 10 s as well); when the resolver itself fails (timeouts, errors) the last good addresses are
# kept for HOLD_ERRORS, so a DNS outage leaves the health checks, not DNS, to decide.
INTERVAL_S, FALL, RISE = 2, 3, 3
HOLD_S = 10
HOLD_ERRORS = "1h"
# Prefixes and suffixes of files that are the same on every shard: no room key, any shard.
STATIC_PREFIXES = (
    "/libs/",
    "/css/",
    "/static/",
    "/images/",
    "/fonts/",
    "/lang/",
    "/sounds/",
    "/connection_optimization/",
    "/.well-known/",
    "/transcripts/",
)
FILE_SUFFIXES = (
    ".js",
    ".css",
    ".json",
    ".ico",
    ".html",
    ".png",
    ".svg",
    ".jpg",
    ".wasm",
    ".txt",
    ".map",
    ".woff",
    ".woff2",
    ".mp3",
    ".ogg",
    ".webmanifest",
)
START = (
    f'printf %s "${CONFIG_ENV}" | base64 -d > /tmp/haproxy.cfg'
    " && exec haproxy -W -db -f /tmp/haproxy.cfg"
)


def shard_names(count: int) -> list[str]:
    """['shard-a', 'shard-b', ...]: the first `count` shard names."""
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shards must be 1-{MAX_SHARDS} (got {count})")
    return [SHARD_PREFIX + letter for letter in string.ascii_lowercase[:count]]


def slots() -> list[str]:
    """Every shard name the ring knows, configured or not."""
    return shard_names(MAX_SHARDS)


def server_id(shard: str) -> int:
    """The fixed HAProxy server id of a shard: shard-a is 1, shard-b 2, ..."""
    return slots().index(shard) + 1


def cloud_map_name(namespace: str, shard: str) -> str:
    """'shard-a.meet.internal': the A record ECS keeps pointing at the shard's task."""
    return f"{shard}.{namespace}"


def config(
    namespace: str,
    *,
    servers: Mapping[str, str] | None = None,
    local: str = f"127.0.0.1:{WEB_PORT}",
    nameservers: Sequence[str] = (),
    bind: str = f":{ROUTER_PORT}",
    stats_socket: str | None = None,
) -> str:
    """The HAProxy configuration of every router (identical in all shard tasks).

    namespace: the Cloud Map namespace (<stack>.internal). servers: shard name -> host:port, by
    default every slot's Cloud Map name on WEB_PORT; names are resolved through the resolvers
    (the task's /etc/resolv.conf, or `nameservers` as ip:port). local: this task's own web, which
    /router-health reports on. bind: where the router listens. stats_socket: a unix socket path
    for read-only runtime queries (`show servers state`: each router's own view of the shards),
    none by default. Tests point servers, local, nameservers and bind at 127.0.0.1 and ask each
    router over its socket when it has marked a shard down; production uses the defaults.
    """
    wanted = (
        dict(servers)
        if servers is not None
        else {s: f"{cloud_map_name(namespace, s)}:{WEB_PORT}" for s in slots()}
    )
    unknown = sorted(set(wanted) - set(slots()))
    if unknown:
        raise ValueError(f"not a shard slot: {', '.join(unknown)} (slots: {', '.join(slots())})")
    resolver = (
        [f"    nameserver ns{i + 1} {ns}" for i, ns in enumerate(nameservers)]
        if nameservers
        else ["    parse-resolv-conf"]
    )
    check = f"check inter {INTERVAL_S}s fall {FALL} rise {RISE}"
    lines = [
        f"# pcls router for {namespace}: room-sticky routing over the signal shards.",
        "# Generated by pcls (pcls/router.py); every shard task runs this same file.",
        "global",
        "    log stdout format raw local0 notice",
        "    maxconn 8000",  # 2 file descriptors each: within any task's open-file limit
        # level user: show commands only, no state changes; owner-only file mode
        *([f"    stats socket {stats_socket} mode 600 level user"] if stats_socket else []),
        "",
        "resolvers vpc",
        *resolver,
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        f"    hold valid {HOLD_S}s",
        f"    hold nx {HOLD_S}s",
        f"    hold obsolete {HOLD_S}s",
        f"    hold other {HOLD_ERRORS}",
        f"    hold refused {HOLD_ERRORS}",
        f"    hold timeout {HOLD_ERRORS}",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",  # errors and state changes only: CloudWatch bills per GB
        "    option redispatch",
        "    retries 2",
        "    timeout connect 5s",
        "    timeout client 3m",  # a BOSH long poll waits up to a minute
        "    timeout server 3m",
        "    timeout http-request 10s",
        "    timeout tunnel 1h",  # XMPP websockets; the ALB closes idle ones first
        "",
        "frontend routers",
        f"    bind {bind}",
        f"    acl health path {HEALTH_PATH}",
        "    http-request return status 200 content-type text/plain string ok"
        " if health { srv_is_up(local/web) }",
        "    http-request return status 503 content-type text/plain string local-shard-down"
        " if health",
        "    acl has_room url_param(room) -m found",
        "    acl static path_beg " + " ".join(STATIC_PREFIXES),
        "    acl file path_end " + " ".join(FILE_SUFFIXES),
        "    acl root path /",
        "    http-request set-var(txn.room) url_param(room),url_dec(1),lower if has_room",
        "    http-request set-var(txn.room) path,regsub(^.*/,),url_dec,lower"
        " if !has_room !static !file !root",
        "    default_backend shards",
        "",
        "backend local",
        "    # this task's own shard, for /router-health only",
        "    option httpchk",
        f"    http-check send meth GET uri {CHECK_PATH}",
        "    http-check expect status 200",
        f"    server web {local} {check}",
        "",
        "backend shards",
        "    # no room (static files, /): round robin",
        "    balance hash var(txn.room)",
        "    hash-type consistent",
        "    option httpchk",
        f"    http-check send meth GET uri {CHECK_PATH}",
        "    http-check expect status 200",
        f"    default-server {check} on-marked-down shutdown-sessions"
        " resolvers vpc init-addr none resolve-prefer ipv4",
        *[
            f"    server {name} {address} id {server_id(name)}"
            for name, address in sorted(wanted.items(), key=lambda kv: server_id(kv[0]))
        ],
        "",
    ]
    return "\n".join(lines)


def encoded(text: str) -> str:
    """The configuration as the container's CONFIG_ENV value."""
    return base64.b64encode(text.encode()).decode()


def decoded(value: str) -> str:
    return base64.b64decode(value).decode()


def container(text: str, log_configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The router container of a shard task, running `text` (from config()) in the stock image."""
    return {
        "name": CONTAINER_NAME,
        "image": IMAGE,
        # Must run for the task to serve: the ALB's target is this container.
        "essential": True,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [START],
        "environment": [{"name": CONFIG_ENV, "value": encoded(text)}],
        "portMappings": [
            {"containerPort": ROUTER_PORT, "hostPort": ROUTER_PORT, "protocol": "tcp"}
        ],
        "memoryReservation": ROUTER_MEMORY_MIB,
        "readonlyRootFilesystem": False,  # the config is written to /tmp at start
        "logConfiguration": dict(log_configuration),
    }

"""The bridge-guard container that runs next to the JVB in each bridge task.

The guard script ships inside the task definition (base64 in an environment variable) and runs
in a stock Python image, so there is no image to build. It publishes the bridge load and XMPP
health as CloudWatch embedded metric format lines, holds ECS task scale-in protection while the
bridge hosts conferences, and drains the bridge when the task stops; see docs/bridge-guard.md.
"""

from __future__ import annotations

import base64
from importlib import resources

# Pinned by digest, so a rebuilt tag cannot change what the bridges run. It is the multi-arch index
# of python:3.12-alpine built 2026-09-17 (Python 3.12.14, Alpine 3.24.2; arm64 and amd64 among its
# platforms), as docker-library/repo-info records it. ECR Public's docker/library is Docker's
# publication of the official images and carries the same index digests. Should the registry lack
# it, no new bridge task starts and the deployment circuit breaker rolls the rollout back; the
# running bridges keep their image. How to move the pin: docs/bridge-guard.md.
GUARD_IMAGE_DIGEST = "sha256:b68d71645de25b97ac8e781e3c0e61d0ca23c5b4f46ad4da96cd7b871e01997d"
GUARD_IMAGE = f"public.ecr.aws/docker/library/python@{GUARD_IMAGE_DIGEST}"
GUARD_CONTAINER_NAME = "bridge-guard"
JVB_CONTAINER_NAME = "jvb"
DEFAULT_BRIDGE_URL = "http://127.0.0.1:8080"  # the bridge's private REST (colibri, drain)
# The bridge's nickname in the brewery room is NICK_PREFIX + the ECS task id: the jvb entrypoint
# sets it and the guard derives the same name for jicofo's move-endpoints call.
NICK_PREFIX = "jvb-"

# What the guard publishes; the scaling and alarm code refers to these names.
GUARD_INTERVAL = 15  # seconds between the guard's reads of the bridge stats
METRIC_NAMESPACE = "pcls/Jitsi"
METRIC_DIMENSION = "Stack"
METRIC_PARTICIPANTS = "Participants"
METRIC_CONFERENCES = "Conferences"
METRIC_STRESS_LEVEL = "StressLevel"
METRIC_XMPP = "XmppConnected"  # share (0-1) of XMPP clients connected and brewery rooms joined
METRIC_EARLY_STOPS = "EarlyStops"  # 1 per bridge that stopped within EARLY_STOP_SECONDS, else 0
METRIC_UNITS = {
    METRIC_PARTICIPANTS: "Count",
    METRIC_CONFERENCES: "Count",
    METRIC_STRESS_LEVEL: "None",
    METRIC_XMPP: "None",
    METRIC_EARLY_STOPS: "Count",
}

MAX_PROTECTION_MINUTES = 2880  # ECS task scale-in protection upper bound

# Stopping. ECS stops the guard first (it depends on the bridge, and ECS reverses dependsOn on
# shutdown) and the bridge only once the guard has exited, so the bridge keeps its media while
# the guard drains it. A Fargate Spot task is gone 120 s after its notice whatever the
# containers' stopTimeouts add up to: the drain ends by DRAIN_SECONDS, which leaves the bridge
# half a minute to stop; GUARD_STOP_TIMEOUT is ECS's SIGKILL should the guard hang.
DRAIN_SECONDS = 90
GUARD_STOP_TIMEOUT = 100
ECS_MAX_STOP_TIMEOUT = 120
EARLY_STOP_SECONDS = 900  # a bridge that stops sooner after its start counts as an early stop

# exec() with an explicit __main__ namespace so the script's `if __name__ == "__main__"` runs.
GUARD_COMMAND = [
    "python3",
    "-c",
    "import base64,os;exec(compile(base64.b64decode(os.environ['GUARD_SCRIPT_B64']),"
    "'bridge_guard.py','exec'),{'__name__':'__main__'})",
]


def guard_script() -> bytes:
    """The guard script's source, read from the installed package."""
    return resources.files("pcls.sidecar").joinpath("bridge_guard.py").read_bytes()


def guard_container(
    stack: str,
    log_group: str,
    region: str,
    *,
    interval: int = GUARD_INTERVAL,
    protection_minutes: int = 60,
    idle_reads: int = 2,
    bridge_url: str = DEFAULT_BRIDGE_URL,
    drain_seconds: int = DRAIN_SECONDS,
    stop_timeout: int = GUARD_STOP_TIMEOUT,
) -> dict:
    """ECS container definition for the bridge guard; same inputs give the same output.

    The jvb task definition adds JICOFO_URLS (where the bridges reach jicofo's REST API)."""
    if not stack:
        raise ValueError("stack must not be empty")
    if interval < 1:
        raise ValueError("interval must be at least 1 second")
    if not 1 <= protection_minutes <= MAX_PROTECTION_MINUTES:
        raise ValueError(f"protection_minutes must be 1..{MAX_PROTECTION_MINUTES}")
    if interval * 3 >= protection_minutes * 60:
        # renewal happens when a third of the period is left; it must come before expiry
        raise ValueError("interval too long for protection_minutes")
    if idle_reads < 1:
        raise ValueError("idle_reads must be at least 1")
    if not 0 <= drain_seconds <= stop_timeout - 5 or stop_timeout > ECS_MAX_STOP_TIMEOUT:
        # ECS kills the guard at stop_timeout: the drain must end before, inside ECS's maximum
        raise ValueError(
            f"drain_seconds must be 0..stop_timeout - 5 and stop_timeout at most "
            f"{ECS_MAX_STOP_TIMEOUT}"
        )
    env = {
        "BRIDGE_URL": bridge_url,
        "DRAIN_SECONDS": str(drain_seconds),
        "EARLY_STOP_SECONDS": str(EARLY_STOP_SECONDS),
        "GUARD_INTERVAL": str(interval),
        "GUARD_SCRIPT_B64": base64.b64encode(guard_script()).decode("ascii"),
        "IDLE_READS": str(idle_reads),
        "METRIC_NAMESPACE": METRIC_NAMESPACE,
        "PROTECTION_MINUTES": str(protection_minutes),
        "PYTHONUNBUFFERED": "1",
        "STACK": stack,
    }
    return {
        "name": GUARD_CONTAINER_NAME,
        "image": GUARD_IMAGE,
        "essential": False,  # a guard failure must never take the bridge down
        "cpu": 0,
        "memoryReservation": 32,
        "command": list(GUARD_COMMAND),
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        # Starts after the bridge, and for that reason is stopped before it: the drain runs while
        # the bridge still carries media. Must stay this way round.
        "dependsOn": [{"containerName": JVB_CONTAINER_NAME, "condition": "START"}],
        "stopTimeout": stop_timeout,
        "readonlyRootFilesystem": True,
        "user": "65534",  # nobody: the guard needs no privileges and writes no files
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": GUARD_CONTAINER_NAME,
            },
        },
    }

"""The bridge-guard container that runs next to the JVB in each bridge task.

The guard script ships inside the task definition (base64 in an environment variable) and runs
in a stock Python image, so there is no image to build. It publishes the bridge load metric as
CloudWatch embedded metric format lines and holds ECS task scale-in protection while the bridge
hosts conferences; see docs/bridge-guard.md.
"""

from __future__ import annotations

import base64
from importlib import resources

GUARD_IMAGE = "public.ecr.aws/docker/library/python:3.12-alpine"
GUARD_CONTAINER_NAME = "bridge-guard"
JVB_CONTAINER_NAME = "jvb"
DEFAULT_STATS_URL = "http://127.0.0.1:8080/colibri/stats"

# What the guard publishes; the scaling and alarm code refers to these names.
GUARD_INTERVAL = 15  # seconds between the guard's reads of the bridge stats
METRIC_NAMESPACE = "pcls/Jitsi"
METRIC_DIMENSION = "Stack"
METRIC_PARTICIPANTS = "Participants"
METRIC_CONFERENCES = "Conferences"
METRIC_STRESS_LEVEL = "StressLevel"
METRIC_UNITS = {
    METRIC_PARTICIPANTS: "Count",
    METRIC_CONFERENCES: "Count",
    METRIC_STRESS_LEVEL: "None",
}

MAX_PROTECTION_MINUTES = 2880  # ECS task scale-in protection upper bound

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
    stats_url: str = DEFAULT_STATS_URL,
) -> dict:
    """ECS container definition for the bridge guard; same inputs give the same output."""
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
    env = {
        "BRIDGE_STATS_URL": stats_url,
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
        "dependsOn": [{"containerName": JVB_CONTAINER_NAME, "condition": "START"}],
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

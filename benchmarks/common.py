"""Shared benchmark plumbing: a throwaway project on in-process moto, driven through pcls."""

from __future__ import annotations

import gc
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
os.environ.setdefault("MOTO_ECS_SERVICE_RUNNING", "1")
for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(key, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-central-1"
)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from rich.console import Console  # noqa: E402

from pcls import runner  # noqa: E402
from pcls.engine import Patience, RunResult  # noqa: E402
from pcls.sandbox import (  # noqa: E402
    iam_lookups_survive_concurrent_creates,
    responses_keep_their_own_includes,
    services_run_their_desired_count,
)
from pcls.ui import Outcome, RecordingReporter, Reporter  # noqa: E402

# moto models a fresh account, where the opt-in eu-central-2 is not enabled (pcls refuses it
# before any write); timings and call counts do not depend on the region.
REGION = "eu-central-1"
DOMAIN = "meet.example.com"
RESULTS = Path(__file__).parent / "results"
FAST = Patience(poll_min=0.01, poll_max=0.05, sleep=time.sleep)
# One cheap read per service pcls uses: moto loads a backend (SSM: its public parameters, EC2:
# default VPCs and images) on the first call in a region, which is moto's cost, not pcls's.
WARM_UP = (
    ("ec2", "describe_vpcs"),
    ("ssm", "describe_parameters"),
    ("ecs", "list_clusters"),
    ("elbv2", "describe_load_balancers"),
    ("acm", "list_certificates"),
    ("iam", "list_roles"),
    ("logs", "describe_log_groups"),
    ("servicediscovery", "list_namespaces"),
    ("sns", "list_topics"),
    ("cloudwatch", "list_dashboards"),
    ("application-autoscaling", "describe_scalable_targets", {"ServiceNamespace": "ecs"}),
)


class TimedReporter(RecordingReporter):
    """A RecordingReporter that also keeps when each step started and finished (monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def start(self, step: str, action: str) -> None:
        self.started.setdefault(step, time.monotonic())
        super().start(step, action)

    def finish(self, step: str, outcome: Outcome, detail: str = "") -> None:
        self.finished[step] = time.monotonic()
        super().finish(step, outcome, detail)


class Project:
    def __init__(self, root: Path, extra: str = "", region: str = REGION) -> None:
        self.root = root
        self.region = region
        self.config = root / "pcls.toml"
        self.config.write_text(
            f'[stack]\nname = "meet"\nregion = "{region}"\ndomain = "{DOMAIN}"\n' + extra
        )
        boto3.client("route53", region_name=region).create_hosted_zone(
            Name="example.com", CallerReference=f"bench-{time.time()}"
        )

    def warm_up(self) -> None:
        """Let moto build its per-region backends now, not inside the first timed call."""
        for service, op, *params in WARM_UP:
            client = boto3.client(service, region_name=self.region)
            getattr(client, op)(**(params[0] if params else {}))

    def session(
        self, parallel: int = 4, patience: Patience = FAST, ui: Reporter | None = None
    ) -> runner.Session:
        opts = runner.Options(config=self.config, parallel=parallel)
        console = Console(file=io.StringIO())
        return runner.open_session(opts, console, ui=ui or RecordingReporter(), patience=patience)

    def run(self, command: str, **kw: Any) -> tuple[RunResult, runner.Session, float]:
        s = self.session(**kw)
        started = time.perf_counter()
        if command == "up":
            result = runner.do_up(s)
        elif command == "teardown":
            result = runner.do_teardown(s)
        else:
            result = getattr(s.engine, command)()
        elapsed = time.perf_counter() - started
        if not result.ok and command in ("up", "teardown"):
            raise SystemExit(f"{command} failed: {[r.detail for r in result.failures]}")
        return result, s, elapsed


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep what exists now (moto's backends, loaded models) out of the garbage collector.

    A full collection of the emulator's heap takes ~0.4 s on this machine; inside a timed run
    scaled 1/100 it would count as 40 s of AWS time that a pcls process on AWS never spends.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def project(extra: str = "", region: str = REGION) -> Iterator[Project]:
    # as in the sandbox and the tests: a service runs its desired count. Patched here, not at
    # import: memory.py imports this module, and its children inherit the parent's peak RSS.
    services_run_their_desired_count()
    responses_keep_their_own_includes()
    iam_lookups_survive_concurrent_creates()
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        yield Project(Path(tmp), extra, region)


def write_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path

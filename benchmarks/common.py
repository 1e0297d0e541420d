"""Shared benchmark plumbing: a throwaway project on in-process moto, driven through pcls."""

from __future__ import annotations

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
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-central-2"
)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from rich.console import Console  # noqa: E402

from pcls import runner  # noqa: E402
from pcls.engine import Patience, RunResult  # noqa: E402
from pcls.ui import RecordingReporter  # noqa: E402

REGION = "eu-central-2"
DOMAIN = "meet.example.com"
RESULTS = Path(__file__).parent / "results"
FAST = Patience(poll_min=0.01, poll_max=0.05, sleep=time.sleep)


class Project:
    def __init__(self, root: Path, extra: str = "") -> None:
        self.root = root
        self.config = root / "pcls.toml"
        self.config.write_text(
            f'[stack]\nname = "meet"\nregion = "{REGION}"\ndomain = "{DOMAIN}"\n' + extra
        )
        boto3.client("route53", region_name=REGION).create_hosted_zone(
            Name="example.com", CallerReference=f"bench-{time.time()}"
        )

    def session(self, parallel: int = 4, patience: Patience = FAST) -> runner.Session:
        opts = runner.Options(config=self.config, parallel=parallel)
        console = Console(file=io.StringIO())
        return runner.open_session(opts, console, ui=RecordingReporter(), patience=patience)

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
def project(extra: str = "") -> Iterator[Project]:
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        yield Project(Path(tmp), extra)


def write_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path

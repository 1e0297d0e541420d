"""Drive pcls through its public surface (config file → session → engine, or the CLI) on moto."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console

from pcls import runner
from pcls.__main__ import run as cli_run
from pcls.engine import Patience, RunResult
from pcls.ui import RecordingReporter

FAST = Patience(
    poll_min=0.01,
    poll_max=0.05,
    dependency_release=1.0,
    iam_propagation=1.0,
    service_stable=5.0,
    resource_gone=5.0,
    sleep=time.sleep,
)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class Harness:
    def __init__(self, root: Path, region: str, domain: str) -> None:
        self.root = root
        self.region = region
        self.domain = domain
        self.config_path = root / "pcls.toml"
        self.write_config()
        self.last: runner.Session | None = None

    # -- config ------------------------------------------------------------------------------

    def write_config(self, extra: str = "", name: str = "meet") -> None:
        base = f'[stack]\nname = "{name}"\nregion = "{self.region}"\ndomain = "{self.domain}"\n'
        self.config_path.write_text(base + extra)

    @property
    def state_dir(self) -> Path:
        return self.root / ".pcls"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "meet.json"

    # -- AWS ---------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def make_zone(self, name: str = "example.com") -> str:
        """The registered domain's public zone, as an account would have it."""
        r53 = self.client("route53")
        return r53.create_hosted_zone(Name=name, CallerReference=f"zone-{name}-{time.time()}")[
            "HostedZone"
        ]["Id"].split("/")[-1]

    # -- runs --------------------------------------------------------------------------------

    def session(self, parallel: int = 4, patience: Patience = FAST) -> runner.Session:
        opts = runner.Options(config=self.config_path, parallel=parallel)
        console = Console(file=io.StringIO(), width=200)
        s = runner.open_session(opts, console, ui=RecordingReporter(), patience=patience)
        self.last = s
        return s

    def up(self, **kw: Any) -> RunResult:
        return runner.do_up(self.session(**kw))

    def plan(self, **kw: Any) -> RunResult:
        return self.session(**kw).engine.plan()

    def status(self, **kw: Any) -> RunResult:
        return self.session(**kw).engine.status()

    def teardown(self, **kw: Any) -> RunResult:
        return runner.do_teardown(self.session(**kw))

    def calls(self) -> dict[str, Any]:
        assert self.last is not None
        return self.last.aws.call_summary()

    def writes(self) -> dict[str, int]:
        assert self.last is not None
        from pcls.aws import is_read

        return {f"{s}:{op}": n for (s, op), n in self.last.aws.calls.items() if not is_read(op)}

    # -- CLI ---------------------------------------------------------------------------------

    def cli(self, *args: str, capsys: Any) -> CliResult:
        capsys.readouterr()
        code = cli_run(["--config", str(self.config_path), *args])
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

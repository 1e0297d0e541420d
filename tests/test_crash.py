"""Crash anywhere: a run stopped at the k-th write call is finished by a plain re-run.

For each k, `up` (or `teardown`) is stopped at its k-th write — once by an AWS error, once by a
hard stop of the process right after AWS performed the call (no cleanup code runs) — and a
plain re-run must converge to exactly what a clean run makes: no duplicate, no orphan, the
ledger complete, and a further run writes nothing.

The normal suite runs an even spread of k; `pytest -m slow tests/test_crash.py` (or
PCLS_CRASH_ALL=1) runs every k. Each run prints its counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from moto import mock_aws

from pcls import sandbox
from tests.faults import WriteCounter, on_every_client
from tests.harness import Harness
from tests.inventory import inventory, stack_only

REGION = "eu-central-1"
DOMAIN = "meet.example.com"
EVERY_K = os.environ.get("PCLS_CRASH_ALL") == "1"


def spread(total: int, count: int) -> list[int]:
    if EVERY_K or total <= count:
        return list(range(1, total + 1))
    if count == 1:
        return [(total + 1) // 2]
    step = (total - 1) / (count - 1)
    return sorted({round(1 + i * step) for i in range(count)})


def _diff(a: Counter, b: Counter) -> dict[str, int]:
    keys = set(a) | set(b)
    return {f"{k[0]} {k[1]}": a[k] - b[k] for k in sorted(keys) if a[k] != b[k]}


def _ledger_complete(h: Harness) -> list[str]:
    """Steps whose resource exists but whose ledger entry is missing or stale."""
    s = h.session()
    result = s.engine.status()
    ledger = json.loads(h.ledger_path.read_text())["steps"]
    return [
        name
        for name, r in result.results.items()
        if not s.ctx.outputs[name].retained and ledger.get(name, {}).get("id") != r.id
    ]


def _fresh(root: Path) -> Harness:
    root.mkdir(parents=True, exist_ok=True)
    h = Harness(root, region=REGION, domain=DOMAIN)
    h.make_zone("example.com")
    return h


def _baseline(root: Path) -> tuple[Counter, int, int]:
    with mock_aws():
        h = _fresh(root)
        counter = WriteCounter()
        with on_every_client(counter.register):
            assert h.up().ok
        inv = stack_only(inventory(REGION))
        down = WriteCounter()
        with on_every_client(down.register):
            assert h.teardown().ok
    return inv, len(counter.writes), len(down.writes)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Counter, int, int]:
    return _baseline(tmp_path_factory.mktemp("baseline"))


def _cases(request: pytest.FixtureRequest, default: int) -> int:
    return 10_000 if request.node.get_closest_marker("slow") else default


def run_up_error_cases(root: Path, base: Counter, ks: list[int]) -> list[int]:
    passed = []
    for k in ks:
        with mock_aws():
            h = _fresh(root / f"up-{k}")
            fault = WriteCounter(k, "error")
            with on_every_client(fault.register):
                first = h.up()
            assert not first.ok, f"k={k}: the injected error did not stop the run"
            second = h.up()
            assert second.ok, (k, [f.detail for f in second.failures])
            assert stack_only(inventory(REGION)) == base, (k, _diff(inventory(REGION), base))
            assert _ledger_complete(h) == [], k
            assert h.up().ok and h.writes() == {}, (k, h.writes())
            passed.append(k)
    return passed


def run_teardown_error_cases(root: Path, ks: list[int]) -> list[int]:
    passed = []
    for k in ks:
        with mock_aws():
            h = _fresh(root / f"down-{k}")
            assert h.up().ok
            fault = WriteCounter(k, "error")
            with on_every_client(fault.register):
                first = h.teardown()
            assert not first.ok, f"k={k}: the injected error did not stop teardown"
            second = h.teardown()
            assert second.ok, (k, [f.detail for f in second.failures], second.remaining)
            assert stack_only(inventory(REGION)) == Counter(), (k, inventory(REGION))
            passed.append(k)
    return passed


def test_up_converges_after_an_aws_error_at_write_k(
    baseline: tuple[Counter, int, int], tmp_path: Path
) -> None:
    base, writes, _ = baseline
    ks = spread(writes, 6)
    passed = run_up_error_cases(tmp_path, base, ks)
    print(f"\nup, AWS error at write k: {writes} writes; {len(ks)} cases; {len(passed)} passed")
    assert passed == ks


def test_teardown_converges_after_an_aws_error_at_write_k(
    baseline: tuple[Counter, int, int], tmp_path: Path
) -> None:
    _, _, writes = baseline
    ks = spread(writes, 4)
    passed = run_teardown_error_cases(tmp_path, ks)
    print(f"\nteardown, AWS error at write k: {writes} writes; {len(ks)}; {len(passed)} passed")
    assert passed == ks


@pytest.mark.slow
def test_up_every_k_aws_error(baseline: tuple[Counter, int, int], tmp_path: Path) -> None:
    base, writes, _ = baseline
    ks = list(range(1, writes + 1))
    passed = run_up_error_cases(tmp_path, base, ks)
    print(f"\nup, AWS error, every k: {writes} writes; {len(ks)} cases; {len(passed)} passed")
    assert passed == ks


@pytest.mark.slow
def test_teardown_every_k_aws_error(baseline: tuple[Counter, int, int], tmp_path: Path) -> None:
    _, _, writes = baseline
    ks = list(range(1, writes + 1))
    passed = run_teardown_error_cases(tmp_path, ks)
    print(f"\nteardown, AWS error, every k: {writes} writes; {len(ks)}; {len(passed)} passed")
    assert passed == ks


# -- hard stops: a subprocess that dies right after the k-th write reached AWS ---------------


def _pcls(
    cwd: Path, *args: str, fault: tuple[str, int] | None = None
) -> subprocess.CompletedProcess:
    prefix = ["-m", "tests.faults", fault[0], str(fault[1])] if fault else ["-m", "pcls"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run(
        [sys.executable, *prefix, "--config", str(cwd / "pcls.toml"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "pcls.toml").write_text(
        f'[stack]\nname = "meet"\nregion = "{REGION}"\ndomain = "{DOMAIN}"\n'
    )
    state, _ = sandbox.start(tmp_path / ".pcls")
    yield tmp_path, state["url"]
    sandbox.stop(tmp_path / ".pcls")


def _reset(root: Path, url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    (root / ".pcls" / "meet.json").unlink(missing_ok=True)


def run_hard_stop_cases(root: Path, url: str, action: str, ks: list[int] | None, count: int):
    _reset(root, url)
    counted = root / "writes.txt"
    os.environ["PCLS_FAULTS_COUNT_FILE"] = str(counted)
    try:
        clean = _pcls(root, "up", "--sandbox", fault=("count", 0))
    finally:
        del os.environ["PCLS_FAULTS_COUNT_FILE"]
    assert clean.returncode == 0, clean.stderr
    writes = len(counted.read_text().splitlines())
    base = stack_only(inventory(REGION, url))
    assert all(k <= writes for k in ks or ()), (ks, writes)
    ks = ks or spread(writes, count)
    passed = []
    for k in ks:
        _reset(root, url)
        stopped = _pcls(root, "up", "--sandbox", fault=(action, k))
        expected = 137 if action == "kill" else 130
        assert stopped.returncode == expected, (k, stopped.returncode, stopped.stderr[-500:])
        ledger = root / ".pcls" / "meet.json"
        if ledger.exists():
            json.loads(ledger.read_text())  # valid JSON at any stop (atomic writes)
        if action == "interrupt":
            assert "run up again to resume" in stopped.stderr
        again = _pcls(root, "up", "--sandbox")
        assert again.returncode == 0, (k, again.stdout[-2000:], again.stderr[-1000:])
        inv = stack_only(inventory(REGION, url))
        assert inv == base, (k, _diff(inv, base))
        status = _pcls(root, "status", "--sandbox", "--json")
        assert status.returncode == 0, (k, status.stdout[-2000:])
        passed.append(k)
    return writes, ks, passed


def test_up_converges_after_a_hard_stop(server: tuple[Path, str]) -> None:
    root, url = server
    writes, ks, passed = run_hard_stop_cases(root, url, "kill", None, 1)
    print(f"\nup, hard stop after write k: {writes} writes; {len(ks)} cases; {len(passed)} passed")
    assert passed == ks


def test_interrupt_finishes_in_flight_calls_saves_the_ledger_and_exits_130(
    server: tuple[Path, str],
) -> None:
    root, url = server
    _, ks, passed = run_hard_stop_cases(root, url, "interrupt", [20], 1)
    assert passed == ks


@pytest.mark.slow
def test_up_every_k_hard_stop(server: tuple[Path, str]) -> None:
    root, url = server
    writes, ks, passed = run_hard_stop_cases(root, url, "kill", None, 10_000)
    print(f"\nup, hard stop, every k: {writes} writes; {len(ks)} cases; {len(passed)} passed")
    assert passed == ks


def run_teardown_hard_stop_cases(root: Path, url: str, count: int) -> tuple[int, list[int], list]:
    def deploy() -> None:
        _reset(root, url)
        up = _pcls(root, "up", "--sandbox")
        assert up.returncode == 0, up.stderr[-1000:]

    deploy()
    counted = root / "writes.txt"
    os.environ["PCLS_FAULTS_COUNT_FILE"] = str(counted)
    try:
        clean = _pcls(root, "teardown", "--sandbox", "--yes", fault=("count", 0))
    finally:
        del os.environ["PCLS_FAULTS_COUNT_FILE"]
    assert clean.returncode == 0, clean.stderr
    writes = len(counted.read_text().splitlines())
    ks = spread(writes, count)
    passed = []
    for k in ks:
        deploy()
        stopped = _pcls(root, "teardown", "--sandbox", "--yes", fault=("kill", k))
        assert stopped.returncode == 137, (k, stopped.returncode, stopped.stderr[-500:])
        json.loads((root / ".pcls" / "meet.json").read_text())
        again = _pcls(root, "teardown", "--sandbox", "--yes")
        assert again.returncode == 0, (k, again.stdout[-2000:], again.stderr[-1000:])
        assert stack_only(inventory(REGION, url)) == Counter(), (k, inventory(REGION, url))
        passed.append(k)
    return writes, ks, passed


def test_teardown_converges_after_a_hard_stop(server: tuple[Path, str]) -> None:
    root, url = server
    writes, ks, passed = run_teardown_hard_stop_cases(root, url, 1)
    print(f"\nteardown, hard stop after write k: {writes} writes; {len(ks)}; {len(passed)} passed")
    assert passed == ks


@pytest.mark.slow
def test_teardown_every_k_hard_stop(server: tuple[Path, str]) -> None:
    root, url = server
    writes, ks, passed = run_teardown_hard_stop_cases(root, url, 10_000)
    print(f"\nteardown, hard stop, every k: {writes} writes; {len(ks)}; {len(passed)} passed")
    assert passed == ks

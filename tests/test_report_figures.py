"""The figures in the report, the README and the benchmarks README are the programs' own output."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "report-figures.py"


def figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("report_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figures_block_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_stale_block_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "intro\n<!-- figures:cost-headline -->\nDefault stack, idle: $1.00/month\n"
        "<!-- /figures -->\nend\n",
        encoding="utf-8",
    )
    mod = figures()
    monkeypatch.setattr(mod, "FILES", {doc: "en"})
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    assert mod.main(["--check"]) == 1
    assert "$1.00" in doc.read_text(encoding="utf-8")  # --check writes nothing
    assert mod.main([]) == 0
    text = doc.read_text(encoding="utf-8")
    assert "$1.00" not in text and "pcls cost --json" in text
    assert text.startswith("intro\n") and text.endswith("<!-- /figures -->\nend\n")
    assert mod.main(["--check"]) == 0


def test_an_unknown_block_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:no-such-table -->\n<!-- /figures -->\n", encoding="utf-8")
    mod = figures()
    monkeypatch.setattr(mod, "FILES", {doc: "en"})
    with pytest.raises(SystemExit, match="unknown figures block 'no-such-table'"):
        mod.main(["--check"])


def test_german_figures_use_decimal_commas() -> None:
    mod = figures()
    assert mod.num(1234.5, 2, "de") == "1\u202f234,50"
    assert mod.num(1234.5, 2, "en") == "1,234.50"


def test_a_design_the_cost_model_adds_fills_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = figures()
    real = mod.cost()
    keys = [key for _, _, key in mod.PENDING_DESIGNS]
    without = {k: v for k, v in real["comparisons"].items() if k not in keys}
    added = {
        "name": "HA EC2 pair",
        "idle": 123.45,
        "max": 234.56,
        "vs_stack_idle": 123.45 - real["decisions"]["always_on"],
        "asleep": None,
        "awake_hour": None,
        "note": "",
    }
    for comparisons, waiting in (
        (without, set(keys)),  # a model without them: every row waits for its key
        ({**without, keys[0]: added}, set(keys[1:])),  # the first arrives: its row fills
    ):
        data = {**real, "comparisons": comparisons}
        monkeypatch.setattr(mod, "cost", lambda region=mod.HOME, variant="", d=data: d)
        mod.missing.clear()
        table = mod.block_cost_compare("en")
        for key in keys:
            assert (f"to come: `comparisons.{key}`" in table) == (key in waiting), key
        assert mod.missing == {f"comparisons.{key}" for key in waiting}
    row = next(line for line in table.splitlines() if line.startswith("| HA EC2 pair "))
    assert "| 123.45 | 234.56 |" in row


def test_the_cost_targets_come_from_the_decisions() -> None:
    mod = figures()
    d = mod.cost()["decisions"]
    table = mod.block_cost_decisions("en")
    for key, value in (("asleep_month", 2), ("awake_hour", 4), ("always_on", 2)):
        assert f"**{mod.num(d[key], value)}**" in table, key
    assert f"**{mod.num(d['month']['total'])}**" in table
    assert f"**{mod.num(d['worst_case']['total'])}**" in table

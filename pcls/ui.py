"""Progress output: a live line per step in flight, a persistent line per finished step.

Polling (the engine and steps) is separate from rendering (this module), as in AWS Copilot:
steps report what they wait for, the reporter decides how to show it. On a terminal the
in-flight lines are a rich Live region; elsewhere (CI logs, pipes) plain lines are printed.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from pcls.errors import ConfigError


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    KEPT = "kept"
    WOULD_CREATE = "would create"
    WOULD_UPDATE = "would update"
    WOULD_DELETE = "would delete"
    IN_SYNC = "in sync"
    DRIFTED = "drifted"
    MISSING = "missing"


STYLE = {
    Outcome.CREATED: "green",
    Outcome.UPDATED: "yellow",
    Outcome.UNCHANGED: "dim",
    Outcome.DELETED: "red",
    Outcome.ABSENT: "dim",
    Outcome.FAILED: "bold red",
    Outcome.SKIPPED: "dim",
    Outcome.CANCELLED: "yellow",
    Outcome.KEPT: "cyan",
    Outcome.WOULD_CREATE: "green",
    Outcome.WOULD_UPDATE: "yellow",
    Outcome.WOULD_DELETE: "red",
    Outcome.IN_SYNC: "green",
    Outcome.DRIFTED: "yellow",
    Outcome.MISSING: "red",
}
SYMBOL = {
    Outcome.CREATED: "+",
    Outcome.UPDATED: "~",
    Outcome.DELETED: "-",
    Outcome.WOULD_CREATE: "+",
    Outcome.WOULD_UPDATE: "~",
    Outcome.WOULD_DELETE: "-",
    Outcome.FAILED: "!",
    Outcome.DRIFTED: "~",
    Outcome.MISSING: "?",
}


class Reporter(Protocol):
    def info(self, text: str) -> None: ...
    def start(self, step: str, action: str) -> None: ...
    def progress(self, step: str, text: str) -> None: ...
    def finish(self, step: str, outcome: Outcome, detail: str = "") -> None: ...
    def close(self) -> None: ...


@dataclass
class _InFlight:
    action: str
    started: float
    text: str = ""


class ConsoleReporter:
    """Rich output on a terminal, plain lines otherwise."""

    def __init__(
        self,
        console: Console | None = None,
        quiet: bool = False,
        hide: frozenset[Outcome] = frozenset(),
    ) -> None:
        # quiet: only the live region on a terminal (status renders its own table).
        # hide: outcomes not worth a line (plan lists changes, not what stays the same).
        self.console = console or Console(highlight=False)
        self.quiet = quiet
        self.hide = hide
        self.live_mode = self.console.is_terminal
        self._inflight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        if self.live_mode:
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=8,
                transient=True,
            )  # fmt: skip
            self._live.start()

    def _render(self) -> Any:
        with self._lock:
            items = list(self._inflight.items())
        table = Table.grid(padding=(0, 1))
        for step, f in items:
            elapsed = time.monotonic() - f.started
            table.add_row(
                Spinner("dots", style="cyan"),
                Text(f"{f.action} {step}", style="bold"),
                Text(f"{elapsed:5.0f}s", style="dim"),
                Text(f.text, style="dim"),
            )
        return Group(table)

    def _print(self, renderable: Any) -> None:
        if self._live is not None:
            self._live.console.print(renderable)
        else:
            self.console.print(renderable, soft_wrap=True)

    def info(self, text: str) -> None:
        self._print(Text(text))

    def start(self, step: str, action: str) -> None:
        with self._lock:
            self._inflight[step] = _InFlight(action, time.monotonic())

    def progress(self, step: str, text: str) -> None:
        with self._lock:
            f = self._inflight.get(step)
            changed = f is not None and f.text != text
            if f is not None:
                f.text = text
        if changed and not self.live_mode and not self.quiet:
            elapsed = time.monotonic() - f.started  # type: ignore[union-attr]
            self._print(Text(f"  … {step}: {text} ({elapsed:.0f}s)", style="dim"))

    def finish(self, step: str, outcome: Outcome, detail: str = "") -> None:
        with self._lock:
            f = self._inflight.pop(step, None)
        elapsed = f"{time.monotonic() - f.started:.1f}s" if f else ""
        if (self.quiet or outcome in self.hide) and outcome is not Outcome.FAILED:
            return
        line = Text()
        line.append(f"{SYMBOL.get(outcome, ' ')} ", style=STYLE[outcome])
        line.append(f"{outcome.value:<13}", style=STYLE[outcome])
        line.append(f"{step:<24}")
        if detail:
            line.append(f" {detail}")
        if elapsed and outcome not in (Outcome.UNCHANGED, Outcome.ABSENT, Outcome.SKIPPED):
            line.append(f" ({elapsed})", style="dim")
        self._print(line)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


@dataclass
class RecordingReporter:
    """Keeps every event; for tests and for callers that render results themselves."""

    events: list[tuple[str, ...]] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.events.append(("info", text))

    def start(self, step: str, action: str) -> None:
        self.events.append(("start", step, action))

    def progress(self, step: str, text: str) -> None:
        self.events.append(("progress", step, text))

    def finish(self, step: str, outcome: Outcome, detail: str = "") -> None:
        self.events.append(("finish", step, outcome.value, detail))

    def close(self) -> None:
        pass

    def outcomes(self) -> dict[str, str]:
        return {e[1]: e[2] for e in self.events if e[0] == "finish"}

    def text(self) -> str:
        return "\n".join(" ".join(e) for e in self.events)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def confirm_stack_name(
    stack: str, yes: bool, command: str, question: str, consent: str, refused: str
) -> None:
    """Go on only with --yes or when the operator types the stack's name at a terminal.

    Refusals: `<command>: not a terminal; pass --yes to confirm <consent>` and
    `<command>: confirmation did not match; <refused>`.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{command}: not a terminal; pass --yes to confirm {consent}")
    try:
        answer = input(question)
    except EOFError:
        answer = ""
    if answer.strip() != stack:
        raise ConfigError(f"{command}: confirmation did not match; {refused}")

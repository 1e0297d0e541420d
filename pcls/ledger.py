"""The local ledger: a cache of resource ids per step, beside the config in .pcls/<stack>.json.

AWS tags are the truth; the ledger only saves lookups and lets `status` name what it expects.
It is written atomically after every change, so a run stopped anywhere leaves valid JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pcls.errors import ConfigError

SCHEMA = 1


class Ledger:
    def __init__(self, state_dir: Path, stack: str) -> None:
        self.state_dir = state_dir
        self.stack = stack
        self.path = state_dir / f"{stack}.json"
        self.lock_path = state_dir / f"{stack}.lock"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self.data: dict[str, Any] = self._load()

    def _empty(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "stack": self.stack, "account": "", "region": "", "steps": {}}

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._empty()
        try:
            data = json.loads(text)
            schema = data.get("schema") if isinstance(data, dict) else None
            if isinstance(schema, int) and schema != SCHEMA:
                raise ConfigError(
                    f"{self.path}: ledger schema {schema}; this pcls reads schema {SCHEMA}"
                )
            if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
                raise ValueError("not a pcls ledger")
        except ValueError as exc:
            backup = self.path.with_name(
                f"{self.path.name}.corrupt-{time.strftime('%Y%m%d%H%M%S')}"
            )
            os.replace(self.path, backup)
            raise ConfigError(
                f"{self.path}: unreadable ledger ({exc}); kept as {backup.name}; "
                "run again to rebuild it from AWS tags"
            ) from None
        if data.get("schema") != SCHEMA:
            raise ConfigError(
                f"{self.path}: ledger schema {data.get('schema')!r}; "
                f"this pcls reads schema {SCHEMA}"
            )
        if data.get("stack") != self.stack:
            raise ConfigError(
                f"{self.path}: ledger is for stack {data.get('stack')!r}, "
                f"config says {self.stack!r}"
            )
        return data

    # -- target ------------------------------------------------------------------------------

    def check_target(self, account: str, region: str) -> None:
        """Refuse a ledger written for another account or region."""
        for key, have in (("account", account), ("region", region)):
            recorded = self.data.get(key)
            if recorded and recorded != have:
                raise ConfigError(
                    f"{self.path}: ledger is for {key} {recorded}, credentials point at {have}; "
                    f"switch {key} or move the ledger away"
                )

    def bind_target(self, account: str, region: str) -> None:
        self.check_target(account, region)
        if (self.data["account"], self.data["region"]) != (account, region):
            with self._lock:
                self.data["account"], self.data["region"] = account, region
                # A run refused before its first create leaves no ledger behind; the first
                # record() writes the target along with the id.
                if self.data["steps"]:
                    self._save()

    # -- entries -----------------------------------------------------------------------------

    def get(self, step: str) -> dict[str, Any]:
        return dict(self.data["steps"].get(step, {}))

    def id(self, step: str) -> str | None:
        return self.data["steps"].get(step, {}).get("id")

    def record(self, step: str, entry: dict[str, Any]) -> None:
        with self._lock:
            if self.data["steps"].get(step) == entry:
                return
            self.data["steps"][step] = entry
            self._save()

    def forget(self, step: str) -> None:
        with self._lock:
            if self.data["steps"].pop(step, None) is not None:
                self._save()

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["steps"])

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.stack}.", suffix=".tmp", dir=self.state_dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # -- lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive run lock: a second writer of the same stack is refused at once."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"stack {self.stack!r} is locked by pid {holder} ({self.lock_path}); "
                "wait for that run to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._lock_fd = None

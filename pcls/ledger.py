"""The local ledger: a cache of resource ids per step, beside the config in .pcls/<stack>.json.

AWS tags are the truth; the ledger only saves lookups and lets `status` name what it expects.
It is written atomically after every change (a temporary file in the same directory, fsync,
rename), so a run stopped anywhere leaves the previous or the new valid JSON, never a mix.

A ledger that cannot be trusted — not JSON, valid JSON of the wrong shape, a directory where the
file should be, an id that does not fit its step (`reject`) — is moved aside as
`<stack>.json.corrupt-<timestamp>` and the run stops with a ConfigError: nothing is written,
and the next run rebuilds the ledger from the tags.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from pcls.errors import ConfigError

SCHEMA = 1
REBUILD = "the ledger is only a cache: run again to rebuild it from AWS tags"


def _shape_error(data: Any) -> str | None:
    """What is wrong with a parsed schema-1 ledger, or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if type(data.get("schema")) is not int:
        return f"schema {data.get('schema')!r} is not a whole number"
    for key in ("stack", "account", "region"):
        if not isinstance(data.get(key, ""), str):
            return f"{key} {data[key]!r} is not a string"
    if "stack" not in data:
        return "no stack"
    if not isinstance(data.get("steps"), dict):
        return "steps is not an object"
    for step, entry in data["steps"].items():
        if not isinstance(entry, dict):
            return f"steps.{step} is not an object"
        rid = entry.get("id")
        if not isinstance(rid, str) or not rid.strip():
            return f"steps.{step}.id {rid!r} is not a non-empty string"
    return None


class Ledger:
    def __init__(self, state_dir: Path, stack: str) -> None:
        self.state_dir = state_dir
        self.stack = stack
        self.path = state_dir / f"{stack}.json"
        self.lock_path = state_dir / f"{stack}.lock"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._rejected = False
        self.data: dict[str, Any] = self._load()

    def _empty(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "stack": self.stack, "account": "", "region": "", "steps": {}}

    def _load(self) -> dict[str, Any]:
        try:
            st = os.stat(self.state_dir)
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise ConfigError(f"{self.state_dir}: cannot read ledger directory ({exc})") from None
        if not stat.S_ISDIR(st.st_mode):
            kind = "a file" if stat.S_ISREG(st.st_mode) else "not a directory"
            self._damaged(self.state_dir, f"{kind}, where the ledger directory should be")
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read ledger ({exc})") from None
        if not stat.S_ISREG(st.st_mode):
            # Never opened: a FIFO would block, a directory cannot be read.
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            self._damaged(self.path, f"{kind}, where the ledger file should be")
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            self._damaged(self.path, f"unreadable ledger ({exc})")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read ledger ({exc})") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self._damaged(self.path, f"unreadable ledger ({str(exc) or 'nested too deep'})")
        schema = data.get("schema") if isinstance(data, dict) else None
        if type(schema) is int and schema != SCHEMA:
            # A newer pcls wrote it: its layout may differ; it stays where it is.
            raise ConfigError(
                f"{self.path}: ledger schema {schema}; this pcls reads schema {SCHEMA}"
            )
        if (why := _shape_error(data)) is not None:
            self._damaged(self.path, f"unreadable ledger ({why})")
        if data["stack"] != self.stack:
            raise ConfigError(
                f"{self.path}: ledger is for stack {data.get('stack')!r}, "
                f"config says {self.stack!r}"
            )
        return {**self._empty(), **data}

    def _aside(self, path: Path) -> Path | None:
        """Move path aside as <name>.corrupt-<timestamp>[-n]; the new path, or None if absent."""
        stamp = time.strftime("%Y%m%d%H%M%S")
        for n in range(1, 1000):
            backup = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{n}" if n > 1 else ""))
            if os.path.lexists(backup):
                continue  # never replace an earlier backup
            try:
                os.rename(path, backup)
            except FileNotFoundError:
                if not os.path.lexists(path):
                    return None
                raise
            return backup
        raise ConfigError(f"{path}: too many backups of the ledger; clean up {path.parent}")

    def _damaged(self, path: Path, what: str) -> NoReturn:
        backup = self._aside(path)
        kept = f"kept as {backup.name}" if backup else "no file to keep"
        raise ConfigError(f"{path}: {what}; {kept}; {REBUILD}")

    def reject(self, step: str, reason: str) -> NoReturn:
        """Stop the run over one damaged entry: move the ledger aside, write nothing more.

        For an id of the wrong form for its step, or one that names another stack's resource.
        """
        with self._lock:
            self._rejected = True  # steps still in flight record nothing from now on
            backup = self._aside(self.path)
        kept = f"kept as {backup.name}" if backup else "no ledger file was written yet"
        raise ConfigError(f"{self.path}: ledger entry {step}: {reason}; {kept}; {REBUILD}")

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
        with self._lock:
            # Kept in memory only: a run refused before its first change (no zone, a damaged
            # entry, a collision) leaves the ledger as it found it, or none at all; the next
            # record() or forget() writes the target along with the change.
            self.data["account"], self.data["region"] = account, region

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
        """Write the ledger atomically: temp file in the same directory, fsync, rename, fsync dir.

        A crash before the rename leaves the previous file untouched; after it, the new one.
        """
        if self._rejected:
            return
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
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)

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

"""The stack's run lock in AWS: one `up` or `teardown` of a stack at a time, from any machine.

The lock is an SSM String parameter, `/pcls/<stack>/run/lock`, tagged pcls:stack=<stack> and
pcls:step=lock. Its value is JSON: the holder (the caller's ARN), host, pid, command, start
time, lease expiry, and a random token that only the holding run knows.

- Taking it is one PutParameter with Overwrite=False: SSM creates a name once, so of two runs
  racing for it one gets ParameterAlreadyExists and is refused. A run first reads the lock
  (GetParameter), so a refused run makes no write call at all.
- While the run lives a background thread renews the lease (every RENEW_SECONDS; the lease is
  LEASE_SECONDS). It overwrites the value only after GetParameter shows our token, and checks
  that the write made exactly the next version. Otherwise the lock was removed or taken while
  we ran: the run is stopped at a safe point and reports it.
- Release deletes the parameter only if it still carries our token.
- A lock whose lease ran out is stale: its run stopped renewing (killed hard, machine gone). It
  is reported with its holder and removed by `pcls unlock`, never taken over silently. One
  exception: a lock written on this very machine (same host, boot and pid namespace) by a
  process that no longer exists is taken over at once, since nothing can run under it.

AWS actions: ssm:GetParameter, ssm:PutParameter, ssm:AddTagsToResource (the tags given to
PutParameter), ssm:DeleteParameter; the holder's ARN is sts:GetCallerIdentity, which every run
makes anyway. All calls go through the run's `Aws` (counted, under the step name "lock").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from pcls.aws import Aws, describe_error, error_code, tag_list
from pcls.errors import EXIT_AWS, EXIT_USAGE, PclsError

LEASE_SECONDS = 600.0
RENEW_SECONDS = 60.0
STEP = "lock"  # its pcls:step tag, and the step its calls are counted under


def parameter(stack: str) -> str:
    return f"/pcls/{stack}/run/lock"


class LockHeld(PclsError):
    """Another run holds the stack's lock, or left it stale: nothing was touched."""

    exit_code = EXIT_USAGE


class LockLost(PclsError):
    """The run's lock was removed or taken while the run went on; the run stopped."""

    exit_code = EXIT_AWS


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@functools.cache
def machine_id() -> str:
    """This host, boot and pid namespace, where pids mean something; "" where unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    text = "\0".join((socket.gethostname(), boot, pid_ns))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _start_ticks(pid: int) -> str:
    """When `pid` started (clock ticks after boot): a reused pid is another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _gone(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    now = _start_ticks(pid)
    return bool(started and now and now != started)


@dataclass(frozen=True)
class Holder:
    """What a lock's value says about the run that holds it."""

    holder: str
    host: str
    pid: int
    command: str
    started: str
    expires: str
    token: str = ""
    machine: str = ""
    process: str = ""
    version: int = 0  # the parameter's SSM version when it was read

    @classmethod
    def parse(cls, value: str, version: int = 0) -> Holder:
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return cls("(not a pcls lock value)", "?", 0, "?", "?", "", version=version)

        def text(key: str) -> str:
            v = doc.get(key)
            return v if isinstance(v, str) else ""

        pid = doc.get("pid")
        return cls(
            holder=text("holder") or "?",
            host=text("host") or "?",
            pid=pid if isinstance(pid, int) else 0,
            command=text("command") or "?",
            started=text("started") or "?",
            expires=text("expires"),
            token=text("token"),
            machine=text("machine"),
            process=text("process"),
            version=version,
        )

    def expired(self, now: dt.datetime | None = None) -> bool:
        t = _parse_time(self.expires)
        return t is None or t <= (now or _now())

    def abandoned(self) -> bool:
        """Written on this machine by a process that has gone: nothing runs under it."""
        mine = machine_id()
        return bool(mine and self.machine == mine and self.pid > 0) and _gone(
            self.pid, self.process
        )

    def describe(self) -> str:
        return (
            f"{self.holder} on {self.host} (pid {self.pid}, `pcls {self.command}`) "
            f"since {self.started}"
        )

    def state(self) -> str:
        if self.expired():
            return f"stale: its lease expired {self.expires or '(unknown)'}"
        return f"lease expires {self.expires}"


class RunLock:
    """The lock one run of `command` takes on `stack`. acquire() once; release() always."""

    def __init__(
        self,
        aws: Aws,
        stack: str,
        command: str,
        *,
        lease: float | None = None,
        renew_every: float | None = None,
        on_lost: Callable[[str], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.aws = aws
        self.stack = stack
        self.command = command
        self.name = parameter(stack)
        self.lease = LEASE_SECONDS if lease is None else lease
        self.renew_every = RENEW_SECONDS if renew_every is None else renew_every
        self.on_lost = on_lost
        self.notice = notice
        self.token = secrets.token_hex(16)
        self.started = _now()
        self.expires = self.started
        self.version = 0  # SSM version of our value, once written
        self.lost = ""  # why the lock stopped being ours, once it did
        self._written = False  # a put of ours may have reached AWS: release must look
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # one renewal or release at a time
        self._thread: threading.Thread | None = None

    # -- AWS ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _counted(self) -> Iterator[Any]:
        before = self.aws.current_step
        self.aws.current_step = STEP
        try:
            yield self.aws.client("ssm")
        finally:
            self.aws.current_step = before

    def read(self) -> Holder | None:
        with self._counted() as ssm:
            try:
                p = ssm.get_parameter(Name=self.name)["Parameter"]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    return None
                raise
        return Holder.parse(str(p.get("Value", "")), int(p.get("Version", 0)))

    def _value(self) -> str:
        self.expires = _now() + dt.timedelta(seconds=self.lease)
        doc = {
            "holder": self.aws.identity()["arn"],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": self.command,
            "started": _iso(self.started),
            "expires": _iso(self.expires),
            "lease_seconds": self.lease,
            "token": self.token,
            "machine": machine_id(),
            "process": _start_ticks(os.getpid()),
        }
        return json.dumps(doc, sort_keys=True)

    def _put(self, overwrite: bool) -> int:
        args: dict[str, Any] = {"Name": self.name, "Value": self._value(), "Type": "String"}
        if overwrite:
            args["Overwrite"] = True  # SSM takes no tags with Overwrite; the first put set them
        else:
            args.update(
                Overwrite=False,
                Tags=tag_list(self.stack, STEP),
                Description=f"pcls {self.stack}: run lock of `pcls {self.command}`",
            )
        self._written = True
        with self._counted() as ssm:
            reply = ssm.put_parameter(**args)
        return int(reply.get("Version", 0))

    # -- take, keep, give back ---------------------------------------------------------------

    def refusal(self, held: Holder) -> LockHeld:
        if held.expired():
            return LockHeld(
                f"stack {self.stack!r} has a stale run lock: {held.describe()}; its lease "
                f"expired {held.expires or '(unknown)'}; if that run is gone, remove the lock "
                "with `pcls unlock`"
            )
        return LockHeld(
            f"stack {self.stack!r} is locked by {held.describe()}; lease expires "
            f"{held.expires}; wait for that run to finish"
        )

    def check(self) -> Holder | None:
        """Refuse (LockHeld) when another run holds the lock, with a read only.

        Returns the lock of a gone process on this machine, which acquire() will take over.
        """
        held = self.read()
        if held is None or held.token == self.token:
            return None
        if held.abandoned():
            return held
        raise self.refusal(held)

    def acquire(self) -> None:
        """Take the lock (LockHeld when another run has it) and keep renewing it."""
        for _ in range(3):
            held = self.read()
            if held is not None and held.token == self.token:
                self.version = held.version  # a create retried by botocore had gone through
                break
            if held is None:
                try:
                    self.version = self._put(overwrite=False)
                    break
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) != "ParameterAlreadyExists":
                        raise
                    self._written = False
                    continue  # another run created it meanwhile: read who
            if not held.abandoned():
                raise self.refusal(held)
            self.version = self._put(overwrite=True)
            if self.notice:
                self.notice(f"took over the run lock of {held.describe()}: that process has gone")
            break
        else:
            raise LockHeld(f"stack {self.stack!r}: the run lock {self.name} keeps changing")
        self._thread = threading.Thread(target=self._renewing, name="pcls-lock", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Extend the lease once if the lock is still ours; False (and `lost`) when it is not."""
        with self._mutex:
            if self._stop.is_set():
                return True  # released meanwhile
            held = self.read()
            if held is None or held.token != self.token:
                who = "removed" if held is None else f"taken by {held.describe()}"
                self._lose(f"the run lock {self.name} was {who}")
                return False
            version = self._put(overwrite=True)
            if version != held.version + 1:
                # Someone wrote between our read and our write: the value may have been theirs.
                self._lose(f"the run lock {self.name} changed while it was renewed")
                return False
            self.version = version
            return True

    def _renewing(self) -> None:
        self.aws.current_step = STEP
        wait = self.renew_every
        while not self._stop.wait(wait):
            try:
                if not self.renew():
                    return
                wait = self.renew_every
            except Exception as exc:  # the thread must outlive any one failure
                # AWS out of reach for now: try again soon; once the lease has run out, another
                # operator may rightly remove the lock, so this run must stop.
                if _now() >= self.expires:
                    self._lose(
                        f"the run lock {self.name} could not be renewed before its lease ran "
                        f"out ({describe_error(exc)})"
                    )
                    return
                wait = min(self.renew_every, 10.0)

    def _lose(self, why: str) -> None:
        self.lost = why
        if self.on_lost and not self._stop.is_set():
            self.on_lost(why)

    def release(self) -> None:
        """Stop renewing; delete the lock if it still carries our token. Never raises on AWS."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._mutex:
            if not self._written:
                return
            try:
                held = self.read()
                if held is not None and held.token == self.token:
                    with self._counted() as ssm:
                        ssm.delete_parameter(Name=self.name)
                self._written = False
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                print(
                    f"warning: the run lock {self.name} was not released "
                    f"({describe_error(exc)}); it expires {_iso(self.expires)}, or remove it "
                    "with `pcls unlock`",
                    file=sys.stderr,
                )

    def remove(self, seen: Holder) -> bool:
        """`pcls unlock`: delete the lock if it is still the one the operator saw."""
        held = self.read()
        if held is None:
            return True
        if (held.token, held.version) != (seen.token, seen.version):
            return False
        with self._counted() as ssm:
            ssm.delete_parameter(Name=self.name)
        return True

"""Fault injection at the botocore layer: real AWS errors and hard stops, no pcls code mocked.

Every client pcls makes comes from botocore's Session.create_client, so patching that one
function lets a test hook every call of a run (in this process or, through
`python -m tests.faults`, in a subprocess that must die without cleanup).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from pcls.aws import is_read

Register = Callable[[Any], None]


@contextlib.contextmanager
def on_every_client(register: Register) -> Iterator[None]:
    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        register(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class _Body:
    """An HTTP body as botocore reads it: streamed, or read at once."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


def aws_answer(url: str, status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
    """What a `before-send` handler returns to answer a request itself: botocore parses it, and
    retries on it, exactly as an answer from AWS."""
    return AWSResponse(url, status, headers, _Body(body))


class FailNth:
    """Raise an AWS-style error on selected calls, matched by operation, a given number of times.

    `when(op)` decides per call; e.g. FailNth("DeleteTargetGroup", times=3, code="ResourceInUse").
    """

    def __init__(self, operation: str, *, times: int, code: str, message: str = "") -> None:
        self.operation = operation
        self.left = times
        self.code = code
        self.message = message or f"injected {code}"
        self.raised = 0
        self._lock = threading.Lock()

    def register(self, client: Any) -> None:
        client.meta.events.register("before-call", self._hook)

    def _hook(self, model: Any, **_: Any) -> None:
        if model.name != self.operation:
            return
        with self._lock:
            if self.left <= 0:
                return
            self.left -= 1
            self.raised += 1
        raise client_error(self.code, self.message, model.name)


class WriteCounter:
    """Counts write calls; at the k-th one does `action` ('error', 'kill', 'interrupt')."""

    def __init__(self, k: int = 0, action: str = "") -> None:
        self.k = k
        self.action = action
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def register(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)

    def _nth(self, model: Any) -> int:
        if is_read(model.name):
            return 0
        with self._lock:
            self.writes.append(f"{model.service_model.service_name}:{model.name}")
            return len(self.writes)

    def _before(self, model: Any, context: dict[str, Any] | None = None, **_: Any) -> None:
        n = self._nth(model)
        if context is not None:
            context["pcls_write_n"] = n  # concurrent calls: each remembers its own number
        if n and n == self.k and self.action == "error":
            raise client_error("InternalFailure", f"injected failure at write {n}", model.name)

    def _after(self, model: Any, context: dict[str, Any] | None = None, **_: Any) -> None:
        if (context or {}).get("pcls_write_n") != self.k:
            return
        # The call reached AWS; the process now dies before pcls can record anything.
        if self.action == "kill":
            os._exit(137)
        if self.action == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)


def main() -> None:
    """python -m tests.faults ACTION K pcls-args...: run pcls with a fault at write K."""
    action, k = sys.argv[1], int(sys.argv[2])
    counter = WriteCounter(k, action)
    from pcls.__main__ import run

    with on_every_client(counter.register):
        code = run(sys.argv[3:])
    out = os.environ.get("PCLS_FAULTS_COUNT_FILE")
    if out:
        with open(out, "w") as fh:
            fh.write("\n".join(counter.writes))
    sys.exit(code)


if __name__ == "__main__":
    main()

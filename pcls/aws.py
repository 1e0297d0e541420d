"""One boto3 session, clients with one retry config, call accounting, and small AWS helpers.

Every client is created here so that three things hold for all of them: botocore's retry mode
owns throttling, every call is counted (read or write), and a read-only run (plan, status)
cannot send a write even by mistake.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session
import tenacity

from pcls import __version__
from pcls.errors import ConfigError, WriteInReadOnlyRun

READ_PREFIXES = ("Describe", "List", "Get", "Head", "Search", "Lookup", "BatchGet", "Validate")
STACK_TAG = "pcls:stack"
STEP_TAG = "pcls:step"
RETRY_ATTEMPTS = 10
# Service models are parsed once per process, however many sessions a process opens.
_LOADER = botocore.loaders.create_loader()


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return str(exc)


def is_not_found(exc: BaseException) -> bool:
    code = error_code(exc)
    return (
        "NotFound" in code
        or code.startswith("NoSuch")
        or code
        in ("ResourceNotFoundException", "ServiceNotFoundException", "InvalidGroup.NotFound")
        or code in ("ParameterNotFound", "ClusterNotFoundException", "ObjectNotFoundException")
    )


def ignore_missing(
    fn: Callable[[], Any], *, also: Sequence[str] = (), messages: Sequence[str] = ()
) -> Any:
    """Run a delete; not-found (or a code in `also`, a message start in `messages`) is done."""
    try:
        return fn()
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc) or error_code(exc) in also:
            return None
        if messages and error_message(exc).startswith(tuple(messages)):
            return None
        raise


def describe_error(exc: BaseException) -> str:
    """'Code: message' for a ClientError, the text otherwise."""
    code = error_code(exc)
    return f"{code}: {error_message(exc)}" if code else str(exc)


def tag_list(stack: str, step: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    tags = {**(extra or {}), STACK_TAG: stack, STEP_TAG: step}
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tags_of(items: Iterable[dict[str, str]] | None) -> dict[str, str]:
    """Tag list ([{Key, Value}] in any casing) to a dict."""
    out = {}
    for t in items or ():
        key = t.get("Key", t.get("key"))
        if key is not None:
            out[key] = t.get("Value", t.get("value", ""))
    return out


def tag_drift(want: dict[str, str], have: dict[str, str]) -> list[str]:
    """Differences in the tags pcls owns; tags others add (aws:*, anything extra) are left alone."""
    return [
        f"tag {k}: {have[k]!r} -> {v!r}" if k in have else f"tag {k} missing"
        for k, v in sorted(want.items())
        if have.get(k) != v
    ]


class Aws:
    """Clients for one account and region. Thread-safe; one instance per run."""

    def __init__(
        self,
        region: str | None,
        *,
        endpoint_url: str | None = None,
        sandbox: bool = False,
        profile: str | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if sandbox:
            # The sandbox never sees real credentials, whatever the environment holds.
            kwargs = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        try:
            core = botocore.session.Session(profile=profile)
            core.register_component("data_loader", _LOADER)
            core.get_scoped_config()  # an unknown AWS_PROFILE fails here, as a config error
            self.session = boto3.session.Session(
                region_name=region or None, botocore_session=core, **kwargs
            )
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"AWS_PROFILE: {exc}") from None
        if not self.session.region_name:
            raise ConfigError("stack.region: not set; set it in pcls.toml or AWS_REGION")
        self.region: str = self.session.region_name
        self.endpoint_url = endpoint_url
        self.sandbox = sandbox
        self.config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
            user_agent_extra=f"pcls/{__version__}",
            max_pool_connections=32,
        )
        self.read_only = False
        self.calls: Counter[tuple[str, str]] = Counter()
        self.call_order: list[tuple[str, str]] = []
        self.step_calls: Counter[tuple[str, str, str]] = Counter()  # (step, service, op)
        self._local = threading.local()
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._identity: dict[str, str] | None = None
        # Says why credentials were refused when it is not the credentials (a region that is
        # not enabled fails STS with InvalidClientTokenId); '' when it cannot tell.
        self.explain_rejection: Callable[[Aws], str] | None = None

    # -- clients -----------------------------------------------------------------------------

    def client(self, service: str, region: str | None = None) -> Any:
        """The run's client for `service` (in `region` when given: a global API's home)."""
        key = service if region in (None, self.region) else f"{service}@{region}"
        with self._lock:
            if key not in self._clients:
                client = self.session.client(
                    service,
                    region_name=region or self.region,
                    config=self.config,
                    endpoint_url=self.endpoint_url,
                )
                client.meta.events.register("before-call", self._before_call)
                self._clients[key] = client
            return self._clients[key]

    def probe_client(self, service: str) -> Any:
        """A client that tries once with short timeouts, for optional status details.

        The shared clients retry up to ten times; a call an endpoint cannot serve would hold a
        read-only run for a minute. Calls are still counted and still write-guarded.
        """
        key = f"probe:{service}"
        with self._lock:
            if key not in self._clients:
                config = self.config.merge(
                    botocore.config.Config(
                        retries={"mode": "standard", "max_attempts": 1},
                        connect_timeout=3,
                        read_timeout=5,
                    )
                )
                client = self.session.client(service, config=config, endpoint_url=self.endpoint_url)
                client.meta.events.register("before-call", self._before_call)
                self._clients[key] = client
            return self._clients[key]

    def _before_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        op = model.name
        write = not is_read(op)
        if write and self.read_only:
            raise WriteInReadOnlyRun(f"{service}:{op} refused: this run only reads")
        with self._lock:
            self.calls[(service, op)] += 1
            self.call_order.append((service, op))
            self.step_calls[(self.current_step, service, op)] += 1
            if write:
                # Any write may change what a cached listing of that service says.
                for key in [k for k in self._cache if k[0] == service]:
                    del self._cache[key]

    @property
    def current_step(self) -> str:
        """The step this thread works for (set by the engine), for per-step call counts."""
        return getattr(self._local, "step", "")

    @current_step.setter
    def current_step(self, step: str) -> None:
        self._local.step = step

    @property
    def endpoint(self) -> str:
        """The endpoint the clients talk to (shown before every write run)."""
        return str(self.client("sts").meta.endpoint_url)

    @property
    def custom_endpoint(self) -> bool:
        host = urlparse(self.endpoint).hostname or ""
        return not host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            try:
                ident = self.client("sts").get_caller_identity()
            except botocore.exceptions.NoCredentialsError:
                raise ConfigError(
                    "AWS credentials: none found; set AWS_PROFILE or AWS_ACCESS_KEY_ID, "
                    "or use --sandbox"
                ) from None
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code in ("InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure"):
                    why = self.explain_rejection(self) if self.explain_rejection else ""
                    if why:
                        raise ConfigError(why) from None
                if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"):
                    raise ConfigError(
                        f"AWS credentials: {code}; refresh them (e.g. aws sso login) and retry"
                    ) from None
                raise
            self._identity = {"account": ident["Account"], "arn": ident["Arn"]}
        return self._identity

    # -- reads -------------------------------------------------------------------------------

    def cached(self, service: str, operation: str, **params: Any) -> Any:
        """One call per distinct request per run (until a write to that service).

        Concurrent steps asking the same question share one call: this is what keeps a no-op
        run at one describe per resource type rather than one per resource.
        """
        key = (service, operation, _freeze(params))
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            result = self._fetch(service, operation, params)
            with self._lock:
                self._cache[key] = result
            return result

    def _fetch(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        client = self.client(service)
        if client.can_paginate(operation):
            return client.get_paginator(operation).paginate(**params).build_full_result()
        return getattr(client, operation)(**params)

    def all(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        """Every item of a (paginated) listing, cached for the run."""
        return list(self.cached(service, operation, **params).get(key, []))

    def forget_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- stats -------------------------------------------------------------------------------

    def call_summary(self) -> dict[str, Any]:
        with self._lock:
            reads = sum(n for (_, op), n in self.calls.items() if is_read(op))
            writes = sum(n for (_, op), n in self.calls.items() if not is_read(op))
            by_op = {f"{s}:{op}": n for (s, op), n in sorted(self.calls.items())}
        return {"reads": reads, "writes": writes, "total": reads + writes, "calls": by_op}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def stack_filter(stack: str) -> list[dict[str, Any]]:
    """EC2-style filter for everything a stack owns."""
    return [{"Name": f"tag:{STACK_TAG}", "Values": [stack]}]


def eventually(
    fn: Callable[[], Any],
    *,
    codes: Sequence[str] = (),
    messages: Sequence[str] = (),
    timeout: float = 120.0,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Any:
    """Retry one call through eventual consistency botocore does not retry.

    Matches on error code and message (as IAM's "role cannot be assumed" only shows in the
    message). Bounded by `timeout`; the last error is raised unchanged after it.
    """

    def retriable(exc: BaseException) -> bool:
        if not isinstance(exc, botocore.exceptions.ClientError):
            return False
        code, msg = error_code(exc), error_message(exc)
        return code in codes or any(m in msg for m in messages)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry and state.outcome is not None:
            exc = state.outcome.exception()
            on_retry(f"retrying ({describe_error(exc) if exc else 'error'})")

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retriable),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=0.5, min=0.2, max=min(15.0, timeout / 4 or 1)),
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )
    return retrying(fn)

"""pcls command line: parse, build a session, run one command, map the outcome to an exit code.

Exit codes: 0 success; 1 a failure while talking to AWS; 2 usage or config error, or the
stack's run lock held by another run (nothing touched in AWS), or `sleep`/`wake` on a stack
without its wake function; 3 `status` found missing or drifted resources; 130 interrupted
(Ctrl-C, or SIGTERM as CI runners send it). `wake` not awake within --timeout is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from rich.console import Console

from pcls import __version__, runner, sandbox
from pcls import config as config_mod
from pcls.config import DEFAULT_CONFIG
from pcls.errors import EXIT_AWS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConfigError, PclsError
from pcls.ui import Outcome


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every usage error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="path to pcls.toml")
    common.add_argument(
        "--sandbox",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run against the local AWS emulation (started when needed)",
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="tracebacks on error"
    )
    common.add_argument(
        "--parallel",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="steps run at once (default 4)",
    )
    common.add_argument(
        "--api-calls",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the AWS API calls made, by operation, as JSON on stderr",
    )
    p = _Parser(
        prog="pcls",
        description="Jitsi Meet on AWS: plan, up, status, teardown.",
        parents=[common],
    )
    p.add_argument("--version", action="version", version=f"pcls {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = sub.add_parser("init", parents=[common], help="write a commented pcls.toml")
    init.add_argument("domain", help="public name of the service, e.g. meet.example.com")
    init.add_argument("--name", help="stack name (default: from the domain)")
    init.add_argument("--region", default="", help="AWS region (default: from the environment)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    sub.add_parser("plan", parents=[common], help="show what up would change; writes nothing")
    sub.add_parser("up", parents=[common], help="create or reconcile every resource")
    st = sub.add_parser("status", parents=[common], help="every resource, its health and drift")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--compact", action="store_true", help="80x24: a line per group and task")
    td = sub.add_parser("teardown", parents=[common], help="delete everything, verify it is gone")
    td.add_argument("--yes", action="store_true", help="do not ask for the stack name")
    sleep_help = "put the stack to sleep now: no task runs; visitors get a page that wakes it"
    sub.add_parser("sleep", parents=[common], help=sleep_help)
    wake_help = "wake the stack and follow it until it serves"
    wk = sub.add_parser("wake", parents=[common], help=wake_help)
    wk.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop following after this long (default 900); the stack goes on waking",
    )
    ul = sub.add_parser(
        "unlock", parents=[common], help="show and remove the stack's run lock in AWS"
    )
    ul.add_argument("--yes", action="store_true", help="do not ask for the stack name")
    ad = sub.add_parser(
        "adopt", parents=[common], help="claim a resource in a step's way, after confirmation"
    )
    ad.add_argument("step", help="the step whose collision it is, as `pcls plan` names it")
    ad.add_argument("id", help="the resource's id, as `pcls plan` names it")
    ad.add_argument("--yes", action="store_true", help="do not ask for the stack name")

    tk = sub.add_parser(
        "token", parents=[common], help='a meeting link with a signed token (auth = "jwt")'
    )
    tk.add_argument("--room", required=True, help="the room the token opens")
    tk.add_argument("--moderator", action="store_true", help="the holder moderates the room")
    tk.add_argument("--name", help="display name of the holder")
    tk.add_argument("--ttl", default="2h", help="how long the link works: 30m, 2h, 1d (at most 7d)")
    vf = sub.add_parser(
        "verify", parents=[common], help="check the stack from outside, as a browser would"
    )
    vf.add_argument("--json", action="store_true", help="machine-readable output")
    # tests only: every name resolves to this loopback address:port
    vf.add_argument("--address", help=argparse.SUPPRESS)

    co = sub.add_parser("cost", parents=[common], help="monthly cost estimate; no AWS calls")
    co.add_argument("--json", action="store_true", help="machine-readable output")
    co.add_argument("--compact", action="store_true", help="80 columns: amounts without notes")
    co.add_argument("--region", help="price another region (default: stack.region)")

    ip = sub.add_parser(
        "iam-policy",
        parents=[common],
        help="the IAM policy needed to run pcls (one JSON list of managed policy documents)",
    )
    ip.add_argument(
        "--any-stack", action="store_true", help="not scoped to this config's stack and region"
    )
    ip.add_argument(
        "--account", metavar="ID", help="the 12-digit account id (default: asked from STS)"
    )
    ip.add_argument("--part", type=int, metavar="N", help="print only document N of the list")
    ip.add_argument(
        "--boundary",
        action="store_true",
        help="print the stack's permissions boundary (what an administrator creates) instead",
    )
    ip.add_argument(
        "--read-only",
        action="store_true",
        help="print what plan and status need alone (a CI role for pull requests) instead",
    )
    ip.add_argument(
        "--trust",
        action="store_true",
        help="print a CI role's trust policy for GitHub Actions (OIDC) instead",
    )
    ip.add_argument("--repo", metavar="OWNER/NAME", help="--trust: the GitHub repository")
    ip.add_argument("--branch", metavar="NAME", help="--trust: pushes to this branch")
    ip.add_argument("--environment", metavar="NAME", help="--trust: jobs in this environment")
    ip.add_argument("--pull-requests", action="store_true", help="--trust: pull request jobs")

    sb = sub.add_parser("sandbox", parents=[common], help="the local AWS emulation")
    sb.add_argument("action", choices=("start", "stop", "status"))
    sb.add_argument("--domain", help="domain whose parent zone to pre-create (default: config)")
    return p


def _opts(ns: argparse.Namespace) -> runner.Options:
    parallel = getattr(ns, "parallel", 4)
    if parallel < 1 or parallel > 32:
        raise ConfigError(f"--parallel: {parallel} is not allowed; expected 1 to 32")
    return runner.Options(
        config=getattr(ns, "config", Path(DEFAULT_CONFIG)),
        sandbox=getattr(ns, "sandbox", False),
        debug=getattr(ns, "debug", False),
        parallel=parallel,
        api_calls=getattr(ns, "api_calls", False),
    )


def cmd_init(ns: argparse.Namespace, opts: runner.Options, console: Console) -> int:
    domain = ns.domain.lower().rstrip(".")
    if err := config_mod.domain_error(domain):
        raise ConfigError(f"domain: {ns.domain!r} is not allowed; expected {err}")
    name = ns.name or config_mod.default_name(domain)
    text = config_mod.template(domain, name, ns.region)
    config_mod.parse(__import__("tomllib").loads(text), opts.config)  # the template must load
    if opts.config.exists() and not ns.force:
        raise ConfigError(f"{opts.config}: exists; pass --force to overwrite it")
    opts.config.write_text(text, encoding="utf-8")
    console.print(f"wrote {opts.config} for {domain} (stack {name}); next: pcls plan")
    return EXIT_OK


def cmd_sandbox(ns: argparse.Namespace, opts: runner.Options, console: Console) -> int:
    cfg = None
    if opts.config.exists():
        cfg = config_mod.load(opts.config)
    state_dir = cfg.state_dir if cfg else opts.config.resolve().parent / ".pcls"
    if ns.action == "stop":
        console.print(sandbox.stop(state_dir))  # signals only the server pcls started
        return EXIT_OK
    if ns.action == "status":
        state = sandbox.running(state_dir)
        if state:
            console.print(f"sandbox running at {state['url']} (pid {state['pid']})")
            return EXIT_OK
        console.print("sandbox not running")
        return 3
    domain = sandbox.require_domain(ns.domain or (cfg.stack.domain if cfg else None))
    url = runner.sandbox_endpoint(state_dir, domain, console)
    console.print(
        f"SANDBOX ready at {url}; zone {sandbox.parent_zone(domain)} exists. "
        "Use --sandbox on any command."
    )
    return EXIT_OK


def cmd_cost(ns: argparse.Namespace, opts: runner.Options, console: Console) -> int:
    from pcls import cost, cost_report

    cfg = config_mod.load(opts.config)
    region = ns.region or cfg.stack.region or os.environ.get("AWS_REGION", "")
    if region not in cost.supported_regions():
        allowed = ", ".join(cost.supported_regions())
        raise ConfigError(f"region: {region or '(none)'!r} has no price table; expected {allowed}")
    est = cost.estimate(cost_report.inputs_from_config(cfg, region))
    if ns.json and ns.compact:
        raise ConfigError("--compact: not with --json; pick one")
    if ns.json:
        print(json.dumps(cost_report.as_json(est), indent=2))
    elif ns.compact:
        from pcls.compact import cost_lines

        for line in cost_lines(cost_report.as_json(est)):
            console.print(line, no_wrap=True)
    else:
        cost_report.render(est, console, cfg)
    return EXIT_OK


def cmd_iam_policy(ns: argparse.Namespace, opts: runner.Options) -> int:
    from pcls import permissions
    from pcls.ui import stderr_console

    chosen = [
        f
        for f, on in (
            ("--boundary", ns.boundary),
            ("--read-only", ns.read_only),
            ("--trust", ns.trust),
            ("--part", ns.part is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise ConfigError(f"{chosen[0]}: not with {chosen[1]}; pick one document")
    trust_only = [
        f
        for f, v in (
            ("--repo", ns.repo),
            ("--branch", ns.branch),
            ("--environment", ns.environment),
            ("--pull-requests", ns.pull_requests or None),
        )
        if v is not None
    ]
    if trust_only and not ns.trust:
        raise ConfigError(f"{trust_only[0]}: only with --trust")
    if ns.trust:
        if ns.any_stack:
            raise ConfigError("--any-stack: not with --trust (a trust policy names no stack)")
        return _print_trust(ns, opts)
    cfg = None if ns.any_stack and not opts.sandbox else config_mod.load(opts.config)
    if ns.boundary and (cfg is None or ns.any_stack):
        raise ConfigError("--boundary: a boundary belongs to one stack; drop --any-stack")
    if ns.account is not None and not permissions.is_account(ns.account):
        raise ConfigError(f"--account: {ns.account!r} is not allowed; expected 12 digits")
    region = "*"
    if cfg is not None and not ns.any_stack:
        region = cfg.stack.region or os.environ.get("AWS_REGION") or "*"
    partition = permissions.partition_of(region)
    account = ns.account
    if account is None:
        endpoint = None
        if opts.sandbox and cfg is not None:
            endpoint = runner.sandbox_endpoint(cfg.state_dir, cfg.stack.domain, stderr_console())
        account, partition = permissions.caller_account(region, endpoint, opts.sandbox)
    if cfg is None or ns.any_stack:
        target = permissions.Target(account, "", region, partition)
    else:
        stack = cfg.stack
        target = permissions.Target(account, stack.name, region, partition, stack.domain)
    if ns.boundary:
        print(json.dumps(permissions.boundary_document(target), indent=2))
        return EXIT_OK
    if ns.read_only:
        print(json.dumps(permissions.read_only_policy(target), indent=2))
        return EXIT_OK
    docs = permissions.operator_policies(target)
    if ns.part is not None:
        if not 1 <= ns.part <= len(docs):
            raise ConfigError(f"--part: {ns.part} is not allowed; expected 1 to {len(docs)}")
        print(json.dumps(docs[ns.part - 1], indent=2))
        return EXIT_OK
    print(json.dumps(docs, indent=2))
    print(
        f"{len(docs)} policy documents (IAM allows {permissions.MAX_POLICY_CHARS} characters "
        "per managed policy): attach every one; --part N prints document N alone",
        file=sys.stderr,
    )
    return EXIT_OK


def _print_trust(ns: argparse.Namespace, opts: runner.Options) -> int:
    """A CI role's trust policy: needs the account, not the stack's config."""
    from pcls import permissions

    if ns.account is not None and not permissions.is_account(ns.account):
        raise ConfigError(f"--account: {ns.account!r} is not allowed; expected 12 digits")
    if ns.repo is None:
        raise ConfigError("--trust: needs --repo OWNER/NAME, the repository whose jobs it trusts")
    # Validate before asking STS: bad input touches nothing.
    permissions.github_subjects(ns.repo, ns.branch, ns.environment, ns.pull_requests)
    account, partition = ns.account, "aws"
    if account is None:
        region = os.environ.get("AWS_REGION") or "*"
        account, partition = permissions.caller_account(region, None, opts.sandbox)
    doc = permissions.trust_policy(
        account,
        ns.repo,
        branch=ns.branch,
        environment=ns.environment,
        pull_requests=ns.pull_requests,
        partition=partition,
    )
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (CI runners, `kill`) stops a run as Ctrl-C does


def run(argv: list[str] | None = None) -> int:
    """One command; SIGTERM is Ctrl-C while it runs (the previous handler comes back after)."""
    if threading.current_thread() is not threading.main_thread():
        return _run(argv)  # signal handlers belong to the main thread
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(argv)
    except KeyboardInterrupt:  # outside the command's own handling (parsing, final output)
        print("interrupted; run the command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run(argv: list[str] | None = None) -> int:
    # Logs and pipes get lines wide enough for ARNs instead of rich's 80-column default.
    width = None if sys.stdout.isatty() else 160
    console = Console(highlight=False, soft_wrap=True, width=width)
    try:
        ns = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    debug = getattr(ns, "debug", False)
    session = None
    try:
        opts = _opts(ns)
        if ns.command == "init":
            return cmd_init(ns, opts, console)
        if ns.command == "sandbox":
            return cmd_sandbox(ns, opts, console)
        if ns.command == "iam-policy":
            return cmd_iam_policy(ns, opts)
        if ns.command == "cost":
            return cmd_cost(ns, opts, console)
        if ns.command == "status" and ns.json and ns.compact:
            raise ConfigError("--compact: not with --json; pick one")
        hide = frozenset({Outcome.UNCHANGED}) if ns.command == "plan" else frozenset()
        quiet = ns.command in ("status", "token", "verify")
        session = runner.open_session(opts, console, quiet=quiet, hide=hide)
        if ns.command == "up":
            return runner.cmd_up(session)
        if ns.command == "plan":
            return runner.cmd_plan(session)
        if ns.command == "status":
            return runner.cmd_status(session, ns.json, ns.compact)
        if ns.command == "teardown":
            return runner.cmd_teardown(session, ns.yes)
        if ns.command == "sleep":
            return runner.cmd_sleep(session)
        if ns.command == "wake":
            return runner.cmd_wake(session, ns.timeout)
        if ns.command == "unlock":
            return runner.cmd_unlock(session, ns.yes)
        if ns.command == "adopt":
            return runner.cmd_adopt(session, ns.step, ns.id, ns.yes)
        if ns.command == "token":
            from pcls import token

            return token.run(session, ns.room, ns.moderator, ns.name, ns.ttl)
        if ns.command == "verify":
            from pcls import verify

            return verify.run(session, ns.json, ns.address)
        raise ConfigError(f"unknown command {ns.command}")
    except PclsError as exc:
        if session:
            session.ui.close()
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if session:
            session.ui.close()
        print("interrupted; run the command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line unless --debug: the contract for every failure
        if session:
            session.ui.close()
        if debug:
            traceback.print_exc()
        from pcls.aws import describe_error

        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_AWS
    finally:
        if session and getattr(ns, "api_calls", False):
            print(json.dumps(runner.call_summary(session), indent=2), file=sys.stderr)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()

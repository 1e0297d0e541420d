"""`pcls adopt STEP ID`: claim a resource that is in a step's way, only once the operator agrees.

A collision (a resource with the name pcls would use, untagged) stops `up`. Adopting it is the
one way to make it the stack's: pcls shows the tags it will write, asks, writes them, and from
then on the tags say the resource is the stack's. Another stack's resource is never adopted.
Only tags are written here; `pcls plan` then shows what `up` would change in the resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape

from pcls.errors import EXIT_OK, ConfigError
from pcls.ui import confirm_stack_name

if TYPE_CHECKING:
    from pcls.engine import Conflict, Step
    from pcls.runner import Session


def _step(s: Session, name: str) -> Step:
    steps = s.engine.steps
    if name not in steps:
        allowed = ", ".join(sorted(steps))
        raise ConfigError(f"adopt: no step {name!r} in this stack; expected one of {allowed}")
    return steps[name]


def _in_the_way(s: Session, step: Step, rid: str) -> Conflict:
    """The collision `rid` causes for `step`, as a read-only find sees it."""
    ctx = s.ctx
    read_only = ctx.aws.read_only
    ctx.aws.read_only = True
    try:
        mine = step.find(ctx)
    finally:
        ctx.aws.read_only = read_only
    for conflict in ctx.conflicts_of(step.name):
        if conflict.id == rid:
            if conflict.owner and conflict.owner != s.cfg.stack.name:
                raise ConfigError(
                    f"adopt: {conflict.describe(s.cfg.stack.name)}; another stack's resource "
                    "is never adopted"
                )
            return conflict
    if mine is not None and rid in (mine.id, ctx.ledger.id(step.name)):
        raise ConfigError(f"adopt: {rid} is already the stack's ({step.name}); nothing to do")
    raise ConfigError(
        f"adopt: {rid!r} is not in the way of step {step.name}: adopt takes a resource that "
        f"`pcls plan` names as a collision of that step"
    )


def confirm(s: Session, text: str, yes: bool) -> None:
    name = s.cfg.stack.name
    question = f"{text}\nType the stack name ({name}) to confirm: "
    confirm_stack_name(name, yes, "adopt", question, "adopting the resource", "nothing was changed")


def cmd_adopt(
    s: Session, step_name: str, rid: str, yes: bool, ready: Callable[[], None] | None = None
) -> int:
    """Show what adopting `rid` for `step_name` writes; write it once confirmed.

    `ready` runs between the confirmation and the first write (the run lock is taken there).
    """
    step = _step(s, step_name)
    conflict = _in_the_way(s, step, rid)
    ctx = s.ctx
    ctx.adopting[step.name] = rid
    ctx.aws.read_only = True
    try:
        res = step.find(ctx)
    finally:
        ctx.aws.read_only = False
    if res is None:
        raise ConfigError(f"adopt: {rid} could not be found again for {step.name}; nothing changed")
    have = dict(conflict.tags)
    want = ctx.tag_dict(step.name)
    changes = [
        f"  tag {k}: {have[k]!r} -> {v!r}" if k in have else f"  tag {k} = {v!r} (new)"
        for k, v in sorted(want.items())
        if have.get(k) != v
    ]
    s.console.print(f"adopt {escape(conflict.what)} {escape(rid)} as step {step.name}:")
    for line in changes or ["  (a claim marker; no tags)"]:
        s.console.print(escape(line))
    confirm(s, f"Make {rid} part of stack {s.cfg.stack.name!r}?", yes)
    if ready:
        ready()
    step.tag(ctx, res)
    ctx.ledger.record(step.name, {"id": res.id})
    s.console.print(
        f"adopted {escape(rid)} as {step.name}; `pcls plan` shows what `up` would change in it"
    )
    return EXIT_OK

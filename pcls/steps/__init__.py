"""All steps of a stack, in one list built from the config."""

from __future__ import annotations

from pcls.config import Config
from pcls.engine import Step
from pcls.steps import network


def build(cfg: Config) -> list[Step]:
    """Every step of the stack. Order is irrelevant: the engine follows depends_on."""
    return [*network.steps(cfg)]

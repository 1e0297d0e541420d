"""All steps of a stack, in one list built from the config."""

from __future__ import annotations

from pcls.config import Config
from pcls.engine import Step
from pcls.steps import (
    budget,
    certificate,
    dns,
    iam,
    loadbalancer,
    monitoring,
    network,
    platform,
    scaling,
    schedule,
    secrets,
    services,
    tasks,
    wake,
)


def build(cfg: Config) -> list[Step]:
    """Every step of the stack. Order is irrelevant: the engine follows depends_on."""
    return [
        *network.steps(cfg),
        *dns.steps(cfg),
        *certificate.steps(cfg),
        *loadbalancer.steps(cfg),
        *platform.steps(cfg),
        *secrets.steps(cfg),
        *iam.steps(cfg),
        *tasks.steps(cfg),
        *services.steps(cfg),
        *scaling.steps(cfg),
        *monitoring.steps(cfg),
        *budget.steps(cfg),
        *wake.steps(cfg),
        *schedule.steps(cfg),
    ]

"""ARM64 (Graviton) by default, x86 as a choice: the task definitions, the config, the prices.

docs/ecs.md#cpu-architecture has the sources: the images are published for linux/arm64, and
FARGATE_SPOT runs ARM64 tasks on platform version 1.4.0 or later.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pcls import config, jitsi
from pcls.config import ConfigError, loads
from pcls.cost import load_prices
from pcls.sidecar_container import GUARD_IMAGE
from tests.harness import Harness

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:iam::123456789012:role/"

# Every image a task may run, with the evidence that it exists for linux/arm64 (docs/ecs.md).
MULTI_ARCH = {
    re.compile(r"ghcr\.io/jitsi/(web|prosody|jicofo|jvb):[\w.-]+"): (
        "docker-jitsi-meet .github/workflows/release-stable.yml: platforms linux/amd64,linux/arm64"
    ),
    # an index digest, not a tag: the evidence is that one index's platform list
    re.compile(
        r"public\.ecr\.aws/docker/library/python@"
        r"sha256:b68d71645de25b97ac8e781e3c0e61d0ca23c5b4f46ad4da96cd7b871e01997d"
    ): (
        "docker-library/repo-info repos/python/remote/3.12-alpine.md at 2f6ab1f1: index "
        "b68d7164… lists linux; arm64 variant v8 and linux; amd64"
    ),
    re.compile(r"public\.ecr\.aws/docker/library/haproxy:2\.6\.\d+-alpine"): (
        "docker-library/official-images library/haproxy 2.6-alpine: arm64v8 among Architectures"
    ),
}


def params(**overrides: Any) -> jitsi.JitsiParams:
    base: dict[str, Any] = {
        "stack": "meet",
        "domain": "meet.example.com",
        "image_tag": jitsi.JITSI_TAG_DEFAULT,
        "auth": "open",
        "jwt_app_id": "",
        "xmpp_server": "xmpp.meet.internal",
        "stun_servers": ("stun.example.net:3478",),
        "timezone": "UTC",
        "signal_cpu": 1024,
        "signal_memory": 2048,
        "jvb_cpu": 2048,
        "jvb_memory": 4096,
        "log_group": "/pcls/meet",
        "region": "eu-central-1",
        "secret_arns": {"JICOFO_AUTH_PASSWORD": "arn:x", "JVB_AUTH_PASSWORD": "arn:y"},
        "execution_role_arn": ARN + "meet-execution",
        "signal_task_role_arn": ARN + "meet-signal-task",
        "jvb_task_role_arn": ARN + "meet-jvb-task",
    }
    base.update(overrides)
    return jitsi.JitsiParams(**base)


def both(p: jitsi.JitsiParams) -> list[dict[str, Any]]:
    return [jitsi.signal_task_definition(p), jitsi.jvb_task_definition(p)]


# -- task definitions -------------------------------------------------------------------------


def test_every_task_runs_on_arm64_by_default() -> None:
    for td in both(params()):
        assert td["runtimePlatform"] == {
            "operatingSystemFamily": "LINUX",
            "cpuArchitecture": "ARM64",
        }


def test_x86_is_a_choice_and_nothing_else_is() -> None:
    for td in both(params(cpu_architecture="X86_64")):
        assert td["runtimePlatform"]["cpuArchitecture"] == "X86_64"
    with pytest.raises(ValueError, match="cpu_architecture 'arm64' is not one of ARM64, X86_64"):
        jitsi.jvb_task_definition(params(cpu_architecture="arm64"))


def unknown_images(images: set[str]) -> list[str]:
    return sorted(i for i in images if not any(p.fullmatch(i) for p in MULTI_ARCH))


def test_the_bridge_task_s_images_are_published_for_arm64() -> None:
    from pcls.sidecar_container import guard_container

    td = jitsi.jvb_task_definition(
        params(sidecar=guard_container("meet", "/pcls/meet", "eu-central-1"))
    )
    images = {c["image"] for c in td["containerDefinitions"]}
    assert GUARD_IMAGE in images
    assert not unknown_images(images)


# -- config -----------------------------------------------------------------------------------


def cfg(extra: str = "") -> config.Config:
    return loads(f'[stack]\nname = "meet"\ndomain = "meet.example.com"\n{extra}')


def test_the_config_defaults_to_arm64_and_takes_x86() -> None:
    assert cfg().ecs.cpu_architecture == "ARM64"
    assert cfg('[ecs]\ncpu_architecture = "X86_64"\n').ecs.cpu_architecture == "X86_64"
    assert config.CPU_ARCHITECTURES == jitsi.CPU_ARCHITECTURES
    assert config.EcsSection().cpu_architecture == jitsi.CPU_ARCHITECTURE_DEFAULT


@pytest.mark.parametrize("value", ["arm64", "AARCH64", "X86", ""])
def test_another_architecture_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(f'[ecs]\ncpu_architecture = "{value}"\n')
    assert str(err.value) == (
        f"ecs.cpu_architecture: {value!r} is not allowed; expected one of ARM64, X86_64"
    )


def test_spot_bridges_on_arm64_are_allowed() -> None:
    """FARGATE_SPOT takes ARM64 tasks on platform 1.4.0+ (ECS API reference): no rule against."""
    c = cfg("[jvb]\nspot_weight = 3\nondemand_base = 0\n")
    assert (c.ecs.cpu_architecture, c.jvb.spot_weight) == ("ARM64", 3)


# -- on (moto's) AWS --------------------------------------------------------------------------


def registered(h: Harness) -> dict[str, dict[str, Any]]:
    """family -> its newest ACTIVE task definition, as ECS describes it."""
    ecs = h.client("ecs")
    out: dict[str, dict[str, Any]] = {}
    for family in ecs.list_task_definition_families(status="ACTIVE")["families"]:
        arns = ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
        newest = max(arns, key=lambda a: int(a.rsplit(":", 1)[1]))
        out[family] = ecs.describe_task_definition(taskDefinition=newest)["taskDefinition"]
    return out


def architectures(h: Harness) -> dict[str, str]:
    return {f: td["runtimePlatform"]["cpuArchitecture"] for f, td in registered(h).items()}


def test_up_registers_arm64_task_definitions_of_arm64_images(harness: Harness) -> None:
    assert harness.up().ok
    defs = registered(harness)
    archs = {f: td["runtimePlatform"]["cpuArchitecture"] for f, td in defs.items()}
    assert "meet-jvb" in archs and len(archs) >= 2
    assert set(archs.values()) == {"ARM64"}
    images = {c["image"] for td in defs.values() for c in td["containerDefinitions"]}
    assert GUARD_IMAGE in images
    unknown = unknown_images(images)
    assert not unknown, f"no arm64 evidence for {unknown}: add it to docs/ecs.md and MULTI_ARCH"


def test_a_changed_architecture_is_drift_and_up_registers_new_revisions(
    harness: Harness,
) -> None:
    assert harness.up().ok
    harness.write_config('[ecs]\ncpu_architecture = "X86_64"\n')
    plan = harness.plan()
    for step in ("taskdef-jvb", "taskdef-signal"):
        drift = " ".join(plan.results[step].drift)
        assert "runtimePlatform.cpuArchitecture" in drift, (step, drift)
    assert harness.up().ok
    assert set(architectures(harness).values()) == {"X86_64"}
    assert harness.up().ok and harness.writes() == {}
    harness.write_config("")
    back = harness.plan()
    assert "runtimePlatform.cpuArchitecture" in " ".join(back.results["taskdef-jvb"].drift)


def test_the_config_choice_reaches_the_task_definitions(harness: Harness) -> None:
    harness.write_config('[ecs]\ncpu_architecture = "X86_64"\n')
    assert harness.up().ok
    assert set(architectures(harness).values()) == {"X86_64"}


# -- prices -----------------------------------------------------------------------------------


def test_the_price_table_has_arm64_rates_for_every_region() -> None:
    prices = load_prices()
    for region, figures in prices["regions"].items():
        for key, x86 in (
            ("fargate_arm_vcpu_hour", "fargate_vcpu_hour"),
            ("fargate_arm_gb_hour", "fargate_gb_hour"),
        ):
            arm = figures[key]
            assert arm["value"] == pytest.approx(0.8 * figures[x86]["value"], rel=0.01), region
            assert "Linux/ARM" in arm["unit"] and arm["source"] and arm["source_date"]
            if region == "eu-central-2":
                assert arm["estimate"] and "1.10" in arm["derivation"]
        spot = figures["fargate_arm_spot_discount"]
        assert 0 < spot["value"] < 1 and spot["unit"].startswith("fraction off Linux/ARM")
        assert "1.4.0" in spot["note"] and spot["source"].startswith("https://aws.amazon.com/")
    us = prices["regions"]["us-east-1"]
    assert (us["fargate_arm_vcpu_hour"]["value"], us["fargate_arm_gb_hour"]["value"]) == (
        0.03238,
        0.00356,
    )


def test_docs_name_the_pages_that_decide() -> None:
    text = (ROOT / "docs" / "ecs.md").read_text(encoding="utf-8")
    for needle in (
        "API_CapacityProviderStrategyItem.html",
        "release-stable.yml",
        "linux/amd64,linux/arm64",
        "## Right-sizing",
        'ecs.cpu_architecture = "X86_64"',
    ):
        assert needle in text, needle
    assert json.loads((ROOT / "pcls" / "data" / "prices.json").read_text())["regions"]

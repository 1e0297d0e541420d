"""A shard's task definition, the bridges' shard list, and the config keys of the HA layout."""

from __future__ import annotations

import json
from dataclasses import replace

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pcls import config, jitsi, router
from pcls.errors import ConfigError
from pcls.jitsi import container_env, jvb_task_definition, signal_task_definition
from tests.test_jitsi import CATALOG, SIDECAR, catalog_key, make_params, set_vars

BASE = {"stack": {"name": "meet", "domain": "meet.example.com"}}


def shard(name: str = "shard-b", **overrides: object) -> dict:
    params = make_params(
        xmpp_server="shard-a.meet.internal,shard-b.meet.internal",
        shard=name,
        router_config=router.config("meet.internal"),
        **overrides,
    )
    return signal_task_definition(params)


def test_a_shard_task_carries_its_name_in_web_and_prosody() -> None:
    td = shard()
    assert td["family"] == "meet-shard-b"
    env = container_env(td)
    assert env["web"]["DEPLOYMENTINFO_SHARD"] == "shard-b"  # X-Jitsi-Shard, deploymentInfo
    assert env["prosody"]["XMPP_MODULES"] == "jiconop"  # the server/shard identity
    assert env["prosody"]["XMPP_CONFIGURATION"] == 'shard_name = "shard-b"'
    # Everything else is the same on every shard: domains, accounts, the bridges' brewery.
    a, b = container_env(shard("shard-a")), env
    for container in ("web", "prosody", "jicofo"):
        differ = {k for k in a[container] if a[container][k] != b[container].get(k)}
        assert differ <= {"DEPLOYMENTINFO_SHARD", "XMPP_CONFIGURATION"}, (container, differ)


def test_every_shard_var_is_one_its_image_reads() -> None:
    for c in shard()["containerDefinitions"]:
        if not c["image"].startswith(jitsi.IMAGE_REPO + "/"):
            continue
        known = set(CATALOG["images"][catalog_key(c)]["vars"])
        assert set_vars(c) <= known, (c["name"], set_vars(c) - known)


def test_the_router_runs_in_every_shard_task() -> None:
    td = shard()
    assert [c["name"] for c in td["containerDefinitions"]] == ["web", "prosody", "jicofo", "router"]
    (proxy,) = [c for c in td["containerDefinitions"] if c["name"] == "router"]
    assert proxy["image"] == router.IMAGE  # the stock image, pinned to a version tag
    assert proxy["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert proxy["entryPoint"] == ["/bin/sh", "-c"] and "base64 -d" in proxy["command"][0]
    assert router.decoded(container_env(td)["router"]["HAPROXY_CFG"]) == router.config(
        "meet.internal"
    )
    assert proxy["logConfiguration"]["options"]["awslogs-stream-prefix"] == "router"
    assert "healthCheck" not in proxy  # haproxy exiting stops the task (essential)
    # The same router in every shard: adding a shard redeploys none of them.
    assert container_env(shard("shard-a"))["router"] == container_env(td)["router"]


@pytest.mark.parametrize("bad", ["Shard-A", "shard,b", 'sh"ard', "x" * 33])
def test_a_shard_name_that_would_break_a_template_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        shard(bad)


def test_v1_signal_task_is_unchanged_without_a_shard() -> None:
    td = signal_task_definition(make_params())
    assert td["family"] == "meet-signal"
    assert [c["name"] for c in td["containerDefinitions"]] == ["web", "prosody", "jicofo"]
    assert "DEPLOYMENTINFO_SHARD" not in container_env(td)["web"]


def test_the_bridge_pool_lists_every_shard() -> None:
    names = ",".join(router.cloud_map_name("meet.internal", s) for s in router.shard_names(3))
    td = jvb_task_definition(make_params(xmpp_server=names, sidecar=SIDECAR))
    env = container_env(td)
    assert env["jvb"]["XMPP_SERVER"] == names  # jvb.conf: one XMPP connection per entry
    assert env["bridge-guard"]["JICOFO_URLS"].split(",") == [
        f"http://shard-{x}.meet.internal:8888" for x in "abc"
    ]


def test_a_shard_task_definition_passes_the_ecs_api_model() -> None:
    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("RegisterTaskDefinition")
        .input_shape
    )
    for auth in jitsi.AUTH_MODES:
        params = replace(make_params(auth=auth), shard="shard-a")
        params = replace(params, router_config=router.config("meet.internal"))
        report = ParamValidator().validate(signal_task_definition(params), shape)
        assert not report.has_errors(), report.generate_report()
        assert len(json.dumps(signal_task_definition(params))) < 64 * 1024  # ECS's size limit


# -- config ------------------------------------------------------------------------------------


def parse(**sections: dict) -> config.Config:
    return config.parse({**BASE, **sections})


def test_two_shards_and_one_bridge_per_az_by_default() -> None:
    cfg = parse()
    assert cfg.signal.shards == 2
    assert cfg.jvb.min_count == cfg.network.azs == 2
    three = parse(network={"azs": 3})
    assert (three.jvb.min_count, three.jvb.max_count) == (3, 4)
    six = parse(network={"azs": 6})  # the default maximum makes room for one per AZ
    assert (six.jvb.min_count, six.jvb.max_count) == (6, 6)


def test_an_explicit_bridge_minimum_is_kept() -> None:
    assert parse(network={"azs": 3}, jvb={"min_count": 1}).jvb.min_count == 1
    assert parse(jvb={"min_count": 0}).jvb.min_count == 0
    with pytest.raises(ConfigError, match=r"below jvb.min_count 3 \(its default: one bridge"):
        parse(network={"azs": 3}, jvb={"max_count": 2})


@pytest.mark.parametrize("value", [0, 9, -1])
def test_shards_outside_one_to_eight_are_refused(value: int) -> None:
    with pytest.raises(ConfigError, match=r"signal\.shards"):
        parse(signal={"shards": value})


def test_one_shard_is_allowed() -> None:
    assert parse(signal={"shards": 1}).signal.shards == 1

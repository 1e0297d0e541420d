"""Task definitions of pcls.jitsi checked against the env catalog of the Jitsi images."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pcls import config, jitsi
from pcls import sidecar_container as sc
from pcls.jitsi import (
    AUTH_MODES,
    FARGATE_SIZES,
    JitsiParams,
    container_env,
    container_secrets,
    fargate_size_error,
    jicofo_heap_mib,
    jvb_task_definition,
    signal_task_definition,
    videobridge_heap_mib,
    videobridge_memory,
)
from pcls.sidecar import bridge_guard as bg

# the sizes a stack gets when its config names none
DEFAULTS = config.loads('[stack]\nname = "meet"\ndomain = "meet.example.com"\n')
CATALOG = json.loads((Path(__file__).parent / "data" / "jitsi-env-catalog.json").read_text())
ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/pcls/meet/"
SECRET_ARNS = {
    "JICOFO_AUTH_PASSWORD": ARN + "jicofo-auth-password",
    "JVB_AUTH_PASSWORD": ARN + "jvb-auth-password",
    "JWT_APP_SECRET": ARN + "jwt-app-secret",
}
SIDECAR = {"name": "bridge-guard", "image": "python:3.12-alpine", "essential": False}

# Vars that may legitimately differ between the containers that read them: XMPP_SERVER is a
# network name (127.0.0.1 for jicofo inside the signal task, the Cloud Map name for the bridge).
MAY_DIFFER = {"XMPP_SERVER"}
# Read by a launcher inside the image rather than by a config template, so not in the catalog:
# jitsi-videobridge's jvb/resources/jvb.sh passes $VIDEOBRIDGE_DEBUG_OPTIONS to java after -Xmx.
LAUNCHER_VARS = {"jitsi/jvb": {"VIDEOBRIDGE_DEBUG_OPTIONS"}}


def make_params(**overrides) -> JitsiParams:
    base = {
        "stack": "meet",
        "domain": "meet.example.com",
        "image_tag": jitsi.JITSI_TAG_DEFAULT,
        "auth": "open",
        "jwt_app_id": "",
        "xmpp_server": "xmpp.meet.internal",
        "stun_servers": ("meet-jit-si-turnrelay.jitsi.net:443",),
        "timezone": "UTC",
        "signal_cpu": DEFAULTS.signal.cpu,
        "signal_memory": DEFAULTS.signal.memory,
        "jvb_cpu": DEFAULTS.jvb.cpu,
        "jvb_memory": DEFAULTS.jvb.memory,
        "log_group": "/pcls/meet",
        "region": "eu-west-1",
        "secret_arns": {k: v for k, v in SECRET_ARNS.items() if k != "JWT_APP_SECRET"},
        "execution_role_arn": "arn:aws:iam::123456789012:role/meet-exec",
        "signal_task_role_arn": "arn:aws:iam::123456789012:role/meet-signal",
        "jvb_task_role_arn": "arn:aws:iam::123456789012:role/meet-jvb",
    }
    if overrides.get("auth") == "jwt":
        base["jwt_app_id"] = "meet-app"
        base["secret_arns"] = dict(SECRET_ARNS)
    base.update(overrides)
    return JitsiParams(**base)


def jitsi_containers(params: JitsiParams) -> list[dict]:
    """Every container that runs a Jitsi image, from both task definitions."""
    defs = signal_task_definition(params), jvb_task_definition(params)
    return [
        c
        for td in defs
        for c in td["containerDefinitions"]
        if c["image"].startswith(jitsi.IMAGE_REPO + "/")
    ]


def catalog_key(container: dict) -> str:
    """'ghcr.io/jitsi/web:stable-…' -> 'jitsi/web', the catalog's image key."""
    return "jitsi/" + container["image"].split("/")[-1].split(":")[0]


def set_vars(container: dict) -> set[str]:
    env = {e["name"] for e in container.get("environment", [])}
    secrets = {s["name"] for s in container.get("secrets", [])}
    assert not env & secrets, f"{container['name']}: set both as env and as secret"
    return env | secrets


@pytest.fixture(params=AUTH_MODES)
def params(request) -> JitsiParams:
    return make_params(auth=request.param)


# --- the catalog contract -------------------------------------------------------------------


def test_catalog_copy_has_the_expected_shape():
    assert set(CATALOG["images"]) == {"jitsi/web", "jitsi/prosody", "jitsi/jicofo", "jitsi/jvb"}
    assert set(CATALOG["wiring_required"]) == set(CATALOG["images"])
    assert CATALOG["source"]["stable_tag"] == jitsi.JITSI_TAG_DEFAULT


def test_one_container_per_jitsi_image(params):
    keys = sorted(catalog_key(c) for c in jitsi_containers(params))
    assert keys == sorted(CATALOG["images"])
    for c in jitsi_containers(params):
        assert c["image"] == f"ghcr.io/{catalog_key(c)}:{params.image_tag}"


def test_every_var_set_is_read_by_that_image(params):
    for c in jitsi_containers(params):
        known = set(CATALOG["images"][catalog_key(c)]["vars"])
        known |= LAUNCHER_VARS.get(catalog_key(c), set())
        unknown = set_vars(c) - known
        assert not unknown, f"{c['name']} sets vars its image does not read: {sorted(unknown)}"


# The catalog's wiring_required lists are the same for every auth mode (none of its entries is an
# auth variable), so they are checked as they stand in every mode; the auth variables are checked
# per mode further down. One entry cannot be a task definition value: JVB_MUC_NICKNAME must differ
# per bridge (it defaults to $HOSTNAME) while all bridges share one task definition. It is instead
# exported per task by the jvb entrypoint wrapper, which the next test checks.
SET_PER_TASK = {"jitsi/jvb": {"JVB_MUC_NICKNAME"}}


def test_every_wiring_required_var_is_set(params):
    for c in jitsi_containers(params):
        key = catalog_key(c)
        required = set(CATALOG["wiring_required"][key]) - SET_PER_TASK.get(key, set())
        missing = required - set_vars(c)
        assert not missing, f"{c['name']} lacks wiring_required vars: {sorted(missing)}"


def test_bridge_nickname_is_set_per_task_not_in_the_task_definition():
    (jvb,) = [c for c in jitsi_containers(make_params()) if catalog_key(c) == "jitsi/jvb"]
    assert "JVB_MUC_NICKNAME" not in set_vars(jvb)
    assert jvb["entryPoint"] == ["/bin/sh", "-c"]
    (script,) = jvb["command"]
    assert "$ECS_CONTAINER_METADATA_URI_V4/task" in script
    assert 'export JVB_MUC_NICKNAME="${JVB_MUC_NICKNAME:-${HOSTNAME:-' in script
    assert script.endswith("exec /init")  # the image's own entrypoint, as PID 1


def _run_wrapper(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The jvb entrypoint as ECS runs it, with `env` in place of the image's /init."""
    (script,) = jitsi.JVB_COMMAND
    assert script.endswith("exec /init")
    probe = script[: -len("/init")] + "env"
    path = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [*jitsi.JVB_ENTRYPOINT, probe],
        env={**path, **env},
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


class _Metadata(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        ok = self.path == "/v4/abc/task"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(self.body if ok else b"")


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="curl and jq")
def test_bridge_nickname_is_the_ecs_task_id_as_the_guard_derives_it(tmp_path):
    task = "0123456789abcdef0123456789abcdef"
    doc = {"TaskARN": f"arn:aws:ecs:eu-west-1:123456789012:task/meet/{task}", "Family": "x"}
    _Metadata.body = json.dumps(doc).encode()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}/v4/abc"
        env = _run_wrapper(tmp_path, {"ECS_CONTAINER_METADATA_URI_V4": base, "HOSTNAME": "ip-1"})
        assert env["JVB_MUC_NICKNAME"] == f"jvb-{task}"
        guard = bg.Guard(env={"ECS_CONTAINER_METADATA_URI_V4": base}, err=io.StringIO())
        assert guard.nickname() == env["JVB_MUC_NICKNAME"]
        # a TaskARN that is not hex never reaches the bridge config
        _Metadata.body = json.dumps({"TaskARN": 'arn:x/task/c/"; x'}).encode()
        env = _run_wrapper(tmp_path, {"ECS_CONTAINER_METADATA_URI_V4": base, "HOSTNAME": "ip-1"})
        assert env["JVB_MUC_NICKNAME"] == "ip-1"
    finally:
        srv.shutdown()
        srv.server_close()
    # no metadata endpoint at all: HOSTNAME, else a random id; an explicit nickname wins
    assert _run_wrapper(tmp_path, {"HOSTNAME": "ip-2"})["JVB_MUC_NICKNAME"] == "ip-2"
    assert re.fullmatch(r"jvb-[0-9a-f-]{36}", _run_wrapper(tmp_path, {})["JVB_MUC_NICKNAME"])
    assert _run_wrapper(tmp_path, {"JVB_MUC_NICKNAME": "n1"})["JVB_MUC_NICKNAME"] == "n1"
    assert sc.NICK_PREFIX == bg.NICK_PREFIX == "jvb-"


def test_health_and_ipv6_settings(params):
    env = container_env(signal_task_definition(params))
    assert env["web"]["ENABLE_IPV6"] == env["prosody"]["ENABLE_IPV6"] == "0"
    # nothing reads jicofo's /about/health (ECS checks /about/version), so it stays off
    assert "JICOFO_ENABLE_HEALTH_CHECKS" not in env["jicofo"]
    assert env["jicofo"]["JICOFO_ENABLE_REST"] == "1"


def test_jvb_task_definition_stays_under_the_ecs_size_limit():
    guard = sc.guard_container("meet", "/pcls/meet", "eu-west-1")
    td = jvb_task_definition(make_params(sidecar=guard))
    assert len(json.dumps(td).encode()) < 48 * 1024  # ECS refuses task definitions over 64 KiB


def test_shared_vars_are_identical_in_every_container(params):
    seen: dict[str, dict[str, str]] = {}
    for c in jitsi_containers(params):
        for e in c["environment"]:
            seen.setdefault(e["name"], {})[c["name"]] = e["value"]
    for name, values in seen.items():
        if name not in MAY_DIFFER:
            assert len(set(values.values())) == 1, f"{name} differs: {values}"


def test_shared_vars_are_set_in_every_container_that_reads_them(params):
    # Variables that must agree across containers (catalog wiring_notes) are set in all readers,
    # so no container silently falls back to an image default that might differ.
    must_agree = {
        "XMPP_DOMAIN",
        "XMPP_AUTH_DOMAIN",
        "XMPP_MUC_DOMAIN",
        "XMPP_INTERNAL_MUC_DOMAIN",
        "ENABLE_AUTH",
        "ENABLE_XMPP_WEBSOCKET",
        "JVB_AUTH_USER",
        "TZ",
    }
    for c in jitsi_containers(params):
        reads = set(CATALOG["images"][catalog_key(c)]["vars"])
        missing = (must_agree & reads) - set_vars(c)
        assert not missing, f"{c['name']} reads but does not set {sorted(missing)}"
    # ENABLE_OCTO must match between jicofo and the bridges; JVB_BREWERY_MUC too (prosody reads
    # it only in brewery mode, which is not used).
    env = {**container_env(signal_task_definition(params))}
    env.update(container_env(jvb_task_definition(params)))
    assert env["jicofo"]["ENABLE_OCTO"] == env["jvb"]["ENABLE_OCTO"] == "0"
    assert env["jicofo"]["JVB_BREWERY_MUC"] == env["jvb"]["JVB_BREWERY_MUC"]


def test_boolean_values_parse_in_the_image_templates(params):
    # The templates feed flags through tpl's toBool (Go strconv.ParseBool); "yes"/"on" would be
    # read as true whatever they meant, so only ParseBool spellings are used.
    go_bools = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
    flags = re.compile(r"^(ENABLE_|DISABLE_)|_ENABLE_|_ENABLED$|_REQUIRE_|HEALTH_CHECKS$")
    for c in jitsi_containers(params):
        for e in c["environment"]:
            if flags.search(e["name"]):
                assert e["value"] in go_bools, f"{c['name']} {e['name']}={e['value']!r}"


# --- secrets --------------------------------------------------------------------------------


def test_no_secret_in_any_environment(params):
    for c in jitsi_containers(params):
        for e in c["environment"]:
            assert not re.search(r"PASSWORD|SECRET", e["name"]), f"{c['name']}: {e['name']}"
            assert not e["value"].startswith("arn:aws:ssm"), f"{c['name']}: {e['name']}"
        text = json.dumps(c["environment"])
        for arn in SECRET_ARNS.values():
            assert arn not in text


def test_secrets_go_to_exactly_the_containers_that_read_them(params):
    secrets = container_secrets(signal_task_definition(params))
    secrets.update(container_secrets(jvb_task_definition(params)))
    expected = {
        "web": {},
        "prosody": {"JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"},
        "jicofo": {"JICOFO_AUTH_PASSWORD"},
        "jvb": {"JVB_AUTH_PASSWORD"},
    }
    if params.auth == "jwt":
        expected["prosody"].add("JWT_APP_SECRET")
    for name, wanted in expected.items():
        assert set(secrets[name]) == set(wanted), name
        for var, arn in secrets[name].items():
            assert arn == SECRET_ARNS[var]
    # and every secret reader according to the catalog got it
    for c in jitsi_containers(params):
        reads = set(CATALOG["images"][catalog_key(c)]["vars"])
        for var in params.secret_arns:
            if var in reads and (var != "JWT_APP_SECRET" or params.auth == "jwt"):
                assert var in secrets[c["name"]], f"{c['name']} reads {var} but lacks it"


def test_missing_secret_arn_is_refused():
    with pytest.raises(ValueError, match="JVB_AUTH_PASSWORD"):
        signal_task_definition(make_params(secret_arns={"JICOFO_AUTH_PASSWORD": ARN + "x"}))
    no_jwt = {k: v for k, v in SECRET_ARNS.items() if k != "JWT_APP_SECRET"}
    with pytest.raises(ValueError, match="JWT_APP_SECRET"):
        jvb_task_definition(make_params(auth="jwt", secret_arns=no_jwt))


def test_jwt_secret_arn_is_ignored_outside_jwt_mode():
    params = make_params(auth="open", secret_arns=dict(SECRET_ARNS))
    assert "JWT_APP_SECRET" not in container_secrets(signal_task_definition(params))["prosody"]


# --- auth modes -----------------------------------------------------------------------------


def auth_env(params: JitsiParams) -> dict[str, dict[str, str]]:
    env = container_env(signal_task_definition(params))
    auth_vars = {"ENABLE_AUTH", "AUTH_TYPE", "ENABLE_GUESTS", "JWT_APP_ID"}
    auth_vars |= {"JWT_ACCEPTED_AUDIENCES", "XMPP_MUC_MODULES"}
    return {name: {k: v for k, v in e.items() if k in auth_vars} for name, e in env.items()}


def test_open_mode():
    assert auth_env(make_params(auth="open")) == {
        "web": {"ENABLE_AUTH": "0"},
        "prosody": {"ENABLE_AUTH": "0"},
        "jicofo": {"ENABLE_AUTH": "0"},
    }


def test_jwt_mode():
    assert auth_env(make_params(auth="jwt")) == {
        "web": {"ENABLE_AUTH": "1"},
        "prosody": {
            "ENABLE_AUTH": "1",
            "AUTH_TYPE": "jwt",
            "JWT_APP_ID": "meet-app",
            "JWT_ACCEPTED_AUDIENCES": "jitsi",
            "XMPP_MUC_MODULES": "token_affiliation",
        },
        "jicofo": {"ENABLE_AUTH": "1", "AUTH_TYPE": "jwt"},
    }


def test_auth_vars_reach_every_container_that_reads_them(params):
    # Checked against the catalog, so a new reader in a future image shows up here.
    by_mode = {
        "open": {"ENABLE_AUTH"},
        "jwt": {"ENABLE_AUTH", "AUTH_TYPE", "JWT_APP_ID", "JWT_APP_SECRET"},
    }[params.auth]
    for c in jitsi_containers(params):
        reads = set(CATALOG["images"][catalog_key(c)]["vars"])
        missing = (by_mode & reads) - set_vars(c)
        assert not missing, f"{c['name']} reads {sorted(missing)} but does not get them"


def test_jvb_has_no_auth_vars(params):
    env = container_env(jvb_task_definition(params))["jvb"]
    assert not {"ENABLE_AUTH", "AUTH_TYPE", "ENABLE_GUESTS", "JWT_APP_ID"} & set(env)


@pytest.mark.parametrize("bad", ["ldap", "", "JWT", "none", "internal"])
def test_unknown_auth_mode_is_refused(bad):
    with pytest.raises(ValueError, match="unknown auth mode"):
        signal_task_definition(make_params(auth=bad))


def test_jwt_without_app_id_is_refused():
    with pytest.raises(ValueError, match="jwt_app_id"):
        signal_task_definition(make_params(auth="jwt", jwt_app_id=""))


# --- the wiring the notes ask for -----------------------------------------------------------


def test_signal_task_env():
    env = container_env(signal_task_definition(make_params()))
    assert env["web"] == {
        "DISABLE_HTTPS": "1",
        "ENABLE_AUTH": "0",
        "ENABLE_HTTP_REDIRECT": "0",
        "ENABLE_IPV6": "0",
        "ENABLE_LETSENCRYPT": "0",
        "ENABLE_XMPP_WEBSOCKET": "1",
        "PUBLIC_URL": "https://meet.example.com",
        "TZ": "UTC",
        "XMPP_BOSH_URL_BASE": "http://127.0.0.1:5280",
        "XMPP_DOMAIN": "meet.jitsi",
        "XMPP_MUC_DOMAIN": "muc.meet.jitsi",
    }
    assert env["prosody"] == {
        "ENABLE_AUTH": "0",
        "ENABLE_IPV6": "0",
        "ENABLE_XMPP_WEBSOCKET": "1",
        "JVB_AUTH_USER": "jvb",
        "PROSODY_HTTP_PORT": "5280",
        "PUBLIC_URL": "https://meet.example.com",
        "TZ": "UTC",
        "XMPP_AUTH_DOMAIN": "auth.meet.jitsi",
        "XMPP_DOMAIN": "meet.jitsi",
        "XMPP_INTERNAL_MUC_DOMAIN": "internal-muc.meet.jitsi",
        "XMPP_MUC_DOMAIN": "muc.meet.jitsi",
        "XMPP_PORT": "5222",
    }
    assert env["jicofo"] == {
        "ENABLE_AUTH": "0",
        "ENABLE_OCTO": "0",
        "JICOFO_ENABLE_REST": "1",
        "JICOFO_MAX_MEMORY": "1152m",
        "JVB_BREWERY_MUC": "jvbbrewery",
        "TZ": "UTC",
        "XMPP_AUTH_DOMAIN": "auth.meet.jitsi",
        "XMPP_DOMAIN": "meet.jitsi",
        "XMPP_INTERNAL_MUC_DOMAIN": "internal-muc.meet.jitsi",
        "XMPP_MUC_DOMAIN": "muc.meet.jitsi",
        "XMPP_PORT": "5222",
        "XMPP_SERVER": "127.0.0.1",
    }


def test_jvb_task_env():
    params = make_params(stun_servers=("stun1.example.net:3478", "stun2.example.net:3478"))
    assert container_env(jvb_task_definition(params))["jvb"] == {
        "COLIBRI_REST_ENABLED": "true",
        "DISABLE_AWS_HARVESTER": "true",
        "ENABLE_OCTO": "0",
        "JVB_AUTH_USER": "jvb",
        "JVB_BREWERY_MUC": "jvbbrewery",
        "JVB_PORT": "10000",
        "JVB_REQUIRE_VALID_ADDRESS": "1",
        "JVB_STUN_SERVERS": "stun1.example.net:3478,stun2.example.net:3478",
        "SHUTDOWN_REST_ENABLED": "true",
        "TZ": "UTC",
        "VIDEOBRIDGE_DEBUG_OPTIONS": "-XX:MaxDirectMemorySize=256m",
        "VIDEOBRIDGE_MAX_MEMORY": "1344m",
        "XMPP_AUTH_DOMAIN": "auth.meet.jitsi",
        "XMPP_INTERNAL_MUC_DOMAIN": "internal-muc.meet.jitsi",
        "XMPP_PORT": "5222",
        "XMPP_SERVER": "xmpp.meet.internal",
    }


def test_signal_task_shape():
    td = signal_task_definition(make_params())
    assert {k: v for k, v in td.items() if k != "containerDefinitions"} == {
        "family": "meet-signal",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "2048",
        "executionRoleArn": "arn:aws:iam::123456789012:role/meet-exec",
        "taskRoleArn": "arn:aws:iam::123456789012:role/meet-signal",
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
    }
    web, prosody, jicofo = td["containerDefinitions"]
    assert [web["name"], prosody["name"], jicofo["name"]] == ["web", "prosody", "jicofo"]
    assert web["portMappings"] == [{"containerPort": 8000, "hostPort": 8000, "protocol": "tcp"}]
    assert prosody["portMappings"] == [{"containerPort": 5222, "hostPort": 5222, "protocol": "tcp"}]
    healthy_prosody = [{"containerName": "prosody", "condition": "HEALTHY"}]
    assert web["dependsOn"] == healthy_prosody
    assert jicofo["dependsOn"] == healthy_prosody
    assert "dependsOn" not in prosody
    assert prosody["healthCheck"]["command"] == ["CMD-SHELL", "/usr/local/bin/healthcheck.sh"]
    assert "http://127.0.0.1:8000/" in web["healthCheck"]["command"][1]
    # liveness only: /about/health fails while no bridge is connected (see pcls.jitsi)
    assert "/about/version" in jicofo["healthCheck"]["command"][1]
    assert "tags" not in td


def test_jvb_task_shape():
    td = jvb_task_definition(make_params())
    assert td["family"] == "meet-jvb"
    assert td["cpu"] == "1024" and td["memory"] == "2048"
    assert td["taskRoleArn"] == "arn:aws:iam::123456789012:role/meet-jvb"
    (jvb,) = td["containerDefinitions"]
    assert jvb["name"] == "jvb"
    assert jvb["portMappings"] == [{"containerPort": 10000, "hostPort": 10000, "protocol": "udp"}]
    assert jvb["stopTimeout"] == 120
    assert jvb["healthCheck"]["command"] == ["CMD-SHELL", "/usr/local/bin/healthcheck.sh"]
    assert "tags" not in td


def test_common_container_settings(params):
    for c in jitsi_containers(params):
        assert c["essential"] is True
        assert c["readonlyRootFilesystem"] is False
        hc = c["healthCheck"]
        assert hc["command"][0] == "CMD-SHELL"
        assert 5 <= hc["interval"] <= 300 and 2 <= hc["timeout"] < hc["interval"]
        assert 1 <= hc["retries"] <= 10 and 0 <= hc["startPeriod"] <= 300
        assert c["logConfiguration"]["logDriver"] == "awslogs"
        opts = c["logConfiguration"]["options"]
        assert opts["awslogs-group"] == "/pcls/meet"
        assert opts["awslogs-region"] == "eu-west-1"
        assert opts["awslogs-stream-prefix"] == c["name"]
        for e in c["environment"]:
            assert isinstance(e["value"], str)


def test_sidecar_is_appended_to_the_jvb_task_only():
    params = make_params(sidecar=SIDECAR)
    containers = jvb_task_definition(params)["containerDefinitions"]
    assert [c["name"] for c in containers] == ["jvb", "bridge-guard"]
    # told where the bridges reach jicofo's REST API, otherwise as given
    jicofo = [{"name": "JICOFO_URLS", "value": "http://xmpp.meet.internal:8888"}]
    assert containers[1] == {**SIDECAR, "environment": jicofo}
    assert len(signal_task_definition(params)["containerDefinitions"]) == 3


def test_sidecar_gets_one_jicofo_per_shard():
    assert jitsi.jicofo_urls("a.internal,b.internal:5222") == [
        "http://a.internal:8888",
        "http://b.internal:8888",
    ]
    guard = sc.guard_container("meet", "/pcls/meet", "eu-west-1")
    (_, sidecar) = jvb_task_definition(make_params(sidecar=guard))["containerDefinitions"]
    env = {e["name"]: e["value"] for e in sidecar["environment"]}
    assert env["JICOFO_URLS"] == "http://xmpp.meet.internal:8888"
    assert [e["name"] for e in sidecar["environment"]] == sorted(env)


def test_the_guard_stops_first_and_drains_within_the_stop_timeouts():
    # ECS stops a container only after those that depend on it: the guard (dependsOn jvb) gets
    # SIGTERM first and the bridge keeps its media until the guard has drained it and exited.
    guard = sc.guard_container("meet", "/pcls/meet", "eu-west-1")
    jvb, sidecar = jvb_task_definition(make_params(sidecar=guard))["containerDefinitions"]
    assert sidecar["dependsOn"] == [{"containerName": "jvb", "condition": "START"}]
    assert "dependsOn" not in jvb
    assert jvb["essential"] is True and sidecar["essential"] is False
    env = {e["name"]: e["value"] for e in sidecar["environment"]}
    drain = int(env["DRAIN_SECONDS"])
    # the drain ends before ECS kills the guard, and both fit ECS's 120 s maximum
    assert drain + 5 <= sidecar["stopTimeout"] <= 120
    assert jvb["stopTimeout"] == 120
    # Fargate Spot takes the task 120 s after its notice: the bridge keeps >= 30 s to stop
    assert 120 - drain >= 30


def test_sidecar_named_like_the_bridge_is_refused():
    with pytest.raises(ValueError, match="sidecar"):
        jvb_task_definition(make_params(sidecar={"name": "jvb", "image": "x"}))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("domain", "https://meet.example.com", "domain"),
        ("domain", "", "domain"),
        ("stack", "meet stack", "stack"),
        ("stun_servers", (), "stun_servers"),
        ("image_tag", "", "image_tag"),
        ("xmpp_server", "", "xmpp_server"),
        ("signal_memory", 3000, "signal task size"),
        ("jvb_cpu", 3000, "jvb task size"),
    ],
)
def test_bad_params_are_refused(field, value, match):
    bad = replace(make_params(), **{field: value})
    for build in (signal_task_definition, jvb_task_definition):
        with pytest.raises(ValueError, match=match):
            build(bad)


@pytest.mark.parametrize("sidecar", [None, SIDECAR])
def test_task_definitions_pass_the_ecs_api_model(params, sidecar):
    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("RegisterTaskDefinition")
        .input_shape
    )
    for td in (
        signal_task_definition(params),
        jvb_task_definition(replace(params, sidecar=sidecar)),
    ):
        report = ParamValidator().validate(td, shape)
        assert not report.has_errors(), report.generate_report()


# --- Fargate sizes --------------------------------------------------------------------------


def test_fargate_table():
    assert FARGATE_SIZES[256] == (512, 1024, 2048)
    assert FARGATE_SIZES[512] == (1024, 2048, 3072, 4096)
    assert FARGATE_SIZES[1024] == tuple(range(2048, 8193, 1024))
    assert FARGATE_SIZES[2048] == tuple(range(4096, 16385, 1024))
    assert FARGATE_SIZES[4096][0] == 8192 and FARGATE_SIZES[4096][-1] == 30720
    assert len(FARGATE_SIZES[4096]) == 23
    assert FARGATE_SIZES[8192] == tuple(range(16384, 61441, 4096))
    assert FARGATE_SIZES[16384] == tuple(range(32768, 122881, 8192))


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [(256, 512), (256, 2048), (512, 4096), (1024, 2048), (2048, 16384), (4096, 30720),
     (8192, 20480), (16384, 122880)],
)  # fmt: skip
def test_valid_fargate_sizes(cpu, memory):
    assert fargate_size_error(cpu, memory) is None


def test_every_table_entry_is_accepted():
    for cpu, memories in FARGATE_SIZES.items():
        for memory in memories:
            assert fargate_size_error(cpu, memory) is None


@pytest.mark.parametrize(
    ("cpu", "memory", "listed"),
    [
        (256, 4096, ["512, 1024, 2048"]),
        (1024, 1024, ["2048-8192", "1024"]),
        (1024, 2500, ["2048-8192", "1024"]),
        (4096, 31744, ["8192-30720"]),
        (8192, 17408, ["16384-61440", "4096"]),
        (16384, 36864, ["32768-122880", "8192"]),
    ],
)
def test_invalid_memory_lists_allowed_values(cpu, memory, listed):
    msg = fargate_size_error(cpu, memory)
    assert msg and "\n" not in msg
    assert str(memory) in msg and str(cpu) in msg
    for fragment in listed:
        assert fragment in msg


@pytest.mark.parametrize("cpu", [0, 128, 1000, 3072, 32768])
def test_invalid_cpu_lists_allowed_cpu_values(cpu):
    msg = fargate_size_error(cpu, 2048)
    assert msg and "\n" not in msg
    assert "256, 512, 1024, 2048, 4096, 8192, 16384" in msg


# --- JVM heaps ------------------------------------------------------------------------------


def test_default_heaps():
    # the config's default sizes: 2 GB for the shard and for the bridge
    assert jicofo_heap_mib(DEFAULTS.signal.memory) == 1152
    assert videobridge_heap_mib(DEFAULTS.jvb.memory) == 1344
    assert videobridge_memory(DEFAULTS.jvb.memory) == (1344, 256)
    assert videobridge_memory(4096) == (2752, 512)
    assert [videobridge_memory(m) for m in (1024, 2048, 8192, 16384)] == [
        (448, 128),
        (1344, 256),
        (5568, 1024),
        (12224, 1024),
    ]


def _all_memories() -> list[int]:
    return sorted({m for memories in FARGATE_SIZES.values() for m in memories})


@pytest.mark.parametrize("memory", _all_memories())
def test_jicofo_heap_fits_the_signal_task(memory):
    if memory < jitsi.SIGNAL_MEMORY_MIN_MIB:
        with pytest.raises(ValueError, match="too small"):
            jicofo_heap_mib(memory)
        return
    heap = jicofo_heap_mib(memory)
    budget = memory - jitsi.SIGNAL_NON_JVM_RESERVE_MIB  # web + prosody keep 512 MiB
    assert 256 <= heap <= 3072 and heap % 64 == 0
    assert heap + max(budget // 4, 384) <= budget  # JVM non-heap room stays free


@pytest.mark.parametrize("memory", _all_memories())
def test_videobridge_heap_fits_the_jvb_task(memory):
    if memory < jitsi.JVB_MEMORY_MIN_MIB:
        with pytest.raises(ValueError, match="too small"):
            videobridge_heap_mib(memory)
        return
    heap, direct = videobridge_memory(memory)
    assert heap >= 256 and heap % 64 == 0
    assert 128 <= direct <= 1024
    # heap + capped direct buffers + the JVM's other native memory (>= 384 MiB, growing with
    # the task) + the guard sidecar fit the task: no OOM kill of the essential container
    assert heap + direct + max(384, memory * 3 // 16) + 64 <= memory
    # the memoryReservation of the guard is inside its 64 MiB
    assert sc.guard_container("s", "g", "r")["memoryReservation"] <= 64


def test_heaps_in_the_task_definitions_follow_the_task_memory():
    params = make_params(signal_cpu=2048, signal_memory=8192, jvb_cpu=1024, jvb_memory=2048)
    assert container_env(signal_task_definition(params))["jicofo"]["JICOFO_MAX_MEMORY"] == "3072m"
    jvb = container_env(jvb_task_definition(params))["jvb"]
    assert jvb["VIDEOBRIDGE_MAX_MEMORY"] == "1344m"
    assert jvb["VIDEOBRIDGE_DEBUG_OPTIONS"] == "-XX:MaxDirectMemorySize=256m"


def test_signal_task_too_small_for_three_containers_is_refused():
    with pytest.raises(ValueError, match="signal task memory 1024 MiB is too small"):
        signal_task_definition(make_params(signal_cpu=512, signal_memory=1024))


# --- determinism ----------------------------------------------------------------------------


def test_same_params_give_identical_output(params):
    a = replace(params, sidecar=SIDECAR)
    b = replace(make_params(auth=params.auth), sidecar=copy.deepcopy(SIDECAR))
    for build in (signal_task_definition, jvb_task_definition):
        first, second = build(a), build(b)
        assert first == second
        assert json.dumps(first) == json.dumps(second)  # same key and list order too


def test_output_does_not_share_state_with_inputs_or_earlier_results():
    sidecar = copy.deepcopy(SIDECAR)
    params = make_params(sidecar=sidecar)
    first = jvb_task_definition(params)
    first["containerDefinitions"][1]["image"] = "changed"
    first["containerDefinitions"][0]["environment"].clear()
    assert sidecar == SIDECAR
    assert jvb_task_definition(params) != first
    assert jvb_task_definition(params) == jvb_task_definition(make_params(sidecar=SIDECAR))


def test_lists_are_sorted_so_a_describe_round_trip_compares_equal(params):
    for c in jitsi_containers(params):
        names = [e["name"] for e in c["environment"]]
        assert names == sorted(names)
        secret_names = [s["name"] for s in c.get("secrets", [])]
        assert secret_names == sorted(secret_names)


def test_container_env_flattens_environment_lists():
    td = {
        "containerDefinitions": [
            {"name": "a", "environment": [{"name": "X", "value": "1"}]},
            {"name": "b"},
        ]
    }
    assert container_env(td) == {"a": {"X": "1"}, "b": {}}

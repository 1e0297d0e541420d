"""Sleep and wake on the sandbox (the moto server `pcls --sandbox` runs): by hand and on a visit.

The sandbox registers a running shard's router in the target group as ECS does
(pcls.sandbox.services_register_their_routers), so a wake finishes there as on AWS. The visit
goes through the function's own entry point with the environment `up` gave it, its clients
pointed at the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pcls import sandbox
from pcls.__main__ import run
from pcls.wakefn import handler

REGION = "eu-central-1"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    cfg = tmp_path / "pcls.toml"
    cfg.write_text(f'[stack]\nname = "meet"\nregion = "{REGION}"\ndomain = "meet.example.com"\n')
    state, _ = sandbox.start(tmp_path / ".pcls")
    try:
        yield cfg, state["url"]
    finally:
        sandbox.stop(tmp_path / ".pcls")


def _pcls(cfg: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = run(["--config", str(cfg), "--sandbox", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _request(method: str, path: str) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {},
        "headers": {"accept": "application/json"},
        "body": "",
        "isBase64Encoded": False,
    }


def test_sleep_and_wake_on_the_sandbox(
    stack: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, url = stack
    assert _pcls(cfg, "up", capsys=capsys)[0] == 0
    code, out = _pcls(cfg, "sleep", capsys=capsys)
    assert code == 0 and "is asleep" in out, out
    code, out = _pcls(cfg, "status", capsys=capsys)
    assert code == 0 and "stack asleep since" in out, out
    # By hand: the routers serve again as the shards start, and wake follows them.
    code, out = _pcls(cfg, "wake", capsys=capsys)
    assert code == 0 and "is awake" in out, out

    # A visit: the function's entry point, configured and connected as in Lambda.
    assert _pcls(cfg, "sleep", capsys=capsys)[0] == 0
    config = _client(url, "lambda").get_function(FunctionName="meet-wake")["Configuration"]
    for key, value in config["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setattr(handler, "_CLIENTS", None)
    page = handler.handler({**_request("GET", "/room"), "headers": {"accept": "text/html"}})
    assert page["statusCode"] == 200 and "text/html" in page["headers"]["Content-Type"]
    ecs = _client(url, "ecs")
    arn = ecs.describe_clusters(clusters=["meet"])["clusters"][0]["clusterArn"]
    # A minute after the sleep (the rate limit is for visitors' presses).
    ecs.tag_resource(
        resourceArn=arn, tags=[{"key": handler.SINCE_TAG, "value": "2026-01-01T00:00:00Z"}]
    )
    pressed = json.loads(handler.handler(_request("POST", handler.WAKE_PATH))["body"])
    assert pressed["state"] in ("waking", "awake"), pressed
    seen = json.loads(handler.handler(_request("GET", handler.STATUS_PATH))["body"])
    assert seen["state"] == "awake", seen
    assert _pcls(cfg, "status", capsys=capsys)[0] == 0

    code, out = _pcls(cfg, "teardown", "--yes", capsys=capsys)
    assert code == 0 and "verified: AWS reports no resource of the stack" in out, out

"""The generated secrets appear in nothing pcls prints or writes, nor in any task environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from pcls import runner
from tests.conftest import REGION
from tests.harness import Harness


@pytest.fixture(autouse=True)
def tasks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")


def secret_values(h: Harness) -> dict[str, str]:
    ssm = h.client("ssm")
    params = ssm.get_parameters_by_path(Path="/pcls/meet/", WithDecryption=True)["Parameters"]
    return {p["Name"]: p["Value"] for p in params}


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def task_definitions(h: Harness) -> list[dict[str, Any]]:
    ecs = h.client("ecs")
    out = []
    for status in ("ACTIVE", "INACTIVE"):
        for arn in ecs.list_task_definitions(status=status)["taskDefinitionArns"]:
            out.append(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"])
    return out


def test_no_secret_value_in_output_files_or_task_environment(harness: Harness, capsys) -> None:
    harness.config_path.unlink()
    outputs = []

    def cli(*args: str) -> None:
        res = harness.cli(*args, capsys=capsys)
        outputs.append((args, res.out, res.err))
        assert res.code in (0, 3), (args, res.out, res.err)

    cli("init", "meet.example.com", "--name", "meet", "--region", REGION)
    # jwt mode adds the third generated secret.
    text = harness.config_path.read_text()
    text = text.replace('# auth = "open"', 'auth = "jwt"')
    text = text.replace('# jwt_app_id = ""', 'jwt_app_id = "meet"')
    harness.config_path.write_text(text)

    cli("up", "--api-calls")
    values = secret_values(harness)
    assert len(values) == 3 and all(len(v) >= 32 for v in values.values())
    cli("status")
    cli("status", "--json")
    cli("plan", "--api-calls")
    registered = task_definitions(harness)
    assert len(registered) == 3  # two signal shards and the bridges
    written = files_under(harness.root)
    assert any(name.endswith("meet.json") for name in written)  # the ledger was checked
    cli("teardown", "--yes", "--api-calls", "--debug")
    written.update(files_under(harness.root))

    for name, value in values.items():
        for args, out, err in outputs:
            assert value not in out and value not in err, (name, args)
        for path, data in written.items():
            assert value.encode() not in data, (name, path)
        for td in registered:
            assert value not in json.dumps(td, default=str), (name, td["family"])
            for c in td["containerDefinitions"]:
                env_values = {e["value"] for e in c.get("environment", [])}
                env_names = {e["name"] for e in c.get("environment", [])}
                assert value not in env_values
                assert name.rsplit("/", 1)[-1] not in env_names


def test_a_refused_write_does_not_echo_the_value(harness: Harness, capsys) -> None:
    s = harness.session()
    sent: list[str] = []

    def refuse(params: dict[str, Any], **_: Any) -> None:
        # Some AWS validation errors quote the input; the value must still not surface.
        sent.append(params["Value"])
        raise botocore.exceptions.ClientError(
            {
                "Error": {
                    "Code": "ValidationException",
                    "Message": f"Value '{params['Value']}' at 'value' failed to satisfy constraint",
                }
            },
            "PutParameter",
        )

    s.aws.client("ssm").meta.events.register("before-parameter-build.ssm.PutParameter", refuse)
    s.debug = True  # tracebacks too
    result = runner.do_up(s)
    assert runner.finish(s, result, "up") == 1
    err = capsys.readouterr().err
    assert "secrets: PutParameter failed: ValidationException" in err
    assert sent and all(v not in err for v in sent)
    assert all(v.encode() not in data for v in sent for data in files_under(harness.root).values())

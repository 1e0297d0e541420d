"""ECS side of the stack (platform, secrets, IAM, task definitions, services) on moto.

moto runs no containers and checks little, so the real-AWS failure modes are injected with
botocore event hooks on the clients pcls itself uses, and the request parameters moto drops
(capacity provider strategy, circuit breaker) are captured on their way out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import botocore.exceptions
import pytest

from pcls import runner
from pcls.engine import RunResult
from pcls.steps.iam import POLICIES, WAKE_READS, Scope, documents
from pcls.steps.tasks import differences
from pcls.ui import Outcome
from tests.harness import FAST, Harness

ECS_STEPS = {
    "cluster",
    "namespace",
    "discovery-xmpp",
    "log-group",
    "secrets",
    "role-execution",
    "role-signal",
    "role-jvb",
    "taskdef-signal",
    "taskdef-jvb",
    "service-signal",
    "service-jvb",
}
SECRET_NAMES = ("JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD")
IAM_ERROR = (
    "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/meet-execution' that was "
    "provided for this task. Please verify that the role being passed has the proper trust "
    "relationship and permissions and that your IAM user has permissions to pass this role."
)


@pytest.fixture(autouse=True)
def tasks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto reads this at create_service: services report their task running.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")


@pytest.fixture
def deployed(harness: Harness) -> Iterator[Harness]:
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    yield harness


# -- helpers ---------------------------------------------------------------------------------


def client_error(code: str, message: str, op: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, op)


def capture(session: runner.Session, service: str, op: str) -> list[dict[str, Any]]:
    """The parameters of every `op` call pcls makes in this session, as sent."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(json.loads(json.dumps(params, default=str)))

    session.aws.client(service).meta.events.register(
        f"before-parameter-build.{service}.{op}", record
    )
    return seen


def inject(
    session: runner.Session,
    service: str,
    op: str,
    error: botocore.exceptions.ClientError,
    times: int,
    when: Callable[[dict[str, Any]], bool] = lambda p: True,
) -> list[dict[str, Any]]:
    """Fail the first `times` matching calls with `error`, as real AWS would; returns them."""
    failed: list[dict[str, Any]] = []
    lock = threading.Lock()

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["test_params"] = dict(params)  # per request, whichever thread sends it

    def fail(context: dict[str, Any], **_: Any) -> None:
        params = context.get("test_params", {})
        with lock:
            if len(failed) >= times or not when(params):
                return
            failed.append(params)
        raise error

    events = session.aws.client(service).meta.events
    events.register(f"before-parameter-build.{service}.{op}", remember)
    events.register(f"before-call.{service}.{op}", fail)
    return failed


def run_up(session: runner.Session) -> RunResult:
    return runner.do_up(session)


def writes(session: runner.Session) -> dict[str, int]:
    from pcls.aws import is_read

    return {f"{s}:{op}": n for (s, op), n in session.aws.calls.items() if not is_read(op)}


def services(h: Harness) -> dict[str, dict[str, Any]]:
    out = h.client("ecs").describe_services(cluster="meet", services=["shard-a", "shard-b", "jvb"])
    return {s["serviceName"]: s for s in out["services"]}


def param_values(h: Harness) -> dict[str, str]:
    ssm = h.client("ssm")
    out = ssm.get_parameters_by_path(Path="/pcls/meet/", WithDecryption=True)["Parameters"]
    return {p["Name"].rsplit("/", 1)[-1]: p["Value"] for p in out}


def active_revisions(h: Harness, family: str) -> list[str]:
    ecs = h.client("ecs")
    return ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


# -- create ----------------------------------------------------------------------------------


def test_up_creates_the_ecs_stack_with_the_exact_parameters(harness: Harness) -> None:
    s = harness.session()
    created = capture(s, "ecs", "CreateService")
    result = run_up(s)
    assert result.ok, [r.detail for r in result.failures]
    assert {n: r.outcome for n, r in result.results.items() if n in ECS_STEPS} == dict.fromkeys(
        ECS_STEPS, Outcome.CREATED
    )
    out = {n: r.id for n, r in result.results.items()}
    sent = {c["serviceName"]: c for c in created}

    # jvb: on-demand base, then Spot; the fields moto drops are checked as sent.
    jvb = sent["jvb"]
    assert jvb["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
        {"capacityProvider": "FARGATE_SPOT", "base": 0, "weight": 1},
    ]
    assert "launchType" not in jvb
    assert jvb["desiredCount"] == 2  # one bridge per AZ
    assert jvb["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
        "enable": True,
        "rollback": True,
    }
    assert jvb["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": [out["subnet-1"], out["subnet-2"]],
        "securityGroups": [out["sg-jvb"]],
        "assignPublicIp": "ENABLED",
    }
    assert jvb["propagateTags"] == "SERVICE" and "loadBalancers" not in jvb

    sd = harness.client("servicediscovery")
    names = {x["Name"]: x for x in sd.list_services()["Services"]}
    for i, shard in enumerate(("shard-a", "shard-b")):
        signal = sent[shard]
        assert signal["launchType"] == "FARGATE" and signal["desiredCount"] == 1
        assert signal["deploymentConfiguration"] == {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "minimumHealthyPercent": 0,
            "maximumPercent": 100,
        }
        net = signal["networkConfiguration"]["awsvpcConfiguration"]
        assert net["assignPublicIp"] == "ENABLED"
        assert net["securityGroups"] == [out["sg-signal"]]
        assert net["subnets"] == [out[f"subnet-{i + 1}"]]  # one AZ per shard
        assert signal["loadBalancers"] == [
            {
                "targetGroupArn": out["target-group"],
                "containerName": "router",
                "containerPort": 8080,
            }
        ]
        assert signal["serviceRegistries"] == [{"registryArn": names[shard]["Arn"]}]
        assert {"key": "pcls:step", "value": "service-signal"} in signal["tags"]

    ecs = harness.client("ecs")
    cluster = ecs.describe_clusters(clusters=["meet"], include=["SETTINGS", "TAGS"])["clusters"][0]
    assert sorted(cluster["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "disabled"}]

    (ns,) = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "meet.internal"]
    assert ns["Type"] == "DNS_PRIVATE" and ns["Id"] == out["namespace"]
    assert result.results["discovery-xmpp"].id == names["shard-a"]["Id"]
    for shard in ("shard-a", "shard-b"):
        xmpp = sd.get_service(Id=names[shard]["Id"])["Service"]
        assert xmpp["NamespaceId"] == ns["Id"]
        assert xmpp["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]

    (group,) = harness.client("logs").describe_log_groups(logGroupNamePrefix="/pcls/meet")[
        "logGroups"
    ]
    assert group["retentionInDays"] == 14

    ssm = harness.client("ssm")
    params = ssm.describe_parameters()["Parameters"]
    assert sorted(p["Name"] for p in params) == [f"/pcls/meet/{n}" for n in SECRET_NAMES]
    assert {p["Type"] for p in params} == {"SecureString"}

    # Secrets reach the containers by reference only.
    arns = {
        n: f"arn:aws:ssm:eu-central-1:123456789012:parameter/pcls/meet/{n}" for n in SECRET_NAMES
    }
    signal_td = out["taskdef-signal"].replace("meet-shard-a", "meet-shard-b")
    for arn, family in (
        (out["taskdef-signal"], "meet-shard-a"),
        (signal_td, "meet-shard-b"),
        (out["taskdef-jvb"], "meet-jvb"),
    ):
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        assert td["family"] == family
        assert td["executionRoleArn"].endswith(":role/pcls/meet-execution")
        for c in td["containerDefinitions"]:
            assert not {e["name"] for e in c.get("environment", [])} & set(SECRET_NAMES)
            for ref in c.get("secrets", []):
                assert ref["valueFrom"] == arns[ref["name"]]
    jvb_td = ecs.describe_task_definition(taskDefinition=out["taskdef-jvb"])["taskDefinition"]
    assert [c["name"] for c in jvb_td["containerDefinitions"]] == ["jvb", "bridge-guard"]
    assert jvb_td["taskRoleArn"].endswith(":role/pcls/meet-jvb-task")
    env = {e["name"]: e["value"] for e in jvb_td["containerDefinitions"][0]["environment"]}
    assert env["XMPP_SERVER"] == "shard-a.meet.internal,shard-b.meet.internal"

    iam = harness.client("iam")
    policy = iam.get_role_policy(RoleName="meet-execution", PolicyName="logs-and-secrets")
    statements = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    assert sorted(statements["ReadStackSecrets"]["Resource"]) == sorted(arns.values())
    assert statements["WriteTaskLogs"]["Resource"] == [
        "arn:aws:logs:eu-central-1:123456789012:log-group:/pcls/meet",
        "arn:aws:logs:eu-central-1:123456789012:log-group:/pcls/meet:log-stream:*",
    ]
    jvb_policy = iam.get_role_policy(RoleName="meet-jvb-task", PolicyName="task-protection")
    (protect,) = jvb_policy["PolicyDocument"]["Statement"]
    assert protect["Action"] == "ecs:UpdateTaskProtection"
    assert protect["Resource"] == "arn:aws:ecs:eu-central-1:123456789012:task/meet/*"
    assert iam.list_role_policies(RoleName="meet-signal-task")["PolicyNames"] == []
    for role in ("meet-execution", "meet-signal-task", "meet-jvb-task"):
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []


def test_second_up_writes_nothing_and_status_is_in_sync(deployed: Harness, capsys) -> None:
    again = deployed.up()
    assert again.ok
    assert deployed.writes() == {}
    assert {r.outcome for n, r in again.results.items() if n in ECS_STEPS} == {Outcome.UNCHANGED}
    # One DescribeServices answers both service steps (every shard and the bridges).
    assert deployed.calls()["calls"]["ecs:DescribeServices"] == 1
    status = deployed.cli("status", "--json", capsys=capsys)
    assert status.code == 0, status.out
    doc = json.loads(status.out)
    by_step = {r["step"]: r for r in doc["resources"]}
    assert by_step["service-jvb"]["details"]["running"] == 2
    assert by_step["service-signal"]["details"]["shard-a"].startswith("eu-central-1a · 1/1 running")
    assert by_step["taskdef-jvb"]["details"]["revision"] == 1


# -- change ----------------------------------------------------------------------------------


def test_rerun_keeps_the_jvb_count_and_rolls_a_new_image_tag(deployed: Harness) -> None:
    ecs = deployed.client("ecs")
    ecs.update_service(cluster="meet", service="jvb", desiredCount=3)  # as autoscaling would
    ecs.update_service(cluster="meet", service="shard-b", desiredCount=0)  # by hand
    s = deployed.session()
    updates = capture(s, "ecs", "UpdateService")
    result = run_up(s)
    assert result.results["service-jvb"].outcome is Outcome.UNCHANGED
    assert result.results["service-signal"].drift == ["shard-b: desired count 0 -> 1"]
    assert updates == [{"cluster": "meet", "service": "shard-b", "desiredCount": 1}]
    assert {n: x["desiredCount"] for n, x in services(deployed).items()} == {
        "shard-a": 1,
        "shard-b": 1,
        "jvb": 3,
    }
    # A new image tag: new revisions, every service rolled (the shards one at a time), the
    # bridge count left alone.
    deployed.write_config('[jitsi]\nimage_tag = "stable-99999"\n')
    s = deployed.session()
    updates = capture(s, "ecs", "UpdateService")
    result = run_up(s)
    assert result.ok, [r.detail for r in result.failures]
    assert result.results["taskdef-jvb"].outcome is Outcome.UPDATED
    assert {u["service"]: u["taskDefinition"].rsplit("/", 1)[-1] for u in updates} == {
        "shard-a": "meet-shard-a:2",
        "shard-b": "meet-shard-b:2",
        "jvb": "meet-jvb:2",
    }
    shards = [u["service"] for u in updates if u["service"] != "jvb"]
    assert shards == ["shard-a", "shard-b"]  # in order, one at a time
    assert all(set(u) == {"cluster", "service", "taskDefinition"} for u in updates)
    live = services(deployed)
    assert live["jvb"]["taskDefinition"].endswith("meet-jvb:2")
    assert live["jvb"]["desiredCount"] == 3
    td = ecs.describe_task_definition(taskDefinition="meet-jvb:2")["taskDefinition"]
    assert td["containerDefinitions"][0]["image"] == "ghcr.io/jitsi/jvb:stable-99999"
    # The old revision stays ACTIVE (a rollback may need it) until teardown.
    assert len(active_revisions(deployed, "meet-jvb")) == 2
    assert deployed.up().ok
    assert deployed.writes() == {}


def test_missing_secret_is_recreated_alone_and_its_readers_redeployed(deployed: Harness) -> None:
    before = param_values(deployed)
    deployed.client("ssm").delete_parameter(Name="/pcls/meet/JVB_AUTH_PASSWORD")
    s = deployed.session()
    puts = capture(s, "ssm", "PutParameter")
    updates = capture(s, "ecs", "UpdateService")
    result = run_up(s)
    assert result.ok, [r.detail for r in result.failures]
    assert result.results["secrets"].outcome is Outcome.UPDATED
    assert [p["Name"] for p in puts] == ["/pcls/meet/JVB_AUTH_PASSWORD"]
    assert puts[0]["Overwrite"] is False
    after = param_values(deployed)
    assert after["JICOFO_AUTH_PASSWORD"] == before["JICOFO_AUTH_PASSWORD"]
    assert after["JVB_AUTH_PASSWORD"] != before["JVB_AUTH_PASSWORD"]
    # prosody (every shard) and the bridges both read it: all get new tasks.
    assert sorted(u["service"] for u in updates if u.get("forceNewDeployment")) == [
        "jvb",
        "shard-a",
        "shard-b",
    ]
    assert deployed.up().ok
    assert deployed.writes() == {}


def test_jwt_mode_no_idle_bridges_and_kept_logs(harness: Harness) -> None:
    harness.write_config(
        '[jitsi]\nauth = "jwt"\njwt_app_id = "meet"\n[jvb]\nmin_count = 0\n'
        "[logs]\nkeep_on_teardown = true\nretention_days = 30\n"
    )
    result = harness.up()
    assert result.ok, [r.detail for r in result.failures]
    # Scaled to 0 from the start: nothing to wait for (moto still reports one running).
    assert services(harness)["jvb"]["desiredCount"] == 0
    assert set(param_values(harness)) == {*SECRET_NAMES, "JWT_APP_SECRET"}
    doc = harness.client("iam").get_role_policy(
        RoleName="meet-execution", PolicyName="logs-and-secrets"
    )["PolicyDocument"]
    (read,) = [st for st in doc["Statement"] if st["Sid"] == "ReadStackSecrets"]
    assert any(r.endswith("/JWT_APP_SECRET") for r in read["Resource"])
    td = harness.client("ecs").describe_task_definition(taskDefinition="meet-shard-a")
    prosody = next(
        c for c in td["taskDefinition"]["containerDefinitions"] if c["name"] == "prosody"
    )
    assert "JWT_APP_SECRET" in {s["name"] for s in prosody["secrets"]}

    down = harness.teardown()
    assert down.ok, down.remaining
    assert down.results["log-group"].outcome is Outcome.KEPT
    assert down.results["wake-log-group"].outcome is Outcome.KEPT  # the wake function's too
    logs = harness.client("logs")
    groups = logs.describe_log_groups()["logGroups"]
    kept = {g["logGroupName"]: g["retentionInDays"] for g in groups}
    assert kept == {"/pcls/meet": 30, "/aws/lambda/meet-wake": 30}
    again = harness.up()
    assert again.ok
    assert again.results["log-group"].outcome is Outcome.UNCHANGED  # adopted, not recreated
    assert ("logs", "CreateLogGroup") not in harness.last.aws.calls  # type: ignore[union-attr]


def test_policy_drift_is_reported_and_repaired(deployed: Harness) -> None:
    iam = deployed.client("iam")
    arn = iam.create_policy(
        PolicyName="wide",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="meet-jvb-task", PolicyArn=arn)
    iam.put_role_policy(
        RoleName="meet-execution",
        PolicyName="logs-and-secrets",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}],
            }
        ),
    )
    repaired = deployed.up()
    assert repaired.results["role-execution"].drift == ["inline policy logs-and-secrets differs"]
    assert repaired.results["role-jvb"].drift == [f"managed policy {arn} attached"]
    assert iam.list_attached_role_policies(RoleName="meet-jvb-task")["AttachedPolicies"] == []
    doc = iam.get_role_policy(RoleName="meet-execution", PolicyName="logs-and-secrets")
    assert {st["Sid"] for st in doc["PolicyDocument"]["Statement"]} == {
        "WriteTaskLogs",
        "ReadStackSecrets",
    }


def test_changed_task_definition_content_is_drift() -> None:
    want = {
        "cpu": "1024",
        "containerDefinitions": [
            {"name": "web", "image": "a:1", "environment": [{"name": "A", "value": "1"}]},
            {"name": "jvb", "image": "b:1", "readonlyRootFilesystem": False},
        ],
    }
    # ECS adds defaults and may reorder containers and variables: not drift.
    have = {
        "cpu": "1024",
        "revision": 3,
        "containerDefinitions": [
            {"name": "jvb", "image": "b:1", "cpu": 0, "mountPoints": []},
            {"name": "web", "image": "a:1", "environment": [{"value": "1", "name": "A"}]},
        ],
    }
    assert differences(want, have) == []
    changed = json.loads(json.dumps(have))
    changed["containerDefinitions"][1]["image"] = "a:2"
    changed["containerDefinitions"][1]["environment"].append({"name": "X", "value": "1"})
    assert differences(want, changed) == [
        "containerDefinitions[web].image",
        "containerDefinitions[web].environment[X] not in pcls",
    ]


# -- real-AWS failure modes ------------------------------------------------------------------


def test_new_roles_and_a_draining_predecessor_are_retried_on_create(harness: Harness) -> None:
    s = harness.session()
    iam_failures = inject(
        s,
        "ecs",
        "CreateService",
        client_error("InvalidParameterException", IAM_ERROR, "CreateService"),
        2,
        when=lambda p: p.get("serviceName") == "jvb",
    )
    draining = inject(
        s,
        "ecs",
        "CreateService",
        client_error(
            "InvalidParameterException",
            "Unable to Start a service that is still Draining.",
            "CreateService",
        ),
        2,
        when=lambda p: p.get("serviceName") == "shard-a",
    )
    result = run_up(s)
    assert result.ok, [r.detail for r in result.failures]
    assert len(iam_failures) == 2 and len(draining) == 2
    assert {x["status"] for x in services(harness).values()} == {"ACTIVE"}
    progress = [e[2] for e in s.ui.events if e[0] == "progress"]  # type: ignore[attr-defined]
    assert any("waiting for IAM to propagate" in p for p in progress)
    assert any("previous shard-a service to finish draining" in p for p in progress)


def test_role_never_assumable_fails_after_the_iam_bound(harness: Harness) -> None:
    s = harness.session(patience=replace(FAST, iam_propagation=0.3))
    inject(
        s,
        "ecs",
        "CreateService",
        client_error("InvalidParameterException", IAM_ERROR, "CreateService"),
        1000,
        when=lambda p: p.get("serviceName") == "jvb",
    )
    result = run_up(s)
    failure = result.results["service-jvb"]
    assert failure.outcome is Outcome.FAILED
    assert "unable to assume the role" in failure.detail
    assert "still waiting for IAM to propagate the task roles after 0s" in failure.detail
    assert failure.elapsed < 5  # bounded by patience.iam_propagation, not by botocore
    assert getattr(failure.error, "exit_code", None) == 1


def test_delete_refused_while_scaled_up_scales_to_zero_and_retries(deployed: Harness) -> None:
    s = deployed.session()
    failed = inject(
        s,
        "ecs",
        "DeleteService",
        client_error(
            "InvalidParameterException",
            "The service cannot be stopped while it is scaled above 0.",
            "DeleteService",
        ),
        1,
        when=lambda p: p.get("service") == "jvb",
    )
    scaled = capture(s, "ecs", "UpdateService")
    result = runner.do_teardown(s)
    assert result.ok, (result.remaining, [r.detail for r in result.failures])
    assert len(failed) == 1
    # Scaled to 0 before the first delete, and again after the refusal.
    assert [u["desiredCount"] for u in scaled if u["service"] == "jvb"] == [0, 0]
    assert services(deployed)["jvb"]["status"] == "INACTIVE"


def test_service_that_never_stabilises_times_out_with_events_and_stopped_reasons(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # nothing ever runs
    s = harness.session(patience=replace(FAST, service_stable=0.3))
    ecs = s.aws.client("ecs")
    events = [
        {"id": str(i), "createdAt": f"2026-01-01T00:00:0{i}Z", "message": text}
        for i, text in enumerate(
            [
                "(service jvb) has started 1 tasks: (task 3f2a).",
                "(service jvb) failed to launch a task (error CannotPullContainerError).",
                "(service jvb) has started 1 tasks: (task 9c1d).",
                "(service jvb) was unable to place a task.",
            ]
        )
    ]

    def with_events(parsed: dict[str, Any], **_: Any) -> None:
        for svc in parsed.get("services", []):
            svc["events"] = list(events)

    def stopped_task(**_: Any) -> None:
        # What a crashing bridge leaves behind: a stopped task with its reason.
        other = harness.client("ecs")
        other.register_task_definition(
            family="crash", containerDefinitions=[{"name": "jvb", "image": "x", "memory": 128}]
        )
        arn = other.run_task(cluster="meet", taskDefinition="crash", launchType="FARGATE")["tasks"][
            0
        ]["taskArn"]
        other.stop_task(cluster="meet", task=arn, reason="Essential container in task exited")

    ecs.meta.events.register("after-call.ecs.DescribeServices", with_events)
    ecs.meta.events.register_first("after-call.ecs.CreateService", stopped_task)
    result = run_up(s)
    assert not result.ok
    failure = result.failures[0]
    text = str(failure.error)
    assert "reach a steady state after 0s" in text
    assert "last events: (service jvb) has started 1 tasks: (task 3f2a)." in text
    assert "was unable to place a task" not in text  # only the latest three
    assert "Essential container in task exited" in text
    assert runner.finish(s, result, "up") == 1
    assert "Essential container in task exited" in capsys.readouterr().err
    # Progress showed the Copilot-like counts while it waited.
    progress = [e[2] for e in s.ui.events if e[0] == "progress"]  # type: ignore[attr-defined]
    assert any("0/1 running (1 pending)" in p and "has started 1 tasks" in p for p in progress)


def test_rollout_stopped_by_the_circuit_breaker_fails_at_once(harness: Harness) -> None:
    s = harness.session(patience=replace(FAST, service_stable=30.0))

    def rolled_back(parsed: dict[str, Any], **_: Any) -> None:
        for svc in parsed.get("services", []):
            if svc["serviceName"] == "shard-b":
                svc["deployments"][0]["rolloutState"] = "FAILED"
                svc["deployments"][0]["rolloutStateReason"] = (
                    "ECS deployment circuit breaker: tasks failed to start."
                )
                svc["events"] = [{"id": "1", "message": "(service shard-b) rolling back"}]

    s.aws.client("ecs").meta.events.register("after-call.ecs.DescribeServices", rolled_back)
    result = run_up(s)
    failure = result.results["service-signal"]
    assert failure.outcome is Outcome.FAILED
    assert "circuit breaker: tasks failed to start" in failure.detail
    assert "last events: (service shard-b) rolling back" in failure.detail
    assert failure.elapsed < 10  # did not sit out the 30 s bound


# -- teardown --------------------------------------------------------------------------------


def test_teardown_runs_in_dependency_order_and_leaves_nothing(deployed: Harness) -> None:
    ecs = deployed.client("ecs")
    for family in ("meet-shard-a", "meet-jvb"):  # an older revision left behind by a rollout
        out = ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
        keep = ("family", "containerDefinitions", "cpu", "memory", "networkMode")
        td = out["taskDefinition"]
        ecs.register_task_definition(**{k: td[k] for k in keep}, tags=out["tags"])
    s = deployed.session()
    result = runner.do_teardown(s)
    assert result.ok, (result.remaining, [r.detail for r in result.failures])
    order = s.aws.call_order

    def first(op: tuple[str, str]) -> int:
        return order.index(op)

    def last(op: tuple[str, str]) -> int:
        return len(order) - 1 - order[::-1].index(op)

    # services -> task definitions -> Cloud Map -> roles -> parameters -> log group -> cluster
    assert first(("ecs", "UpdateService")) < first(("ecs", "DeleteService"))  # scaled to 0
    events = [e[:2] for e in s.ui.events]  # type: ignore[attr-defined]
    for task in ("signal", "jvb"):  # each family goes once its services are INACTIVE
        assert events.index(("finish", f"service-{task}")) < events.index(
            ("start", f"taskdef-{task}")
        )
    assert last(("ecs", "DeregisterTaskDefinition")) < first(("servicediscovery", "DeleteService"))
    assert first(("servicediscovery", "DeleteService")) < first(
        ("servicediscovery", "DeleteNamespace")
    )
    # The task roles and the stack's log group by their steps: the wake function's role and
    # log group go with the function, before the services it scales.
    task_roles = ("role-execution", "role-signal", "role-jvb")
    namespace_done = events.index(("finish", "namespace"))
    assert all(namespace_done < events.index(("start", r)) for r in task_roles)
    roles_done = max(events.index(("finish", r)) for r in task_roles)
    assert roles_done < events.index(("start", "secrets"))
    assert events.index(("finish", "secrets")) < events.index(("start", "log-group"))
    assert events.index(("finish", "log-group")) < events.index(("start", "cluster"))
    assert events.index(("finish", "wake-function")) < events.index(("start", "service-jvb"))
    assert s.aws.calls[("ecs", "DeregisterTaskDefinition")] == 5  # a:1, a:2, b:1, jvb:1, jvb:2

    # Per-service describes, not the tagging API (moto's misses IAM and Cloud Map).
    clusters = ecs.describe_clusters(clusters=["meet"])["clusters"]
    assert all(c["status"] == "INACTIVE" for c in clusters)
    for family in ("meet-shard-a", "meet-shard-b", "meet-jvb"):
        assert active_revisions(deployed, family) == []
        assert (
            ecs.list_task_definitions(familyPrefix=family, status="INACTIVE")["taskDefinitionArns"]
            == []
        )
    sd = deployed.client("servicediscovery")
    assert [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "meet.internal"] == []
    assert [x for x in sd.list_services()["Services"] if x["Name"].startswith("shard-")] == []
    iam = deployed.client("iam")
    for role in ("meet-execution", "meet-signal-task", "meet-jvb-task"):
        with pytest.raises(iam.exceptions.NoSuchEntityException):
            iam.get_role(RoleName=role)
    assert deployed.client("ssm").describe_parameters()["Parameters"] == []
    logs = deployed.client("logs")
    assert logs.describe_log_groups(logGroupNamePrefix="/pcls/meet")["logGroups"] == []
    again = deployed.teardown()
    assert again.ok
    assert {again.results[n].outcome for n in ECS_STEPS} == {Outcome.ABSENT}


# -- policies as data --------------------------------------------------------------------------


def test_every_policy_document_is_explicit_and_scoped() -> None:
    scope = Scope(
        partition="aws",
        region="eu-central-2",
        account="111122223333",
        stack="prod",
        log_group="/pcls/prod",
        cluster="prod",
        parameter_arns=("arn:aws:ssm:eu-central-2:111122223333:parameter/pcls/prod/A",),
    )
    docs = documents(scope)
    assert set(docs) == {f"prod-{spec.suffix}" for spec in POLICIES.values()}
    for spec in POLICIES.values():
        role = f"prod-{spec.suffix}"
        doc = docs[role]
        (trust,) = doc["trust"]["Statement"]
        assert trust["Principal"] == {"Service": spec.passed_to}, role
        for policy in doc["inline"].values():
            for st in policy["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                assert st["Effect"] == "Allow"
                assert not any("*" in a for a in actions), (role, actions)
                if resources == ["*"]:  # only the reads that have no resource type
                    assert set(actions) <= set(WAKE_READS), (role, actions)
                    continue
                assert all(r.startswith("arn:aws:") and "111122223333" in r for r in resources)
    assert docs["prod-signal-task"]["inline"] == {}
    assert "Condition" in docs["prod-jvb-task"]["trust"]["Statement"][0]

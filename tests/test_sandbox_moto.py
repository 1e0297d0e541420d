"""What pcls.sandbox patches into moto so the emulation answers as AWS does (in-process here; the
sandbox server and the benchmarks apply the same patches)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import boto3
import pytest

REGION = "eu-central-1"
TAGS = [{"key": "pcls:stack", "value": "meet"}]


@pytest.fixture
def ecs(aws_mock: None) -> Iterator[object]:
    client = boto3.client("ecs", region_name=REGION)
    client.create_cluster(clusterName="meet")
    client.register_task_definition(
        family="meet-jvb", containerDefinitions=[{"name": "jvb", "image": "x", "memory": 64}]
    )
    for name in ("jvb", "shard-a"):
        client.create_service(
            cluster="meet", serviceName=name, taskDefinition="meet-jvb", desiredCount=0, tags=TAGS
        )
    # Switch threads as often as the interpreter can, so the two readers interleave inside
    # each other's requests; unpatched, about one read in three lost its tags here.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield client
    finally:
        sys.setswitchinterval(interval)


def test_reads_at_once_each_get_the_tags_they_asked_for(ecs: object) -> None:
    stop = threading.Event()
    tagged_anyway: list[list[dict]] = []  # what each read without TAGS got with tags

    def without_tags() -> None:
        other = boto3.client("ecs", region_name=REGION)
        while not stop.is_set():
            out = other.describe_services(cluster="meet", services=["jvb"])
            tagged_anyway.append([s for s in out["services"] if "tags" in s])

    reader = threading.Thread(target=without_tags)
    reader.start()
    try:
        lost = 0
        for _ in range(150):
            out = ecs.describe_services(  # type: ignore[attr-defined]
                cluster="meet", services=["jvb", "shard-a"], include=["TAGS"]
            )
            lost += sum(1 for s in out["services"] if s.get("tags") != TAGS)
    finally:
        stop.set()
        reader.join()
    assert lost == 0
    # and a read without TAGS still gets none, as on AWS
    assert tagged_anyway and not any(tagged_anyway)


def test_a_role_is_found_while_others_are_created(aws_mock: None) -> None:
    iam = boto3.client("iam", region_name=REGION)
    trust = '{"Version":"2012-10-17","Statement":[]}'
    for name in [f"earlier-{i}" for i in range(200)] + ["meet-jvb"]:  # a lookup walks 200
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    errors: list[Exception] = []
    stop = threading.Event()

    def create() -> None:
        other = boto3.client("iam", region_name=REGION)
        for i in range(500):
            if stop.is_set():
                return
            other.create_role(RoleName=f"other-{i}", AssumeRolePolicyDocument=trust)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    creator = threading.Thread(target=create)
    creator.start()
    try:
        while creator.is_alive():
            try:
                assert iam.get_role(RoleName="meet-jvb")["Role"]["RoleName"] == "meet-jvb"
            except Exception as exc:  # unpatched: dictionary changed size during iteration
                errors.append(exc)
    finally:
        stop.set()
        creator.join()
        sys.setswitchinterval(interval)
    assert errors == []

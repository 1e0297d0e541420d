"""Shared fixtures: fake credentials → moto → a pcls session on a temp config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest

os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
# Services report their one task running, as in the sandbox (moto runs no containers).
os.environ.setdefault("MOTO_ECS_SERVICE_RUNNING", "1")
# pcls never launches instances: skip moto's default AMI catalogue (about half its start time).
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_key, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "eu-central-1"

from moto import mock_aws  # noqa: E402  (after the environment is set)

from pcls.sandbox import (  # noqa: E402
    iam_lookups_survive_concurrent_creates,
    responses_keep_their_own_includes,
    services_run_their_desired_count,
)

services_run_their_desired_count()  # as in the sandbox: each service runs what it asks for
responses_keep_their_own_includes()  # the engine's threads read ECS at once, as on AWS
iam_lookups_survive_concurrent_creates()  # and create the roles side by side

from pcls import runner  # noqa: E402
from tests.harness import FAST, Harness  # noqa: E402

# In-process moto answers at once: a CLI run inside a test waits at moto's pace, not at AWS's
# (runs in a subprocess or on the sandbox server keep their own patience).
runner.AWS_PATIENCE = FAST

REGION = "eu-central-1"
DOMAIN = "meet.example.com"


@pytest.fixture(autouse=True, scope="session")
def parsed_models_once() -> Iterator[None]:
    """Test-side clients each open a session; share one parse of each botocore model file.

    pcls itself parses once per process (pcls.aws shares one loader); the tests open dozens of
    plain boto3 sessions besides, and the models are read-only data.
    """
    original = botocore.loaders.JSONFileLoader.load_file
    parsed: dict[str, Any] = {}

    def load_file(self: Any, file_path: str) -> Any:
        if file_path not in parsed:
            parsed[file_path] = original(self, file_path)
        return parsed[file_path]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
        yield


@pytest.fixture
def aws_mock() -> Iterator[None]:
    with mock_aws(config={"iam": {"load_aws_managed_policies": False}}):
        yield


@pytest.fixture
def harness(tmp_path: Path, aws_mock: None) -> Harness:
    h = Harness(tmp_path, region=REGION, domain=DOMAIN)
    h.make_zone("example.com")  # the registered domain's zone, as an account would have it
    return h

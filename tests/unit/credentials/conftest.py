"""Fixtures for credential tests: IAM and STS under moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from runtime.config import RuntimeSettings
from runtime.domain.models import Identity
from tests.unit.credentials.credentials_support import CLUSTER_ARN, OWNER_SUB


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto IAM + STS, and a client-session role the fabric may assume."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        iam = boto3.client("iam")
        sts = boto3.client("sts", region_name="us-east-1")
        role = iam.create_role(
            RoleName="octopus-client-session",
            Path="/octopus/",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                        }
                    ],
                }
            ),
        )["Role"]
        yield {"iam": iam, "sts": sts, "role_arn": role["Arn"]}


@pytest.fixture
def settings(aws: dict[str, Any]) -> RuntimeSettings:
    return RuntimeSettings(
        stage="test",
        region="us-east-1",
        cluster_mode="provisioned",
        cluster_name="octopus-test",
        cluster_arn=CLUSTER_ARN,
        identity="apigw-authorizer",
        registry="dynamodb",
        credentials="iam",
        iam_user_path="/octopus/users/",
        client_session_role_arn=aws["role_arn"],
    )


@pytest.fixture
def owner() -> Identity:
    return Identity(sub=OWNER_SUB, username="ada@example.org", default_namespace="ns-7e8f9a0b1c2d")

"""moto for IAM, Lambda functions, Logs, Secrets Manager, SQS, S3, KMS; a botocore Stubber
for the event source mapping calls (moto refuses mappings on an MSK cluster ARN)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from runtime.adapters.aws.lambda_triggers import LambdaTriggerPlatform
from runtime.config import RuntimeSettings

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER_ARN = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/octopus-test/abcd-1234-ef"
PREFIX = "octopus-trigger-test-"
ROLE_PATH = "/octopus/triggers/test/"
TEMPLATE_BUCKET = "octopus-template-assets"
TEMPLATE_KEY = "runtime-bundle.zip"

# Event source mapping operations: answered by the Stubber, everything else by moto.
MAPPING_OPERATIONS = frozenset(
    {
        "create_event_source_mapping",
        "update_event_source_mapping",
        "delete_event_source_mapping",
        "get_event_source_mapping",
        "list_event_source_mappings",
        "get_paginator",
    }
)


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class LambdaRouter:
    """One lambda client for the platform: mapping calls to the Stubber, the rest to moto.

    ``fail_create_function`` queues errors that ``create_function`` raises before it
    reaches moto (IAM propagation: Lambda cannot assume a role IAM has just created).
    """

    def __init__(self, moto_client: Any, mapping_client: Any) -> None:
        self.moto = moto_client
        self.mappings = mapping_client
        self.fail_create_function: list[Exception] = []
        self.create_function_calls = 0

    def create_function(self, **kwargs: Any) -> Any:
        self.create_function_calls += 1
        if self.fail_create_function:
            raise self.fail_create_function.pop(0)
        return self.moto.create_function(**kwargs)

    def __getattr__(self, name: str) -> Any:
        target = self.mappings if name in MAPPING_OPERATIONS else self.moto
        return getattr(target, name)


@dataclass
class AwsWorld:
    settings: RuntimeSettings
    platform: LambdaTriggerPlatform
    lambda_: LambdaRouter
    stubber: Stubber
    iam: Any
    logs: Any
    secrets: Any
    sqs: Any
    boundary_arn: str
    key_arn: str
    sleeps: list[float] = field(default_factory=list)
    now: list[float] = field(default_factory=lambda: [1_700_000_000.0])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsWorld]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        boundary = iam.create_policy(
            PolicyName="octopus-trigger-boundary",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": "*"}
                    ],
                }
            ),
        )["Policy"]["Arn"]
        key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.create_queue(QueueName="octopus-shared-dlq", Attributes={"KmsMasterKeyId": key_arn})
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=TEMPLATE_BUCKET)
        s3.put_object(
            Bucket=TEMPLATE_BUCKET,
            Key=TEMPLATE_KEY,
            Body=zip_of({"runtime/handlers/webhook_trigger.py": "def handler(e, c): ...\n"}),
        )
        settings = RuntimeSettings(
            stage="test",
            region=REGION,
            cluster_mode="provisioned",
            identity="globus",
            registry="dynamodb",
            credentials="iam",
            cluster_arn=CLUSTER_ARN,
            trigger_function_prefix=PREFIX,
            trigger_role_path=ROLE_PATH,
            trigger_boundary_arn=boundary,
            trigger_dlq_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:octopus-shared-dlq",
            trigger_template_bucket=TEMPLATE_BUCKET,
            trigger_template_key=TEMPLATE_KEY,
        )
        mapping_client = boto3.client("lambda", region_name=REGION)
        stubber = Stubber(mapping_client)
        stubber.activate()
        router = LambdaRouter(boto3.client("lambda", region_name=REGION), mapping_client)
        logs = boto3.client("logs", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        world_sleeps: list[float] = []
        # The injected clock starts at the real time: CloudWatch refuses events older than
        # 14 days, and the dead-letter archive stamps events with this clock.
        now = [time.time()]

        def sleep(seconds: float) -> None:
            world_sleeps.append(seconds)
            now[0] += seconds

        platform = LambdaTriggerPlatform(
            settings,
            lambda_client=router,
            iam_client=iam,
            logs_client=logs,
            secrets_client=secrets,
            sqs_client=sqs,
            sleep=sleep,
            clock=lambda: now[0],
        )
        yield AwsWorld(
            settings=settings,
            platform=platform,
            lambda_=router,
            stubber=stubber,
            iam=iam,
            logs=logs,
            secrets=secrets,
            sqs=sqs,
            boundary_arn=boundary,
            key_arn=key_arn,
            sleeps=world_sleeps,
            now=now,
        )
        stubber.deactivate()

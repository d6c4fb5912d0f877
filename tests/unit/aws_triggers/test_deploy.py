"""deploy: every piece created, scoped and wired; IAM propagation; rollback."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY

from runtime.adapters.aws.lambda_triggers import TEMPLATE_HANDLER, TriggerDeployFailed
from runtime.domain.models import Trigger, TriggerState
from tests.unit.aws_triggers.conftest import (
    ACCOUNT,
    CLUSTER_ARN,
    PREFIX,
    REGION,
    ROLE_PATH,
    TEMPLATE_BUCKET,
    TEMPLATE_KEY,
    AwsWorld,
)
from tests.unit.aws_triggers.support import (
    FILTER,
    KAFKA_TOPIC,
    OWNER,
    OWNER_NAMESPACE,
    USER_CODE,
    function_trigger,
    mapping_reply,
    webhook_trigger,
)

CLUSTER_PARTS = "octopus-test/abcd-1234-ef"


def queue_arn(trigger: Trigger) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}{trigger.trigger_id}-dlq"


def expect_create_mapping(world: AwsWorld, trigger: Trigger, **overrides: Any) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "EventSourceArn": CLUSTER_ARN,
        "FunctionName": f"{PREFIX}{trigger.trigger_id}",
        "Topics": [KAFKA_TOPIC],
        "StartingPosition": "LATEST",
        "AmazonManagedKafkaEventSourceConfig": {
            "ConsumerGroupId": f"{OWNER_NAMESPACE}.trigger-{trigger.trigger_id}"
        },
        "ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": 2},
        "Enabled": True,
        "BatchSize": 50,
        "MaximumBatchingWindowInSeconds": 2,
        "FilterCriteria": {"Filters": [{"Pattern": FILTER}]},
        "MaximumRetryAttempts": 3,
        "DestinationConfig": {"OnFailure": {"Destination": queue_arn(trigger)}},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    expected.update(overrides)
    expected = {k: v for k, v in expected.items() if v is not None}
    world.stubber.add_response(
        "create_event_source_mapping", mapping_reply(trigger, "Creating"), expected
    )
    return expected


def role_policy(world: AwsWorld, trigger: Trigger) -> dict[str, Any]:
    raw = world.iam.get_role_policy(
        RoleName=f"{PREFIX}{trigger.trigger_id}", PolicyName="trigger-access"
    )["PolicyDocument"]
    document = json.loads(unquote(raw)) if isinstance(raw, str) else raw
    assert isinstance(document, dict)
    return document


def statements_by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def test_webhook_deploy_creates_role_secret_function_queue_logs_and_mapping(
    aws: AwsWorld,
) -> None:
    trigger = webhook_trigger()
    name = f"{PREFIX}{trigger.trigger_id}"
    expect_create_mapping(aws, trigger)

    status = aws.platform.deploy(trigger, secret="s3cr3t-signing-key", code=None)

    aws.stubber.assert_no_pending_responses()
    assert status.state == TriggerState.CREATING.value
    # role: path, Lambda trust, the boundary, tags
    role = aws.iam.get_role(RoleName=name)["Role"]
    assert role["Path"] == ROLE_PATH
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == aws.boundary_arn
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(unquote(trust)) if isinstance(trust, str) else trust
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    # policy: exactly one topic and one group, its own logs, queue, key and secret
    secret = aws.secrets.describe_secret(SecretId=f"octopus/triggers/test/{trigger.trigger_id}")
    by_sid = statements_by_sid(role_policy(aws, trigger))
    assert by_sid["ConnectToTheCluster"]["Resource"] == [CLUSTER_ARN]
    assert by_sid["ConnectToTheCluster"]["Action"] == ["kafka-cluster:Connect"]
    assert by_sid["ReadTheTopic"]["Resource"] == [
        f"arn:aws:kafka:{REGION}:{ACCOUNT}:topic/{CLUSTER_PARTS}/{KAFKA_TOPIC}"
    ]
    assert by_sid["UseTheConsumerGroup"]["Resource"] == [
        f"arn:aws:kafka:{REGION}:{ACCOUNT}:group/{CLUSTER_PARTS}/"
        f"{OWNER_NAMESPACE}.trigger-{trigger.trigger_id}"
    ]
    log_group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}"
    assert by_sid["WriteOwnLogs"]["Resource"] == [log_group_arn, f"{log_group_arn}:*"]
    assert by_sid["SendDeadLetters"]["Resource"] == [queue_arn(trigger)]
    assert by_sid["EncryptDeadLetters"]["Resource"] == [aws.key_arn]
    assert by_sid["ReadTheWebhookSecret"] == {
        "Sid": "ReadTheWebhookSecret",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": [secret["ARN"]],
    }
    assert by_sid["EventSourceMappingNetwork"]["Resource"] == ["*"]
    assert all(a.startswith("ec2:") for a in by_sid["EventSourceMappingNetwork"]["Action"])
    # Only the network statement (which AWS cannot scope) has a wildcard resource.
    wildcard = [s["Sid"] for s in by_sid.values() if any("*" in r for r in s["Resource"])]
    assert wildcard == ["WriteOwnLogs", "EventSourceMappingNetwork"]
    # secret: value, name, tags
    value = aws.secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"]
    assert value == "s3cr3t-signing-key"
    tags = {t["Key"]: t["Value"] for t in secret["Tags"]}
    assert tags == {"octopus:trigger-id": trigger.trigger_id, "octopus:owner": OWNER}
    # function: the template, our environment, the role, the DLQ as on-failure destination
    function = aws.lambda_.moto.get_function(FunctionName=name)
    config = function["Configuration"]
    assert config["Role"] == role["Arn"]
    assert config["Handler"] == TEMPLATE_HANDLER
    assert config["Runtime"] == "python3.14"
    template = (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=TEMPLATE_BUCKET, Key=TEMPLATE_KEY)["Body"]
        .read()
    )
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(template).digest()).decode()
    assert config.get("Layers", []) == []
    assert "VpcConfig" not in config or not config["VpcConfig"].get("SubnetIds")
    queue_url = aws.sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    assert config["Environment"]["Variables"] == {
        "OCTOPUS_WEBHOOK_URL": "https://hooks.example.org/in",
        "OCTOPUS_WEBHOOK_HEADERS": '{"X-Team":"a"}',
        "OCTOPUS_WEBHOOK_SECRET_ARN": secret["ARN"],
        "OCTOPUS_DLQ_URL": queue_url,
        "OCTOPUS_TRIGGER_ID": trigger.trigger_id,
        "OCTOPUS_WEBHOOK_MODE": "record",
    }
    invoke = aws.lambda_.moto.get_function_event_invoke_config(FunctionName=name)
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn(trigger)
    # queue: KMS with the fabric's DLQ key; log groups with retention
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["KmsMasterKeyId"] == aws.key_arn
    groups = aws.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
        f"/aws/lambda/{name}": 30,
        f"/aws/lambda/{name}/dead-letters": 30,
    }
    assert aws.sleeps == []  # nothing to wait for: moto is ready at once


def test_function_deploy_uses_the_users_zip_runtime_and_environment(aws: AwsWorld) -> None:
    trigger = function_trigger()
    name = f"{PREFIX}{trigger.trigger_id}"
    expect_create_mapping(
        aws,
        trigger,
        StartingPosition="AT_TIMESTAMP",
        StartingPositionTimestamp=ANY,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=0,
        FilterCriteria=None,
        MaximumRetryAttempts=1,
    )

    aws.platform.deploy(trigger, secret=None, code=USER_CODE)

    aws.stubber.assert_no_pending_responses()
    config = aws.lambda_.moto.get_function(FunctionName=name)["Configuration"]
    assert (config["Runtime"], config["Handler"], config["MemorySize"], config["Timeout"]) == (
        "python3.13",
        "app.handler",
        256,
        30,
    )
    assert config["Environment"]["Variables"] == {
        "MODE": "fast",
        "OCTOPUS_TRIGGER_ID": trigger.trigger_id,
    }
    assert config["Architectures"] == ["x86_64"]
    by_sid = statements_by_sid(role_policy(aws, trigger))
    assert "ReadTheWebhookSecret" not in by_sid
    listed = aws.secrets.list_secrets()["SecretList"]
    assert listed == []


def test_iam_propagation_is_retried_with_backoff_not_a_fixed_sleep(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    not_yet = ClientError(
        {
            "Error": {
                "Code": "InvalidParameterValueException",
                "Message": "The role defined for the function cannot be assumed by Lambda.",
            }
        },
        "CreateFunction",
    )
    aws.lambda_.fail_create_function = [not_yet, not_yet, not_yet]
    expect_create_mapping(aws, trigger)

    aws.platform.deploy(trigger, secret="k", code=None)

    assert aws.lambda_.create_function_calls == 4
    assert aws.sleeps == [0.5, 1.0, 2.0]  # exponential, and only while Lambda refuses
    aws.lambda_.moto.get_function(FunctionName=f"{PREFIX}{trigger.trigger_id}")


def assert_nothing_left(aws: AwsWorld, trigger: Trigger) -> None:
    name = f"{PREFIX}{trigger.trigger_id}"
    with pytest.raises(ClientError, match="NoSuchEntity"):
        aws.iam.get_role(RoleName=name)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws.lambda_.moto.get_function(FunctionName=name)
    assert aws.secrets.list_secrets()["SecretList"] == []
    queues = aws.sqs.list_queues(QueueNamePrefix=PREFIX).get("QueueUrls", [])
    assert queues == []
    groups = aws.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{PREFIX}")
    assert groups["logGroups"] == []


def test_role_that_never_propagates_fails_within_the_budget_and_rolls_back(
    aws: AwsWorld,
) -> None:
    trigger = webhook_trigger()
    not_yet = ClientError(
        {
            "Error": {
                "Code": "InvalidParameterValueException",
                "Message": "The role defined for the function cannot be assumed by Lambda.",
            }
        },
        "CreateFunction",
    )
    aws.lambda_.fail_create_function = [not_yet] * 100

    with pytest.raises(TriggerDeployFailed, match="cannot be assumed"):
        aws.platform.deploy(trigger, secret="k", code=None)

    assert sum(aws.sleeps) <= 20.0
    assert 5 <= len(aws.sleeps) <= 10
    assert_nothing_left(aws, trigger)


def test_a_failing_mapping_rolls_back_everything_in_reverse_order(aws: AwsWorld) -> None:
    trigger = webhook_trigger()
    aws.stubber.add_client_error(
        "create_event_source_mapping",
        service_error_code="InvalidParameterValueException",
        service_message="Topic beamline.detector.frames does not exist",
        http_status_code=400,
    )

    with pytest.raises(TriggerDeployFailed) as raised:
        aws.platform.deploy(trigger, secret="k", code=None)

    assert "create the event source mapping" in raised.value.message
    assert "does not exist" in raised.value.message
    assert_nothing_left(aws, trigger)


def test_a_function_that_fails_to_start_rolls_back(aws: AwsWorld) -> None:
    trigger = function_trigger()
    real = aws.lambda_.moto.get_function_configuration

    def failed(**kwargs: Any) -> dict[str, Any]:
        return {**real(**kwargs), "State": "Failed", "StateReason": "bad zip"}

    aws.lambda_.get_function_configuration = failed  # type: ignore[attr-defined]

    with pytest.raises(TriggerDeployFailed, match="bad zip"):
        aws.platform.deploy(trigger, secret=None, code=USER_CODE)

    aws.stubber.assert_no_pending_responses()  # the mapping was never asked for
    assert_nothing_left(aws, trigger)

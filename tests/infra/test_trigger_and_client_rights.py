"""Rights the AWS trigger platform and the client-credential adapter need, and no more."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.adapters.aws.trigger_naming import secret_prefix
from runtime.config import RuntimeSettings
from stacks.api_stack import USER_BOUNDARY_ENV_VAR
from stacks.config import load_stage_config
from tests.infra.synthesis import CONTEXT, STAGES, Synthesized

pytestmark = pytest.mark.infra


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resource["Properties"]["PolicyDocument"]["Statement"])


def _by_sid(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _statements(resource) if "Sid" in s}


def _resource(template: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, r) for k, r in template["Resources"].items() if k.startswith(prefix)]
    return found


def _actions(statement: dict[str, Any]) -> set[str]:
    return set(_as_list(statement["Action"]))


@pytest.mark.parametrize("stage", STAGES)
def test_secret_prefix_matches_what_the_platform_uses(stage: str) -> None:
    config = load_stage_config({"stage": stage, "stages": CONTEXT["stages"]})
    settings = RuntimeSettings(stage=stage)
    assert config.trigger_secret_prefix == secret_prefix(settings) == f"octopus/triggers/{stage}/"


@pytest.mark.parametrize("stage", STAGES)
def test_api_may_manage_per_trigger_queues_secrets_and_logs_under_the_prefix(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    triggers = synthesized[stage].template("Triggers")
    _, management = _resource(triggers, "TriggersManagementPolicy")
    key_id, _ = _resource(triggers, "TriggersDlqKey")
    queue_id = next(k for k, r in triggers["Resources"].items() if r["Type"] == "AWS::SQS::Queue")
    sids = _by_sid(management)
    queues = sids["TriggerDeadLetterQueues"]
    assert _actions(queues) == {
        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes",
        "sqs:TagQueue", "sqs:ReceiveMessage", "sqs:DeleteMessage",
    }  # fmt: skip
    (queue_arn,) = _as_list(queues["Resource"])
    assert json.dumps(queue_arn).endswith(f':octopus-trigger-{stage}-*"]]}}')
    assert ":sqs:" in json.dumps(queue_arn)
    shared = sids["SharedDeadLetterQueueLookup"]
    assert _actions(shared) == {"sqs:GetQueueUrl", "sqs:GetQueueAttributes"}
    assert shared["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    kms = sids["DeadLetterQueueKey"]
    assert {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"} == _actions(kms)
    assert kms["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "sqs." in json.dumps(kms["Condition"]["StringEquals"]["kms:ViaService"])
    secrets = sids["WebhookSecrets"]
    assert _actions(secrets) == {
        "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
        "secretsmanager:DeleteSecret", "secretsmanager:TagResource",
        "secretsmanager:DescribeSecret",
    }  # fmt: skip
    assert f":secret:octopus/triggers/{stage}/*" in json.dumps(secrets["Resource"])
    logs = sids["TriggerLogGroups"]
    assert {
        "logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:TagResource",
        "logs:DeleteLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
        "logs:FilterLogEvents", "logs:GetLogEvents",
    } <= _actions(logs)  # fmt: skip
    for arn in _as_list(logs["Resource"]):
        assert f"log-group:/aws/lambda/octopus-trigger-{stage}-*" in json.dumps(arn)
    invoke_config = sids["TriggerOnFailureDestinations"]
    assert _actions(invoke_config) == {"lambda:PutFunctionEventInvokeConfig"}
    assert f"function:octopus-trigger-{stage}-*" in json.dumps(invoke_config["Resource"])


@pytest.mark.parametrize("stage", STAGES)
def test_boundary_lets_triggers_send_to_their_queues_and_read_their_secrets(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    triggers = synthesized[stage].template("Triggers")
    _, boundary = _resource(triggers, "TriggersBoundary")
    sids = _by_sid(boundary)
    dead_letters = sids["DeadLetters"]
    assert _actions(dead_letters) == {"sqs:SendMessage"}
    assert f':octopus-trigger-{stage}-*"' in json.dumps(dead_letters["Resource"])
    secrets = sids["WebhookSecrets"]
    assert _actions(secrets) == {"secretsmanager:GetSecretValue"}
    assert f":secret:octopus/triggers/{stage}/*" in json.dumps(secrets["Resource"])
    assert _actions(sids["DeadLetterEncryption"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    # Nothing in the boundary lets a trigger write data or administer anything.
    every = {a for s in _statements(boundary) for a in _actions(s)}
    assert not {a for a in every if a.startswith(("iam:", "lambda:", "kafka-cluster:Write"))}


@pytest.mark.parametrize("stage", STAGES)
def test_sqs_endpoint_reachable_from_event_source_mapping_pollers(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    network = synthesized[stage].template("Network")["Resources"]
    endpoints = [r for r in network.values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
    sqs = [
        e
        for e in endpoints
        if ".sqs" in json.dumps(e["Properties"]["ServiceName"])
        and e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(sqs) == 1 and sqs[0]["Properties"]["PrivateDnsEnabled"] is True
    # The pollers use the cluster's security group; the endpoints accept HTTPS from it.
    cluster_sg = next(
        k
        for k, r in network.items()
        if r["Type"] == "AWS::EC2::SecurityGroup" and k.startswith("NetworkClusterSecurityGroup")
    )
    endpoint_sg = sqs[0]["Properties"]["SecurityGroupIds"][0]["Fn::GetAtt"][0]
    ingress = [
        r["Properties"]
        for r in network.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_sg, "GroupId"]}
    ]
    assert any(
        i["SourceSecurityGroupId"] == {"Fn::GetAtt": [cluster_sg, "GroupId"]}
        and i["FromPort"] == 443
        for i in ingress
    )


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_api_role_may_assume_tag_and_name_client_sessions(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    api = synthesized[stage].template("Api")
    (role,) = [
        r
        for k, r in api["Resources"].items()
        if k.startswith("ClientSessionRole") and r["Type"] == "AWS::IAM::Role"
    ]
    api_role_id, _ = next(
        (k, r)
        for k, r in api["Resources"].items()
        if k.startswith("ApiFunctionRole") and r["Type"] == "AWS::IAM::Role"
    )
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    principals = {json.dumps(s["Principal"], sort_keys=True) for s in trust}
    assert principals == {json.dumps({"AWS": {"Fn::GetAtt": [api_role_id, "Arn"]}})}
    assert all(s["Effect"] == "Allow" for s in trust)
    assert {a for s in trust for a in _actions(s)} == {
        "sts:AssumeRole",
        "sts:TagSession",
        "sts:SetSourceIdentity",
    }
    # ... and the API role holds the same three rights on exactly that role.
    _, permissions = next(
        (k, r)
        for k, r in api["Resources"].items()
        if k.startswith("ApiFunctionPermissions") and r["Type"] == "AWS::IAM::ManagedPolicy"
    )
    sessions = _by_sid(permissions)["ShortLivedCredentials"]
    assert _actions(sessions) == {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}
    assert "ClientSessionRole" in json.dumps(sessions["Resource"])


@pytest.mark.parametrize("stage", STAGES)
def test_api_function_knows_the_session_role_and_the_user_boundary(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    api = synthesized[stage].template("Api")["Resources"]
    (function,) = [
        r
        for r in api.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "runtime.handlers.api.handler"
    ]
    env = function["Properties"]["Environment"]["Variables"]
    parts = env["OCTOPUS_SETTINGS"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', "'") for p in parts)
    assert "\"client_session_role_arn\":\"{'Fn::GetAtt': ['ClientSessionRole" in text
    boundary_id = next(
        k
        for k, r in api.items()
        if k.startswith("ClientUserBoundary") and r["Type"] == "AWS::IAM::ManagedPolicy"
    )
    assert env[USER_BOUNDARY_ENV_VAR] == {"Ref": boundary_id}
    boundary = api[boundary_id]
    actions = {a for s in _statements(boundary) for a in _actions(s)}
    assert actions and all(a.startswith("kafka-cluster:") for a in actions)
    # The IAM adapter creates every user with this boundary, and the API may create
    # users only with it.
    create_user = [
        statement
        for resource in api.values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for statement in _statements(resource)
        if "iam:CreateUser" in _actions(statement)
    ]
    assert create_user
    for statement in create_user:
        condition = statement["Condition"]["StringEquals"]["iam:PermissionsBoundary"]
        assert condition == {"Ref": boundary_id}


def _code_bucket(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, r)
        for k, r in template["Resources"].items()
        if k.startswith("TriggersCodeBucket") and r["Type"] == "AWS::S3::Bucket"
    ]
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_code_bucket_is_private_tls_only_encrypted_and_expires_uploads(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    triggers = synthesized[stage].template("Triggers")
    bucket_id, bucket = _code_bucket(triggers)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "VersioningConfiguration" not in props
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == ("uploads/", 1, "Enabled")
    (policy,) = [
        r
        for r in triggers["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    (deny,) = _statements(policy)
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("stage", STAGES)
def test_api_may_sign_and_read_code_uploads_only_under_uploads(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    triggers = synthesized[stage].template("Triggers")
    bucket_id, _ = _code_bucket(triggers)
    _, management = _resource(triggers, "TriggersManagementPolicy")
    sids = _by_sid(management)
    uploads = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/uploads/*"]]}
    assert _actions(sids["SignCodeUploads"]) == {"s3:PutObject"}
    assert _actions(sids["ReadCodeUploads"]) == {"s3:GetObject"}
    for sid in ("SignCodeUploads", "ReadCodeUploads"):
        assert sids[sid]["Resource"] == uploads
    # No other statement touches the code bucket.
    for statement in _statements(management):
        if statement.get("Sid") not in ("SignCodeUploads", "ReadCodeUploads"):
            assert bucket_id not in json.dumps(statement)


@pytest.mark.parametrize("stage", STAGES)
def test_api_function_knows_the_code_bucket(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    api = synthesized[stage].template("Api")["Resources"]
    (function,) = [
        r
        for r in api.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "runtime.handlers.api.handler"
    ]
    parts = function["Properties"]["Environment"]["Variables"]["OCTOPUS_SETTINGS"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', "'") for p in parts)
    assert '"trigger_code_bucket":"{\'Fn::ImportValue\': ' in text
    assert "TriggersCodeBucket" in text

"""Assertions on the synthesized templates for what matters most."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.config import RuntimeSettings
from tests.infra.synthesis import CONTEXT, STAGES, Synthesized

pytestmark = pytest.mark.infra

# Every Allow statement with Resource "*" must consist of these actions only: AWS
# offers no resource-level permission for them (or, for CreateEventSourceMapping,
# only a condition, which the statement must carry).
STAR_ALLOWED = {
    # VPC functions and MSK event source mappings manage their ENIs.
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeSecurityGroups",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    # kafka:UpdateConnectivity validates the brokers' subnets with the caller's rights.
    "ec2:DescribeRouteTables",
    # X-Ray segment upload.
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    # Conditioned on lambda:FunctionArn (checked below) / list only.
    "lambda:CreateEventSourceMapping", "lambda:ListEventSourceMappings",
}  # fmt: skip
STAR_NEEDS_CONDITION = {"lambda:CreateEventSourceMapping"}


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    props = resource["Properties"]
    documents = []
    if "PolicyDocument" in props:
        documents.append(props["PolicyDocument"])
    documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
    return [s for d in documents for s in d["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policies(s: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    kinds = ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role")
    return [r for kind in kinds for r in s.resources(kind)]


@pytest.mark.parametrize("stage", STAGES)
def test_cluster_accepts_only_iam_over_tls(synthesized: dict[str, Synthesized], stage: str) -> None:
    s = synthesized[stage]
    provisioned = s.resources("AWS::MSK::Cluster")
    serverless = s.resources("AWS::MSK::ServerlessCluster")
    assert len(provisioned) + len(serverless) == 1
    if provisioned:
        props = provisioned[0][2]["Properties"]
        auth = props["ClientAuthentication"]
        assert auth["Sasl"]["Iam"]["Enabled"] is True
        assert auth["Sasl"].get("Scram", {}).get("Enabled", False) is False
        assert "Tls" not in auth
        assert auth["Unauthenticated"]["Enabled"] is False
        transit = props["EncryptionInfo"]["EncryptionInTransit"]
        assert transit == {"ClientBroker": "TLS", "InCluster": True}
        assert "DataVolumeKMSKeyId" in props["EncryptionInfo"]["EncryptionAtRest"]
        assert props["LoggingInfo"]["BrokerLogs"]["CloudWatchLogs"]["Enabled"] is True
        # Public access is only ever switched on by the custom resource, never at creation.
        assert "ConnectivityInfo" not in props["BrokerNodeGroupInfo"]
        (config,) = [r for _, _, r in s.resources("AWS::MSK::Configuration")]
        server = config["Properties"]["ServerProperties"]
        assert "auto.create.topics.enable=false" in server
        assert "min.insync.replicas=" in server and "default.replication.factor=" in server
        assert s.resources("AWS::ApplicationAutoScaling::ScalableTarget")
    else:
        props = serverless[0][2]["Properties"]
        assert props["ClientAuthentication"] == {"Sasl": {"Iam": {"Enabled": True}}}
        assert not s.resources("Custom::MskPublicAccess")


def test_public_access_only_where_configured(synthesized: dict[str, Synthesized]) -> None:
    staging = synthesized["staging"]
    (access,) = staging.resources("Custom::MskPublicAccess")
    assert access[2]["Properties"]["Enabled"] == "true"
    rules = [r["Properties"] for _, _, r in staging.resources("AWS::EC2::SecurityGroupIngress")]
    for _, _, group in staging.resources("AWS::EC2::SecurityGroup"):
        rules += group["Properties"].get("SecurityGroupIngress", [])
    public = sorted(r["CidrIp"] for r in rules if r.get("FromPort") == 9198)
    assert public == ["192.0.2.0/24", "198.51.100.0/24"]
    # Nothing else in the fabric is open to an address range but the event-stream ALB
    # (443, and 80 which only redirects) for events.allowed_cidrs.
    stream_cidrs = set(CONTEXT["stages"]["staging"]["events"]["allowed_cidrs"])
    for rule in rules:
        if "CidrIp" in rule or "CidrIpv6" in rule:
            assert rule.get("FromPort") == 9198 or (
                rule["FromPort"] in (443, 80) and rule["CidrIp"] in stream_cidrs
            ), rule
    outputs = staging.template("Cluster")["Outputs"]
    assert "BootstrapBrokersPublicIam" in outputs and "BootstrapBrokersIam" in outputs
    assert not synthesized["prod"].resources("Custom::MskPublicAccess")


@pytest.mark.parametrize("stage", STAGES)
def test_every_api_method_but_health_and_docs_uses_the_authorizer(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    api = synthesized[stage].template("Api")["Resources"]
    paths = {}
    for logical_id, resource in api.items():
        if resource["Type"] == "AWS::ApiGateway::Resource":
            paths[logical_id] = resource["Properties"]["PathPart"]
    (authorizer,) = [r for r in api.values() if r["Type"] == "AWS::ApiGateway::Authorizer"]
    assert authorizer["Properties"]["Type"] == "TOKEN"
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] <= 300
    public, protected = set(), set()
    for resource in api.values():
        if resource["Type"] != "AWS::ApiGateway::Method":
            continue
        props = resource["Properties"]
        path = paths.get(props["ResourceId"].get("Ref"), "/")
        if props["HttpMethod"] == "OPTIONS":
            assert props["Integration"]["Type"] == "MOCK"  # CORS preflight answered by API Gateway
            continue
        if props["AuthorizationType"] == "NONE":
            public.add((props["HttpMethod"], path))
        else:
            assert props["AuthorizationType"] == "CUSTOM" and "AuthorizerId" in props
            protected.add((props["HttpMethod"], path))
    assert public == {("GET", "health"), ("GET", "openapi.json"), ("GET", "docs")}
    assert (
        protected == {("ANY", "{proxy+}")}
        and len([r for r in paths.values() if r == "{proxy+}"]) == 2
    )
    (stage_resource,) = [r for r in api.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert "AccessLogSetting" in stage_resource["Properties"]
    settings = stage_resource["Properties"]["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] > 0 and settings["DataTraceEnabled"] is False


@pytest.mark.parametrize("stage", STAGES)
def test_iam_resources_are_as_narrow_as_aws_allows(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    s = synthesized[stage]
    for stack, logical_id, resource in _policies(s):
        for statement in _statements(resource):
            if statement.get("Effect") != "Allow" or "Resource" not in statement:
                continue
            actions = set(_as_list(statement["Action"]))
            assert not any(a.endswith(":*") or a == "*" for a in actions), (
                stack,
                logical_id,
                actions,
            )
            if "*" in _as_list(statement["Resource"]):
                assert actions <= STAR_ALLOWED, (stack, logical_id, actions - STAR_ALLOWED)
                if actions & STAR_NEEDS_CONDITION:
                    assert "lambda:FunctionArn" in json.dumps(statement["Condition"])


@pytest.mark.parametrize("stage", STAGES)
def test_kafka_rights_name_this_clusters_topics_by_uuid(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    s = synthesized[stage]
    kafka_statements = [
        st
        for _, _, r in _policies(s)
        for st in _statements(r)
        if any(a.startswith("kafka-cluster:") for a in _as_list(st["Action"]))
    ]
    assert kafka_statements
    for statement in kafka_statements:
        text = json.dumps(statement["Resource"])
        assert "*" not in text.replace("/*", "")  # only the topic/group name is a wildcard
        if "topic/" in text or "group/" in text:
            assert '"Fn::Select": [2' in text and f"/{s.fabric.cluster.cluster_name}/" in text


@pytest.mark.parametrize("stage", STAGES)
def test_trigger_roles_must_carry_the_boundary(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    triggers = synthesized[stage].template("Triggers")["Resources"]
    boundary_id = next(k for k, r in triggers.items() if k.startswith("TriggersBoundary"))
    management = next(r for k, r in triggers.items() if k.startswith("TriggersManagementPolicy"))
    by_action: dict[str, list[dict[str, Any]]] = {}
    for statement in _statements(management):
        for action in _as_list(statement["Action"]):
            by_action.setdefault(action, []).append(statement)
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
        for statement in by_action[action]:
            condition = statement["Condition"]["StringEquals"]["iam:PermissionsBoundary"]
            assert condition == {"Ref": boundary_id}
            assert f"role/octopus/triggers/{stage}/*" in json.dumps(statement["Resource"])
    (pass_role,) = by_action["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}
    }
    assert f"role/octopus/triggers/{stage}/*" in json.dumps(pass_role["Resource"])
    for statement in by_action["lambda:CreateFunction"]:
        assert f"function:octopus-trigger-{stage}-*" in json.dumps(statement["Resource"])
    denied = [st for st in _statements(management) if st["Effect"] == "Deny"]
    assert {"iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"} <= {
        a for st in denied for a in _as_list(st["Action"])
    }
    (queue,) = [r for r in triggers.values() if r["Type"] == "AWS::SQS::Queue"]
    assert "KmsMasterKeyId" in queue["Properties"]
    assert any(
        "aws:SecureTransport" in json.dumps(r)
        for r in triggers.values()
        if r["Type"] == "AWS::SQS::QueuePolicy"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_registry_table_is_encrypted_with_pitr(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    s = synthesized[stage]
    (table,) = [r for _, _, r in s.resources("AWS::DynamoDB::Table")]
    props = table["Properties"]
    assert (
        props["SSESpecification"]["SSEEnabled"] is True
        and props["SSESpecification"]["SSEType"] == "KMS"
    )
    assert "KMSMasterKeyId" in props["SSESpecification"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert sorted(i["IndexName"] for i in props["GlobalSecondaryIndexes"]) == ["gsi1", "gsi2"]
    retain = s.fabric.state.node.id.endswith("State") and stage == "prod"
    assert props.get("DeletionProtectionEnabled", False) is retain
    assert table["DeletionPolicy"] == ("Retain" if retain else "Delete")


@pytest.mark.parametrize("stage", STAGES)
def test_functions_run_newest_python_on_arm_in_the_vpc(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    s = synthesized[stage]
    ours = [
        r
        for _, _, r in s.resources("AWS::Lambda::Function")
        if r["Properties"].get("Handler", "").startswith("runtime.")
    ]
    assert len(ours) >= 2
    for function in ours:
        props = function["Properties"]
        assert props["Runtime"] == "python3.14" and props["Architectures"] == ["arm64"]
        assert props["VpcConfig"]["SubnetIds"] and props["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("stage", STAGES)
def test_functions_receive_their_runtime_settings(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    api = synthesized[stage].template("Api")["Resources"]
    identities = {}
    for resource in api.values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        raw = resource["Properties"]["Environment"]["Variables"]["OCTOPUS_SETTINGS"]
        # Deploy-time values are Fn::Join parts; stand in placeholders to parse the JSON.
        text = (
            "".join(p if isinstance(p, str) else "X" for p in raw["Fn::Join"][1])
            if isinstance(raw, dict)
            else raw
        )
        assert len(text) < 3000  # Lambda allows 4 KB of environment in total
        settings = RuntimeSettings.model_validate_json(text)
        identities[resource["Properties"]["Handler"]] = settings.identity
        assert (
            settings.stage == stage
            and settings.registry == "dynamodb"
            and settings.credentials == "iam"
        )
        assert settings.trigger_function_prefix == f"octopus-trigger-{stage}-"
    assert identities == {
        "runtime.handlers.api.handler": "apigw-authorizer",
        "runtime.handlers.authorizer.handler": "globus",
    }

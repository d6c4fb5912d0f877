"""The web service on its AWS adapters: DynamoDB, IAM and STS under moto, the real broker,
and requests arriving as API Gateway events through Mangum with the authorizer's context.

AWS itself cannot run here; moto stands in for the AWS APIs. MSK cannot be emulated,
so the broker is the embedded one (same confluent-kafka admin code, no IAM at the broker).
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from mangum import Mangum
from moto import mock_aws

from runtime.adapters.aws.dynamodb_registry import DynamoDbRegistry
from runtime.adapters.aws.iam_credentials import IamCredentialIssuer
from runtime.adapters.kafka_admin import EMBEDDED_BROKER, KafkaBrokerAdmin
from runtime.adapters.kafka_config import local_client_config
from runtime.adapters.kafka_record_writer import KafkaRecordWriter
from runtime.adapters.kafka_records import RecordProducer
from runtime.api.app import create_app
from runtime.api.container import Container
from runtime.config import RuntimeSettings
from runtime.domain.deps import Deps
from runtime.domain.fabric import Fabric
from runtime.domain.names import default_namespace
from tests.contract.conftest import create_registry_table, moto_requests_atomic

REGION = "us-east-1"
CLUSTER_UUID = "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab-7"
CLUSTER_ARN = f"arn:aws:kafka:{REGION}:123456789012:cluster/octopus-test/{CLUSTER_UUID}"
TABLE = "octopus-registry"


@dataclass
class AwsFabric:
    handler: Mangum
    settings: RuntimeSettings
    container: Container
    iam: Any

    def call(
        self,
        method: str,
        path: str,
        sub: str | None,
        body: dict | None = None,
        query: dict | None = None,
    ) -> tuple[int, Any]:
        event = api_gateway_event(method, path, sub, body, query)
        reply = self.handler(event, LambdaContext())
        text = reply.get("body") or ""
        return reply["statusCode"], (json.loads(text) if text else None)


class LambdaContext:
    function_name = "octopus-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:octopus-api"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def api_gateway_event(
    method: str, path: str, sub: str | None, body: dict | None, query: dict | None
) -> dict:
    """A REST API proxy event as API Gateway sends it after the token authorizer allowed it."""
    headers = {
        "Host": "api.example.org",
        "Content-Type": "application/json",
        "X-Forwarded-Proto": "https",
    }
    context: dict[str, Any] = {
        "resourcePath": "/v1/{proxy+}",
        "httpMethod": method,
        "path": f"/prod{path}",
        "stage": "prod",
        "requestId": str(uuid.uuid4()),
        "identity": {"sourceIp": "192.0.2.10", "userAgent": "pytest"},
    }
    if sub is not None:
        context["authorizer"] = {
            "principalId": sub,
            "sub": sub,
            "username": "u@example.org",
            "scopes": "",
            "expires_at": 4102444800,
        }
    return {
        "resource": "/v1/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.removeprefix("/v1/")},
        "requestContext": context,
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), moto_requests_atomic():
        yield


def aws_settings(bootstrap: str, role_arn: str) -> RuntimeSettings:
    return RuntimeSettings(
        stage="test",
        region=REGION,
        cluster_mode="provisioned",
        cluster_name="octopus-test",
        cluster_arn=CLUSTER_ARN,
        bootstrap_servers=bootstrap,
        registry="dynamodb",
        registry_table=TABLE,
        identity="apigw-authorizer",
        credentials="iam",
        client_session_role_arn=role_arn,
    )


@pytest.fixture
def aws_fabric(aws_env: None, bootstrap_servers: str) -> Iterator[AwsFabric]:
    create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="octopus-client-session",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    settings = aws_settings(bootstrap_servers, role)
    registry = DynamoDbRegistry(TABLE, boto3.client("dynamodb", region_name=REGION))
    producer = RecordProducer(
        local_client_config(bootstrap_servers, "producer"),
        topic_exists=lambda name: registry.get_topic(*name.split(".", 1)) is not None,
    )
    deps = Deps(
        settings=settings,
        registry=registry,
        broker=KafkaBrokerAdmin(
            local_client_config(bootstrap_servers), capabilities=EMBEDDED_BROKER
        ),
        credentials=IamCredentialIssuer(
            settings, iam_client=iam, sts_client=boto3.client("sts", region_name=REGION)
        ),
        records=KafkaRecordWriter(producer),
    )
    container = Container(settings=settings, fabric=Fabric.build(deps), identity=None)
    handler = Mangum(create_app(container), lifespan="off", api_gateway_base_path="/")
    yield AwsFabric(handler, settings, container, iam)
    container.close()


def _policy_document(iam: Any, user: str) -> dict:
    policies = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert len(policies) == 1
    arn = policies[0]["PolicyArn"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def _resources(document: dict) -> set[str]:
    found: set[str] = set()
    for statement in document["Statement"]:
        resources = statement["Resource"]
        found.update([resources] if isinstance(resources, str) else resources)
    return found


def test_owner_and_grantee_rights_reach_iam(aws_fabric: AwsFabric) -> None:
    owner, grantee = str(uuid.uuid4()), str(uuid.uuid4())
    status, me = aws_fabric.call("GET", "/v1/me", owner)
    assert status == 200 and me["sub"] == owner
    ns = default_namespace(owner)

    status, key = aws_fabric.call("POST", "/v1/keys", owner, {"name": "laptop"})
    assert status == 201, key
    assert key["kind"] == "iam" and key["secret"]
    user = f"octopus-{owner.replace('-', '')}"
    keys = aws_fabric.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [key["key_id"]]
    uuid_part = CLUSTER_ARN.rsplit("/", 1)[1]
    topic_prefix = f"arn:aws:kafka:{REGION}:123456789012:topic/octopus-test/{uuid_part}/"
    assert f"{topic_prefix}{ns}.*" in _resources(_policy_document(aws_fabric.iam, user))

    status, topic = aws_fabric.call(
        "POST", f"/v1/namespaces/{ns}/topics", owner, {"name": "beam.frames"}
    )
    assert status == 201, topic
    assert aws_fabric.call("POST", "/v1/keys", grantee, {"name": "hpc"})[0] == 201
    grantee_user = f"octopus-{grantee.replace('-', '')}"
    assert f"{topic_prefix}{ns}.beam.frames" not in _resources(
        _policy_document(aws_fabric.iam, grantee_user)
    )

    status, _ = aws_fabric.call(
        "PUT", f"/v1/namespaces/{ns}/topics/beam.frames/grants/{grantee}", owner, {"access": "read"}
    )
    assert status == 200
    assert f"{topic_prefix}{ns}.beam.frames" in _resources(
        _policy_document(aws_fabric.iam, grantee_user)
    )

    status, _ = aws_fabric.call(
        "DELETE", f"/v1/namespaces/{ns}/topics/beam.frames/grants/{grantee}", owner
    )
    assert status == 204
    assert f"{topic_prefix}{ns}.beam.frames" not in _resources(
        _policy_document(aws_fabric.iam, grantee_user)
    )

    status, creds = aws_fabric.call("POST", "/v1/credentials", owner, {})
    assert status == 201, creds
    assert creds["session_token"] and creds["region"] == REGION

    status, _ = aws_fabric.call(
        "POST",
        f"/v1/namespaces/{ns}/topics/beam.frames/records",
        owner,
        {"value": {"type": "JSON", "data": {"x": 1}}},
    )
    assert status == 200

    assert aws_fabric.call("DELETE", f"/v1/keys/{key['key_id']}", owner)[0] == 204
    assert aws_fabric.iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []


def test_third_iam_key_is_refused_with_the_reason(aws_fabric: AwsFabric) -> None:
    owner = str(uuid.uuid4())
    for name in ("a", "b"):
        assert aws_fabric.call("POST", "/v1/keys", owner, {"name": name})[0] == 201
    status, body = aws_fabric.call("POST", "/v1/keys", owner, {"name": "c"})
    assert status in (409, 429)
    assert "/v1/credentials" in body["error"]["message"]


def test_registry_state_lives_in_dynamodb(aws_fabric: AwsFabric) -> None:
    owner = str(uuid.uuid4())
    ns = default_namespace(owner)
    aws_fabric.call("POST", "/v1/namespaces", owner, {"name": "lab-alpha"})
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    flat = json.dumps(items)
    assert "lab-alpha" in flat and ns in flat
    status, listed = aws_fabric.call("GET", "/v1/namespaces", owner)
    assert status == 200
    assert [n["name"] for n in listed["items"]] == sorted(["lab-alpha", ns])


def test_a_request_without_authorizer_context_is_401(aws_fabric: AwsFabric) -> None:
    status, body = aws_fabric.call("GET", "/v1/me", None)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    assert aws_fabric.call("GET", "/v1/health", None)[0] == 200


def test_the_lambda_entry_point_builds_from_its_environment(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_registry_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    settings = aws_settings("b-1.example:9098", "arn:aws:iam::123456789012:role/x")
    monkeypatch.setenv("OCTOPUS_SETTINGS", settings.model_dump_json())
    sys.modules.pop("runtime.handlers.api", None)
    module = importlib.import_module("runtime.handlers.api")
    sub = str(uuid.uuid4())
    health = module.handler(
        api_gateway_event("GET", "/v1/health", None, None, None), LambdaContext()
    )
    assert health["statusCode"] == 200
    me = module.handler(api_gateway_event("GET", "/v1/me", sub, None, None), LambdaContext())
    assert me["statusCode"] == 200, me
    assert json.loads(me["body"])["sub"] == sub
    module._app.state.container.close()

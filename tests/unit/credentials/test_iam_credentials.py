"""IamCredentialIssuer against moto IAM/STS: lifecycle, policy content, IAM limits."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from runtime.adapters.aws.iam_credentials import (
    IamCredentialIssuer,
    aws_errors,
    policy_name,
    principal_name,
)
from runtime.config import RuntimeSettings
from runtime.domain.errors import BadRequest, FabricError, LimitReached, Unavailable
from runtime.domain.models import Access, AccessKey, Identity, KeyKind
from runtime.domain.ports import CredentialIssuer, Permissions, TopicAccess
from tests.unit.credentials.credentials_support import CLUSTER_UUID

TOPIC = f"arn:aws:kafka:us-east-1:123456789012:topic/octopus-test/{CLUSTER_UUID}/"
GROUP = f"arn:aws:kafka:us-east-1:123456789012:group/octopus-test/{CLUSTER_UUID}/"
OWN = Permissions(owned_namespaces=("ns-7e8f9a0b1c2d",))


def issuer_for(settings: RuntimeSettings, aws: dict[str, Any]) -> IamCredentialIssuer:
    return IamCredentialIssuer(settings, iam_client=aws["iam"], sts_client=aws["sts"])


def default_document(aws: dict[str, Any], arn: str) -> dict[str, Any]:
    iam = aws["iam"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    raw = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return raw if isinstance(raw, dict) else json.loads(raw)


def allowed(document: dict[str, Any], arn: str) -> set[str]:
    return {
        action.removeprefix("kafka-cluster:")
        for statement in document["Statement"]
        if any(fnmatch.fnmatchcase(arn, pattern) for pattern in statement["Resource"])
        for action in statement["Action"]
    }


def test_names_are_deterministic_and_iam_safe() -> None:
    sub = "b7c5a8e2-1d34-4f6a-9b0c-7e8f9a0b1c2d"
    assert principal_name(sub) == "octopus-b7c5a8e21d344f6a9b0c7e8f9a0b1c2d"
    assert policy_name(sub) == "octopus-b7c5a8e21d344f6a9b0c7e8f9a0b1c2d-kafka"
    odd = principal_name("not a uuid / with spaces" * 5)
    assert odd == principal_name("not a uuid / with spaces" * 5)
    assert len(odd) <= 64 and odd.replace("-", "").isalnum()


def test_full_lifecycle(settings: RuntimeSettings, aws: dict[str, Any], owner: Identity) -> None:
    iam = aws["iam"]
    issuer: CredentialIssuer = issuer_for(settings, aws)

    issued = issuer.create_key(owner, "laptop", OWN)
    assert issued.key.kind is KeyKind.IAM
    assert issued.key.key_id.startswith("AKIA") and issued.key.secret_hash == ""
    assert issued.key.owner == owner.sub and issued.key.name == "laptop"
    assert issued.secret and issued.secret not in issued.key.model_dump_json()

    user = iam.get_user(UserName=principal_name(owner.sub))["User"]
    assert user["Path"] == "/octopus/users/"
    tags = iam.list_user_tags(UserName=user["UserName"])["Tags"]
    assert {"Key": "octopus:sub", "Value": owner.sub} in tags
    attached = iam.list_attached_user_policies(UserName=user["UserName"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [policy_name(owner.sub)]
    policy_arn = attached[0]["PolicyArn"]
    assert policy_arn == f"arn:aws:iam::123456789012:policy/octopus/users/{policy_name(owner.sub)}"

    doc = default_document(aws, policy_arn)
    assert allowed(doc, TOPIC + "ns-7e8f9a0b1c2d.t") == {"DescribeTopic", "ReadData", "WriteData"}
    assert allowed(doc, GROUP + "ns-7e8f9a0b1c2d.g") == {"DescribeGroup", "AlterGroup"}
    assert allowed(doc, TOPIC + "ns-other.t") == set()

    # A grant arrives: the policy gains the topic (ARN built from the cluster UUID).
    granted = Permissions(
        owned_namespaces=OWN.owned_namespaces,
        grants=(TopicAccess(kafka_name="ns-other.t", is_prefix=False, access=Access.READ),),
    )
    issuer.sync_permissions(owner, granted)
    doc = default_document(aws, policy_arn)
    assert allowed(doc, TOPIC + "ns-other.t") == {"DescribeTopic", "ReadData"}
    assert any(TOPIC + "ns-other.t" in s["Resource"] for s in doc["Statement"])

    second = issuer.create_key(owner, "cluster", granted)
    keys = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in keys} == {issued.key.key_id, second.key.key_id}

    issuer.delete_key(owner, issued.key)
    issuer.delete_key(owner, issued.key)  # already gone: fine
    keys = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [second.key.key_id]

    issuer.delete_principal(owner)
    with pytest.raises(ClientError):
        iam.get_user(UserName=user["UserName"])
    with pytest.raises(ClientError):
        iam.get_policy(PolicyArn=policy_arn)
    assert iam.list_policies(Scope="Local", PathPrefix="/octopus/users/")["Policies"] == []
    assert iam.list_users(PathPrefix="/octopus/users/")["Users"] == []
    issuer.delete_principal(owner)  # idempotent


def test_unchanged_permissions_create_no_version(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    issuer.create_key(owner, "k", OWN)
    arn = issuer.policy_arn(owner)
    for _ in range(3):
        issuer.sync_permissions(owner, OWN)
    assert len(aws["iam"].list_policy_versions(PolicyArn=arn)["Versions"]) == 1


def test_versions_rotate_past_five(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    issuer.create_key(owner, "k", OWN)
    arn = issuer.policy_arn(owner)
    for i in range(8):
        perms = Permissions(
            owned_namespaces=OWN.owned_namespaces,
            grants=(TopicAccess(kafka_name=f"ns-x.t{i}", is_prefix=False, access=Access.READ),),
        )
        issuer.sync_permissions(owner, perms)
        versions = aws["iam"].list_policy_versions(PolicyArn=arn)["Versions"]
        assert len(versions) <= 5
    doc = default_document(aws, arn)
    assert allowed(doc, TOPIC + "ns-x.t7") == {"DescribeTopic", "ReadData"}
    assert allowed(doc, TOPIC + "ns-x.t6") == set()
    assert len(versions) == 5


def test_third_key_is_refused_with_the_limit_explained(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    issuer.create_key(owner, "a", OWN)
    issuer.create_key(owner, "b", OWN)
    with pytest.raises(LimitReached) as raised:
        issuer.create_key(owner, "c", OWN)
    assert raised.value.status == 409
    assert "2 access keys" in raised.value.message
    assert "POST /v1/credentials" in raised.value.message
    keys = aws["iam"].list_access_keys(UserName=principal_name(owner.sub))["AccessKeyMetadata"]
    assert len(keys) == 2


def big_permissions(count: int) -> Permissions:
    return Permissions(
        owned_namespaces=OWN.owned_namespaces,
        grants=tuple(
            TopicAccess(
                kafka_name=f"ns-ffffffffffff.t-{i:04d}", is_prefix=False, access=Access.READ
            )
            for i in range(count)
        ),
    )


def test_oversize_policy_refused_before_iam_is_called(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    with pytest.raises(LimitReached, match=r"characters; IAM allows 6,144"):
        issuer.create_key(owner, "k", big_permissions(100))
    # Nothing was created for the refused request.
    assert aws["iam"].list_users(PathPrefix="/octopus/users/")["Users"] == []

    issuer.create_key(owner, "k", OWN)
    arn = issuer.policy_arn(owner)
    with pytest.raises(LimitReached, match="prefix grants"):
        issuer.sync_permissions(owner, big_permissions(100))
    assert len(aws["iam"].list_policy_versions(PolicyArn=arn)["Versions"]) == 1
    issuer.sync_permissions(owner, big_permissions(30))  # a large but legal policy applies
    assert allowed(default_document(aws, arn), TOPIC + "ns-ffffffffffff.t-0029")


def test_sync_without_user_creates_nothing(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer_for(settings, aws).sync_permissions(owner, OWN)
    assert aws["iam"].list_users()["Users"] == []
    assert aws["iam"].list_policies(Scope="Local")["Policies"] == []


def test_session_credentials(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    creds = issuer.session_credentials(owner, OWN, 3600)
    assert creds.access_key_id.startswith("ASIA")
    assert creds.secret_access_key and creds.session_token
    assert creds.expires_at > datetime.now(UTC)
    assert creds.expires_at.tzinfo is not None
    # No IAM user is needed for session credentials.
    assert aws["iam"].list_users(PathPrefix="/octopus/users/")["Users"] == []


def test_session_arguments_sent_to_sts(settings: RuntimeSettings, owner: Identity) -> None:
    class RecordingSts:
        def __init__(self) -> None:
            self.kwargs: dict[str, Any] = {}

        def assume_role(self, **kwargs: Any) -> dict[str, Any]:
            self.kwargs = kwargs
            return {
                "Credentials": {
                    "AccessKeyId": "ASIAX",
                    "SecretAccessKey": "s",
                    "SessionToken": "t",
                    "Expiration": datetime(2030, 1, 1, tzinfo=UTC),
                }
            }

    sts = RecordingSts()
    issuer = IamCredentialIssuer(settings, iam_client=object(), sts_client=sts)
    issuer.session_credentials(owner, OWN, 900)
    sent = sts.kwargs
    assert sent["RoleArn"] == settings.client_session_role_arn
    assert sent["RoleSessionName"] == principal_name(owner.sub)
    assert len(sent["RoleSessionName"]) <= 64
    assert sent["DurationSeconds"] == 900
    assert sent["Tags"] == [{"Key": "octopus:sub", "Value": owner.sub}]
    assert sent["SourceIdentity"] == owner.sub
    policy = json.loads(sent["Policy"])
    assert allowed(policy, TOPIC + "ns-7e8f9a0b1c2d.t") == {
        "DescribeTopic",
        "ReadData",
        "WriteData",
    }
    assert " " not in sent["Policy"]  # minified


def test_session_policy_limit_and_bad_duration(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    issuer = issuer_for(settings, aws)
    with pytest.raises(LimitReached, match="2,048"):
        issuer.session_credentials(owner, big_permissions(30), 3600)
    with pytest.raises(BadRequest):
        issuer.session_credentials(owner, OWN, 60)


def test_session_role_not_configured(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    unconfigured = settings.model_copy(update={"client_session_role_arn": ""})
    with pytest.raises(FabricError, match="not configured"):
        issuer_for(unconfigured, aws).session_credentials(owner, OWN, 3600)


def client_error(code: str, operation: str = "CreateUser") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, operation)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (client_error("Throttling"), Unavailable),
        (client_error("ServiceFailure"), Unavailable),
        (EndpointConnectionError(endpoint_url="https://iam.amazonaws.com"), Unavailable),
        (client_error("LimitExceeded"), LimitReached),
        (client_error("PackedPolicyTooLarge", "AssumeRole"), LimitReached),
        (client_error("AccessDenied"), FabricError),
        (client_error("MalformedPolicyDocument"), FabricError),
    ],
)
def test_aws_errors_are_translated(raised: Exception, expected: type[FabricError]) -> None:
    with pytest.raises(expected) as caught, aws_errors("doing something"):
        raise raised
    assert isinstance(caught.value, FabricError)


def test_iam_failures_never_escape_raw(settings: RuntimeSettings, owner: Identity) -> None:
    class BrokenIam:
        def __getattr__(self, name: str) -> Any:
            def fail(**_: Any) -> None:
                raise client_error("ThrottlingException")

            return fail

    issuer = IamCredentialIssuer(settings, iam_client=BrokenIam(), sts_client=BrokenIam())
    key = AccessKey(key_id="AKIA1", owner=owner.sub, name="k", kind=KeyKind.IAM)
    calls: list[Callable[[], object]] = [
        lambda: issuer.create_key(owner, "k", OWN),
        lambda: issuer.sync_permissions(owner, OWN),
        lambda: issuer.delete_key(owner, key),
        lambda: issuer.session_credentials(owner, OWN, 3600),
        lambda: issuer.delete_principal(owner),
    ]
    for call in calls:
        with pytest.raises(Unavailable):
            call()


def test_bad_cluster_arn_refused_at_construction(settings: RuntimeSettings) -> None:
    broken = settings.model_copy(update={"cluster_arn": "arn:aws:kafka:us-east-1:1:cluster/x"})
    with pytest.raises(ValueError, match="not an MSK cluster ARN"):
        IamCredentialIssuer(broken, iam_client=object(), sts_client=object())


def test_packed_policy_too_large_is_a_clear_limit(
    settings: RuntimeSettings, owner: Identity
) -> None:
    class PackingSts:
        def assume_role(self, **_: Any) -> dict[str, Any]:
            raise client_error("PackedPolicyTooLarge", "AssumeRole")

    issuer = IamCredentialIssuer(settings, iam_client=object(), sts_client=PackingSts())
    with pytest.raises(LimitReached, match="too large once packed") as raised:
        issuer.session_credentials(owner, OWN, 3600)
    assert "POST /v1/keys" in raised.value.message


def test_users_are_created_with_the_client_boundary(
    settings: RuntimeSettings, aws: dict[str, Any], owner: Identity
) -> None:
    boundary = aws["iam"].create_policy(
        PolicyName="client-boundary",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    # moto accepts but does not keep a user's boundary: check what IAM was asked to do.
    sent: list[dict[str, Any]] = []
    aws["iam"].meta.events.register(
        "provide-client-params.iam.CreateUser", lambda params, **_: sent.append(dict(params))
    )
    issuer = IamCredentialIssuer(
        settings, iam_client=aws["iam"], sts_client=aws["sts"], user_boundary_arn=boundary
    )
    issuer.create_key(owner, "laptop", Permissions(owned_namespaces=(owner.default_namespace,)))
    assert [p.get("PermissionsBoundary") for p in sent] == [boundary]

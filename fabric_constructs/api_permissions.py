"""The API function's rights and the role it hands out as short-lived credentials."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from fabric_constructs.kafka_arns import KafkaArns

KAFKA_ADMIN_CLUSTER_ACTIONS = (
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeCluster",
    "kafka-cluster:WriteDataIdempotently",
)
KAFKA_ADMIN_TOPIC_ACTIONS = (
    "kafka-cluster:CreateTopic",
    "kafka-cluster:DeleteTopic",
    "kafka-cluster:AlterTopic",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:DescribeTopicDynamicConfiguration",
    "kafka-cluster:AlterTopicDynamicConfiguration",
    "kafka-cluster:ReadData",
    "kafka-cluster:WriteData",
)
KAFKA_ADMIN_GROUP_ACTIONS = (
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:DeleteGroup",
    "kafka-cluster:AlterGroup",
)
REGISTRY_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
)


def client_kafka_statements(kafka: KafkaArns) -> list[iam.PolicyStatement]:
    """The most any client principal may do: Kafka data actions on THIS cluster only."""
    return [
        iam.PolicyStatement(
            actions=[
                "kafka-cluster:Connect",
                "kafka-cluster:DescribeCluster",
                "kafka-cluster:WriteDataIdempotently",
            ],
            resources=[kafka.cluster_arn],
        ),
        iam.PolicyStatement(
            actions=[
                "kafka-cluster:DescribeTopic",
                "kafka-cluster:DescribeTopicDynamicConfiguration",
                "kafka-cluster:ReadData",
                "kafka-cluster:WriteData",
            ],
            resources=[kafka.topic()],
        ),
        iam.PolicyStatement(
            actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
            resources=[kafka.group()],
        ),
    ]


# What iam_credentials.py asks of STS: a session tagged with the sub, with a source identity.
SESSION_TRUST_ACTIONS = ("sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity")


class ClientSessionRole(Construct):
    """The role behind short-lived client credentials: Kafka data actions on this
    cluster's topics/groups only; the API narrows each session to the caller's grants
    with a session policy. Only ``trusted`` (the API function's role) may assume it,
    tag the session and set its source identity."""

    def __init__(
        self, scope: Construct, construct_id: str, *, kafka: KafkaArns, trusted: iam.IRole
    ) -> None:
        super().__init__(scope, construct_id)
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="Octopus client sessions: Kafka data on this cluster",
            statements=client_kafka_statements(kafka),
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ArnPrincipal(trusted.role_arn),
            description="Octopus: short-lived client credentials (narrowed per caller)",
            managed_policies=[policy],
            max_session_duration=cdk.Duration.hours(1),
        )
        assert self.role.assume_role_policy is not None
        self.role.assume_role_policy.add_statements(
            iam.PolicyStatement(
                actions=list(SESSION_TRUST_ACTIONS[1:]),
                principals=[iam.ArnPrincipal(trusted.role_arn)],
            )
        )


class ClientUserBoundary(Construct):
    """The permissions boundary for the IAM users the API creates (access keys): the
    same ceiling as client sessions. Its ARN reaches the API as ``OCTOPUS_USER_BOUNDARY_ARN``."""

    def __init__(self, scope: Construct, construct_id: str, *, kafka: KafkaArns) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="Octopus: permissions boundary of client IAM users",
            statements=client_kafka_statements(kafka),
        )


def api_statements(
    *,
    stack: cdk.Stack,
    table: dynamodb.ITable,
    table_key: kms.IKey,
    kafka: KafkaArns,
    secret_arn: str,
    user_path: str,
    session_role_arn: str,
    user_boundary_arn: str,
) -> list[iam.PolicyStatement]:
    """Everything the API function does besides trigger management."""
    path = user_path.strip("/")
    users = stack.format_arn(service="iam", region="", resource="user", resource_name=f"{path}/*")
    policies = stack.format_arn(
        service="iam", region="", resource="policy", resource_name=f"{path}/*"
    )
    return [
        iam.PolicyStatement(
            sid="Registry",
            actions=list(REGISTRY_ACTIONS),
            resources=[table.table_arn, f"{table.table_arn}/index/*"],
        ),
        iam.PolicyStatement(
            sid="RegistryEncryption",
            actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[table_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}
            },
        ),
        iam.PolicyStatement(
            sid="GlobusClientSecret",
            actions=["secretsmanager:GetSecretValue"],
            resources=[secret_arn],
        ),
        # Client users can only be created with the client boundary attached.
        iam.PolicyStatement(
            sid="ClientUsersWithBoundary",
            actions=["iam:CreateUser"],
            resources=[users],
            conditions={"StringEquals": {"iam:PermissionsBoundary": user_boundary_arn}},
        ),
        iam.PolicyStatement(
            sid="ClientUsers",
            actions=[
                "iam:GetUser",
                "iam:DeleteUser",
                "iam:TagUser",
                "iam:CreateAccessKey",
                "iam:DeleteAccessKey",
                "iam:UpdateAccessKey",
                "iam:ListAccessKeys",
                "iam:ListAttachedUserPolicies",
                "iam:DetachUserPolicy",
            ],
            resources=[users],
        ),
        iam.PolicyStatement(
            sid="AttachOnlyFabricPolicies",
            actions=["iam:AttachUserPolicy"],
            resources=[users],
            conditions={"ArnLike": {"iam:PolicyARN": policies}},
        ),
        iam.PolicyStatement(
            sid="ClientPolicies",
            actions=[
                "iam:CreatePolicy",
                "iam:GetPolicy",
                "iam:DeletePolicy",
                "iam:CreatePolicyVersion",
                "iam:GetPolicyVersion",
                "iam:DeletePolicyVersion",
                "iam:ListPolicyVersions",
                "iam:ListEntitiesForPolicy",
                "iam:TagPolicy",
            ],
            resources=[policies],
        ),
        iam.PolicyStatement(
            sid="ShortLivedCredentials",
            actions=list(SESSION_TRUST_ACTIONS),
            resources=[session_role_arn],
        ),
        iam.PolicyStatement(
            sid="KafkaAdminCluster",
            actions=list(KAFKA_ADMIN_CLUSTER_ACTIONS),
            resources=[kafka.cluster_arn],
        ),
        iam.PolicyStatement(
            sid="KafkaAdminTopics",
            actions=list(KAFKA_ADMIN_TOPIC_ACTIONS),
            resources=[kafka.topic()],
        ),
        iam.PolicyStatement(
            sid="KafkaAdminGroups",
            actions=list(KAFKA_ADMIN_GROUP_ACTIONS),
            resources=[kafka.group()],
        ),
    ]

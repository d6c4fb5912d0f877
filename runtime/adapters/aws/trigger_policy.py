"""The IAM documents of one trigger's execution role: trust and its only inline policy.

The role also carries the infrastructure's permissions boundary (always), so even a bug
here cannot grant more than the boundary allows. This policy narrows further, to the one
topic and the one consumer group of the trigger.
"""

from __future__ import annotations

from typing import Any, Final

from runtime.adapters.aws.trigger_naming import TriggerNames

LAMBDA_TRUST_POLICY: Final[dict[str, Any]] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# ENI management for the event source mapping's pollers in the cluster's VPC. AWS offers
# no resource-level permissions for the Describe* actions and Lambda picks the subnets
# (the cluster's), so these need "*" — the same set as AWSLambdaMSKExecutionRole.
ESM_NETWORK_ACTIONS: Final = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)


def trigger_role_policy(
    names: TriggerNames, *, secret_arn: str | None, queue_key_arn: str | None
) -> dict[str, Any]:
    """The role's inline policy: read one topic as one group, its logs, its DLQ, its secret."""
    cluster_arn = names.cluster.arn
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ConnectToTheCluster",
            "Effect": "Allow",
            "Action": ["kafka-cluster:Connect"],
            "Resource": [cluster_arn],
        },
        {
            # The event source mapping looks the cluster up with the execution role
            # (DescribeClusterV2 is the one serverless clusters accept).
            "Sid": "EventSourceMappingClusterLookup",
            "Effect": "Allow",
            "Action": ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"],
            "Resource": [cluster_arn],
        },
        {
            "Sid": "ReadTheTopic",
            "Effect": "Allow",
            "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
            "Resource": [names.topic_arn],
        },
        {
            "Sid": "UseTheConsumerGroup",
            "Effect": "Allow",
            "Action": ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
            "Resource": [names.group_arn],
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [names.log_group_arn, f"{names.log_group_arn}:*"],
        },
        {
            "Sid": "SendDeadLetters",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [names.queue_arn],
        },
    ]
    if queue_key_arn:
        statements.append(
            {
                "Sid": "EncryptDeadLetters",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": [queue_key_arn],
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"sqs.{names.cluster.region}.amazonaws.com"}
                },
            }
        )
    if secret_arn:
        statements.append(
            {
                "Sid": "ReadTheWebhookSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [secret_arn],
            }
        )
    statements.append(
        {
            "Sid": "EventSourceMappingNetwork",
            "Effect": "Allow",
            "Action": list(ESM_NETWORK_ACTIONS),
            "Resource": ["*"],
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}

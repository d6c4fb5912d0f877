"""Customer-managed KMS keys and the encrypted log groups that use them."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS


def removal_policy(retain: bool) -> cdk.RemovalPolicy:
    return cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY


class FabricKey(kms.Key):
    """A rotating customer key; ``for_logs`` lets CloudWatch Logs of this account use it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        purpose: str,
        retain: bool,
        for_logs: bool = False,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Octopus Event Fabric: {purpose}",
            enable_key_rotation=True,
            removal_policy=removal_policy(retain),
            pending_window=cdk.Duration.days(7 if not retain else 30),
        )
        if for_logs:
            stack = cdk.Stack.of(self)
            self.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="CloudWatchLogsOfThisAccount",
                    principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                    actions=[
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    resources=["*"],  # in a key policy "*" means this key
                    conditions={
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                                service="logs",
                                resource="log-group",
                                resource_name="*",
                                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                            )
                        }
                    },
                )
            )


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention_days: int,
    retain: bool,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with ``key`` (which must allow CloudWatch Logs)."""
    group = logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        encryption_key=key,
        retention=retention(retention_days),
        removal_policy=removal_policy(retain),
    )
    return group


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a day count validated by stacks/config.py."""
    members = [member for member in logs.RetentionDays if member.name != "INFINITE"]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]

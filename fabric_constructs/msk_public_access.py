"""Switches public access (IAM, port 9198) on for an existing provisioned MSK cluster.

MSK refuses public access at creation time, so a custom resource does it after the
cluster is ACTIVE: ``runtime/handlers/msk_public_access.py`` calls
``kafka:UpdateConnectivity`` with the cluster's current version, and the Provider
framework polls ``is_complete`` (every ``query_interval``) until the cluster is
ACTIVE again, within CloudFormation's one-hour custom-resource limit.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from fabric_constructs.encryption import encrypted_log_group
from fabric_constructs.fabric_function import FabricFunction

HANDLER_MODULE = "runtime.handlers.msk_public_access"


class MskPublicAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_arn: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        common: dict[str, Any] = {
            "vpc": vpc,
            "subnets": subnets,
            "security_group": security_group,
            "log_key": log_key,
            "log_retention_days": log_retention_days,
            "retain": retain,
            "memory_mb": 256,
        }
        describe = iam.PolicyStatement(actions=["kafka:DescribeClusterV2"], resources=[cluster_arn])
        on_event = FabricFunction(
            self,
            "OnEvent",
            handler=f"{HANDLER_MODULE}.on_event",
            description="Octopus: turn MSK public access on/off",
            timeout=cdk.Duration.minutes(14),
            statements=[
                describe,
                # UpdateConnectivity also needs to describe the subnets/EIPs MSK attaches.
                iam.PolicyStatement(actions=["kafka:UpdateConnectivity"], resources=[cluster_arn]),
                iam.PolicyStatement(
                    actions=["ec2:DescribeSubnets", "ec2:DescribeRouteTables"], resources=["*"]
                ),
            ],
            **common,
        )
        is_complete = FabricFunction(
            self,
            "IsComplete",
            handler=f"{HANDLER_MODULE}.is_complete",
            description="Octopus: wait for MSK public access change",
            timeout=cdk.Duration.minutes(1),
            statements=[describe],
            **common,
        )
        framework_logs = encrypted_log_group(
            self, "FrameworkLogs", key=log_key, retention_days=log_retention_days, retain=retain
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=on_event.function,
            is_complete_handler=is_complete.function,
            query_interval=cdk.Duration.seconds(60),
            total_timeout=cdk.Duration.minutes(55),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            log_group=framework_logs,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=framework_logs, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::MskPublicAccess",
            properties={"ClusterArn": cluster_arn, "Enabled": "true"},
        )

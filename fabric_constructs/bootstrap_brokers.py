"""Reads a cluster's bootstrap broker strings at deploy time (kafka:GetBootstrapBrokers)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

PRIVATE_IAM = "BootstrapBrokerStringSaslIam"
PUBLIC_IAM = "BootstrapBrokerStringPublicSaslIam"


class BootstrapBrokers(Construct):
    """``private`` (inside the VPC) and, with public access, ``public`` broker strings."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_arn: str,
        include_public: bool,
        log_group: logs.ILogGroup,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        fields = [PRIVATE_IAM, PUBLIC_IAM] if include_public else [PRIVATE_IAM]
        call = cr.AwsSdkCall(
            service="Kafka",
            action="getBootstrapBrokers",
            parameters={"ClusterArn": cluster_arn},
            physical_resource_id=cr.PhysicalResourceId.of(f"{cluster_arn}/bootstrap-brokers"),
            output_paths=fields,
        )
        self.resource = cr.AwsCustomResource(
            self,
            "Lookup",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["kafka:GetBootstrapBrokers"], resources=[cluster_arn]
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            vpc=vpc,
            vpc_subnets=subnets,
            timeout=cdk.Duration.minutes(2),
            log_group=log_group,
        )
        self.private = self.resource.get_response_field(PRIVATE_IAM)
        self.public = self.resource.get_response_field(PUBLIC_IAM) if include_public else ""

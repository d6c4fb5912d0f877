"""A fabric Lambda function: runtime/ code, arm64, in the VPC, least-privilege role.

The role carries customer-managed policies only (no inline policies, no AWS
managed policies): a base policy with what every VPC function needs (its own log
group, ENIs, X-Ray) and an optional permissions policy for the function's job.
The role is handed to the function as immutable, so nothing is granted behind
the policies' back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from fabric_constructs.encryption import encrypted_log_group
from fabric_constructs.lambda_code import ARCHITECTURE, PYTHON_RUNTIME, fabric_code
from runtime.config import RuntimeSettings

# AWS requires Resource "*" for these actions (no resource-level permissions):
# ec2:Describe*/Create/Delete/Assign/UnassignNetworkInterface* for VPC functions
# (what AWSLambdaVPCAccessExecutionRole grants) and X-Ray segment upload.
VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
DEFAULT_TIMEOUT = cdk.Duration.seconds(29)


class FabricFunction(Construct):
    """One function of the fabric; ``self.function`` is the Lambda, ``self.role`` its role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
        memory_mb: int = 512,
        timeout: cdk.Duration = DEFAULT_TIMEOUT,
        settings: RuntimeSettings | None = None,
        environment: Mapping[str, str] | None = None,
        reserved_concurrency: int | None = None,
        statements: Sequence[iam.PolicyStatement] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = encrypted_log_group(
            self, "Logs", key=log_key, retention_days=log_retention_days, retain=retain
        )
        base = iam.ManagedPolicy(
            self,
            "BasePolicy",
            description=f"{description}: own log group, VPC network interfaces, X-Ray",
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(actions=list(VPC_ENI_ACTIONS), resources=["*"]),
                iam.PolicyStatement(actions=list(XRAY_ACTIONS), resources=["*"]),
            ],
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
            managed_policies=[base],
        )
        self.permissions: iam.ManagedPolicy | None = None
        env = dict(settings.to_env() if settings is not None else {})
        env.update(environment or {})
        env.setdefault("POWERTOOLS_SERVICE_NAME", "octopus")
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            code=fabric_code(),
            handler=handler,
            role=self.role.without_policy_updates(),
            memory_size=memory_mb,
            timeout=timeout,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            environment=env,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
        )
        if statements:
            self.add_statements(*statements)

    def add_statements(self, *statements: iam.PolicyStatement) -> None:
        """Grant the function more rights (in a customer-managed policy of its own)."""
        if self.permissions is None:
            self.permissions = iam.ManagedPolicy(
                self, "Permissions", description="Octopus function permissions", roles=[self.role]
            )
            # The function must not run before its rights are attached.
            self.function.node.add_dependency(self.permissions)
        self.permissions.add_statements(*statements)

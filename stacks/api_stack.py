"""Api: the API function, the Globus token authorizer, the REST API and its WAF."""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from fabric_constructs.api_permissions import ClientSessionRole, ClientUserBoundary, api_statements
from fabric_constructs.encryption import FabricKey
from fabric_constructs.fabric_function import FabricFunction
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.network import FabricNetwork
from fabric_constructs.registry_table import RegistryTable
from fabric_constructs.rest_api import FabricRestApi
from fabric_constructs.trigger_support import TriggerSupport
from fabric_constructs.web_acl import ApiWebAcl
from stacks.config import StageConfig

API_HANDLER = "runtime.handlers.api.handler"
AUTHORIZER_HANDLER = "runtime.handlers.authorizer.handler"
USER_BOUNDARY_ENV_VAR = "OCTOPUS_USER_BOUNDARY_ARN"


@jsii.implements(cdk.IStableStringProducer)
class _SessionRoleArn:
    """The client session role's ARN, read once the role exists."""

    def __init__(self, stack: ApiStack) -> None:
        self._stack = stack

    def produce(self) -> str:
        return self._stack.session_role.role.role_arn


class ApiStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        network: FabricNetwork,
        kafka: KafkaArns,
        bootstrap_servers: str,
        internal_bootstrap_servers: str,
        registry: RegistryTable,
        triggers: TriggerSupport,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        kafka = KafkaArns.of(self, cluster_arn=kafka.cluster_arn, cluster_name=kafka.cluster_name)
        self.metrics_namespace = f"Octopus/{config.stage}"
        retain = config.retain
        log_key = FabricKey(self, "LogKey", purpose="API logs", retain=retain, for_logs=True)
        secret_arn = self.format_arn(
            service="secretsmanager",
            resource="secret",
            # Secrets Manager appends 6 random characters to the name.
            resource_name=f"{config.globus.secret_name}-??????",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        function_props = {
            "vpc": network.vpc,
            "subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            "security_group": network.function_security_group,
            "log_key": log_key,
            "log_retention_days": config.logs.retention_days,
            "retain": retain,
            "timeout": cdk.Duration.seconds(config.api.function_timeout_seconds),
            "reserved_concurrency": config.api.reserved_concurrency,
        }
        deployed = {
            "region": self.region,
            "cluster_arn": kafka.cluster_arn,
            "bootstrap_servers": bootstrap_servers,
            "internal_bootstrap_servers": internal_bootstrap_servers,
            "registry_table": registry.table.table_name,
            "trigger_function_prefix": triggers.function_prefix,
            "trigger_role_path": triggers.role_path,
            "iam_user_path": f"/octopus/users/{config.stage}/",
            "trigger_boundary_arn": triggers.boundary.managed_policy_arn,
            "trigger_dlq_arn": triggers.dead_letter_queue.queue_arn,
            "trigger_template_bucket": triggers.template.s3_bucket_name,
            "trigger_template_key": triggers.template.s3_object_key,
            "trigger_code_bucket": triggers.code_bucket.bucket_name,
        }
        self.authorizer_function = FabricFunction(
            self,
            "Authorizer",
            handler=AUTHORIZER_HANDLER,
            description="Octopus: Globus Auth token authorizer",
            memory_mb=512,
            settings=config.runtime_settings(**deployed, identity="globus"),
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[secret_arn]
                )
            ],
            **function_props,  # type: ignore[arg-type]
        )
        # The session role trusts the API role, so it is made after the function; its ARN
        # reaches the settings lazily (no cycle: role <- session role <- function).
        settings = config.runtime_settings(
            **deployed,
            client_session_role_arn=cdk.Lazy.string(_SessionRoleArn(self)),
        )
        # Every client IAM user is created with this boundary (iam:CreateUser requires it).
        self.user_boundary = ClientUserBoundary(self, "ClientUserBoundary", kafka=kafka)
        self.api_function = FabricFunction(
            self,
            "ApiFunction",
            handler=API_HANDLER,
            description="Octopus: REST API",
            memory_mb=config.api.function_memory_mb,
            settings=settings,
            environment={USER_BOUNDARY_ENV_VAR: self.user_boundary.policy.managed_policy_arn},
            **function_props,  # type: ignore[arg-type]
        )
        self.session_role = ClientSessionRole(
            self, "ClientSessionRole", kafka=kafka, trusted=self.api_function.role
        )
        self.api_function.add_statements(
            *api_statements(
                stack=self,
                table=registry.table,
                table_key=registry.key,
                kafka=kafka,
                secret_arn=secret_arn,
                user_path=settings.iam_user_path,
                session_role_arn=self.session_role.role.role_arn,
                user_boundary_arn=self.user_boundary.policy.managed_policy_arn,
            )
        )
        self.api_function.role.add_managed_policy(triggers.management_policy)

        self.rest = FabricRestApi(
            self,
            "Rest",
            api_name=f"octopus-{config.stage}",
            stage_name=config.stage,
            handler=self.api_function.function,
            authorizer_handler=self.authorizer_function.function,
            authorizer_cache_seconds=config.api.authorizer_cache_seconds,
            cors_origins=config.api.cors_origins,
            throttling_rate_limit=config.api.throttling_rate_limit,
            throttling_burst_limit=config.api.throttling_burst_limit,
            log_key=log_key,
            log_retention_days=config.logs.retention_days,
            retain=retain,
            metrics_namespace=self.metrics_namespace,
        )
        if config.api.waf_enabled:
            ApiWebAcl(
                self,
                "Waf",
                name=f"octopus-{config.stage}",
                stage_arn=self.rest.api.deployment_stage.stage_arn,
                rate_limit=config.api.waf_rate_limit,
                log_key=log_key,
                log_retention_days=config.logs.retention_days,
                retain=retain,
            )
        cdk.CfnOutput(
            self, "ApiUrl", value=self.rest.api.url, description="Base URL of the fabric API"
        )
        cdk.CfnOutput(self, "ClientSessionRoleArn", value=self.session_role.role.role_arn)
        cdk.CfnOutput(
            self, "ClientUserBoundaryArn", value=self.user_boundary.policy.managed_policy_arn
        )

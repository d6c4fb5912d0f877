"""Events: the event-stream (SSE) service on ECS Fargate behind an HTTPS-only ALB."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from fabric_constructs.encryption import FabricKey
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.network import FabricNetwork
from fabric_constructs.registry_table import RegistryTable
from fabric_constructs.stream_service import StreamService
from fabric_constructs.web_acl import ApiWebAcl
from stacks.config import StageConfig


class EventsStack(cdk.Stack):
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
        code: s3_assets.Asset,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        events = config.events
        assert events.certificate_arn is not None  # the config model requires it when enabled
        kafka = KafkaArns.of(self, cluster_arn=kafka.cluster_arn, cluster_name=kafka.cluster_name)
        log_key = FabricKey(
            self, "LogKey", purpose="event stream logs", retain=config.retain, for_logs=True
        )
        secret_arn = self.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{config.globus.secret_name}-??????",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # No API Gateway authorizer in front of an ALB: the service introspects tokens.
        settings = config.runtime_settings(
            region=self.region,
            cluster_arn=kafka.cluster_arn,
            bootstrap_servers=bootstrap_servers,
            internal_bootstrap_servers=internal_bootstrap_servers,
            registry_table=registry.table.table_name,
            identity="globus",
        )
        self.service = StreamService(
            self,
            "Streams",
            name=f"octopus-{config.stage}-streams",
            network=network,
            kafka=kafka,
            settings=settings,
            registry_table=registry.table,
            registry_key=registry.key,
            globus_secret_arn=secret_arn,
            code=code,
            base_image=events.base_image,
            certificate_arn=events.certificate_arn,
            allowed_cidrs=events.allowed_cidrs,
            desired_count=events.desired_count,
            cpu=events.cpu,
            memory_mib=events.memory_mib,
            idle_timeout_seconds=events.idle_timeout_seconds,
            log_key=log_key,
            log_retention_days=config.logs.retention_days,
            retain=config.retain,
        )
        if config.api.waf_enabled:
            ApiWebAcl(
                self,
                "Waf",
                name=f"octopus-{config.stage}-events",
                stage_arn=self.service.load_balancer.load_balancer_arn,
                rate_limit=config.api.waf_rate_limit,
                log_key=log_key,
                log_retention_days=config.logs.retention_days,
                retain=config.retain,
            )
        cdk.CfnOutput(
            self,
            "EventStreamsDnsName",
            value=self.service.load_balancer.load_balancer_dns_name,
            description="Point the certificate's DNS name (CNAME/alias) here; HTTPS only",
        )

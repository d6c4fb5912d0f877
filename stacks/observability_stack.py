"""Observability: one dashboard and alarms to an SNS topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from fabric_constructs.monitoring import FabricMonitoring
from stacks.config import StageConfig

if TYPE_CHECKING:  # optional parts, imported by stacks.fabric only when configured
    from fabric_constructs.storage_bridge import StorageEventBridge
    from fabric_constructs.stream_service import StreamService


class ObservabilityStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        api: apigw.RestApi,
        api_function: lambda_.IFunction,
        authorizer_function: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        metrics_namespace: str,
        trigger_function_prefix: str,
        stream_service: StreamService | None = None,
        storage_bridge: StorageEventBridge | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.monitoring = FabricMonitoring(
            self,
            "Monitoring",
            dashboard_name=f"octopus-{config.stage}",
            cluster_name=config.cluster_name,
            cluster_mode=config.cluster.mode,
            broker_count=config.cluster.broker_count,
            api=api,
            api_function=api_function,
            authorizer_function=authorizer_function,
            dead_letter_queue=dead_letter_queue,
            metrics_namespace=metrics_namespace,
            trigger_function_prefix=trigger_function_prefix,
            alarm_email=config.alarm_email,
            stream_service=stream_service,
            storage_bridge=storage_bridge,
            retain=config.retain,
        )
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)

"""Storage: S3 object changes of configured buckets to Kafka topics (CloudEvents 1.0)."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from fabric_constructs.encryption import FabricKey
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.network import FabricNetwork
from fabric_constructs.storage_bridge import StorageEventBridge
from stacks.config import StageConfig


class StorageStack(cdk.Stack):
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
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        kafka = KafkaArns.of(self, cluster_arn=kafka.cluster_arn, cluster_name=kafka.cluster_name)
        log_key = FabricKey(
            self, "LogKey", purpose="storage bridge logs", retain=config.retain, for_logs=True
        )
        self.bridge = StorageEventBridge(
            self,
            "StorageEvents",
            routes=config.storage_events,
            network=network,
            kafka=kafka,
            settings=config.runtime_settings(
                region=self.region,
                cluster_arn=kafka.cluster_arn,
                bootstrap_servers=bootstrap_servers,
                internal_bootstrap_servers=internal_bootstrap_servers,
            ),
            log_key=log_key,
            log_retention_days=config.logs.retention_days,
            retain=config.retain,
        )
        cdk.CfnOutput(
            self,
            "StorageEventsDeadLetterQueueUrl",
            value=self.bridge.dead_letter_queue.queue_url,
            description="Storage notifications the bridge could not produce",
        )

"""Storage events: S3 object changes → an encrypted queue → the bridge function → Kafka topics.

S3 notifies an SQS queue (not the function directly) so a burst of object changes is
buffered for 14 days, the bridge produces in batches, and a batch whose records could not
be produced is retried per message (``ReportBatchItemFailures``) and, after
``MAX_RECEIVES`` attempts, kept in a dead-letter queue. Buckets are existing ones,
imported by name: aws-cdk-lib adds their notifications with its notifications custom
resource, which merges with (never replaces) notifications others configured.

The bridge (``runtime.handlers.s3_bridge``) runs in the VPC and may only write to the
configured topics (``WriteData``/``DescribeTopic`` on exactly their ARNs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from fabric_constructs.encryption import FabricKey
from fabric_constructs.fabric_function import FabricFunction
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.network import FabricNetwork
from runtime.config import RuntimeSettings
from runtime.storage.s3_events import ROUTES_ENV_VAR
from stacks.config import StorageEventRoute

BRIDGE_HANDLER = "runtime.handlers.s3_bridge.handler"
BRIDGE_TIMEOUT = cdk.Duration.seconds(60)
MAX_RECEIVES = 5
EVENT_TYPES: dict[str, tuple[s3.EventType, ...]] = {
    "created": (s3.EventType.OBJECT_CREATED,),
    "removed": (s3.EventType.OBJECT_REMOVED,),
    "restored": (
        s3.EventType.OBJECT_RESTORE_POST,
        s3.EventType.OBJECT_RESTORE_COMPLETED,
        s3.EventType.OBJECT_RESTORE_DELETE,
    ),
    "tagging": (s3.EventType.OBJECT_TAGGING,),
}


class StorageEventBridge(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        routes: Sequence[StorageEventRoute],
        network: FabricNetwork,
        kafka: KafkaArns,
        settings: RuntimeSettings,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        self.key = FabricKey(self, "QueueKey", purpose="storage event queues", retain=retain)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            removal_policy=removal,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            # AWS's advice for a Lambda source: at least 6x the function timeout.
            visibility_timeout=cdk.Duration.seconds(6 * BRIDGE_TIMEOUT.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES
            ),
            removal_policy=removal,
        )
        self.topics = sorted({route.topic for route in routes})
        self.function = FabricFunction(
            self,
            "Bridge",
            handler=BRIDGE_HANDLER,
            description="Octopus: S3 storage events to Kafka topics (CloudEvents)",
            vpc=network.vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=network.function_security_group,
            log_key=log_key,
            log_retention_days=log_retention_days,
            retain=retain,
            memory_mb=512,
            timeout=BRIDGE_TIMEOUT,
            settings=settings,
            environment={
                ROUTES_ENV_VAR: json.dumps(
                    [{"bucket": r.bucket, "topic": r.topic, "prefix": r.prefix} for r in routes],
                    separators=(",", ":"),
                )
            },
            statements=[
                iam.PolicyStatement(
                    sid="ProduceIdempotently",
                    actions=["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"],
                    resources=[kafka.cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteConfiguredTopics",
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
                    resources=[kafka.topic(topic) for topic in self.topics],
                ),
                iam.PolicyStatement(
                    sid="ConsumeNotifications",
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                        "sqs:GetQueueUrl",
                    ],
                    resources=[self.queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="DecryptNotifications",
                    actions=["kms:Decrypt"],
                    resources=[self.key.key_arn],
                ),
            ],
        )
        self.mapping = sources.SqsEventSource(
            self.queue,
            batch_size=10,
            max_batching_window=cdk.Duration.seconds(5),
            report_batch_item_failures=True,
        )
        self.function.function.add_event_source(self.mapping)
        # The function's rights must exist before its mapping starts polling.
        assert self.function.permissions is not None
        for child in self.function.function.node.find_all():
            if isinstance(child, cdk.CfnResource) and child.cfn_resource_type == (
                "AWS::Lambda::EventSourceMapping"
            ):
                child.node.add_dependency(self.function.permissions)
        destination = s3n.SqsDestination(self.queue)
        buckets: dict[str, s3.IBucket] = {}
        for route in routes:
            bucket = buckets.get(route.bucket)
            if bucket is None:
                bucket = s3.Bucket.from_bucket_name(self, f"Bucket{len(buckets)}", route.bucket)
                buckets[route.bucket] = bucket
            filters = [s3.NotificationKeyFilter(prefix=route.prefix)] if route.prefix else []
            for kind in route.events:
                for event_type in EVENT_TYPES[kind]:
                    bucket.add_event_notification(event_type, destination, *filters)
        self.bucket_names = sorted(buckets)

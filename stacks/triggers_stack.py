"""Triggers: boundary, dead-letter queue, template code, the API's management policy."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.trigger_support import TriggerSupport


class TriggersStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        kafka: KafkaArns,
        function_prefix: str,
        role_path: str,
        secret_prefix: str,
        retain: bool,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # Topic/group ARNs are rebuilt here from the cluster ARN (an import), not shared tokens.
        self.support = TriggerSupport(
            self,
            "Triggers",
            kafka=KafkaArns.of(
                self, cluster_arn=kafka.cluster_arn, cluster_name=kafka.cluster_name
            ),
            function_prefix=function_prefix,
            role_path=role_path,
            secret_prefix=secret_prefix,
            retain=retain,
        )
        cdk.CfnOutput(self, "TriggerBoundaryArn", value=self.support.boundary.managed_policy_arn)
        cdk.CfnOutput(
            self, "TriggerDeadLetterQueueUrl", value=self.support.dead_letter_queue.queue_url
        )

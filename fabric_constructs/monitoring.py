"""Dashboard and alarms of the fabric; alarms notify an encrypted SNS topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from fabric_constructs.encryption import FabricKey
from fabric_constructs.rest_api import AUTHORIZER_DENIALS_METRIC

if TYPE_CHECKING:  # optional parts: their modules load only in stages that deploy them
    from fabric_constructs.storage_bridge import StorageEventBridge
    from fabric_constructs.stream_service import StreamService

PERIOD = cdk.Duration.minutes(5)


def _search(query: str, statistic: str, label: str) -> cw.MathExpression:
    """Sum of every metric matched by a CloudWatch SEARCH (brokers, topics, triggers)."""
    return cw.MathExpression(
        expression=f"SUM(SEARCH('{query}', '{statistic}', {int(PERIOD.to_seconds())}))",
        label=label,
        period=PERIOD,
        using_metrics={},
    )


class FabricMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        cluster_name: str,
        cluster_mode: str,
        broker_count: int,
        api: apigw.RestApi,
        api_function: lambda_.IFunction,
        authorizer_function: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        metrics_namespace: str,
        trigger_function_prefix: str,
        alarm_email: str | None,
        retain: bool,
        stream_service: StreamService | None = None,
        storage_bridge: StorageEventBridge | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        key = FabricKey(self, "TopicKey", purpose="alarm notifications", retain=retain)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
            )
        )
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"{dashboard_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)

        cluster = f'"Cluster Name"="{cluster_name}"'
        per_broker = '{AWS/Kafka,"Broker ID","Cluster Name"}'
        per_topic = '{AWS/Kafka,"Cluster Name","Topic"}'
        dimension = per_broker if cluster_mode == "provisioned" else per_topic
        bytes_in = _search(
            f'{dimension} MetricName="BytesInPerSec" {cluster}', "Average", "bytes in/s"
        )
        bytes_out = _search(
            f'{dimension} MetricName="BytesOutPerSec" {cluster}', "Average", "bytes out/s"
        )
        partitions = cw.Metric(
            namespace="AWS/Kafka",
            metric_name="GlobalPartitionCount",
            dimensions_map={"Cluster Name": cluster_name},
            statistic="Maximum",
            period=PERIOD,
        )
        disk_used = [
            cw.Metric(
                namespace="AWS/Kafka",
                metric_name="KafkaDataLogsDiskUsed",
                dimensions_map={"Cluster Name": cluster_name, "Broker ID": str(broker)},
                statistic="Maximum",
                period=PERIOD,
                label=f"broker {broker} disk used %",
            )
            for broker in range(1, broker_count + 1)
        ]
        trigger_filter = f'{{AWS/Lambda,FunctionName}} "{trigger_function_prefix}"'
        trigger_invocations = _search(
            f'{trigger_filter} MetricName="Invocations"', "Sum", "trigger invocations"
        )
        trigger_errors = _search(f'{trigger_filter} MetricName="Errors"', "Sum", "trigger errors")
        denials = cw.Metric(
            namespace=metrics_namespace,
            metric_name=AUTHORIZER_DENIALS_METRIC,
            statistic="Sum",
            period=PERIOD,
            label="401/403 answers",
        )
        dlq_depth = dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )

        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        cluster_widgets: list[cw.IWidget] = [
            cw.GraphWidget(title="Cluster throughput", left=[bytes_in, bytes_out], width=12),
        ]
        if cluster_mode == "provisioned":
            cluster_widgets += [
                cw.GraphWidget(title="Partitions", left=[partitions], width=6),
                cw.GraphWidget(title="Disk used (%)", left=disk_used, width=6),
            ]
        dashboard.add_widgets(*cluster_widgets)
        dashboard.add_widgets(
            cw.GraphWidget(
                title="API latency",
                left=[
                    api.metric_latency(period=PERIOD, statistic="p50"),
                    api.metric_latency(period=PERIOD, statistic="p99"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="API errors",
                left=[
                    api.metric_client_error(period=PERIOD),
                    api.metric_server_error(period=PERIOD),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Authorizer",
                left=[denials, authorizer_function.metric_errors(period=PERIOD)],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Trigger invocations / errors",
                left=[trigger_invocations, trigger_errors],
                width=12,
            ),
            cw.GraphWidget(title="Trigger dead letters", left=[dlq_depth], width=12),
        )

        alarms = [
            cw.Alarm(
                self,
                "ApiServerErrors",
                alarm_description="The API answered 5xx",
                metric=api.metric_server_error(period=PERIOD, statistic="Sum"),
                threshold=5,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "ApiLatency",
                alarm_description="API p99 latency above 5 s",
                metric=api.metric_latency(period=PERIOD, statistic="p99"),
                threshold=5000,
                evaluation_periods=3,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "ApiFunctionErrors",
                alarm_description="The API function failed",
                metric=api_function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "AuthorizerErrors",
                alarm_description="The authorizer failed (Globus Auth unreachable or a bug)",
                metric=authorizer_function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "TriggerDeadLetters",
                alarm_description="Trigger batches failed and went to the dead-letter queue",
                metric=dlq_depth,
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
        ]
        if cluster_mode == "provisioned":
            alarms.append(
                cw.Alarm(
                    self,
                    "BrokerDiskUsed",
                    alarm_description="Broker data disk above 85 % (scaling lags or at ceiling)",
                    metric=cw.MathExpression(
                        expression=f"MAX([{', '.join(f'd{i}' for i in range(len(disk_used)))}])",
                        using_metrics={f"d{i}": metric for i, metric in enumerate(disk_used)},
                        period=PERIOD,
                        label="max broker disk used %",
                    ),
                    threshold=85,
                    evaluation_periods=2,
                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                )
            )
        if stream_service is not None:
            alarms += self._stream_service(dashboard, stream_service)
        if storage_bridge is not None:
            alarms += self._storage_bridge(dashboard, storage_bridge)
        for alarm in alarms:
            alarm.add_alarm_action(action)

    def _stream_service(self, dashboard: cw.Dashboard, service: StreamService) -> list[cw.Alarm]:
        """The SSE service: 5xx (ALB and targets), time to first byte, healthy tasks."""
        from aws_cdk import aws_elasticloadbalancingv2 as cw_elb  # loaded only with the service

        alb = service.load_balancer.metrics
        targets = service.target_group.metrics
        elb_5xx = alb.http_code_elb(cw_elb.HttpCodeElb.ELB_5XX_COUNT, period=PERIOD)
        target_5xx = alb.http_code_target(cw_elb.HttpCodeTarget.TARGET_5XX_COUNT, period=PERIOD)
        response_p99 = targets.target_response_time(period=PERIOD, statistic="p99")
        healthy = targets.healthy_host_count(period=cdk.Duration.minutes(1), statistic="Minimum")
        dashboard.add_widgets(
            cw.GraphWidget(title="Event streams 5xx", left=[elb_5xx, target_5xx], width=8),
            cw.GraphWidget(
                title="Event streams response time",
                left=[targets.target_response_time(period=PERIOD, statistic="p50"), response_p99],
                width=8,
            ),
            cw.GraphWidget(title="Event streams healthy tasks", left=[healthy], width=8),
        )
        return [
            cw.Alarm(
                self,
                "StreamsServerErrors",
                alarm_description="The event-stream ALB or its tasks answered 5xx",
                metric=cw.MathExpression(
                    expression="FILL(elb, 0) + FILL(target, 0)",
                    using_metrics={"elb": elb_5xx, "target": target_5xx},
                    period=PERIOD,
                    label="5xx",
                ),
                threshold=5,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "StreamsResponseTime",
                alarm_description="Event-stream p99 time to first byte above 5 s",
                metric=response_p99,
                threshold=5,
                evaluation_periods=3,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "StreamsNoHealthyTask",
                alarm_description="No healthy event-stream task behind the ALB",
                metric=healthy,
                threshold=1,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=3,
                treat_missing_data=cw.TreatMissingData.BREACHING,
            ),
        ]

    def _storage_bridge(
        self, dashboard: cw.Dashboard, bridge: StorageEventBridge
    ) -> list[cw.Alarm]:
        """The S3 bridge: errors, and notifications given up on (its dead-letter queue)."""
        errors = bridge.function.function.metric_errors(period=PERIOD, statistic="Sum")
        invocations = bridge.function.function.metric_invocations(period=PERIOD, statistic="Sum")
        dead = bridge.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        backlog = bridge.queue.metric_approximate_age_of_oldest_message(
            period=PERIOD, statistic="Maximum"
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Storage bridge", left=[invocations, errors], width=8),
            cw.GraphWidget(title="Storage events backlog age (s)", left=[backlog], width=8),
            cw.GraphWidget(title="Storage events dead letters", left=[dead], width=8),
        )
        return [
            cw.Alarm(
                self,
                "StorageBridgeErrors",
                alarm_description="The storage bridge failed (events are retried from its queue)",
                metric=errors,
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            cw.Alarm(
                self,
                "StorageEventDeadLetters",
                alarm_description="Storage notifications failed 5 times and were dead-lettered",
                metric=dead,
                threshold=1,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
        ]

"""The MSK cluster: provisioned (CfnCluster) or serverless (CfnServerlessCluster).

Either way clients authenticate with IAM only (no unauthenticated access, no
SCRAM/mTLS) over TLS. Provisioned clusters also get: TLS between brokers, a
customer KMS key at rest, broker logs in CloudWatch, an MSK configuration and
storage auto-scaling.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_msk as msk
from constructs import Construct

from fabric_constructs.encryption import FabricKey, encrypted_log_group


def server_properties(*, replication_factor: int, min_insync_replicas: int) -> str:
    """The broker configuration the fabric relies on."""
    lines = [
        # Topics exist only when the registry created them (a typo must not create one).
        "auto.create.topics.enable=false",
        f"default.replication.factor={replication_factor}",
        f"min.insync.replicas={min_insync_replicas}",
        "num.partitions=1",
        # Access is decided by IAM; never fall back to "allow everyone".
        "allow.everyone.if.no.acl.found=false",
        "unclean.leader.election.enable=false",
    ]
    return "\n".join(lines) + "\n"


class ProvisionedKafkaCluster(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        kafka_version: str,
        broker_count: int,
        instance_type: str,
        ebs_volume_gb: int,
        storage_autoscaling_max_gb: int,
        storage_autoscaling_target_percent: int,
        replication_factor: int,
        min_insync_replicas: int,
        enhanced_monitoring: str,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = FabricKey(
            self,
            "Key",
            purpose=f"MSK {cluster_name} data and broker logs",
            retain=retain,
            for_logs=True,
        )
        self.broker_logs = encrypted_log_group(
            self, "BrokerLogs", key=self.key, retention_days=log_retention_days, retain=retain
        )
        configuration = msk.CfnConfiguration(
            self,
            "Configuration",
            name=f"{cluster_name}-config",
            description="Octopus Event Fabric broker configuration",
            kafka_versions_list=[kafka_version],
            server_properties=server_properties(
                replication_factor=replication_factor, min_insync_replicas=min_insync_replicas
            ),
        )
        self.cluster = msk.CfnCluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            kafka_version=kafka_version,
            number_of_broker_nodes=broker_count,
            enhanced_monitoring=enhanced_monitoring,
            broker_node_group_info=msk.CfnCluster.BrokerNodeGroupInfoProperty(
                instance_type=instance_type,
                client_subnets=[subnet.subnet_id for subnet in subnets],
                security_groups=[security_group.security_group_id],
                storage_info=msk.CfnCluster.StorageInfoProperty(
                    ebs_storage_info=msk.CfnCluster.EBSStorageInfoProperty(
                        volume_size=ebs_volume_gb
                    )
                ),
                # Public access is switched on after creation by MskPublicAccess, never here.
            ),
            client_authentication=msk.CfnCluster.ClientAuthenticationProperty(
                sasl=msk.CfnCluster.SaslProperty(
                    iam=msk.CfnCluster.IamProperty(enabled=True),
                    scram=msk.CfnCluster.ScramProperty(enabled=False),
                ),
                unauthenticated=msk.CfnCluster.UnauthenticatedProperty(enabled=False),
            ),
            encryption_info=msk.CfnCluster.EncryptionInfoProperty(
                encryption_at_rest=msk.CfnCluster.EncryptionAtRestProperty(
                    data_volume_kms_key_id=self.key.key_arn
                ),
                encryption_in_transit=msk.CfnCluster.EncryptionInTransitProperty(
                    client_broker="TLS", in_cluster=True
                ),
            ),
            logging_info=msk.CfnCluster.LoggingInfoProperty(
                broker_logs=msk.CfnCluster.BrokerLogsProperty(
                    cloud_watch_logs=msk.CfnCluster.CloudWatchLogsProperty(
                        enabled=True, log_group=self.broker_logs.log_group_name
                    )
                )
            ),
            configuration_info=msk.CfnCluster.ConfigurationInfoProperty(
                arn=configuration.attr_arn, revision=configuration.attr_latest_revision_revision
            ),
        )
        self.cluster.apply_removal_policy(
            cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        )
        self.cluster_arn = self.cluster.attr_arn

        # Storage grows by Application Auto Scaling (scale-in is not possible on MSK).
        stack = cdk.Stack.of(self)
        autoscaling_role = iam.Role.from_role_arn(
            self,
            "KafkaAutoScalingRole",
            stack.format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name="aws-service-role/kafka.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_KafkaCluster",
            ),
            mutable=False,
        )
        storage = appscaling.ScalableTarget(
            self,
            "StorageScaling",
            service_namespace=appscaling.ServiceNamespace.KAFKA,
            scalable_dimension="kafka:broker-storage:VolumeSize",
            resource_id=self.cluster_arn,
            min_capacity=1,
            max_capacity=storage_autoscaling_max_gb,
            role=autoscaling_role,
        )
        storage.scale_to_track_metric(
            "StorageUtilization",
            target_value=storage_autoscaling_target_percent,
            predefined_metric=appscaling.PredefinedMetric.KAFKA_BROKER_STORAGE_UTILIZATION,
            disable_scale_in=True,
        )


class ServerlessKafkaCluster(Construct):
    """MSK Serverless: IAM auth and TLS are built in; AWS owns the encryption key."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = msk.CfnServerlessCluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            client_authentication=msk.CfnServerlessCluster.ClientAuthenticationProperty(
                sasl=msk.CfnServerlessCluster.SaslProperty(
                    iam=msk.CfnServerlessCluster.IamProperty(enabled=True)
                )
            ),
            vpc_configs=[
                msk.CfnServerlessCluster.VpcConfigProperty(
                    subnet_ids=[subnet.subnet_id for subnet in subnets],
                    security_groups=[security_group.security_group_id],
                )
            ],
        )
        self.cluster.apply_removal_policy(
            cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        )
        self.cluster_arn = self.cluster.attr_arn

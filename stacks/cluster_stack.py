"""Cluster: MSK (provisioned or serverless), optional public access, broker strings."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from fabric_constructs.bootstrap_brokers import BootstrapBrokers
from fabric_constructs.encryption import FabricKey, encrypted_log_group
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.kafka_cluster import ProvisionedKafkaCluster, ServerlessKafkaCluster
from fabric_constructs.msk_public_access import MskPublicAccess
from fabric_constructs.network import KAFKA_PUBLIC_IAM_PORT, FabricNetwork
from stacks.config import StageConfig


class ClusterStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        network: FabricNetwork,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        cluster = config.cluster
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        # Public access needs brokers in public subnets (MSK assigns them Elastic IPs).
        broker_subnet_type = (
            ec2.SubnetType.PUBLIC if cluster.public_access else ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
        broker_subnets = network.vpc.select_subnets(subnet_type=broker_subnet_type).subnets
        self.cluster_name = config.cluster_name
        if cluster.mode == "provisioned":
            provisioned = ProvisionedKafkaCluster(
                self,
                "Kafka",
                cluster_name=self.cluster_name,
                kafka_version=cluster.kafka_version,
                broker_count=cluster.broker_count,
                instance_type=cluster.instance_type,
                ebs_volume_gb=cluster.ebs_volume_gb,
                storage_autoscaling_max_gb=cluster.storage_autoscaling_max_gb,
                storage_autoscaling_target_percent=cluster.storage_autoscaling_target_percent,
                replication_factor=cluster.default_replication_factor,
                min_insync_replicas=cluster.min_insync_replicas,
                enhanced_monitoring=cluster.enhanced_monitoring,
                subnets=broker_subnets,
                security_group=network.cluster_security_group,
                log_retention_days=config.logs.retention_days,
                retain=config.retain,
            )
            self.cluster_arn = provisioned.cluster_arn
            cluster_resource: cdk.CfnResource = provisioned.cluster
        else:
            serverless = ServerlessKafkaCluster(
                self,
                "Kafka",
                cluster_name=self.cluster_name,
                subnets=broker_subnets,
                security_group=network.cluster_security_group,
                retain=config.retain,
            )
            self.cluster_arn = serverless.cluster_arn
            cluster_resource = serverless.cluster
        self.kafka = KafkaArns.of(
            self, cluster_arn=self.cluster_arn, cluster_name=self.cluster_name
        )

        self.public_access: MskPublicAccess | None = None
        self.log_key = FabricKey(
            self,
            "CustomResourceLogKey",
            purpose="cluster custom resource logs",
            retain=config.retain,
            for_logs=True,
        )
        custom_resource_logs = encrypted_log_group(
            self,
            "CustomResourceLogs",
            key=self.log_key,
            retention_days=config.logs.retention_days,
            retain=config.retain,
        )
        if cluster.public_access:
            for cidr in cluster.public_access_cidrs:
                peer = ec2.Peer.ipv6(cidr) if ":" in cidr else ec2.Peer.ipv4(cidr)
                network.cluster_security_group.add_ingress_rule(
                    peer, ec2.Port.tcp(KAFKA_PUBLIC_IAM_PORT), "edge/HPC clients (IAM over TLS)"
                )
            self.public_access = MskPublicAccess(
                self,
                "PublicAccess",
                cluster_arn=self.cluster_arn,
                vpc=network.vpc,
                subnets=private,
                security_group=network.function_security_group,
                log_key=self.log_key,
                log_retention_days=config.logs.retention_days,
                retain=config.retain,
            )
            self.public_access.node.add_dependency(cluster_resource)

        self.brokers = BootstrapBrokers(
            self,
            "BootstrapBrokers",
            cluster_arn=self.cluster_arn,
            include_public=cluster.public_access,
            log_group=custom_resource_logs,
            vpc=network.vpc,
            subnets=private,
        )
        self.brokers.node.add_dependency(cluster_resource)
        if self.public_access is not None:
            self.brokers.node.add_dependency(self.public_access)

        cdk.CfnOutput(self, "ClusterArn", value=self.cluster_arn, description="MSK cluster ARN")
        cdk.CfnOutput(
            self,
            "BootstrapBrokersIam",
            value=self.brokers.private,
            description="Bootstrap brokers inside the VPC (SASL/IAM over TLS, port 9098)",
        )
        if cluster.public_access:
            cdk.CfnOutput(
                self,
                "BootstrapBrokersPublicIam",
                value=self.brokers.public,
                description="Public bootstrap brokers for edge/HPC clients (SASL/IAM, TLS, 9198)",
            )

    @property
    def client_bootstrap_servers(self) -> str:
        """What clients should use: the public string when public access is on."""
        return self.brokers.public or self.brokers.private

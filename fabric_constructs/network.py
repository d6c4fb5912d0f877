"""The fabric's VPC: private subnets, flow logs, VPC endpoints, security groups."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from fabric_constructs.encryption import FabricKey, encrypted_log_group

KAFKA_IAM_PORT = 9098  # IAM-authenticated TLS listener inside the VPC
KAFKA_PUBLIC_IAM_PORT = 9198  # the same listener on the brokers' public addresses

# Interface endpoints for the AWS APIs the runtime calls (IAM is global: no endpoint).
INTERFACE_ENDPOINTS = {
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Lambda": ec2.InterfaceVpcEndpointAwsService.LAMBDA_,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "Kafka": ec2.InterfaceVpcEndpointAwsService.KAFKA,
}


class FabricNetwork(Construct):
    """A new VPC (or an existing one looked up by id) with what the fabric needs in it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None,
        cidr: str,
        max_azs: int,
        nat_gateways: int,
        flow_log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        if vpc_id is not None:
            # Needs account/region on the stack and a cdk.context.json entry (see docs).
            self.vpc: ec2.IVpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
        else:
            key = FabricKey(
                self, "FlowLogKey", purpose="VPC flow logs", retain=retain, for_logs=True
            )
            flow_logs = encrypted_log_group(
                self, "FlowLogs", key=key, retention_days=flow_log_retention_days, retain=retain
            )
            self.vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(cidr),
                max_azs=max_azs,
                nat_gateways=nat_gateways,
                restrict_default_security_group=True,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                    ),
                    ec2.SubnetConfiguration(
                        name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                    ),
                ],
                flow_logs={
                    "all": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.function_security_group = ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=self.vpc,
            description="Octopus functions: reach MSK, AWS endpoints and Globus Auth (HTTPS)",
            allow_all_outbound=True,
        )
        self.cluster_security_group = ec2.SecurityGroup(
            self,
            "ClusterSecurityGroup",
            vpc=self.vpc,
            description="Octopus MSK brokers: IAM/TLS for fabric functions and ESM pollers",
            allow_all_outbound=False,
        )
        # Endpoints accept HTTPS only from the fabric's own security groups (not the whole VPC).
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Octopus VPC endpoints: HTTPS from fabric functions and ESM pollers",
            allow_all_outbound=False,
        )
        for source in (self.function_security_group, self.cluster_security_group):
            self.endpoint_security_group.add_ingress_rule(
                source, ec2.Port.tcp(443), "AWS APIs over HTTPS"
            )
        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[private]
        )
        self.vpc.add_gateway_endpoint(
            "DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[private]
        )
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=private,
                private_dns_enabled=True,
                open=False,
                security_groups=[self.endpoint_security_group],
            )
        self.cluster_security_group.add_ingress_rule(
            self.function_security_group,
            ec2.Port.tcp(KAFKA_IAM_PORT),
            "fabric functions to brokers (IAM over TLS)",
        )
        # Lambda event source mappings attach ENIs with the cluster's own security group.
        self.cluster_security_group.add_ingress_rule(
            self.cluster_security_group,
            ec2.Port.tcp(KAFKA_IAM_PORT),
            "trigger event source mappings to brokers",
        )
        self.cluster_security_group.add_egress_rule(
            self.cluster_security_group,
            ec2.Port.tcp(KAFKA_IAM_PORT),
            "event source mapping pollers to brokers",
        )
        self.cluster_security_group.add_egress_rule(
            self.endpoint_security_group,
            ec2.Port.tcp(443),
            "event source mapping pollers to AWS endpoints (STS, Lambda)",
        )

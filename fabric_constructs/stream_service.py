"""The event-stream (SSE) service: the runtime's ASGI app on ECS Fargate behind an ALB.

API Gateway buffers responses, so Server-Sent Events are served by a long-lived
container running the same code as the Lambda functions (``runtime.streams.service``).

- Image: a public Lambda Python base image (``events.base_image``); the code is the fabric's
  Lambda bundle, fetched from the CDK asset bucket at start by ``service_boot.py`` and checked
  against its asset hash. Synth needs no Docker and no network (see docs/infrastructure.md).
- ALB: HTTPS only (HTTP 80 only redirects), TLS from an ACM certificate imported by ARN,
  invalid headers dropped, access logs to an encrypted bucket, idle timeout from config,
  deletion protection in retaining stages, WAF like the REST API.
- Network: the ALB accepts 443/80 from ``events.allowed_cidrs`` only; tasks accept 8080 from
  the ALB only; tasks reach the brokers on the IAM port and HTTPS (AWS endpoints, Globus Auth).
- Task role: read-only — Kafka Connect/DescribeTopic/ReadData on this cluster's topics (no
  group rights: streams assign partitions, never join a group), registry reads, the Globus
  client secret, the code bundle object.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import region_info
from constructs import Construct

from fabric_constructs import service_boot
from fabric_constructs.encryption import encrypted_log_group
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.lambda_code import PIP_PLATFORMS, PYTHON_VERSION, bundle_hash
from fabric_constructs.network import KAFKA_IAM_PORT, FabricNetwork
from runtime.config import RuntimeSettings

CONTAINER_PORT = 8080
HEALTH_PATH = "/v1/health"
APP_FACTORY = "runtime.streams.service:create_service_app"
CODE_DIR = "/tmp/octopus/app"  # noqa: S108 - the container's own scratch space
# Where the Lambda base images keep boto3 (older images) besides site-packages.
LAMBDA_RUNTIME_DIR = "/var/runtime"
HEARTBEAT_SECONDS = 15
STREAM_READ_ACTIONS = ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData")
REGISTRY_READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
)


def uvicorn_workers(cpu_units: int) -> int:
    """One uvicorn process per vCPU of the task: a stream's reading and rendering hold its
    process's GIL, so one process uses one core however many the task has."""
    return max(1, cpu_units // 1024)


def server_command(idle_timeout_seconds: int, cpu_units: int) -> list[str]:
    """uvicorn, keeping idle connections open longer than the ALB (else sporadic 502s)."""
    return [
        "uvicorn", "--factory", APP_FACTORY, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT),  # noqa: S104
        "--timeout-keep-alive", str(idle_timeout_seconds + 5),
        "--workers", str(uvicorn_workers(cpu_units)),
    ]  # fmt: skip


class StreamService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        network: FabricNetwork,
        kafka: KafkaArns,
        settings: RuntimeSettings,
        registry_table: dynamodb.ITable,
        registry_key: kms.IKey,
        globus_secret_arn: str,
        code: s3_assets.Asset,
        base_image: str,
        certificate_arn: str,
        allowed_cidrs: tuple[str, ...],
        desired_count: int,
        cpu: int,
        memory_mib: int,
        idle_timeout_seconds: int,
        log_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        vpc = network.vpc

        # -- security groups --------------------------------------------------------------
        self.alb_security_group = ec2.SecurityGroup(
            self,
            "AlbSecurityGroup",
            vpc=vpc,
            description="Octopus event streams ALB: HTTPS (HTTP redirects) from allowed CIDRs",
            allow_all_outbound=False,
        )
        for cidr in allowed_cidrs:
            peer = ec2.Peer.ipv6(cidr) if ":" in cidr else ec2.Peer.ipv4(cidr)
            self.alb_security_group.add_ingress_rule(peer, ec2.Port.tcp(443), "event streams")
            self.alb_security_group.add_ingress_rule(peer, ec2.Port.tcp(80), "redirect to HTTPS")
        self.task_security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=vpc,
            description="Octopus event stream tasks: 8080 from the ALB; out to MSK and HTTPS",
            allow_all_outbound=False,
        )
        self.task_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "HTTPS: AWS endpoints, Globus Auth, the public image registry",
        )
        self.task_security_group.add_egress_rule(
            network.cluster_security_group,
            ec2.Port.tcp(KAFKA_IAM_PORT),
            "brokers (IAM over TLS)",
        )
        # Rules on the Network stack's groups live here (Network must not depend on Events).
        for rule_id, group, port, description in (
            ("BrokerIngress", network.cluster_security_group, KAFKA_IAM_PORT,
             "event stream tasks to brokers (IAM over TLS)"),
            ("EndpointIngress", network.endpoint_security_group, 443,
             "event stream tasks to AWS APIs"),
        ):  # fmt: skip
            ec2.CfnSecurityGroupIngress(
                self,
                rule_id,
                group_id=group.security_group_id,
                source_security_group_id=self.task_security_group.security_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=description,
            )

        # -- load balancer ----------------------------------------------------------------
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # ALB access logs support SSE-S3 only (not SSE-KMS).
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=cdk.Duration.days(log_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                )
            ],
            # Audit records: kept when the stack goes (empty it by hand to delete it).
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
            idle_timeout=cdk.Duration.seconds(idle_timeout_seconds),
            deletion_protection=retain,
            http2_enabled=True,
        )
        self._log_access(stack)
        self.load_balancer.add_redirect(
            source_protocol=elbv2.ApplicationProtocol.HTTP,
            source_port=80,
            target_protocol=elbv2.ApplicationProtocol.HTTPS,
            target_port=443,
            open=False,
        )

        # -- task -------------------------------------------------------------------------
        task_policy = iam.ManagedPolicy(
            self,
            "TaskPolicy",
            description="Octopus event streams: read topics and the registry",
            statements=[
                iam.PolicyStatement(
                    sid="ConnectToThisCluster",
                    actions=["kafka-cluster:Connect"],
                    resources=[kafka.cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadTopics", actions=list(STREAM_READ_ACTIONS), resources=[kafka.topic()]
                ),
                iam.PolicyStatement(
                    sid="ReadRegistry",
                    actions=list(REGISTRY_READ_ACTIONS),
                    resources=[registry_table.table_arn, f"{registry_table.table_arn}/index/*"],
                ),
                iam.PolicyStatement(
                    sid="RegistryEncryption",
                    actions=["kms:Decrypt", "kms:DescribeKey"],
                    resources=[registry_key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    sid="GlobusClientSecret",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[globus_secret_arn],
                ),
                iam.PolicyStatement(
                    sid="CodeBundle",
                    actions=["s3:GetObject"],
                    resources=[
                        stack.format_arn(
                            service="s3",
                            region="",
                            account="",
                            resource=code.s3_bucket_name,
                            resource_name=code.s3_object_key,
                        )
                    ],
                ),
            ],
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Octopus event streams (read only)",
            managed_policies=[task_policy],
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_role=self.task_role.without_policy_updates(),
        )
        self.log_group = encrypted_log_group(
            self, "Logs", key=log_key, retention_days=log_retention_days, retain=retain
        )
        boot_source = Path(service_boot.__file__).read_text()
        self.container = self.task_definition.add_container(
            "App",
            image=ecs.ContainerImage.from_registry(base_image),
            entry_point=["python3", "-c"],
            command=[boot_source, *server_command(idle_timeout_seconds, cpu)],
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT)],
            logging=ecs.LogDriver.aws_logs(stream_prefix="sse", log_group=self.log_group),
            environment={
                **settings.to_env(),
                "OCTOPUS_SSE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
                "OCTOPUS_CODE_BUCKET": code.s3_bucket_name,
                "OCTOPUS_CODE_KEY": code.s3_object_key,
                "OCTOPUS_CODE_OWNER": stack.account,
                "OCTOPUS_CODE_HASH": bundle_hash(),
                "OCTOPUS_CODE_PLATFORM": f"{PYTHON_VERSION}|{'|'.join(PIP_PLATFORMS)}",
                "OCTOPUS_CODE_DIR": CODE_DIR,
                "PYTHONPATH": f"{CODE_DIR}:{LAMBDA_RUNTIME_DIR}",
                "AWS_DEFAULT_REGION": stack.region,
                "POWERTOOLS_SERVICE_NAME": "octopus-streams",
            },
            stop_timeout=cdk.Duration.seconds(30),
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name=name,
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=desired_count,
            security_groups=[self.task_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            # Fetching and checking the bundle takes seconds before uvicorn listens.
            health_check_grace_period=cdk.Duration.seconds(120),
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[self.service],
            # Streams resume with Last-Event-ID: a short drain keeps deployments quick.
            deregistration_delay=cdk.Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=HEALTH_PATH,
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(15),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.listener = self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[
                acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
            ],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,
            default_target_groups=[self.target_group],
        )

    def _log_access(self, stack: cdk.Stack) -> None:
        """ALB access logs, written the way both kinds of region accept.

        ``log_access_logs`` needs a concrete region; these stacks are environment-agnostic.
        Regions opened since August 2022 deliver as the log-delivery service principal,
        older ones as a regional ELB account (a CloudFormation mapping over the known
        regions; regions without one map to this account, which grants nothing new).
        """
        prefix = "alb"
        objects = self.access_logs.arn_for_objects(f"{prefix}/AWSLogs/{stack.account}/*")
        elb_account = stack.regional_fact(region_info.FactName.ELBV2_ACCOUNT, stack.account)
        for principal in (
            iam.ServicePrincipal("logdelivery.elasticloadbalancing.amazonaws.com"),
            iam.ArnPrincipal(f"arn:{stack.partition}:iam::{elb_account}:root"),
        ):
            self.access_logs.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject"], principals=[principal], resources=[objects]
                )
            )
        self.load_balancer.set_attribute("access_logs.s3.enabled", "true")
        self.load_balancer.set_attribute("access_logs.s3.bucket", self.access_logs.bucket_name)
        self.load_balancer.set_attribute("access_logs.s3.prefix", prefix)
        # ELB checks it may write when the attribute is set.
        assert self.access_logs.policy is not None
        self.load_balancer.node.add_dependency(self.access_logs.policy)

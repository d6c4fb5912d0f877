"""What managed triggers need from the infrastructure.

- the permissions boundary every trigger role must carry: read this cluster's
  topics/groups, write the trigger log groups, send to the trigger DLQ, and the
  network-interface/cluster-describe rights an MSK event source mapping needs;
- the shared dead-letter queue (KMS, TLS only) whose key also encrypts the
  per-trigger queues ``<prefix><id>-dlq`` the API creates;
- the packaged template code (the runtime bundle, in the CDK asset bucket);
- the code bucket users upload function zips to (presigned POSTs the API signs for
  ``uploads/<caller>/<id>.zip``): private, TLS only, SSE-S3, uploads expire after a day;
- the management policy the API function gets: create/update/delete only
  functions named ``<prefix>*`` and roles under ``<role path>``, roles only with
  the boundary, PassRole only for those roles and only to Lambda; the per-trigger
  queues, log groups and webhook secrets (``<secret prefix>*``) it creates.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from fabric_constructs.encryption import FabricKey
from fabric_constructs.kafka_arns import KafkaArns
from fabric_constructs.lambda_code import fabric_asset_options

# AWS needs Resource "*" for these: ENI management by the ESM/VPC function (no
# resource-level permissions for Describe*; Create/Delete use the ESM's subnets).
ESM_NETWORK_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)


class TriggerSupport(Construct):
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
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.function_prefix = function_prefix
        self.role_path = role_path
        self.secret_prefix = secret_prefix
        self.key = FabricKey(self, "DlqKey", purpose="trigger dead-letter queue", retain=retain)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
        )
        self.template = s3_assets.Asset(self, "TemplateCode", **fabric_asset_options())  # type: ignore[arg-type]
        # Uploaded function code: a staging area (Lambda copies the zip at CreateFunction /
        # UpdateFunctionCode), so a day's lifecycle and no versions.
        self.code_bucket = s3.Bucket(
            self,
            "CodeBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireUploads",
                    prefix="uploads/",
                    expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
        )
        uploads = self.code_bucket.arn_for_objects("uploads/*")

        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/lambda/{function_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.log_group_arns = [log_groups, f"{log_groups}:*"]
        # Per-trigger dead-letter queues ``<prefix><id>-dlq`` (trigger_naming.py).
        self.trigger_queue_arns = stack.format_arn(service="sqs", resource=f"{function_prefix}*")
        # Webhook signing secrets ``octopus/triggers/<stage>/<id>`` (+ the 6 random characters
        # Secrets Manager appends, covered by the trailing "*").
        self.secret_arns = stack.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{secret_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        through_sqs = {"StringEquals": {"kms:ViaService": f"sqs.{stack.region}.amazonaws.com"}}
        self.boundary = iam.ManagedPolicy(
            self,
            "Boundary",
            description="Octopus: permissions boundary of every trigger function role",
            statements=[
                iam.PolicyStatement(
                    sid="ConnectToThisCluster",
                    actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
                    resources=[kafka.cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadTopics",
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                    resources=[kafka.topic()],
                ),
                iam.PolicyStatement(
                    sid="ConsumerGroups",
                    actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                    resources=[kafka.group()],
                ),
                iam.PolicyStatement(
                    sid="EventSourceMappingClusterLookup",
                    actions=[
                        "kafka:DescribeCluster",
                        "kafka:DescribeClusterV2",
                        "kafka:GetBootstrapBrokers",
                    ],
                    resources=[kafka.cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="TriggerLogs",
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=self.log_group_arns,
                ),
                iam.PolicyStatement(
                    sid="DeadLetters",
                    actions=["sqs:SendMessage"],
                    resources=[self.dead_letter_queue.queue_arn, self.trigger_queue_arns],
                ),
                iam.PolicyStatement(
                    sid="WebhookSecrets",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.secret_arns],
                ),
                iam.PolicyStatement(
                    sid="DeadLetterEncryption",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[self.key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="EventSourceMappingNetwork",
                    actions=list(ESM_NETWORK_ACTIONS),
                    resources=["*"],
                ),
            ],
        )

        role_arns = stack.format_arn(
            service="iam", region="", resource="role", resource_name=f"{role_path.strip('/')}/*"
        )
        function_arns = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=f"{function_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        mapping_arns = stack.format_arn(
            service="lambda",
            resource="event-source-mapping",
            resource_name="*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        only_trigger_functions = {"ArnLike": {"lambda:FunctionArn": function_arns}}
        with_boundary = {
            "StringEquals": {"iam:PermissionsBoundary": self.boundary.managed_policy_arn}
        }
        self.management_policy = iam.ManagedPolicy(
            self,
            "ManagementPolicy",
            description="Octopus API: manage trigger functions, roles and event source mappings",
            statements=[
                iam.PolicyStatement(
                    sid="TriggerFunctions",
                    actions=[
                        "lambda:CreateFunction",
                        "lambda:DeleteFunction",
                        "lambda:GetFunction",
                        "lambda:GetFunctionConfiguration",
                        "lambda:UpdateFunctionCode",
                        "lambda:UpdateFunctionConfiguration",
                        "lambda:PutFunctionConcurrency",
                        "lambda:DeleteFunctionConcurrency",
                        "lambda:TagResource",
                        "lambda:UntagResource",
                        "lambda:ListTags",
                    ],
                    resources=[function_arns],
                ),
                # CreateEventSourceMapping/ListEventSourceMappings have no resource-level
                # permission: "*" narrowed by the function the mapping invokes.
                iam.PolicyStatement(
                    sid="CreateMappingsForTriggerFunctions",
                    actions=["lambda:CreateEventSourceMapping"],
                    resources=["*"],
                    conditions=only_trigger_functions,
                ),
                iam.PolicyStatement(
                    sid="ListMappings", actions=["lambda:ListEventSourceMappings"], resources=["*"]
                ),
                iam.PolicyStatement(
                    sid="ManageMappingsOfTriggerFunctions",
                    actions=[
                        "lambda:GetEventSourceMapping",
                        "lambda:UpdateEventSourceMapping",
                        "lambda:DeleteEventSourceMapping",
                    ],
                    resources=[mapping_arns],
                    conditions=only_trigger_functions,
                ),
                iam.PolicyStatement(
                    sid="CreateRolesOnlyWithBoundary",
                    actions=["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"],
                    resources=[role_arns],
                    conditions=with_boundary,
                ),
                iam.PolicyStatement(
                    sid="ManageTriggerRoles",
                    actions=[
                        "iam:GetRole",
                        "iam:GetRolePolicy",
                        "iam:ListRolePolicies",
                        "iam:ListAttachedRolePolicies",
                        "iam:DeleteRolePolicy",
                        "iam:DetachRolePolicy",
                        "iam:DeleteRole",
                        "iam:TagRole",
                    ],
                    resources=[role_arns],
                ),
                iam.PolicyStatement(
                    sid="PassTriggerRolesToLambdaOnly",
                    actions=["iam:PassRole"],
                    resources=[role_arns],
                    conditions={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="NeverDropTheBoundary",
                    effect=iam.Effect.DENY,
                    actions=["iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"],
                    resources=[role_arns],
                ),
                iam.PolicyStatement(
                    sid="ReadTemplateCode",
                    actions=["s3:GetObject"],
                    resources=[
                        stack.format_arn(
                            service="s3",
                            region="",
                            account="",
                            resource=self.template.s3_bucket_name,
                            resource_name=self.template.s3_object_key,
                        )
                    ],
                ),
                # PutObject only so the API's presigned POSTs are valid (it never writes);
                # GetObject to check an upload, and because CreateFunction/UpdateFunctionCode
                # fetch S3 code with the caller's rights.
                iam.PolicyStatement(
                    sid="SignCodeUploads", actions=["s3:PutObject"], resources=[uploads]
                ),
                iam.PolicyStatement(
                    sid="ReadCodeUploads", actions=["s3:GetObject"], resources=[uploads]
                ),
                iam.PolicyStatement(
                    sid="TriggerLogGroups",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:PutRetentionPolicy",
                        "logs:TagResource",
                        "logs:TagLogGroup",
                        "logs:DeleteLogGroup",
                        # The dead-letter archive is written by the API (drain).
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:FilterLogEvents",
                        "logs:GetLogEvents",
                    ],
                    resources=self.log_group_arns,
                ),
                iam.PolicyStatement(
                    sid="TriggerOnFailureDestinations",
                    actions=["lambda:PutFunctionEventInvokeConfig"],
                    resources=[function_arns],
                ),
                iam.PolicyStatement(
                    sid="TriggerDeadLetterQueues",
                    actions=[
                        "sqs:CreateQueue",
                        "sqs:DeleteQueue",
                        "sqs:GetQueueUrl",
                        "sqs:GetQueueAttributes",
                        "sqs:TagQueue",
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                    ],
                    resources=[self.trigger_queue_arns],
                ),
                # The shared queue's KmsMasterKeyId is looked up once and reused per trigger.
                iam.PolicyStatement(
                    sid="SharedDeadLetterQueueLookup",
                    actions=["sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
                    resources=[self.dead_letter_queue.queue_arn],
                ),
                # SSE-KMS with this key on the per-trigger queues: creating them, and
                # receiving (draining) their messages, goes through SQS.
                iam.PolicyStatement(
                    sid="DeadLetterQueueKey",
                    actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                    conditions=through_sqs,
                ),
                iam.PolicyStatement(
                    sid="WebhookSecrets",
                    actions=[
                        "secretsmanager:CreateSecret",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:DeleteSecret",
                        "secretsmanager:TagResource",
                        "secretsmanager:DescribeSecret",
                    ],
                    resources=[self.secret_arns],
                ),
            ],
        )

"""The registry: one DynamoDB table (single-table design) for identities, namespaces,
topics, grants, key metadata and triggers. Never holds a secret."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from fabric_constructs.encryption import FabricKey

GSI_NAMES = ("gsi1", "gsi2")
TTL_ATTRIBUTE = "ttl"


class RegistryTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.key = FabricKey(self, "Key", purpose="registry table", retain=retain)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=string),
            sort_key=dynamodb.Attribute(name="sk", type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=retain,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
        )
        for name in GSI_NAMES:
            self.table.add_global_secondary_index(
                index_name=name,
                partition_key=dynamodb.Attribute(name=f"{name}pk", type=string),
                sort_key=dynamodb.Attribute(name=f"{name}sk", type=string),
                projection_type=dynamodb.ProjectionType.ALL,
            )

"""State: the registry table."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from fabric_constructs.registry_table import RegistryTable


class StateStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, retain: bool, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.registry = RegistryTable(self, "Registry", retain=retain)
        cdk.CfnOutput(self, "RegistryTableName", value=self.registry.table.table_name)

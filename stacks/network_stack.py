"""Network: the VPC, its endpoints and the security groups of functions and brokers."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from fabric_constructs.network import FabricNetwork
from stacks.config import NetworkConfig


class NetworkStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkConfig,
        retain: bool,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.network = FabricNetwork(
            self,
            "Network",
            vpc_id=network.vpc_id,
            cidr=network.cidr,
            max_azs=network.max_azs,
            nat_gateways=network.nat_gateways,
            flow_log_retention_days=network.flow_log_retention_days,
            retain=retain,
        )

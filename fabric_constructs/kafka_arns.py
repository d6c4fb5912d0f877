"""ARNs of an MSK cluster's topics, groups and transactional ids (for IAM policies).

Topic/group ARNs embed the cluster's name and UUID:
``arn:aws:kafka:REGION:ACCOUNT:topic/CLUSTER_NAME/CLUSTER_UUID/TOPIC``; the UUID is the
third ``/``-separated part of the cluster ARN, so it is read from the ARN with
``Fn::Select``/``Fn::Split`` at deploy time.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct


@dataclass(frozen=True)
class KafkaArns:
    cluster_arn: str
    cluster_name: str
    cluster_uuid: str
    _scope: Construct

    @classmethod
    def of(cls, scope: Construct, *, cluster_arn: str, cluster_name: str) -> KafkaArns:
        uuid = cdk.Fn.select(2, cdk.Fn.split("/", cluster_arn))
        return cls(cluster_arn, cluster_name, uuid, scope)

    def _arn(self, resource: str, name: str) -> str:
        return cdk.Stack.of(self._scope).format_arn(
            service="kafka",
            resource=resource,
            resource_name=f"{self.cluster_name}/{self.cluster_uuid}/{name}",
        )

    def topic(self, name: str = "*") -> str:
        return self._arn("topic", name)

    def group(self, name: str = "*") -> str:
        return self._arn("group", name)

    def transactional_id(self, name: str = "*") -> str:
        return self._arn("transactional-id", name)

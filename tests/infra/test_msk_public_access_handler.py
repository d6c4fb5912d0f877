"""The public-access custom resource handler, against botocore's Stubber (no AWS)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from runtime.handlers import msk_public_access as handler

pytestmark = pytest.mark.infra

ARN = "arn:aws:kafka:eu-west-1:123456789012:cluster/octopus-staging/1111-2222-3333-4444-5555-2"


def _info(state: str, access: str, version: str = "K1") -> dict[str, Any]:
    return {
        "ClusterInfo": {
            "ClusterArn": ARN,
            "State": state,
            "CurrentVersion": version,
            "Provisioned": {
                "BrokerNodeGroupInfo": {
                    "ClientSubnets": ["subnet-1"],
                    "InstanceType": "kafka.t3.small",
                    "ConnectivityInfo": {"PublicAccess": {"Type": access}},
                },
                "NumberOfBrokerNodes": 2,
            },
        }
    }


def _event(kind: str, enabled: str = "true") -> dict[str, Any]:
    return {"RequestType": kind, "ResourceProperties": {"ClusterArn": ARN, "Enabled": enabled}}


@pytest.fixture
def kafka() -> Any:
    return boto3.client(
        "kafka", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_create_waits_for_active_then_updates_with_the_current_version(kafka: Any) -> None:
    sleeps: list[float] = []
    with Stubber(kafka) as stub:
        stub.add_response("describe_cluster_v2", _info("UPDATING", "DISABLED"), {"ClusterArn": ARN})
        stub.add_response(
            "describe_cluster_v2", _info("ACTIVE", "DISABLED", "K7"), {"ClusterArn": ARN}
        )
        stub.add_response(
            "update_connectivity",
            {"ClusterArn": ARN, "ClusterOperationArn": "op"},
            {
                "ClusterArn": ARN,
                "CurrentVersion": "K7",
                "ConnectivityInfo": {"PublicAccess": {"Type": "SERVICE_PROVIDED_EIPS"}},
            },
        )
        result = handler.on_event(
            _event("Create"), kafka=kafka, sleep=sleeps.append, clock=lambda: 0.0
        )
        stub.assert_no_pending_responses()
    assert sleeps == [5.0]
    assert result["PhysicalResourceId"] == f"{ARN}/public-access"


def test_conflicts_are_retried_with_backoff(kafka: Any) -> None:
    sleeps: list[float] = []
    with Stubber(kafka) as stub:
        for _ in range(2):
            stub.add_response(
                "describe_cluster_v2", _info("ACTIVE", "DISABLED"), {"ClusterArn": ARN}
            )
            stub.add_client_error("update_connectivity", "ConflictException")
        stub.add_response("describe_cluster_v2", _info("ACTIVE", "DISABLED"), {"ClusterArn": ARN})
        stub.add_response("update_connectivity", {"ClusterArn": ARN, "ClusterOperationArn": "op"})
        handler.on_event(_event("Create"), kafka=kafka, sleep=sleeps.append, clock=lambda: 0.0)
    assert sleeps == [5.0, 10.0]


def test_is_complete_only_when_active_with_the_wanted_setting(kafka: Any) -> None:
    with Stubber(kafka) as stub:
        stub.add_response(
            "describe_cluster_v2", _info("UPDATING", "SERVICE_PROVIDED_EIPS"), {"ClusterArn": ARN}
        )
        stub.add_response(
            "describe_cluster_v2", _info("ACTIVE", "SERVICE_PROVIDED_EIPS"), {"ClusterArn": ARN}
        )
        assert handler.is_complete(_event("Create"), kafka=kafka) == {"IsComplete": False}
        assert handler.is_complete(_event("Create"), kafka=kafka) == {"IsComplete": True}


def test_delete_turns_public_access_off_and_tolerates_a_deleted_cluster(kafka: Any) -> None:
    with Stubber(kafka) as stub:
        stub.add_client_error("describe_cluster_v2", "NotFoundException", http_status_code=404)
        stub.add_client_error("describe_cluster_v2", "NotFoundException", http_status_code=404)
        assert handler.on_event(_event("Delete"), kafka=kafka)["Data"] == {
            "PublicAccess": "DISABLED"
        }
        assert handler.is_complete(_event("Delete"), kafka=kafka) == {"IsComplete": True}


def test_a_cluster_that_never_becomes_active_fails_the_deployment(kafka: Any) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with Stubber(kafka) as stub:
        for _ in range(40):
            stub.add_response(
                "describe_cluster_v2", _info("UPDATING", "DISABLED"), {"ClusterArn": ARN}
            )
        with pytest.raises(TimeoutError, match="stayed UPDATING"):
            handler.on_event(_event("Update"), kafka=kafka, sleep=sleep, clock=lambda: now[0])

"""Custom resource: turn public access (IAM on port 9198) on or off for an MSK cluster.

MSK only allows public access on an existing provisioned cluster, so the CDK app
creates the cluster with it off and this resource switches it afterwards. It is
driven by the CDK Provider framework: ``on_event`` starts the change (waiting,
with backoff, for the cluster to be ACTIVE and retrying on conflicts) and
``is_complete`` is polled until the cluster is ACTIVE with the wanted setting.
The whole resource has CloudFormation's one-hour limit; an update typically
takes 20-35 minutes.

Resource properties: ``ClusterArn`` and ``Enabled`` ("true"/"false").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOGGER = logging.getLogger(__name__)
PUBLIC = "SERVICE_PROVIDED_EIPS"
PRIVATE = "DISABLED"
# on_event runs in a Lambda with a 14-minute timeout: stay well inside it.
WAIT_FOR_ACTIVE_SECONDS = 600
RETRYABLE = {"ConflictException", "BadRequestException", "TooManyRequestsException"}

Event = dict[str, Any]


def _kafka() -> Any:
    return boto3.client("kafka")


def _desired(event: Event) -> str:
    if event["RequestType"] == "Delete":
        return PRIVATE
    enabled = str(event["ResourceProperties"].get("Enabled", "false")).lower() == "true"
    return PUBLIC if enabled else PRIVATE


def _describe(kafka: Any, cluster_arn: str) -> dict[str, Any] | None:
    """The cluster's info, or None if it no longer exists."""
    try:
        info: dict[str, Any] = kafka.describe_cluster_v2(ClusterArn=cluster_arn)["ClusterInfo"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "NotFoundException":
            return None
        raise
    return info


def _public_access_type(info: dict[str, Any]) -> str:
    provisioned = info.get("Provisioned", {})
    connectivity = provisioned.get("BrokerNodeGroupInfo", {}).get("ConnectivityInfo", {})
    return str(connectivity.get("PublicAccess", {}).get("Type", PRIVATE))


def on_event(
    event: Event,
    _context: object = None,
    *,
    kafka: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Event:
    kafka = kafka or _kafka()
    cluster_arn = event["ResourceProperties"]["ClusterArn"]
    desired = _desired(event)
    result = {
        "PhysicalResourceId": f"{cluster_arn}/public-access",
        "Data": {"PublicAccess": desired},
    }
    deadline = clock() + WAIT_FOR_ACTIVE_SECONDS
    delay = 5.0
    while True:
        info = _describe(kafka, cluster_arn)
        if info is None:
            if event["RequestType"] == "Delete":
                return result  # the cluster is gone: nothing to turn off
            raise RuntimeError(f"cluster {cluster_arn} does not exist")
        if _public_access_type(info) == desired:
            return result
        if info["State"] == "ACTIVE":
            try:
                kafka.update_connectivity(
                    ClusterArn=cluster_arn,
                    CurrentVersion=info["CurrentVersion"],
                    ConnectivityInfo={"PublicAccess": {"Type": desired}},
                )
                LOGGER.info("public access of %s -> %s requested", cluster_arn, desired)
                return result
            except ClientError as error:
                if error.response["Error"]["Code"] not in RETRYABLE:
                    raise
                LOGGER.info("update_connectivity deferred: %s", error)
        if clock() + delay > deadline:
            raise TimeoutError(
                f"cluster {cluster_arn} stayed {info['State']} for {WAIT_FOR_ACTIVE_SECONDS}s; "
                "public access was not changed"
            )
        sleep(delay)
        delay = min(delay * 2, 60.0)


def is_complete(event: Event, _context: object = None, *, kafka: Any = None) -> Event:
    kafka = kafka or _kafka()
    cluster_arn = event["ResourceProperties"]["ClusterArn"]
    info = _describe(kafka, cluster_arn)
    if info is None:
        return {"IsComplete": event["RequestType"] == "Delete"}
    if info["State"] == "FAILED":
        raise RuntimeError(f"cluster {cluster_arn} is FAILED after the connectivity update")
    done = info["State"] == "ACTIVE" and _public_access_type(info) == _desired(event)
    return {"IsComplete": done}

"""Fixtures for the registry contract: one suite, run against SQLite and DynamoDB (moto)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from runtime.adapters.aws.dynamodb_registry import DynamoDbRegistry
from runtime.adapters.local.sqlite_registry import SqliteRegistry
from runtime.domain.ports import Registry

TABLE_NAME = "octopus-registry-test"
KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")


def create_registry_table(client: Any, table_name: str = TABLE_NAME) -> None:
    """The table exactly as the infrastructure defines it."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in KEY_ATTRIBUTES
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": f"{index}pk", "KeyType": "HASH"},
                    {"AttributeName": f"{index}sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in ("gsi1", "gsi2")
        ],
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )


@contextmanager
def moto_requests_atomic() -> Iterator[None]:
    """Make each moto DynamoDB request atomic, as each real DynamoDB request is.

    moto 5.2.5 has no lock around its DynamoDB backend: TransactWriteItems
    deep-copies the table, applies its actions and, when one fails, puts the old
    copy back, so a concurrent request's committed write can vanish, and a
    conditional check and its write can interleave with another request.
    DynamoDB itself serializes each request (and transactions are ACID); this
    lock restores that per-request atomicity. Requests from different threads
    still interleave freely between requests, which is what the registry's
    concurrency tests exercise.
    """
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def dynamodb_client() -> Iterator[Any]:
    """A moto DynamoDB client, started once per module (starting moto is the slow part)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            env.setenv(name, value)
        with mock_aws(), moto_requests_atomic():
            yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def dynamodb_table(dynamodb_client: Any) -> Iterator[str]:
    """A fresh registry table for one test."""
    table_name = f"{TABLE_NAME}-{uuid.uuid4().hex[:8]}"
    create_registry_table(dynamodb_client, table_name)
    yield table_name
    dynamodb_client.delete_table(TableName=table_name)


def _both_implement_the_port(sqlite: SqliteRegistry, dynamodb: DynamoDbRegistry) -> list[Registry]:
    # Checked by mypy: each adapter must match the Registry Protocol exactly.
    return [sqlite, dynamodb]


@pytest.fixture(params=["sqlite", "dynamodb"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A fresh, empty registry of each kind."""
    if request.param == "sqlite":
        sqlite_registry = SqliteRegistry(tmp_path / "registry.db")
        yield sqlite_registry
        sqlite_registry.close()
    else:
        table_name = request.getfixturevalue("dynamodb_table")
        yield DynamoDbRegistry(table_name, request.getfixturevalue("dynamodb_client"))

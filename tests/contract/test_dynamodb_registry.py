"""What only the DynamoDB adapter must handle: the table layout, partial failures, contention."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from runtime.adapters.aws.dynamodb_registry import DynamoDbRegistry
from runtime.domain.errors import NotFound
from runtime.domain.models import GrantKind, Usage
from tests.contract.conftest import KEY_ATTRIBUTES
from tests.contract.helpers import (
    ALICE,
    BIG,
    BOB,
    add_topic,
    consumer,
    default_ns,
    idempotency_record,
    register,
    topic_grant,
)


@pytest.fixture
def dynamodb(dynamodb_client: Any, dynamodb_table: str) -> DynamoDbRegistry:
    return DynamoDbRegistry(dynamodb_table, dynamodb_client)


def scan(registry: DynamoDbRegistry, client: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.scan(TableName=registry.table_name)["Items"]
    return items


def test_items_fit_the_fixed_table_schema(dynamodb: DynamoDbRegistry, dynamodb_client: Any):
    register(dynamodb, ALICE)
    register(dynamodb, BOB)
    add_topic(dynamodb, default_ns(ALICE), "a.b", ALICE)
    dynamodb.put_grant(topic_grant(default_ns(ALICE), "a.b", BOB, ALICE), limit=BIG)
    dynamodb.put_idempotency(idempotency_record("k", 60))
    dynamodb.put_consumer_instance(consumer())

    items = scan(dynamodb, dynamodb_client)
    for item in items:
        for name in KEY_ATTRIBUTES:
            if name in item:
                assert set(item[name]) == {"S"} and item[name]["S"]
    pks = sorted(item["pk"]["S"] for item in items)
    assert f"KAFKA#{default_ns(ALICE)}_a_b" in pks
    expiring = [item for item in items if item["pk"]["S"].startswith(("IDEM#", "GROUP#"))]
    assert len(expiring) == 2
    assert all(int(item["ttl"]["N"]) > 1_700_000_000 for item in expiring)


def test_an_interrupted_topic_delete_leaves_no_grant_without_its_topic(
    dynamodb: DynamoDbRegistry, monkeypatch: pytest.MonkeyPatch
):
    register(dynamodb, ALICE)
    ns = default_ns(ALICE)
    add_topic(dynamodb, ns, "t", ALICE)
    grantees = [f"user-{i:03d}" for i in range(60)]  # two chunks of at most 45
    for grantee in grantees:
        dynamodb.put_grant(topic_grant(ns, "t", grantee, ALICE), limit=BIG)

    # The process dies after the first chunk of grants is gone.
    real_transact = dynamodb._transact
    calls = {"n": 0}

    def dying_transact(actions: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("crash")
        real_transact(actions)

    monkeypatch.setattr(dynamodb, "_transact", dying_transact)
    with pytest.raises(SystemExit):
        dynamodb.delete_topic(ns, "t")
    monkeypatch.setattr(dynamodb, "_transact", real_transact)

    left = dynamodb.list_grants(ns)
    assert 0 < len(left) < 60
    assert dynamodb.get_topic(ns, "t") is not None  # every visible grant still has its topic
    assert dynamodb.get_usage(ALICE).grants == len(left)  # and counters are exact
    with pytest.raises(NotFound):  # no grant can be added to a topic being deleted
        dynamodb.put_grant(topic_grant(ns, "t", "late", ALICE), limit=BIG)

    removed = dynamodb.delete_topic(ns, "t")  # a retry finishes the job
    assert sorted(g.grantee for g in removed) == sorted(g.grantee for g in left)
    assert dynamodb.get_topic(ns, "t") is None
    assert dynamodb.list_grants(ns) == []
    assert dynamodb.get_usage(ALICE) == Usage(namespaces=1)


def test_stale_index_entries_are_not_shown(
    dynamodb: DynamoDbRegistry, monkeypatch: pytest.MonkeyPatch
):
    """GSIs are eventually consistent: a grant just deleted may still be in gsi1."""
    register(dynamodb, ALICE)
    ns = default_ns(ALICE)
    add_topic(dynamodb, ns, "t", ALICE)
    dynamodb.put_grant(topic_grant(ns, "t", BOB, ALICE), limit=BIG)
    stale = list(dynamodb._query_index("gsi1", f"GRANTEE#{BOB}", "GRANT#"))
    dynamodb.delete_grant(ns, GrantKind.TOPIC, "t", BOB)

    monkeypatch.setattr(dynamodb, "_query_index", lambda *args, **kwargs: iter(stale))
    assert dynamodb.list_grants_for_grantee(BOB) == []


def test_transaction_conflicts_are_retried(
    dynamodb: DynamoDbRegistry, dynamodb_client: Any, monkeypatch: pytest.MonkeyPatch
):
    register(dynamodb, ALICE)
    real = dynamodb_client.transact_write_items
    failures = {"left": 2}

    def contended(**kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(dynamodb_client, "transact_write_items", contended)
    add_topic(dynamodb, default_ns(ALICE), "t", ALICE)

    assert failures["left"] == 0
    assert dynamodb.get_usage(ALICE).topics == 1

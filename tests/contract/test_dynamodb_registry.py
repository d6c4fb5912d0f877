"""What only the DynamoDB adapter must handle: the table layout, partial failures, contention."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from runtime.adapters.aws.dynamodb_registry import TOPIC_INDEX_MARKER, DynamoDbRegistry
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
    make_trigger,
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
    dynamodb.create_trigger(make_trigger("trg", BOB, default_ns(ALICE), "a.b"), limit=BIG)
    dynamodb.list_triggers_on_topic(default_ns(ALICE), "a.b")

    items = scan(dynamodb, dynamodb_client)
    for item in items:
        for name in KEY_ATTRIBUTES:
            if name in item:
                assert set(item[name]) == {"S"} and item[name]["S"]
    pks = sorted(item["pk"]["S"] for item in items)
    assert f"KAFKA#{default_ns(ALICE)}_a_b" in pks
    assert f"TOPIC#{default_ns(ALICE)}#a.b" in pks
    assert TOPIC_INDEX_MARKER["pk"] in pks
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


def topic_entries(registry: DynamoDbRegistry, client: Any) -> list[tuple[str, str]]:
    """The topic index's entries: (partition, trigger id)."""
    return sorted(
        (item["pk"]["S"], item["trigger_id"]["S"])
        for item in scan(registry, client)
        if item["pk"]["S"].startswith("TOPIC#")
    )


def forget_the_topic_index(registry: DynamoDbRegistry, client: Any) -> None:
    """Make the table look as one written before the topic index existed."""
    for item in scan(registry, client):
        if item["pk"]["S"].startswith(("TOPIC#", "META#")):
            client.delete_item(
                TableName=registry.table_name, Key={"pk": item["pk"], "sk": item["sk"]}
            )


def test_topic_index_entries_come_and_go_with_their_triggers(
    dynamodb: DynamoDbRegistry, dynamodb_client: Any
):
    register(dynamodb, ALICE)
    register(dynamodb, BOB)
    dynamodb.create_trigger(make_trigger("t1", ALICE, "ns", "a.b"), limit=BIG)
    dynamodb.create_trigger(make_trigger("t2", BOB, "ns", "a.b"), limit=BIG)
    assert topic_entries(dynamodb, dynamodb_client) == [
        ("TOPIC#ns#a.b", "t1"),
        ("TOPIC#ns#a.b", "t2"),
    ]

    moving = dynamodb.get_trigger("t2")
    dynamodb.update_trigger(moving.model_copy(update={"topic": "a.c"}), expected_version=0)
    assert topic_entries(dynamodb, dynamodb_client) == [
        ("TOPIC#ns#a.b", "t1"),
        ("TOPIC#ns#a.c", "t2"),
    ]

    dynamodb.delete_trigger("t1")
    dynamodb.delete_trigger("t2")
    assert topic_entries(dynamodb, dynamodb_client) == []
    assert dynamodb.get_usage(ALICE).triggers == dynamodb.get_usage(BOB).triggers == 0


def test_triggers_from_before_the_topic_index_are_indexed_by_the_first_lookup(
    dynamodb: DynamoDbRegistry, dynamodb_client: Any, monkeypatch: pytest.MonkeyPatch
):
    register(dynamodb, ALICE)
    register(dynamodb, BOB)
    old = [make_trigger(f"old-{i:02d}", (ALICE, BOB)[i % 2], "ns", "t") for i in range(50)]
    for trigger in old:  # more than one backfill transaction holds
        dynamodb.create_trigger(trigger, limit=BIG)
    dynamodb.create_trigger(make_trigger("other", ALICE, "ns", "u"), limit=BIG)
    forget_the_topic_index(dynamodb, dynamodb_client)
    # A trigger deleted after the backfill read it gets no entry.
    read_before_delete = list(dynamodb.iter_all_triggers())
    dynamodb.delete_trigger("old-07")
    monkeypatch.setattr(dynamodb, "iter_all_triggers", lambda: iter(read_before_delete))

    assert dynamodb.list_triggers_on_topic("ns", "t") == old  # answered from the full pass

    assert ("TOPIC#ns#t", "old-07") not in topic_entries(dynamodb, dynamodb_client)
    assert len(topic_entries(dynamodb, dynamodb_client)) == 50  # 49 on t, 1 on u
    assert dynamodb._get(TOPIC_INDEX_MARKER) is not None

    def no_full_pass() -> Any:
        raise AssertionError("a lookup by topic went over every trigger")

    monkeypatch.setattr(dynamodb, "iter_all_triggers", no_full_pass)
    assert dynamodb.list_triggers_on_topic("ns", "t") == [
        t for t in old if t.trigger_id != "old-07"
    ]
    assert [t.trigger_id for t in dynamodb.list_triggers_on_topic("ns", "u")] == ["other"]


def test_topic_lookup_reads_every_page_of_the_index(
    dynamodb: DynamoDbRegistry, dynamodb_client: Any, monkeypatch: pytest.MonkeyPatch
):
    register(dynamodb, ALICE)
    dynamodb.list_triggers_on_topic("ns", "t")  # the index is in use from here on
    made = [make_trigger(f"t{i:02d}", ALICE, "ns", "t") for i in range(20)]
    for trigger in made:
        dynamodb.create_trigger(trigger, limit=BIG)
    real_query = dynamodb_client.query
    pages = {"n": 0}

    def small_pages(**params: Any) -> Any:
        pages["n"] += 1
        return real_query(**{**params, "Limit": 7})  # DynamoDB stops at 1 MB; moto never does

    monkeypatch.setattr(dynamodb_client, "query", small_pages)
    assert dynamodb.list_triggers_on_topic("ns", "t") == made
    assert pages["n"] == 3

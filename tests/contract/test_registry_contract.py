"""The Registry contract, run against every adapter (SQLite and DynamoDB under moto).

Each test gets an empty registry of one kind from the ``registry`` fixture.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.domain.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FabricError,
    NotFound,
    QuotaExceeded,
)
from runtime.domain.models import (
    Access,
    GrantKind,
    Namespace,
    Topic,
    TopicState,
    TriggerState,
    Usage,
)
from tests.contract.helpers import (
    ALICE,
    BIG,
    BOB,
    CAROL,
    add_topic,
    all_topics,
    assert_quota,
    consumer,
    default_ns,
    idempotency_record,
    make_key,
    make_topic,
    make_trigger,
    prefix_grant,
    register,
    run_concurrently,
    topic_grant,
)

# -- identities -------------------------------------------------------------------------


def test_ensure_identity_stores_identity_and_default_namespace(registry):
    identity = register(registry, ALICE, "alice@example.org")

    assert registry.get_identity(ALICE) == identity
    default = registry.get_namespace(default_ns(ALICE))
    assert (default.name, default.owner, default.is_default) == (default_ns(ALICE), ALICE, True)
    assert [ns.name for ns in registry.list_namespaces(ALICE)] == [default_ns(ALICE)]
    assert registry.get_usage(ALICE) == Usage(namespaces=1)


def test_ensure_identity_returns_the_first_stored_identity(registry):
    first = register(registry, ALICE, "alice@example.org")
    again = register(registry, ALICE, "renamed@example.org")

    assert again == first
    assert again.username == "alice@example.org"
    assert registry.get_usage(ALICE).namespaces == 1


def test_ensure_identity_refuses_a_default_namespace_held_by_another(registry):
    register(registry, BOB)
    registry.create_namespace(Namespace(name=default_ns(ALICE), owner=BOB), limit=BIG)

    with pytest.raises(AlreadyExists):
        register(registry, ALICE)
    assert registry.get_identity(ALICE) is None


def test_unknown_identity_has_no_record_and_zero_usage(registry):
    assert registry.get_identity("nobody") is None
    assert registry.get_usage("nobody") == Usage()


def test_concurrent_ensure_identity_registers_once(registry):
    results = run_concurrently(12, lambda i: register(registry, ALICE, f"user{i}"))

    assert all(result == results[0] for result in results)
    assert registry.get_identity(ALICE) == results[0]
    assert registry.get_usage(ALICE).namespaces == 1


# -- namespaces ---------------------------------------------------------------------------


def test_namespace_round_trip_and_listing_sorted_by_name(registry):
    register(registry, ALICE)
    register(registry, BOB)
    created = [Namespace(name=name, owner=ALICE) for name in ("zeta", "alpha", "mid")]
    for namespace in created:
        registry.create_namespace(namespace, limit=BIG)
    registry.create_namespace(Namespace(name="bobs", owner=BOB), limit=BIG)

    assert registry.get_namespace("alpha") == created[1]
    assert registry.get_namespace("missing") is None
    assert [ns.name for ns in registry.list_namespaces(ALICE)] == [
        "alpha",
        "mid",
        default_ns(ALICE),
        "zeta",
    ]
    assert registry.get_usage(ALICE).namespaces == 4


def test_namespaces_are_first_come_first_served(registry):
    register(registry, ALICE)
    register(registry, BOB)
    registry.create_namespace(Namespace(name="shared", owner=ALICE), limit=BIG)

    with pytest.raises(AlreadyExists):
        registry.create_namespace(Namespace(name="shared", owner=BOB), limit=BIG)
    assert registry.get_namespace("shared").owner == ALICE
    assert registry.get_usage(BOB).namespaces == 1


def test_namespace_quota_is_exact_and_named(registry):
    register(registry, ALICE)  # the default namespace counts: 1 of 3
    registry.create_namespace(Namespace(name="two", owner=ALICE), limit=3)
    registry.create_namespace(Namespace(name="three", owner=ALICE), limit=3)

    with pytest.raises(QuotaExceeded) as error:
        registry.create_namespace(Namespace(name="four", owner=ALICE), limit=3)
    assert_quota(error, "namespaces_per_identity", 3)
    assert registry.get_namespace("four") is None
    assert registry.get_usage(ALICE).namespaces == 3


def test_create_namespace_for_unknown_identity_is_not_found(registry):
    with pytest.raises(NotFound):
        registry.create_namespace(Namespace(name="orphan", owner="nobody"), limit=BIG)
    assert registry.get_namespace("orphan") is None


def test_delete_namespace_only_when_empty(registry):
    register(registry, ALICE)
    register(registry, BOB)
    registry.create_namespace(Namespace(name="lab", owner=ALICE), limit=BIG)
    add_topic(registry, "lab", "events", ALICE)
    registry.put_grant(prefix_grant("lab", "", BOB, ALICE), limit=BIG)

    with pytest.raises(Conflict):
        registry.delete_namespace("lab")
    registry.delete_topic("lab", "events")
    registry.delete_namespace("lab")

    assert registry.get_namespace("lab") is None
    assert registry.list_grants("lab") == []
    assert registry.list_grants_for_grantee(BOB) == []
    assert registry.get_usage(ALICE) == Usage(namespaces=1)
    with pytest.raises(NotFound):
        registry.delete_namespace("lab")
    # The name is free again, for anyone.
    registry.create_namespace(Namespace(name="lab", owner=BOB), limit=BIG)
    assert registry.get_namespace("lab").owner == BOB


def test_concurrent_namespace_claims_have_one_winner(registry):
    subs = [f"sub-{i:04d}-0000-0000-0000-{i:012d}" for i in range(16)]
    for sub in subs:
        register(registry, sub)

    def claim(i: int) -> bool:
        try:
            registry.create_namespace(Namespace(name="prize", owner=subs[i]), limit=BIG)
        except AlreadyExists:
            return False
        return True

    outcomes = run_concurrently(len(subs), claim)

    assert outcomes.count(True) == 1
    winner = subs[outcomes.index(True)]
    assert registry.get_namespace("prize").owner == winner
    assert sum(registry.get_usage(sub).namespaces for sub in subs) == len(subs) + 1


# -- topics -------------------------------------------------------------------------------


def test_topic_round_trips_exactly(registry):
    register(registry, ALICE)
    topic = make_topic(
        default_ns(ALICE),
        "sensors.temp",
        ALICE,
        partitions=3,
        configs={"retention.ms": "3600000", "cleanup.policy": "compact"},
        created_at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        updated_at=datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC),
    )
    registry.create_topic(topic, topic_limit=BIG, partition_limit=BIG)

    stored = registry.get_topic(default_ns(ALICE), "sensors.temp")
    assert stored == topic
    assert stored.state is TopicState.CREATING
    assert registry.get_topic(default_ns(ALICE), "missing") is None
    assert registry.get_usage(ALICE) == Usage(namespaces=1, topics=1, partitions=3)


def test_create_topic_needs_its_namespace(registry):
    register(registry, ALICE)
    with pytest.raises(NotFound):
        registry.create_topic(make_topic("nowhere", "t", ALICE), topic_limit=5, partition_limit=5)
    assert registry.get_usage(ALICE).topics == 0


def test_duplicate_and_kafka_colliding_topics_are_refused(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "a.b_c", ALICE)

    with pytest.raises(AlreadyExists):
        add_topic(registry, ns, "a.b_c", ALICE)
    for colliding in ("a_b_c", "a.b.c", "a_b.c"):
        with pytest.raises(AlreadyExists, match="collides"):
            add_topic(registry, ns, colliding, ALICE)
    assert [t.name for t in all_topics(registry, ns)] == ["a.b_c"]
    assert registry.get_usage(ALICE).topics == 1

    registry.delete_topic(ns, "a.b_c")
    add_topic(registry, ns, "a_b_c", ALICE)  # free once the other is gone
    assert registry.get_topic(ns, "a_b_c") is not None


def test_topic_and_partition_quotas_are_exact_and_named(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    for i in range(3):
        registry.create_topic(make_topic(ns, f"t{i}", ALICE, 2), topic_limit=3, partition_limit=10)

    with pytest.raises(QuotaExceeded) as topics_error:
        registry.create_topic(make_topic(ns, "t3", ALICE, 1), topic_limit=3, partition_limit=10)
    assert_quota(topics_error, "topics_per_identity", 3)

    # 6 of 10 partitions used: 4 more fit exactly, 5 do not.
    with pytest.raises(QuotaExceeded) as partitions_error:
        registry.create_topic(make_topic(ns, "big", ALICE, 5), topic_limit=9, partition_limit=10)
    assert_quota(partitions_error, "partitions_per_identity", 10)
    registry.create_topic(make_topic(ns, "fits", ALICE, 4), topic_limit=9, partition_limit=10)

    assert registry.get_topic(ns, "t3") is None
    assert registry.get_topic(ns, "big") is None
    assert registry.get_usage(ALICE) == Usage(namespaces=1, topics=4, partitions=10)


def test_list_topics_pages_through_a_prefix_in_name_order(registry):
    register(registry, ALICE)
    register(registry, BOB)
    ns = default_ns(ALICE)
    names = [f"sensors.s{i:02d}" for i in range(13)] + ["alpha", "sensorsx", "zulu", "sensors"]
    for name in names:
        add_topic(registry, ns, name, ALICE)
    add_topic(registry, default_ns(BOB), "sensors.other", BOB)

    first = registry.list_topics(ns, prefix="sensors.", limit=5)
    assert [t.name for t in first.items] == [f"sensors.s{i:02d}" for i in range(5)]
    assert first.next_cursor is not None
    paged = all_topics(registry, ns, prefix="sensors.", page=5)
    assert [t.name for t in paged] == [f"sensors.s{i:02d}" for i in range(13)]
    assert [t.name for t in all_topics(registry, ns, page=4)] == sorted(names)
    # A page that ends exactly at the end says there is no more.
    exact = registry.list_topics(ns, prefix="sensors.s1", limit=3)
    assert [t.name for t in exact.items] == ["sensors.s10", "sensors.s11", "sensors.s12"]
    assert exact.next_cursor is None
    assert registry.list_topics(ns, prefix="nothing").items == []
    assert registry.list_topics("empty-namespace").items == []


def test_tampered_or_foreign_cursors_are_bad_requests(registry):
    register(registry, ALICE)
    register(registry, BOB)
    ns = default_ns(ALICE)
    for i in range(4):
        add_topic(registry, ns, f"s.t{i}", ALICE)
    cursor = registry.list_topics(ns, prefix="s.", limit=2).next_cursor
    assert cursor is not None

    document = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    document["after"]["name"] = "outside-the-prefix"
    tampered = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    document["after"] = {"pk": "IDENTITY#x", "sk": "IDENTITY"}
    foreign_key = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()

    for bad in ("garbage!!", "e30", cursor[:-3], tampered, foreign_key, "x" * 10_000):
        with pytest.raises(BadRequest):
            registry.list_topics(ns, prefix="s.", cursor=bad, limit=2)
    with pytest.raises(BadRequest):  # made for another namespace
        registry.list_topics(default_ns(BOB), prefix="s.", cursor=cursor, limit=2)
    with pytest.raises(BadRequest):  # made for another prefix
        registry.list_topics(ns, prefix="s.t", cursor=cursor, limit=2)
    with pytest.raises(BadRequest):
        registry.list_topics(ns, limit=0)
    assert [t.name for t in registry.list_topics(ns, prefix="s.", cursor=cursor).items] == [
        "s.t2",
        "s.t3",
    ]


def test_iter_all_topics_covers_every_namespace(registry):
    register(registry, ALICE)
    register(registry, BOB)
    add_topic(registry, default_ns(ALICE), "one", ALICE)
    add_topic(registry, default_ns(ALICE), "two", ALICE)
    add_topic(registry, default_ns(BOB), "three", BOB)

    found = {(t.namespace, t.name) for t in registry.iter_all_topics()}
    assert found == {
        (default_ns(ALICE), "one"),
        (default_ns(ALICE), "two"),
        (default_ns(BOB), "three"),
    }


def test_update_topic_bumps_version_and_refuses_stale_versions(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    topic = add_topic(registry, ns, "events", ALICE, partitions=2)

    active = topic.model_copy(update={"state": TopicState.ACTIVE, "configs": {"retention.ms": "1"}})
    updated = registry.update_topic(active, expected_version=0, partition_limit=BIG)
    assert updated.version == 1
    assert registry.get_topic(ns, "events") == updated

    with pytest.raises(Conflict):
        registry.update_topic(active, expected_version=0, partition_limit=BIG)
    with pytest.raises(NotFound):
        registry.update_topic(
            make_topic(ns, "missing", ALICE), expected_version=0, partition_limit=BIG
        )
    assert registry.get_topic(ns, "events").version == 1


def test_update_topic_partitions_follow_the_partition_quota(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    topic = add_topic(registry, ns, "events", ALICE, partitions=2)
    add_topic(registry, ns, "other", ALICE, partitions=3)

    grown = registry.update_topic(
        topic.model_copy(update={"partitions": 7}), expected_version=0, partition_limit=10
    )
    assert registry.get_usage(ALICE).partitions == 10
    with pytest.raises(QuotaExceeded) as error:
        registry.update_topic(
            grown.model_copy(update={"partitions": 8}), expected_version=1, partition_limit=10
        )
    assert_quota(error, "partitions_per_identity", 10)
    assert registry.get_topic(ns, "events").partitions == 7

    registry.update_topic(
        grown.model_copy(update={"partitions": 1}), expected_version=1, partition_limit=10
    )
    assert registry.get_usage(ALICE).partitions == 4


def test_delete_topic_removes_its_grants_and_frees_usage(registry):
    register(registry, ALICE)
    register(registry, BOB)
    register(registry, CAROL)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "events", ALICE, partitions=4)
    add_topic(registry, ns, "kept", ALICE, partitions=1)
    given = [
        registry.put_grant(topic_grant(ns, "events", BOB, ALICE), limit=BIG),
        registry.put_grant(topic_grant(ns, "events", CAROL, ALICE, Access.WRITE), limit=BIG),
    ]
    registry.put_grant(topic_grant(ns, "kept", BOB, ALICE), limit=BIG)
    registry.put_grant(prefix_grant(ns, "events", CAROL, ALICE), limit=BIG)

    removed = registry.delete_topic(ns, "events")

    assert sorted(removed, key=lambda g: g.grantee) == sorted(given, key=lambda g: g.grantee)
    assert registry.get_topic(ns, "events") is None
    assert [g.target for g in registry.list_grants(ns, kind=GrantKind.TOPIC)] == ["kept"]
    assert [g.kind for g in registry.list_grants_for_grantee(CAROL)] == [GrantKind.PREFIX]
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", BOB) is None
    assert registry.get_usage(ALICE) == Usage(namespaces=1, topics=1, partitions=1, grants=2)
    with pytest.raises(NotFound):
        registry.delete_topic(ns, "events")


def test_delete_topic_with_more_grants_than_one_transaction_holds(registry):
    register(registry, ALICE)
    register(registry, BOB)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "popular", ALICE)
    grantees = [f"grantee-{i:03d}" for i in range(105)]  # > 100 actions
    for i, grantee in enumerate(grantees):
        granter = ALICE if i % 2 else BOB
        registry.put_grant(topic_grant(ns, "popular", grantee, granter), limit=BIG)
    assert registry.get_usage(ALICE).grants + registry.get_usage(BOB).grants == 105

    removed = registry.delete_topic(ns, "popular")

    assert sorted(g.grantee for g in removed) == grantees
    assert registry.list_grants(ns) == []
    assert registry.list_grants_for_grantee(grantees[7]) == []
    assert registry.get_usage(ALICE) == Usage(namespaces=1)
    assert registry.get_usage(BOB) == Usage(namespaces=1)
    add_topic(registry, ns, "popular", ALICE)  # and the name is free again
    assert registry.list_grants(ns, kind=GrantKind.TOPIC, target="popular") == []


# -- grants -------------------------------------------------------------------------------


def test_grants_round_trip_replace_and_delete(registry):
    register(registry, ALICE)
    register(registry, BOB)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "events", ALICE)
    grant = topic_grant(ns, "events", BOB, ALICE)

    assert registry.put_grant(grant, limit=BIG) == grant
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", BOB) == grant
    assert registry.get_grant(ns, GrantKind.PREFIX, "events", BOB) is None

    wider = grant.model_copy(update={"access": Access.READWRITE})
    registry.put_grant(wider, limit=1)  # a replacement is not one more grant
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", BOB) == wider
    assert registry.get_usage(ALICE).grants == 1

    assert registry.delete_grant(ns, GrantKind.TOPIC, "events", BOB) is True
    assert registry.delete_grant(ns, GrantKind.TOPIC, "events", BOB) is False
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", BOB) is None
    assert registry.get_usage(ALICE).grants == 0


def test_replacing_a_grant_moves_it_to_the_new_granter(registry):
    register(registry, ALICE)
    register(registry, BOB)
    register(registry, CAROL)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "events", ALICE)
    registry.put_grant(topic_grant(ns, "events", CAROL, ALICE), limit=BIG)

    registry.put_grant(topic_grant(ns, "events", CAROL, BOB, Access.WRITE), limit=BIG)

    assert registry.get_usage(ALICE).grants == 0
    assert registry.get_usage(BOB).grants == 1
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", CAROL).granted_by == BOB


def test_grant_quota_is_exact_and_named(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "events", ALICE)
    for i in range(3):
        registry.put_grant(topic_grant(ns, "events", f"user-{i}", ALICE), limit=3)

    with pytest.raises(QuotaExceeded) as error:
        registry.put_grant(topic_grant(ns, "events", "user-3", ALICE), limit=3)
    assert_quota(error, "grants_per_identity", 3)
    assert registry.get_grant(ns, GrantKind.TOPIC, "events", "user-3") is None
    assert registry.get_usage(ALICE).grants == 3


def test_grants_need_their_topic_or_namespace(registry):
    register(registry, ALICE)
    with pytest.raises(NotFound):
        registry.put_grant(topic_grant(default_ns(ALICE), "missing", BOB, ALICE), limit=BIG)
    with pytest.raises(NotFound):
        registry.put_grant(prefix_grant("no-such-namespace", "", BOB, ALICE), limit=BIG)
    assert registry.get_usage(ALICE).grants == 0


def test_list_grants_filters_and_lists_for_grantee(registry):
    register(registry, ALICE)
    register(registry, BOB)
    a, b = default_ns(ALICE), default_ns(BOB)
    add_topic(registry, a, "x", ALICE)
    add_topic(registry, a, "y", ALICE)
    add_topic(registry, b, "z", BOB)
    grants = [
        topic_grant(a, "x", CAROL, ALICE),
        topic_grant(a, "x", BOB, ALICE),
        topic_grant(a, "y", CAROL, ALICE),
        prefix_grant(a, "x", CAROL, ALICE),
        prefix_grant(a, "", BOB, ALICE),
        topic_grant(b, "z", CAROL, BOB),
    ]
    for grant in grants:
        registry.put_grant(grant, limit=BIG)

    assert registry.list_grants(a) == [grants[4], grants[3], grants[1], grants[0], grants[2]]
    assert registry.list_grants(a, kind=GrantKind.PREFIX) == [grants[4], grants[3]]
    assert registry.list_grants(a, kind=GrantKind.TOPIC, target="x") == [grants[1], grants[0]]
    assert registry.list_grants(a, target="x") == [grants[3], grants[1], grants[0]]
    # by namespace (BOB's sorts first), then kind, then target
    assert registry.list_grants_for_grantee(CAROL) == [grants[5], grants[3], grants[0], grants[2]]
    assert registry.list_grants_for_grantee("stranger") == []


# -- keys ---------------------------------------------------------------------------------


def test_keys_create_list_touch_delete(registry):
    register(registry, ALICE)
    register(registry, BOB)
    first = make_key(
        ALICE, "k1", "laptop", secret_hash="scrypt$abc", created_at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    second = make_key(ALICE, "k2", "cluster", created_at=datetime(2024, 1, 2, tzinfo=UTC))
    registry.create_key(first, limit=2)
    registry.create_key(second, limit=2)

    assert registry.get_key("k1") == first
    assert registry.list_keys(ALICE) == [first, second]
    assert registry.list_keys(BOB) == []
    when = datetime(2024, 6, 1, 8, 0, 0, 5, tzinfo=UTC)
    registry.touch_key("k1", when)
    registry.touch_key("missing", when)  # a key deleted meanwhile: nothing to do
    assert registry.get_key("k1") == first.model_copy(update={"last_used_at": when})

    assert registry.delete_key(BOB, "k1") is False  # not the owner
    assert registry.delete_key(ALICE, "k1") is True
    assert registry.delete_key(ALICE, "k1") is False
    assert registry.get_key("k1") is None
    assert registry.get_usage(ALICE).keys == 1
    registry.create_key(make_key(ALICE, "k3", "laptop"), limit=2)  # the name is free again


def test_key_names_are_unique_per_owner_and_keys_bounded(registry):
    register(registry, ALICE)
    register(registry, BOB)
    registry.create_key(make_key(ALICE, "k1", "laptop"), limit=2)
    registry.create_key(make_key(BOB, "k2", "laptop"), limit=2)  # same name, other owner

    with pytest.raises(AlreadyExists):
        registry.create_key(make_key(ALICE, "k3", "laptop"), limit=2)
    with pytest.raises(AlreadyExists):
        registry.create_key(make_key(ALICE, "k1", "other"), limit=2)
    registry.create_key(make_key(ALICE, "k4", "desktop"), limit=2)
    with pytest.raises(QuotaExceeded) as error:
        registry.create_key(make_key(ALICE, "k5", "third"), limit=2)
    assert_quota(error, "keys_per_identity", 2)
    assert registry.get_usage(ALICE).keys == 2
    assert [k.key_id for k in registry.list_keys(ALICE)] == ["k1", "k4"]


# -- triggers -----------------------------------------------------------------------------


def test_trigger_round_trip_update_and_delete(registry):
    register(registry, ALICE)
    trigger = make_trigger("trg-1", ALICE, default_ns(ALICE), "events")
    registry.create_trigger(trigger, limit=BIG)

    assert registry.get_trigger("trg-1") == trigger
    assert registry.get_trigger("missing") is None
    with pytest.raises(AlreadyExists):
        registry.create_trigger(trigger, limit=BIG)

    failing = trigger.model_copy(update={"state": TriggerState.FAILING, "last_error": "HTTP 500"})
    updated = registry.update_trigger(failing, expected_version=0)
    assert updated.version == 1
    assert registry.get_trigger("trg-1") == updated
    with pytest.raises(Conflict):
        registry.update_trigger(failing, expected_version=0)
    with pytest.raises(NotFound):
        registry.update_trigger(make_trigger("nope", ALICE, "n", "t"), expected_version=0)

    assert registry.delete_trigger("trg-1") is True
    assert registry.delete_trigger("trg-1") is False
    assert registry.get_usage(ALICE).triggers == 0


def test_trigger_quota_is_exact_and_named(registry):
    register(registry, ALICE)
    for i in range(2):
        registry.create_trigger(make_trigger(f"t{i}", ALICE, "n", "x"), limit=2)
    with pytest.raises(QuotaExceeded) as error:
        registry.create_trigger(make_trigger("t2", ALICE, "n", "x"), limit=2)
    assert_quota(error, "trigger_limits.per_identity", 2)
    assert registry.get_trigger("t2") is None


def test_list_triggers_filters_and_pages(registry):
    register(registry, ALICE)
    register(registry, BOB)
    made = []
    for namespace in ("ns-a", "ns-b"):
        for topic in ("t1", "t2"):
            for i in range(3):
                trigger = make_trigger(f"{namespace}-{topic}-{i}", ALICE, namespace, topic)
                registry.create_trigger(trigger, limit=BIG)
                made.append(trigger)
    registry.create_trigger(make_trigger("bobs", BOB, "ns-a", "t1"), limit=BIG)

    def collect(**filters: Any) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            page = registry.list_triggers(ALICE, cursor=cursor, limit=4, **filters)
            assert len(page.items) <= 4
            ids += [t.trigger_id for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return ids

    assert collect() == [t.trigger_id for t in made]
    assert collect(namespace="ns-b") == [t.trigger_id for t in made[6:]]
    assert collect(namespace="ns-a", topic="t2") == [t.trigger_id for t in made[3:6]]
    assert registry.list_triggers(BOB).items == [registry.get_trigger("bobs")]

    cursor = registry.list_triggers(ALICE, limit=2).next_cursor
    with pytest.raises(BadRequest):
        registry.list_triggers(BOB, cursor=cursor)  # someone else's cursor
    with pytest.raises(BadRequest):
        registry.list_triggers(ALICE, namespace="ns-a", cursor=cursor)
    with pytest.raises(BadRequest):
        registry.list_triggers(ALICE, cursor="not a cursor")
    assert {t.trigger_id for t in registry.iter_all_triggers()} == {t.trigger_id for t in made} | {
        "bobs"
    }


def test_list_triggers_on_topic_finds_every_owners_and_nothing_else(registry):
    for sub in (ALICE, BOB, CAROL):
        register(registry, sub)
    on_topic = [
        make_trigger("on-1", ALICE, "ns-a", "a.b"),
        make_trigger("on-2", BOB, "ns-a", "a.b"),
        make_trigger("on-3", CAROL, "ns-a", "a.b"),
    ]
    elsewhere = [
        make_trigger("off-prefix", ALICE, "ns-a", "a.bc"),  # a.b is a prefix of its name
        make_trigger("off-parent", BOB, "ns-a", "a"),
        make_trigger("off-collide", BOB, "ns-a", "a_b"),
        make_trigger("off-ns", CAROL, "ns-b", "a.b"),
        make_trigger("off-ns-prefix", CAROL, "ns-ab", "a.b"),
    ]
    for trigger in on_topic + elsewhere:
        registry.create_trigger(trigger, limit=BIG)

    assert registry.list_triggers_on_topic("ns-a", "a.b") == on_topic
    assert registry.list_triggers_on_topic("ns-a", "a.bc") == [elsewhere[0]]
    assert registry.list_triggers_on_topic("ns-a", "nothing") == []

    # Changes after the first lookup: a new trigger, a deleted one, an updated one.
    late = make_trigger("on-0", BOB, "ns-a", "a.b")
    registry.create_trigger(late, limit=BIG)
    assert registry.delete_trigger("on-1") is True
    failing = registry.update_trigger(
        on_topic[2].model_copy(update={"state": TriggerState.FAILING}), expected_version=0
    )
    assert registry.list_triggers_on_topic("ns-a", "a.b") == [late, on_topic[1], failing]

    for trigger_id in ("on-0", "on-2", "on-3"):
        registry.delete_trigger(trigger_id)
    assert registry.list_triggers_on_topic("ns-a", "a.b") == []
    assert registry.list_triggers_on_topic("ns-b", "a.b") == [elsewhere[3]]


def test_list_triggers_on_topic_follows_a_trigger_to_another_topic(registry):
    register(registry, ALICE)
    registry.list_triggers_on_topic("ns-a", "before")  # the index is in use from here on
    trigger = make_trigger("mover", ALICE, "ns-a", "from")
    registry.create_trigger(trigger, limit=BIG)

    moved = registry.update_trigger(
        trigger.model_copy(update={"namespace": "ns-b", "topic": "to"}), expected_version=0
    )
    assert registry.list_triggers_on_topic("ns-a", "from") == []
    assert registry.list_triggers_on_topic("ns-b", "to") == [moved]
    assert registry.list_triggers(ALICE, namespace="ns-b", topic="to").items == [moved]
    with pytest.raises(Conflict):  # a stale move is refused and changes nothing
        registry.update_trigger(trigger, expected_version=0)
    assert registry.list_triggers_on_topic("ns-a", "from") == []
    with pytest.raises(NotFound):
        registry.update_trigger(make_trigger("gone", ALICE, "ns-c", "x"), expected_version=0)

    assert registry.delete_trigger("mover") is True
    assert registry.list_triggers_on_topic("ns-b", "to") == []
    assert registry.get_usage(ALICE).triggers == 0


def test_list_triggers_on_topic_returns_more_than_a_batch(registry):
    """More triggers than one DynamoDB BatchGetItem (100 keys) reads back."""
    register(registry, ALICE)
    register(registry, BOB)
    registry.list_triggers_on_topic("ns-a", "busy")  # the index is in use from here on
    made = []
    for i in range(130):
        trigger = make_trigger(f"t{i:03d}", ALICE if i % 2 else BOB, "ns-a", "busy")
        registry.create_trigger(trigger, limit=BIG)
        made.append(trigger)
    registry.create_trigger(make_trigger("t-quiet", ALICE, "ns-a", "quiet"), limit=BIG)

    assert registry.list_triggers_on_topic("ns-a", "busy") == made


# -- idempotency --------------------------------------------------------------------------


def test_idempotency_records_are_kept_until_they_expire(registry):
    live = idempotency_record("req-1", 3600)
    assert registry.put_idempotency(live) is True
    assert registry.get_idempotency(ALICE, "req-1") == live
    assert registry.put_idempotency(idempotency_record("req-1", 3600, "other")) is False
    assert registry.get_idempotency(ALICE, "req-1") == live
    assert registry.get_idempotency(BOB, "req-1") is None

    short = idempotency_record("req-2", 0.6)
    assert registry.put_idempotency(short) is True
    assert registry.get_idempotency(ALICE, "req-2") == short
    time.sleep(0.7)
    assert registry.get_idempotency(ALICE, "req-2") is None
    replacement = idempotency_record("req-2", 3600, "second")
    assert registry.put_idempotency(replacement) is True
    assert registry.get_idempotency(ALICE, "req-2") == replacement

    assert registry.put_idempotency(idempotency_record("req-3", -5)) is True
    assert registry.get_idempotency(ALICE, "req-3") is None


# -- REST consumer instances --------------------------------------------------------------


def test_consumer_instances_crud_with_versions(registry):
    instance = consumer(format="json", topics=["ns-a.t"], assignments=[("ns-a.t", 0)])
    registry.put_consumer_instance(instance)

    assert registry.get_consumer_instance("grp", "c1") == instance
    assert registry.get_consumer_instance("grp", "other") is None
    with pytest.raises(AlreadyExists):
        registry.put_consumer_instance(instance)

    moved = instance.model_copy(update={"positions": {"ns-a.t:0": 42}})
    updated = registry.update_consumer_instance(moved, expected_version=0)
    assert updated.version == 1
    assert registry.get_consumer_instance("grp", "c1") == updated
    with pytest.raises(Conflict):
        registry.update_consumer_instance(moved, expected_version=0)
    with pytest.raises(NotFound):
        registry.update_consumer_instance(consumer("ghost"), expected_version=0)

    assert registry.delete_consumer_instance("grp", "c1") is True
    assert registry.delete_consumer_instance("grp", "c1") is False
    assert registry.get_consumer_instance("grp", "c1") is None


def test_idle_consumer_instances_expire(registry):
    stale = consumer("old", last_used_at=datetime.now(UTC) - timedelta(days=3))
    registry.put_consumer_instance(stale)

    assert registry.get_consumer_instance("grp", "old") is None
    with pytest.raises(NotFound):
        registry.update_consumer_instance(stale, expected_version=0)
    fresh = consumer("old")
    registry.put_consumer_instance(fresh)  # the id is free again
    assert registry.get_consumer_instance("grp", "old") == fresh


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_topic_churn_never_overshoots_the_quota(registry):
    """50 threads: 25 create/grant/delete one hot topic, 25 create distinct topics.

    With a topic quota of N the owner never holds more than N topics, and
    afterwards every counter equals what the registry really holds and no grant
    points at a missing topic.
    """
    quota = 8
    register(registry, ALICE)
    register(registry, BOB)
    ns = default_ns(ALICE)
    peak = {"topics": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak["topics"] = max(peak["topics"], registry.get_usage(ALICE).topics)
            time.sleep(0.001)

    def work(i: int) -> list[str]:
        outcomes = []
        for round_ in range(3 if i < 25 else 1):
            name = "hot" if i < 25 else f"distinct.t{i:02d}"
            try:
                registry.create_topic(
                    make_topic(ns, name, ALICE, partitions=2),
                    topic_limit=quota,
                    partition_limit=BIG,
                )
                outcomes.append("created")
                if i < 25:
                    registry.put_grant(topic_grant(ns, name, f"g{i}-{round_}", ALICE), limit=BIG)
                    registry.delete_topic(ns, name)
                    outcomes.append("deleted")
            except (AlreadyExists, QuotaExceeded, NotFound) as error:
                outcomes.append(type(error).__name__)
        return outcomes

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcomes = [o for result in run_concurrently(50, work) for o in result]
    finally:
        stop.set()
        watcher.join()

    topics = all_topics(registry, ns)
    usage = registry.get_usage(ALICE)
    assert peak["topics"] <= quota
    assert len(topics) <= quota
    assert usage.topics == len(topics)
    assert usage.partitions == sum(t.partitions for t in topics)
    grants = registry.list_grants(ns)
    assert usage.grants == len(grants)
    names = {t.name for t in topics}
    assert all(g.target in names for g in grants)
    assert "created" in outcomes
    assert outcomes.count("QuotaExceeded") > 0  # 25 distinct + hot > 8: some were refused
    assert {type(t) for t in registry.iter_all_topics()} == {Topic}


def test_concurrent_updates_lose_nothing(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "counter", ALICE)
    registry.put_consumer_instance(consumer())

    def increment_topic(_: int) -> int:
        conflicts = 0
        first_read = True
        for _ in range(3):
            while True:
                current = registry.get_topic(ns, "counter")
                count = int(current.configs.get("n", "0"))
                if first_read:  # every thread reads version 0 first: a sure race
                    time.sleep(0.005)
                    first_read = False
                try:
                    registry.update_topic(
                        current.model_copy(update={"configs": {"n": str(count + 1)}}),
                        expected_version=current.version,
                        partition_limit=BIG,
                    )
                    break
                except Conflict:
                    conflicts += 1
        return conflicts

    def increment_consumer(_: int) -> None:
        while True:
            current = registry.get_consumer_instance("grp", "c1")
            offset = current.positions.get("t:0", 0)
            try:
                registry.update_consumer_instance(
                    current.model_copy(update={"positions": {"t:0": offset + 1}}),
                    expected_version=current.version,
                )
                return
            except Conflict:
                continue

    conflicts = run_concurrently(8, increment_topic)
    run_concurrently(8, increment_consumer)

    final = registry.get_topic(ns, "counter")
    assert final.configs["n"] == "24"
    assert final.version == 24
    assert sum(conflicts) > 0  # the threads really did race
    instance = registry.get_consumer_instance("grp", "c1")
    assert instance.positions["t:0"] == 8
    assert instance.version == 8


def test_concurrent_grants_and_keys_respect_their_quotas(registry):
    register(registry, ALICE)
    ns = default_ns(ALICE)
    add_topic(registry, ns, "events", ALICE)

    def grant(i: int) -> bool:
        try:
            registry.put_grant(topic_grant(ns, "events", f"user-{i}", ALICE), limit=10)
        except QuotaExceeded:
            return False
        return True

    def key(i: int) -> bool:
        try:
            registry.create_key(make_key(ALICE, f"k{i}", f"name-{i}"), limit=2)
        except QuotaExceeded:
            return False
        return True

    assert run_concurrently(30, grant).count(True) == 10
    assert run_concurrently(10, key).count(True) == 2
    usage = registry.get_usage(ALICE)
    assert usage.grants == len(registry.list_grants(ns)) == 10
    assert usage.keys == len(registry.list_keys(ALICE)) == 2


# -- adapter-specific guarantees ----------------------------------------------------------


def test_errors_are_fabric_errors(registry):
    register(registry, ALICE)
    with pytest.raises(FabricError) as error:
        registry.create_namespace(Namespace(name=default_ns(ALICE), owner=ALICE), limit=BIG)
    assert error.value.status == 409
